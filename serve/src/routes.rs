//! The HTTP surface: routes, middleware (metrics, body limit, timeout, load shedding) and the
//! handlers of the native API. Open Inference Protocol routes are in [`crate::oip`], the OpenAPI
//! document and docs page in [`crate::docs`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use serde_json::{Value, json};

use crate::body::{JsonBody, JsonBytes, cpu};
use crate::error::ApiError;
use crate::layers::App;
use crate::predict::{Item, List, check_batch, predict_one};
use crate::state::AppState;

/// Checks a route given from outside (Vertex's `AIP_*_ROUTE`): the router would refuse
/// (panic on) these.
pub fn check_route(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("route {path:?} must start with '/'"));
    }
    if path.contains(['{', '}', '*']) || path.split('/').any(|seg| seg.starts_with(':')) {
        return Err(format!("route {path:?} may not contain '{{', '}}', '*' or a segment starting with ':'"));
    }
    Ok(())
}

/// The application: every route, with its middleware ([`crate::layers`]). Routes that do work
/// (predictions, telemetry, inference) are limited in concurrency, shed when overloaded (503 +
/// Retry-After) and timed out; probes, metrics and documents are never shed.
pub fn app(st: AppState) -> App {
    // Routes by path, so that a Vertex route equal to a built-in one replaces it instead of
    // clashing (e.g. AIP_PREDICT_ROUTE=/predict).
    let mut work: BTreeMap<String, MethodRouter<AppState>> = BTreeMap::new();
    let mut light: BTreeMap<String, MethodRouter<AppState>> = BTreeMap::new();
    work.insert("/predict".into(), post(predict));
    work.insert("/predict/batch".into(), post(predict_batch));
    work.insert("/telemetry".into(), post(telemetry));
    work.insert(format!("/v1/models/{}:predict", st.cfg.model_name), post(predict));
    crate::oip::v1_routes(&mut light);
    crate::oip::routes(&mut work, &mut light);
    light.insert("/".into(), get(root));
    light.insert("/health".into(), get(health));
    light.insert("/ready".into(), get(ready));
    light.insert("/model/info".into(), get(model_info));
    light.insert("/metrics".into(), get(metrics));
    light.insert("/metrics/summary".into(), get(metrics_summary));
    light.insert("/openapi.json".into(), get(crate::docs::openapi_json));
    light.insert("/docs".into(), get(crate::docs::docs_page));
    light.insert("/dashboard".into(), get(dashboard));
    if let Some(r) = &st.cfg.vertex_predict_route {
        light.remove(r);
        work.insert(r.clone(), post(predict));
    }
    if let Some(r) = &st.cfg.vertex_health_route {
        work.remove(r);
        // Vertex's health check means "ready to predict".
        light.insert(r.clone(), get(ready));
    }
    let mut routes = Vec::new();
    let mut router = Router::new();
    for (is_work, map) in [(true, work), (false, light)] {
        for (path, method_router) in map {
            router = router.route(&path, method_router);
            routes.push((path, is_work));
        }
    }
    let router = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(st.clone());
    App::new(st, router, routes)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "no_route",
        format!("no route {method} {}; the API is described at /openapi.json and /docs", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}; see /openapi.json", uri.path()),
    )
}

/// The model for this request, or 503.
pub fn model_or_503(st: &AppState) -> Result<std::sync::Arc<crate::model::Loaded>, ApiError> {
    st.slot.get().ok_or_else(|| ApiError::no_model(&st.slot.why_not_loaded()))
}

/// Batches above this size are scored off the async worker threads.
const INLINE_ITEMS: usize = 8;

/// `POST /predict`: one prediction; a body with `instances` is a Vertex AI / KServe V1 request.
/// A valid native request (or list of them) is read straight from the bytes; any other body is
/// parsed as a JSON value, which words what is wrong with it.
async fn predict(State(st): State<AppState>, body: JsonBytes) -> Result<Response, ApiError> {
    let model = model_or_503(&st)?;
    let req = match model.vocab.predict_request_fast(&body.0) {
        Some(req) => req,
        None => {
            if let Some((_, items)) = model.vocab.request_list_fast(&body.0, &["instances"]) {
                return vertex_predict(st, model, List::Parsed(items)).await;
            }
            let v = body.parse()?;
            if v.get("instances").is_some() {
                let mut map = crate::input::into_object(v, "")?;
                if let Some(k) = map.keys().find(|k| *k != "instances" && *k != "parameters") {
                    return Err(ApiError::invalid(
                        k.as_str(),
                        "unknown field; expected instances and optional parameters",
                    ));
                }
                if let Some(p) = map.get("parameters").filter(|p| !p.is_object()) {
                    return Err(ApiError::invalid("parameters", format!("expected an object, got {p}")));
                }
                let list = crate::input::into_array(map.remove("instances").unwrap_or_default(), "instances")?;
                return vertex_predict(st, model, List::Values(list)).await;
            }
            model.vocab.predict_request(&v, "").inspect_err(|e| count_failure(&st, e))?
        }
    };
    let p = predict_one(&st, &model, &req, "").inspect_err(|e| count_failure(&st, e))?;
    Ok(Json(p).into_response())
}

