//! `make bench-features`: ingest + features on the full default data set, measured in fresh child
//! processes (wall time, rows/s, peak RSS), next to the seed's pandas computation run by
//! `scripts/bench-features.sh`, which passes its timings in.
//!
//! The messy line: the same data with 2 % of the sensor values empty, 0.5 % of the rows written
//! twice and every file shuffled, read with the default settings, against the clean read; then
//! the training pipeline with its defaults on both, to compare their test ROC AUC.
//!
//! Usage (the script does this): `features --bin-dir target/debug --pandas-json FILE`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pm_core::data::contract::{Contract, FileKind};
use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
use pm_core::features::{FeatureSet, FeatureSpec, compute_batch};
use pm_local_sim::generate::{GenConfig, generate};
use pm_local_sim::messy::{self, Mess};
use serde_json::{Value, json};

#[path = "support/proc.rs"]
mod proc_stats;
use proc_stats::*;

/// Child: CSV bytes (already in memory) → validated data set → features + labels; or, in mode
/// `drop`, only the read under `--on-bad-rows drop` (what a dropped row costs).
fn child(mode: &str, dir: &Path) {
    if mode == "ingest" {
        let files = read_files(dir);
        let t0 = Instant::now();
        let inputs: Vec<InputFile<'_>> = files.iter().map(|(k, b)| InputFile::csv(*k, k.file_name(), b)).collect();
        let (ds, rep) = read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap();
        let exact: u64 = rep.files.values().map(|f| f.exact_duplicate_rows).sum();
        println!(
            "{}",
            json!({"ingest_s": t0.elapsed().as_secs_f64(), "rows": ds.telemetry.len(), "exact_duplicates": exact,
                   "missing_values": rep.missing_values.values})
        );
        return;
    }
    if mode == "drop" {
        let files = read_files(dir);
        let t0 = Instant::now();
        let inputs: Vec<InputFile<'_>> = files.iter().map(|(k, b)| InputFile::csv(*k, k.file_name(), b)).collect();
        let (_, rep) = read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Drop)).unwrap();
        println!("{}", json!({"ingest_s": t0.elapsed().as_secs_f64(), "dropped": rep.dropped_rows.len()}));
        return;
    }
    let (set, horizon) = match mode {
        "rich24" => (FeatureSet::Rich, 24),
        "seed72" => (FeatureSet::Seed, 72),
        other => panic!("unknown mode {other}"),
    };
    let files = read_files(dir);
    let t0 = Instant::now();
    let inputs: Vec<InputFile<'_>> = files.iter().map(|(k, b)| InputFile::csv(*k, k.file_name(), b)).collect();
    let (ds, _) = read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap();
    let ingest_s = t0.elapsed().as_secs_f64();
    let spec = FeatureSpec::new(set, ds.contract.clone(), horizon);
    let t1 = Instant::now();
    let table = compute_batch(&spec, &ds);
    let features_s = t1.elapsed().as_secs_f64();
    let positives = table.label.iter().filter(|&&l| l == 1).count();
    println!(
        "{}",
        json!({"ingest_s": ingest_s, "features_s": features_s, "rows": table.n_rows(), "features": spec.n_features(),
               "positives": positives, "peak_rss_mb": peak_rss_mb()})
    );
}

fn read_files(dir: &Path) -> Vec<(FileKind, Vec<u8>)> {
    FileKind::ALL.iter().map(|&k| (k, std::fs::read(dir.join(k.file_name())).unwrap())).collect()
}

/// A copy of `raw` whose telemetry has `n` bad rows (a volt that is not a number), spread evenly.
fn with_bad_rows(raw: &Path, out: &Path, n: usize) {
    std::fs::create_dir_all(out).unwrap();
    for kind in FileKind::ALL {
        std::fs::copy(raw.join(kind.file_name()), out.join(kind.file_name())).unwrap();
    }
    let name = FileKind::Telemetry.file_name();
    let text = std::fs::read_to_string(raw.join(name)).unwrap();
    let rows = text.lines().count() - 1;
    let every = rows / n;
    let mut bad = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 && i % every == 0 && i / every <= n {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields[2] = "volt?";
            bad.push_str(&fields.join(","));
        } else {
            bad.push_str(line);
        }
        bad.push('\n');
    }
    std::fs::write(out.join(name), bad).unwrap();
}

/// A copy of `raw` as a field export looks: `--missing-rate 0.02 --dup-rate 0.005 --shuffle`.
fn messy_copy(raw: &Path, out: &Path) {
    let mess = Mess { missing_rate: 0.02, dup_rate: 0.005, shuffle: true, seed: 42 };
    std::fs::create_dir_all(out).unwrap();
    for kind in FileKind::ALL {
        let text = std::fs::read(raw.join(kind.file_name())).unwrap();
        let sensors = messy::sensor_columns(&Contract::azure_pdm(), kind);
        let (text, _) = messy::apply(&text, &sensors, &mess, kind as u64);
        std::fs::write(out.join(kind.file_name()), text).unwrap();
    }
}

