//! Features: one kernel for training and serving.
//!
//! A [`FeatureSpec`] (versioned, saved with every features artifact and model bundle) names the
//! features. [`compute_row`] evaluates them for one machine at one reading, from that machine's
//! time-sorted history slices. The batch path ([`compute_batch`]) calls it for every reading of
//! every machine (machines in parallel); the online path ([`online`]) calls it on a
//! bounded per-machine buffer. Both pass the same values in the same order to the same code, so
//! a served feature vector is bit-for-bit the batch row for that machine and hour.
//!
//! Windows are over **time**, per machine, never across machines: the window of `w` hours at
//! reading time `t` holds that machine's readings in `(t - w, t]` (trailing, including `t`), so
//! gaps shrink a window instead of stretching it, as a row-count window would.
//!
//! **Architecture invariant:** nothing in this module knows where data comes from (CSV,
//! Parquet, HTTP); it sees slices.

pub mod online;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::contract::{Contract, Dataset, machine_range};
use crate::data::time::HOUR;

pub const FEATURE_SPEC_VERSION: u32 = 1;

/// A statistic over a rolling window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollingStat {
    Mean,
    /// Sample standard deviation (n - 1); undefined (NaN) with fewer than 2 readings.
    Std,
    Max,
    Min,
}

impl RollingStat {
    fn name(self) -> &'static str {
        match self {
            RollingStat::Mean => "mean",
            RollingStat::Std => "std",
            RollingStat::Max => "max",
            RollingStat::Min => "min",
        }
    }
}

/// The label: does the machine fail within the next `horizon_hours`?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// A reading at time `t` is positive if a failure happens in `(t, t + horizon]`.
    pub horizon_hours: u32,
}

/// Which features, over which windows, with which label. **API boundary**: saved in artifacts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    pub version: u32,
    pub contract: Contract,
    /// The raw reading of each sensor.
    pub raw: bool,
    /// Rolling windows over each sensor, hours.
    pub rolling_windows_hours: Vec<u32>,
    pub rolling_stats: Vec<RollingStat>,
    /// Error counts per type over these windows, hours (empty: none).
    pub error_windows_hours: Vec<u32>,
    /// Hours since the last replacement of each component.
    pub hours_since_replacement: bool,
    /// One-hot machine model and age in years.
    pub machine: bool,
    /// Lag delta `x(t) - x(t - T)` and trend `mean(t-T, t] - mean(t-2T, t-T]` per sensor.
    pub trend_hours: Option<u32>,
    pub label: LabelSpec,
}

/// Names of the feature sets users pick from (pipeline parameter `feature_set`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureSet {
    /// The 36 telemetry features of the system we replace (raw + 3 h / 24 h mean/std/max/min).
    Seed,
    /// Seed + error counts (24 h, 72 h), hours since replacement, model/age, 24 h lag and trend.
    Rich,
}

impl std::str::FromStr for FeatureSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "seed" => Ok(FeatureSet::Seed),
            "rich" => Ok(FeatureSet::Rich),
            other => Err(format!("unknown feature set {other:?} (expected seed or rich)")),
        }
    }
}

/// Why a spec is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("feature spec version {found} is not supported by this build (supports {FEATURE_SPEC_VERSION})")]
    Version { found: u32 },
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
}

impl FeatureSpec {
    pub fn new(set: FeatureSet, contract: Contract, horizon_hours: u32) -> Self {
        let stats = vec![RollingStat::Mean, RollingStat::Std, RollingStat::Max, RollingStat::Min];
        let rich = set == FeatureSet::Rich;
        FeatureSpec {
            version: FEATURE_SPEC_VERSION,
            contract,
            raw: true,
            rolling_windows_hours: vec![3, 24],
            rolling_stats: stats,
            error_windows_hours: if rich { vec![24, 72] } else { vec![] },
            hours_since_replacement: rich,
            machine: rich,
            trend_hours: rich.then_some(24),
            label: LabelSpec { horizon_hours },
        }
    }