fn count_failure(st: &AppState, e: &ApiError) {
    st.metrics.prediction_failures.with_label_values(&[e.code]).inc();
}

/// `{"instances": [...], "parameters"?: {...}}` → `{"predictions": [...]}`, one per instance
/// (an instance that fails carries `{"error": {...}}`).
async fn vertex_predict(
    st: AppState,
    model: std::sync::Arc<crate::model::Loaded>,
    list: List,
) -> Result<Response, ApiError> {
    if list.is_empty() {
        return Err(ApiError::invalid("instances", "must not be empty"));
    }
    check_batch(&st, list.len(), "instances")?;
    let body = score_list(st, model, list, "instances", Shape::Vertex).await?;
    Ok(Json(body).into_response())
}

/// How a scored list is answered.
#[derive(Clone, Copy)]
enum Shape {
    /// `/predict/batch`: every item, with counts and the time taken since `started`.
    Batch { started: Instant },
    /// Vertex AI: `{"predictions": [...]}` only.
    Vertex,
}

/// Scores a list, on the blocking pool when it is long; returns its answer in `shape`.
async fn score_list(
    st: AppState,
    model: std::sync::Arc<crate::model::Loaded>,
    list: List,
    field: &'static str,
    shape: Shape,
) -> Result<Value, ApiError> {
    if list.len() <= INLINE_ITEMS {
        return Ok(list_answer(&st, &model, &list, field, shape));
    }
    cpu(move || list_answer(&st, &model, &list, field, shape)).await
}

/// Every item's answer in order; for `/predict/batch`, with counts.
fn list_answer(st: &AppState, model: &crate::model::Loaded, list: &List, field: &str, shape: Shape) -> Value {
    let items = list.predict(st, model, field);
    let Shape::Batch { started } = shape else {
        return json!({ "predictions": items });
    };
    let failed = items.iter().filter(|i| matches!(i, Item::Err { .. })).count();
    json!({
        "predictions": items,
        "total_predictions": items.len() - failed,
        "failed": failed,
        "model_version": model.version,
        "processing_time_seconds": started.elapsed().as_secs_f64(),
    })
}

/// `POST /predict/batch`: `{"predictions": [...]}` (the Python service's shape) or
/// `{"instances": [...]}`; at most `--max-batch` items; every item answered, in order. A list
/// of valid native requests is read straight from the bytes, as `/predict` reads one.
async fn predict_batch(State(st): State<AppState>, body: JsonBytes) -> Result<Response, ApiError> {
    let model = model_or_503(&st)?;
    let (field, list) = match model.vocab.request_list_fast(&body.0, &["predictions", "instances"]) {
        Some((field, items)) => (field, List::Parsed(items)),
        None => {
            let mut map = crate::input::into_object(body.parse()?, "")?;
            let field = match (map.contains_key("predictions"), map.contains_key("instances")) {
                (true, false) => "predictions",
                (false, true) => "instances",
                (true, true) => {
                    return Err(ApiError::invalid("", "send either predictions or instances, not both"));
                }
                (false, false) => return Err(ApiError::invalid("predictions", "required field is missing")),
            };
            if let Some(k) = map.keys().find(|k| k.as_str() != field) {
                return Err(ApiError::invalid(k.as_str(), format!("unknown field; expected {field}")));
            }
            (field, List::Values(crate::input::into_array(map.remove(field).unwrap_or_default(), field)?))
        }
    };
    check_batch(&st, list.len(), field)?;
    let body = score_list(st, model, list, field, Shape::Batch { started: Instant::now() }).await?;
    Ok(Json(body).into_response())
}

