//! The server's shared state and the loader's decisions (install, refuse, keep serving).

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::model::{Fetched, InputRules, LoadStatus, Loaded, Loader, ModelSlot, Refusal, RiskBands, compatibility};

/// Settings of a server (the CLI fills them; tests build them directly).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The registry model name this server serves (checked against bundles).
    pub model_name: String,
    pub max_batch: usize,
    pub risk: RiskBands,
    pub rules: InputRules,
    /// Hours of history kept per machine, at least (more than the current model needs, so that a
    /// model with longer windows can be swapped in).
    pub retention_hours: u32,
    pub max_machines: usize,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// Requests on the prediction and telemetry routes answered at once; more are shed (503).
    pub max_inflight: usize,
    /// Vertex AI routes (`AIP_HEALTH_ROUTE`, `AIP_PREDICT_ROUTE`), added beside the defaults.
    pub vertex_health_route: Option<String>,
    pub vertex_predict_route: Option<String>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            model_name: "pm-failure".into(),
            max_batch: 100,
            risk: RiskBands::Auto,
            rules: InputRules { bounds: Vec::new(), drift_window: 2_000, drift_sample: 4 },
            retention_hours: 168,
            max_machines: 100_000,
            body_limit_bytes: 4 << 20,
            request_timeout: Duration::from_secs(10),
            max_inflight: 512,
            vertex_health_route: None,
            vertex_predict_route: None,
        }
    }
}

#[derive(Debug)]
pub struct Shared {
    pub cfg: ServeConfig,
    pub slot: ModelSlot,
    pub fleet: Fleet,
    pub metrics: Metrics,
    pub started: Instant,
    pub started_at: String,
    /// True while the fleet state is being primed (not ready yet).
    pub priming: AtomicBool,
}

/// Cheap to clone: every handler gets one.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    pub fn new(cfg: ServeConfig, source_url: &str) -> anyhow::Result<Self> {
        let metrics = Metrics::new()?;
        let slot = ModelSlot::default();
        slot.update_status(|s| s.source = source_url.to_string());
        Ok(AppState(Arc::new(Shared {
            fleet: Fleet::new(cfg.retention_hours, cfg.max_machines),
            cfg,
            slot,
            metrics,
            started: Instant::now(),
            started_at: pm_core::data::time::now_rfc3339(),
            priming: AtomicBool::new(false),
        })))
    }

    /// Installs a verified bundle if it fits this server; otherwise refuses it. Returns whether it
    /// was installed.
    pub fn offer(
        &self,
        version: String,
        sha256: String,
        bundle: pm_core::artifacts::bundle::ModelBundle,
        source: &str,
    ) -> bool {
        let current = self.slot.get();
        let expected = (!self.cfg.model_name.is_empty()).then_some(self.cfg.model_name.as_str());
        if let Err(reason) = compatibility(&bundle, current.as_deref(), !self.fleet.is_empty(), expected) {
            self.refuse(version, sha256, reason);
            return false;
        }
        if let Some(cur) = &current
            && !cur.bundle.feature_spec.contract.same_layout(&bundle.feature_spec.contract)
        {
            self.fleet.clear();
        }
        let previous = current.map(|c| c.version.clone());
        let loaded = Arc::new(Loaded::new(version, bundle, sha256, source.to_string(), &self.cfg.rules));
        self.metrics.model_installed(&loaded);
        self.metrics.model_refused.set(0);
        tracing::info!(
            version = %loaded.version,
            previous = previous.as_deref().unwrap_or("none"),
            bundle_sha256 = %loaded.sha256,
            algorithm = %loaded.bundle.model.algorithm,
            "Serving a new model."
        );
        self.slot.install(loaded);
        self.slot.update_status(|s| {
            s.refused = None;
            s.last_error = None;
        });
        true
    }

    fn refuse(&self, version: String, sha256: String, reason: String) {
        let serving = self.slot.get().map(|m| m.version.clone());
        tracing::error!(
            %version,
            bundle_sha256 = %sha256,
            serving = serving.as_deref().unwrap_or("nothing"),
            "Refused a model bundle: {reason}"
        );
        self.metrics.reloads.with_label_values(&["refused"]).inc();
        self.metrics.model_refused.set(1);
        self.slot.update_status(|s| {
            s.refused =
                Some(Refusal { version, bundle_sha256: sha256, reason, at: pm_core::data::time::now_rfc3339() });
        });
    }

    /// One poll of the model source.
    /// [`AppState::poll`], given up after `timeout`: the store client retries an unreachable store
    /// for minutes, and the status must say so long before. Giving up is safe: the loader applies
    /// registry log entries one at a time, so an interrupted poll resumes where it stopped. The
    /// served model is untouched either way.
    pub async fn poll_within(&self, loader: &mut Loader, timeout: std::time::Duration) {
        if tokio::time::timeout(timeout, self.poll(loader)).await.is_err() {
            let message = format!(
                "the model source {} did not answer within {:.0} s (will retry)",
                loader.source.url(),
                timeout.as_secs_f64()
            );
            tracing::warn!("{message}");
            self.metrics.registry_poll(false).inc();
            self.slot.update_status(|s| {
                s.last_poll = Some(pm_core::data::time::now_rfc3339());
                s.last_error = Some(message);
            });
        }
    }

    pub async fn poll(&self, loader: &mut Loader) {
        let current = self.slot.get();
        let status: LoadStatus = self.slot.status();
        let cur = current.as_ref().map(|m| (m.version.as_str(), m.sha256.as_str()));
        let fetched = loader.fetch(cur, status.refused.as_ref()).await;
        let now = pm_core::data::time::now_rfc3339();
        let registry_active = loader.registry_active();
        self.slot.update_status(|s| {
            s.last_poll = Some(now);
            if fetched.is_ok() {
                s.registry_active = registry_active.clone();
            }
        });
        match fetched {
            Err(e) => {
                // A failure to load a bundle comes after a successful read of the registry.
                self.metrics.registry_poll(e.loading).inc();
                if e.loading {
                    self.metrics.reloads.with_label_values(&["failed"]).inc();
                }
                tracing::warn!(source = %loader.source.url(), "Cannot read the model source (will retry): {}", e.message);
                self.slot.update_status(|s| s.last_error = Some(e.message));
            }
            Ok(f) => {
                self.metrics.registry_poll(true).inc();
                match f {
                    Fetched::Unchanged => {
                        // The registry may have moved back to the served version after a refusal.
                        if let (Some(active), Some(m)) = (&registry_active, &current)
                            && *active == m.version
                        {
                            self.metrics.model_refused.set(0);
                            self.slot.update_status(|s| s.refused = None);
                        }
                        self.slot.update_status(|s| s.last_error = None);
                    }
                    Fetched::NoActive => self.slot.update_status(|s| s.last_error = None),
                    Fetched::New { version, sha256, bundle } => {
                        self.offer(version, sha256, *bundle, &loader.source.url());
                    }
                    Fetched::Invalid { version, sha256, reason } => self.refuse(version, sha256, reason),
                }
            }
        }
    }
}