    /// Checks a spec read from an artifact or a request.
    pub fn validate(&self) -> Result<(), SpecError> {
        let invalid = |field, message: &str| Err(SpecError::Invalid { field, message: message.to_string() });
        if self.version != FEATURE_SPEC_VERSION {
            return Err(SpecError::Version { found: self.version });
        }
        if self.rolling_windows_hours.iter().chain(&self.error_windows_hours).any(|&w| w == 0) {
            return invalid("windows", "a window must be at least 1 hour");
        }
        if self.trend_hours == Some(0) {
            return invalid("trend_hours", "must be at least 1 hour");
        }
        if self.label.horizon_hours == 0 {
            return invalid("label.horizon_hours", "must be at least 1 hour");
        }
        if self.contract.error_types.len() > 64 {
            return invalid("contract.error_types", "at most 64 error types are supported");
        }
        if self.names().is_empty() {
            return invalid("features", "the spec selects no feature");
        }
        Ok(())
    }

    /// Feature names, in the column order of the feature matrix and of the model input.
    pub fn names(&self) -> Vec<String> {
        let c = &self.contract;
        let mut out = Vec::new();
        if self.raw {
            out.extend(c.sensors.iter().map(|s| s.name.clone()));
        }
        for w in &self.rolling_windows_hours {
            for s in &c.sensors {
                for st in &self.rolling_stats {
                    out.push(format!("{}_{w}h_{}", s.name, st.name()));
                }
            }
        }
        for w in &self.error_windows_hours {
            for e in &c.error_types {
                out.push(format!("{e}_count_{w}h"));
            }
        }
        if self.hours_since_replacement {
            for comp in &c.components {
                out.push(format!("{comp}_hours_since_replacement"));
            }
        }
        if self.machine {
            for m in &c.models {
                out.push(format!("model_{m}"));
            }
            out.push("age".to_string());
        }
        if let Some(t) = self.trend_hours {
            for s in &c.sensors {
                out.push(format!("{}_lag{t}h_delta", s.name));
            }
            for s in &c.sensors {
                out.push(format!("{}_trend_{t}h", s.name));
            }
        }
        out
    }

    pub fn n_features(&self) -> usize {
        self.names().len()
    }

    /// The range each feature's value can take, in the order of [`FeatureSpec::names`], when every
    /// reading lies within its sensor's bounds (`sensors`, in contract order; a sensor without
    /// one is unbounded) and the machine's age within `age`: a reading, a window's mean, max and
    /// min within the sensor's range; a standard deviation, lag delta or trend within its width;
    /// counts and hours not negative; the model one-hot 0 or 1. A missing value (NaN) is in no
    /// range; callers decide whether to allow it.
    pub fn value_ranges(&self, sensors: &[(f64, f64)], age: (f64, f64)) -> Vec<(f64, f64)> {
        let c = &self.contract;
        let sensor = |i: usize| sensors.get(i).copied().unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
        let width = |i: usize| {
            let (lo, hi) = sensor(i);
            hi - lo
        };
        let mut out = Vec::new();
        if self.raw {
            out.extend((0..c.sensors.len()).map(sensor));
        }
        for _ in &self.rolling_windows_hours {
            for i in 0..c.sensors.len() {
                for st in &self.rolling_stats {
                    out.push(match st {
                        RollingStat::Std => (0.0, width(i)),
                        RollingStat::Mean | RollingStat::Max | RollingStat::Min => sensor(i),
                    });
                }
            }
        }
        let counts = self.error_windows_hours.len() * c.error_types.len();
        out.extend(std::iter::repeat_n((0.0, f64::INFINITY), counts));
        if self.hours_since_replacement {
            out.extend(std::iter::repeat_n((0.0, f64::INFINITY), c.components.len()));
        }
        if self.machine {
            out.extend(std::iter::repeat_n((0.0, 1.0), c.models.len()));
            out.push(age);
        }
        if self.trend_hours.is_some() {
            for _ in 0..2 {
                out.extend((0..c.sensors.len()).map(|i| (-width(i), width(i))));
            }
        }
        out
    }

    /// How far back (hours) telemetry must be kept to compute a row: readings older than
    /// `t - telemetry_history_hours()` never enter any window.
    pub fn telemetry_history_hours(&self) -> u32 {
        let rolling = self.rolling_windows_hours.iter().copied().max().unwrap_or(0);
        let trend = self.trend_hours.map_or(0, |t| 2 * t);
        rolling.max(trend).max(1)
    }

    /// How far back (hours) error events must be kept.
    pub fn error_history_hours(&self) -> u32 {
        self.error_windows_hours.iter().copied().max().unwrap_or(0)
    }
}

