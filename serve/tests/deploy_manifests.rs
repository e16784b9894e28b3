//! The deployment manifests in deploy/ against the server they deploy: image tags, ports, the
//! environment variables pm-serve reads, probe and Vertex routes that answer, non-root security
//! matching the image, scrape annotations, and canary traffic splits that add up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use axum::http::StatusCode;
use common::{call, fixture, state_with};
use pm_serve::{ServeConfig, app};
use serde_json::{Value, json};

fn deploy(path: &str) -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(path)).unwrap()
}

fn yaml_docs(path: &str) -> Vec<Value> {
    deploy(path).split("\n---\n").map(|d| yaml_serde::from_str::<Value>(d).unwrap()).collect()
}

fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].as_str().unwrap_or_default().to_string()))
        .collect()
}

/// Variables the binary reads: clap lists them as `[env: NAME=...]` in --help.
fn assert_env_is_read(env: &[(String, String)], what: &str) {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_pm-serve")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (name, value) in env {
        if name == "RUST_LOG" {
            continue;
        }
        if name == pm_core::cli::LOG_FORMAT_ENV {
            // Read by every binary at start (pm_core::cli), named in --help's epilogue.
            assert!(help.contains(&format!("{name}=text (default) or json")), "{what}: --help does not name {name}");
            assert!(value == "json" || value == "text", "{what}: {name}={value}");
            continue;
        }
        assert!(help.contains(&format!("[env: {name}")), "{what}: pm-serve reads no {name}");
    }
}

fn image_user() -> u64 {
    let cf = deploy("images/pm-serve.Containerfile");
    let user = cf.lines().filter_map(|l| l.strip_prefix("USER ")).next_back().unwrap();
    user.split(':').next().unwrap().parse().unwrap()
}

fn assert_image(image: &str) {
    let (repo, tag) = image.rsplit_once(':').unwrap();
    assert!(repo.ends_with("/pm/pm-serve"), "{image}");
    assert_eq!(tag, env!("CARGO_PKG_VERSION"), "{image}: the tag make images builds");
}

/// `(path, status)` of a probe against a server with a model.
async fn probe(path: &str) -> StatusCode {
    call(&app(state_with(ServeConfig::default())), "GET", path, None).await.status
}