/// `POST /telemetry`: readings and events for one or many machines.
async fn telemetry(State(st): State<AppState>, JsonBody(v): JsonBody) -> Result<Response, ApiError> {
    let model = model_or_503(&st)?;
    let batch = model.vocab.telemetry(&v)?;
    let n = batch.len();
    let st2 = st.clone();
    let spec = model.bundle.feature_spec.clone();
    let applied =
        if n <= 64 { st.fleet.apply(&spec, &batch) } else { cpu(move || st2.fleet.apply(&spec, &batch)).await? };
    let m = &st.metrics.telemetry_items;
    let counts = [
        ("readings", applied.accepted.readings, applied.duplicates.readings),
        ("errors", applied.accepted.errors, applied.duplicates.errors),
        ("maint", applied.accepted.maint, applied.duplicates.maint),
        ("machines", applied.accepted.machines, applied.duplicates.machines),
    ];
    for (kind, acc, dup) in counts {
        m.with_label_values(&[kind, "accepted"]).inc_by(acc);
        m.with_label_values(&[kind, "duplicate"]).inc_by(dup);
    }
    for r in &applied.rejected {
        let kind = r.item.split('[').next().unwrap_or("readings");
        m.with_label_values(&[kind, "rejected"]).inc();
    }
    let body = json!({
        "accepted": applied.accepted,
        "duplicates": applied.duplicates,
        "rejected": applied.rejected,
        "fleet_machines": st.fleet.len(),
    });
    if applied.rejected.len() == n {
        // Nothing was applied: an error, with the per-item detail beside it.
        let first = &applied.rejected[0];
        let status = first.status;
        let err = ApiError::invalid(
            first.item.clone(),
            format!("none of the {n} items was applied; first refusal: {}", first.message),
        )
        .with_code("rejected");
        return Ok((status, Json(json!({ "error": err, "rejected": applied.rejected }))).into_response());
    }
    Ok(Json(body).into_response())
}

async fn root(State(st): State<AppState>) -> Json<Value> {
    let model = st.slot.get();
    Json(json!({
        // KServe V1 liveness reads this field.
        "status": "alive",
        "service": "pm-serve",
        "version": env!("CARGO_PKG_VERSION"),
        "description": "Predicts which machine will fail within the model's horizon, from features computed exactly as in training.",
        "model": model.as_ref().map(|m| json!({ "name": m.bundle.name, "version": m.version })),
        "endpoints": {
            "health": "/health",
            "ready": "/ready",
            "predict": "/predict",
            "predict_batch": "/predict/batch",
            "telemetry": "/telemetry",
            "model_info": "/model/info",
            "metrics": "/metrics",
            "metrics_summary": "/metrics/summary",
            "openapi": "/openapi.json",
            "docs": "/docs",
            "oip_v2": "/v2",
            "vertex_predict": st.cfg.vertex_predict_route,
            "vertex_health": st.cfg.vertex_health_route,
        }
    }))
}

/// Liveness: 200 while the process answers; the body says whether a model is served and
/// whether the last reload was refused.
/// `no_model`, `degraded` (a bundle was refused, or the last poll of the model source failed)
/// or `ok`: what /health and /metrics/summary (the dashboard) both say.
fn service_status(model_loaded: bool, s: &crate::model::LoadStatus) -> &'static str {
    match (model_loaded, &s.refused, &s.last_error) {
        (false, _, _) => "no_model",
        (true, Some(_), _) | (true, _, Some(_)) => "degraded",
        (true, None, None) => "ok",
    }
}

async fn health(State(st): State<AppState>) -> Json<Value> {
    let model = st.slot.get();
    let s = st.slot.status();
    let status = service_status(model.is_some(), &s);
    Json(json!({
        "status": status,
        "model_loaded": model.is_some(),
        "model_version": model.as_ref().map(|m| &m.version),
        "uptime_seconds": st.started.elapsed().as_secs_f64(),
        "source": s.source,
        "registry_active": s.registry_active,
        "refused": s.refused,
        "last_error": s.last_error,
        "last_poll": s.last_poll,
    }))
}

/// Readiness: 200 when a model is loaded (even if a newer one was refused: the previous one
/// keeps serving, and the body says so); 503 otherwise.
async fn ready(State(st): State<AppState>) -> Response {
    if st.priming.load(std::sync::atomic::Ordering::Acquire) {
        return ApiError::unavailable("priming", "loading the fleet's recent telemetry (--prime-from)", 2)
            .into_response();
    }
    match st.slot.get() {
        Some(m) => {
            let s = st.slot.status();
            Json(json!({ "ready": true, "model_version": m.version, "refused": s.refused })).into_response()
        }
        None => ApiError::no_model(&st.slot.why_not_loaded()).into_response(),
    }
}

