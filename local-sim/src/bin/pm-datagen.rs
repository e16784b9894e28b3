//! `pm-datagen`: writes a synthetic Azure-PdM-shaped data set (the five CSV files, in the real
//! files' format) to any store URL; with `--contract`, a fleet in that contract's shape.

use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use pm_core::artifacts::store::Store;
use pm_core::cli::{progress, run_main, thousands};
use pm_core::data::contract::{Contract, FileKind};
use pm_core::data::time::Timestamp;
use pm_local_sim::fleet::generate_for;
use pm_local_sim::generate::{GenConfig, generate};
use pm_local_sim::messy::{self, Mess, MessCount};
use pm_local_sim::{stats, usformat};

/// Generate the five CSV files of a synthetic fleet, deterministically for a seed.
#[derive(Debug, Parser)]
#[command(name = "pm-datagen", version)]
struct Args {
    /// Folder (URL or local path) to write PdM_telemetry.csv, PdM_errors.csv, PdM_maint.csv,
    /// PdM_failures.csv and PdM_machines.csv to (with `--contract`, the contract's file names).
    #[arg(long)]
    output_uri: String,
    /// Generate a fleet for this data contract (YAML or JSON, path or URL) instead of the
    /// calibrated Azure one: its sensors, vocabularies, cadence, file and column names
    /// (`pm-local-sim`'s `fleet` module says how).
    #[arg(long, value_name = "FILE_OR_URL")]
    contract: Option<String>,
    #[arg(long, default_value_t = 100)]
    machines: u32,
    /// Hours of readings per machine (one reading an hour, or at the contract's cadence).
    #[arg(long, default_value_t = 8_761)]
    hours: u32,
    /// Time of the first reading.
    #[arg(long, default_value = "2015-01-01 06:00:00")]
    start: String,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Sensor noise multiplier (1 = calibrated to the real data).
    #[arg(long, default_value_t = 1.0)]
    noise: f64,
    /// Pre-failure sensor drift multiplier (0 = no telemetry signal, 1 = calibrated).
    #[arg(long, default_value_t = 1.0)]
    signal: f64,
    /// Datetime format of the files: `iso` (2015-01-01 06:00:00, the original) or `us`
    /// (1/1/2015 6:00:00 AM, as in spreadsheet-saved copies). Default: iso, or the first form
    /// the contract accepts.
    #[arg(long)]
    datetime_format: Option<String>,
    /// Multiply one sensor's readings after simulation, NAME=FACTOR (repeatable): a drifted
    /// batch for drill-testing monitoring, e.g. volt=1.15.
    #[arg(long = "sensor-scale", value_parser = parse_scale)]
    sensor_scales: Vec<(String, f64)>,
    /// Chance that each telemetry sensor value is written empty (a field export's gaps), 0..1.
    #[arg(long, default_value_t = 0.0)]
    missing_rate: f64,
    /// Chance that each data row of each file is written twice (a re-export), 0..1.
    #[arg(long, default_value_t = 0.0)]
    dup_rate: f64,
    /// Write the data rows of every file in a random order.
    #[arg(long)]
    shuffle: bool,
    /// Print the generated statistics beside the published facts of the real data set.
    #[arg(long)]
    stats: bool,
}

fn parse_scale(s: &str) -> Result<(String, f64), String> {
    let (name, f) = s.split_once('=').ok_or_else(|| format!("expected NAME=FACTOR, got {s:?}"))?;
    let f: f64 = f.trim().parse().map_err(|_| format!("{f:?} is not a number"))?;
    if !(f.is_finite() && f > 0.0) {
        return Err(format!("the factor of {name} must be a positive number, got {f}"));
    }
    Ok((name.trim().to_string(), f))
}

