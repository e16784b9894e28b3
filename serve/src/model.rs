//! The served model: loaded from the registry's ACTIVE version (or from a bundle artifact, e.g.
//! Vertex AI's `AIP_STORAGE_URI`), swapped atomically when the registry changes.
//!
//! Every request takes one `Arc` of the current [`Loaded`] model at its start and uses it to the
//! end, so a swap never changes a model under a request: requests in flight finish on the old
//! model, new ones get the new one, none fails. A bundle that does not verify (hash, format,
//! structure) or does not fit this server (another data contract while telemetry is buffered) is
//! refused: the previous model keeps serving and `/health`, `/ready` and the metrics say so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use pm_core::artifacts::bundle::{BUNDLE_FILE, ModelBundle};
use pm_core::artifacts::registry::{Registry, RegistryError, RegistryState};
use pm_core::artifacts::store::{Store, StoreError, sha256_hex};
use serde::Serialize;

use crate::drift::DriftWindow;
use crate::input::Vocab;

/// Risk levels of a probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RiskBands {
    /// MEDIUM from half the model's threshold, HIGH from the threshold (HIGH ⇔ alarm).
    Auto,
    /// MEDIUM from `.0`, HIGH from `.1` (the Python service used 0.3 and 0.7).
    Fixed(f64, f64),
}

impl RiskBands {
    pub fn cuts(self, threshold: f64) -> (f64, f64) {
        match self {
            RiskBands::Auto => (threshold / 2.0, threshold),
            RiskBands::Fixed(a, b) => (a, b),
        }
    }

    pub fn level(self, p: f64, threshold: f64) -> Risk {
        let (medium, high) = self.cuts(threshold);
        if p >= high {
            Risk::High
        } else if p >= medium {
            Risk::Medium
        } else {
            Risk::Low
        }
    }
}

impl std::str::FromStr for RiskBands {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(RiskBands::Auto);
        }
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let parse = |t: &str| t.parse::<f64>().map_err(|_| format!("{t:?} is not a number"));
        match parts.as_slice() {
            [a, b] => {
                let (a, b) = (parse(a)?, parse(b)?);
                if !(0.0 < a && a < b && b <= 1.0) {
                    return Err(format!("risk bands must satisfy 0 < MEDIUM < HIGH <= 1, got {a},{b}"));
                }
                Ok(RiskBands::Fixed(a, b))
            }
            _ => Err(format!("expected 'auto' or 'MEDIUM,HIGH' (e.g. 0.3,0.7), got {s:?}")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Risk {
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "LOW",
            Risk::Medium => "MEDIUM",
            Risk::High => "HIGH",
        }
    }
}

/// How the server reads inputs and keeps history (set at start).
#[derive(Clone, Debug)]
pub struct InputRules {
    /// Sensor name → inclusive physical bounds, where the operator replaces the model's contract's
    /// (`--bound`).
    pub bounds: Vec<(String, f64, f64)>,
    pub drift_window: usize,
    /// Record one prediction in this many in the drift window.
    pub drift_sample: u32,
}

/// A model ready to serve.
#[derive(Debug)]
pub struct Loaded {
    /// Unique to this load in this process: what the fleet's remembered scores are keyed by.
    pub id: u64,
    /// Registry version (`v3`), or `bundle` for a model loaded from a bundle URI.
    pub version: String,
    pub bundle: ModelBundle,
    pub sha256: String,
    /// Where it came from (registry or bundle URL).
    pub source: String,
    pub loaded_at: String,
    pub vocab: Vocab,
    /// The training fleet: id → (model index, age), for machines not described by telemetry.
    pub machines: HashMap<u32, (u16, f64)>,
    pub names: Vec<String>,
    /// The range of each feature given the sensors' physical bounds (`FeatureSpec::value_ranges`):
    /// what a client's feature vector (`/v2` `features`) is checked against.
    pub feature_ranges: Vec<(f64, f64)>,
    pub drift: DriftWindow,
    /// The model in its scoring layout (bit-identical to `bundle.model`).
    pub flat: pm_core::learn::model::FlatModel,
}

