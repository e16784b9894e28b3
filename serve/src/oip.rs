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
//!
//! Tensors travel as JSON or, with the binary tensor data extension that Triton's clients use by
//! default, as bytes after the request's JSON (`Inference-Header-Content-Length` says where the
//! JSON ends; an input's `parameters.binary_data_size` says how many bytes are its own). An output
//! comes back as bytes when its `parameters.binary_data` (else the request's
//! `parameters.binary_data_output`) is true.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{FromRequest, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use bytes::Bytes;

use crate::body::{JsonBody, check_content_type, parse_json, read_body};
use crate::error::ApiError;
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

/// KServe V1's model routes beside its `:predict` (routed with the other work routes): the model
/// list and the model's readiness (`{"name", "ready"}`, 503 while no model is loaded).
pub fn v1_routes(light: &mut BTreeMap<String, MethodRouter<AppState>>) {
    light.insert("/v1/models".into(), get(v1_models));
    light.insert("/v1/models/{name}".into(), get(model_ready).post(v1_other_predict));
}

async fn v1_models(State(st): State<AppState>) -> Json<Value> {
    Json(json!({ "models": st.slot.get().map(|m| vec![m.bundle.name.clone()]).unwrap_or_default() }))
}

/// `POST /v1/models/<name>:predict` for a model this server does not serve (the served one's
/// route is matched before this one).
async fn v1_other_predict(Path(name): Path<String>, State(st): State<AppState>) -> Response {
    let model = name.strip_suffix(":predict").unwrap_or(&name);
    match resolve(&st, model, None) {
        Err(e) => e.into_response(),
        Ok(m) => ApiError::not_found(
            "no_route",
            format!("no route POST /v1/models/{name}; predictions are at /v1/models/{}:predict", m.bundle.name),
        )
        .into_response(),
    }
}

async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "pm-serve", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }))
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

async fn infer(State(st): State<AppState>, Path(name): Path<String>, body: Result<InferBody, ApiError>) -> Response {
    run_infer(&st, &name, None, body).unwrap_or_else(ApiError::into_oip)
}

async fn infer_v(
    State(st): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    body: Result<InferBody, ApiError>,
) -> Response {
    run_infer(&st, &name, Some(&version), body).unwrap_or_else(ApiError::into_oip)
}

/// The header of the binary tensor data extension: the length of the JSON that starts the body.
const HEADER_LENGTH: &str = "inference-header-content-length";

/// An inference request: its JSON, and the tensor bytes after it when the client uses the binary
/// tensor data extension (header `Inference-Header-Content-Length`, as Triton's clients do by
/// default). Without that header the body is JSON alone.
pub struct InferBody {
    json: Value,
    binary: Bytes,
}

impl FromRequest<AppState> for InferBody {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &AppState) -> Result<Self, ApiError> {
        let Some(length) = req.headers().get(HEADER_LENGTH) else {
            let JsonBody(json) = JsonBody::from_request(req, state).await?;
            return Ok(InferBody { json, binary: Bytes::new() });
        };
        let text = String::from_utf8_lossy(length.as_bytes()).into_owned();
        let n: usize = text.trim().parse().map_err(|_| {
            bad("Inference-Header-Content-Length", format!("expected the JSON header's length in bytes, got {text:?}"))
        })?;
        check_content_type(req.headers().get(header::CONTENT_TYPE), Some("application/octet-stream"))?;
        let body = read_body(req, state).await?;
        if n > body.len() {
            return Err(bad(
                "Inference-Header-Content-Length",
                format!("the JSON header is said to be {n} bytes long, but the body has {} bytes", body.len()),
            ));
        }
        Ok(InferBody { json: parse_json(&body[..n])?, binary: body.slice(n..) })
    }
}

/// A client's feature vector (the `index`th value of the tensor onwards): each value missing
/// (NaN) or finite and within the range the sensors' physical bounds give that feature — the
/// bounds `/predict` holds readings to, so a reading refused there is refused here as a feature.
fn check_features(model: &Loaded, row: &[f64], index: usize) -> Result<(), ApiError> {
    for (j, (&x, &(lo, hi))) in row.iter().zip(&model.feature_ranges).enumerate() {
        let field = || format!("inputs[0].data[{}]", index + j);
        if x.is_infinite() {
            return Err(bad(&field(), "not a finite number"));
        }
        if !x.is_nan() && !(lo..=hi).contains(&x) {
            let name = &model.names[j];
            return Err(ApiError::invalid(
                field(),
                format!("feature {name} = {x:?} is outside its range [{lo}, {hi}] (the sensors' physical bounds)"),
            )
            .with_code("out_of_bounds"));
        }
    }
    Ok(())
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, message).with_status(StatusCode::BAD_REQUEST)
}

