//! `pm-monitor`: compares a new batch of telemetry with the training baseline of a model.
//!
//! The batch (an ingested data set) goes through the model's own [`FeatureSpec`] — the kernel
//! training and serving use — and each feature's values in the monitored window are compared with
//! the baseline the bundle carries: population stability index (PSI) and Kolmogorov-Smirnov
//! statistic. The report (JSON + HTML) is an artifact; the alert flag is an output parameter a
//! pipeline condition can use (`pipelines/monitoring.yaml` retrains on it).

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use pm_core::artifacts::bundle::ModelBundle;
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_core::cli::progress;
use pm_core::features::compute_batch;
use serde::{Deserialize, Serialize};

use crate::ingest::load_dataset;
use crate::train::load_bundle;
use pm_core::html::escape as esc;

/// Arguments of `pm-monitor`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pm-monitor",
    version,
    about = "Drift of a new telemetry batch against a model's training baseline (PSI and KS per feature)"
)]
pub struct MonitorArgs {
    /// The new batch: a data set artifact written by pm-ingest.
    #[arg(long)]
    pub dataset_uri: String,
    /// The model whose baseline to compare with (a Model artifact) ...
    #[arg(long, conflicts_with = "registry_uri", required_unless_present = "registry_uri")]
    pub model_uri: Option<String>,
    /// ... or the ACTIVE model of this registry root.
    #[arg(long)]
    pub registry_uri: Option<String>,
    #[arg(long, default_value = "pm-failure")]
    pub model_name: String,
    /// Which features to compare: `sensors` (those computed from the sensor readings: the raw
    /// values, rolling windows, trends) or `all` (also error counts, hours since replacement,
    /// machine model and age — fleet facts that move with time and fleet make-up, not with the
    /// process, so a short batch of few machines shifts them without any drift).
    #[arg(long, value_enum, default_value_t = Scope::Sensors)]
    pub scope: Scope,
    /// Compare only the last N hours of the batch (0 = all of it).
    #[arg(long, default_value_t = 0)]
    pub window_hours: u32,
    /// A feature drifts when its PSI exceeds this (0.2: the usual "significant shift").
    #[arg(long, default_value_t = 0.2)]
    pub max_psi: f64,
    /// ... or when its KS statistic exceeds this.
    #[arg(long, default_value_t = 0.3)]
    pub max_ks: f64,
    /// The alert fires when at least this many features drift.
    #[arg(long, default_value_t = 1)]
    pub min_drifted_features: usize,
    /// Artifact folder for drift.json and drift.html.
    #[arg(long)]
    pub output_uri: String,
    /// KFP output parameter: true when the alert fires.
    #[arg(long)]
    pub drifted_output_file: Option<PathBuf>,
    /// KFP output parameter: the largest PSI.
    #[arg(long)]
    pub max_psi_output_file: Option<PathBuf>,
    /// KFP HTML artifact: the report.
    #[arg(long)]
    pub html_path: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Sensors,
    All,
}

/// One feature's drift.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
    pub ks: f64,
    pub baseline_mean: f64,
    pub batch_mean: f64,
    pub drifted: bool,
}

/// The drift report (`drift.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    pub model_name: String,
    /// Registry version, or the model artifact's URL.
    pub model: String,
    pub dataset_uri: String,
    pub rows: usize,
    pub machines: usize,
    pub window_start: String,
    pub window_end: String,
    pub max_psi: f64,
    pub max_ks: f64,
    pub thresholds: Thresholds,
    pub drifted_features: Vec<String>,
    pub alert: bool,
    /// Sorted by PSI, largest first.
    pub features: Vec<FeatureDrift>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_psi: f64,
    pub max_ks: f64,
    pub min_drifted_features: usize,
    pub scope: Scope,
}

