//! The product's training pipeline (`pipelines/training.yaml`) run by the orchestrator's local
//! backend with the real step binaries, on a small generated fleet: what its parameters do.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pm_components::evaluate::load_evaluation;
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_core::data::contract::FileKind;
use pm_core::eval::evaluation::Gates;
use pm_local_sim::generate::{GenConfig, generate};
use pm_orchestrator::local::{LocalOptions, RunRecord, StepStatus};
use serde_json::{Value, json};

fn pipeline(name: &str) -> (pm_orchestrator::graph::Pipeline, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines").join(name);
    pm_orchestrator::load_file(&path).unwrap()
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pm-ingest")).parent().unwrap().to_path_buf()
}

/// A root holding a small generated fleet's raw CSVs in `raw/`.
async fn fleet(dir: &Path) -> Store {
    let root = Store::open(dir.join("root").to_str().unwrap()).unwrap();
    let ds = generate(&GenConfig { machines: 12, hours: 24 * 120, ..GenConfig::azure_default() });
    for kind in FileKind::ALL {
        root.put(&format!("raw/{}", kind.file_name()), Bytes::from(pm_core::data::csv::write::file(&ds, kind)))
            .await
            .unwrap();
    }
    root
}

async fn run_training(dir: &Path, root: &Store, params: &[(&str, Value)]) -> RunRecord {
    let (p, text) = pipeline("training.yaml");
    let mut all: BTreeMap<String, Value> = BTreeMap::from([
        ("data_uri".to_string(), json!(root.url_of("raw"))),
        ("registry_uri".to_string(), json!(root.url_of("registry"))),
        ("train_spec".to_string(), json!("{model: gbdt, gbdt: {max_rounds: 40}}")),
    ]);
    all.extend(params.iter().map(|(k, v)| (k.to_string(), v.clone())));
    pm_orchestrator::local::run(p, local_options(dir, root, all), &text).await.unwrap()
}

fn local_options(dir: &Path, root: &Store, params: BTreeMap<String, Value>) -> LocalOptions {
    LocalOptions {
        root: root.clone(),
        bin_dir: bin_dir(),
        parallelism: 2,
        params,
        resume: None,
        use_cache: true,
        work_dir: dir.join("work"),
        kill_grace_secs: 1,
        env: BTreeMap::new(),
        show_progress: false,
        runner: Default::default(),
    }
}

/// The gate parameters reach pm-evaluate: gates the candidate cannot meet stop its promotion,
/// and the evaluation records the gates it applied. The defaults promote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmet_gate_parameter_stops_the_promotion() {
    let dir = tempfile::tempdir().unwrap();
    let root = fleet(dir.path()).await;
    // The telemetry features alone (no error counts) leave this fleet's model short of perfect.
    // A negative margin reaches pm-evaluate intact (as `--min-improvement=-0.5`).
    let strict = [
        ("feature_set", json!("seed")),
        ("min_precision", json!(0.9999)),
        ("min_recall", json!(0.9999)),
        ("min_improvement", json!(-0.5)),
    ];
    let r = run_training(dir.path(), &root, &strict).await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(r.steps["evaluate"].outputs["blessed"].value, Some(json!(false)));
    assert_eq!(r.steps["deploy"].status, StepStatus::Skipped);
    let eval_uri = r.steps["evaluate"].outputs["evaluation"].uri.clone().unwrap();
    let e = load_evaluation(&Store::open(&eval_uri).unwrap()).await.unwrap().evaluation;
    assert_eq!((e.gates.min_precision, e.gates.min_recall, e.gates.min_improvement), (0.9999, 0.9999, -0.5));
    let c = &e.candidate;
    assert!(c.precision < 0.9999 || c.recall < 0.9999, "the fleet is too easy for this test: {c:?}");
    assert!(e.reasons.iter().any(|r| r.starts_with("FAIL:") && r.ends_with("(minimum 0.9999)")), "{:?}", e.reasons);
    let registry = Registry::new(&root.join("registry"), "pm-failure");
    assert_eq!(registry.state().await.unwrap().active, None, "nothing was promoted");

    // The pipeline's defaults: blessed and promoted.
    let r = run_training(dir.path(), &root, &[]).await;
    assert_eq!(r.steps["ingest"].status, StepStatus::Cached);
    assert_eq!(r.steps["deploy"].status, StepStatus::Succeeded, "{:?}", r.steps["evaluate"]);
    assert_eq!(registry.state().await.unwrap().active.as_deref(), Some("v1"));
}