/// The training pipeline with its default parameters on the raw files in `data`: its test ROC AUC
/// and wall time.
fn pipeline_roc_auc(bin_dir: &Path, data: &Path, root: &Path, params: &[&str]) -> (f64, f64) {
    let pipeline = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/training.yaml");
    let id_file = root.with_extension("run-id");
    let t = Instant::now();
    let out = Command::new(bin_dir.join("pm-orchestrator"))
        .arg("run")
        .arg(&pipeline)
        .args(["--root", root.to_str().unwrap(), "--bin-dir", bin_dir.to_str().unwrap()])
        .args(["--param", &format!("data_uri={}", data.display())])
        .args(["--param", &format!("registry_uri={}", root.join("registry").display())])
        .args(["--run-id-output-file", id_file.to_str().unwrap()])
        .args(params.iter().flat_map(|p| ["--param", p]))
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "the pipeline on {}: {}", data.display(), String::from_utf8_lossy(&out.stderr));
    let secs = t.elapsed().as_secs_f64();
    let id = std::fs::read_to_string(&id_file).unwrap();
    let record: Value =
        serde_json::from_slice(&std::fs::read(root.join("runs").join(id.trim()).join("run.json")).unwrap()).unwrap();
    let auc = record["steps"]["evaluate"]["outputs"]["roc_auc"]["value"].as_f64().unwrap();
    (auc, secs)
}