/// One machine's history up to (at least) the reading being featurised, as time-sorted slices.
#[derive(Clone, Copy, Debug)]
pub struct MachineHistory<'a> {
    /// Reading times, strictly increasing.
    pub time: &'a [i64],
    /// One slice per contract sensor, aligned with `time`.
    pub sensors: &'a [&'a [f64]],
    /// Error events (times non-decreasing) and their types.
    pub error_time: &'a [i64],
    pub error_kind: &'a [u16],
    /// Maintenance events (times non-decreasing) and their components.
    pub maint_time: &'a [i64],
    pub maint_kind: &'a [u16],
    /// Model index and age, if known.
    pub machine: Option<(u16, f64)>,
}

/// Sum in four interleaved partial sums (breaks the add-latency chain). The association order is
/// fixed, so every caller, batch or online, gets the same bits for the same slice.
#[inline]
fn sum4(xs: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rem = chunks.remainder();
    for c in chunks {
        acc[0] += c[0];
        acc[1] += c[1];
        acc[2] += c[2];
        acc[3] += c[3];
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &x in rem {
        sum += x;
    }
    sum
}

/// Sum of squared deviations from `mean`, like [`sum4`].
#[inline]
fn sum_sq_dev4(xs: &[f64], mean: f64) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = xs.chunks_exact(4);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..4 {
            let d = c[k] - mean;
            acc[k] += d * d;
        }
    }
    let mut ss = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for &x in rem {
        let d = x - mean;
        ss += d * d;
    }
    ss
}

/// Mean, sample sd, max and min of a window over the values present in it (a missing reading is
/// NaN; readings are never infinite: the reader and the online buffer refuse that), computed the
/// same way everywhere. Undefined (NaN) without a present value; the sd needs two.
///
/// A window without a missing value (the usual one) takes the fast path: plain comparisons for
/// the max and min and four lanes to break the dependency chains (exact for max and min, a fixed
/// association order for the sums). A missing value makes its mean NaN, which sends the window
/// to [`window_stats_present`].
#[inline]
fn window_stats(xs: &[f64]) -> [f64; 4] {
    let st = window_stats_dense(xs);
    if st[0].is_nan() && !xs.is_empty() { window_stats_present(xs) } else { st }
}

/// [`window_stats`] over the present values only, in one order (deterministic, like the rest).
fn window_stats_present(xs: &[f64]) -> [f64; 4] {
    let (mut n, mut sum, mut hi, mut lo) = (0usize, 0.0f64, f64::NEG_INFINITY, f64::INFINITY);
    for &x in xs.iter().filter(|x| !x.is_nan()) {
        n += 1;
        sum += x;
        hi = if x > hi { x } else { hi };
        lo = if x < lo { x } else { lo };
    }
    if n == 0 {
        return [f64::NAN; 4];
    }
    let mean = sum / n as f64;
    let std = if n < 2 {
        f64::NAN
    } else {
        let ss: f64 = xs.iter().filter(|x| !x.is_nan()).map(|x| (x - mean) * (x - mean)).sum();
        (ss / (n - 1) as f64).sqrt()
    };
    [mean, std, hi, lo]
}

/// [`window_stats`] of a window whose values are all present.
#[inline]
fn window_stats_dense(xs: &[f64]) -> [f64; 4] {
    let n = xs.len();
    if n == 0 {
        return [f64::NAN; 4];
    }
    let mut hi = [xs[0]; 4];
    let mut lo = [xs[0]; 4];
    let chunks = xs.chunks_exact(4);
    for &x in chunks.remainder() {
        hi[0] = if x > hi[0] { x } else { hi[0] };
        lo[0] = if x < lo[0] { x } else { lo[0] };
    }
    for c in chunks {
        for k in 0..4 {
            hi[k] = if c[k] > hi[k] { c[k] } else { hi[k] };
            lo[k] = if c[k] < lo[k] { c[k] } else { lo[k] };
        }
    }
    let max = hi[0].max(hi[1]).max(hi[2].max(hi[3]));
    let min = lo[0].min(lo[1]).min(lo[2].min(lo[3]));
    let mean = sum4(xs) / n as f64;
    let std = if n < 2 { f64::NAN } else { (sum_sq_dev4(xs, mean) / (n - 1) as f64).sqrt() };
    [mean, std, max, min]
}

