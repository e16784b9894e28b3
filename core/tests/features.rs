//! Features: hand-computed cases, and the train/serve contract (online == batch).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pm_core::data::contract::{Contract, Dataset, Events, Machines, Telemetry};
use pm_core::data::time::HOUR;
use pm_core::features::online::MachineState;
use pm_core::features::{FeatureSet, FeatureSpec, compute_batch, compute_batch_as};
use proptest::prelude::*;

const T0: i64 = 1_420_092_000; // 2015-01-01 06:00:00

fn dataset(times: &[i64], sensors: Vec<Vec<f64>>, errors: Events, maint: Events, failures: Events) -> Dataset {
    Dataset {
        contract: Contract::azure_pdm(),
        telemetry: Telemetry { machine: vec![1; times.len()], time: times.to_vec(), sensors },
        errors,
        maint,
        failures,
        machines: Machines { id: vec![1], model: vec![2], age: vec![18.0] },
    }
}

fn events(list: &[(i64, u16)]) -> Events {
    let mut e = Events::default();
    for &(t, k) in list {
        e.push(1, t, k);
    }
    e
}

fn col(table: &pm_core::features::FeatureTable<f64>, name: &str) -> Vec<f64> {
    let i = table.names.iter().position(|n| n == name).unwrap_or_else(|| panic!("no feature {name}"));
    table.columns[i].clone()
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

#[test]
fn feature_sets_have_the_documented_names() {
    let seed = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 72);
    let names = seed.names();
    assert_eq!(names.len(), 36);
    assert_eq!(&names[..5], ["volt", "rotate", "pressure", "vibration", "volt_3h_mean"]);
    assert_eq!(&names[4..8], ["volt_3h_mean", "volt_3h_std", "volt_3h_max", "volt_3h_min"]);
    assert_eq!(names[35], "vibration_24h_min");
    let rich = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
    let names = rich.names();
    assert_eq!(names.len(), 36 + 10 + 4 + 5 + 8);
    assert!(names.contains(&"error5_count_72h".to_string()));
    assert!(names.contains(&"comp4_hours_since_replacement".to_string()));
    assert!(names.contains(&"rotate_trend_24h".to_string()));
    assert_eq!(rich.telemetry_history_hours(), 48);
    rich.validate().unwrap();
}

#[test]
fn rolling_windows_are_over_time_not_rows() {
    // Readings at 0h, 1h, 2h, then a gap, then 5h.
    let times = [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + 5 * HOUR];
    let volt = vec![1.0, 2.0, 4.0, 8.0];
    let sensors = vec![volt, vec![0.0; 4], vec![0.0; 4], vec![0.0; 4]];
    let ds = dataset(&times, sensors, Events::default(), Events::default(), Events::default());
    let spec = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 24);
    let t = compute_batch_as::<f64>(&spec, &ds);
    // 3 h window at 2h holds 0h,1h,2h; at 5h it holds only 5h (3h and 4h are missing).
    assert_eq!(col(&t, "volt_3h_mean"), vec![1.0, 1.5, 7.0 / 3.0, 8.0]);
    assert_eq!(col(&t, "volt_3h_max"), vec![1.0, 2.0, 4.0, 8.0]);
    assert_eq!(col(&t, "volt_3h_min"), vec![1.0, 1.0, 1.0, 8.0]);
    let std = col(&t, "volt_3h_std");
    assert!(std[0].is_nan() && std[3].is_nan(), "one reading: undefined, not 0 and not borrowed");
    assert!(close(
        std[2],
        (7.0f64 / 3.0).sqrt()
            * ((1.0 - 7.0 / 3.0f64).powi(2) + (2.0 - 7.0 / 3.0f64).powi(2) + (4.0 - 7.0 / 3.0f64).powi(2)).sqrt()
            / (14.0f64 / 3.0).sqrt()
    ));
    assert_eq!(col(&t, "volt_24h_mean"), vec![1.0, 1.5, 7.0 / 3.0, 15.0 / 4.0]);
}

