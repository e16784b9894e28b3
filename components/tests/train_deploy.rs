//! The model path through the store: features → train → evaluate → deploy, champion/challenger,
//! and the not-blessed path, on the memory store and a real S3 server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use clap::Parser;
use pm_components::deploy::{self, DeployArgs, DeployOutcome};
use pm_components::evaluate::{self, EvaluateArgs};
use pm_components::features::{self, FeaturesArgs};
use pm_components::ingest::{self, IngestArgs};
use pm_components::monitor::{self, MonitorArgs};
use pm_components::train::{self, TrainArgs};
use pm_core::artifacts::registry::{Registry, Status};
use pm_core::artifacts::store::Store;
use pm_core::data::contract::FileKind;
use pm_local_sim::generate::{GenConfig, generate};

async fn prepare(root: &Store) {
    let ds = generate(&GenConfig { machines: 12, hours: 24 * 120, ..GenConfig::azure_default() });
    for kind in FileKind::ALL {
        root.put(&format!("raw/{}", kind.file_name()), Bytes::from(pm_core::data::csv::write::file(&ds, kind)))
            .await
            .unwrap();
    }
    ingest::run(&IngestArgs::parse_from([
        "x",
        "--input-uri",
        &root.url_of("raw"),
        "--output-uri",
        &root.url_of("dataset"),
    ]))
    .await
    .unwrap();
    features::run(&FeaturesArgs::parse_from([
        "x",
        "--input-uri",
        &root.url_of("dataset"),
        "--output-uri",
        &root.url_of("features"),
    ]))
    .await
    .unwrap();
}

