//! `pm-ingest`: five raw files (CSV or Parquet) in a bucket → a validated, typed data set artifact (Parquet)
//! plus its validation report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use pm_core::artifacts::store::Store;
use pm_core::data::contract::{Contract, Dataset, FileFormat, FileKind};
use pm_core::data::ingest::{
    BadRowPolicy, InputFile, MissingPolicy, Numbering, ReadOptions, ValidationReport, read_dataset,
};

use crate::table;
use pm_core::cli::{progress, thousands};

/// Arguments of `pm-ingest`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pm-ingest",
    version,
    about = "Validate the five raw files against the data contract and write them as typed Parquet",
    after_help = "`pm-ingest contract --help`: print the default contract or its JSON Schema, or check one."
)]
pub struct IngestArgs {
    /// Folder (URL or local path) holding the five CSV files.
    #[arg(long)]
    pub input_uri: String,
    /// Artifact folder (URL or local path) to write the typed data set to.
    #[arg(long)]
    pub output_uri: String,
    /// What to do with a row that breaks the data contract: stop (`fail`) or leave it out and
    /// record it in the report (`drop`).
    #[arg(long, default_value = "fail")]
    pub on_bad_rows: BadRowPolicy,
    /// What an empty sensor value does: `keep` it as missing (features use the values present,
    /// the learners have a missing bin), `drop` the row (recorded in the report) or `fail`.
    #[arg(long, default_value = "keep")]
    pub on_missing: MissingPolicy,
    /// Refuse a file with a column the contract does not name. By default such a column (a
    /// sensor the contract does not know, an export's index) is ignored and listed in the report.
    /// `--strict-columns` alone means `true`.
    #[arg(long, num_args = 0..=1, default_value_t = false, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub strict_columns: bool,
    /// Also write the validation report (JSON) to this local path (a KFP output artifact path).
    #[arg(long)]
    pub report_path: Option<PathBuf>,
    /// Write the number of telemetry rows kept to this file (a KFP output parameter).
    #[arg(long)]
    pub rows_output_file: Option<PathBuf>,
    /// The data contract (a YAML or JSON file, by local path or URL): file names and formats,
    /// column names, sensors with units and bounds, vocabularies, cadence, datetime forms. The
    /// default (also when empty) is the Azure PdM data set's (`pm-ingest contract --print-default`).
    #[arg(long, env = "PM_CONTRACT")]
    pub contract: Option<String>,
    /// File names inside the input folder, over the contract's.
    #[arg(long)]
    pub telemetry_file: Option<String>,
    #[arg(long)]
    pub errors_file: Option<String>,
    #[arg(long)]
    pub maint_file: Option<String>,
    #[arg(long)]
    pub failures_file: Option<String>,
    #[arg(long)]
    pub machines_file: Option<String>,
}

impl IngestArgs {
    /// The contract `--contract` names (or the default), with the file names given on the
    /// command line put over its own.
    pub async fn contract(&self) -> Result<Contract> {
        let mut c = match self.contract.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            Some(loc) => Contract::load(loc).await.with_context(|| format!("loading the data contract {loc}"))?,
            None => Contract::azure_pdm(),
        };
        for kind in FileKind::ALL {
            let given = match kind {
                FileKind::Telemetry => &self.telemetry_file,
                FileKind::Errors => &self.errors_file,
                FileKind::Maint => &self.maint_file,
                FileKind::Failures => &self.failures_file,
                FileKind::Machines => &self.machines_file,
            };
            if let Some(path) = given {
                *c.files.get_mut(kind) = pm_core::data::contract::FileSpec { path: path.clone(), format: None };
            }
        }
        Ok(c)
    }
}

/// `pm-ingest contract`: the data contract's default and schema, and a check of a contract file.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "pm-ingest contract",
    version,
    about = "Print the default data contract or its JSON Schema, or check a contract"
)]
pub struct ContractArgs {
    /// Print the built-in contract (the Azure PdM data set's), as YAML: a start for your own.
    #[arg(long, conflicts_with_all = ["print_schema", "check"])]
    pub print_default: bool,
    /// Print the JSON Schema of a contract file.
    #[arg(long, conflicts_with = "check")]
    pub print_schema: bool,
    /// Check a contract file (local path or URL) and print what it declares.
    #[arg(long, value_name = "FILE_OR_URL")]
    pub check: Option<String>,
}

