//! Statistics of a data set that the published facts of the real one can be checked against.
//! Works on any [`Dataset`]: generated, or read from the real files.

use std::collections::BTreeMap;

use pm_core::data::contract::{Dataset, Events, machine_range};
use pm_core::data::time::{DAY, HOUR};
use serde::Serialize;

/// Published facts of the real data set (PDM_FACTS.md); the generator is calibrated to them.
pub mod facts {
    pub const SENSOR_MEAN: [f64; 4] = [170.777736, 446.605119, 100.858668, 40.385007];
    pub const SENSOR_SD: [f64; 4] = [15.509114, 52.673886, 11.048679, 5.370361];
    pub const FAILURES: u64 = 761;
    pub const FAILURES_PER_COMPONENT: [u64; 4] = [192, 259, 131, 179];
    pub const ERRORS: u64 = 3_919;
    pub const ERRORS_PER_TYPE: [u64; 5] = [1_010, 988, 838, 727, 356];
    pub const MAINT: u64 = 3_286;
    pub const MEAN_AGE: f64 = 11.33;
    pub const SD_AGE: f64 = 5.86;
    pub const MODEL_COUNTS: [u64; 4] = [16, 17, 35, 32];
    /// Days since the last replacement at failure: min, median, mean.
    pub const DAYS_SINCE_REPLACEMENT_AT_FAILURE: (f64, f64, f64) = (26.0, 75.0, 90.0);
    /// Share of failures with the mapped error exactly 24 h before (96-99 %).
    pub const ERROR_LEAD_SHARE: (f64, f64) = (0.96, 0.99);
}

#[derive(Clone, Debug, Serialize)]
pub struct DataStats {
    pub machines: usize,
    pub telemetry_rows: usize,
    pub sensor_mean: Vec<f64>,
    pub sensor_sd: Vec<f64>,
    pub failures: u64,
    pub failures_per_component: Vec<u64>,
    pub errors: u64,
    pub errors_per_type: Vec<u64>,
    pub maint: u64,
    pub maint_before_telemetry: u64,
    pub model_counts: Vec<u64>,
    pub age_mean: f64,
    pub age_sd: f64,
    /// min, median, mean days since the same component's previous replacement, at failure.
    pub days_since_replacement_at_failure: (f64, f64, f64),
    /// Share of gaps between replacements of one component that are multiples of 15 days.
    pub replacement_gaps_on_15_day_grid: f64,
    /// Share of failures with every mapped error type logged exactly 24 h before.
    pub failures_with_error_24h_before: f64,
    /// Share of failures that have a maintenance record of the same component at the same time.
    pub failures_with_maint_record: f64,
    /// Correlation between a machine's age and its failure count.
    pub age_failure_correlation: f64,
    /// Mean failures per machine, by model.
    pub failures_per_machine_by_model: Vec<f64>,
    /// Errors per hour of the day (0..24).
    pub errors_by_hour: Vec<u64>,
}

fn kind_counts(ev: &Events, n: usize) -> Vec<u64> {
    let mut c = vec![0; n];
    for &k in &ev.kind {
        if let Some(x) = c.get_mut(usize::from(k)) {
            *x += 1;
        }
    }
    c
}

fn has_event(ev: &Events, machine: u32, time: i64, kind: u16) -> bool {
    let r = machine_range(&ev.machine, machine);
    (r.start..r.end).any(|i| ev.time[i] == time && ev.kind[i] == kind)
}

/// Which error types a component's failure is announced by (Azure PdM: comp2 has two).
pub const ERRORS_OF_COMPONENT: [&[u16]; 4] = [&[0], &[1, 2], &[3], &[4]];

