//! The model registry, in the object store.
//!
//! Layout below `<root>/<model name>/`:
//! - `bundles/<content hash>/` — each registered bundle, an immutable artifact;
//! - `log/<seq>.json` — the append-only audit log, one event per object (`register`, `promote`,
//!   `rollback`, `archive`), sequence numbers from 1 without gaps.
//!
//! **The log is the state.** Versions, their status (candidate / active / archived) and the active
//! model are derived by replaying the log. A writer reads the log, checks its action against the
//! state, and writes the next event with a conditional create (`PutMode::Create`) at the next
//! sequence number: of racing writers exactly one wins, the others re-read and re-check. This works
//! on every backend, including the local file system (which has no compare-and-swap), and leaves a
//! complete audit trail; nothing is ever overwritten.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::artifacts::bundle::{BUNDLE_FILE, ModelBundle};
use crate::artifacts::store::{Store, StoreError, sha256_hex};

/// Lifecycle of a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Candidate,
    Active,
    Archived,
}

/// The immutable record of a registered version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: String,
    /// SHA-256 of `bundle.json`; the bundle lives at `bundles/<bundle_hash>/`.
    pub bundle_hash: String,
    pub algorithm: String,
    /// Validation metrics from training and, when evaluated, test metrics.
    pub metrics: serde_json::Value,
    pub params: serde_json::Value,
    pub feature_set: Vec<String>,
    pub label_horizon_hours: u32,
    pub training_data_hash: String,
    pub source_commit: Option<String>,
    pub created_at: String,
}

/// What an event does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Register { record: Box<VersionRecord> },
    Promote { version: String, previous: Option<String> },
    Rollback { version: String, from: String },
    Archive { version: String },
}

/// One entry of the audit log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    pub reason: String,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionState {
    pub record: VersionRecord,
    pub status: Status,
}

/// The registry as the log says it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegistryState {
    /// Sequence number of the last event (0: empty registry).
    pub seq: u64,
    pub versions: BTreeMap<String, VersionState>,
    pub active: Option<String>,
    /// Versions that were active before, most recent last (what `rollback` returns to).
    pub previous_active: Vec<String>,
    pub events: Vec<Event>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("registry {registry}: unknown version {version:?}")]
    UnknownVersion { registry: String, version: String },
    #[error("registry {registry}: {version} is already the active version")]
    AlreadyActive { registry: String, version: String },
    #[error("registry {registry}: {version} is active; promote or roll back to another version first")]
    ArchiveActive { registry: String, version: String },
    #[error("registry {registry}: no previously active version to roll back to")]
    NoPrevious { registry: String },
    #[error("registry {registry}: no active version")]
    NoActive { registry: String },
    #[error("registry {registry}: log entry {seq} is corrupt: {reason}")]
    Corrupt { registry: String, seq: u64, reason: String },
    #[error("registry {registry}: gave up after {attempts} attempts: other writers kept appending")]
    Contention { registry: String, attempts: u32 },
    #[error("registry {registry}: bundle {hash}: {reason}")]
    Bundle { registry: String, hash: String, reason: String },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

fn log_name(seq: u64) -> String {
    format!("log/{seq:010}.json")
}

impl RegistryState {
    /// Applies one event (events must come in sequence).
    fn apply(&mut self, registry: &str, ev: Event) -> Result<()> {
        if ev.seq != self.seq + 1 {
            return Err(RegistryError::Corrupt {
                registry: registry.into(),
                seq: ev.seq,
                reason: format!("expected sequence number {}", self.seq + 1),
            });
        }
        match &ev.action {
            Action::Register { record } => {
                self.versions.insert(
                    record.version.clone(),
                    VersionState { record: (**record).clone(), status: Status::Candidate },
                );
            }
            Action::Promote { version, .. } => {
                if let Some(prev) = self.active.replace(version.clone()) {
                    self.set_status(&prev, Status::Archived);
                    self.previous_active.push(prev);
                }
                self.set_status(version, Status::Active);
            }
            Action::Rollback { version, .. } => {
                if let Some(prev) = self.active.replace(version.clone()) {
                    self.set_status(&prev, Status::Archived);
                }
                // Rolling back consumes the history down to the version returned to.
                if let Some(pos) = self.previous_active.iter().rposition(|v| v == version) {
                    self.previous_active.truncate(pos);
                }
                self.set_status(version, Status::Active);
            }
            Action::Archive { version } => self.set_status(version, Status::Archived),
        }
        self.seq = ev.seq;
        self.events.push(ev);
        Ok(())
    }

    fn set_status(&mut self, version: &str, status: Status) {
        if let Some(v) = self.versions.get_mut(version) {
            v.status = status;
        }
    }

