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
        let sensors = messy::sensor_columns(&ds.contract, kind);
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
        let inputs: Vec<InputFile<'_>> = raw.iter().map(|(k, t)| InputFile::csv(*k, k.file_name(), t)).collect();
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

mod parquet_inputs {
    use super::*;
    use pm_core::data::ingest::{DataError, ValidationReport};
    use polars::prelude::{Column, DataFrame, Int64Chunked, IntoColumn, ParquetWriter, TimeUnit};

    fn times(secs: &[i64]) -> Column {
        let ms: Vec<i64> = secs.iter().map(|s| s * 1000).collect();
        Int64Chunked::from_vec("datetime".into(), ms).into_datetime(TimeUnit::Milliseconds, None).into_column()
    }

    fn parquet(cols: Vec<Column>) -> Bytes {
        let mut df = DataFrame::new_infer_height(cols).unwrap();
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
        Bytes::from(buf)
    }

    /// The data set's five tables as Parquet files with the contract's column names, typed as a
    /// warehouse exports them (timestamps, 64-bit ids and ages, strings).
    fn tables(ds: &pm_core::data::contract::Dataset) -> Vec<(FileKind, Vec<Column>)> {
        let c = &ds.contract;
        let t = &ds.telemetry;
        let ids = |v: &[u32]| Column::new("machineID".into(), v.iter().map(|&m| i64::from(m)).collect::<Vec<_>>());
        let mut tel = vec![times(&t.time), ids(&t.machine)];
        for (s, col) in c.sensors.iter().zip(&t.sensors) {
            tel.push(Column::new(s.name.as_str().into(), col.clone()));
        }
        let mut out = vec![(FileKind::Telemetry, tel)];
        for kind in [FileKind::Errors, FileKind::Maint, FileKind::Failures] {
            let ev = ds.events(kind).unwrap();
            let vocab = c.vocabulary(kind);
            let labels: Vec<&str> = ev.kind.iter().map(|&k| vocab[usize::from(k)].as_str()).collect();
            let label = c.columns(kind)[2].clone();
            out.push((kind, vec![times(&ev.time), ids(&ev.machine), Column::new(label.as_str().into(), labels)]));
        }
        let m = &ds.machines;
        let models: Vec<&str> = m.model.iter().map(|&k| c.models[usize::from(k)].as_str()).collect();
        let ages: Vec<i64> = m.age.iter().map(|&a| a as i64).collect();
        out.push((
            FileKind::Machines,
            vec![ids(&m.id), Column::new("model".into(), models), Column::new("age".into(), ages)],
        ));
        out
    }

    fn contract() -> Contract {
        let mut c = Contract::azure_pdm();
        for kind in FileKind::ALL {
            c.files.get_mut(kind).path = format!("PdM_{}.parquet", kind.name());
        }
        c
    }

    fn read(
        tables: &[(FileKind, Vec<Column>)],
        policy: BadRowPolicy,
    ) -> anyhow::Result<(pm_core::data::contract::Dataset, ValidationReport)> {
        let c = contract();
        let files: Vec<(FileKind, String, Bytes)> =
            tables.iter().map(|(k, cols)| (*k, c.file_name(*k).to_string(), parquet(cols.clone()))).collect();
        ingest::validate(&files, &c, &ReadOptions::new(policy))
    }

    fn err(tables: &[(FileKind, Vec<Column>)]) -> String {
        let e = read(tables, BadRowPolicy::Fail).unwrap_err();
        assert!(
            e.downcast_ref::<DataError>().is_some() || e.downcast_ref::<pm_core::cli::BadInput>().is_some(),
            "{e:#}"
        );
        assert_eq!(pm_core::cli::exit_code_for(&e), pm_core::cli::exit::BAD_INPUT, "{e:#}");
        e.to_string()
    }

    /// Replaces column `name` of `kind`'s table.
    fn with(mut t: Vec<(FileKind, Vec<Column>)>, kind: FileKind, col: Column) -> Vec<(FileKind, Vec<Column>)> {
        let cols = &mut t.iter_mut().find(|(k, _)| *k == kind).unwrap().1;
        match cols.iter().position(|c| c.name() == col.name()) {
            Some(i) => cols[i] = col,
            None => cols.push(col),
        }
        t
    }

    fn sensor(t: &[(FileKind, Vec<Column>)], name: &str) -> Vec<f64> {
        let cols = &t[0].1;
        cols.iter().find(|c| c.name() == name).unwrap().f64().unwrap().iter().map(|v| v.unwrap()).collect()
    }

