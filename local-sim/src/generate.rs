//! A deterministic generator of Azure-PdM-shaped data, calibrated to the published facts of the
//! real data set (see `ARCHITECTURE.md`, "Synthetic data", for every number and its source).
//!
//! The mechanics, per machine:
//! - **Wear and failure.** Each of the four components wears from its last replacement; its daily
//!   failure probability follows a Weibull-type cumulative hazard that is zero for the first
//!   [`Params::min_life_days`] and rises steeply after. Older machines and models 1-2 fail more.
//! - **Scheduled maintenance** on a 15-day grid (one grid per machine, at 06:00): a visit happens
//!   with probability [`Params::visit_prob`] and replaces one or two components, chosen by a
//!   per-component service propensity (some components are neglected: the long tail of gaps).
//!   Every failure also writes a maintenance record for the failed component at the same time.
//! - **Errors**: background errors at any hour (Poisson, per type), plus the error type(s) mapped
//!   to a failing component exactly 24 h before the failure.
//! - **Telemetry**: hourly i.i.d. Gaussian readings around the fleet means; before a failure the
//!   mapped sensor drifts (volt up for comp1, rotate down for comp2, pressure up for comp3,
//!   vibration up for comp4), starting 1.5-2.5 days ahead and ramping up over 12 h.
//!
//! Machines are generated independently from per-machine random streams, so machine `m` is the
//! same whatever the fleet size, and the fleet is generated in parallel.

use pm_core::data::contract::{Contract, Dataset, Events, Machines, Telemetry};
use pm_core::data::time::{DAY, HOUR, Timestamp};
use pm_core::rng::{Rng, derive_seed};
use rayon::prelude::*;

/// The generator's knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct GenConfig {
    pub machines: u32,
    /// Hourly telemetry rows per machine.
    pub hours: u32,
    /// Time of the first reading (06:00 in the real data).
    pub start: Timestamp,
    pub seed: u64,
    /// Multiplier of the hourly sensor noise (1 = calibrated).
    pub noise: f64,
    /// Multiplier of the pre-failure sensor drift (0 = no telemetry signal, 1 = calibrated).
    pub signal: f64,
}

impl GenConfig {
    /// The real data set's shape: 100 machines, 8,761 hours from 2015-01-01 06:00:00.
    pub fn azure_default() -> Self {
        GenConfig { machines: 100, hours: 8_761, start: Timestamp(1_420_092_000), seed: 42, noise: 1.0, signal: 1.0 }
    }
}

/// Calibration constants (one place; tests compare their effect with the published facts).
#[derive(Clone, Debug)]
pub struct Params {
    pub sensor_mean: [f64; 4],
    pub sensor_noise_sd: [f64; 4],
    /// Pre-failure drift of the mapped sensor, in units of its noise sd (sign = direction).
    pub drift_sd: [f64; 4],
    /// Hours before the failure when the drift starts: uniform in this range.
    pub drift_onset_hours: (f64, f64),
    pub drift_ramp_hours: f64,
    /// Weibull scale per component, days of wear beyond `min_life_days`.
    pub wear_scale_days: [f64; 4],
    pub wear_shape: f64,
    pub min_life_days: f64,
    /// Log hazard multiplier per machine model.
    pub model_effect: [f64; 4],
    /// Log hazard multiplier per year of age above the fleet mean.
    pub age_effect: f64,
    pub visit_prob: f64,
    pub two_comp_visit_prob: f64,
    /// Log-normal sd of the per-component service propensity.
    pub propensity_sd: f64,
    /// Background errors per machine-year, per error type.
    pub background_errors: [f64; 5],
    /// Probability that a failure is announced by its mapped error(s) 24 h ahead.
    pub error_lead_prob: f64,
}

impl Params {
    pub fn calibrated() -> Self {
        Params {
            sensor_mean: [170.7777, 446.6051, 100.8587, 40.3850],
            sensor_noise_sd: [15.33, 51.75, 10.70, 5.24],
            drift_sd: [1.6, -1.9, 3.1, 2.4],
            drift_onset_hours: (36.0, 60.0),
            drift_ramp_hours: 12.0,
            wear_scale_days: [87.0, 66.0, 140.0, 102.0],
            wear_shape: 1.0,
            min_life_days: 35.0,
            model_effect: [0.7, 0.5, -0.15, -0.3],
            age_effect: 0.045,
            visit_prob: 0.73,
            two_comp_visit_prob: 0.21,
            propensity_sd: 1.2,
            background_errors: [8.13, 7.17, 5.65, 5.80, 1.76],
            error_lead_prob: 0.985,
        }
    }
}

/// Which error types announce a failing component (comp2 raises two).
const ERRORS_OF_COMPONENT: [&[u16]; 4] = [&[0], &[1, 2], &[3], &[4]];