    pub fn version(&self, v: &str) -> Option<&VersionState> {
        self.versions.get(v)
    }
}

/// One model's registry.
#[derive(Clone, Debug)]
pub struct Registry {
    store: Store,
    name: String,
    /// Appends this handle (and its clones) lost to another writer and retried.
    lost_races: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Registry {
    /// The registry of model `name` below `root` (e.g. `s3://bucket/registry`).
    pub fn new(root: &Store, name: &str) -> Self {
        Registry { store: root.join(name), name: name.to_string(), lost_races: Default::default() }
    }

    /// How many times an append of this handle (or a clone) found that another writer had taken
    /// its log entry first, and retried on the fresh state.
    pub fn lost_races(&self) -> u64 {
        self.lost_races.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn url(&self) -> &str {
        self.store.url()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads and replays the log.
    pub async fn state(&self) -> Result<RegistryState> {
        let mut state = RegistryState::default();
        self.refresh(&mut state).await?;
        Ok(state)
    }

    /// Brings `state` up to date by reading only the events appended since it was read (what a
    /// server watching the registry does on every poll). Returns whether anything was applied.
    pub async fn refresh(&self, state: &mut RegistryState) -> Result<bool> {
        let names = self.store.list("log").await?;
        let after = log_name(state.seq);
        let mut changed = false;
        for name in names.iter().filter(|n| n.ends_with(".json") && n.as_str() > after.as_str()) {
            let bytes = self.store.get(name).await?;
            let ev: Event = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
                registry: self.name.clone(),
                seq: state.seq + 1,
                reason: e.to_string(),
            })?;
            state.apply(&self.name, ev)?;
            changed = true;
        }
        Ok(changed)
    }

    /// Appends the event `make` builds from the current state (`None`: nothing to append);
    /// retries when another writer appended first. `make` re-checks the action against the fresh
    /// state each time.
    async fn append(
        &self,
        actor: &str,
        reason: &str,
        mut make: impl FnMut(&RegistryState) -> Result<Option<Action>>,
    ) -> Result<Option<Event>> {
        const ATTEMPTS: u32 = 64;
        for attempt in 0..ATTEMPTS {
            let state = self.state().await?;
            let Some(action) = make(&state)? else {
                return Ok(None);
            };
            let ev = Event {
                seq: state.seq + 1,
                at: crate::data::time::now_rfc3339(),
                actor: actor.to_string(),
                reason: reason.to_string(),
                action,
            };
            let bytes = serde_json::to_vec_pretty(&ev).map_err(|e| RegistryError::Corrupt {
                registry: self.name.clone(),
                seq: ev.seq,
                reason: e.to_string(),
            })?;
            if self.store.create(&log_name(ev.seq), Bytes::from(bytes)).await? {
                tracing::info!(registry = %self.name, seq = ev.seq, actor, "Appended a registry event.");
                return Ok(Some(ev));
            }
            // Lost the race: back off a little (deterministic spread by attempt) and re-read.
            self.lost_races.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(5 + u64::from(attempt % 8) * 7)).await;
        }
        Err(RegistryError::Contention { registry: self.name.clone(), attempts: ATTEMPTS })
    }

    /// Stores a bundle and registers it as a candidate. Registering the same bundle again returns
    /// the existing version. Returns `(version, newly_registered)`.
    pub async fn register(
        &self,
        bundle_json: Bytes,
        metrics: serde_json::Value,
        source_commit: Option<String>,
        actor: &str,
        reason: &str,
    ) -> Result<(String, bool)> {
        let bundle = ModelBundle::from_json(&bundle_json).map_err(|e| RegistryError::Bundle {
            registry: self.name.clone(),
            hash: sha256_hex(&bundle_json),
            reason: e.to_string(),
        })?;
        let hash = sha256_hex(&bundle_json);
        let dir = self.store.join(&format!("bundles/{hash}"));
        if !dir.exists(crate::artifacts::store::MANIFEST).await? {
            dir.write_artifact(
                "Model",
                "pm-registry",
                vec![(BUNDLE_FILE.to_string(), bundle_json)],
                serde_json::Value::Null,
            )
            .await?;
        }
        let mut existing = None;
        let ev = self
            .append(actor, reason, |state| {
                if let Some(v) = state.versions.values().find(|v| v.record.bundle_hash == hash) {
                    existing = Some(v.record.version.clone());
                    return Ok(None);
                }
                Ok(Some(Action::Register {
                    record: Box::new(VersionRecord {
                        // Numbered by registration; racing registrations re-read and take the next.
                        version: format!("v{}", state.versions.len() + 1),
                        bundle_hash: hash.clone(),
                        algorithm: bundle.model.algorithm.clone(),
                        metrics: metrics.clone(),
                        params: bundle.params.clone(),
                        feature_set: bundle.feature_spec.names(),
                        label_horizon_hours: bundle.feature_spec.label.horizon_hours,
                        training_data_hash: bundle.training_data_hash.clone(),
                        source_commit: source_commit.clone(),
                        created_at: crate::data::time::now_rfc3339(),
                    }),
                }))
            })
            .await?;
        match (ev, existing) {
            (Some(Event { action: Action::Register { record }, .. }), _) => Ok((record.version, true)),
            (None, Some(v)) => Ok((v, false)),
            (Some(ev), _) => Err(RegistryError::Corrupt {
                registry: self.name.clone(),
                seq: ev.seq,
                reason: "unexpected action".into(),
            }),
            (None, None) => {
                Err(RegistryError::Corrupt { registry: self.name.clone(), seq: 0, reason: "nothing registered".into() })
            }
        }
    }