/// The mean of the present values, like [`window_stats`] computes it (the same bits).
#[inline]
fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let m = sum4(xs) / xs.len() as f64;
    if m.is_nan() { window_stats_present(xs)[0] } else { m }
}

/// The last present value of `s` at an index in `lo..=j`, if any (a lag reads over a missing
/// reading to the last one present, within its window).
#[inline]
fn last_present(s: &[f64], lo: usize, j: usize) -> f64 {
    s[lo..=j].iter().rev().copied().find(|x| !x.is_nan()).unwrap_or(f64::NAN)
}

/// First index in `times[..end]` (sorted) whose time is after `bound`. Gallops backwards from
/// `end`, since windows are short compared with a machine's history: O(log window).
#[inline]
fn first_after(times: &[i64], end: usize, bound: i64) -> usize {
    let mut span = 1usize;
    while span < end && times[end - span] > bound {
        span *= 2;
    }
    // times[end - span] <= bound (or span >= end); times[end - span / 2..end] > bound.
    let lo = end.saturating_sub(span);
    let hi = end - span / 2;
    lo + times[lo..hi].partition_point(|&x| x <= bound)
}

/// Computes the features of the reading `i` of `h` into `out` (length = `spec.n_features()`).
///
/// Only history at or before `h.time[i]` is used: events after the reading are ignored, so a
/// row never sees the future.
pub fn compute_row(spec: &FeatureSpec, h: &MachineHistory<'_>, i: usize, out: &mut [f64]) {
    let t = h.time[i];
    let end = i + 1;
    let mut k = 0;
    if spec.raw {
        for s in h.sensors {
            out[k] = s[i];
            k += 1;
        }
    }
    // The usual order of the statistics is the order `window_stats` returns them in.
    let standard_stats = spec.rolling_stats == STANDARD_STATS;
    // The trend's current window is often one of the rolling windows: keep its means.
    let mut trend_means = [f64::NAN; 16];
    let mut have_trend_means = false;
    for &w in &spec.rolling_windows_hours {
        let lo = first_after(h.time, end, t - i64::from(w) * HOUR);
        let keep = spec.trend_hours == Some(w) && h.sensors.len() <= trend_means.len();
        for (si, s) in h.sensors.iter().enumerate() {
            let st = window_stats(&s[lo..end]);
            if keep {
                trend_means[si] = st[0];
            }
            if standard_stats {
                out[k..k + 4].copy_from_slice(&st);
                k += 4;
            } else {
                for stat in &spec.rolling_stats {
                    out[k] = match stat {
                        RollingStat::Mean => st[0],
                        RollingStat::Std => st[1],
                        RollingStat::Max => st[2],
                        RollingStat::Min => st[3],
                    };
                    k += 1;
                }
            }
        }
        have_trend_means |= keep;
    }
    if !spec.error_windows_hours.is_empty() {
        let e_end = first_after(h.error_time, h.error_time.len(), t);
        let n_types = spec.contract.error_types.len();
        for &w in &spec.error_windows_hours {
            let lo = first_after(h.error_time, e_end, t - i64::from(w) * HOUR);
            let counts = &mut out[k..k + n_types];
            counts.fill(0.0);
            for &kind in &h.error_kind[lo..e_end] {
                if let Some(c) = counts.get_mut(usize::from(kind)) {
                    *c += 1.0;
                }
            }
            k += n_types;
        }
    }
    if spec.hours_since_replacement {
        let m_end = first_after(h.maint_time, h.maint_time.len(), t);
        for comp in 0..spec.contract.components.len() {
            let last = (0..m_end).rev().find(|&j| usize::from(h.maint_kind[j]) == comp);
            out[k] = last.map_or(f64::NAN, |j| (t - h.maint_time[j]) as f64 / HOUR as f64);
            k += 1;
        }
    }
    if spec.machine {
        for m in 0..spec.contract.models.len() {
            out[k] = match h.machine {
                Some((model, _)) => f64::from(u8::from(usize::from(model) == m)),
                None => f64::NAN,
            };
            k += 1;
        }
        out[k] = h.machine.map_or(f64::NAN, |(_, age)| age);
        k += 1;
    }
    if let Some(th) = spec.trend_hours {
        let lag = i64::from(th) * HOUR;
        let mid = first_after(h.time, end, t - lag);
        let lag_idx = (mid > 0 && h.time[mid - 1] == t - lag).then(|| mid - 1);
        let lo = first_after(h.time, mid, t - 2 * lag);
        // The delta needs a reading at exactly t - lag; a missing value at either end is read
        // over to the last present one, the current within (t - lag, t], the lagged within
        // (t - 2 lag, t - lag].
        for s in h.sensors {
            out[k] = lag_idx.map_or(f64::NAN, |j| {
                let (now, then) = (s[i], s[j]);
                if !now.is_nan() && !then.is_nan() {
                    now - then
                } else {
                    last_present(s, mid, i) - last_present(s, lo.min(j), j)
                }
            });
            k += 1;
        }
        for (si, s) in h.sensors.iter().enumerate() {
            // Same slice, same summation: the cached rolling mean has the same bits.
            let current = if have_trend_means { trend_means[si] } else { mean(&s[mid..end]) };
            out[k] = current - mean(&s[lo..mid]);
            k += 1;
        }
    }
    debug_assert_eq!(k, out.len());
}

