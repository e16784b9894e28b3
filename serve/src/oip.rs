//! Open Inference Protocol (KServe V2) REST, JSON tensors: standard v2 clients work unchanged.
//!
//! The model takes one of two inputs:
//! - `machine_id` (INT64/INT32/UINT32/UINT64, shape `[N]` or `[N, 1]`): score each machine's
//!   buffered state (after `/telemetry`), as `/predict` does;
//! - `features` (FP32/FP64, shape `[N, F]`, in the model's feature order — see the model
//!   metadata): score rows a client computed with `pm-core`'s feature code.
//!
//! Outputs: `failure_probability` (FP64 `[N]`), `failure_prediction` (BOOL `[N]`), `risk_level`
//! (BYTES `[N]`), and `component_probabilities` (FP64 `[N, C]`) when the model is per-component.
//! A request may name the outputs it wants.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::error::{ApiError, JsonBody};
use crate::input::{PredictRequest, Source};
use crate::model::Loaded;
use crate::predict::{finish, predict_one};
use crate::state::AppState;

pub fn routes(
    work: &mut BTreeMap<String, MethodRouter<AppState>>,
    light: &mut BTreeMap<String, MethodRouter<AppState>>,
) {
    light.insert("/v2".into(), get(server_metadata));
    light.insert("/v2/health/live".into(), get(live));
    light.insert("/v2/health/ready".into(), get(server_ready));
    light.insert("/v2/models/{name}".into(), get(model_metadata));
    light.insert("/v2/models/{name}/versions/{version}".into(), get(model_metadata_v));
    light.insert("/v2/models/{name}/ready".into(), get(model_ready));
    light.insert("/v2/models/{name}/versions/{version}/ready".into(), get(model_ready_v));
    work.insert("/v2/models/{name}/infer".into(), post(infer));
    work.insert("/v2/models/{name}/versions/{version}/infer".into(), post(infer_v));
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "pm-serve", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
}

async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

async fn server_ready(State(st): State<AppState>) -> Response {
    let ready = st.slot.get().is_some();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({ "ready": ready }))).into_response()
}

/// The served model if `name` (and `version`, when given) name it; OIP-shaped errors otherwise.
fn resolve(st: &AppState, name: &str, version: Option<&str>) -> Result<std::sync::Arc<Loaded>, ApiError> {
    let m = st.slot.get().ok_or_else(|| ApiError::no_model(&st.slot.why_not_loaded()))?;
    if name != m.bundle.name {
        return Err(ApiError::not_found(
            "unknown_model",
            format!("unknown model {name:?}; this server serves {:?}", m.bundle.name),
        ));
    }
    if let Some(v) = version
        && v != m.version
    {
        return Err(ApiError::not_found(
            "unknown_version",
            format!("model {name:?} version {v:?} is not served; the served version is {:?}", m.version),
        ));
    }
    Ok(m)
}

fn metadata(m: &Loaded) -> Value {
    let f = m.n_features();
    let mut outputs = vec![
        json!({ "name": "failure_probability", "datatype": "FP64", "shape": [-1] }),
        json!({ "name": "failure_prediction", "datatype": "BOOL", "shape": [-1] }),
        json!({ "name": "risk_level", "datatype": "BYTES", "shape": [-1] }),
    ];
    if m.per_component() {
        let c = m.bundle.feature_spec.contract.components.len();
        outputs.push(json!({ "name": "component_probabilities", "datatype": "FP64", "shape": [-1, c] }));
    }
    json!({
        "name": m.bundle.name,
        "versions": [m.version],
        "platform": format!("pm-{}", m.bundle.model.algorithm),
        "inputs": [
            { "name": "machine_id", "datatype": "INT64", "shape": [-1] },
            { "name": "features", "datatype": "FP32", "shape": [-1, f] },
        ],
        "outputs": outputs,
        "parameters": { "feature_names": m.names, "threshold": m.bundle.threshold },
    })
}

async fn model_metadata(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    match resolve(&st, &name, None) {
        Ok(m) => Json(metadata(&m)).into_response(),
        Err(e) => e.into_oip(),
    }
}

async fn model_metadata_v(State(st): State<AppState>, Path((name, version)): Path<(String, String)>) -> Response {
    match resolve(&st, &name, Some(&version)) {
        Ok(m) => Json(metadata(&m)).into_response(),
        Err(e) => e.into_oip(),
    }
}