/// A missing reading (NaN) is left out of every window: the statistics are over the values
/// present, undefined without one (the sd without two); the raw feature is missing; the lag
/// delta reads over a missing value to the last one present in its window.
#[test]
fn missing_values_are_left_out_of_windows_and_lags_read_over_them() {
    let times: Vec<i64> = (0..30).map(|h| T0 + h * HOUR).collect();
    let nan = f64::NAN;
    let mut volt: Vec<f64> = (0..30).map(|h| h as f64).collect();
    for h in [1, 2, 5, 6, 7, 29] {
        volt[h] = nan;
    }
    let sensors = vec![volt, vec![nan; 30], vec![1.0; 30], vec![1.0; 30]];
    let ds = dataset(&times, sensors, Events::default(), Events::default(), Events::default());
    let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
    let t = compute_batch_as::<f64>(&spec, &ds);
    let (raw, mean3, std3, max3, min3) = (
        col(&t, "volt"),
        col(&t, "volt_3h_mean"),
        col(&t, "volt_3h_std"),
        col(&t, "volt_3h_max"),
        col(&t, "volt_3h_min"),
    );
    assert!(raw[1].is_nan() && raw[3] == 3.0);
    // At 2h the 3 h window holds 0h (present), 1h and 2h (missing): one value.
    assert_eq!((mean3[2], max3[2], min3[2]), (0.0, 0.0, 0.0));
    assert!(std3[2].is_nan(), "one value present: no sd");
    // At 4h: 2h missing, 3h and 4h present.
    assert_eq!(mean3[4], 3.5);
    assert!(close(std3[4], 0.5f64.sqrt()));
    // At 7h: 5h, 6h, 7h all missing.
    assert!(mean3[7].is_nan() && max3[7].is_nan() && min3[7].is_nan());
    // 24 h window at 24h: 1..=24 less the five missing.
    let present: Vec<f64> = (1..=24).filter(|h| ![1, 2, 5, 6, 7].contains(h)).map(|h| h as f64).collect();
    assert!(close(col(&t, "volt_24h_mean")[24], present.iter().sum::<f64>() / present.len() as f64));
    // A sensor without any value: all its features missing.
    assert!(col(&t, "rotate_24h_mean").iter().chain(&col(&t, "rotate")).all(|x| x.is_nan()));
    // Lag delta at 25h: 25 - 1, but 1h is missing: the last value present at or before 1h in
    // (25h - 48h, 1h] is 0h's. At 29h (missing now): the last present in (5h, 29h] is 28h's;
    // 5h is missing, and so is every value back to 5 - 24: 4h's is used.
    let delta = col(&t, "volt_lag24h_delta");
    assert_eq!(delta[24], 24.0 - 0.0);
    assert_eq!(delta[25], 25.0 - 0.0);
    assert_eq!(delta[29], 28.0 - 4.0);
    assert_eq!(delta[26], 26.0 - 0.0, "2h missing too: 0h again");
    assert_eq!(delta[27], 27.0 - 3.0);
}

#[test]
fn windows_never_cross_machines() {
    let times = [T0, T0 + HOUR, T0, T0 + HOUR];
    let mut ds = dataset(
        &times,
        vec![vec![1.0, 2.0, 100.0, 200.0], vec![0.0; 4], vec![0.0; 4], vec![0.0; 4]],
        Events::default(),
        Events::default(),
        Events::default(),
    );
    ds.telemetry.machine = vec![1, 1, 2, 2];
    ds.machines = Machines { id: vec![1, 2], model: vec![0, 1], age: vec![3.0, 4.0] };
    let spec = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 24);
    let t = compute_batch_as::<f64>(&spec, &ds);
    assert_eq!(col(&t, "volt_24h_mean"), vec![1.0, 1.5, 100.0, 150.0]);
    assert!(col(&t, "volt_24h_std")[2].is_nan(), "machine 2's first row does not inherit machine 1's");
}