#[tokio::test]
async fn kubernetes_deployment_and_service() {
    let docs = yaml_docs("kubernetes/pm-serve.yaml");
    let dep = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let svc = docs.iter().find(|d| d["kind"] == "Service").unwrap();
    let pod = &dep["spec"]["template"];
    let c = &pod["spec"]["containers"][0];
    assert_image(c["image"].as_str().unwrap());
    let env = env_of(c);
    assert_env_is_read(&env, "Deployment");
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    let aip_port = env.iter().find(|(k, _)| k == "AIP_HTTP_PORT").unwrap().1.parse::<u64>().unwrap();
    assert_eq!(port, aip_port, "the server listens where the pod exposes");
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/port"], json!(port.to_string()));
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/path"], "/metrics");
    assert_eq!(probe(c["readinessProbe"]["httpGet"]["path"].as_str().unwrap()).await, StatusCode::OK);
    assert_eq!(probe(c["livenessProbe"]["httpGet"]["path"].as_str().unwrap()).await, StatusCode::OK);
    // Readiness is /ready, which refuses traffic without a model; liveness does not.
    let empty = pm_serve::AppState::new(ServeConfig::default(), "memory://none").unwrap();
    assert_eq!(call(&app(empty.clone()), "GET", "/ready", None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(call(&app(empty), "GET", "/health", None).await.status, StatusCode::OK);
    let sc = &pod["spec"]["securityContext"];
    assert_eq!((sc["runAsNonRoot"].as_bool(), sc["runAsUser"].as_u64()), (Some(true), Some(image_user())));
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    let timeout_ms: u64 = env.iter().find(|(k, _)| k == "PM_REQUEST_TIMEOUT_MS").unwrap().1.parse().unwrap();
    assert!(pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap() * 1000 > timeout_ms);
    assert!(c["resources"]["limits"]["memory"].is_string() && c["resources"]["requests"]["cpu"].is_string());
    assert_eq!(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"]);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
}

#[tokio::test]
async fn kserve_inference_service() {
    let isvc = &yaml_docs("kubernetes/inference-service.yaml")[0];
    assert_eq!(
        (isvc["apiVersion"].as_str(), isvc["kind"].as_str()),
        (Some("serving.kserve.io/v1beta1"), Some("InferenceService"))
    );
    let p = &isvc["spec"]["predictor"];
    let c = &p["containers"][0];
    assert_image(c["image"].as_str().unwrap());
    assert_env_is_read(&env_of(c), "InferenceService");
    assert_eq!(probe(c["readinessProbe"]["httpGet"]["path"].as_str().unwrap()).await, StatusCode::OK);
    assert_eq!(probe(c["livenessProbe"]["httpGet"]["path"].as_str().unwrap()).await, StatusCode::OK);
    let canary = p["canaryTrafficPercent"].as_u64().unwrap();
    assert!((1..100).contains(&canary), "a canary share: {canary}");
    assert!(p["minReplicas"].as_u64().unwrap() >= 1 && p["minReplicas"].as_u64() <= p["maxReplicas"].as_u64());
    assert_eq!(p["securityContext"]["runAsUser"].as_u64(), Some(image_user()));
    // The model name KServe routes v2 requests for is the one pm-serve serves.
    let name = isvc["metadata"]["name"].as_str().unwrap();
    let served = env_of(c).into_iter().find(|(k, _)| k == "PM_MODEL_NAME").unwrap().1;
    assert_eq!(name, served);
    assert_eq!(probe(&format!("/v2/models/{name}/ready")).await, StatusCode::OK);
}

#[tokio::test]
async fn vertex_endpoint_deployment() {
    let v = &yaml_docs("vertex/endpoint.yaml")[0];
    let spec = &v["model"]["containerSpec"];
    assert_image(spec["imageUri"].as_str().unwrap());
    let env = env_of(spec);
    assert_env_is_read(&env, "Vertex containerSpec");
    // Vertex sets AIP_HTTP_PORT from the first port; pm-serve's default is the same.
    assert_eq!(spec["ports"][0]["containerPort"], 8080);
    // The routes, as Vertex would pass them (AIP_PREDICT_ROUTE / AIP_HEALTH_ROUTE), answer.
    let (predict, health) = (spec["predictRoute"].as_str().unwrap(), spec["healthRoute"].as_str().unwrap());
    let cfg = ServeConfig {
        vertex_predict_route: Some(predict.to_string()),
        vertex_health_route: Some(health.to_string()),
        ..ServeConfig::default()
    };
    let app = app(state_with(cfg));
    assert_eq!(call(&app, "GET", health, None).await.status, StatusCode::OK);
    let machine = fixture().ds.machines.id[0];
    let r = call(&app, "POST", predict, Some(json!({ "instances": [{ "machineID": machine }] }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["predictions"].as_array().unwrap().len(), 1);
    let max_batch: usize = env.iter().find(|(k, _)| k == "PM_MAX_BATCH").unwrap().1.parse().unwrap();
    assert!(max_batch >= 1);
    // Resources and the canary split.
    let d = &v["deployModel"];
    let res = &d["deployedModel"]["dedicatedResources"];
    assert!(!res["machineSpec"]["machineType"].as_str().unwrap().is_empty());
    let (min, max) = (res["minReplicaCount"].as_u64().unwrap(), res["maxReplicaCount"].as_u64().unwrap());
    assert!(min >= 1 && min <= max, "{min}..{max}");
    let split = d["trafficSplit"].as_object().unwrap();
    assert_eq!(split.values().map(|p| p.as_u64().unwrap()).sum::<u64>(), 100);
    let new = split["0"].as_u64().unwrap();
    assert!((1..100).contains(&new), "the new model is a canary: {new} %");
}