impl Loaded {
    pub fn new(version: String, bundle: ModelBundle, sha256: String, source: String, rules: &InputRules) -> Self {
        let vocab = Vocab::new(&bundle.feature_spec.contract, &rules.bounds);
        let machines = bundle
            .machines
            .iter()
            .filter_map(|m| vocab.model_index(&m.model).map(|idx| (m.id, (idx, m.age))))
            .collect();
        static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Loaded {
            id: LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            version,
            names: bundle.feature_spec.names(),
            feature_ranges: bundle.feature_spec.value_ranges(&vocab.bounds, vocab.age_bounds),
            flat: bundle.model.flatten(),
            drift: DriftWindow::new(bundle.baseline.clone(), rules.drift_window, rules.drift_sample),
            vocab,
            machines,
            sha256,
            source,
            loaded_at: pm_core::data::time::now_rfc3339(),
            bundle,
        }
    }

    pub fn n_features(&self) -> usize {
        self.names.len()
    }

    /// Whether the model has per-component heads.
    pub fn per_component(&self) -> bool {
        !self.bundle.model.components.is_empty()
    }
}

/// A bundle the server refused, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refusal {
    pub version: String,
    pub bundle_sha256: String,
    pub reason: String,
    pub at: String,
}

/// What the loader knows, for `/health`, `/ready` and `/model/info`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoadStatus {
    /// Registry or bundle URL.
    pub source: String,
    pub last_poll: Option<String>,
    /// The registry's active version at the last successful poll.
    pub registry_active: Option<String>,
    /// Set while the registry's active version is one this server refused.
    pub refused: Option<Refusal>,
    /// The last failure to read the registry or a bundle (cleared by the next success).
    pub last_error: Option<String>,
}

/// The current model and the loader's status.
#[derive(Debug, Default)]
pub struct ModelSlot {
    current: ArcSwapOption<Loaded>,
    status: Mutex<LoadStatus>,
}

impl ModelSlot {
    /// The model to use for one whole request.
    pub fn get(&self) -> Option<Arc<Loaded>> {
        self.current.load_full()
    }

    pub fn install(&self, m: Arc<Loaded>) {
        self.current.store(Some(m));
    }

