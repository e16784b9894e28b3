//! The fleet's buffered telemetry: one [`MachineState`] per machine, in shards behind short
//! mutexes (a lock is held only to update a buffer or to compute one feature row from it, a few
//! microseconds), so that requests for different machines do not contend.
//!
//! The state holds raw history, not features: a model swapped in later computes its own
//! features from it. Each buffer keeps at least `retention_hours` (and at least what the
//! current model's windows need).
//!
//! Beside each buffer, the fleet remembers the last feature row computed from it and that row's
//! scores, under the model that scored it: a machine polled again before new telemetry arrives
//! (dashboards poll far more often than machines report) is answered from them, with the same
//! values. Every change to a buffer goes through `Fleet::with_machine`, which forgets them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use pm_core::features::FeatureSpec;
use pm_core::features::online::MachineState;
use pm_core::learn::model::Scores;
use serde::Serialize;

use crate::error::ApiError;
use crate::input::{TelemetryBatch, at};

const SHARDS: usize = 16;

#[derive(Debug)]
pub struct Fleet {
    shards: Vec<Mutex<HashMap<u32, Entry>>>,
    retention_hours: u32,
    max_machines: usize,
    machines: AtomicUsize,
}

/// A machine's buffer, and what was last computed from it.
#[derive(Debug)]
struct Entry {
    state: MachineState,
    memo: Option<Memo>,
}

/// A feature row computed from a buffer, its facts and its scores under model `model`
/// ([`crate::model::Loaded::id`]).
#[derive(Debug)]
struct Memo {
    model: u64,
    row: Vec<f64>,
    computed: Computed,
    scores: Scores,
}

/// What `/telemetry` did with each kind of item.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Applied {
    /// Items stored.
    pub accepted: Counts,
    /// Items already present (a retried delivery): nothing changed.
    pub duplicates: Counts,
    /// Items refused, each with its position in the request and the reason.
    pub rejected: Vec<Rejected>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub readings: u64,
    pub errors: u64,
    pub maint: u64,
    pub machines: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rejected {
    pub item: String,
    pub machine: u32,
    pub message: String,
    /// The status the refusal has on its own (409 for a conflict with the buffer, 422 for a bad
    /// value, 503 for a full fleet): what the request answers when every item is refused.
    #[serde(skip)]
    pub status: axum::http::StatusCode,
}

impl Rejected {
    fn new(item: String, machine: u32, e: ApiError) -> Self {
        Rejected { item, machine, message: e.message, status: e.status }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a buffer half-updated in a way that matters
    // more than refusing to serve: keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    pub fn new(retention_hours: u32, max_machines: usize) -> Self {
        Fleet {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            retention_hours,
            max_machines,
            machines: AtomicUsize::new(0),
        }
    }