/// The JSON Schema of a contract file (`contracts/contract.schema.json`).
pub const CONTRACT_SCHEMA: &str = include_str!("../../contracts/contract.schema.json");

/// Runs `pm-ingest contract`: what it prints.
pub async fn contract_command(args: &ContractArgs) -> Result<String> {
    if args.print_default {
        return Ok(Contract::azure_pdm().to_yaml());
    }
    if args.print_schema {
        return Ok(CONTRACT_SCHEMA.to_string());
    }
    let Some(loc) = &args.check else {
        anyhow::bail!("pm-ingest contract: give --print-default, --print-schema or --check FILE_OR_URL");
    };
    let c = Contract::load(loc).await.with_context(|| format!("loading the data contract {loc}"))?;
    let mut out = format!(
        "contract {}: {} sensors ({}), {} error types, {} components, {} models, cadence {}, datetime forms {}\n",
        c.name,
        c.sensors.len(),
        c.sensor_names().join(", "),
        c.error_types.len(),
        c.components.len(),
        c.models.len(),
        c.cadence,
        c.datetime_forms.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
    );
    for kind in FileKind::ALL {
        let f = c.files.get(kind);
        let format = match f.format() {
            pm_core::data::contract::FileFormat::Csv => "csv",
            pm_core::data::contract::FileFormat::Parquet => "parquet",
        };
        out.push_str(&format!("  {:<9} {} ({format}): {}\n", kind.name(), f.path, c.columns(kind).join(", ")));
    }
    Ok(out)
}

/// What an ingest did.
#[derive(Debug, Clone)]
pub struct IngestSummary {
    pub report: ValidationReport,
    pub output_uri: String,
    pub content_hash: String,
    pub read_secs: f64,
    pub validate_secs: f64,
    pub write_secs: f64,
}

/// Reads the five files of `input` (in parallel) as `(kind, URL, bytes)`.
pub async fn fetch_inputs(input: &Store, contract: &Contract) -> Result<Vec<(FileKind, String, Bytes)>> {
    let fetches = FileKind::ALL.map(|kind| {
        let name = contract.file_name(kind).to_string();
        let store = input.clone();
        async move {
            let bytes = store.get(&name).await.with_context(|| format!("reading the {} file", kind.name()))?;
            Ok::<_, anyhow::Error>((kind, store.url_of(&name), bytes))
        }
    });
    futures_join_all(fetches).await
}

async fn futures_join_all<F, T>(futs: impl IntoIterator<Item = F>) -> Result<Vec<T>>
where
    F: std::future::Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.context("task panicked")??);
    }
    Ok(out)
}

