//! The real Azure PdM event files (errors, failures, maint, machines), read unchanged, and the
//! generator compared with them. Needs `PM_REAL_DATA_DIR` (run by `make test-real-data`); the real
//! telemetry file is not redistributable, so a generated one stands in beside the real events.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pm_core::data::contract::{Contract, FileKind};
use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
use pm_local_sim::generate::{GenConfig, generate};
use pm_local_sim::{stats, usformat};

fn real_files() -> Vec<(FileKind, Vec<u8>)> {
    let dir =
        std::env::var("PM_REAL_DATA_DIR").expect("set PM_REAL_DATA_DIR to the folder of the real PdM_*.csv files");
    let generated = generate(&GenConfig::azure_default());
    FileKind::ALL
        .iter()
        .map(|&k| {
            let bytes = if k == FileKind::Telemetry {
                pm_core::data::csv::write::file(&generated, k)
            } else {
                let path = std::path::Path::new(&dir).join(k.file_name());
                std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            };
            (k, bytes)
        })
        .collect()
}

fn read(files: &[(FileKind, Vec<u8>)]) -> (pm_core::data::contract::Dataset, pm_core::data::ingest::ValidationReport) {
    let inputs: Vec<InputFile<'_>> = files.iter().map(|(k, b)| InputFile::csv(*k, k.file_name(), b)).collect();
    read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap()
}

#[test]
fn the_real_event_files_read_unchanged_and_match_the_published_facts() {
    let (ds, report) = read(&real_files());
    assert_eq!(ds.errors.len(), 3_919);
    assert_eq!(ds.failures.len(), 761);
    assert_eq!(ds.maint.len(), 3_286);
    assert_eq!(ds.machines.len(), 100);
    assert!(report.dropped_rows.is_empty());
    // The constants the generator is calibrated against are the real files' numbers.
    let real = stats::compute(&ds);
    assert_eq!(real.errors_per_type, stats::facts::ERRORS_PER_TYPE);
    assert_eq!(real.failures_per_component, stats::facts::FAILURES_PER_COMPONENT);
    assert_eq!(real.model_counts, stats::facts::MODEL_COUNTS);
    assert!((real.age_mean - stats::facts::MEAN_AGE).abs() < 0.01);
    // The 400 maintenance records of 2014 are before the telemetry window: reported, kept.
    assert_eq!(report.events_outside_telemetry_range["maint"].before, 400);
    assert_eq!(real.maint_before_telemetry, 400);
}

#[test]
fn spreadsheet_datetimes_read_the_same_as_the_original() {
    let files = real_files();
    let us: Vec<(FileKind, Vec<u8>)> = files.iter().map(|(k, b)| (*k, usformat::iso_to_us(b))).collect();
    assert_ne!(us[1].1, files[1].1);
    assert_eq!(read(&us).0, read(&files).0);
}

#[test]
fn generated_event_statistics_are_close_to_the_real_files() {
    let (real_ds, _) = read(&real_files());
    let real = stats::compute(&real_ds);
    let generated = stats::compute(&generate(&GenConfig::azure_default()));
    let close = |a: f64, b: f64, rel: f64| (a - b).abs() <= rel * b;
    assert!(close(generated.failures as f64, real.failures as f64, 0.15));
    assert!(close(generated.errors as f64, real.errors as f64, 0.15));
    assert!(close(generated.maint as f64, real.maint as f64, 0.15));
    let (_, g_median, g_mean) = generated.days_since_replacement_at_failure;
    let (_, r_median, r_mean) = real.days_since_replacement_at_failure;
    assert!(close(g_median, r_median, 0.2) && close(g_mean, r_mean, 0.2), "{g_median}/{g_mean} vs {r_median}/{r_mean}");
    assert!(close(generated.failures_with_error_24h_before, real.failures_with_error_24h_before, 0.05));
    assert!((generated.age_failure_correlation - real.age_failure_correlation).abs() < 0.15);
    for h in 0..24 {
        let (g, r) = (generated.errors_by_hour[h] as f64, real.errors_by_hour[h] as f64);
        assert!(close(g, r, 0.35), "errors at {h:02}:00: generated {g}, real {r}");
    }
}