#[test]
fn labels_errors_maintenance_and_trend() {
    let times: Vec<i64> = (0..60).map(|h| T0 + h * HOUR).collect();
    let volt: Vec<f64> = (0..60).map(|h| h as f64).collect();
    let sensors = vec![volt, vec![1.0; 60], vec![1.0; 60], vec![1.0; 60]];
    let errors = events(&[(T0 + 10 * HOUR, 0), (T0 + 10 * HOUR, 4), (T0 + 40 * HOUR, 0)]);
    let maint = events(&[(T0 - 100 * HOUR, 1), (T0 + 20 * HOUR, 1), (T0 + 30 * HOUR, 2)]);
    let failures = events(&[(T0 + 30 * HOUR, 2), (T0 + 59 * HOUR, 0)]);
    let ds = dataset(&times, sensors, errors, maint, failures);
    let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
    let t = compute_batch_as::<f64>(&spec, &ds);

    // Failure at 30h: rows 6h..29h are positive (t in [F - 24h, F)); the failure hour is not.
    let lab: Vec<u8> = t.label.clone();
    assert_eq!(lab[5], 0);
    assert!(lab[6..30].iter().all(|&l| l == 1));
    assert_eq!(lab[30], 0);
    assert_eq!(lab[34], 0);
    assert!(lab[35..59].iter().all(|&l| l == 1));
    assert_eq!(lab[59], 0);
    assert_eq!(t.label_component[2][6], 1);
    assert_eq!(t.label_component[0][6], 0);
    assert_eq!(t.label_component[0][40], 1);
    assert_eq!(t.hours_to_failure[6], 24.0);
    assert!(t.hours_to_failure[59].is_nan());

    // Error counts over (t - 24h, t].
    let e1 = col(&t, "error1_count_24h");
    assert_eq!((e1[9], e1[10], e1[33], e1[34], e1[40]), (0.0, 1.0, 1.0, 0.0, 1.0));
    assert_eq!(col(&t, "error1_count_72h")[40], 2.0);
    assert_eq!(col(&t, "error5_count_24h")[10], 1.0);

    // Hours since replacement: comp2 replaced before the window and again at 20h; comp1 never.
    let c2 = col(&t, "comp2_hours_since_replacement");
    assert_eq!((c2[0], c2[19], c2[20], c2[25]), (100.0, 119.0, 0.0, 5.0));
    assert!(col(&t, "comp1_hours_since_replacement")[0].is_nan());
    assert_eq!(col(&t, "model_model3")[0], 1.0);
    assert_eq!(col(&t, "age")[0], 18.0);

    // Lag delta and trend of a line with slope 1: x(t) - x(t-24h) = 24, trend = 24.
    let lag = col(&t, "volt_lag24h_delta");
    assert!(lag[23].is_nan());
    assert_eq!(lag[24], 24.0);
    assert_eq!(col(&t, "volt_trend_24h")[50], 24.0);
}

#[test]
fn labels_scale_to_many_failures_linearly() {
    // O(rows + failures): one machine, a year of readings, a failure every 30 hours.
    let n = 8_761;
    let times: Vec<i64> = (0..n).map(|h| T0 + h * HOUR).collect();
    let failures = events(&(1..n / 30).map(|k| (T0 + k * 30 * HOUR, (k % 4) as u16)).collect::<Vec<_>>());
    let ds = dataset(&times, vec![vec![0.0; n as usize]; 4], Events::default(), Events::default(), failures.clone());
    let spec = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 24);
    let t = compute_batch(&spec, &ds);
    // Brute force for comparison.
    for (i, &time) in times.iter().enumerate() {
        let expect = failures.time.iter().any(|&f| f > time && f - time <= 24 * HOUR);
        assert_eq!(t.label[i] == 1, expect, "row {i}");
    }
}

// ---- The train/serve contract ----

#[derive(Debug, Clone)]
struct History {
    times: Vec<i64>,
    sensors: Vec<Vec<f64>>,
    errors: Vec<(i64, u16)>,
    maint: Vec<(i64, u16)>,
    model: u16,
    age: f64,
}

