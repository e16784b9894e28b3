//! Training: the split cannot leak (a planted future-only signal stays unused), determinism, and
//! the bundle format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pm_core::artifacts::bundle::{BundleError, ModelBundle};
use pm_core::data::contract::Contract;
use pm_core::data::time::HOUR;
use pm_core::eval::metrics::roc_auc;
use pm_core::features::{FeatureSet, FeatureSpec, FeatureTable};
use pm_core::learn::split::SplitPlan;
use pm_core::learn::train::{Algorithm, TrainSpec, probabilities, train};
use pm_core::rng::Rng;

/// A table of `machines` x `hours` hourly rows with the seed feature set. Feature 0 carries a
/// real (weak) signal everywhere; feature 1 is noise before `signal_from` and equals the label
/// from then on (a signal that exists only in the future).
fn table(machines: u32, hours: i64, signal_from: i64) -> (FeatureSpec, FeatureTable) {
    let spec = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 24);
    let n_feat = spec.n_features();
    let mut r = Rng::new(11);
    let mut t = FeatureTable {
        names: spec.names(),
        columns: vec![Vec::new(); n_feat],
        label_component: vec![Vec::new(); 4],
        ..Default::default()
    };
    for m in 1..=machines {
        for h in 0..hours {
            let time = 1_420_092_000 + h * HOUR;
            let y = u8::from(r.chance(0.05));
            t.machine.push(m);
            t.time.push(time);
            t.label.push(y);
            for c in &mut t.label_component {
                c.push(y);
            }
            t.hours_to_failure.push(f32::NAN);
            for (f, col) in t.columns.iter_mut().enumerate() {
                let v = match f {
                    0 => f64::from(y) * 0.8 + r.normal(),
                    1 if time >= signal_from => f64::from(y),
                    _ => r.normal(),
                };
                col.push(v as f32);
            }
        }
    }
    // Rows sorted by time (the split works on times; order does not matter, but be realistic).
    (spec, t)
}

fn fast_spec(model: Algorithm) -> TrainSpec {
    let mut s = TrainSpec { model, ..TrainSpec::default() };
    s.gbdt.max_rounds = 60;
    s.random_forest.trees = 20;
    s
}

#[test]
fn a_signal_that_only_exists_after_training_is_not_learned() {
    let hours = 2_000;
    // Where the validation slice starts: 70 % of the span plus the 24 h embargo.
    let t0 = 1_420_092_000;
    let probe = SplitPlan::new(&[t0, t0 + (hours - 1) * HOUR], &Default::default(), 24).unwrap();
    let (spec, t) = table(20, hours, probe.valid_start);
    for algo in [Algorithm::Gbdt, Algorithm::RandomForest] {
        let (bundle, _) = train(&spec, &t, &fast_spec(algo), "hash", vec![]).unwrap();
        // The leaking feature is perfect on the test rows, yet the model never saw it informative.
        let test: Vec<u32> =
            (0..t.time.len() as u32).filter(|&i| t.time[i as usize] >= bundle.split.test_start).collect();
        let labels: Vec<u8> = test.iter().map(|&i| t.label[i as usize]).collect();
        let leak: Vec<f64> = test.iter().map(|&i| f64::from(t.columns[1][i as usize])).collect();
        assert_eq!(roc_auc(&leak, &labels), 1.0, "the planted signal is perfect in the test slice");
        assert!(
            bundle.importance[1] < 0.05,
            "{algo:?}: importance of the future-only feature {}",
            bundle.importance[1]
        );
        let scores = probabilities(&bundle.model.failure, &t.columns, &test);
        let auc = roc_auc(&scores, &labels);
        assert!(auc < 0.75, "{algo:?}: test AUC {auc} would mean the future leaked into training");
        assert!(auc > 0.6, "{algo:?}: the real signal is still used ({auc})");
        // No training row is at or after the end of the training slice.
        assert!(bundle.split.valid_start - bundle.split.train_end >= 24 * HOUR);
    }
}

