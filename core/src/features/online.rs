//! Online features: the same [`FeatureSpec`] evaluated for one machine from a bounded buffer of
//! its recent history, for the serving container.
//!
//! A [`MachineState`] keeps only what the spec can still use: readings newer than
//! `latest - telemetry_history_hours`, errors newer than `latest - error_history_hours`, and
//! the last replacement of each component. Its features are computed by
//! [`crate::features::compute_row`] over the buffer's slices, which are the same values in the same
//! order as the batch path's, hence the same result (the train/serve contract, checked by a
//! property test).

use std::collections::HashMap;

use crate::data::time::{HOUR, Timestamp};
use crate::features::{FeatureSpec, MachineHistory, compute_row};

/// Why an update was refused. The state is unchanged after an error.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OnlineError {
    #[error("expected {expected} sensor values ({names}), got {got}")]
    Arity { expected: usize, got: usize, names: String },
    #[error("sensor '{sensor}': value {value} is not finite")]
    NonFinite { sensor: String, value: f64 },
    #[error("a reading for machine {machine} at {time} already exists with different values")]
    Duplicate { machine: u32, time: String },
    #[error(
        "reading at {time} is older than the buffer of machine {machine} (which starts after {oldest}); send readings in time order"
    )]
    TooOld { machine: u32, time: String, oldest: String },
    #[error("unknown {what} index {index}")]
    UnknownLabel { what: &'static str, index: u16 },
    #[error("machine {machine} has no readings yet")]
    NoReadings { machine: u32 },
}

/// The buffered recent history of one machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MachineState {
    time: Vec<i64>,
    sensors: Vec<Vec<f64>>,
    error_time: Vec<i64>,
    error_kind: Vec<u16>,
    maint_time: Vec<i64>,
    maint_kind: Vec<u16>,
    machine: Option<(u16, f64)>,
    /// Keep at least this many hours of readings and errors, whatever the spec needs (a server
    /// keeps more than its current model's windows, so that a model swapped in with longer
    /// windows still sees the history it needs).
    retention_hours: u32,
}

impl MachineState {
    pub fn new(spec: &FeatureSpec) -> Self {
        MachineState { sensors: vec![Vec::new(); spec.contract.sensors.len()], ..Default::default() }
    }

    /// A buffer that keeps at least `hours` of history.
    pub fn with_retention(spec: &FeatureSpec, hours: u32) -> Self {
        MachineState { retention_hours: hours, ..Self::new(spec) }
    }

    /// Sets the machine's model (contract index) and age in years.
    pub fn set_machine(&mut self, spec: &FeatureSpec, model: u16, age: f64) -> Result<(), OnlineError> {
        if usize::from(model) >= spec.contract.models.len() {
            return Err(OnlineError::UnknownLabel { what: "model", index: model });
        }
        if !age.is_finite() {
            return Err(OnlineError::NonFinite { sensor: "age".into(), value: age });
        }
        self.machine = Some((model, age));
        Ok(())
    }

    pub fn machine(&self) -> Option<(u16, f64)> {
        self.machine
    }

    /// Makes room for `readings` more readings without reallocating.
    pub fn reserve(&mut self, readings: usize) {
        self.time.reserve(readings);
        for col in &mut self.sensors {
            col.reserve(readings);
        }
    }

    /// Number of buffered readings.
    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn is_empty(&self) -> bool {
        self.time.is_empty()
    }

    /// Time of the latest reading.
    pub fn latest(&self) -> Option<i64> {
        self.time.last().copied()
    }