fn history() -> impl Strategy<Value = History> {
    let gaps = prop::collection::vec(prop_oneof![7 => Just(1i64), 2 => 2i64..4, 1 => 10i64..60], 1..150);
    (
        gaps,
        any::<u64>(),
        prop::collection::vec((-120i64..400, 0u16..5), 0..40),
        prop::collection::vec((-500i64..400, 0u16..4), 0..12),
        0u16..4,
        0.0f64..25.0,
        prop::sample::select(vec![0.0f64, 0.0, 0.1, 0.4, 1.0]),
    )
        .prop_map(|(gaps, seed, errors, maint, model, age, missing_rate)| {
            let mut t = T0;
            let times: Vec<i64> = gaps
                .iter()
                .map(|g| {
                    t += g * HOUR;
                    t
                })
                .collect();
            let mut rng = pm_core::rng::Rng::new(seed);
            // Sensor values missing (NaN, as the reader keeps an empty value) at one rate; a rate
            // of 1 leaves a sensor without any value.
            let sensors = (0..4)
                .map(|s| {
                    let rate = if s == 3 && missing_rate == 1.0 { 1.0 } else { missing_rate.min(0.4) };
                    times
                        .iter()
                        .map(|_| {
                            let x = 100.0 * (s + 1) as f64 + 30.0 * rng.normal();
                            if rng.chance(rate) { f64::NAN } else { x }
                        })
                        .collect()
                })
                .collect();
            let mut errors: Vec<(i64, u16)> = errors.into_iter().map(|(h, k)| (T0 + h * HOUR, k)).collect();
            errors.sort();
            // The reader refuses repeated events (same machine, time and type): so does the buffer.
            errors.dedup();
            let mut maint: Vec<(i64, u16)> = maint.into_iter().map(|(h, k)| (T0 + h * HOUR, k)).collect();
            maint.sort();
            maint.dedup();
            History { times, sensors, errors, maint, model, age }
        })
}

fn batch_rows(spec: &FeatureSpec, h: &History) -> pm_core::features::FeatureTable<f64> {
    let ds = Dataset {
        contract: spec.contract.clone(),
        telemetry: Telemetry { machine: vec![1; h.times.len()], time: h.times.clone(), sensors: h.sensors.clone() },
        errors: events(&h.errors),
        maint: events(&h.maint),
        failures: Events::default(),
        machines: Machines { id: vec![1], model: vec![h.model], age: vec![h.age] },
    };
    compute_batch_as::<f64>(spec, &ds)
}

