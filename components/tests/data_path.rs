//! ingest → features through the store, on a local folder, the memory store and a real S3
//! server; artifacts must round-trip exactly and equal a direct in-memory computation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use clap::Parser;
use pm_components::features::{self, FeaturesArgs, load_features};
use pm_components::ingest::{self, IngestArgs, load_dataset};
use pm_core::artifacts::store::Store;
use pm_core::data::contract::{Contract, FileKind};
use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
use pm_core::features::{FeatureSet, FeatureSpec, compute_batch};
use pm_local_sim::generate::{GenConfig, generate};
use pm_local_sim::messy::{self, Mess};

fn roots(test: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap().keep();
    let s3 = std::env::var("PM_TEST_S3_URL")
        .unwrap_or_else(|_| panic!("PM_TEST_S3_URL is not set: run the tests with `make test`"));
    let unique = format!("{test}-{}-{}", std::process::id(), pm_core::data::time::now().0);
    vec![dir.display().to_string(), format!("memory://{unique}"), format!("{s3}/{unique}")]
}

async fn write_raw(root: &Store, cfg: &GenConfig) -> Vec<(FileKind, Vec<u8>)> {
    write_raw_messy(root, cfg, &Mess::none(0)).await
}

/// The generated files, made as messy as `mess` says.
async fn write_raw_messy(root: &Store, cfg: &GenConfig, mess: &Mess) -> Vec<(FileKind, Vec<u8>)> {
    let ds = generate(cfg);
    let mut out = Vec::new();
    for kind in FileKind::ALL {
        let sensors: Vec<usize> = if kind == FileKind::Telemetry { (2..6).collect() } else { Vec::new() };
        let (text, _) = messy::apply(&pm_core::data::csv::write::file(&ds, kind), &sensors, mess, kind as u64);
        root.put(&format!("raw/{}", kind.file_name()), Bytes::from(text.clone())).await.unwrap();
        out.push((kind, text));
    }
    out
}

/// Field data: 3 % of sensor values empty, 1 % of rows twice, rows shuffled. Missing values are
/// nulls in the data set artifact and come back as missing, bit for bit otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_then_features_round_trip_on_every_backend() {
    let cfg = GenConfig { machines: 6, hours: 24 * 40, ..GenConfig::azure_default() };
    let mess = Mess { missing_rate: 0.03, dup_rate: 0.01, shuffle: true, seed: 5 };
    for root_url in roots("datapath") {
        let root = Store::open(&root_url).unwrap();
        let raw = write_raw_messy(&root, &cfg, &mess).await;

        let ingest_args = IngestArgs::parse_from([
            "pm-ingest",
            "--input-uri",
            &root.url_of("raw"),
            "--output-uri",
            &root.url_of("dataset"),
        ]);
        let summary = ingest::run(&ingest_args).await.unwrap();
        assert!(summary.report.dropped_rows.is_empty());

        // The artifact equals a direct read of the same bytes.
        let inputs: Vec<InputFile<'_>> =
            raw.iter().map(|(k, t)| InputFile { kind: *k, name: k.file_name(), data: t }).collect();
        let (direct, _) = read_dataset(&inputs, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap();
        let loaded = load_dataset(&root.join("dataset")).await.unwrap();
        // `Debug` prints a missing value as NaN, so this is equality with NaN equal to NaN.
        assert_eq!(format!("{loaded:?}"), format!("{direct:?}"), "{root_url}");
        let missing = summary.report.missing_values.values;
        assert!(missing > 500, "about 3 % of 23,040 values: {missing}");
        let nans: usize = loaded.telemetry.sensors.iter().map(|c| c.iter().filter(|v| v.is_nan()).count()).sum();
        assert_eq!(nans as u64, missing);

        let fargs = FeaturesArgs::parse_from([
            "pm-features",
            "--input-uri",
            &root.url_of("dataset"),
            "--output-uri",
            &root.url_of("features"),
            "--feature-set",
            "rich",
            "--label-horizon-hours",
            "48",
        ]);
        let fsum = features::run(&fargs).await.unwrap();
        let art = load_features(&root.join("features")).await.unwrap();
        let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 48);
        assert_eq!(art.spec, spec);
        let expected = compute_batch(&spec, &direct);
        // Bit-for-bit, NaN included.
        assert_eq!(art.table.names, expected.names);
        for (a, b) in art.table.columns.iter().zip(&expected.columns) {
            assert!(a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()), "{root_url}");
        }
        assert_eq!(art.table.label, expected.label);
        assert_eq!(art.table.label_component, expected.label_component);
        assert_eq!(art.failures, direct.failures);
        assert_eq!(fsum.rows, direct.telemetry.len());
        assert_eq!(art.manifest.content_hash(), fsum.content_hash);
    }
}