pub fn compute(ds: &Dataset) -> DataStats {
    let t = &ds.telemetry;
    let n = t.len().max(1) as f64;
    let sensor_mean: Vec<f64> = t.sensors.iter().map(|c| c.iter().sum::<f64>() / n).collect();
    let sensor_sd: Vec<f64> = t
        .sensors
        .iter()
        .zip(&sensor_mean)
        .map(|(c, m)| (c.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt())
        .collect();
    let tel_start = t.time.iter().copied().min().unwrap_or(0);
    let n_comp = ds.contract.components.len();

    // Days since replacement at failure, and replacement gaps.
    let mut at_failure = Vec::new();
    let mut gaps = 0u64;
    let mut gaps_on_grid = 0u64;
    for (m, r) in ds.maint.machine_ranges() {
        for c in 0..n_comp as u16 {
            let times: Vec<i64> = r.clone().filter(|&i| ds.maint.kind[i] == c).map(|i| ds.maint.time[i]).collect();
            for w in times.windows(2) {
                gaps += 1;
                gaps_on_grid += u64::from((w[1] - w[0]) % (15 * DAY) == 0);
            }
            let fr = machine_range(&ds.failures.machine, m);
            for i in fr {
                if ds.failures.kind[i] != c {
                    continue;
                }
                let f = ds.failures.time[i];
                if let Some(prev) = times.iter().rev().find(|&&x| x < f) {
                    at_failure.push((f - prev) as f64 / DAY as f64);
                }
            }
        }
    }
    at_failure.sort_by(f64::total_cmp);
    let days_since = if at_failure.is_empty() {
        (f64::NAN, f64::NAN, f64::NAN)
    } else {
        (at_failure[0], at_failure[at_failure.len() / 2], at_failure.iter().sum::<f64>() / at_failure.len() as f64)
    };

    let mut with_error = 0u64;
    let mut with_maint = 0u64;
    for i in 0..ds.failures.len() {
        let (m, f, c) = (ds.failures.machine[i], ds.failures.time[i], ds.failures.kind[i]);
        let mapped = ERRORS_OF_COMPONENT.get(usize::from(c)).copied().unwrap_or(&[]);
        if !mapped.is_empty() && mapped.iter().all(|&e| has_event(&ds.errors, m, f - DAY, e)) {
            with_error += 1;
        }
        if has_event(&ds.maint, m, f, c) {
            with_maint += 1;
        }
    }
    let nf = ds.failures.len().max(1) as f64;

    let mach = &ds.machines;
    let per_machine: Vec<f64> =
        mach.id.iter().map(|&id| machine_range(&ds.failures.machine, id).len() as f64).collect();
    let age_failure_correlation = correlation(&mach.age, &per_machine);
    let mut by_model = vec![(0.0, 0.0); ds.contract.models.len()];
    for (i, &f) in per_machine.iter().enumerate() {
        if let Some(e) = by_model.get_mut(usize::from(mach.model[i])) {
            e.0 += f;
            e.1 += 1.0;
        }
    }
    let nm = mach.len().max(1) as f64;
    let age_mean = mach.age.iter().sum::<f64>() / nm;
    let age_sd = (mach.age.iter().map(|a| (a - age_mean).powi(2)).sum::<f64>() / (nm - 1.0).max(1.0)).sqrt();
    let mut errors_by_hour = vec![0; 24];
    for &e in &ds.errors.time {
        errors_by_hour[(e.rem_euclid(DAY) / HOUR) as usize] += 1;
    }
    DataStats {
        machines: mach.len(),
        telemetry_rows: t.len(),
        sensor_mean,
        sensor_sd,
        failures: ds.failures.len() as u64,
        failures_per_component: kind_counts(&ds.failures, n_comp),
        errors: ds.errors.len() as u64,
        errors_per_type: kind_counts(&ds.errors, ds.contract.error_types.len()),
        maint: ds.maint.len() as u64,
        maint_before_telemetry: ds.maint.time.iter().filter(|&&x| x < tel_start).count() as u64,
        model_counts: kind_counts(
            &Events { machine: vec![], time: vec![], kind: mach.model.clone() },
            ds.contract.models.len(),
        ),
        age_mean,
        age_sd,
        days_since_replacement_at_failure: days_since,
        replacement_gaps_on_15_day_grid: gaps_on_grid as f64 / gaps.max(1) as f64,
        failures_with_error_24h_before: with_error as f64 / nf,
        failures_with_maint_record: with_maint as f64 / nf,
        age_failure_correlation,
        failures_per_machine_by_model: by_model.iter().map(|(f, n)| if *n > 0.0 { f / n } else { 0.0 }).collect(),
        errors_by_hour,
    }
}

fn correlation(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    if x.len() < 2 {
        return f64::NAN;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

/// A side-by-side table of generated statistics and published facts.
pub fn comparison_table(s: &DataStats) -> String {
    let mut rows: BTreeMap<usize, (String, String, String)> = BTreeMap::new();
    let mut add = |name: &str, got: String, want: String| {
        let k = rows.len();
        rows.insert(k, (name.to_string(), got, want));
    };
    let names = ["volt", "rotate", "pressure", "vibration"];
    for (i, name) in names.iter().enumerate().take(s.sensor_mean.len()) {
        add(
            &format!("{name} mean / sd"),
            format!("{:.3} / {:.3}", s.sensor_mean[i], s.sensor_sd[i]),
            format!("{:.3} / {:.3}", facts::SENSOR_MEAN[i], facts::SENSOR_SD[i]),
        );
    }
    add(
        "failures (comp1..4)",
        format!("{} {:?}", s.failures, s.failures_per_component),
        format!("{} {:?}", facts::FAILURES, facts::FAILURES_PER_COMPONENT),
    );
    add(
        "errors (error1..5)",
        format!("{} {:?}", s.errors, s.errors_per_type),
        format!("{} {:?}", facts::ERRORS, facts::ERRORS_PER_TYPE),
    );
    add(
        "maint (before telemetry)",
        format!("{} ({})", s.maint, s.maint_before_telemetry),
        format!("{} (400)", facts::MAINT),
    );
    add("machines per model", format!("{:?}", s.model_counts), format!("{:?}", facts::MODEL_COUNTS));
    add(
        "age mean / sd",
        format!("{:.2} / {:.2}", s.age_mean, s.age_sd),
        format!("{:.2} / {:.2}", facts::MEAN_AGE, facts::SD_AGE),
    );
    let (a, b, c) = s.days_since_replacement_at_failure;
    let (fa, fb, fc) = facts::DAYS_SINCE_REPLACEMENT_AT_FAILURE;
    add(
        "days since replacement at failure (min/median/mean)",
        format!("{a:.0} / {b:.0} / {c:.0}"),
        format!("{fa:.0} / {fb:.0} / {fc:.0}"),
    );
    add(
        "replacement gaps on the 15-day grid",
        format!("{:.0} %", 100.0 * s.replacement_gaps_on_15_day_grid),
        "76 %".into(),
    );
    add(
        "failures with mapped error 24 h before",
        format!("{:.1} %", 100.0 * s.failures_with_error_24h_before),
        "96-99 %".into(),
    );
    add(
        "failures with a maint record",
        format!("{:.1} %", 100.0 * s.failures_with_maint_record),
        "97.6 % (all but 18)".into(),
    );
    add("corr(age, failures per machine)", format!("{:.2}", s.age_failure_correlation), "0.47".into());
    add(
        "failures per machine by model",
        format!("{:.1?}", s.failures_per_machine_by_model),
        "[11.8, 9.9, 6.3, 5.7]".into(),
    );
    let w0 = rows.values().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.values().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let mut out = format!("{:<w0$}  {:<w1$}  {}\n", "statistic", "this data", "real data (published)");
    for (name, got, want) in rows.values() {
        out.push_str(&format!("{name:<w0$}  {got:<w1$}  {want}\n"));
    }
    out
}
