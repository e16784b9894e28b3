//! `pm-evaluate`: scores a candidate model on the test slice, compares it with the registry's
//! active model, applies the quality gates and writes metrics (JSON and KFP-shaped), an HTML
//! report and the decision (`blessed`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use pm_core::artifacts::bundle::{BUNDLE_FILE, ModelBundle};
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::{Store, sha256_hex};
use pm_core::cli::{BadInputExt, progress};
use pm_core::eval::evaluation::{Champion, Evaluation, GateSettings, Gates, evaluate};
use pm_core::features::{FeatureTable, compute_batch};
use serde::{Deserialize, Serialize};

use crate::features::load_features;
use crate::ingest::load_dataset;
use crate::train::load_bundle;

/// Arguments of `pm-evaluate`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pm-evaluate",
    version,
    about = "Evaluate a candidate model on the test slice and decide whether it is blessed"
)]
pub struct EvaluateArgs {
    /// Model artifact written by pm-train.
    #[arg(long)]
    pub model_uri: String,
    /// Features artifact the model was trained on.
    #[arg(long)]
    pub features_uri: String,
    /// Artifact folder for the evaluation (evaluation.json, metrics, report.html).
    #[arg(long)]
    pub output_uri: String,
    /// Registry root; its active model is the champion to beat.
    #[arg(long)]
    pub registry_uri: Option<String>,
    /// Registry name (default: the bundle's name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Data set artifact, to compute the champion's features when its feature spec differs.
    #[arg(long)]
    pub dataset_uri: Option<String>,
    /// Gates as inline YAML or JSON, e.g. `{min_roc_auc: 0.8, min_improvement: 0.002}`. A gate
    /// given here and as a flag must have the same value.
    #[arg(long)]
    pub gates_inline: Option<String>,
    /// Minimum test ROC AUC (default 0.75).
    #[arg(long, allow_negative_numbers = true)]
    pub min_roc_auc: Option<f64>,
    /// Minimum precision at the model's threshold (default 0.2).
    #[arg(long, allow_negative_numbers = true)]
    pub min_precision: Option<f64>,
    /// Minimum recall at the model's threshold (default 0.5).
    #[arg(long, allow_negative_numbers = true)]
    pub min_recall: Option<f64>,
    /// Minimum share of failures warned at least an hour ahead (default 0: off).
    #[arg(long, allow_negative_numbers = true)]
    pub min_event_recall: Option<f64>,
    /// The challenger must beat the champion by this much on --compare-metric (default 0.001;
    /// negative: it may be that much worse).
    #[arg(long, allow_negative_numbers = true)]
    pub min_improvement: Option<f64>,
    /// roc_auc, pr_auc (default) or f1.
    #[arg(long)]
    pub compare_metric: Option<String>,
    /// KFP output artifact paths (optional): system.Metrics, system.ClassificationMetrics, system.HTML.
    #[arg(long)]
    pub metrics_path: Option<PathBuf>,
    #[arg(long)]
    pub classification_metrics_path: Option<PathBuf>,
    #[arg(long)]
    pub html_path: Option<PathBuf>,
    /// KFP output parameter files (optional): `true`/`false`, and the test ROC AUC.
    #[arg(long)]
    pub blessed_output_file: Option<PathBuf>,
    #[arg(long)]
    pub roc_auc_output_file: Option<PathBuf>,
}

/// The evaluation artifact's `evaluation.json`: the decision, tied to the exact bundle evaluated.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub model_uri: String,
    /// SHA-256 of the evaluated `bundle.json`; `pm-deploy` refuses any other bundle.
    pub bundle_sha256: String,
    pub evaluation: Evaluation,
}