    /// Makes `version` the active one (the current active is archived).
    pub async fn promote(&self, version: &str, actor: &str, reason: &str) -> Result<Event> {
        self.append(actor, reason, |state| {
            if !state.versions.contains_key(version) {
                return Err(RegistryError::UnknownVersion { registry: self.name.clone(), version: version.into() });
            }
            if state.active.as_deref() == Some(version) {
                return Err(RegistryError::AlreadyActive { registry: self.name.clone(), version: version.into() });
            }
            Ok(Some(Action::Promote { version: version.into(), previous: state.active.clone() }))
        })
        .await
        .and_then(|e| self.appended(e))
    }

    /// Returns to the previously active version, or to `to`.
    pub async fn rollback(&self, to: Option<&str>, actor: &str, reason: &str) -> Result<Event> {
        self.append(actor, reason, |state| {
            let from = state.active.clone().ok_or_else(|| RegistryError::NoActive { registry: self.name.clone() })?;
            let target = match to {
                Some(v) => {
                    if !state.versions.contains_key(v) {
                        return Err(RegistryError::UnknownVersion { registry: self.name.clone(), version: v.into() });
                    }
                    v.to_string()
                }
                None => state
                    .previous_active
                    .last()
                    .cloned()
                    .ok_or_else(|| RegistryError::NoPrevious { registry: self.name.clone() })?,
            };
            if target == from {
                return Err(RegistryError::AlreadyActive { registry: self.name.clone(), version: target });
            }
            Ok(Some(Action::Rollback { version: target, from }))
        })
        .await
        .and_then(|e| self.appended(e))
    }

    /// Retires a version that is not active.
    pub async fn archive(&self, version: &str, actor: &str, reason: &str) -> Result<Event> {
        self.append(actor, reason, |state| {
            if !state.versions.contains_key(version) {
                return Err(RegistryError::UnknownVersion { registry: self.name.clone(), version: version.into() });
            }
            if state.active.as_deref() == Some(version) {
                return Err(RegistryError::ArchiveActive { registry: self.name.clone(), version: version.into() });
            }
            Ok(Some(Action::Archive { version: version.into() }))
        })
        .await
        .and_then(|e| self.appended(e))
    }

    fn appended(&self, e: Option<Event>) -> Result<Event> {
        e.ok_or_else(|| RegistryError::Corrupt {
            registry: self.name.clone(),
            seq: 0,
            reason: "nothing appended".into(),
        })
    }

    /// The bundle of a version, verified against its hash.
    pub async fn bundle(&self, state: &RegistryState, version: &str) -> Result<(ModelBundle, Bytes)> {
        let v = state
            .version(version)
            .ok_or_else(|| RegistryError::UnknownVersion { registry: self.name.clone(), version: version.into() })?;
        let hash = &v.record.bundle_hash;
        let dir = self.store.join(&format!("bundles/{hash}"));
        let manifest = dir.read_manifest().await?;
        let bytes = dir.read_artifact_file(&manifest, BUNDLE_FILE).await?;
        let bad = |reason: String| RegistryError::Bundle { registry: self.name.clone(), hash: hash.clone(), reason };
        if sha256_hex(&bytes) != *hash {
            return Err(bad("content does not match the registered hash".into()));
        }
        let bundle = ModelBundle::from_json(&bytes).map_err(|e| bad(e.to_string()))?;
        Ok((bundle, bytes))
    }

    /// The active version and its bundle, if any.
    pub async fn active(&self) -> Result<Option<(String, ModelBundle)>> {
        let state = self.state().await?;
        match &state.active {
            None => Ok(None),
            Some(v) => Ok(Some((v.clone(), self.bundle(&state, v).await?.0))),
        }
    }
}