    /// Adds a reading. Readings may arrive late as long as they still fall inside the buffer.
    /// Sending the same reading again is a no-op (returns `Ok(false)`), so that a client can
    /// retry; a different reading at the same time is refused.
    pub fn push_reading(
        &mut self,
        spec: &FeatureSpec,
        machine_id: u32,
        time: i64,
        values: &[f64],
    ) -> Result<bool, OnlineError> {
        check_values(spec, values)?;
        let pos = self.time.partition_point(|&x| x < time);
        if self.time.get(pos) == Some(&time) {
            // Equal bit for bit, or both missing.
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            if self.sensors.iter().zip(values).all(|(col, &v)| same(col[pos], v)) {
                return Ok(false);
            }
            return Err(OnlineError::Duplicate { machine: machine_id, time: Timestamp(time).to_string() });
        }
        if pos == 0
            && let Some(&oldest) = self.time.first()
            && self
                .latest()
                .is_some_and(|l| time <= l - i64::from(spec.telemetry_history_hours().max(self.retention_hours)) * HOUR)
        {
            return Err(OnlineError::TooOld {
                machine: machine_id,
                time: Timestamp(time).to_string(),
                oldest: Timestamp(oldest).to_string(),
            });
        }
        self.time.insert(pos, time);
        for (col, &v) in self.sensors.iter_mut().zip(values) {
            col.insert(pos, v);
        }
        self.prune(spec);
        Ok(true)
    }

    /// Adds readings `(time, values)` as [`push_reading`](Self::push_reading) one by one would —
    /// same state, same first error, with the index of the reading it is about — but drops what
    /// the windows no longer need once at the end rather than after every reading: a reading
    /// later than every buffered one is appended after only the checks of its values. (Dropping
    /// depends only on the latest time, which only grows, so dropping late drops the same.)
    /// Readings in time order, as a request's history is, take that path throughout. After an
    /// error the state holds the readings before it, as after one-by-one pushing.
    pub fn push_readings<'v>(
        &mut self,
        spec: &FeatureSpec,
        machine_id: u32,
        readings: impl IntoIterator<Item = (i64, &'v [f64])>,
    ) -> Result<(), (usize, OnlineError)> {
        let mut result = Ok(());
        for (i, (time, values)) in readings.into_iter().enumerate() {
            let pushed = if self.latest().is_none_or(|latest| time > latest) {
                check_values(spec, values).map(|()| {
                    self.time.push(time);
                    for (col, &v) in self.sensors.iter_mut().zip(values) {
                        col.push(v);
                    }
                })
            } else {
                // The state one-by-one pushing would have reached, then the general path.
                self.prune(spec);
                self.push_reading(spec, machine_id, time, values).map(drop)
            };
            if let Err(e) = pushed {
                result = Err((i, e));
                break;
            }
        }
        self.prune(spec);
        result
    }

    /// Adds an error event (`kind` indexes the contract's error types). An event already present
    /// (same time and type) is not counted twice: returns `Ok(false)` (the batch reader refuses
    /// such duplicates too).
    pub fn push_error(&mut self, spec: &FeatureSpec, time: i64, kind: u16) -> Result<bool, OnlineError> {
        if usize::from(kind) >= spec.contract.error_types.len() {
            return Err(OnlineError::UnknownLabel { what: "error type", index: kind });
        }
        let inserted = insert_event(&mut self.error_time, &mut self.error_kind, time, kind);
        self.prune(spec);
        Ok(inserted)
    }

    /// Adds a maintenance (component replacement) event; a repeated event returns `Ok(false)`.
    pub fn push_maint(&mut self, spec: &FeatureSpec, time: i64, kind: u16) -> Result<bool, OnlineError> {
        if usize::from(kind) >= spec.contract.components.len() {
            return Err(OnlineError::UnknownLabel { what: "component", index: kind });
        }
        let inserted = insert_event(&mut self.maint_time, &mut self.maint_kind, time, kind);
        self.prune(spec);
        Ok(inserted)
    }

    /// Oldest buffered reading time.
    pub fn oldest(&self) -> Option<i64> {
        self.time.first().copied()
    }

    /// Hours of history the buffer keeps at least.
    pub fn retention_hours(&self) -> u32 {
        self.retention_hours
    }