#[test]
fn same_inputs_and_seed_give_a_byte_identical_bundle() {
    let (spec, t) = table(8, 1_500, i64::MAX);
    for algo in [Algorithm::Gbdt, Algorithm::RandomForest] {
        let a = train(&spec, &t, &fast_spec(algo), "h", vec![]).unwrap().0.to_json();
        let b = train(&spec, &t, &fast_spec(algo), "h", vec![]).unwrap().0.to_json();
        assert_eq!(a, b, "{algo:?}");
        let other_seed = TrainSpec { seed: 7, ..fast_spec(algo) };
        if algo == Algorithm::RandomForest {
            assert_ne!(a, train(&spec, &t, &other_seed, "h", vec![]).unwrap().0.to_json());
        }
    }
}

#[test]
fn bundles_round_trip_and_refuse_other_versions_and_inconsistencies() {
    let (spec, t) = table(6, 1_200, i64::MAX);
    let (bundle, _) = train(&spec, &t, &fast_spec(Algorithm::Gbdt), "h", vec![]).unwrap();
    let json = bundle.to_json();
    let back = ModelBundle::from_json(&json).unwrap();
    assert_eq!(back, bundle);
    // Predictions survive the round trip exactly.
    let rows: Vec<u32> = (0..200).collect();
    assert_eq!(
        probabilities(&back.model.failure, &t.columns, &rows),
        probabilities(&bundle.model.failure, &t.columns, &rows)
    );

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["format_version"] = serde_json::json!(3);
    let err = ModelBundle::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err();
    assert_eq!(err, BundleError::Version { found: 3 });
    assert_eq!(err.to_string(), "bundle format 3 is newer than this build supports (2); upgrade pm");

    // Format 1 wrote the contract's sensors as bare names: it still loads, without bounds.
    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["format_version"] = serde_json::json!(1);
    let names: Vec<serde_json::Value> =
        bundle.feature_spec.contract.sensors.iter().map(|s| serde_json::json!(s.name)).collect();
    v["feature_spec"]["contract"]["sensors"] = serde_json::json!(names);
    let old = ModelBundle::from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
    assert_eq!(old.feature_spec.contract.sensor_names(), bundle.feature_spec.contract.sensor_names());
    assert!(old.feature_spec.contract.sensors.iter().all(|s| s.min.is_none() && s.max.is_none()));

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["feature_spec"]["trend_hours"] = serde_json::json!(24);
    let err = ModelBundle::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err().to_string();
    assert!(err.contains("the model expects 36 features, the feature spec defines 44"), "{err}");

    let mut v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["threshold"] = serde_json::json!(1.5);
    assert!(
        ModelBundle::from_json(&serde_json::to_vec(&v).unwrap()).unwrap_err().to_string().contains("threshold 1.5")
    );
    assert!(matches!(ModelBundle::from_json(b"{\"format_version\": 1}"), Err(BundleError::Parse(_))));
}

#[test]
fn per_component_heads_give_one_probability_per_component() {
    let (spec, t) = table(6, 1_200, i64::MAX);
    let s = TrainSpec { per_component: true, ..fast_spec(Algorithm::Gbdt) };
    let (b, _) = train(&spec, &t, &s, "h", vec![]).unwrap();
    assert_eq!(b.model.components.len(), 4);
    b.validate().unwrap();
    let x: Vec<f32> = (0..spec.n_features()).map(|j| t.columns[j][0]).collect();
    let scores = b.model.predict(&x);
    assert_eq!(scores.components.len(), 4);
    assert!(scores.components.iter().all(|p| (0.0..=1.0).contains(p)));
    // A bundle whose heads do not match the contract's components is refused.
    let mut bad = b.clone();
    bad.model.components.pop();
    assert!(bad.validate().unwrap_err().to_string().contains("3 component heads for 4 components"));
}