    /// Each of the five inputs as Parquet: the same data set as from the CSV files, and each
    /// defect found with the same check, numbered by row.
    #[test]
    fn parquet_inputs_get_the_same_checks_numbered_by_row() {
        let ds = generate(&GenConfig { machines: 3, hours: 300, ..GenConfig::azure_default() });
        let good = tables(&ds);
        let (from_parquet, rep) = read(&good, BadRowPolicy::Fail).unwrap();
        // Exactly the generated tables: a Parquet file carries the values at full precision.
        let got = (&from_parquet.telemetry, &from_parquet.errors, &from_parquet.maint, &from_parquet.failures);
        let same = got == (&ds.telemetry, &ds.errors, &ds.maint, &ds.failures) && from_parquet.machines == ds.machines;
        assert!(same, "the tables read from Parquet differ from the generated ones");
        assert!(rep.files.values().all(|f| f.numbering == pm_core::data::ingest::Numbering::Row));

        // Telemetry: a null is a missing value; a value out of bounds, a NaN, a conflicting and an
        // exact duplicate reading are the CSV checks', at their rows.
        let mut volt = sensor(&good, "volt");
        let null_volt: Vec<Option<f64>> = volt.iter().enumerate().map(|(i, &v)| (i != 6).then_some(v)).collect();
        let (_, rep) =
            read(&with(good.clone(), FileKind::Telemetry, Column::new("volt".into(), null_volt)), BadRowPolicy::Fail)
                .unwrap();
        assert_eq!(rep.files["telemetry"].columns["volt"].missing, 1);
        volt[4] = 1e308;
        let t = with(good.clone(), FileKind::Telemetry, Column::new("volt".into(), volt.clone()));
        assert_eq!(
            err(&t),
            "PdM_telemetry.parquet: row 5, column 3 'volt': volt = 1e308 is outside its physical bounds [0, 1000] V (data contract)"
        );
        let (_, rep) = read(&t, BadRowPolicy::Drop).unwrap();
        let d = &rep.dropped_rows[0];
        assert_eq!(
            (d.line, d.numbering, d.file.as_str()),
            (5, pm_core::data::ingest::Numbering::Row, "PdM_telemetry.parquet")
        );
        assert!(d.raw.contains(",1e308,"), "{d:?}");
        assert!(serde_json::to_string(&rep).unwrap().contains(r#""numbering":"row""#));
        volt[4] = f64::NAN;
        let t = with(good.clone(), FileKind::Telemetry, Column::new("volt".into(), volt));
        assert!(err(&t).starts_with("PdM_telemetry.parquet: row 5, column 3 'volt': "), "{}", err(&t));
        let mut secs = ds.telemetry.time.clone();
        secs[2] = secs[1];
        let dup = with(good.clone(), FileKind::Telemetry, times(&secs));
        assert_eq!(
            err(&dup),
            format!(
                "PdM_telemetry.parquet: row 3, column 1 'datetime': conflicting reading for machine 1 at {}: row 2 has other values",
                pm_core::data::time::Timestamp(secs[1])
            )
        );
        let mut fractional = ds.telemetry.time.iter().map(|s| s * 1000).collect::<Vec<i64>>();
        fractional[7] += 500;
        let c = Int64Chunked::from_vec("datetime".into(), fractional)
            .into_datetime(TimeUnit::Milliseconds, None)
            .into_column();
        let e = err(&with(good.clone(), FileKind::Telemetry, c));
        assert!(e.starts_with("PdM_telemetry.parquet: row 8, column 1 'datetime': invalid datetime \""), "{e}");
        assert!(e.contains(":00.500\""), "{e}");

        // An extra column is ignored and listed; a missing one refuses the file, without a row.
        let (_, rep) = read(
            &with(good.clone(), FileKind::Maint, Column::new("site".into(), vec!["a"; ds.maint.len()])),
            BadRowPolicy::Fail,
        )
        .unwrap();
        assert_eq!(rep.files["maint"].ignored_columns, ["site"]);
        let mut no_comp = good.clone();
        no_comp[2].1.truncate(2);
        assert_eq!(err(&no_comp), "PdM_maint.parquet: missing column 'comp'; expected datetime, machineID, comp");

        // Events: a label outside the vocabulary; machines: a null age and a machine twice.
        let mut labels: Vec<String> =
            ds.errors.kind.iter().map(|&k| ds.contract.error_types[usize::from(k)].clone()).collect();
        labels[1] = "error9".into();
        let e = err(&with(good.clone(), FileKind::Errors, Column::new("errorID".into(), labels)));
        assert!(e.starts_with("PdM_errors.parquet: row 2, column 3 'errorID': "), "{e}");
        let ages: Vec<Option<i64>> = (0..ds.machines.len()).map(|i| (i != 1).then_some(10)).collect();
        let e = err(&with(good.clone(), FileKind::Machines, Column::new("age".into(), ages)));
        assert_eq!(e, "PdM_machines.parquet: row 2, column 3 'age': missing value");
        let (ids, models, ages) =
            (vec![1i64, 2, 3, 1], vec!["model1", "model2", "model3", "model4"], vec![1i64, 2, 3, 4]);
        let twice = vec![
            Column::new("machineID".into(), ids),
            Column::new("model".into(), models),
            Column::new("age".into(), ages),
        ];
        let mut t = good.clone();
        t[4].1 = twice;
        assert_eq!(
            err(&t),
            "PdM_machines.parquet: row 4, column 1 'machineID': machine 1 is already defined on row 1, differently"
        );

        // Not Parquet, or a column type the checks cannot read: bad input, named.
        let c = contract();
        let mut files: Vec<(FileKind, String, Bytes)> =
            good.iter().map(|(k, cols)| (*k, c.file_name(*k).to_string(), parquet(cols.clone()))).collect();
        files[3].2 = Bytes::from_static(b"datetime,machineID,failure\n");
        let e = ingest::validate(&files, &c, &ReadOptions::new(BadRowPolicy::Fail)).unwrap_err();
        assert_eq!(pm_core::cli::exit_code_for(&e), pm_core::cli::exit::BAD_INPUT);
        assert!(e.to_string().starts_with("PdM_failures.parquet: not a readable Parquet file"), "{e:#}");
        let blob = Column::new("blob".into(), vec![b"ab".as_slice(); ds.failures.len()]);
        let e = err(&with(good, FileKind::Failures, blob));
        assert_eq!(
            e,
            "PdM_failures.parquet: column 'blob' has type binary; expected integers, floats, strings, booleans or timestamps"
        );
    }
}
