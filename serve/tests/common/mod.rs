//! Shared by the serving tests: a small generated fleet, a model trained on it (the library
//! path `pm-train` uses), and helpers to call the app in-process.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use pm_core::artifacts::bundle::{MachineInfo, ModelBundle};
use pm_core::data::contract::Dataset;
use pm_core::data::time::Timestamp;
use pm_core::features::{FeatureSet, FeatureSpec, FeatureTable, compute_batch, compute_batch_as};
use pm_core::learn::train::{TrainSpec, train};
use pm_local_sim::generate::{GenConfig, generate};
use pm_serve::App;
use pm_serve::{AppState, ServeConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct Fixture {
    pub ds: Dataset,
    pub spec: FeatureSpec,
    /// The batch features, in f64 (what the online path must reproduce bit for bit).
    pub table: FeatureTable<f64>,
    pub bundle: ModelBundle,
    /// A second model (another seed): for swaps.
    pub bundle2: ModelBundle,
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ds = generate(&GenConfig { machines: 12, hours: 24 * 120, ..GenConfig::azure_default() });
        let spec = FeatureSpec::new(FeatureSet::Rich, ds.contract.clone(), 24);
        let table32 = compute_batch(&spec, &ds);
        let machines: Vec<MachineInfo> = (0..ds.machines.len())
            .map(|i| MachineInfo {
                id: ds.machines.id[i],
                model: ds.contract.models[usize::from(ds.machines.model[i])].clone(),
                age: ds.machines.age[i],
            })
            .collect();
        let mut ts = TrainSpec { per_component: true, ..TrainSpec::default() };
        ts.gbdt.max_rounds = 30;
        let (bundle, _) = train(&spec, &table32, &ts, "test-data", machines.clone()).unwrap();
        ts.seed = 7;
        ts.gbdt.max_rounds = 20;
        let (bundle2, _) = train(&spec, &table32, &ts, "test-data", machines).unwrap();
        assert_ne!(bundle.to_json(), bundle2.to_json());
        Fixture { table: compute_batch_as::<f64>(&spec, &ds), ds, spec, bundle, bundle2 }
    })
}

/// A server state with the fixture's first model installed as `v1`.
pub fn state_with(cfg: ServeConfig) -> AppState {
    let f = fixture();
    let st = AppState::new(cfg, "memory://test").unwrap();
    assert!(st.offer("v1".into(), "sha-v1".into(), f.bundle.clone(), "memory://test"));
    st
}

pub fn state() -> AppState {
    state_with(ServeConfig::default())
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

/// Calls the app in-process.
pub async fn call(app: &App, method: &str, path: &str, body: Option<Value>) -> Answer {
    let req = Request::builder().method(method).uri(path);
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    send(app, req).await
}

pub async fn send(app: &App, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, headers, body, text }
}

/// A reading of the data set as a JSON object (with or without its machine id).
pub fn reading_json(ds: &Dataset, i: usize, with_machine: bool) -> Value {
    let mut m = serde_json::Map::new();
    if with_machine {
        m.insert("machineID".into(), json!(ds.telemetry.machine[i]));
    }
    m.insert("datetime".into(), json!(Timestamp(ds.telemetry.time[i]).to_string()));
    for (k, name) in ds.contract.sensors.iter().enumerate() {
        m.insert(name.name.clone(), json!(ds.telemetry.sensors[k][i]));
    }
    Value::Object(m)
}

/// Index of the batch feature row of `machine` at `time`.
pub fn row_of(table: &FeatureTable<f64>, machine: u32, time: i64) -> usize {
    (0..table.n_rows()).find(|&i| table.machine[i] == machine && table.time[i] == time).expect("row in the table")
}

/// The `features` object of a prediction as a vector in feature order (null → NaN).
pub fn features_of(pred: &Value, names: &[String]) -> Vec<f64> {
    names.iter().map(|n| pred["features"][n].as_f64().unwrap_or(f64::NAN)).collect()
}

/// Bitwise equality, NaN equal to NaN.
pub fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// The path of an optional tool a check uses, from the environment variable `var` (`make test`
/// installs the tool and sets it). Without it the check is skipped, loudly; under `CI=true` a
/// missing tool fails the test instead, so that CI never passes a check it did not run.
pub fn optional_tool(var: &str, check: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set, and CI=true: {check} must run in CI (`make test` installs the tool)")
        }
        _ => {
            eprintln!("\n*** SKIPPED: {check}: {var} is not set (`make test` installs the tool and sets it) ***\n");
            None
        }
    }
}