#[tokio::test]
async fn ingest_reports_and_drops_bad_rows_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let root = Store::open(dir.path().to_str().unwrap()).unwrap();
    let cfg = GenConfig { machines: 2, hours: 48, ..GenConfig::azure_default() };
    write_raw(&root, &cfg).await;
    let mut text = root.get("raw/PdM_telemetry.csv").await.unwrap().to_vec();
    text.extend_from_slice(b"2015-01-01 06:00:00,1,NaN,1,1,1\n");
    root.put("raw/PdM_telemetry.csv", Bytes::from(text)).await.unwrap();

    let args = |policy: &str| {
        IngestArgs::parse_from([
            "pm-ingest",
            "--input-uri",
            &root.url_of("raw"),
            "--output-uri",
            &root.url_of(&format!("dataset-{policy}")),
            "--on-bad-rows",
            policy,
            "--report-path",
            dir.path().join(format!("report-{policy}.json")).to_str().unwrap(),
        ])
    };
    let err = ingest::run(&args("fail")).await.unwrap_err();
    let expected =
        format!("{}: line 98, column 3 'volt': non-finite value \"NaN\"", root.url_of("raw/PdM_telemetry.csv"));
    assert_eq!(format!("{err:#}"), expected);
    assert!(!root.join("dataset-fail").exists("_manifest.json").await.unwrap(), "no artifact on failure");

    let s = ingest::run(&args("drop")).await.unwrap();
    assert_eq!(s.report.dropped_rows.len(), 1);
    assert_eq!(s.report.dropped_rows[0].line, 98);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("report-drop.json")).unwrap()).unwrap();
    assert_eq!(on_disk["dropped_rows"][0]["reason"], "non-finite value \"NaN\"");
}

#[tokio::test]
async fn ingest_ignores_an_unknown_column_unless_strict_columns() {
    let dir = tempfile::tempdir().unwrap();
    let root = Store::open(dir.path().to_str().unwrap()).unwrap();
    let cfg = GenConfig { machines: 2, hours: 24, ..GenConfig::azure_default() };
    write_raw(&root, &cfg).await;
    let text = root.get("raw/PdM_machines.csv").await.unwrap();
    let with_site: String = String::from_utf8(text.to_vec())
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{l},{}\n", if i == 0 { "site" } else { "north" }))
        .collect();
    root.put("raw/PdM_machines.csv", Bytes::from(with_site)).await.unwrap();
    let args = |out: &str, extra: &[&str]| {
        let mut a = vec!["pm-ingest", "--input-uri"];
        let (input, output) = (root.url_of("raw"), root.url_of(out));
        a.extend([input.as_str(), "--output-uri", output.as_str()]);
        a.extend(extra);
        IngestArgs::parse_from(a)
    };
    let s = ingest::run(&args("lenient", &[])).await.unwrap();
    assert_eq!(s.report.files["machines"].ignored_columns, vec!["site".to_string()]);
    let s = ingest::run(&args("explicit", &["--strict-columns=false"])).await.unwrap();
    assert_eq!(s.report.files["machines"].rows_kept, 2);
    for strict in [&["--strict-columns"][..], &["--strict-columns=true"]] {
        let err = ingest::run(&args("strict", strict)).await.unwrap_err();
        assert!(
            format!("{err:#}").ends_with(
                "line 1, column 4 'site': unexpected column; expected exactly machineID, model, age (--strict-columns)"
            ),
            "{err:#}"
        );
    }
}