async fn run(args: Args) -> Result<()> {
    let start =
        Timestamp::parse(args.start.as_bytes()).map_err(|e| anyhow::anyhow!("--start {:?}: {e}", args.start))?;
    anyhow::ensure!(args.machines > 0 && args.hours > 0, "--machines and --hours must be positive");
    anyhow::ensure!(args.noise.is_finite() && args.noise >= 0.0, "--noise must be a finite number >= 0");
    anyhow::ensure!(args.signal.is_finite() && args.signal >= 0.0, "--signal must be a finite number >= 0");
    let mess =
        Mess { missing_rate: args.missing_rate, dup_rate: args.dup_rate, shuffle: args.shuffle, seed: args.seed };
    mess.check().map_err(anyhow::Error::msg)?;
    let contract = match &args.contract {
        Some(loc) => Some(Contract::load(loc).await.with_context(|| format!("loading the data contract {loc}"))?),
        None => None,
    };
    anyhow::ensure!(
        !(args.stats && contract.is_some()),
        "--stats compares with the Azure data set's published facts: it does not apply to --contract"
    );
    if let Some(c) = &contract
        && let Some(kind) =
            FileKind::ALL.into_iter().find(|&k| c.files.get(k).format() == pm_core::data::contract::FileFormat::Parquet)
    {
        let why = anyhow::anyhow!(
            "pm-datagen writes CSV files; the contract's {} file {} is Parquet (name it .csv to generate it)",
            kind.name(),
            c.file_name(kind)
        );
        return Err(pm_core::cli::BadInput(why).into());
    }
    let default_form = contract.as_ref().and_then(|c| c.datetime_forms.first()).map_or("iso", |f| f.name());
    let us = match args.datetime_format.as_deref().unwrap_or(default_form) {
        "iso" => false,
        "us" => true,
        other => anyhow::bail!("--datetime-format {other:?}: expected iso or us"),
    };
    let cfg = GenConfig {
        machines: args.machines,
        hours: args.hours,
        start,
        seed: args.seed,
        noise: args.noise,
        signal: args.signal,
    };
    let store = Store::open(&args.output_uri)?;
    let pb = progress("datagen");
    let t0 = Instant::now();
    pb.set_message(format!("simulating {} machines x {} hours", args.machines, args.hours));
    let mut ds = tokio::task::spawn_blocking(move || match contract {
        Some(c) => generate_for(&c, &cfg),
        None => generate(&cfg),
    })
    .await?;
    for (name, factor) in &args.sensor_scales {
        let Some(k) = ds.contract.sensor_index(name) else {
            anyhow::bail!(
                "--sensor-scale {name}: not a sensor of the data contract ({})",
                ds.contract.sensor_names().join(", ")
            );
        };
        for v in &mut ds.telemetry.sensors[k] {
            *v *= factor;
        }
    }
    let gen_secs = t0.elapsed().as_secs_f64();
    pb.set_message("formatting CSV");
    let t1 = Instant::now();
    let (ds, files, messed) = tokio::task::spawn_blocking(move || {
        let mut messed = MessCount::default();
        let files: Vec<(FileKind, Vec<u8>)> = FileKind::ALL
            .iter()
            .map(|&k| {
                let text = pm_core::data::csv::write::file(&ds, k);
                let (text, n) = messy::apply(&text, &messy::sensor_columns(&ds.contract, k), &mess, k as u64);
                messed.values_emptied += n.values_emptied;
                messed.rows_duplicated += n.rows_duplicated;
                (k, if us { usformat::iso_to_us(&text) } else { text })
            })
            .collect();
        (ds, files, messed)
    })
    .await?;
    let fmt_secs = t1.elapsed().as_secs_f64();
    pb.set_message(format!("writing {}", store.url()));
    let t2 = Instant::now();
    let mut bytes_total = 0;
    for (kind, text) in files {
        bytes_total += text.len();
        let name = ds.contract.file_name(kind);
        store.put(name, Bytes::from(text)).await.with_context(|| format!("writing {name}"))?;
    }
    let write_secs = t2.elapsed().as_secs_f64();
    pb.finish_and_clear();
    tracing::info!(machines = args.machines, hours = args.hours, seed = args.seed, "Generated the data set.");
    println!(
        "datagen: {} telemetry rows, {} errors, {} maintenance records, {} failures, {} machines ({:.1} MB) in {:.2} s (simulate {:.2} s, format {:.2} s, write {:.2} s) -> {}",
        thousands(ds.telemetry.len() as u64),
        thousands(ds.errors.len() as u64),
        thousands(ds.maint.len() as u64),
        thousands(ds.failures.len() as u64),
        ds.machines.len(),
        bytes_total as f64 / 1e6,
        t0.elapsed().as_secs_f64(),
        gen_secs,
        fmt_secs,
        write_secs,
        store.url()
    );
    if !mess.is_none() {
        println!(
            "datagen: made messy: {} sensor values left empty, {} rows written twice{}",
            thousands(messed.values_emptied),
            thousands(messed.rows_duplicated),
            if mess.shuffle { ", rows shuffled" } else { "" }
        );
    }
    if args.stats {
        print!("{}", stats::comparison_table(&stats::compute(&ds)));
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    run_main("pm-datagen", run(args))
}