fn run_child(mode: &str, dir: &Path) -> Value {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).args(["--child", mode, dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The best (minimum-time) of `n` runs: the machine is shared, the minimum is the least disturbed.
fn best_of(n: usize, mut f: impl FnMut() -> Value, key: &str) -> Value {
    (0..n).map(|_| f()).min_by(|a, b| a[key].as_f64().unwrap().total_cmp(&b[key].as_f64().unwrap())).unwrap()
}

fn step_wall(bin: &Path, args: &[&str]) -> f64 {
    let t = Instant::now();
    let out = Command::new(bin).args(args).env("RUST_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1], Path::new(&args[i + 2]));
        return;
    }
    let arg = |name: &str| args.iter().position(|a| a == name).map(|i| args[i + 1].clone());
    let bin_dir = PathBuf::from(arg("--bin-dir").unwrap_or_else(|| "target/debug".into()));
    let pandas: Option<Value> =
        arg("--pandas-json").map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap());

    let work = tempfile::tempdir().unwrap();
    let raw = work.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let ds = generate(&GenConfig::azure_default());
    for kind in FileKind::ALL {
        std::fs::write(raw.join(kind.file_name()), pm_core::data::csv::write::file(&ds, kind)).unwrap();
    }
    let rows = ds.telemetry.len() as f64;
    drop(ds);

    let bad = work.path().join("bad");
    with_bad_rows(&raw, &bad, 100_000);
    let drop_none = best_of(3, || run_child("drop", &raw), "ingest_s");
    let drop_100k = best_of(3, || run_child("drop", &bad), "ingest_s");
    assert_eq!(drop_100k["dropped"], 100_000);

    let messy = work.path().join("messy");
    messy_copy(&raw, &messy);
    // Clean and messy reads alternate, best of 5 each: this shared machine's speed drifts over a
    // minute by more than the difference measured (the same clean read took 0.20 and 0.32 s in one
    // run when the two were measured one after the other).
    let pairs: Vec<(Value, Value)> = (0..5).map(|_| (run_child("ingest", &raw), run_child("ingest", &messy))).collect();
    let best = |side: fn(&(Value, Value)) -> &Value| {
        pairs
            .iter()
            .map(side)
            .min_by(|a, b| a["ingest_s"].as_f64().unwrap().total_cmp(&b["ingest_s"].as_f64().unwrap()))
            .unwrap()
            .clone()
    };
    let (clean_ingest, messy_ingest) = (best(|p| &p.0), best(|p| &p.1));
    let (clean_auc, clean_pipeline_s) = pipeline_roc_auc(&bin_dir, &raw, &work.path().join("clean-run"), &[]);
    let (messy_auc, messy_pipeline_s) = pipeline_roc_auc(&bin_dir, &messy, &work.path().join("messy-run"), &[]);
    // The telemetry features alone, which the missing values touch (the default's error counts
    // separate this data set's failures on their own).
    let seed_only = ["feature_set=seed"];
    let (clean_seed_auc, _) = pipeline_roc_auc(&bin_dir, &raw, &work.path().join("clean-seed"), &seed_only);
    let (messy_seed_auc, _) = pipeline_roc_auc(&bin_dir, &messy, &work.path().join("messy-seed"), &seed_only);

    let rich = best_of(3, || run_child("rich24", &raw), "features_s");
    let seed = best_of(3, || run_child("seed72", &raw), "features_s");
    let e2e_ingest = (0..3)
        .map(|_| {
            step_wall(
                &bin_dir.join("pm-ingest"),
                &["--input-uri", raw.to_str().unwrap(), "--output-uri", work.path().join("dataset").to_str().unwrap()],
            )
        })
        .fold(f64::INFINITY, f64::min);
    let e2e_features = (0..3)
        .map(|_| {
            step_wall(
                &bin_dir.join("pm-features"),
                &[
                    "--input-uri",
                    work.path().join("dataset").to_str().unwrap(),
                    "--output-uri",
                    work.path().join("features").to_str().unwrap(),
                ],
            )
        })
        .fold(f64::INFINITY, f64::min);

    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    println!("bench-features: full default data ({} rows, 100 machines), 2 cores, best of 3", rows as u64);
    println!();
    println!("| measurement | wall s | rows/s | peak RSS MB |");
    println!("|---|---|---|---|");
    let line = |name: &str, secs: f64, rss: f64| {
        println!(
            "| {name} | {secs:.3} | {:.2e} | {} |",
            rows / secs,
            if rss.is_nan() { "-".into() } else { format!("{rss:.0}") }
        );
    };
    line("ours: CSV parse + validate (5 files, in memory)", f(&rich, "ingest_s"), f64::NAN);
    line(
        &format!("ours: rich features + 24 h labels ({} features)", f(&rich, "features")),
        f(&rich, "features_s"),
        f(&rich, "peak_rss_mb"),
    );
    line(
        &format!("ours: seed features + 72 h labels ({} features)", f(&seed, "features")),
        f(&seed, "features_s"),
        f(&seed, "peak_rss_mb"),
    );
    line(
        "ours: ingest + rich features (kernel total)",
        f(&rich, "ingest_s") + f(&rich, "features_s"),
        f(&rich, "peak_rss_mb"),
    );
    line("ours: pm-ingest process, CSV -> Parquet artifact", e2e_ingest, f64::NAN);
    line("ours: parse + validate, --on-bad-rows drop, no bad row", f(&drop_none, "ingest_s"), f64::NAN);
    line("ours: parse + validate, --on-bad-rows drop, 100,000 rows dropped", f(&drop_100k, "ingest_s"), f64::NAN);
    line("ours: pm-features process, Parquet -> features artifact", e2e_features, f64::NAN);
    line("ours: parse + validate, default settings, clean files", f(&clean_ingest, "ingest_s"), f64::NAN);
    line(
        &format!(
            "ours: parse + validate, default settings, messy files ({} values missing, {} exact duplicates, shuffled)",
            messy_ingest["missing_values"], messy_ingest["exact_duplicates"]
        ),
        f(&messy_ingest, "ingest_s"),
        f64::NAN,
    );
    if let Some(p) = &pandas {
        line("seed (pandas): read_csv telemetry + failures", f(p, "read_s"), f64::NAN);
        line(&format!("seed (pandas): {} features + 72 h labels", f(p, "features")), f(p, "features_s"), f64::NAN);
        println!();
        println!("| ratio (seed pandas / ours) | value | target |");
        println!("|---|---|---|");
        println!(
            "| seed's 36 features + labels vs our rich 63 features + labels | {:.1}x | >= 30x |",
            f(p, "features_s") / f(&rich, "features_s")
        );
        println!(
            "| same 36 features + 72 h labels, like for like | {:.1}x | - |",
            f(p, "features_s") / f(&seed, "features_s")
        );
        println!(
            "| CSV to features in memory (read + features + labels) | {:.1}x | - |",
            (f(p, "read_s") + f(p, "features_s")) / (f(&rich, "ingest_s") + f(&rich, "features_s"))
        );
        println!("| positives: seed {} vs ours (72 h, time windows) {} | | |", p["positives"], seed["positives"]);
    }
    println!();
    println!("| training pipeline, default parameters | test ROC AUC | wall s |");
    println!("|---|---|---|");
    println!("| clean files | {clean_auc:.4} | {clean_pipeline_s:.1} |");
    println!("| messy files | {messy_auc:.4} | {messy_pipeline_s:.1} |");
    println!("| clean files, feature_set=seed (telemetry only) | {clean_seed_auc:.4} | |");
    println!("| messy files, feature_set=seed (telemetry only) | {messy_seed_auc:.4} | |");
    println!();
    let drop_cost = f(&drop_100k, "ingest_s") - f(&drop_none, "ingest_s");
    let messy_ratio = f(&messy_ingest, "ingest_s") / f(&clean_ingest, "ingest_s");
    let auc_gap = (clean_auc - messy_auc).abs();
    let seed_gap = (clean_seed_auc - messy_seed_auc).abs();
    println!(
        "targets: messy ingest {messy_ratio:.2}x the clean one (<= 1.5x): {}; messy test ROC AUC {auc_gap:.4} from the \
         clean one (<= 0.005): {} (telemetry features only: {seed_gap:.4})",
        if messy_ratio <= 1.5 { "met" } else { "NOT met" },
        if auc_gap <= 0.005 { "met" } else { "NOT met" }
    );
    println!(
        "targets: rich features <= 0.4 s: {}; peak RSS <= 1024 MB: {}; dropping 100,000 rows costs {drop_cost:.3} s \
         more than none (<= 0.3 s): {}",
        if f(&rich, "features_s") <= 0.4 { "met" } else { "NOT met" },
        if f(&rich, "peak_rss_mb") <= 1024.0 { "met" } else { "NOT met" },
        if drop_cost <= 0.3 { "met" } else { "NOT met" }
    );
}