fn pm_ingest(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pm-ingest")).args(args).output().unwrap()
}

/// `pm-ingest contract`: the default reads back as the built-in contract, the schema printed is
/// the committed one, a contract file is checked and summarised, and a bad one is bad input.
/// The real `jsonschema` validator (Python, installed by `make test`) accepts the default and the
/// example under the committed schema and refuses what the parser refuses.
#[test]
fn the_contract_command_and_its_json_schema() {
    let out = pm_ingest(&["contract", "--print-default"]);
    assert!(out.status.success());
    assert_eq!(Contract::parse(&out.stdout, "stdout").unwrap(), Contract::azure_pdm());
    let schema_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/contract.schema.json");
    let out = pm_ingest(&["contract", "--print-schema"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), std::fs::read_to_string(&schema_path).unwrap());
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples/compressor-fleet.yaml");
    let out = pm_ingest(&["contract", "--check", example.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("contract compressor-fleet: 6 sensors (discharge_pressure, "), "{text}");
    assert!(
        text.contains("cadence 10m") && text.contains("machines  units.csv (csv): unit_id, type, age_years"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "sensors: [a, a]\nerror_types: []\ncomponents: [c]\nmodels: [m]\ncadence: 5 min\n").unwrap();
    let out = pm_ingest(&["contract", "--check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml") && err.contains("cadence \"5 min\""), "{err}");
    let out = pm_ingest(&[
        "--input-uri",
        "x",
        "--output-uri",
        dir.path().join("o").to_str().unwrap(),
        "--contract",
        "/no/such.yaml",
    ]);
    assert_eq!(
        out.status.code(),
        Some(i32::from(pm_core::cli::exit::BAD_INPUT)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let python = std::env::var("PM_OPENAPI_PYTHON").unwrap_or_else(|_| {
        panic!("PM_OPENAPI_PYTHON is not set: run the tests with `make test`, which installs jsonschema")
    });
    let default_json = dir.path().join("default.json");
    std::fs::write(&default_json, serde_json::to_vec(&Contract::azure_pdm()).unwrap()).unwrap();
    let example_json = dir.path().join("example.json");
    let example_contract = Contract::parse(&std::fs::read(&example).unwrap(), "example").unwrap();
    std::fs::write(&example_json, serde_json::to_vec(&example_contract).unwrap()).unwrap();
    let refused = [
        r#"{"sensors": ["a"], "error_types": [], "components": ["c"], "models": ["m"], "cadence": "5 min"}"#,
        r#"{"sensors": ["a"], "error_types": [], "components": [], "models": ["m"]}"#,
        r#"{"sensors": [{"name": "a", "maximum": 3}], "error_types": [], "components": ["c"], "models": ["m"]}"#,
        r#"{"sensors": ["a"], "error_types": [], "components": ["c"], "models": ["m"], "files": {"telemetry": {"path": "t", "format": "xlsx"}}}"#,
        r#"{"sensors": ["a"], "error_types": [], "components": ["c"], "models": ["m"], "datetime_forms": []}"#,
        r#"{"sensors": ["a"], "error_types": [], "components": ["c"], "models": ["m"], "units": 1}"#,
    ];
    let mut paths = vec![default_json.display().to_string(), example_json.display().to_string()];
    for (i, text) in refused.iter().enumerate() {
        assert!(Contract::parse(text.as_bytes(), "refused").is_err(), "the parser accepts {text}");
        let p = dir.path().join(format!("refused{i}.json"));
        std::fs::write(&p, text).unwrap();
        paths.push(p.display().to_string());
    }
    let script = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        v = jsonschema.Draft202012Validator(schema)\n\
        print(' '.join('ok' if v.is_valid(json.load(open(p))) else 'refused' for p in sys.argv[2:]))\n";
    let out = std::process::Command::new(python).arg("-c").arg(script).arg(&schema_path).args(&paths).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut want = vec!["ok", "ok"];
    want.extend(std::iter::repeat_n("refused", refused.len()));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.join(" "));
}
