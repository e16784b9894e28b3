//! Scoring: a validated request → a feature row (through `pm_core::features::compute_row`, the
//! function training used) → the bundle's model → a prediction.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use pm_core::data::time::{HOUR, Timestamp};
use pm_core::features::online::MachineState;
use pm_core::learn::model::Scores;
use serde::Serialize;

use crate::error::ApiError;
use crate::fleet::Computed;
use crate::input::{PredictRequest, Source, Window, at, join};
use crate::model::Loaded;
use crate::state::AppState;

/// One prediction, as answered.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction<'a> {
    #[serde(rename = "machineID")]
    pub machine_id: u32,
    /// Time of the reading the features are for.
    pub datetime: String,
    pub failure_probability: f64,
    /// `failure_probability >= threshold`.
    pub failure_prediction: bool,
    pub threshold: f64,
    pub risk_level: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component_probabilities: Option<BTreeMap<&'a str, f64>>,
    pub model_name: &'a str,
    pub model_version: &'a str,
    /// `state` (the server's buffer) or `window` (the history in the request).
    pub mode: &'static str,
    /// Hours from the oldest reading used to the scored one, inclusive.
    pub history_hours: f64,
    pub prediction_timestamp: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The feature row (on request); missing values are `null`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeMap<&'a str, Option<f64>>>,
}

/// An item of a batch answer: a prediction or the item's error.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Item<'a> {
    Ok(Box<Prediction<'a>>),
    Err { index: usize, error: ApiError },
}

/// Computes the feature row of a request into `x`, and its scores when the fleet's buffer
/// gave them (a window's are scored by the caller).
fn features(
    st: &AppState,
    model: &Loaded,
    req: &PredictRequest,
    path: &str,
    x: &mut [f64],
) -> Result<(Computed, &'static str, Option<Scores>), ApiError> {
    let spec = &model.bundle.feature_spec;
    let fallback = model.machines.get(&req.machine).copied();
    match &req.source {
        Source::State | Source::Reading(_) => {
            if let Source::Reading(r) = &req.source {
                st.fleet.push_reading(spec, req.machine, r.time, &r.values).map_err(|e| with_path(e, path))?;
            }
            let scored = st
                .fleet
                .scored(spec, req.machine, model.id, fallback, x, |x| score(model, x))
                .map_err(|e| with_path(e, path))?;
            let (computed, scores) = scored.ok_or_else(|| {
                ApiError::not_found(
                    "unknown_machine",
                    format!(
                        "machine {} has no readings in this server; POST its readings to /telemetry first, or send its recent history with the request",
                        req.machine
                    ),
                )
            })?;
            Ok((computed, "state", Some(scores)))
        }
        Source::Window(w) => Ok((window_features(model, req.machine, w, fallback, path, x)?, "window", None)),
    }
}

fn with_path(mut e: ApiError, path: &str) -> ApiError {
    if e.field.is_none() && !path.is_empty() {
        e.field = Some(path.to_string());
    }
    e
}

/// Features of a history carried by the request, through a fresh buffer (so that the same code
/// path as the stateful mode, and as training, computes them).
fn window_features(
    model: &Loaded,
    machine: u32,
    w: &Window,
    fallback: Option<(u16, f64)>,
    path: &str,
    x: &mut [f64],
) -> Result<Computed, ApiError> {
    let spec = &model.bundle.feature_spec;
    // Paths are only built for an error.
    let hp = || join(path, "history");
    let mut s = MachineState::new(spec);
    s.reserve(w.readings.len());
    let meta = w.machine.map(|m| (m.model, m.age)).or(fallback);
    if let Some((model_idx, age)) = meta {
        s.set_machine(spec, model_idx, age).map_err(|e| ApiError::invalid(join(&hp(), "machine"), e.to_string()))?;
    }
    // Readings in time order, so that none is "older than the buffer" (a client sends them so,
    // and then no order is built).
    let order = (!w.readings.is_sorted_by_key(|r| r.time)).then(|| {
        let mut order: Vec<usize> = (0..w.readings.len()).collect();
        order.sort_by_key(|&i| w.readings[i].time);
        order
    });
    let index = |k: usize| order.as_ref().map_or(k, |o| o[k]);
    // Events first: a reading prunes only what its windows no longer need.
    for (i, e) in w.maint.iter().enumerate() {
        s.push_maint(spec, e.time, e.kind)
            .map_err(|err| ApiError::invalid(at(&join(&hp(), "maint"), i), err.to_string()))?;
    }
    for (i, e) in w.errors.iter().enumerate() {
        s.push_error(spec, e.time, e.kind)
            .map_err(|err| ApiError::invalid(at(&join(&hp(), "errors"), i), err.to_string()))?;
    }
    let in_order = (0..w.readings.len()).map(|k| &w.readings[index(k)]);
    s.push_readings(spec, machine, in_order.map(|r| (r.time, &r.values[..]))).map_err(|(k, err)| {
        // As the buffer's own refusals are answered (409 for two readings at one time), located.
        let e = ApiError::from(err);
        ApiError::invalid(at(&join(&hp(), "readings"), index(k)), e.message).with_status(e.status).with_code(e.code)
    })?;
    let time = s.features_latest(spec, machine, x).map_err(ApiError::from)?;
    Ok(Computed { time, oldest: s.oldest().unwrap_or(time), readings: s.len(), described: s.machine().is_some() })
}