fn ready_answer(st: &AppState, name: &str, version: Option<&str>) -> Response {
    match resolve(st, name, version) {
        Ok(_) => Json(json!({ "name": name, "ready": true })).into_response(),
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "name": name, "ready": false }))).into_response()
        }
        Err(e) => e.into_oip(),
    }
}

async fn model_ready(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    ready_answer(&st, &name, None)
}

async fn model_ready_v(State(st): State<AppState>, Path((name, version)): Path<(String, String)>) -> Response {
    ready_answer(&st, &name, Some(&version))
}

async fn infer(State(st): State<AppState>, Path(name): Path<String>, body: Result<JsonBody, ApiError>) -> Response {
    run_infer(&st, &name, None, body).unwrap_or_else(ApiError::into_oip)
}

async fn infer_v(
    State(st): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Result<JsonBody, ApiError>,
) -> Response {
    run_infer(&st, &name, Some(&version), body).unwrap_or_else(ApiError::into_oip)
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, message).with_status(StatusCode::BAD_REQUEST)
}

/// A tensor's `data`, flat or nested, as numbers.
fn flatten(v: &Value, path: &str, out: &mut Vec<f64>, nulls_are_nan: bool) -> Result<(), ApiError> {
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                if x.is_array() {
                    flatten(x, path, out, nulls_are_nan)?;
                } else {
                    match x {
                        Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN)),
                        Value::Null if nulls_are_nan => out.push(f64::NAN),
                        other => return Err(bad(&format!("{path}[{i}]"), format!("expected a number, got {other}"))),
                    }
                }
            }
            Ok(())
        }
        other => Err(bad(path, format!("expected an array, got {other}"))),
    }
}

fn shape(input: &serde_json::Map<String, Value>, path: &str) -> Result<Vec<usize>, ApiError> {
    let p = format!("{path}.shape");
    let arr = input.get("shape").and_then(Value::as_array).ok_or_else(|| bad(&p, "required array of dimensions"))?;
    arr.iter()
        .map(|d| {
            d.as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| bad(&p, format!("dimension {d} is not a non-negative integer")))
        })
        .collect()
}