async fn train_eval_deploy(
    root: &Store,
    tag: &str,
    spec: &str,
    gates: &str,
) -> (evaluate::EvaluationRecord, DeployOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let blessed_file = dir.path().join("blessed");
    train::run(&TrainArgs::parse_from([
        "x",
        "--features-uri",
        &root.url_of("features"),
        "--output-uri",
        &root.url_of(&format!("model-{tag}")),
        "--spec-inline",
        spec,
    ]))
    .await
    .unwrap();
    let record = evaluate::run(&EvaluateArgs::parse_from([
        "x",
        "--model-uri",
        &root.url_of(&format!("model-{tag}")),
        "--features-uri",
        &root.url_of("features"),
        "--output-uri",
        &root.url_of(&format!("eval-{tag}")),
        "--registry-uri",
        &root.url_of("registry"),
        "--gates-inline",
        gates,
        "--blessed-output-file",
        blessed_file.to_str().unwrap(),
        "--classification-metrics-path",
        dir.path().join("cm.json").to_str().unwrap(),
    ]))
    .await
    .unwrap();
    assert_eq!(std::fs::read_to_string(&blessed_file).unwrap(), record.evaluation.blessed.to_string());
    let cm: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("cm.json")).unwrap()).unwrap();
    assert_eq!(cm["confusionMatrix"]["annotationSpecs"][1]["displayName"], "failure");
    assert!(cm["confidenceMetrics"].as_array().unwrap().len() > 2);
    let outcome = deploy::run(&DeployArgs::parse_from([
        "x",
        "--model-uri",
        &root.url_of(&format!("model-{tag}")),
        "--evaluation-uri",
        &root.url_of(&format!("eval-{tag}")),
        "--registry-uri",
        &root.url_of("registry"),
        "--source-commit",
        "deadbeef",
    ]))
    .await
    .unwrap();
    (record, outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn train_evaluate_deploy_and_champion_challenger() {
    let s3 = std::env::var("PM_TEST_S3_URL").unwrap_or_else(|_| panic!("PM_TEST_S3_URL is not set: run `make test`"));
    let unique = format!("chain-{}-{}", std::process::id(), pm_core::data::time::now().0);
    for root_url in [format!("memory://{unique}"), format!("{s3}/{unique}")] {
        let root = Store::open(&root_url).unwrap();
        prepare(&root).await;
        let fast = "{model: gbdt, gbdt: {max_rounds: 40}}";

        // First model: nothing to beat, gates pass -> promoted.
        let (r1, o1) = train_eval_deploy(&root, "a", fast, "{}").await;
        assert!(r1.evaluation.blessed, "{:?}", r1.evaluation.reasons);
        assert_eq!(o1, DeployOutcome::Promoted { version: "v1".into() });

        // The same training again: the candidate equals the champion, which it must beat.
        let (r2, o2) = train_eval_deploy(&root, "b", fast, "{}").await;
        assert!(!r2.evaluation.blessed);
        assert!(r2.evaluation.reasons.last().unwrap().starts_with("FAIL: pr_auc"), "{:?}", r2.evaluation.reasons);
        assert!(matches!(o2, DeployOutcome::NotBlessed { .. }));

        // A candidate failing an absolute gate changes nothing either.
        let (r3, o3) = train_eval_deploy(
            &root,
            "c",
            "{model: random_forest, random_forest: {trees: 10}}",
            "{min_roc_auc: 0.9999999}",
        )
        .await;
        assert!(!r3.evaluation.blessed);
        assert!(
            matches!(o3, DeployOutcome::NotBlessed { ref reasons } if reasons[0].starts_with("FAIL: test ROC AUC"))
        );

        let reg = Registry::new(&root.join("registry"), "pm-failure");
        let state = reg.state().await.unwrap();
        assert_eq!(state.active.as_deref(), Some("v1"), "{root_url}");
        assert_eq!(state.versions.len(), 1, "not-blessed candidates are not registered");
        assert_eq!(state.versions["v1"].status, Status::Active);
        assert_eq!(state.versions["v1"].record.source_commit.as_deref(), Some("deadbeef"));
        let test_auc = state.versions["v1"].record.metrics["test"]["roc_auc"].as_f64().unwrap();
        assert!((test_auc - r1.evaluation.candidate.roc_auc).abs() < 1e-12);
        // Event-level metrics are computed on the test slice.
        assert!(r1.evaluation.candidate.events.failures > 0);
        assert!(r1.evaluation.candidate.events.warned_share > 0.8, "{:?}", r1.evaluation.candidate.events);
        // The report is a self-contained HTML page with the four charts.
        let html = root.get("eval-a/report.html").await.unwrap();
        let html = String::from_utf8_lossy(&html);
        assert_eq!(html.matches("<svg").count(), 4);
        assert!(html.contains("BLESSED"));
    }
}

/// The training fleet 30 days further on (the last 14 days are new telemetry), with every
/// voltage scaled by `volt_scale`, written as raw CSVs and ingested.
async fn ingest_batch(root: &Store, name: &str, volt_scale: f64) -> String {
    let mut ds = generate(&GenConfig { machines: 12, hours: 24 * 150, ..GenConfig::azure_default() });
    let volt = ds.contract.sensor_index("volt").unwrap();
    for v in &mut ds.telemetry.sensors[volt] {
        *v *= volt_scale;
    }
    for kind in FileKind::ALL {
        root.put(&format!("{name}-raw/{}", kind.file_name()), Bytes::from(pm_core::data::csv::write::file(&ds, kind)))
            .await
            .unwrap();
    }
    let out = root.url_of(&format!("{name}-dataset"));
    ingest::run(&IngestArgs::parse_from([
        "x",
        "--input-uri",
        &root.url_of(&format!("{name}-raw")),
        "--output-uri",
        &out,
    ]))
    .await
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_flags_a_shifted_batch_and_not_a_fresh_one() {
    let root = Store::open(&format!("memory://monitor-{}", std::process::id())).unwrap();
    prepare(&root).await;
    let (_, outcome) = train_eval_deploy(&root, "m", "{model: gbdt, gbdt: {max_rounds: 20}}", "{}").await;
    assert_eq!(outcome, DeployOutcome::Promoted { version: "v1".into() });
    let dir = tempfile::tempdir().unwrap();
    let monitor = async |dataset: &str, tag: &str| {
        let flag = dir.path().join(format!("{tag}-drifted"));
        let html = dir.path().join(format!("{tag}.html"));
        let r = monitor::run(&MonitorArgs::parse_from([
            "x",
            "--dataset-uri",
            dataset,
            "--registry-uri",
            &root.url_of("registry"),
            "--output-uri",
            &root.url_of(&format!("drift-{tag}")),
            "--window-hours",
            "336",
            "--drifted-output-file",
            flag.to_str().unwrap(),
            "--html-path",
            html.to_str().unwrap(),
        ]))
        .await
        .unwrap();
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), r.alert.to_string());
        // The stored report is the returned one; the HTML names the verdict.
        assert_eq!(
            monitor::load_report(&Store::open(&root.url_of(&format!("drift-{tag}"))).unwrap()).await.unwrap(),
            r
        );
        let page = std::fs::read_to_string(&html).unwrap();
        assert!(page.contains(if r.alert { "ALERT" } else { "No alert" }), "{page}");
        r
    };
    // The same fleet two weeks later: no alert.
    let fresh = ingest_batch(&root, "fresh", 1.0).await;
    let calm = monitor(&fresh, "fresh").await;
    assert!(!calm.alert, "max PSI {} on {:?}", calm.max_psi, calm.drifted_features);
    assert_eq!((calm.rows, calm.machines), (12 * 336, 12));
    assert!(calm.max_psi < 0.2, "{}", calm.max_psi);
    // Every voltage 15 % higher: the voltage features drift, nothing else needs to.
    let shifted = ingest_batch(&root, "shifted", 1.15).await;
    let r = monitor(&shifted, "shifted").await;
    assert!(r.alert);
    assert!(r.features[0].feature.starts_with("volt"), "{:?}", &r.features[..3]);
    assert!(r.drifted_features.iter().all(|f| f.starts_with("volt")), "{:?}", r.drifted_features);
    assert!(r.drifted_features.iter().any(|f| f == "volt"), "{:?}", r.drifted_features);
    assert!(r.features[0].psi > 1.0 && r.features[0].batch_mean > r.features[0].baseline_mean * 1.1);
    // The same model named by its artifact instead of the registry: the same report.
    let by_model_uri = async |output: &str, extra: &[&str]| {
        let (model, output) = (root.url_of("model-m"), root.url_of(output));
        let mut args = vec!["x", "--dataset-uri", &shifted, "--model-uri", &model, "--output-uri", &output];
        args.extend_from_slice(extra);
        monitor::run(&MonitorArgs::parse_from(args)).await.unwrap()
    };
    let by_uri = by_model_uri("drift-by-uri", &["--window-hours", "336"]).await;
    assert_eq!((by_uri.max_psi, &by_uri.drifted_features), (r.max_psi, &r.drifted_features));
    assert_eq!(by_uri.model, root.url_of("model-m"));
    // --scope all also compares the fleet features (error counts, ages, ...): more features.
    let all = by_model_uri("drift-all", &["--scope", "all"]).await;
    assert!(all.features.len() > r.features.len(), "{} vs {}", all.features.len(), r.features.len());
    assert!(all.features.iter().any(|f| f.feature == "age"));
    assert!(!r.features.iter().any(|f| f.feature == "age"));
    // The model must have a baseline of the batch's contract: a registry without a model is an error.
    let empty = monitor::run(&MonitorArgs::parse_from([
        "x",
        "--dataset-uri",
        &fresh,
        "--registry-uri",
        &root.url_of("no-registry"),
        "--output-uri",
        &root.url_of("drift-none"),
    ]))
    .await
    .unwrap_err();
    assert!(format!("{empty:#}").contains("has no active pm-failure model"), "{empty:#}");
}
