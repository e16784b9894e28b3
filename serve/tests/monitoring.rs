//! The monitoring stack in deploy/monitoring against what pm-serve really serves: every metric
//! the alert rules and the Grafana dashboard query exists at /metrics, and promtool accepts the
//! Prometheus config and passes the alert rules' unit tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{call, state_with};
use pm_serve::{ServeConfig, app};
use serde_json::{Value, json};

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

/// Metric names in a PromQL expression (ours, the process collector's, and `up`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if word.starts_with("pm_") || word.starts_with("process_") {
            out.insert(word.clone());
        }
        word.clear();
    }
    out
}

/// The series names /metrics exposes, histograms with their _bucket/_sum/_count.
fn served_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

async fn served_metrics() -> String {
    // A model, predictions enough for the drift gauges (published from 100 rows), and telemetry.
    let cfg = ServeConfig {
        rules: pm_serve::model::InputRules { drift_sample: 1, ..ServeConfig::default().rules },
        ..ServeConfig::default()
    };
    let app = app(state_with(cfg));
    let f = common::fixture();
    let readings: Vec<Value> = (0..30).map(|i| common::reading_json(&f.ds, i, true)).collect();
    assert_eq!(call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await.status, 200);
    let machine = f.ds.telemetry.machine[0];
    for _ in 0..120 {
        call(&app, "POST", "/predict", Some(json!({ "machineID": machine }))).await;
    }
    call(&app, "POST", "/predict", Some(json!({ "machineID": 999_999 }))).await;
    call(&app, "GET", "/metrics", None).await.text
}

#[tokio::test]
async fn alert_rules_and_dashboard_query_metrics_that_exist() {
    let served = served_names(&served_metrics().await);
    let mut queried: Vec<(String, String)> = Vec::new();
    let rules: Value =
        yaml_serde::from_str(&std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap()).unwrap();
    for group in rules["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let (name, expr) = (rule["alert"].as_str().unwrap(), rule["expr"].as_str().unwrap());
            queried.extend(metric_names(expr).into_iter().map(|m| (format!("alert {name}"), m)));
        }
    }
    let alerts: BTreeSet<&str> =
        rules["groups"][0]["rules"].as_array().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    for needed in [
        "PmServeHighLatencyP99",
        "PmServeErrorRate",
        "PmModelNotLoaded",
        "PmModelReloadFailures",
        "PmFeatureDrift",
        "PmPredictionVolumeDrop",
    ] {
        assert!(alerts.contains(needed), "alerts.yml has no {needed}");
    }
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap())
            .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 10);
    for p in panels {
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} has no query", p["title"]);
        for t in targets {
            queried.extend(
                metric_names(t["expr"].as_str().unwrap()).into_iter().map(|m| (format!("panel {}", p["title"]), m)),
            );
        }
    }
    assert!(queried.len() > 20);
    let missing: Vec<_> = queried.iter().filter(|(_, m)| !served.contains(m)).collect();
    assert!(missing.is_empty(), "queried but not served: {missing:?}\nserved: {served:?}");
}

#[test]
fn promtool_accepts_the_config_and_the_alert_rules_pass_their_unit_tests() {
    let Some(promtool) = common::optional_tool("PM_PROMTOOL", "promtool's config check and alert-rule tests") else {
        return;
    };
    for args in [vec!["check", "config", "prometheus.yml"], vec!["test", "rules", "alerts_test.yml"]] {
        let out = std::process::Command::new(&promtool).args(&args).current_dir(monitoring_dir()).output().unwrap();
        assert!(
            out.status.success(),
            "promtool {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
