//! `pm-train`: a features artifact + a training spec → a model bundle artifact.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use pm_core::artifacts::bundle::{BUNDLE_FILE, ModelBundle};
use pm_core::artifacts::store::Store;
use pm_core::cli::{progress, thousands};
use pm_core::learn::train::{Algorithm, TrainSpec, train};

use crate::features::load_features;

/// Arguments of `pm-train`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pm-train", version, about = "Train a failure model on a features artifact")]
pub struct TrainArgs {
    /// Features artifact written by pm-features (URL or local path).
    #[arg(long)]
    pub features_uri: String,
    /// Artifact folder to write the model bundle to.
    #[arg(long)]
    pub output_uri: String,
    /// Training spec: a YAML or JSON file (path or URL).
    #[arg(long, conflicts_with = "spec_inline")]
    pub spec: Option<String>,
    /// Training spec as inline YAML or JSON text (how pipelines pass their `train` section).
    #[arg(long)]
    pub spec_inline: Option<String>,
    /// Overrides the spec's `model`: gbdt, random_forest or auto.
    #[arg(long)]
    pub model: Option<Algorithm>,
    /// Overrides the spec's `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the validation ROC AUC to this file (a KFP output parameter).
    #[arg(long)]
    pub auc_output_file: Option<PathBuf>,
}

/// Parses a spec document, reporting YAML errors with their line and column.
pub fn parse_spec(text: &str, origin: &str) -> Result<TrainSpec> {
    if text.trim().is_empty() {
        return Ok(TrainSpec::default());
    }
    yaml_serde::from_str(text).map_err(|e| match e.location() {
        Some(loc) => anyhow::anyhow!("{origin}: line {}, column {}: {e}", loc.line(), loc.column()),
        None => anyhow::anyhow!("{origin}: {e}"),
    })
}

async fn load_spec(args: &TrainArgs) -> Result<TrainSpec> {
    let mut spec = match (&args.spec, &args.spec_inline) {
        (Some(loc), _) => {
            let (dir, file) = match loc.rsplit_once('/') {
                Some((d, f)) if !d.is_empty() => (d.to_string(), f.to_string()),
                _ => (".".to_string(), loc.clone()),
            };
            let bytes =
                Store::open(&dir)?.get(&file).await.with_context(|| format!("reading the training spec {loc}"))?;
            parse_spec(&String::from_utf8_lossy(&bytes), loc)?
        }
        (None, Some(text)) => parse_spec(text, "--spec-inline")?,
        (None, None) => TrainSpec::default(),
    };
    if let Some(m) = args.model {
        spec.model = m;
    }
    if let Some(s) = args.seed {
        spec.seed = s;
    }
    Ok(spec)
}

/// What a training run did.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub bundle: ModelBundle,
    pub report: pm_core::learn::train::TrainReport,
    pub output_uri: String,
    pub content_hash: String,
    pub load_secs: f64,
    pub total_secs: f64,
}

pub async fn run(args: &TrainArgs) -> Result<TrainSummary> {
    let t0 = Instant::now();
    let pb = progress("train");
    let spec = load_spec(args).await?;
    let input = Store::open(&args.features_uri)?;
    let out = Store::open(&args.output_uri)?;
    pb.set_message(format!("loading {}", input.url()));
    let art = load_features(&input).await?;
    let load_secs = t0.elapsed().as_secs_f64();
    pb.set_message(format!("training {:?} on {} rows", spec.model, thousands(art.table.n_rows() as u64)));
    let hash = art.manifest.content_hash();
    let machines = art.machine_infos();
    let (bundle, report) =
        tokio::task::spawn_blocking(move || train(&art.spec, &art.table, &spec, &hash, machines)).await??;
    pb.set_message(format!("writing {}", out.url()));
    let meta = serde_json::json!({
        "name": bundle.name,
        "algorithm": bundle.model.algorithm,
        "validation": bundle.validation,
        "threshold": bundle.threshold,
        "features": bundle.feature_spec.n_features(),
        "label_horizon_hours": bundle.feature_spec.label.horizon_hours,
        "training_data_hash": bundle.training_data_hash,
    });
    let files = vec![(BUNDLE_FILE.to_string(), Bytes::from(bundle.to_json()))];
    let manifest = out.write_artifact("Model", concat!("pm-train ", env!("CARGO_PKG_VERSION")), files, meta).await?;
    pm_core::cli::write_output_parameter(args.auc_output_file.as_deref(), bundle.validation.roc_auc)?;
    pb.finish_and_clear();
    let total_secs = t0.elapsed().as_secs_f64();
    let v = &bundle.validation;
    tracing::info!(algorithm = %report.algorithm, roc_auc = v.roc_auc, pr_auc = v.pr_auc, "Trained the model.");
    println!(
        "train: {} on {} rows ({} validation), {}; validation ROC AUC {:.4}, PR AUC {:.4}, F1 {:.3} at threshold {:.3}; bin {:.2} s, fit {:.2} s, total {:.2} s -> {}",
        report.algorithm,
        thousands(report.train_rows as u64),
        thousands(report.valid_rows as u64),
        report.gbdt_rounds.map_or(String::from("100 trees"), |r| format!("{r} rounds")),
        v.roc_auc,
        v.pr_auc,
        v.f1,
        bundle.threshold,
        report.bin_secs,
        report.fit_secs,
        total_secs,
        out.url()
    );
    Ok(TrainSummary {
        bundle,
        report,
        output_uri: out.url().to_string(),
        content_hash: manifest.content_hash(),
        load_secs,
        total_secs,
    })
}

/// Loads a model bundle artifact.
pub async fn load_bundle(store: &Store) -> Result<(ModelBundle, pm_core::artifacts::store::Manifest)> {
    let manifest = store.read_manifest().await.with_context(|| format!("opening the model at {}", store.url()))?;
    let bytes = store.read_artifact_file(&manifest, BUNDLE_FILE).await?;
    let bundle = ModelBundle::from_json(&bytes).with_context(|| store.url_of(BUNDLE_FILE))?;
    Ok((bundle, manifest))
}