/// The gate parameters' defaults in the pipelines are the evaluator's own defaults: one truth.
#[test]
fn the_pipelines_gate_defaults_are_the_evaluators() {
    let d = Gates::default();
    let (p, _) = pipeline("training.yaml");
    for (name, value) in [
        ("min_roc_auc", d.min_roc_auc),
        ("min_precision", d.min_precision),
        ("min_recall", d.min_recall),
        ("min_improvement", d.min_improvement),
    ] {
        assert_eq!(p.spec.parameters[name].default, Some(json!(value)), "parameter {name}");
        assert_eq!(p.spec.components["evaluate"].inputs[name].default, Some(json!(value)), "input {name}");
    }
}

/// Data that breaks the contract fails ingest once, with exit code 65 and the file, line and
/// column: retrying the same bytes cannot help. Bad gate values are refused the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_fails_once_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = fleet(dir.path()).await;
    let telemetry = root.get("raw/PdM_telemetry.csv").await.unwrap();
    let text = String::from_utf8_lossy(&telemetry).into_owned();
    let mut lines: Vec<&str> = text.lines().collect();
    let broken = lines[2].splitn(4, ',').take(2).collect::<Vec<_>>().join(",") + ",abc,1,1,1";
    lines[2] = &broken;
    root.put("raw/PdM_telemetry.csv", Bytes::from(lines.join("\n") + "\n")).await.unwrap();
    let r = run_training(dir.path(), &root, &[]).await;
    let ingest = &r.steps["ingest"];
    assert_eq!((ingest.status, ingest.attempts), (StepStatus::Failed, 1), "{ingest:?}");
    assert_eq!(ingest.exit_code, Some(i32::from(pm_core::cli::exit::BAD_INPUT)));
    let message = ingest.message.as_deref().unwrap();
    assert!(message.contains("line 3, column 3 'volt': expected a number"), "{message}");
    assert!(message.contains("not retried"), "{message}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pm-evaluate"))
        .args(["--model-uri=m", "--features-uri=f", "--output-uri=o", "--min-roc-auc=1.5"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)), "{err}");
    assert!(err.contains("gates: min_roc_auc: 1.5 is not a share between 0 and 1"), "{err}");
    assert_eq!(err.matches("1.5 is not a share").count(), 1, "the error is printed once: {err}");
}

