//! `pm-datagen --sensor-scale`: a drifted batch for monitoring drills, and its refusals; the log
//! of a step binary writing to a pipe.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn datagen(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pm-datagen"))
        .args(["--machines", "3", "--hours", "200", "--output-uri", out.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap()
}

fn column(path: &std::path::Path, name: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(path.join("PdM_telemetry.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let k = header.iter().position(|h| h.trim_matches('"') == name).unwrap();
    lines.map(|l| l.split(',').nth(k).unwrap().trim_matches('"').parse().unwrap()).collect()
}

#[test]
fn sensor_scale_multiplies_one_sensor_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, scaled) = (dir.path().join("plain"), dir.path().join("scaled"));
    assert!(datagen(&plain, &[]).status.success());
    assert!(datagen(&scaled, &["--sensor-scale", "volt=1.5"]).status.success());
    let (v0, v1) = (column(&plain, "volt"), column(&scaled, "volt"));
    assert_eq!(v0.len(), 600);
    // The CSV keeps the generator's precision: equal up to its rounding.
    assert!(v0.iter().zip(&v1).all(|(a, b)| (a * 1.5 - b).abs() < 1e-6 * b.abs().max(1.0)), "volt not scaled by 1.5");
    assert_eq!(column(&plain, "rotate"), column(&scaled, "rotate"));
    assert_eq!(
        std::fs::read(plain.join("PdM_failures.csv")).unwrap(),
        std::fs::read(scaled.join("PdM_failures.csv")).unwrap()
    );
}

#[test]
fn sensor_scale_refuses_unknown_sensors_and_bad_factors() {
    let dir = tempfile::tempdir().unwrap();
    let out = datagen(dir.path(), &["--sensor-scale", "voltage=1.1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--sensor-scale voltage: not a sensor of the data contract (volt, rotate, pressure, vibration)"),
        "{err}"
    );
    for (arg, msg) in
        [("volt=-1", "must be a positive number"), ("volt", "expected NAME=FACTOR"), ("volt=x", "is not a number")]
    {
        let out = datagen(dir.path(), &["--sensor-scale", arg]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(msg), "{arg}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Logs to a pipe (a file, CI, `podman logs`, Cloud Logging) are plain text: no terminal colour
/// codes, even with colours not turned off.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pm-datagen"))
        .args(["--machines", "2", "--hours", "48", "--output-uri", dir.path().to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INFO") && err.contains("Generated the data set."), "{err}");
    assert!(!err.contains('\x1b'), "colour codes in a piped log: {err:?}");
}

/// `PM_LOG_FORMAT=json`: every log line is one JSON object with Cloud Logging's `severity`,
/// `message` and `time`, and the event's fields typed; another format is refused.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_pm-datagen"))
            .args(["--machines", "2", "--hours", "48", "--output-uri", dir.path().to_str().unwrap()])
            .env("RUST_LOG", "info")
            .env("PM_LOG_FORMAT", format)
            .output()
            .unwrap()
    };
    let out = run("json");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let done = lines.iter().find(|l| l["message"] == "Generated the data set.").expect("the generator's log line");
    assert_eq!(done["severity"], "INFO");
    assert_eq!(done["machines"], 2);
    assert_eq!(done["hours"], 48);
    let time = done["time"].as_str().unwrap();
    assert!(time.len() == 27 && time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
    let out = run("xml");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(r#"PM_LOG_FORMAT="xml": expected text or json"#));
}

fn read_dir(dir: &std::path::Path) -> (pm_core::data::contract::Dataset, pm_core::data::ingest::ValidationReport) {
    use pm_core::data::contract::{Contract, FileKind};
    use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
    let files: Vec<(FileKind, Vec<u8>)> =
        FileKind::ALL.iter().map(|&k| (k, std::fs::read(dir.join(k.file_name())).unwrap())).collect();
    let inputs: Vec<InputFile<'_>> = files.iter().map(|(k, b)| InputFile::csv(*k, k.file_name(), b)).collect();
    read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap()
}

/// `--dup-rate` and `--shuffle` make a re-exported, unordered copy that reads back as the same
/// data set; `--missing-rate` leaves about that share of sensor values empty, and nothing else.
#[test]
fn messy_files_have_the_asked_mess_and_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (clean, messy, holes) = (dir.path().join("clean"), dir.path().join("messy"), dir.path().join("holes"));
    assert!(datagen(&clean, &[]).status.success());
    let out = datagen(&messy, &["--dup-rate", "0.05", "--shuffle"]);
    assert!(out.status.success());
    let said = String::from_utf8_lossy(&out.stdout);
    let (ds_clean, _) = read_dir(&clean);
    let (ds_messy, rep) = read_dir(&messy);
    assert_eq!(ds_messy, ds_clean);
    let t = &rep.files["telemetry"];
    assert!(t.out_of_order_rows > 100, "shuffled: {}", t.out_of_order_rows);
    assert!((10..60).contains(&t.exact_duplicate_rows), "5 % of 600 rows: {}", t.exact_duplicate_rows);
    let total: u64 = rep.files.values().map(|f| f.exact_duplicate_rows).sum();
    assert!(said.contains(&format!("0 sensor values left empty, {total} rows written twice, rows shuffled")), "{said}");

    assert!(datagen(&holes, &["--missing-rate", "0.1"]).status.success());
    let text = std::fs::read_to_string(holes.join("PdM_telemetry.csv")).unwrap();
    let clean_text = std::fs::read_to_string(clean.join("PdM_telemetry.csv")).unwrap();
    let mut empty = 0;
    for (a, b) in text.lines().zip(clean_text.lines()).skip(1) {
        for (i, (x, y)) in a.split(',').zip(b.split(',')).enumerate() {
            if x.is_empty() {
                assert!(i >= 2, "only sensor values are emptied: {a}");
                empty += 1;
            } else {
                assert_eq!(x, y);
            }
        }
    }
    assert!((150..330).contains(&empty), "10 % of 2,400 sensor values: {empty}");
    for file in ["PdM_errors.csv", "PdM_machines.csv"] {
        assert_eq!(std::fs::read(holes.join(file)).unwrap(), std::fs::read(clean.join(file)).unwrap());
    }
    let bad = datagen(&holes, &["--dup-rate", "2"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--dup-rate must be between 0 and 1, got 2"));
}

/// `--contract`: another fleet's files under the contract's names, columns, sensors and cadence,
/// read back by the same contract without a bad row.
#[test]
fn a_contract_gives_a_fleet_in_its_shape() {
    use pm_core::data::contract::{Contract, FileKind};
    use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
    let dir = tempfile::tempdir().unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples/compressor-fleet.yaml");
    let out = datagen(dir.path(), &["--contract", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let contract = Contract::parse(&std::fs::read(&path).unwrap(), "compressor-fleet.yaml").unwrap();
    let texts: Vec<(FileKind, Vec<u8>)> =
        FileKind::ALL.iter().map(|&k| (k, std::fs::read(dir.path().join(contract.file_name(k))).unwrap())).collect();
    let header = String::from_utf8_lossy(&texts[0].1).lines().next().unwrap().to_string();
    assert_eq!(
        header,
        "\"timestamp\",\"unit_id\",\"discharge_pressure\",\"discharge_temp\",\"motor_current\",\"oil_pressure\",\"vibration_rms\",\"ambient_temp\""
    );
    let files: Vec<InputFile<'_>> = texts.iter().map(|(k, b)| InputFile::csv(*k, contract.file_name(*k), b)).collect();
    let (ds, rep) = read_dataset(&files, &contract, &ReadOptions::new(BadRowPolicy::Fail)).unwrap();
    assert_eq!(ds.telemetry.len(), 3 * 200 * 6, "200 hours of 10-minute readings for 3 machines");
    assert_eq!((rep.gaps.cadence_secs, rep.gaps.gaps), (600, 0));
    assert!(!ds.failures.is_empty() && ds.failures.kind.iter().all(|&k| usize::from(k) < 3));
    for (s, sensor) in contract.sensors.iter().enumerate() {
        assert!(ds.telemetry.sensors[s].iter().all(|&x| sensor.admits(x)), "{} within its bounds", sensor.name);
    }
    let parquet = dir.path().join("parquet.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace("path: units.csv", "path: units.parquet");
    std::fs::write(&parquet, text).unwrap();
    let out = datagen(&dir.path().join("p"), &["--contract", parquet.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pm-datagen writes CSV files; the contract's machines file units.parquet is Parquet"),
        "{err}"
    );
    let out = datagen(dir.path(), &["--contract", "/no/such/contract.yaml"]);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/contract.yaml"));
}
