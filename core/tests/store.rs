//! The artifact store against every backend we test: a local folder, the in-process memory
//! store, and a real S3 server on 127.0.0.1 (started by `make test`; see scripts/s3-server.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use pm_core::artifacts::store::{MANIFEST, Store, StoreError};

/// A fresh, empty location on each backend.
fn backends(test: &str) -> Vec<Store> {
    let dir = tempfile::tempdir().unwrap().keep();
    let s3 = std::env::var("PM_TEST_S3_URL").unwrap_or_else(|_| {
        panic!("PM_TEST_S3_URL is not set: run the tests with `make test`, which starts a local S3 server")
    });
    let unique = format!("{test}-{}-{}", std::process::id(), pm_core::data::time::now().0);
    vec![
        Store::open(dir.to_str().unwrap()).unwrap(),
        Store::open(&format!("memory://{unique}/root")).unwrap(),
        Store::open(&format!("{s3}/{unique}")).unwrap(),
    ]
}

#[tokio::test]
async fn objects_round_trip_list_and_delete() {
    for store in backends("roundtrip") {
        let u = store.url().to_string();
        assert!(!store.exists("a/b.txt").await.unwrap(), "{u}");
        store.put("a/b.txt", Bytes::from_static(b"hello")).await.unwrap();
        store.put("a/c/d.txt", Bytes::from_static(b"world")).await.unwrap();
        assert_eq!(store.get("a/b.txt").await.unwrap(), Bytes::from_static(b"hello"), "{u}");
        assert_eq!(store.list("a").await.unwrap(), vec!["a/b.txt", "a/c/d.txt"], "{u}");
        assert_eq!(store.join("a").list("c").await.unwrap(), vec!["c/d.txt"], "{u}");
        store.delete("a/b.txt").await.unwrap();
        assert!(matches!(store.get("a/b.txt").await, Err(StoreError::NotFound { .. })), "{u}");
        store.delete("a/b.txt").await.unwrap();
    }
}

#[tokio::test]
async fn exactly_one_of_sixteen_racing_creates_wins() {
    for store in backends("race") {
        for round in 0..3 {
            let name = format!("lock-{round}");
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let s = store.clone();
                    let name = name.clone();
                    tokio::spawn(async move { s.create(&name, Bytes::from(format!("writer {i}"))).await.unwrap() })
                })
                .collect();
            let mut winners = 0;
            for h in handles {
                winners += usize::from(h.await.unwrap());
            }
            assert_eq!(winners, 1, "{}: round {round}", store.url());
            let content = store.get(&name).await.unwrap();
            assert!(content.starts_with(b"writer "), "{}", store.url());
        }
    }
}

#[tokio::test]
async fn an_artifact_is_visible_only_once_committed_and_is_verified() {
    for store in backends("artifact") {
        let art = store.join("runs/r1/features/out");
        // Files without a manifest: an uncommitted (e.g. killed) write is not an artifact.
        art.put("data.bin", Bytes::from_static(b"partial")).await.unwrap();
        assert!(matches!(art.read_manifest().await, Err(StoreError::NotFound { .. })));

        let files = vec![
            ("data.bin".to_string(), Bytes::from_static(b"0123456789")),
            ("spec.json".to_string(), Bytes::from_static(b"{}")),
        ];
        let written = art.write_artifact("Dataset", "test", files, serde_json::json!({"rows": 10})).await.unwrap();
        let m = art.read_manifest().await.unwrap();
        assert_eq!(m, written);
        assert_eq!(m.files.len(), 2);
        assert_eq!(art.read_artifact_file(&m, "data.bin").await.unwrap(), Bytes::from_static(b"0123456789"));

        // The content hash depends on content only.
        let again = store.join("elsewhere");
        let m2 = again
            .write_artifact(
                "Dataset",
                "other producer",
                vec![
                    ("spec.json".to_string(), Bytes::from_static(b"{}")),
                    ("data.bin".to_string(), Bytes::from_static(b"0123456789")),
                ],
                serde_json::Value::Null,
            )
            .await
            .unwrap();
        assert_eq!(m.content_hash(), m2.content_hash());

        // Tampering is detected, file by file and for the artifact as a whole.
        art.verify_artifact(&m).await.unwrap();
        art.put("data.bin", Bytes::from_static(b"0123456780")).await.unwrap();
        let err = art.read_artifact_file(&m, "data.bin").await.unwrap_err();
        assert!(err.to_string().contains("content does not match the manifest"), "{err}");
        let err = art.verify_artifact(&m).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { ref url, .. } if url.ends_with("/data.bin")), "{err}");
        art.put("data.bin", Bytes::from_static(b"01234")).await.unwrap();
        assert!(art.verify_artifact(&m).await.unwrap_err().to_string().contains("5 bytes; expected"));
        assert!(art.exists(MANIFEST).await.unwrap());
    }
}

#[tokio::test]
async fn conditional_update_is_compare_and_swap_where_supported() {
    // The local file system has no compare-and-swap; the registry relies on `create` only.
    for store in backends("cas").into_iter().skip(1) {
        store.put("ptr", Bytes::from_static(b"v1")).await.unwrap();
        let (_, ver) = store.get_versioned("ptr").await.unwrap().unwrap();
        assert!(store.update("ptr", Bytes::from_static(b"v2"), &ver).await.unwrap(), "{}", store.url());
        // A second writer holding the old version loses.
        assert!(!store.update("ptr", Bytes::from_static(b"v3"), &ver).await.unwrap(), "{}", store.url());
        assert_eq!(store.get("ptr").await.unwrap(), Bytes::from_static(b"v2"));
    }
}

#[test]
fn urls_are_checked() {
    let e = Store::open("ftp://x/y").unwrap_err().to_string();
    assert_eq!(e, "invalid store URL \"ftp://x/y\": unsupported scheme \"ftp\" (expected file, s3, gs, az or memory)");
    assert!(Store::open("memory://").unwrap_err().to_string().contains("missing bucket"));
    let s = Store::open("memory://m/a/").unwrap();
    assert_eq!(s.url(), "memory://m/a");
    assert_eq!(s.join("b/c").url(), "memory://m/a/b/c");
    assert_eq!(s.url_of("/x/"), "memory://m/a/x");
}

/// Staging files of an interrupted local write (`<name>#<n>`) are removed; committed files (an
/// object named with a `#` among them) and other names with a `#` are not. Elsewhere there is
/// nothing to clean.
#[tokio::test]
async fn staging_files_of_an_interrupted_write_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).unwrap();
    let art = store.join("a");
    art.write_artifact(
        "Dataset",
        "test",
        vec![("odd#7".into(), Bytes::from_static(b"listed"))],
        serde_json::Value::Null,
    )
    .await
    .unwrap();
    let root = dir.path().join("a");
    for name in ["data.bin#1", "data.bin#23", "deep/x.parquet#2", "keep#me", "keep#", "keep"] {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
    }
    let mut gone = art.clean_staging().await.unwrap();
    gone.sort();
    let expect: Vec<String> =
        ["data.bin#1", "data.bin#23", "deep/x.parquet#2"].iter().map(|n| root.join(n).display().to_string()).collect();
    assert_eq!(gone, expect);
    for kept in ["keep#me", "keep#", "keep", "_manifest.json"] {
        assert!(root.join(kept).exists(), "{kept}");
    }
    art.verify_artifact(&art.read_manifest().await.unwrap()).await.unwrap();
    assert!(Store::open("memory://staging/x").unwrap().clean_staging().await.unwrap().is_empty());
}