/// Another fleet's data contract (`contracts/examples/compressor-fleet.yaml`: six sensors, three
/// components, 10-minute readings, its own file and column names) runs through the whole
/// pipeline and pm-serve. The registry already holds an Azure-contract champion: evaluation says
/// it is not comparable instead of scoring it on data it was not made for, and the new model is
/// promoted over it. The monitoring pipeline reads a batch under the contract, and pm-serve
/// validates readings against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_fleets_contract_runs_through_the_pipeline_and_pm_serve() {
    let dir = tempfile::tempdir().unwrap();
    let root = fleet(dir.path()).await;
    let r = run_training(dir.path(), &root, &[]).await;
    assert_eq!(r.steps["deploy"].status, StepStatus::Succeeded, "{:?}", r.steps["evaluate"]);

    let contract_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contracts/examples/compressor-fleet.yaml");
    let contract = pm_core::data::contract::Contract::load(contract_path.to_str().unwrap()).await.unwrap();
    assert_eq!((contract.sensors.len(), contract.components.len(), contract.cadence_secs()), (6, 3, 600));
    let ds = pm_local_sim::fleet::generate_for(
        &contract,
        &GenConfig { machines: 8, hours: 24 * 90, ..GenConfig::azure_default() },
    );
    for kind in FileKind::ALL {
        let name = format!("fleet-raw/{}", contract.file_name(kind));
        root.put(&name, Bytes::from(pm_core::data::csv::write::file(&ds, kind))).await.unwrap();
    }
    let params = [
        ("data_uri", json!(root.url_of("fleet-raw"))),
        ("contract", json!(contract_path.to_str().unwrap())),
        ("label_horizon_hours", json!(12)),
    ];
    let r = run_training(dir.path(), &root, &params).await;
    assert_eq!(r.status, "succeeded", "{r:#?}");
    assert_eq!(r.steps["ingest"].outputs["rows"].value, Some(json!(8 * 24 * 90 * 6)), "10-minute readings");
    let eval_uri = r.steps["evaluate"].outputs["evaluation"].uri.clone().unwrap();
    let e = load_evaluation(&Store::open(&eval_uri).unwrap()).await.unwrap().evaluation;
    assert!(
        e.reasons
            .iter()
            .any(|r| r
                .contains("champion v1 not comparable (its data contract (azure-pdm: 4 sensors, cadence 1h) differs")),
        "{:?}",
        e.reasons
    );
    assert!(e.candidate.roc_auc > 0.8, "{:?}", e.candidate);
    assert_eq!(r.steps["deploy"].status, StepStatus::Succeeded, "{:?}", e.reasons);
    let registry = Registry::new(&root.join("registry"), "pm-failure");
    assert_eq!(registry.state().await.unwrap().active.as_deref(), Some("v2"));

    // Monitoring: the fleet's batch under its contract, against the promoted model's baseline.
    let (p, text) = pipeline("monitoring.yaml");
    let params = BTreeMap::from([
        ("batch_uri".to_string(), json!(root.url_of("fleet-raw"))),
        ("data_uri".to_string(), json!(root.url_of("fleet-raw"))),
        ("registry_uri".to_string(), json!(root.url_of("registry"))),
        ("pipeline_root".to_string(), json!(root.url())),
        ("contract".to_string(), json!(contract_path.to_str().unwrap())),
        ("min_drifted_features".to_string(), json!(100_000)),
    ]);
    let m = pm_orchestrator::local::run(p, local_options(dir.path(), &root, params), &text).await.unwrap();
    assert_eq!(m.status, "succeeded", "{m:#?}");
    assert_eq!(m.steps["monitor"].outputs["drifted"].value, Some(json!(false)), "{:?}", m.steps["monitor"]);
    assert_eq!(m.steps["retrain"].status, StepStatus::Skipped);

    // pm-serve: the promoted model, primed from the fleet's own files.
    let serve = bin_dir().join("pm-serve");
    assert!(serve.exists(), "{} is not built: run the workspace's tests (`make test`)", serve.display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new(&serve)
        .args(["--registry-uri", root.url_of("registry").as_str(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--prime-from", root.url_of("fleet-raw").as_str()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(std::time::Instant::now() < deadline, "pm-serve never became ready");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let post = |body: Value| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            client.post(format!("{base}/predict")).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let by_id = post(json!({"instances": [{"machineID": 3}]})).await;
    let p = &by_id["predictions"][0];
    assert_eq!(p["model_version"], "v2", "{by_id}");
    assert!(p["failure_probability"].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)), "{by_id}");
    let last = *ds.telemetry.time.last().unwrap();
    let at = |k: i64| pm_core::data::time::Timestamp(last + k * 600).to_string();
    let reading = |k: i64, extra: Value| {
        let mut r = json!({"datetime": at(k), "discharge_pressure": 8.0, "discharge_temp": 65.0, "motor_current": 200.0,
                           "oil_pressure": 5.0, "vibration_rms": 25.0});
        r.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        r
    };
    // The ambient temperature is absent (missing) in the first reading, null in the second.
    let ok = post(json!({"instances": [{"machineID": 3, "history": {"readings": [reading(1, json!({})), reading(2, json!({"ambient_temp": null}))]}}]})).await;
    assert!(ok["predictions"][0]["failure_probability"].as_f64().is_some(), "{ok}");
    let wrong_name =
        post(json!({"instances": [{"machineID": 3, "history": {"readings": [reading(1, json!({"volt": 170.0}))]}}]}))
            .await;
    let err = &wrong_name["predictions"][0]["error"];
    assert_eq!(err["field"], "instances[0].history.readings[0].volt", "{wrong_name}");
    let too_high = post(json!({"instances": [{"machineID": 3, "history": {"readings": [reading(1, json!({"discharge_pressure": 20.0}))]}}]})).await;
    let msg = too_high["predictions"][0]["error"]["message"].as_str().unwrap_or_default().to_string();
    assert!(msg.contains("discharge_pressure") && msg.contains("[0, 16]"), "{too_high}");
    // The OpenAPI document and the Open Inference Protocol metadata follow the contract.
    let doc: Value = client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    let text = doc.to_string();
    assert!(
        text.contains("\"vibration_rms\"") && !text.contains("\"rotate\""),
        "the OpenAPI document names the contract's sensors"
    );
    let meta: Value = client.get(format!("{base}/v2/models/pm-failure")).send().await.unwrap().json().await.unwrap();
    let names = meta["parameters"]["feature_names"].as_array().unwrap();
    assert!(names.iter().any(|n| n.as_str().unwrap().contains("discharge_temp")), "{meta}");
    assert_eq!(meta["inputs"][1]["shape"][1], json!(names.len()), "{meta}");
}
