//! Prometheus metrics (classic text format 0.0.4; `promtool check metrics` clean). Names carry
//! the `pm_` prefix and base units (`_seconds`, `_total`). Label values are bounded: routes are
//! the router's patterns (unmatched paths count as `unmatched`), statuses are codes, risk levels
//! and feature names come from the model.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Loaded;

#[derive(Clone, Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub http_inflight: IntGauge,
    pub predictions: IntCounterVec,
    pub prediction_failures: IntCounterVec,
    pub score: Histogram,
    pub model_info: IntGaugeVec,
    pub model_loaded: IntGauge,
    pub model_loaded_time: Gauge,
    pub model_refused: IntGauge,
    pub reloads: IntCounterVec,
    pub registry_polls: IntCounterVec,
    pub drift_psi: GaugeVec,
    pub drift_rows: IntGauge,
    pub fleet_machines: IntGauge,
    pub telemetry_items: IntCounterVec,
    pub build_info: IntGaugeVec,
    pub start_time: Gauge,
    /// `predictions` by risk level, resolved once (the label lookup takes a lock).
    by_risk: Vec<(&'static str, IntCounter)>,
    /// Tells this instance's entries apart in the per-thread caches of labelled children.
    id: u64,
}

/// Distinct [`Metrics::id`]s (tests build many registries in one process).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Labelled HTTP children cached per worker thread: prometheus' lookup takes a read lock and
/// clones an `Arc` that every worker shares, twice per request (a visible share of a stateful
/// `/predict`). Bounded: label sets beyond it are looked up each time.
struct HttpChild {
    metrics: u64,
    route: Box<str>,
    method: Box<str>,
    status: u16,
    requests: IntCounter,
    duration: Histogram,
}
const HTTP_CACHE_ENTRIES: usize = 64;
thread_local! {
    static HTTP_CHILDREN: RefCell<Vec<HttpChild>> = const { RefCell::new(Vec::new()) };
}

/// Rows the drift window needs before PSI is published.
pub const MIN_DRIFT_ROWS: usize = 100;

