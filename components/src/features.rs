//! `pm-features`: a data set artifact → the feature matrix with labels, its FeatureSpec, and the
//! failure events (for event-level evaluation).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use pm_core::artifacts::bundle::MachineInfo;
use pm_core::artifacts::store::{Manifest, Store};
use pm_core::data::contract::{Events, Machines};
use pm_core::features::{FeatureSet, FeatureSpec, FeatureTable, compute_batch};

use crate::{ingest, table};
use pm_core::cli::{progress, thousands};

/// Arguments of `pm-features`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pm-features", version, about = "Compute features and labels from a validated data set")]
pub struct FeaturesArgs {
    /// Data set artifact written by pm-ingest (URL or local path).
    #[arg(long)]
    pub input_uri: String,
    /// Artifact folder to write the features to.
    #[arg(long)]
    pub output_uri: String,
    /// `seed` (the 36 telemetry features of the system we replace) or `rich`.
    #[arg(long, default_value = "rich")]
    pub feature_set: FeatureSet,
    /// A reading is positive when a failure follows within this many hours.
    #[arg(long, default_value_t = 24)]
    pub label_horizon_hours: u32,
    /// Write the number of feature rows to this file (a KFP output parameter).
    #[arg(long)]
    pub rows_output_file: Option<PathBuf>,
}

/// What a features run did.
#[derive(Debug, Clone)]
pub struct FeaturesSummary {
    pub rows: usize,
    pub features: usize,
    pub positive_rate: f64,
    pub output_uri: String,
    pub content_hash: String,
    pub load_secs: f64,
    pub compute_secs: f64,
    pub write_secs: f64,
}

/// A features artifact, loaded.
#[derive(Debug, Clone)]
pub struct FeaturesArtifact {
    pub spec: FeatureSpec,
    pub table: FeatureTable,
    pub failures: Events,
    pub machines: Machines,
    pub manifest: Manifest,
}

impl FeaturesArtifact {
    /// The fleet as model bundles record it.
    pub fn machine_infos(&self) -> Vec<MachineInfo> {
        let m = &self.machines;
        (0..m.len())
            .map(|i| MachineInfo {
                id: m.id[i],
                model: self.spec.contract.models.get(usize::from(m.model[i])).cloned().unwrap_or_default(),
                age: m.age[i],
            })
            .collect()
    }
}

/// Loads a features artifact written by `pm-features`.
pub async fn load_features(store: &Store) -> Result<FeaturesArtifact> {
    let manifest = store.read_manifest().await.with_context(|| format!("opening the features at {}", store.url()))?;
    let spec: FeatureSpec = serde_json::from_slice(&store.read_artifact_file(&manifest, "feature_spec.json").await?)
        .context("feature_spec.json")?;
    spec.validate().context("feature_spec.json")?;
    let bytes = store.read_artifact_file(&manifest, "features.parquet").await?;
    let fail_bytes = store.read_artifact_file(&manifest, "failures.parquet").await?;
    let machine_bytes = store.read_artifact_file(&manifest, "machines.parquet").await?;
    let names = spec.names();
    let comps = spec.contract.components.clone();
    let contract = spec.contract.clone();
    let (table, failures, machines) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((
            table::features_from_parquet(&bytes, &names, &comps)?,
            table::failures_from_parquet(&fail_bytes, &contract)?,
            table::machines_from_parquet(&machine_bytes, &contract)?,
        ))
    })
    .await??;
    Ok(FeaturesArtifact { spec, table, failures, machines, manifest })
}

/// The step.
pub async fn run(args: &FeaturesArgs) -> Result<FeaturesSummary> {
    if args.label_horizon_hours == 0 {
        bail!("--label-horizon-hours must be at least 1");
    }
    let pb = progress("features");
    let input = Store::open(&args.input_uri)?;
    let out = Store::open(&args.output_uri)?;
    pb.set_message(format!("loading {}", input.url()));
    let t0 = Instant::now();
    let ds = ingest::load_dataset(&input).await?;
    let load_secs = t0.elapsed().as_secs_f64();
    let spec = FeatureSpec::new(args.feature_set, ds.contract.clone(), args.label_horizon_hours);
    spec.validate()?;
    pb.set_message(format!("computing {} features", spec.n_features()));
    let t1 = Instant::now();
    let (spec, ds, table) = tokio::task::spawn_blocking(move || {
        let t = compute_batch(&spec, &ds);
        (spec, ds, t)
    })
    .await?;
    let compute_secs = t1.elapsed().as_secs_f64();
    pb.set_message(format!("writing {}", out.url()));
    let t2 = Instant::now();
    let comps = spec.contract.components.clone();
    let (features_pq, failures_pq, machines_pq, table) = tokio::task::spawn_blocking(move || -> Result<_> {
        Ok((
            table::features_to_parquet(&table, &comps)?,
            table::failures_to_parquet(&ds)?,
            table::machines_to_parquet(&ds.machines, &ds.contract)?,
            table,
        ))
    })
    .await??;
    let rows = table.n_rows();
    let positives = table.label.iter().filter(|&&l| l == 1).count();
    let positive_rate = positives as f64 / rows.max(1) as f64;
    let files = vec![
        ("features.parquet".to_string(), features_pq),
        ("feature_spec.json".to_string(), Bytes::from(serde_json::to_vec_pretty(&spec)?)),
        ("failures.parquet".to_string(), failures_pq),
        ("machines.parquet".to_string(), machines_pq),
    ];
    let meta = serde_json::json!({
        "rows": rows,
        "features": spec.n_features(),
        "feature_set": args.feature_set,
        "label_horizon_hours": args.label_horizon_hours,
        "positive_rate": positive_rate,
        "source": input.url(),
    });
    let manifest =
        out.write_artifact("Dataset", concat!("pm-features ", env!("CARGO_PKG_VERSION")), files, meta).await?;
    let write_secs = t2.elapsed().as_secs_f64();
    pm_core::cli::write_output_parameter(args.rows_output_file.as_deref(), rows)?;
    pb.finish_and_clear();
    tracing::info!(rows, features = spec.n_features(), positive_rate, "Computed features and labels.");
    println!(
        "features: {} rows x {} features ({:?}), label = failure within {} h, {:.2} % positive; load {:.2} s, compute {:.2} s, write {:.2} s -> {}",
        thousands(rows as u64),
        spec.n_features(),
        args.feature_set,
        args.label_horizon_hours,
        100.0 * positive_rate,
        load_secs,
        compute_secs,
        write_secs,
        out.url()
    );
    Ok(FeaturesSummary {
        rows,
        features: spec.n_features(),
        positive_rate,
        output_uri: out.url().to_string(),
        content_hash: manifest.content_hash(),
        load_secs,
        compute_secs,
        write_secs,
    })
}