    /// Drops what no future feature row can use.
    fn prune(&mut self, spec: &FeatureSpec) {
        let Some(latest) = self.latest() else { return };
        let keep_after = latest - i64::from(spec.telemetry_history_hours().max(self.retention_hours)) * HOUR;
        let cut = self.time.partition_point(|&x| x <= keep_after);
        if cut > 0 {
            self.time.drain(..cut);
            for col in &mut self.sensors {
                col.drain(..cut);
            }
        }
        let keep_err = latest - i64::from(spec.error_history_hours().max(self.retention_hours)) * HOUR;
        let cut = self.error_time.partition_point(|&x| x <= keep_err);
        if cut > 0 {
            self.error_time.drain(..cut);
            self.error_kind.drain(..cut);
        }
        // Keep, per component, the last replacement at or before the latest reading, and every
        // later one.
        let upto = self.maint_time.partition_point(|&x| x <= latest);
        // Usually there is nothing to drop (a few events, one per component): checked without
        // allocating, since this runs on every update.
        let kinds = &self.maint_kind[..upto];
        if !kinds.iter().enumerate().any(|(j, k)| kinds[j + 1..].contains(k)) {
            return;
        }
        let mut seen = vec![false; spec.contract.components.len()];
        let mut keep = vec![true; self.maint_time.len()];
        for j in (0..upto).rev() {
            let c = usize::from(self.maint_kind[j]);
            if seen[c] {
                keep[j] = false;
            }
            seen[c] = true;
        }
        if keep.iter().any(|k| !k) {
            let mut idx = 0;
            self.maint_time.retain(|_| {
                idx += 1;
                keep[idx - 1]
            });
            let mut idx = 0;
            self.maint_kind.retain(|_| {
                idx += 1;
                keep[idx - 1]
            });
        }
    }

    /// Features at the latest reading; returns its time.
    pub fn features_latest(&self, spec: &FeatureSpec, machine_id: u32, out: &mut [f64]) -> Result<i64, OnlineError> {
        let last = self.time.len().checked_sub(1).ok_or(OnlineError::NoReadings { machine: machine_id })?;
        let sensors: Vec<&[f64]> = self.sensors.iter().map(Vec::as_slice).collect();
        let h = MachineHistory {
            time: &self.time,
            sensors: &sensors,
            error_time: &self.error_time,
            error_kind: &self.error_kind,
            maint_time: &self.maint_time,
            maint_kind: &self.maint_kind,
            machine: self.machine,
        };
        compute_row(spec, &h, last, out);
        Ok(self.time[last])
    }
}

/// A reading's values: one per contract sensor, each finite or missing (NaN), as the reader
/// keeps them.
fn check_values(spec: &FeatureSpec, values: &[f64]) -> Result<(), OnlineError> {
    let sensors = &spec.contract.sensors;
    if values.len() != sensors.len() {
        let names = spec.contract.sensor_names().join(", ");
        return Err(OnlineError::Arity { expected: sensors.len(), got: values.len(), names });
    }
    if let Some((s, &v)) = sensors.iter().zip(values).find(|(_, v)| v.is_infinite()) {
        let name = &s.name;
        return Err(OnlineError::NonFinite { sensor: name.clone(), value: v });
    }
    Ok(())
}

/// Inserts `(time, kind)` into time-sorted parallel vectors unless it is already there.
fn insert_event(times: &mut Vec<i64>, kinds: &mut Vec<u16>, time: i64, kind: u16) -> bool {
    let lo = times.partition_point(|&x| x < time);
    let hi = times.partition_point(|&x| x <= time);
    if kinds[lo..hi].contains(&kind) {
        return false;
    }
    times.insert(hi, time);
    kinds.insert(hi, kind);
    true
}

/// Buffered state of a fleet.
#[derive(Clone, Debug, Default)]
pub struct FleetState {
    pub machines: HashMap<u32, MachineState>,
}

impl FleetState {
    pub fn machine_mut(&mut self, spec: &FeatureSpec, id: u32) -> &mut MachineState {
        self.machines.entry(id).or_insert_with(|| MachineState::new(spec))
    }
}