    pub fn status(&self) -> LoadStatus {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn update_status(&self, f: impl FnOnce(&mut LoadStatus)) {
        f(&mut self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Why there is no model (for 503 answers).
    pub fn why_not_loaded(&self) -> String {
        let s = self.status();
        if let Some(r) = &s.refused {
            return format!("{} was refused: {}", r.version, r.reason);
        }
        if let Some(e) = &s.last_error {
            return format!("loading from {} failed: {e}", s.source);
        }
        if s.last_poll.is_some() && s.registry_active.is_none() {
            return format!("the registry {} has no active version; promote one", s.source);
        }
        format!("waiting for the first load from {}", s.source)
    }
}

/// Where models come from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// The ACTIVE version of a registry, watched.
    Registry(Registry),
    /// A `Model` artifact directory holding `bundle.json` (loaded once).
    Bundle(Store),
}

impl ModelSource {
    pub fn url(&self) -> String {
        match self {
            ModelSource::Registry(r) => r.url().to_string(),
            ModelSource::Bundle(s) => s.url().to_string(),
        }
    }
}

/// One loader decision.
#[derive(Debug)]
pub enum Fetched {
    /// Nothing new.
    Unchanged,
    /// The registry has no active version.
    NoActive,
    /// A verified bundle to install.
    New { version: String, sha256: String, bundle: Box<ModelBundle> },
    /// A bundle that does not verify: refuse it, remember it, do not retry it.
    Invalid { version: String, sha256: String, reason: String },
}

/// A transient failure: the source could not be read (`loading`: while fetching a bundle to
/// load, rather than while polling the registry).
#[derive(Clone, Debug, PartialEq)]
pub struct FetchError {
    pub loading: bool,
    pub message: String,
}

fn poll_error(e: impl ToString) -> FetchError {
    FetchError { loading: false, message: e.to_string() }
}

fn load_error(e: impl ToString) -> FetchError {
    FetchError { loading: true, message: e.to_string() }
}

/// Watches a source; keeps the registry state between polls so that each poll reads only new
/// log entries.
#[derive(Debug)]
pub struct Loader {
    pub source: ModelSource,
    state: RegistryState,
}

impl Loader {
    pub fn new(source: ModelSource) -> Self {
        Loader { source, state: RegistryState::default() }
    }

    /// Decides what to do given what is installed (`current`: version and hash) and what was
    /// refused. Errors are transient (the store could not be read): try again at the next poll.
    pub async fn fetch(
        &mut self,
        current: Option<(&str, &str)>,
        refused: Option<&Refusal>,
    ) -> Result<Fetched, FetchError> {
        match &self.source {
            ModelSource::Bundle(store) => {
                if current.is_some() || refused.is_some() {
                    return Ok(Fetched::Unchanged);
                }
                let manifest = store.read_manifest().await.map_err(load_error)?;
                let bytes = store.read_artifact_file(&manifest, BUNDLE_FILE).await.map_err(load_error)?;
                let sha = sha256_hex(&bytes);
                Ok(match ModelBundle::from_json(&bytes) {
                    Ok(b) => Fetched::New { version: "bundle".into(), sha256: sha, bundle: Box::new(b) },
                    Err(e) => Fetched::Invalid { version: "bundle".into(), sha256: sha, reason: e.to_string() },
                })
            }
            ModelSource::Registry(reg) => {
                if let Err(e) = reg.refresh(&mut self.state).await {
                    // A corrupt log entry will not heal by itself but must not stop serving.
                    return Err(poll_error(e));
                }
                let Some(active) = self.state.active.clone() else { return Ok(Fetched::NoActive) };
                let Some(hash) = self.state.version(&active).map(|v| v.record.bundle_hash.clone()) else {
                    return Err(poll_error(format!("the registry names {active} active but has no record of it")));
                };
                if current == Some((active.as_str(), hash.as_str())) {
                    return Ok(Fetched::Unchanged);
                }
                if refused.is_some_and(|r| r.version == active && r.bundle_sha256 == hash) {
                    return Ok(Fetched::Unchanged);
                }
                match reg.bundle(&self.state, &active).await {
                    Ok((bundle, _)) => Ok(Fetched::New { version: active, sha256: hash, bundle: Box::new(bundle) }),
                    Err(RegistryError::Bundle { reason, .. }) => {
                        Ok(Fetched::Invalid { version: active, sha256: hash, reason })
                    }
                    // A bundle whose bytes do not match its manifest, or that is gone, will not
                    // heal by waiting.
                    Err(RegistryError::Store(e @ (StoreError::Corrupt { .. } | StoreError::NotFound { .. }))) => {
                        Ok(Fetched::Invalid { version: active, sha256: hash, reason: e.to_string() })
                    }
                    Err(e) => Err(load_error(e)),
                }
            }
        }
    }

    pub fn registry_active(&self) -> Option<String> {
        self.state.active.clone()
    }
}

/// Whether `new` can replace `current` in this server: same data contract whenever telemetry is
/// buffered (the buffers hold the old contract's sensors), and the expected model name.
pub fn compatibility(
    new: &ModelBundle,
    current: Option<&Loaded>,
    fleet_has_state: bool,
    expected_name: Option<&str>,
) -> Result<(), String> {
    if let Some(name) = expected_name
        && new.name != name
    {
        return Err(format!("the bundle is model {:?}, this server serves {name:?}", new.name));
    }
    if let Some(cur) = current
        && fleet_has_state
        && !cur.bundle.feature_spec.contract.same_layout(&new.feature_spec.contract)
    {
        return Err(format!(
            "its data contract differs from the served one (sensors {:?} vs {:?}); buffered telemetry cannot be reused: restart the server to change the contract",
            new.feature_spec.contract.sensor_names(),
            cur.bundle.feature_spec.contract.sensor_names()
        ));
    }
    Ok(())
}