    fn shard(&self, machine: u32) -> &Mutex<HashMap<u32, Entry>> {
        // Machine ids are small consecutive integers: mix them so that shards fill evenly.
        let h = (u64::from(machine).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
        &self.shards[h % SHARDS]
    }

    /// Number of machines with a buffer.
    pub fn len(&self) -> usize {
        self.machines.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every buffer (a model with another data contract was loaded).
    pub fn clear(&self) {
        for s in &self.shards {
            lock(s).clear();
        }
        self.machines.store(0, Ordering::Relaxed);
    }

    /// Runs `f` on the machine's buffer, creating it if `create` (within the fleet limit). The
    /// only access that may change a buffer: it forgets the buffer's remembered scores.
    fn with_machine<T>(
        &self,
        spec: &FeatureSpec,
        machine: u32,
        create: bool,
        f: impl FnOnce(&mut MachineState) -> T,
    ) -> Result<Option<T>, ApiError> {
        let mut shard = lock(self.shard(machine));
        if let Some(entry) = shard.get_mut(&machine) {
            entry.memo = None;
            return Ok(Some(f(&mut entry.state)));
        }
        if !create {
            return Ok(None);
        }
        if self.machines.load(Ordering::Relaxed) >= self.max_machines {
            return Err(ApiError::invalid(
                "",
                format!(
                    "the fleet limit of {} machines is reached; machine {machine} cannot be added (--max-machines)",
                    self.max_machines
                ),
            )
            .with_code("fleet_full"));
        }
        self.machines.fetch_add(1, Ordering::Relaxed);
        let entry = shard
            .entry(machine)
            .or_insert_with(|| Entry { state: MachineState::with_retention(spec, self.retention_hours), memo: None });
        Ok(Some(f(&mut entry.state)))
    }

    /// Applies a validated batch: machine descriptions first, then events, then readings in time
    /// order per machine (so a batch may list them in any order). Items the buffer refuses (a
    /// different reading at an existing time, a reading older than the buffer) are reported one
    /// by one; the rest are applied.
    pub fn apply(&self, spec: &FeatureSpec, batch: &TelemetryBatch) -> Applied {
        let mut out = Applied::default();
        for (i, m) in batch.machines.iter().enumerate() {
            let id = m.machine.unwrap_or_default();
            match self.with_machine(spec, id, true, |s| s.set_machine(spec, m.model, m.age)) {
                Ok(Some(Ok(()))) => out.accepted.machines += 1,
                Ok(Some(Err(e))) => out.rejected.push(Rejected::new(at("machines", i), id, ApiError::from(e))),
                Ok(None) => {}
                Err(e) => out.rejected.push(Rejected::new(at("machines", i), id, e)),
            }
        }
        let events = [("maint", &batch.maint), ("errors", &batch.errors)];
        for (what, list) in events {
            for (i, ev) in list.iter().enumerate() {
                let id = ev.machine.unwrap_or_default();
                let res = self.with_machine(spec, id, true, |s| {
                    if what == "maint" {
                        s.push_maint(spec, ev.time, ev.kind)
                    } else {
                        s.push_error(spec, ev.time, ev.kind)
                    }
                });
                let (acc, dup) = if what == "maint" {
                    (&mut out.accepted.maint, &mut out.duplicates.maint)
                } else {
                    (&mut out.accepted.errors, &mut out.duplicates.errors)
                };
                match res {
                    Ok(Some(Ok(true))) => *acc += 1,
                    Ok(Some(Ok(false))) => *dup += 1,
                    Ok(Some(Err(e))) => out.rejected.push(Rejected::new(at(what, i), id, ApiError::from(e))),
                    Ok(None) => {}
                    Err(e) => out.rejected.push(Rejected::new(at(what, i), id, e)),
                }
            }
        }
        let mut order: Vec<usize> = (0..batch.readings.len()).collect();
        order.sort_by_key(|&i| (batch.readings[i].machine, batch.readings[i].time));
        for i in order {
            let r = &batch.readings[i];
            let id = r.machine.unwrap_or_default();
            match self.with_machine(spec, id, true, |s| s.push_reading(spec, id, r.time, &r.values)) {
                Ok(Some(Ok(true))) => out.accepted.readings += 1,
                Ok(Some(Ok(false))) => out.duplicates.readings += 1,
                Ok(Some(Err(e))) => out.rejected.push(Rejected::new(at("readings", i), id, ApiError::from(e))),
                Ok(None) => {}
                Err(e) => out.rejected.push(Rejected::new(at("readings", i), id, e)),
            }
        }
        out.rejected.sort_by(|a, b| a.item.cmp(&b.item));
        out
    }

    /// Adds one reading (the `/predict` request that carries a reading).
    pub fn push_reading(&self, spec: &FeatureSpec, machine: u32, time: i64, values: &[f64]) -> Result<(), ApiError> {
        match self.with_machine(spec, machine, true, |s| s.push_reading(spec, machine, time, values))? {
            Some(Ok(_)) | None => Ok(()),
            Some(Err(e)) => Err(ApiError::from(e)),
        }
    }

    /// The machine's features at its latest reading (into `out`), facts about them, and their
    /// scores by `score` under model `model` (a [`crate::model::Loaded::id`]) — the remembered
    /// ones if neither the buffer nor the model changed since they were computed. `fallback` is
    /// the machine's model and age from the model's fleet table, remembered in the buffer if it
    /// was not described. `None` when the fleet has no buffer for the machine.
    pub fn scored(
        &self,
        spec: &FeatureSpec,
        machine: u32,
        model: u64,
        fallback: Option<(u16, f64)>,
        out: &mut [f64],
        score: impl FnOnce(&[f64]) -> Scores,
    ) -> Result<Option<(Computed, Scores)>, ApiError> {
        let mut shard = lock(self.shard(machine));
        let Some(entry) = shard.get_mut(&machine) else { return Ok(None) };
        if let Some(m) = &entry.memo
            && m.model == model
            && m.row.len() == out.len()
        {
            out.copy_from_slice(&m.row);
            return Ok(Some((m.computed, m.scores.clone())));
        }
        let s = &mut entry.state;
        if s.machine().is_none()
            && let Some((model_idx, age)) = fallback
        {
            // Described by the model's fleet table: remember it in the buffer.
            s.set_machine(spec, model_idx, age).map_err(ApiError::from)?;
        }
        let time = s.features_latest(spec, machine, out).map_err(ApiError::from)?;
        let computed =
            Computed { time, oldest: s.oldest().unwrap_or(time), readings: s.len(), described: s.machine().is_some() };
        let scores = score(out);
        entry.memo = Some(Memo { model, row: out.to_vec(), computed, scores: scores.clone() });
        Ok(Some((computed, scores)))
    }
}

/// Facts about a computed feature row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Computed {
    /// Time of the reading the row is for.
    pub time: i64,
    /// Oldest reading in the buffer.
    pub oldest: i64,
    pub readings: usize,
    /// Whether the machine's model and age were known.
    pub described: bool,
}