/// Published age histogram of the 100 real machines: (age in years, count).
const AGE_HISTOGRAM: [(u32, u32); 20] = [
    (0, 1),
    (1, 3),
    (2, 6),
    (3, 4),
    (4, 3),
    (5, 4),
    (6, 4),
    (7, 6),
    (8, 1),
    (9, 5),
    (10, 10),
    (11, 2),
    (12, 2),
    (14, 14),
    (15, 6),
    (16, 5),
    (17, 7),
    (18, 6),
    (19, 4),
    (20, 7),
];
/// Published machine counts per model (model1..model4).
const MODEL_COUNTS: [u32; 4] = [16, 17, 35, 32];
const MEAN_AGE: f64 = 11.33;

/// Generates the five tables. Deterministic for a config.
pub fn generate(cfg: &GenConfig) -> Dataset {
    generate_with(cfg, &Params::calibrated())
}

pub fn generate_with(cfg: &GenConfig, p: &Params) -> Dataset {
    let contract = Contract::azure_pdm();
    let machines = machine_table(cfg);
    let per_machine: Vec<MachineData> = (0..machines.len())
        .into_par_iter()
        .map(|i| simulate_machine(cfg, p, machines.id[i], machines.model[i], machines.age[i]))
        .collect();
    let n_rows = per_machine.iter().map(|m| m.sensors[0].len()).sum();
    let mut telemetry = Telemetry::with_sensors(4);
    telemetry.machine.reserve(n_rows);
    telemetry.time.reserve(n_rows);
    let (mut errors, mut maint, mut failures) = (Events::default(), Events::default(), Events::default());
    for (i, m) in per_machine.into_iter().enumerate() {
        let id = machines.id[i];
        let n = m.sensors[0].len();
        telemetry.machine.extend(std::iter::repeat_n(id, n));
        telemetry.time.extend((0..n as i64).map(|h| cfg.start.0 + h * HOUR));
        for (col, vals) in telemetry.sensors.iter_mut().zip(m.sensors) {
            col.extend(vals);
        }
        append_sorted(&mut errors, id, m.errors);
        append_sorted(&mut maint, id, m.maint);
        append_sorted(&mut failures, id, m.failures);
    }
    Dataset { contract, telemetry, errors, maint, failures, machines }
}

/// Appends one machine's `(time, kind)` events to `out`, sorted and without repeats.
pub(crate) fn append_sorted(out: &mut Events, machine: u32, mut ev: Vec<(i64, u16)>) {
    ev.sort_unstable();
    ev.dedup();
    for (t, k) in ev {
        out.push(machine, t, k);
    }
}

/// Machine ids 1..=n with model and age. For 100 machines the published counts are reproduced
/// exactly (shuffled by the seed); otherwise both are drawn from the published distributions.
fn machine_table(cfg: &GenConfig) -> Machines {
    let n = cfg.machines as usize;
    let mut rng = Rng::new(derive_seed(cfg.seed, u64::MAX));
    let mut ages: Vec<f64> =
        AGE_HISTOGRAM.iter().flat_map(|&(age, count)| std::iter::repeat_n(f64::from(age), count as usize)).collect();
    let mut models: Vec<u16> =
        MODEL_COUNTS.iter().enumerate().flat_map(|(m, &count)| std::iter::repeat_n(m as u16, count as usize)).collect();
    if n == 100 {
        rng.shuffle(&mut ages);
        rng.shuffle(&mut models);
    } else {
        // One stream per machine: machine m is the same in any fleet size.
        let draws: Vec<(f64, u16)> = (1..=cfg.machines)
            .map(|id| {
                let mut r = Rng::new(derive_seed(cfg.seed ^ 0xA9E5, u64::from(id)));
                (ages[r.below(100) as usize], models[r.below(100) as usize])
            })
            .collect();
        ages = draws.iter().map(|d| d.0).collect();
        models = draws.iter().map(|d| d.1).collect();
    }
    Machines { id: (1..=cfg.machines).collect(), model: models, age: ages }
}

struct MachineData {
    sensors: Vec<Vec<f64>>,
    errors: Vec<(i64, u16)>,
    maint: Vec<(i64, u16)>,
    failures: Vec<(i64, u16)>,
}

