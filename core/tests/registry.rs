//! The registry's state machine, its audit log, and racing writers, on a local folder, the memory
//! store and a real S3 server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use pm_core::artifacts::bundle::{BUNDLE_FORMAT_VERSION, ModelBundle, ValidationMetrics};
use pm_core::artifacts::registry::{Action, Registry, RegistryError, Status};
use pm_core::artifacts::store::Store;
use pm_core::data::contract::Contract;
use pm_core::eval::drift::FeatureBaseline;
use pm_core::eval::metrics::ThresholdRule;
use pm_core::features::{FeatureSet, FeatureSpec};
use pm_core::learn::model::{Combine, Ensemble, Model, Tree};
use pm_core::learn::split::SplitPlan;

fn roots(test: &str) -> Vec<Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    let s3 = std::env::var("PM_TEST_S3_URL").unwrap_or_else(|_| panic!("PM_TEST_S3_URL is not set: run `make test`"));
    let unique = format!("{test}-{}-{}", std::process::id(), pm_core::data::time::now().0);
    vec![
        Store::open(dir.to_str().unwrap()).unwrap(),
        Store::open(&format!("memory://{unique}")).unwrap(),
        Store::open(&format!("{s3}/{unique}")).unwrap(),
    ]
}

/// A small valid bundle; `k` makes it distinct.
fn bundle(k: u32) -> Bytes {
    let spec = FeatureSpec::new(FeatureSet::Seed, Contract::azure_pdm(), 24);
    let n = spec.n_features();
    let b = ModelBundle {
        format_version: BUNDLE_FORMAT_VERSION,
        name: "pm-failure".into(),
        model: Model {
            algorithm: "gbdt".into(),
            failure: Ensemble {
                combine: Combine::Boosting { base_margin: f64::from(k) },
                trees: vec![Tree::leaf(0.1)],
                n_features: n,
                calibration: None,
            },
            components: vec![],
        },
        threshold: 0.5,
        threshold_rule: ThresholdRule::MaxF1,
        baseline: spec.names().iter().map(|name| FeatureBaseline::fit(name, [1.0, 2.0].into_iter())).collect(),
        training_data_hash: format!("data-{k}"),
        split: SplitPlan {
            start: 0,
            train_end: 1,
            valid_start: 2,
            valid_end: 3,
            test_start: 4,
            end: 5,
            embargo_hours: 24,
        },
        params: serde_json::json!({"k": k}),
        validation: ValidationMetrics::default(),
        importance: vec![0.0; n],
        machines: vec![],
        trainer_version: "test".into(),
        feature_spec: spec,
    };
    Bytes::from(b.to_json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_promote_rollback_archive() {
    for root in roots("lifecycle") {
        let reg = Registry::new(&root, "pm-failure");
        let u = reg.url().to_string();
        assert_eq!(reg.active().await.unwrap(), None);
        let (v1, new1) = reg
            .register(bundle(1), serde_json::json!({"auc": 0.9}), Some("abc123".into()), "test", "first")
            .await
            .unwrap();
        let (again, new_again) =
            reg.register(bundle(1), serde_json::Value::Null, None, "test", "same bundle").await.unwrap();
        assert!(new1 && !new_again, "{u}");
        assert_eq!(again, v1, "registering the same bundle is idempotent");
        let (v2, _) = reg.register(bundle(2), serde_json::Value::Null, None, "test", "second").await.unwrap();
        let (v3, _) = reg.register(bundle(3), serde_json::Value::Null, None, "test", "third").await.unwrap();
        assert_eq!((v1.as_str(), v2.as_str(), v3.as_str()), ("v1", "v2", "v3"));

        reg.promote(&v1, "test", "go").await.unwrap();
        reg.promote(&v2, "test", "better").await.unwrap();
        let s = reg.state().await.unwrap();
        assert_eq!(s.active.as_deref(), Some("v2"));
        assert_eq!(s.versions["v1"].status, Status::Archived);
        assert_eq!(s.versions["v3"].status, Status::Candidate);
        assert_eq!(s.versions["v1"].record.source_commit.as_deref(), Some("abc123"));

        // Roll back to the previous active, then there is nothing further back.
        let ev = reg.rollback(None, "oncall", "v2 misbehaves").await.unwrap();
        assert_eq!(ev.action, Action::Rollback { version: "v1".into(), from: "v2".into() });
        assert_eq!(reg.active().await.unwrap().unwrap().0, "v1");
        assert!(matches!(reg.rollback(None, "oncall", "again").await, Err(RegistryError::NoPrevious { .. })), "{u}");
        // A named rollback works to any registered version.
        reg.rollback(Some("v3"), "oncall", "known good").await.unwrap();
        let (active, loaded) = reg.active().await.unwrap().unwrap();
        assert_eq!(active, "v3");
        assert_eq!(loaded.model.failure.combine, Combine::Boosting { base_margin: 3.0 });

        // Refusals change nothing.
        let before = reg.state().await.unwrap().seq;
        assert!(matches!(reg.promote("v3", "t", "").await, Err(RegistryError::AlreadyActive { .. })));
        assert!(matches!(reg.promote("v9", "t", "").await, Err(RegistryError::UnknownVersion { .. })));
        assert!(matches!(reg.archive("v3", "t", "").await, Err(RegistryError::ArchiveActive { .. })));
        assert_eq!(reg.state().await.unwrap().seq, before);
        reg.archive("v2", "t", "retired").await.unwrap();

        // The audit log is complete and in order.
        let s = reg.state().await.unwrap();
        let seqs: Vec<u64> = s.events.iter().map(|e| e.seq).collect();
        // 3 registrations, 2 promotions, 2 rollbacks, 1 archive.
        assert_eq!(seqs, (1..=8).collect::<Vec<_>>(), "{u}");
        assert_eq!(s.events[5].actor, "oncall");
        assert_eq!(s.events[5].reason, "v2 misbehaves");
        assert_eq!(s.versions.values().filter(|v| v.status == Status::Active).count(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_racing_promotions_leave_a_consistent_state_and_a_complete_log() {
    for root in roots("race") {
        let reg = Registry::new(&root, "pm-failure");
        for k in 1..=4 {
            reg.register(bundle(k), serde_json::Value::Null, None, "setup", "").await.unwrap();
        }
        // All sixteen start at once, so that they read the same state and race for one entry.
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(16));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let reg = reg.clone();
                let start = start.clone();
                tokio::spawn(async move {
                    start.wait().await;
                    let target = format!("v{}", i % 4 + 1);
                    match reg.promote(&target, &format!("writer-{i}"), "race").await {
                        Ok(ev) => Some(ev.seq),
                        Err(RegistryError::AlreadyActive { .. }) => None,
                        Err(e) => panic!("writer {i}: {e}"),
                    }
                })
            })
            .collect();
        let mut applied = Vec::new();
        for t in tasks {
            if let Some(seq) = t.await.unwrap() {
                applied.push(seq);
            }
        }
        // The race happened: writers lost their entry to another and retried. (Writes to the
        // in-process memory store complete without yielding, so its writers may not interleave;
        // on the folder and S3 they do.)
        if !reg.url().starts_with("memory://") {
            assert!(reg.lost_races() > 0, "no writer ever lost a race on {}", reg.url());
        }
        let s = reg.state().await.unwrap();
        // Every applied promotion is in the log exactly once, sequence numbers have no gaps.
        let promotes: Vec<&pm_core::artifacts::registry::Event> =
            s.events.iter().filter(|e| matches!(e.action, Action::Promote { .. })).collect();
        assert_eq!(promotes.len(), applied.len(), "{}", reg.url());
        assert!(applied.len() >= 4, "most promotions apply: {}", applied.len());
        assert_eq!(s.events.iter().map(|e| e.seq).collect::<Vec<_>>(), (1..=s.seq).collect::<Vec<_>>());
        // The final state is the last promotion's, and each promotion archived its predecessor.
        let Action::Promote { version: last, .. } = &promotes.last().unwrap().action else { unreachable!() };
        assert_eq!(s.active.as_ref(), Some(last));
        assert_eq!(s.versions.values().filter(|v| v.status == Status::Active).count(), 1);
        for pair in promotes.windows(2) {
            let (Action::Promote { version: a, .. }, Action::Promote { previous, .. }) =
                (&pair[0].action, &pair[1].action)
            else {
                unreachable!()
            };
            assert_eq!(previous.as_ref(), Some(a), "each writer saw the state it changed");
        }
    }
}

#[tokio::test]
async fn a_tampered_bundle_is_refused() {
    let root = Store::open(tempfile::tempdir().unwrap().keep().to_str().unwrap()).unwrap();
    let reg = Registry::new(&root, "m");
    let (v, _) = reg.register(bundle(1), serde_json::Value::Null, None, "t", "").await.unwrap();
    let state = reg.state().await.unwrap();
    let hash = state.versions[&v].record.bundle_hash.clone();
    root.put(&format!("m/bundles/{hash}/bundle.json"), bundle(2)).await.unwrap();
    let err = reg.bundle(&state, &v).await.unwrap_err().to_string();
    assert!(err.contains("content does not match the manifest"), "{err}");
    // Something that is not a bundle cannot be registered.
    let err = reg
        .register(Bytes::from_static(b"{\"format_version\": 99}"), serde_json::Value::Null, None, "t", "")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("bundle format 99 is newer than this build supports"), "{err}");
}