async fn model_info(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    let m = model_or_503(&st)?;
    let b = &m.bundle;
    let mut top: Vec<(&String, f64)> = m.names.iter().zip(b.importance.iter().copied()).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (medium, high) = st.cfg.risk.cuts(b.threshold);
    let s = st.slot.status();
    Ok(Json(json!({
        "model_info": {
            "model_name": b.name,
            "version": m.version,
            "algorithm": b.model.algorithm,
            "bundle_sha256": m.sha256,
            "source": m.source,
            "loaded_at": m.loaded_at,
            "threshold": b.threshold,
            "threshold_rule": b.threshold_rule,
            "label_horizon_hours": b.feature_spec.label.horizon_hours,
            "per_component": m.per_component(),
            "components": b.feature_spec.contract.components,
            "validation": b.validation,
            "training_data_hash": b.training_data_hash,
            "trainer_version": b.trainer_version,
            "trees": b.model.failure.trees.len(),
            "fleet_machines_known": m.machines.len(),
        },
        "feature_count": m.n_features(),
        "features": m.names,
        "sample_features": m.names.iter().take(10).collect::<Vec<_>>(),
        "top_features": top.iter().take(10).map(|(n, v)| json!({ "feature": n, "importance": v })).collect::<Vec<_>>(),
        "history_needed_hours": { "telemetry": b.feature_spec.telemetry_history_hours(), "errors": b.feature_spec.error_history_hours() },
        "sensors": m.vocab.sensors.iter().zip(&m.vocab.bounds).map(|(n, (lo, hi))| json!({ "name": n, "min": lo, "max": hi })).collect::<Vec<_>>(),
        "risk_bands": { "MEDIUM": medium, "HIGH": high },
        "loader": s,
    })))
}

async fn metrics(State(st): State<AppState>) -> Response {
    let model = st.slot.get();
    let body = st.metrics.render(model.as_deref(), st.fleet.len());
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    resp
}

async fn metrics_summary(State(st): State<AppState>) -> Json<Value> {
    let model = st.slot.get();
    let m = &st.metrics;
    let risk = |r: &str| m.predictions.with_label_values(&[r]).get();
    let reload = |r: &str| m.reloads.with_label_values(&[r]).get();
    let families = m.registry.gather();
    let mut requests = 0u64;
    let mut errors = 0u64;
    for fam in families.iter().filter(|f| f.name() == "pm_http_requests_total") {
        for metric in fam.get_metric() {
            let v = metric.get_counter().get_value() as u64;
            requests += v;
            if metric.get_label().iter().any(|l| l.name() == "status" && l.value().starts_with('5')) {
                errors += v;
            }
        }
    }
    // Latency of the prediction and telemetry routes, as cumulative bucket counts (the dashboard
    // takes quantiles of the difference between two polls).
    let mut le: Vec<f64> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    for fam in families.iter().filter(|f| f.name() == "pm_http_request_duration_seconds") {
        for metric in fam.get_metric() {
            let work = metric.get_label().iter().any(|l| {
                l.name() == "route"
                    && (l.value().starts_with("/predict")
                        || l.value().starts_with("/telemetry")
                        || l.value().starts_with("/v1/")
                        || l.value().ends_with("/infer"))
            });
            if !work {
                continue;
            }
            let h = metric.get_histogram();
            let buckets = h.get_bucket();
            if le.is_empty() {
                le = buckets.iter().map(|b| b.upper_bound()).chain([f64::INFINITY]).collect();
                counts = vec![0; le.len()];
            }
            for (c, b) in
                counts.iter_mut().zip(buckets.iter().map(|b| b.cumulative_count()).chain([h.get_sample_count()]))
            {
                *c += b;
            }
        }
    }
    let le_json: Vec<Value> = le.iter().map(|&b| if b.is_finite() { json!(b) } else { json!("+Inf") }).collect();
    let (drift_rows, mut psi) = model.as_ref().map(|md| md.drift.psi()).unwrap_or_default();
    psi.sort_by(|a, b| b.1.total_cmp(&a.1));
    let s = st.slot.status();
    Json(json!({
        "service": "pm-serve",
        "status": service_status(model.is_some(), &s),
        "metrics": {
            "uptime_seconds": st.started.elapsed().as_secs_f64(),
            "requests_total": requests,
            "server_errors_total": errors,
            "total_predictions": risk("LOW") + risk("MEDIUM") + risk("HIGH"),
            "predictions_by_risk": { "LOW": risk("LOW"), "MEDIUM": risk("MEDIUM"), "HIGH": risk("HIGH") },
            "fleet_machines": st.fleet.len(),
            "latency": { "le": le_json, "counts": counts },
            "reloads": { "ok": reload("ok"), "refused": reload("refused"), "failed": reload("failed") },
            "drift": {
                "window_rows": drift_rows,
                "top_psi": psi.iter().take(5).map(|(n, v)| json!({ "feature": n, "psi": v })).collect::<Vec<_>>(),
            },
        },
        "model_info": model.as_ref().map(|md| json!({ "model_name": md.bundle.name, "version": md.version, "loaded_at": md.loaded_at, "bundle_sha256": md.sha256 })),
        "refused": s.refused,
    }))
}

/// The live dashboard: a static page polling `/metrics/summary`.
async fn dashboard() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("dashboard.html"))
}

/// Waits this long between polls of the model source.
pub fn poll_interval(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.05))
}