fn run_infer(
    st: &AppState,
    name: &str,
    version: Option<&str>,
    body: Result<JsonBody, ApiError>,
) -> Result<Response, ApiError> {
    let model = resolve(st, name, version)?;
    let JsonBody(v) = body?;
    let req = v.as_object().ok_or_else(|| bad("", "expected an inference request object"))?;
    if let Some(k) = req.keys().find(|k| !["id", "parameters", "inputs", "outputs"].contains(&k.as_str())) {
        return Err(bad(k, "unknown field; expected id, parameters, inputs, outputs"));
    }
    let inputs =
        req.get("inputs").and_then(Value::as_array).ok_or_else(|| bad("inputs", "required array of input tensors"))?;
    let [input] = inputs.as_slice() else {
        return Err(bad(
            "inputs",
            format!("expected exactly one input tensor (machine_id or features), got {}", inputs.len()),
        ));
    };
    let input = input.as_object().ok_or_else(|| bad("inputs[0]", "expected a tensor object"))?;
    let iname = input.get("name").and_then(Value::as_str).unwrap_or("");
    let dtype = input.get("datatype").and_then(Value::as_str).unwrap_or("");
    let dims = shape(input, "inputs[0]")?;
    let data = input.get("data").ok_or_else(|| bad("inputs[0].data", "required"))?;
    let f = model.n_features();
    let started = std::time::Instant::now();
    let mut rows: Vec<crate::predict::Prediction<'_>> = Vec::new();
    match iname {
        "machine_id" => {
            if !["INT64", "INT32", "UINT32", "UINT64"].contains(&dtype) {
                return Err(bad("inputs[0].datatype", format!("machine_id must be an integer tensor, got {dtype:?}")));
            }
            let mut ids = Vec::new();
            flatten(data, "inputs[0].data", &mut ids, false)?;
            let n = match dims.as_slice() {
                [n] | [n, 1] => *n,
                _ => return Err(bad("inputs[0].shape", format!("expected [N] or [N, 1], got {dims:?}"))),
            };
            if ids.len() != n {
                return Err(bad("inputs[0].data", format!("shape {dims:?} needs {n} values, got {}", ids.len())));
            }
            crate::predict::check_batch(st, n, "inputs[0]")?;
            for (i, id) in ids.iter().enumerate() {
                if id.fract() != 0.0 || *id < 0.0 || *id > f64::from(u32::MAX) {
                    return Err(bad(&format!("inputs[0].data[{i}]"), format!("{id} is not a machine id")));
                }
                let req = PredictRequest { machine: *id as u32, source: Source::State, return_features: false };
                let p = predict_one(st, &model, &req, &format!("inputs[0].data[{i}]"))?;
                rows.push(p);
            }
        }
        "features" => {
            if !["FP32", "FP64"].contains(&dtype) {
                return Err(bad("inputs[0].datatype", format!("features must be FP32 or FP64, got {dtype:?}")));
            }
            let n = match dims.as_slice() {
                [n, cols] if *cols == f => *n,
                _ => {
                    return Err(bad(
                        "inputs[0].shape",
                        format!("expected [N, {f}] (the model's {f} features), got {dims:?}"),
                    ));
                }
            };
            crate::predict::check_batch(st, n, "inputs[0]")?;
            let mut values = Vec::with_capacity(n * f);
            flatten(data, "inputs[0].data", &mut values, true)?;
            if values.len() != n * f {
                return Err(bad(
                    "inputs[0].data",
                    format!("shape {dims:?} needs {} values, got {}", n * f, values.len()),
                ));
            }
            for (i, row) in values.chunks_exact(f).enumerate() {
                if let Some(j) = row.iter().position(|x| x.is_infinite()) {
                    return Err(bad(&format!("inputs[0].data[{}]", i * f + j), "not a finite number"));
                }
                rows.push(finish(st, &model, 0, row, None, None, "features"));
            }
        }
        other => {
            return Err(bad("inputs[0].name", format!("unknown input {other:?}; expected machine_id or features")));
        }
    }
    let n = rows.len();
    let wanted: Option<Vec<String>> = req
        .get("outputs")
        .and_then(Value::as_array)
        .map(|outs| outs.iter().filter_map(|o| o.get("name").and_then(Value::as_str).map(str::to_string)).collect());
    let want = |name: &str| wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == name));
    if let Some(w) = &wanted {
        let known = ["failure_probability", "failure_prediction", "risk_level", "component_probabilities"];
        if let Some(u) = w.iter().find(|x| {
            !known.contains(&x.as_str()) || (x.as_str() == "component_probabilities" && !model.per_component())
        }) {
            return Err(bad("outputs", format!("unknown output {u:?}; see the model metadata")));
        }
    }
    let mut outputs = Vec::new();
    if want("failure_probability") {
        outputs.push(json!({ "name": "failure_probability", "datatype": "FP64", "shape": [n], "data": rows.iter().map(|r| r.failure_probability).collect::<Vec<_>>() }));
    }
    if want("failure_prediction") {
        outputs.push(json!({ "name": "failure_prediction", "datatype": "BOOL", "shape": [n], "data": rows.iter().map(|r| r.failure_prediction).collect::<Vec<_>>() }));
    }
    if want("risk_level") {
        outputs.push(json!({ "name": "risk_level", "datatype": "BYTES", "shape": [n], "data": rows.iter().map(|r| r.risk_level).collect::<Vec<_>>() }));
    }
    if model.per_component() && want("component_probabilities") {
        let c = model.bundle.feature_spec.contract.components.len();
        // In the contract's component order (the metadata's), whatever the names sort as.
        let comps = &model.bundle.feature_spec.contract.components;
        let data: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                comps.iter().map(move |c| {
                    r.component_probabilities.as_ref().and_then(|m| m.get(c.as_str()).copied()).unwrap_or(f64::NAN)
                })
            })
            .collect();
        outputs.push(json!({ "name": "component_probabilities", "datatype": "FP64", "shape": [n, c], "data": data }));
    }
    let mut resp = json!({
        "model_name": model.bundle.name,
        "model_version": model.version,
        "outputs": outputs,
        "parameters": { "processing_time_seconds": started.elapsed().as_secs_f64() },
    });
    if let Some(id) = req.get("id") {
        resp["id"] = id.clone();
    }
    Ok(Json(resp).into_response())
}