/// A tensor's `data`, flat or nested, as numbers of `dtype`: an FP32 value is rounded to FP32
/// (as the same tensor sent as binary data is), and one too large for FP32 is refused.
fn flatten(v: &Value, path: &str, dtype: &str, out: &mut Vec<f64>, nulls_are_nan: bool) -> Result<(), ApiError> {
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                if x.is_array() {
                    flatten(x, path, dtype, out, nulls_are_nan)?;
                } else {
                    let at = || format!("{path}[{}]", out.len());
                    match x {
                        Value::Number(n) => {
                            let x = n.as_f64().unwrap_or(f64::NAN);
                            if dtype == "FP32" {
                                let single = x as f32;
                                if single.is_infinite() {
                                    return Err(bad(&at(), format!("{n} does not fit in FP32")));
                                }
                                out.push(f64::from(single));
                            } else {
                                out.push(x);
                            }
                        }
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

/// Little-endian elements of `N` bytes, each converted by `f` (the length is a multiple of `N`).
fn elements<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
    bytes.as_chunks::<N>().0.iter().map(|c| f(*c)).collect()
}

/// The bytes of one element of a numeric datatype the inputs take.
fn width(dtype: &str) -> Option<usize> {
    match dtype {
        "INT64" | "UINT64" | "FP64" => Some(8),
        "INT32" | "UINT32" | "FP32" => Some(4),
        _ => None,
    }
}

/// A run of `dtype` elements (its length a multiple of [`width`]).
fn decode(dtype: &str, bytes: &[u8]) -> Vec<f64> {
    match dtype {
        "INT64" => elements(bytes, |c| i64::from_le_bytes(c) as f64),
        "UINT64" => elements(bytes, |c| u64::from_le_bytes(c) as f64),
        "INT32" => elements(bytes, |c| f64::from(i32::from_le_bytes(c))),
        "UINT32" => elements(bytes, |c| f64::from(u32::from_le_bytes(c))),
        "FP64" => elements(bytes, f64::from_le_bytes),
        _ => elements(bytes, |c| f64::from(f32::from_le_bytes(c))),
    }
}

/// The values of input tensor `path` (of a datatype already checked): its `data`, or — binary
/// tensor data extension — the `parameters.binary_data_size` bytes it takes off the front of
/// `binary`.
fn tensor_values(
    input: &serde_json::Map<String, Value>,
    path: &str,
    dtype: &str,
    binary: &mut &[u8],
    nulls_are_nan: bool,
) -> Result<Vec<f64>, ApiError> {
    let size = input.get("parameters").and_then(|p| p.get("binary_data_size"));
    match (input.get("data"), size) {
        (Some(_), Some(_)) => {
            Err(bad(path, "carries both data and parameters.binary_data_size; send the values one way"))
        }
        (Some(data), None) => {
            let mut out = Vec::new();
            flatten(data, &format!("{path}.data"), dtype, &mut out, nulls_are_nan)?;
            Ok(out)
        }
        (None, Some(size)) => {
            let field = format!("{path}.parameters.binary_data_size");
            let n = size.as_u64().ok_or_else(|| bad(&field, format!("expected a byte count, got {size}")))?;
            let width = width(dtype).ok_or_else(|| bad(&field, format!("{dtype} is not sent as binary data here")))?;
            let n = usize::try_from(n).unwrap_or(usize::MAX);
            if n > binary.len() {
                return Err(bad(
                    &field,
                    format!("{n} bytes, but {} bytes of binary data follow the JSON header", binary.len()),
                ));
            }
            if n % width != 0 {
                return Err(bad(
                    &field,
                    format!("{n} bytes is not a whole number of {dtype} values ({width} bytes each)"),
                ));
            }
            let (mine, rest) = binary.split_at(n);
            *binary = rest;
            Ok(decode(dtype, mine))
        }
        (None, None) => Err(bad(
            &format!("{path}.data"),
            "required (or parameters.binary_data_size, with the tensor's bytes after the JSON header)",
        )),
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

/// `true`/`false` at `key` of `parameters` (absent: `None`); `path` names `parameters` in errors.
fn flag(parameters: Option<&Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match parameters.and_then(|p| p.get(key)) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(&format!("{path}.{key}"), format!("expected true or false, got {other}"))),
    }
}

/// The model's output tensors.
const OUTPUTS: [&str; 4] = ["failure_probability", "failure_prediction", "risk_level", "component_probabilities"];

/// The outputs a request asks for, in the model's order, each with whether it wants binary data
/// (`outputs[i].parameters.binary_data`, else the request's `parameters.binary_data_output`,
/// else JSON). No `outputs`: all of them.
fn requested_outputs(
    req: &serde_json::Map<String, Value>,
    model: &Loaded,
) -> Result<Vec<(&'static str, bool)>, ApiError> {
    let all_binary = flag(req.get("parameters"), "binary_data_output", "parameters")?.unwrap_or(false);
    let available = |name: &str| name != "component_probabilities" || model.per_component();
    let Some(list) = req.get("outputs") else {
        return Ok(OUTPUTS.iter().filter(|o| available(o)).map(|&o| (o, all_binary)).collect());
    };
    let list = list.as_array().ok_or_else(|| bad("outputs", format!("expected an array of outputs, got {list}")))?;
    let mut wanted: Vec<(&'static str, bool)> = Vec::new();
    for (i, o) in list.iter().enumerate() {
        let path = format!("outputs[{i}]");
        let name = o.get("name").and_then(Value::as_str).ok_or_else(|| bad(&format!("{path}.name"), "required"))?;
        let Some(&known) = OUTPUTS.iter().find(|&&k| k == name && available(k)) else {
            return Err(bad(&format!("{path}.name"), format!("unknown output {name:?}; see the model metadata")));
        };
        let binary = flag(o.get("parameters"), "binary_data", &format!("{path}.parameters"))?.unwrap_or(all_binary);
        wanted.push((known, binary));
    }
    wanted.sort_by_key(|(name, _)| OUTPUTS.iter().position(|o| o == name));
    wanted.dedup_by_key(|(name, _)| *name);
    Ok(wanted)
}

/// An output tensor's values.
enum Data {
    Fp64(Vec<f64>),
    Bool(Vec<bool>),
    Bytes(Vec<&'static str>),
}

impl Data {
    fn datatype(&self) -> &'static str {
        match self {
            Data::Fp64(_) => "FP64",
            Data::Bool(_) => "BOOL",
            Data::Bytes(_) => "BYTES",
        }
    }

    fn json(&self) -> Value {
        match self {
            Data::Fp64(v) => json!(v),
            Data::Bool(v) => json!(v),
            Data::Bytes(v) => json!(v),
        }
    }

    /// The binary tensor data extension's encoding: little-endian numbers, one byte per BOOL,
    /// each BYTES element as its 4-byte little-endian length and then its bytes.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Data::Fp64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Data::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
            Data::Bytes(v) => {
                for s in v {
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
}

/// KServe's client also names the model (and may name its version) in the body: they must agree
/// with the URL, and a version named only there must be the served one.
fn check_body_names(
    st: &AppState,
    req: &serde_json::Map<String, Value>,
    name: &str,
    version: Option<&str>,
) -> Result<(), ApiError> {
    let text = |key: &str| match req.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(bad(key, format!("expected a string, got {other}"))),
    };
    if let Some(n) = text("model_name")?
        && n != name
    {
        return Err(bad("model_name", format!("the body names model {n:?}, the URL {name:?}")));
    }
    match (version, text("model_version")?) {
        (Some(url), Some(body)) if url != body => {
            Err(bad("model_version", format!("the body names version {body:?}, the URL {url:?}")))
        }
        (None, Some(body)) => resolve(st, name, Some(body)).map(|_| ()),
        _ => Ok(()),
    }
}

fn run_infer(
    st: &AppState,
    name: &str,
    version: Option<&str>,
    body: Result<InferBody, ApiError>,
) -> Result<Response, ApiError> {
    let model = resolve(st, name, version)?;
    let InferBody { json: v, binary } = body?;
    let mut binary = &binary[..];
    let req = v.as_object().ok_or_else(|| bad("", "expected an inference request object"))?;
    const FIELDS: [&str; 6] = ["id", "parameters", "inputs", "outputs", "model_name", "model_version"];
    if let Some(k) = req.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(bad(k, "unknown field; expected id, parameters, inputs, outputs (model_name, model_version)"));
    }
    check_body_names(st, req, name, version)?;
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
    let outputs_wanted = requested_outputs(req, &model)?;
    let f = model.n_features();
    let started = std::time::Instant::now();
    let mut rows: Vec<crate::predict::Prediction<'_>> = Vec::new();
    match iname {
        "machine_id" => {
            if !["INT64", "INT32", "UINT32", "UINT64"].contains(&dtype) {
                return Err(bad("inputs[0].datatype", format!("machine_id must be an integer tensor, got {dtype:?}")));
            }
            let ids = tensor_values(input, "inputs[0]", dtype, &mut binary, false)?;
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
            let values = tensor_values(input, "inputs[0]", dtype, &mut binary, true)?;
            if values.len() != n * f {
                return Err(bad(
                    "inputs[0].data",
                    format!("shape {dims:?} needs {} values, got {}", n * f, values.len()),
                ));
            }
            for (i, row) in values.chunks_exact(f).enumerate() {
                check_features(&model, row, i * f)?;
                rows.push(finish(st, &model, 0, row, None, None, "features"));
            }
        }
        other => {
            return Err(bad("inputs[0].name", format!("unknown input {other:?}; expected machine_id or features")));
        }
    }
    if !binary.is_empty() {
        return Err(bad(
            "inputs",
            format!(
                "{} bytes of binary data follow the JSON header that no input's binary_data_size claims",
                binary.len()
            ),
        ));
    }
    let (outputs, tail) = output_tensors(&rows, &outputs_wanted, &model.bundle.feature_spec.contract.components);
    let mut resp = json!({
        "model_name": model.bundle.name,
        "model_version": model.version,
        "outputs": outputs,
        "parameters": { "processing_time_seconds": started.elapsed().as_secs_f64() },
    });
    if let Some(id) = req.get("id") {
        resp["id"] = id.clone();
    }
    if tail.is_empty() {
        return Ok(Json(resp).into_response());
    }
    // The JSON, then the binary outputs in order; the header says where the JSON ends.
    let mut body = resp.to_string().into_bytes();
    let header_length = body.len();
    body.extend_from_slice(&tail);
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream")),
        (HeaderName::from_static(HEADER_LENGTH), HeaderValue::from(header_length)),
    ];
    Ok((headers, body).into_response())
}

/// The requested output tensors of `rows`, each with its `data` or — binary — its
/// `parameters.binary_data_size`, and the binary outputs' bytes in the same order.
fn output_tensors(
    rows: &[crate::predict::Prediction<'_>],
    wanted: &[(&'static str, bool)],
    components: &[String],
) -> (Vec<Value>, Vec<u8>) {
    let n = rows.len();
    let mut outputs = Vec::new();
    let mut tail = Vec::new();
    for &(output, binary) in wanted {
        let (data, shape) = match output {
            "failure_probability" => (Data::Fp64(rows.iter().map(|r| r.failure_probability).collect()), json!([n])),
            "failure_prediction" => (Data::Bool(rows.iter().map(|r| r.failure_prediction).collect()), json!([n])),
            "risk_level" => (Data::Bytes(rows.iter().map(|r| r.risk_level).collect()), json!([n])),
            _ => {
                // In the contract's component order (the metadata's), whatever the names sort as.
                let data = rows
                    .iter()
                    .flat_map(|r| {
                        components.iter().map(move |c| {
                            r.component_probabilities
                                .as_ref()
                                .and_then(|m| m.get(c.as_str()).copied())
                                .unwrap_or(f64::NAN)
                        })
                    })
                    .collect();
                (Data::Fp64(data), json!([n, components.len()]))
            }
        };
        let mut tensor = json!({ "name": output, "datatype": data.datatype(), "shape": shape });
        if binary {
            let before = tail.len();
            data.write(&mut tail);
            tensor["parameters"] = json!({ "binary_data_size": tail.len() - before });
        } else {
            tensor["data"] = data.json();
        }
        outputs.push(tensor);
    }
    (outputs, tail)
}