/// Validates raw file bytes into a data set and its report (CPU-bound). A file the contract
/// says is Parquet (by `format`, or by its extension) goes through the same checks as a CSV
/// file, its problems numbered by row ([`table::parquet_as_csv`]).
pub fn validate(
    files: &[(FileKind, String, Bytes)],
    contract: &Contract,
    opts: &ReadOptions,
) -> Result<(Dataset, ValidationReport)> {
    let mut texts: Vec<(FileKind, &str, std::borrow::Cow<'_, [u8]>, Numbering)> = Vec::with_capacity(files.len());
    for (kind, name, bytes) in files {
        match contract.files.get(*kind).format() {
            FileFormat::Csv => texts.push((*kind, name, bytes.as_ref().into(), Numbering::Line)),
            FileFormat::Parquet => {
                let text = table::parquet_as_csv(bytes, name).map_err(pm_core::cli::BadInput)?;
                texts.push((*kind, name, text.into(), Numbering::Row));
            }
        }
    }
    let inputs: Vec<InputFile<'_>> = texts
        .iter()
        .map(|(kind, name, data, numbering)| InputFile { kind: *kind, name, data, numbering: *numbering })
        .collect();
    Ok(read_dataset(&inputs, contract, opts)?)
}

/// Writes a validated data set as an artifact.
pub async fn write_dataset(
    out: &Store,
    ds: &Dataset,
    report: &ValidationReport,
) -> Result<pm_core::artifacts::store::Manifest> {
    let mut files = table::dataset_to_parquet(ds)?;
    files.push(("contract.json".into(), Bytes::from(serde_json::to_vec_pretty(&ds.contract)?)));
    files.push(("validation_report.json".into(), Bytes::from(serde_json::to_vec_pretty(report)?)));
    let meta = serde_json::json!({
        "telemetry_rows": ds.telemetry.len(),
        "errors": ds.errors.len(),
        "maint": ds.maint.len(),
        "failures": ds.failures.len(),
        "machines": ds.machines.len(),
        "dropped_rows": report.dropped_rows.len(),
    });
    Ok(out.write_artifact("Dataset", concat!("pm-ingest ", env!("CARGO_PKG_VERSION")), files, meta).await?)
}

/// Loads a data set artifact written by `pm-ingest`.
pub async fn load_dataset(store: &Store) -> Result<Dataset> {
    let manifest = store.read_manifest().await.with_context(|| format!("opening the data set at {}", store.url()))?;
    let contract: Contract = serde_json::from_slice(&store.read_artifact_file(&manifest, "contract.json").await?)
        .context("contract.json")?;
    let mut files = std::collections::HashMap::new();
    for name in ["telemetry.parquet", "errors.parquet", "maint.parquet", "failures.parquet", "machines.parquet"] {
        files.insert(name, store.read_artifact_file(&manifest, name).await?);
    }
    let ds = tokio::task::spawn_blocking(move || {
        table::dataset_from_parquet(&contract, |name| {
            files.get(name).cloned().ok_or_else(|| anyhow::anyhow!("missing {name}"))
        })
    })
    .await??;
    Ok(ds)
}

/// The step: fetch, validate, write.
pub async fn run(args: &IngestArgs) -> Result<IngestSummary> {
    let pb = progress("ingest");
    let input = Store::open(&args.input_uri)?;
    let out = Store::open(&args.output_uri)?;
    let contract = args.contract().await?;
    pb.set_message(format!("reading {}", input.url()));
    let t0 = Instant::now();
    let files = fetch_inputs(&input, &contract).await?;
    let read_secs = t0.elapsed().as_secs_f64();
    pb.set_message("validating");
    let t1 = Instant::now();
    let opts = ReadOptions {
        strict_columns: args.strict_columns,
        on_missing: args.on_missing,
        ..ReadOptions::new(args.on_bad_rows)
    };
    let (ds, report) = tokio::task::spawn_blocking(move || validate(&files, &contract, &opts)).await??;
    let validate_secs = t1.elapsed().as_secs_f64();
    for r in report.files.values().filter(|r| !r.ignored_columns.is_empty()) {
        tracing::warn!(file = %r.name, columns = %r.ignored_columns.join(", "), "Ignored columns the contract does not name.");
    }
    pb.set_message(format!("writing {}", out.url()));
    let t2 = Instant::now();
    let manifest = write_dataset(&out, &ds, &report).await?;
    let write_secs = t2.elapsed().as_secs_f64();
    if let Some(path) = &args.report_path {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    pm_core::cli::write_output_parameter(args.rows_output_file.as_deref(), ds.telemetry.len())?;
    pb.finish_and_clear();
    let summary = IngestSummary {
        output_uri: out.url().to_string(),
        content_hash: manifest.content_hash(),
        report,
        read_secs,
        validate_secs,
        write_secs,
    };
    let f = |k: &str| summary.report.files.get(k).map_or(0, |r| r.rows_kept);
    let exact_duplicates: u64 = summary.report.files.values().map(|r| r.exact_duplicate_rows).sum();
    tracing::info!(
        telemetry = f("telemetry"),
        errors = f("errors"),
        maint = f("maint"),
        failures = f("failures"),
        machines = f("machines"),
        dropped = summary.report.dropped_rows.len(),
        exact_duplicates,
        "Ingested and validated the data set."
    );
    println!(
        "ingest: {} telemetry rows, {} errors, {} maintenance records, {} failures, {} machines; {} rows dropped, {} exact duplicates removed; read {:.2} s, validate {:.2} s, write {:.2} s -> {}",
        thousands(f("telemetry")),
        thousands(f("errors")),
        thousands(f("maint")),
        thousands(f("failures")),
        thousands(f("machines")),
        summary.report.dropped_rows.len(),
        thousands(exact_duplicates),
        read_secs,
        validate_secs,
        write_secs,
        summary.output_uri
    );
    Ok(summary)
}