/// Scores one request with `model`.
pub fn predict_one<'a>(
    st: &AppState,
    model: &'a Loaded,
    req: &PredictRequest,
    path: &str,
) -> Result<Prediction<'a>, ApiError> {
    let spec = &model.bundle.feature_spec;
    let mut x = vec![0.0f64; model.n_features()];
    let (computed, mode, scores) = features(st, model, req, path, &mut x)?;
    if spec.machine && !computed.described {
        return Err(ApiError::not_found(
            "unknown_machine",
            format!(
                "machine {} is not in the model's fleet and its model and age are unknown; describe it (\"machines\" in /telemetry, or \"history.machine\")",
                req.machine
            ),
        ));
    }
    let p = finish(st, model, req.machine, &x, scores, Some(computed), mode);
    Ok(if req.return_features { with_features(p, model, &x) } else { p })
}

/// The prediction of a feature row: its `scores` (computed here when `None`); `computed`: facts
/// about its history, when the server computed it. Without the row (see [`with_features`]).
pub fn finish<'a>(
    st: &AppState,
    model: &'a Loaded,
    machine: u32,
    x: &[f64],
    scores: Option<Scores>,
    computed: Option<Computed>,
    mode: &'static str,
) -> Prediction<'a> {
    let scores = scores.unwrap_or_else(|| score(model, x));
    model.drift.record(x);
    let threshold = model.bundle.threshold;
    let risk = st.cfg.risk.level(scores.failure, threshold);
    st.metrics.count_prediction(risk.as_str());
    st.metrics.score.observe(scores.failure);
    let spec = &model.bundle.feature_spec;
    let mut warnings = Vec::new();
    let history_hours = computed.map_or(0.0, |c| ((c.time - c.oldest) / HOUR) as f64 + 1.0);
    if let Some(c) = computed {
        let needed = spec.telemetry_history_hours();
        if history_hours < f64::from(needed) {
            warnings.push(format!(
                "only {history_hours} h of readings ({} readings); the model's longest window is {needed} h: its statistics cover less history",
                c.readings
            ));
        }
    }
    let missing: Vec<&str> =
        model.names.iter().zip(x).filter(|(_, v)| v.is_nan()).map(|(n, _)| n.as_str()).take(8).collect();
    if !missing.is_empty() {
        let total = x.iter().filter(|v| v.is_nan()).count();
        warnings.push(format!(
            "{total} features have no value (not enough history, or sensor values missing): {}",
            missing.join(", ")
        ));
    }
    let components = (!scores.components.is_empty())
        .then(|| spec.contract.components.iter().map(String::as_str).zip(scores.components.iter().copied()).collect());
    Prediction {
        machine_id: machine,
        datetime: computed.map_or_else(String::new, |c| Timestamp(c.time).rfc3339()),
        failure_probability: scores.failure,
        failure_prediction: scores.failure >= threshold,
        threshold,
        risk_level: risk.as_str(),
        component_probabilities: components,
        model_name: &model.bundle.name,
        model_version: &model.version,
        mode,
        history_hours,
        prediction_timestamp: pm_core::data::time::now_rfc3339(),
        warnings,
        features: None,
    }
}

/// Adds the feature row `x` to a prediction (missing values as `null`).
pub fn with_features<'a>(mut p: Prediction<'a>, model: &'a Loaded, x: &[f64]) -> Prediction<'a> {
    p.features =
        Some(model.names.iter().map(String::as_str).zip(x.iter().map(|v| (!v.is_nan()).then_some(*v))).collect());
    p
}

/// The model's scores of a feature row: features are computed in f64 and rounded to f32 once,
/// as the training table was.
pub fn score(model: &Loaded, x: &[f64]) -> Scores {
    // The model reads f32 features, as it was trained (on the stack for the usual widths).
    const STACK: usize = 128;
    if x.len() <= STACK {
        let mut buf = [0f32; STACK];
        for (b, &v) in buf.iter_mut().zip(x) {
            *b = v as f32;
        }
        model.flat.predict(&buf[..x.len()])
    } else {
        let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        model.flat.predict(&x32)
    }
}

/// The items of a list body (`/predict/batch`, Vertex `instances`): read by the fast path, or
/// JSON values the `Value` path reads item by item.
pub enum List {
    Parsed(Vec<PredictRequest>),
    Values(Vec<serde_json::Value>),
}

impl List {
    pub fn len(&self) -> usize {
        match self {
            List::Parsed(l) => l.len(),
            List::Values(l) => l.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every item's prediction or error, in order (an item's errors name `list[i]`).
    pub fn predict<'a>(&self, st: &AppState, model: &'a Loaded, list: &str) -> Vec<Item<'a>> {
        let one = |i: usize, path: &str| match self {
            List::Parsed(l) => predict_one(st, model, &l[i], path),
            List::Values(l) => {
                model.vocab.predict_request(&l[i], path).and_then(|req| predict_one(st, model, &req, path))
            }
        };
        (0..self.len())
            .map(|i| match one(i, &at(list, i)) {
                Ok(p) => Item::Ok(Box::new(p)),
                Err(error) => {
                    st.metrics.prediction_failures.with_label_values(&[error.code]).inc();
                    Item::Err { index: i, error }
                }
            })
            .collect()
    }
}

/// Refuses a list over the batch limit, naming the limit.
pub fn check_batch(st: &AppState, n: usize, field: &str) -> Result<(), ApiError> {
    if n > st.cfg.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{field} has {n} items; this server accepts at most {} per request (--max-batch): split the batch",
                st.cfg.max_batch
            ),
        ));
    }
    Ok(())
}