const STANDARD_STATS: [RollingStat; 4] = [RollingStat::Mean, RollingStat::Std, RollingStat::Max, RollingStat::Min];

/// How a computed `f64` feature is stored in a [`FeatureTable`].
pub trait FeatureValue: Copy + Send + Sync + Default + 'static {
    fn from_f64(v: f64) -> Self;
}

impl FeatureValue for f32 {
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl FeatureValue for f64 {
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
}

/// A feature matrix, column-major, with row keys and labels. Artifacts store `f32` (features are
/// computed in `f64` and rounded once; the model consumes `f32`, online and offline alike).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureTable<T = f32> {
    pub names: Vec<String>,
    pub machine: Vec<u32>,
    pub time: Vec<i64>,
    pub columns: Vec<Vec<T>>,
    /// 1 if any component fails within the horizon.
    pub label: Vec<u8>,
    /// One column per component: 1 if that component fails within the horizon.
    pub label_component: Vec<Vec<u8>>,
    /// Hours to the next failure of any component (NaN if none follows).
    pub hours_to_failure: Vec<f32>,
}

impl<T> FeatureTable<T> {
    pub fn n_rows(&self) -> usize {
        self.time.len()
    }
}

/// Where [`label_machine`] writes one machine's labels.
struct LabelOut<'a, 'b> {
    label: &'a mut [u8],
    label_comp: &'a mut [&'b mut [u8]],
    hours_to: &'a mut [f32],
}

/// Labels of each reading of one machine, from its failures (sorted by time). O(rows + failures).
fn label_machine(
    times: &[i64],
    fail_time: &[i64],
    fail_kind: &[u16],
    horizon: i64,
    n_comp: usize,
    out: LabelOut<'_, '_>,
) {
    let LabelOut { label, label_comp, hours_to } = out;
    // Next failure strictly after t, overall and per component: two-pointer sweeps.
    let mut next_any = 0;
    let mut next_comp = vec![0usize; n_comp];
    let comp_times: Vec<Vec<i64>> = (0..n_comp)
        .map(|c| fail_time.iter().zip(fail_kind).filter(|(_, k)| usize::from(**k) == c).map(|(t, _)| *t).collect())
        .collect();
    for (r, &t) in times.iter().enumerate() {
        while next_any < fail_time.len() && fail_time[next_any] <= t {
            next_any += 1;
        }
        let dt = fail_time.get(next_any).map(|&f| f - t);
        label[r] = u8::from(dt.is_some_and(|d| d <= horizon));
        hours_to[r] = dt.map_or(f32::NAN, |d| (d as f64 / HOUR as f64) as f32);
        for c in 0..n_comp {
            let ct = &comp_times[c];
            while next_comp[c] < ct.len() && ct[next_comp[c]] <= t {
                next_comp[c] += 1;
            }
            label_comp[c][r] = u8::from(ct.get(next_comp[c]).is_some_and(|&f| f - t <= horizon));
        }
    }
}

/// Splits each column into per-machine mutable chunks: result\[machine\]\[column\].
fn split_columns<'a, T>(columns: &'a mut [Vec<T>], lens: &[usize]) -> Vec<Vec<&'a mut [T]>> {
    let mut per: Vec<Vec<&'a mut [T]>> = lens.iter().map(|_| Vec::with_capacity(columns.len())).collect();
    for col in columns.iter_mut() {
        let mut rest: &'a mut [T] = col.as_mut_slice();
        for (m, &len) in lens.iter().enumerate() {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(len);
            per[m].push(head);
            rest = tail;
        }
    }
    per
}