/// The online row is the batch row bit for bit (NaN, a missing feature, equal to NaN).
fn assert_row_matches(
    batch: &pm_core::features::FeatureTable<f64>,
    i: usize,
    online: &[f64],
) -> Result<(), TestCaseError> {
    for (c, name) in batch.names.iter().enumerate() {
        let (b, o) = (batch.columns[c][i], online[c]);
        prop_assert!(
            b.to_bits() == o.to_bits() || (b.is_nan() && o.is_nan()),
            "row {i} feature {name}: batch {b:?} online {o:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Events arrive in time order with the readings.
    #[test]
    fn online_equals_batch_streaming(h in history(), rich in any::<bool>()) {
        let set = if rich { FeatureSet::Rich } else { FeatureSet::Seed };
        let spec = FeatureSpec::new(set, Contract::azure_pdm(), 24);
        let batch = batch_rows(&spec, &h);
        let mut state = MachineState::new(&spec);
        state.set_machine(&spec, h.model, h.age).unwrap();
        let (mut ei, mut mi) = (0, 0);
        let mut out = vec![0.0; spec.n_features()];
        for (i, &t) in h.times.iter().enumerate() {
            while ei < h.errors.len() && h.errors[ei].0 <= t {
                state.push_error(&spec, h.errors[ei].0, h.errors[ei].1).unwrap();
                ei += 1;
            }
            while mi < h.maint.len() && h.maint[mi].0 <= t {
                state.push_maint(&spec, h.maint[mi].0, h.maint[mi].1).unwrap();
                mi += 1;
            }
            let values: Vec<f64> = h.sensors.iter().map(|c| c[i]).collect();
            state.push_reading(&spec, 1, t, &values).unwrap();
            prop_assert!(state.len() <= spec.telemetry_history_hours() as usize, "the buffer is bounded");
            let at = state.features_latest(&spec, 1, &mut out).unwrap();
            prop_assert_eq!(at, t);
            assert_row_matches(&batch, i, &out)?;
        }
    }

    /// Events are all known up front (e.g. loaded from a maintenance system), readings stream.
    #[test]
    fn online_equals_batch_with_events_first(h in history()) {
        let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
        let batch = batch_rows(&spec, &h);
        let mut state = MachineState::new(&spec);
        state.set_machine(&spec, h.model, h.age).unwrap();
        for &(t, k) in h.errors.iter().rev() {
            state.push_error(&spec, t, k).unwrap();
        }
        for &(t, k) in &h.maint {
            state.push_maint(&spec, t, k).unwrap();
        }
        let mut out = vec![0.0; spec.n_features()];
        for (i, &t) in h.times.iter().enumerate() {
            let values: Vec<f64> = h.sensors.iter().map(|c| c[i]).collect();
            state.push_reading(&spec, 1, t, &values).unwrap();
            state.features_latest(&spec, 1, &mut out).unwrap();
            assert_row_matches(&batch, i, &out)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every feature computed from readings within their sensors' bounds lies within the range
    /// `value_ranges` gives it (what pm-serve checks a client's feature vectors against).
    #[test]
    fn features_lie_within_their_value_ranges(h in history(), rich in any::<bool>()) {
        let set = if rich { FeatureSet::Rich } else { FeatureSet::Seed };
        let spec = FeatureSpec::new(set, Contract::azure_pdm(), 24);
        let bounds: Vec<(f64, f64)> = h
            .sensors
            .iter()
            .map(|c| {
                let (lo, hi) = (c.iter().copied().fold(f64::INFINITY, f64::min), c.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                // A sensor without any value: every feature of it is missing, any bounds do.
                if lo > hi { (0.0, 1.0) } else { (lo, hi) }
            })
            .collect();
        let ranges = spec.value_ranges(&bounds, (h.age, h.age));
        prop_assert_eq!(ranges.len(), spec.n_features());
        let batch = batch_rows(&spec, &h);
        for (c, name) in batch.names.iter().enumerate() {
            // A mean of equal readings may round one ulp past them.
            let (lo, hi) = ranges[c];
            let (lo, hi) = (lo - 1e-9 * (1.0 + lo.abs()), hi + 1e-9 * (1.0 + hi.abs()));
            for (i, &x) in batch.columns[c].iter().enumerate() {
                prop_assert!(x.is_nan() || (lo..=hi).contains(&x), "row {i} {name} = {x} outside [{lo}, {hi}]");
            }
        }
    }
}

#[test]
fn online_refuses_bad_updates_and_keeps_its_state() {
    let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
    let mut s = MachineState::new(&spec);
    s.push_reading(&spec, 7, T0 + 100 * HOUR, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    assert!(s.push_error(&spec, T0 + 99 * HOUR, 2).unwrap());
    assert!(!s.push_error(&spec, T0 + 99 * HOUR, 2).unwrap(), "a repeated error event is not counted twice");
    assert!(s.push_maint(&spec, T0 + 98 * HOUR, 1).unwrap());
    assert!(!s.push_maint(&spec, T0 + 98 * HOUR, 1).unwrap());
    let before = s.clone();
    // The same reading again is an idempotent no-op; a different one at that time is refused.
    assert!(!s.push_reading(&spec, 7, T0 + 100 * HOUR, &[1.0, 2.0, 3.0, 4.0]).unwrap());
    assert_eq!(
        s.push_reading(&spec, 7, T0 + 100 * HOUR, &[1.5, 2.0, 3.0, 4.0]).unwrap_err().to_string(),
        "a reading for machine 7 at 2015-01-05 10:00:00 already exists with different values"
    );
    assert_eq!(
        s.push_reading(&spec, 7, T0, &[1.0, 2.0, 3.0, 4.0]).unwrap_err().to_string(),
        "reading at 2015-01-01 06:00:00 is older than the buffer of machine 7 (which starts after 2015-01-05 10:00:00); send readings in time order"
    );
    assert_eq!(
        s.push_reading(&spec, 7, T0 + 101 * HOUR, &[1.0, f64::NEG_INFINITY, 3.0, 4.0]).unwrap_err().to_string(),
        "sensor 'rotate': value -inf is not finite"
    );
    assert_eq!(
        s.push_reading(&spec, 7, T0 + 101 * HOUR, &[1.0]).unwrap_err().to_string(),
        "expected 4 sensor values (volt, rotate, pressure, vibration), got 1"
    );
    assert_eq!(s.push_error(&spec, T0, 9).unwrap_err().to_string(), "unknown error type index 9");
    assert_eq!(s, before);
    assert_eq!(
        MachineState::new(&spec).features_latest(&spec, 3, &mut [0.0; 63]).unwrap_err().to_string(),
        "machine 3 has no readings yet"
    );
}

/// The buffer keeps only what features can still use: a machine fed for weeks holds the same
/// state as one fed just its recent readings and errors and each component's last replacement.
#[test]
fn online_buffer_stays_bounded() {
    let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
    let hours = 500i64;
    let values = |h: i64| [h as f64, 2.0, 3.0, 4.0];
    let mut long = MachineState::new(&spec);
    for h in 0..hours {
        if h % 10 == 0 {
            long.push_maint(&spec, T0 + h * HOUR, (h / 10 % 3) as u16).unwrap();
        }
        long.push_error(&spec, T0 + h * HOUR, (h % 5) as u16).unwrap();
        long.push_reading(&spec, 7, T0 + h * HOUR, &values(h)).unwrap();
    }
    let last = hours - 1;
    let mut recent = MachineState::new(&spec);
    // The last replacement of components 0, 1, 2 (every 10 h, in turn), oldest first.
    let mut fixes: Vec<i64> =
        (0..3).map(|c| (0..hours).step_by(10).filter(|h| h / 10 % 3 == c).max().unwrap()).collect();
    fixes.sort_unstable();
    for h in fixes {
        recent.push_maint(&spec, T0 + h * HOUR, (h / 10 % 3) as u16).unwrap();
    }
    for h in last - i64::from(spec.error_history_hours()) + 1..hours {
        recent.push_error(&spec, T0 + h * HOUR, (h % 5) as u16).unwrap();
    }
    for h in last - i64::from(spec.telemetry_history_hours()) + 1..hours {
        recent.push_reading(&spec, 7, T0 + h * HOUR, &values(h)).unwrap();
    }
    assert_eq!(long, recent);
    assert_eq!(long.len(), spec.telemetry_history_hours() as usize);
}

/// A reading for [`push_readings_equals_pushing_one_by_one`]: mostly in time order (as a
/// request's history is), sometimes late, repeated, changed, missing a value or infinite.
fn readings() -> impl Strategy<Value = Vec<(i64, [f64; 4])>> {
    let step = prop_oneof![30 => 1i64..3, 1 => -150i64..0, 1 => Just(0i64)];
    let value = prop_oneof![60 => Just(1.0f64), 1 => Just(2.0), 2 => Just(f64::NAN), 1 => Just(f64::INFINITY)];
    prop::collection::vec((step, value), 0..160).prop_map(|steps| {
        let mut h = 0;
        steps
            .into_iter()
            .map(|(step, v)| {
                h += step;
                (T0 + h * HOUR, [v, (h % 7) as f64, 3.0, 4.0])
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The window path's bulk push leaves the state one-by-one pushing leaves, and stops at the
    /// same first error.
    #[test]
    fn push_readings_equals_pushing_one_by_one(
        rs in readings(),
        errors in prop::collection::vec((0i64..200, 0u16..5), 0..20),
    ) {
        let spec = FeatureSpec::new(FeatureSet::Rich, Contract::azure_pdm(), 24);
        let mut start = MachineState::new(&spec);
        for (h, k) in errors {
            start.push_error(&spec, T0 + h * HOUR, k).unwrap();
        }
        let mut one = start.clone();
        let first_error = rs
            .iter()
            .enumerate()
            .find_map(|(i, (t, v))| one.push_reading(&spec, 3, *t, v).err().map(|e| (i, e.to_string())));
        let mut bulk = start;
        let got = bulk.push_readings(&spec, 3, rs.iter().map(|(t, v)| (*t, &v[..])));
        prop_assert_eq!(got.map_err(|(i, e)| (i, e.to_string())).err(), first_error);
        // Value for value, a missing value (NaN) equal to a missing one: `Debug` prints each
        // number's shortest round trip.
        prop_assert_eq!(format!("{bulk:?}"), format!("{one:?}"));
    }
}