/// Latency buckets from 50 µs (a stateful prediction takes tens of µs) to 10 s.
const LATENCY_BUCKETS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> prometheus::Result<T> {
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        r.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let mut m = Metrics {
            http_requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("pm_http_requests_total", "HTTP requests answered, by route pattern, method and status."),
                    &["route", "method", "status"],
                )?,
            )?,
            http_duration: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new("pm_http_request_duration_seconds", "Time to answer an HTTP request, by route.")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route"],
                )?,
            )?,
            http_inflight: reg(&r, IntGauge::new("pm_http_requests_in_flight", "HTTP requests being answered.")?)?,
            predictions: reg(
                &r,
                IntCounterVec::new(Opts::new("pm_predictions_total", "Predictions served, by risk level."), &["risk"])?,
            )?,
            prediction_failures: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "pm_prediction_failures_total",
                        "Prediction items refused (also inside batches), by error code.",
                    ),
                    &["code"],
                )?,
            )?,
            score: reg(
                &r,
                Histogram::with_opts(
                    HistogramOpts::new("pm_prediction_score", "Predicted failure probabilities.")
                        .buckets(vec![0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]),
                )?,
            )?,
            model_info: reg(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "pm_model_info",
                        "The served model (value 1), by name, version, algorithm and bundle hash.",
                    ),
                    &["name", "version", "algorithm", "bundle_sha256"],
                )?,
            )?,
            model_loaded: reg(&r, IntGauge::new("pm_model_loaded", "1 when a model is loaded and serving.")?)?,
            model_loaded_time: reg(
                &r,
                Gauge::new("pm_model_loaded_timestamp_seconds", "Unix time at which the served model was loaded.")?,
            )?,
            model_refused: reg(
                &r,
                IntGauge::new(
                    "pm_model_refused",
                    "1 while the registry's active version is a bundle this server refused (the previous model keeps serving).",
                )?,
            )?,
            reloads: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "pm_model_reloads_total",
                        "Model loads: ok (installed), refused (bundle invalid or incompatible), failed (store unreadable).",
                    ),
                    &["result"],
                )?,
            )?,
            registry_polls: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("pm_registry_polls_total", "Polls of the model source, by result (ok, error)."),
                    &["result"],
                )?,
            )?,
            drift_psi: reg(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "pm_feature_drift_psi",
                        "Population stability index of recent inputs against the training baseline, per feature.",
                    ),
                    &["feature"],
                )?,
            )?,
            drift_rows: reg(
                &r,
                IntGauge::new("pm_feature_drift_window_rows", "Feature rows in the drift window (PSI sample size).")?,
            )?,
            fleet_machines: reg(&r, IntGauge::new("pm_fleet_machines", "Machines with buffered telemetry.")?)?,
            telemetry_items: reg(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "pm_telemetry_items_total",
                        "Telemetry items received, by kind (readings, errors, maint, machines) and result (accepted, duplicate, rejected).",
                    ),
                    &["kind", "result"],
                )?,
            )?,
            build_info: reg(
                &r,
                IntGaugeVec::new(Opts::new("pm_build_info", "Build of this server (value 1)."), &["version"])?,
            )?,
            start_time: reg(&r, Gauge::new("pm_start_time_seconds", "Unix time at which this server started.")?)?,
            registry: r,
            by_risk: Vec::new(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        };
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        m.start_time.set(now_secs());
        for risk in ["LOW", "MEDIUM", "HIGH"] {
            let c = m.predictions.with_label_values(&[risk]);
            m.by_risk.push((risk, c));
        }
        for result in ["ok", "refused", "failed"] {
            m.reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// Counts a prediction at `risk`.
    pub fn count_prediction(&self, risk: &str) {
        match self.by_risk.iter().find(|(r, _)| *r == risk) {
            Some((_, c)) => c.inc(),
            None => self.predictions.with_label_values(&[risk]).inc(),
        }
    }

    /// Counts and times one answered request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, secs: f64) {
        HTTP_CHILDREN.with(|cache| {
            let mut cache = cache.borrow_mut();
            let hit = cache
                .iter()
                .find(|c| c.metrics == self.id && c.status == status && &*c.route == route && &*c.method == method);
            if let Some(c) = hit {
                c.requests.inc();
                c.duration.observe(secs);
                return;
            }
            let code = status.to_string();
            let requests = self.http_requests.with_label_values(&[route, method, &code]);
            let duration = self.http_duration.with_label_values(&[route]);
            requests.inc();
            duration.observe(secs);
            if cache.len() >= HTTP_CACHE_ENTRIES {
                // Entries of other registries (tests build many) make room first.
                cache.retain(|c| c.metrics == self.id);
            }
            if cache.len() < HTTP_CACHE_ENTRIES {
                cache.push(HttpChild {
                    metrics: self.id,
                    route: route.into(),
                    method: method.into(),
                    status,
                    requests,
                    duration,
                });
            }
        });
    }

    /// Points the model gauges at a newly installed model.
    pub fn model_installed(&self, m: &Loaded) {
        self.model_info.reset();
        self.model_info.with_label_values(&[&m.bundle.name, &m.version, &m.bundle.model.algorithm, &m.sha256]).set(1);
        self.model_loaded.set(1);
        self.model_loaded_time.set(now_secs());
        self.reloads.with_label_values(&["ok"]).inc();
        // The drift gauges describe the served model's features only.
        self.drift_psi.reset();
    }

    /// Renders the text format, refreshing the gauges computed on demand first.
    pub fn render(&self, model: Option<&Loaded>, fleet_machines: usize) -> Vec<u8> {
        self.fleet_machines.set(fleet_machines as i64);
        if let Some(m) = model {
            let (rows, psi) = m.drift.psi();
            self.drift_rows.set(rows as i64);
            // PSI over a handful of rows is noise: publish it from MIN_DRIFT_ROWS on.
            if rows >= MIN_DRIFT_ROWS {
                for (name, v) in psi {
                    self.drift_psi.with_label_values(&[&name]).set(v);
                }
            } else {
                self.drift_psi.reset();
            }
        }
        let mut buf = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for well-formed metric families.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("encoding metrics: {e}");
        }
        buf
    }

    pub fn registry_poll(&self, ok: bool) -> IntCounter {
        self.registry_polls.with_label_values(&[if ok { "ok" } else { "error" }])
    }
}

pub fn now_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