fn simulate_machine(cfg: &GenConfig, p: &Params, id: u32, model: u16, age: f64) -> MachineData {
    let mut rng = Rng::new(derive_seed(cfg.seed, u64::from(id)));
    let start = cfg.start.0;
    let end = start + i64::from(cfg.hours) * HOUR; // exclusive
    let n_days = (i64::from(cfg.hours) + 23) / 24;
    let mult = (p.model_effect[usize::from(model)] + p.age_effect * (age - MEAN_AGE)).exp();

    let mut maint = Vec::new();
    let mut failures = Vec::new();
    let mut errors = Vec::new();
    // Days since the last replacement, from one record before the window per component.
    let mut wear = [0.0f64; 4];
    for (c, w) in wear.iter_mut().enumerate() {
        let days_before = 4 + rng.below(211) as i64;
        maint.push((start - days_before * DAY, c as u16));
        *w = days_before as f64;
    }
    let propensity: [f64; 4] = std::array::from_fn(|_| (p.propensity_sd * rng.normal()).exp());
    let grid_offset = rng.below(15) as i64;
    let cum_hazard = |c: usize, days: f64| {
        let x = (days - p.min_life_days).max(0.0) / p.wear_scale_days[c];
        x.powf(p.wear_shape)
    };

    // Visits on the machine's 15-day grid: worn-out components are found failed (and replaced),
    // then the scheduled replacement, if any, happens. 747 of the 761 real failures fall on
    // their machine's grid.
    let mut last_visit = 0i64;
    for day in 1..n_days {
        if (day + grid_offset) % 15 != 0 {
            continue;
        }
        let elapsed = (day - last_visit) as f64;
        last_visit = day;
        for w in &mut wear {
            *w += elapsed;
        }
        let t = start + day * DAY;
        for (c, w) in wear.iter_mut().enumerate() {
            let dh = cum_hazard(c, *w) - cum_hazard(c, *w - elapsed);
            if rng.chance(1.0 - (-mult * dh).exp()) {
                failures.push((t, c as u16));
                maint.push((t, c as u16));
                for &e in ERRORS_OF_COMPONENT[c] {
                    if t - DAY >= start && rng.chance(p.error_lead_prob) {
                        errors.push((t - DAY, e));
                    }
                }
                *w = 0.0;
            }
        }
        if rng.chance(p.visit_prob) {
            let n_comp = if rng.chance(p.two_comp_visit_prob) { 2 } else { 1 };
            let mut chosen = [false; 4];
            for _ in 0..n_comp {
                let weights: [f64; 4] =
                    std::array::from_fn(|c| if chosen[c] || wear[c] == 0.0 { 0.0 } else { propensity[c] });
                let total: f64 = weights.iter().sum();
                if total <= 0.0 {
                    break;
                }
                let mut x = rng.f64() * total;
                let mut pick = 3;
                for (c, &wt) in weights.iter().enumerate() {
                    if x < wt {
                        pick = c;
                        break;
                    }
                    x -= wt;
                }
                chosen[pick] = true;
                maint.push((t, pick as u16));
                wear[pick] = 0.0;
            }
        }
    }

    // Background errors at any hour of the window.
    let years = f64::from(cfg.hours) / 8_760.0;
    for (e, &rate) in p.background_errors.iter().enumerate() {
        for _ in 0..rng.poisson(rate * years) {
            let h = rng.below(u64::from(cfg.hours)) as i64;
            errors.push((start + h * HOUR, e as u16));
        }
    }

    // Telemetry: its own stream, so that changing the signal knob keeps the noise identical.
    let mut noise_rng = Rng::new(derive_seed(cfg.seed ^ 0x5EED_7E1E, u64::from(id)));
    let hours = cfg.hours as usize;
    let mut sensors: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(hours)).collect();
    for _ in 0..hours {
        for (s, col) in sensors.iter_mut().enumerate() {
            col.push(p.sensor_mean[s] + p.sensor_noise_sd[s] * cfg.noise * noise_rng.normal());
        }
    }
    for &(f, c) in &failures {
        let c = usize::from(c);
        let onset = rng.uniform(p.drift_onset_hours.0, p.drift_onset_hours.1);
        let size = p.drift_sd[c] * p.sensor_noise_sd[c] * cfg.signal;
        let first = ((f as f64 - onset * HOUR as f64 - start as f64) / HOUR as f64).ceil().max(0.0) as i64;
        let last = ((f - start) / HOUR).min(hours as i64); // exclusive: the failure hour is repaired
        for h in first..last {
            let t = start + h * HOUR;
            let into = (t - f) as f64 / HOUR as f64 + onset;
            sensors[c][h as usize] += size * (into / p.drift_ramp_hours).clamp(0.0, 1.0);
        }
    }
    debug_assert!(failures.iter().all(|&(t, _)| t < end));
    MachineData { sensors, errors, maint, failures }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_machine_streams_are_independent_of_fleet_size() {
        let small = GenConfig { machines: 3, hours: 500, ..GenConfig::azure_default() };
        let a = generate(&small);
        let b = generate(&small);
        assert_eq!(a, b);
        let c = generate(&GenConfig { seed: 43, ..small.clone() });
        assert_ne!(a.telemetry.sensors, c.telemetry.sensors);
        let bigger = generate(&GenConfig { machines: 5, ..small });
        let r = bigger.telemetry.machine_ranges();
        assert_eq!(&bigger.telemetry.sensors[0][r[1].1.clone()], &a.telemetry.sensors[0][500..1000]);
    }
}
