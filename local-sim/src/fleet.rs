//! A generator for any data contract: a fleet with the contract's sensors, error types,
//! components, machine models and cadence, so that a contract other than the Azure one can be
//! run end to end before a team has exported its own data.
//!
//! It is the Azure generator's mechanics, simplified and driven only by the contract:
//! - each component wears from its last replacement and, after [`MIN_LIFE_DAYS`], fails on a
//!   machine's daily round with a probability that grows with its model's index and its age;
//! - a visit every [`VISIT_DAYS`] days replaces one component with probability 0.7, and every
//!   failure writes a maintenance record of the failed component;
//! - error type `c % n_errors` announces a failure of component `c` one day ahead, over a
//!   background of errors at any reading;
//! - each sensor reads Gaussian noise around the middle of its physical bounds (sd 1/40 of the
//!   range, or 1 when a side is unbounded) and, before a failure of component `c`, sensor
//!   `c % n_sensors` drifts up by 1 sd over 12 h, starting 12-60 h ahead (so that some positive
//!   readings carry no drift yet). Readings stay within the bounds.
//!
//! Deterministic for a seed, machine by machine, like [`crate::generate`].

use pm_core::data::contract::{Contract, Dataset, Events, Machines, Telemetry};
use pm_core::data::time::{DAY, HOUR};
use pm_core::rng::{Rng, derive_seed};
use rayon::prelude::*;

use crate::generate::{GenConfig, append_sorted};

/// Days a new component lasts before it can fail.
pub const MIN_LIFE_DAYS: i64 = 30;
/// Days between two scheduled visits.
pub const VISIT_DAYS: i64 = 15;

/// The five tables of a synthetic fleet under `contract`: `cfg.hours` hours of readings at the
/// contract's cadence from `cfg.start`.
pub fn generate_for(contract: &Contract, cfg: &GenConfig) -> Dataset {
    let step = contract.cadence_secs();
    let readings = (i64::from(cfg.hours) * HOUR / step).max(1) as usize;
    let n_models = contract.models.len().max(1) as u64;
    let (age_lo, age_hi) = (contract.age.min.max(0.0), contract.age.max.min(contract.age.min.max(0.0) + 20.0));
    let mut machines = Machines::default();
    for id in 1..=cfg.machines {
        let mut r = Rng::new(derive_seed(cfg.seed ^ 0xF1EE7, u64::from(id)));
        machines.id.push(id);
        machines.model.push(r.below(n_models) as u16);
        machines.age.push(r.uniform(age_lo, age_hi).round().clamp(contract.age.min, contract.age.max));
    }
    let per_machine: Vec<Machine> = (0..machines.len())
        .into_par_iter()
        .map(|i| simulate(contract, cfg, step, readings, machines.id[i], machines.model[i], machines.age[i]))
        .collect();
    let mut telemetry = Telemetry::with_sensors(contract.sensors.len());
    let (mut errors, mut maint, mut failures) = (Events::default(), Events::default(), Events::default());
    for (i, m) in per_machine.into_iter().enumerate() {
        let id = machines.id[i];
        telemetry.machine.extend(std::iter::repeat_n(id, readings));
        telemetry.time.extend((0..readings as i64).map(|k| cfg.start.0 + k * step));
        for (col, vals) in telemetry.sensors.iter_mut().zip(m.sensors) {
            col.extend(vals);
        }
        append_sorted(&mut errors, id, m.errors);
        append_sorted(&mut maint, id, m.maint);
        append_sorted(&mut failures, id, m.failures);
    }
    Dataset { contract: contract.clone(), telemetry, errors, maint, failures, machines }
}

struct Machine {
    sensors: Vec<Vec<f64>>,
    errors: Vec<(i64, u16)>,
    maint: Vec<(i64, u16)>,
    failures: Vec<(i64, u16)>,
}

fn simulate(
    contract: &Contract,
    cfg: &GenConfig,
    step: i64,
    readings: usize,
    id: u32,
    model: u16,
    age: f64,
) -> Machine {
    let mut rng = Rng::new(derive_seed(cfg.seed, u64::from(id)));
    let start = cfg.start.0;
    let end = start + readings as i64 * step;
    let n_comp = contract.components.len();
    let n_err = contract.error_types.len();
    let (mut errors, mut maint, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    let mut wear: Vec<i64> = (0..n_comp).map(|_| rng.below(60) as i64).collect();
    for (c, w) in wear.iter().enumerate() {
        maint.push((start - (w + 1) * DAY, c as u16));
    }
    let daily = 1.0 / 45.0 * (1.0 + 0.15 * f64::from(model)) * (1.0 + age / 40.0);
    let offset = rng.below(VISIT_DAYS as u64) as i64;
    let mut day = 1;
    while start + day * DAY < end {
        let t = start + day * DAY;
        for (c, w) in wear.iter_mut().enumerate() {
            *w += 1;
            if *w > MIN_LIFE_DAYS && rng.chance(daily) {
                failures.push((t, c as u16));
                maint.push((t, c as u16));
                if n_err > 0 && t - DAY >= start && rng.chance(0.95) {
                    errors.push((t - DAY, (c % n_err) as u16));
                }
                *w = 0;
            }
        }
        if (day + offset) % VISIT_DAYS == 0 && n_comp > 0 && rng.chance(0.7) {
            let c = rng.below(n_comp as u64) as usize;
            maint.push((t, c as u16));
            wear[c] = 0;
        }
        day += 1;
    }
    let years = (end - start) as f64 / (365.0 * DAY as f64);
    for e in 0..n_err {
        for _ in 0..rng.poisson(6.0 * years) {
            errors.push((start + rng.below(readings as u64) as i64 * step, e as u16));
        }
    }

    let mut noise = Rng::new(derive_seed(cfg.seed ^ 0x5EED_F1EE, u64::from(id)));
    let shape: Vec<(f64, f64, f64, f64)> = contract
        .sensors
        .iter()
        .map(|s| {
            let (lo, hi) = s.bounds();
            if lo.is_finite() && hi.is_finite() {
                ((lo + hi) / 2.0, (hi - lo) / 40.0, lo, hi)
            } else {
                (0.0, 1.0, lo, hi)
            }
        })
        .collect();
    let mut sensors: Vec<Vec<f64>> = shape
        .iter()
        .map(|&(mean, sd, _, _)| (0..readings).map(|_| mean + sd * cfg.noise * noise.normal()).collect())
        .collect();
    if !sensors.is_empty() {
        for &(f, c) in &failures {
            let s = usize::from(c) % sensors.len();
            let onset = rng.uniform(12.0, 60.0) * HOUR as f64;
            let size = 1.0 * shape[s].1 * cfg.signal;
            let first = (((f as f64 - onset) - start as f64) / step as f64).ceil().max(0.0) as usize;
            let last = (((f - start) / step) as usize).min(readings);
            for (k, v) in sensors[s].iter_mut().enumerate().take(last).skip(first) {
                let into = (start + k as i64 * step - f) as f64 + onset;
                *v += size * (into / (12.0 * HOUR as f64)).clamp(0.0, 1.0);
            }
        }
    }
    for (col, &(_, _, lo, hi)) in sensors.iter_mut().zip(&shape) {
        for v in col {
            *v = v.clamp(lo, hi);
        }
    }
    Machine { sensors, errors, maint, failures }
}