/// Compares feature columns with the bundle's baselines.
pub fn drift_of(bundle: &ModelBundle, names: &[String], columns: &[Vec<f32>], t: &Thresholds) -> Vec<FeatureDrift> {
    let sensors = bundle.feature_spec.contract.sensor_names();
    let in_scope = |name: &str| {
        t.scope == Scope::All
            || sensors.iter().any(|s| name == s || name.strip_prefix(s.as_str()).is_some_and(|r| r.starts_with('_')))
    };
    let mut out: Vec<FeatureDrift> = bundle
        .baseline
        .iter()
        .filter(|b| in_scope(&b.name))
        .filter_map(|b| {
            let col = &columns[names.iter().position(|n| *n == b.name)?];
            let values = || col.iter().map(|&x| f64::from(x));
            let psi = b.psi_of(values());
            let ks = b.ks_of(values());
            let finite: Vec<f64> = values().filter(|x| x.is_finite()).collect();
            let batch_mean =
                if finite.is_empty() { f64::NAN } else { finite.iter().sum::<f64>() / finite.len() as f64 };
            Some(FeatureDrift {
                feature: b.name.clone(),
                psi,
                ks,
                baseline_mean: b.mean,
                batch_mean,
                drifted: psi > t.max_psi || ks > t.max_ks,
            })
        })
        .collect();
    out.sort_by(|a, b| b.psi.total_cmp(&a.psi).then(a.feature.cmp(&b.feature)));
    out
}

/// The step.
pub async fn run(args: &MonitorArgs) -> Result<DriftReport> {
    let pb = progress("monitor");
    let (bundle, model) = match (&args.model_uri, &args.registry_uri) {
        (Some(m), _) => (load_bundle(&Store::open(m)?).await?.0, m.clone()),
        (None, Some(r)) => {
            let reg = Registry::new(&Store::open(r)?, &args.model_name);
            let state = reg.state().await?;
            let Some(v) = state.active.clone() else {
                bail!("the registry {r} has no active {} model to compare with", args.model_name);
            };
            (reg.bundle(&state, &v).await?.0, v)
        }
        (None, None) => bail!("give --model-uri or --registry-uri"),
    };
    if bundle.baseline.is_empty() {
        bail!("the model {model} carries no training baseline (bundle without `baseline`)");
    }
    pb.set_message(format!("loading {}", args.dataset_uri));
    let ds = load_dataset(&Store::open(&args.dataset_uri)?).await?;
    if !ds.contract.same_layout(&bundle.feature_spec.contract) {
        bail!(
            "the batch's data contract ({}) differs from the model's ({}) in its sensors, error types, components, models or cadence",
            ds.contract.name,
            bundle.feature_spec.contract.name
        );
    }
    pb.set_message("computing features with the model's spec");
    let spec = bundle.feature_spec.clone();
    let table = tokio::task::spawn_blocking(move || compute_batch(&spec, &ds)).await?;
    if table.n_rows() == 0 {
        bail!("the batch at {} has no telemetry rows", args.dataset_uri);
    }
    let end = table.time.iter().copied().max().unwrap_or(0);
    let start_cut = if args.window_hours == 0 { i64::MIN } else { end - i64::from(args.window_hours) * 3600 + 1 };
    let keep: Vec<usize> = (0..table.n_rows()).filter(|&i| table.time[i] >= start_cut).collect();
    let columns: Vec<Vec<f32>> = table.columns.iter().map(|c| keep.iter().map(|&i| c[i]).collect()).collect();
    let t = Thresholds {
        max_psi: args.max_psi,
        max_ks: args.max_ks,
        min_drifted_features: args.min_drifted_features,
        scope: args.scope,
    };
    let features = drift_of(&bundle, &table.names, &columns, &t);
    let drifted_features: Vec<String> = features.iter().filter(|f| f.drifted).map(|f| f.feature.clone()).collect();
    let mut machines: Vec<u32> = keep.iter().map(|&i| table.machine[i]).collect();
    machines.sort_unstable();
    machines.dedup();
    let first = keep.iter().map(|&i| table.time[i]).min().unwrap_or(end);
    let report = DriftReport {
        model_name: bundle.name.clone(),
        model,
        dataset_uri: args.dataset_uri.clone(),
        rows: keep.len(),
        machines: machines.len(),
        window_start: pm_core::data::time::Timestamp(first).rfc3339(),
        window_end: pm_core::data::time::Timestamp(end).rfc3339(),
        max_psi: features.iter().map(|f| f.psi).fold(0.0, f64::max),
        max_ks: features.iter().map(|f| f.ks).fold(0.0, f64::max),
        alert: drifted_features.len() >= args.min_drifted_features.max(1),
        drifted_features,
        thresholds: t,
        features,
    };
    let html = html(&report);
    let out = Store::open(&args.output_uri)?;
    pb.set_message(format!("writing {}", out.url()));
    let files = vec![
        ("drift.json".to_string(), Bytes::from(serde_json::to_vec_pretty(&report)?)),
        ("drift.html".to_string(), Bytes::from(html.clone())),
    ];
    let meta =
        serde_json::json!({"alert": report.alert, "max_psi": report.max_psi, "drifted": report.drifted_features.len()});
    out.write_artifact("DriftReport", concat!("pm-monitor ", env!("CARGO_PKG_VERSION")), files, meta).await?;
    if let Some(p) = &args.html_path {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(p, &html).with_context(|| format!("writing {}", p.display()))?;
    }
    pm_core::cli::write_output_parameter(args.drifted_output_file.as_deref(), report.alert)?;
    pm_core::cli::write_output_parameter(args.max_psi_output_file.as_deref(), report.max_psi)?;
    pb.finish_and_clear();
    tracing::info!(
        alert = report.alert,
        max_psi = report.max_psi,
        drifted = report.drifted_features.len(),
        "Monitored."
    );
    println!(
        "monitor: {} rows of {} machines ({} .. {}) vs model {}: max PSI {:.3}, max KS {:.3}; {} of {} features drifted -> {}",
        report.rows,
        report.machines,
        report.window_start,
        report.window_end,
        report.model,
        report.max_psi,
        report.max_ks,
        report.drifted_features.len(),
        report.features.len(),
        if report.alert { "ALERT: retrain" } else { "no alert" }
    );
    Ok(report)
}