fn write_local(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    if let Some(p) = path {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, bytes).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// KFP `system.Metrics` metadata: flat scalars.
pub fn kfp_metrics(e: &Evaluation) -> serde_json::Value {
    let c = &e.candidate;
    serde_json::json!({
        "roc_auc": c.roc_auc, "pr_auc": c.pr_auc, "precision": c.precision, "recall": c.recall, "f1": c.f1,
        "false_alarm_rate": c.false_alarm_rate, "miss_rate": c.miss_rate, "threshold": c.threshold,
        "failures_warned_share": c.events.warned_share, "median_lead_hours": c.events.median_lead_hours,
        "p10_lead_hours": c.events.p10_lead_hours, "false_alarms_per_machine_month": c.events.false_alarms_per_machine_month,
        "blessed": if e.blessed { 1.0 } else { 0.0 },
    })
}

/// KFP `system.ClassificationMetrics` metadata: ROC readings and the confusion matrix, in the
/// shape the KFP and Vertex AI consoles render.
pub fn kfp_classification_metrics(e: &Evaluation) -> serde_json::Value {
    let c = &e.candidate.confusion;
    let readings: Vec<serde_json::Value> = e
        .roc_curve
        .iter()
        .map(|p| serde_json::json!({"confidenceThreshold": p.threshold, "recall": p.tpr, "falsePositiveRate": p.fpr}))
        .collect();
    serde_json::json!({
        "confidenceMetrics": readings,
        "confusionMatrix": {
            "annotationSpecs": [{"displayName": "no failure"}, {"displayName": "failure"}],
            "rows": [{"row": [c.tn, c.fp]}, {"row": [c.fn_, c.tp]}],
        },
    })
}

async fn champion_of(
    args: &EvaluateArgs,
    candidate: &ModelBundle,
    table: &FeatureTable,
) -> Result<Option<(String, Option<(ModelBundle, FeatureTable)>, Option<String>)>> {
    let Some(root) = &args.registry_uri else {
        return Ok(None);
    };
    let name = args.model_name.clone().unwrap_or_else(|| candidate.name.clone());
    let reg = Registry::new(&Store::open(root)?, &name);
    let state = reg.state().await?;
    let Some(version) = state.active.clone() else {
        return Ok(None);
    };
    let (champ, _) = reg.bundle(&state, &version).await?;
    let (cc, nc) = (&champ.feature_spec.contract, &candidate.feature_spec.contract);
    if !cc.same_layout(nc) {
        let note = format!(
            "its data contract ({}: {} sensors, cadence {}) differs from the candidate's ({}: {} sensors, cadence {})",
            cc.name,
            cc.sensors.len(),
            cc.cadence,
            nc.name,
            nc.sensors.len(),
            nc.cadence
        );
        return Ok(Some((version, None, Some(note))));
    }
    if champ.feature_spec.label != candidate.feature_spec.label {
        let note = format!(
            "label horizon {} h differs from the candidate's {} h",
            champ.feature_spec.label.horizon_hours, candidate.feature_spec.label.horizon_hours
        );
        return Ok(Some((version, None, Some(note))));
    }
    if champ.feature_spec == candidate.feature_spec {
        return Ok(Some((version, Some((champ, table.clone())), None)));
    }
    let Some(ds_uri) = &args.dataset_uri else {
        return Ok(Some((version, None, Some("its feature set differs and no --dataset-uri was given".into()))));
    };
    let ds = load_dataset(&Store::open(ds_uri)?).await?;
    let spec = champ.feature_spec.clone();
    let champ_table = tokio::task::spawn_blocking(move || compute_batch(&spec, &ds)).await?;
    if champ_table.time != table.time || champ_table.machine != table.machine {
        return Ok(Some((version, None, Some("its features do not align with the candidate's rows".into()))));
    }
    Ok(Some((version, Some((champ, champ_table)), Some("features recomputed with the champion's spec".into()))))
}

impl EvaluateArgs {
    /// The gates: the defaults, `--gates-inline` and the `--min-*` flags, merged by
    /// [`Gates::from_sources`] (a gate set twice to different values is refused).
    pub fn gates(&self) -> Result<Gates> {
        let inline: GateSettings = match &self.gates_inline {
            Some(text) if !text.trim().is_empty() => {
                yaml_serde::from_str(text).context("--gates-inline").bad_input()?
            }
            _ => GateSettings::default(),
        };
        let flags = GateSettings {
            min_roc_auc: self.min_roc_auc,
            min_precision: self.min_precision,
            min_recall: self.min_recall,
            min_event_recall: self.min_event_recall,
            compare_metric: self.compare_metric.clone(),
            min_improvement: self.min_improvement,
        };
        Gates::from_sources(&[("--gates-inline", &inline), ("the command line", &flags)])
            .map_err(|e| anyhow::anyhow!("gates: {e}"))
            .bad_input()
    }
}

pub async fn run(args: &EvaluateArgs) -> Result<EvaluationRecord> {
    let gates = args.gates()?;
    let pb = progress("evaluate");
    let model_store = Store::open(&args.model_uri)?;
    pb.set_message("loading model and features");
    let (bundle, manifest) = load_bundle(&model_store).await?;
    let bundle_bytes: Bytes = model_store.read_artifact_file(&manifest, BUNDLE_FILE).await?;
    let art = load_features(&Store::open(&args.features_uri)?).await?;
    if art.spec != bundle.feature_spec {
        return Err(anyhow::anyhow!(
            "the features at {} were computed with a different feature spec than the model's",
            args.features_uri
        ))
        .bad_input();
    }
    if art.manifest.content_hash() != bundle.training_data_hash {
        tracing::warn!(
            "The features differ from the ones the model was trained on; evaluating on its test period anyway."
        );
    }
    pb.set_message("scoring the champion");
    let champion = champion_of(args, &bundle, &art.table).await?;
    pb.set_message("scoring the candidate");
    let (evaluation, bundle, art) = tokio::task::spawn_blocking(move || {
        let champ = champion.as_ref().map(|(v, scored, note)| Champion {
            version: v,
            scored: scored.as_ref().map(|(b, t)| (b, t)),
            note: note.as_deref(),
        });
        let e = evaluate(&bundle, &art.table, &art.failures, champ, &gates);
        (e, bundle, art)
    })
    .await?;
    let _ = art;
    let record = EvaluationRecord {
        model_uri: model_store.url().to_string(),
        bundle_sha256: sha256_hex(&bundle_bytes),
        evaluation,
    };
    let e = &record.evaluation;
    let metrics = serde_json::to_vec_pretty(&kfp_metrics(e))?;
    let classification = serde_json::to_vec_pretty(&kfp_classification_metrics(e))?;
    let html = crate::report::html(e, &bundle, model_store.url());
    let out = Store::open(&args.output_uri)?;
    pb.set_message(format!("writing {}", out.url()));
    let files = vec![
        ("evaluation.json".to_string(), Bytes::from(serde_json::to_vec_pretty(&record)?)),
        ("metrics.json".to_string(), Bytes::from(metrics.clone())),
        ("classification_metrics.json".to_string(), Bytes::from(classification.clone())),
        ("report.html".to_string(), Bytes::from(html.clone())),
    ];
    let meta = serde_json::json!({"blessed": e.blessed, "roc_auc": e.candidate.roc_auc, "pr_auc": e.candidate.pr_auc});
    out.write_artifact("Metrics", concat!("pm-evaluate ", env!("CARGO_PKG_VERSION")), files, meta).await?;
    write_local(args.metrics_path.as_deref(), &metrics)?;
    write_local(args.classification_metrics_path.as_deref(), &classification)?;
    write_local(args.html_path.as_deref(), html.as_bytes())?;
    pm_core::cli::write_output_parameter(args.blessed_output_file.as_deref(), e.blessed)?;
    pm_core::cli::write_output_parameter(args.roc_auc_output_file.as_deref(), e.candidate.roc_auc)?;
    pb.finish_and_clear();
    let c = &e.candidate;
    tracing::info!(blessed = e.blessed, roc_auc = c.roc_auc, pr_auc = c.pr_auc, "Evaluated the candidate.");
    println!(
        "evaluate: test ROC AUC {:.4}, PR AUC {:.4}, precision {:.3}, recall {:.3}; {} of {} failures warned (median lead {:.1} h); {:.3} false alarms per machine-month -> {}",
        c.roc_auc,
        c.pr_auc,
        c.precision,
        c.recall,
        c.events.warned,
        c.events.failures,
        c.events.median_lead_hours,
        c.events.false_alarms_per_machine_month,
        if e.blessed { "BLESSED" } else { "NOT BLESSED" }
    );
    for r in &e.reasons {
        println!("  {r}");
    }
    Ok(record)
}

/// Loads the evaluation record of an evaluation artifact.
pub async fn load_evaluation(store: &Store) -> Result<EvaluationRecord> {
    let manifest = store.read_manifest().await.with_context(|| format!("opening the evaluation at {}", store.url()))?;
    let bytes = store.read_artifact_file(&manifest, "evaluation.json").await?;
    serde_json::from_slice(&bytes).with_context(|| store.url_of("evaluation.json"))
}