/// Computes features and labels for every reading of a validated data set, machines in parallel.
pub fn compute_batch(spec: &FeatureSpec, ds: &Dataset) -> FeatureTable {
    compute_batch_as::<f32>(spec, ds)
}

/// [`compute_batch`], storing features as `T`.
pub fn compute_batch_as<T: FeatureValue>(spec: &FeatureSpec, ds: &Dataset) -> FeatureTable<T> {
    let tel = &ds.telemetry;
    let n = tel.len();
    let names = spec.names();
    let n_feat = names.len();
    let n_comp = spec.contract.components.len();
    let ranges = tel.machine_ranges();
    let lens: Vec<usize> = ranges.iter().map(|(_, r)| r.len()).collect();
    let mut columns: Vec<Vec<T>> = vec![vec![T::default(); n]; n_feat];
    let mut label_cols: Vec<Vec<u8>> = vec![vec![0; n]; 1 + n_comp];
    let mut hours_to: Vec<Vec<f32>> = vec![vec![0.0; n]];
    let per_feat = split_columns(&mut columns, &lens);
    let per_label = split_columns(&mut label_cols, &lens);
    let per_hours = split_columns(&mut hours_to, &lens);
    let horizon = i64::from(spec.label.horizon_hours) * HOUR;

    ranges.par_iter().zip(per_feat).zip(per_label.into_par_iter().zip(per_hours)).for_each(
        |(((machine, range), mut feat_cols), (mut lab_cols, mut hour_cols))| {
            let sensors: Vec<&[f64]> = tel.sensors.iter().map(|c| &c[range.clone()]).collect();
            let er = machine_range(&ds.errors.machine, *machine);
            let mr = machine_range(&ds.maint.machine, *machine);
            let fr = machine_range(&ds.failures.machine, *machine);
            let meta = ds.machines.position(*machine).map(|p| (ds.machines.model[p], ds.machines.age[p]));
            let h = MachineHistory {
                time: &tel.time[range.clone()],
                sensors: &sensors,
                error_time: &ds.errors.time[er.clone()],
                error_kind: &ds.errors.kind[er],
                maint_time: &ds.maint.time[mr.clone()],
                maint_kind: &ds.maint.kind[mr],
                machine: meta,
            };
            // Rows are computed into a small row-major block, then written column by column:
            // scattering each row over all feature columns touches one page per column per
            // row and thrashes the TLB.
            const BLOCK: usize = 64;
            let mut block = vec![0.0f64; BLOCK * n_feat];
            let n_rows = range.len();
            let mut start = 0;
            while start < n_rows {
                let len = BLOCK.min(n_rows - start);
                for r in 0..len {
                    compute_row(spec, &h, start + r, &mut block[r * n_feat..(r + 1) * n_feat]);
                }
                for (c, col) in feat_cols.iter_mut().enumerate() {
                    for (r, slot) in col[start..start + len].iter_mut().enumerate() {
                        *slot = T::from_f64(block[r * n_feat + c]);
                    }
                }
                start += len;
            }
            let (any, comps) = lab_cols.split_at_mut(1);
            let out = LabelOut { label: any[0], label_comp: comps, hours_to: hour_cols[0] };
            label_machine(h.time, &ds.failures.time[fr.clone()], &ds.failures.kind[fr], horizon, n_comp, out);
        },
    );

    let label = label_cols.remove(0);
    FeatureTable {
        names,
        machine: tel.machine.clone(),
        time: tel.time.clone(),
        columns,
        label,
        label_component: label_cols,
        hours_to_failure: hours_to.remove(0),
    }
}

#[cfg(test)]
mod tests {
    use super::first_after;

    #[test]
    fn galloping_search_equals_binary_search() {
        let times: Vec<i64> = (0..300).map(|i| i * 7 + (i % 3)).collect();
        for end in 0..times.len() {
            for bound in -5..2_200 {
                assert_eq!(
                    first_after(&times, end, bound),
                    times[..end].partition_point(|&x| x <= bound),
                    "end {end} bound {bound}"
                );
            }
        }
    }
}