/// Loads the report of a drift artifact.
pub async fn load_report(store: &Store) -> Result<DriftReport> {
    let m = store.read_manifest().await.with_context(|| format!("opening the drift report at {}", store.url()))?;
    serde_json::from_slice(&store.read_artifact_file(&m, "drift.json").await?).context("drift.json")
}

/// A self-contained HTML page: verdict, then one row per feature with a PSI bar.
pub fn html(r: &DriftReport) -> String {
    let mut rows = String::new();
    for f in &r.features {
        let width = (f.psi / (2.0 * r.thresholds.max_psi).max(1e-9) * 100.0).clamp(0.0, 100.0);
        let _ = write!(
            rows,
            "<tr class=\"{}\"><td>{}</td><td>{:.4}</td><td><div class=bar style=\"width:{width:.0}%\"></div></td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td></tr>",
            if f.drifted { "drift" } else { "ok" },
            esc(&f.feature),
            f.psi,
            f.ks,
            f.baseline_mean,
            f.batch_mean
        );
    }
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Drift report: {name}</title><style>\
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}\
td,th{{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
tr.drift td{{background:#fde8e8}}.bar{{background:#c0392b;height:10px;min-width:1px}}\
.alert{{color:#c0392b}}.calm{{color:#1e8449}}</style></head><body>\
<h1>Drift report: {name}</h1><p class={cls}><b>{verdict}</b></p>\
<p>Batch {ds}: {rows} rows of {machines} machines, {start} to {end}. Model {model}.<br>\
A feature drifts when PSI &gt; {mp} or KS &gt; {mk}; the alert needs {mn} drifted feature(s).</p>\
<table><tr><th>feature</th><th>PSI</th><th></th><th>KS</th><th>training mean</th><th>batch mean</th></tr>{rows_html}</table>\
</body></html>",
        name = esc(&r.model_name),
        cls = if r.alert { "alert" } else { "calm" },
        verdict = if r.alert {
            format!(
                "ALERT: {} of {} features drifted (max PSI {:.3}) - retrain",
                r.drifted_features.len(),
                r.features.len(),
                r.max_psi
            )
        } else {
            format!("No alert: max PSI {:.3}, max KS {:.3}", r.max_psi, r.max_ks)
        },
        ds = esc(&r.dataset_uri),
        rows = r.rows,
        machines = r.machines,
        start = r.window_start,
        end = r.window_end,
        model = esc(&r.model),
        mp = r.thresholds.max_psi,
        mk = r.thresholds.max_ks,
        mn = r.thresholds.min_drifted_features,
        rows_html = rows,
    )
}
