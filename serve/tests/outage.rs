//! The registry's store goes away and comes back: pm-serve keeps serving its model, says so in
//! /health and the metrics within the poll timeout (the store client alone would retry for
//! minutes), and picks up a promotion made during the outage once the store is back. The outage
//! is a TCP proxy in front of the test S3 server that, while down, either resets every connection
//! or accepts them and never answers (a black hole, the case only the poll timeout catches).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use common::{call, fixture, reading_json};
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_serve::model::{Loader, ModelSource};
use pm_serve::{AppState, ServeConfig, app};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy to `upstream`. Down, it cuts every open connection, and resets new ones or (with
/// `black_hole`) holds them without a byte.
struct Proxy {
    addr: String,
    up: Arc<AtomicBool>,
    black_hole: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let black_hole = Arc::new(AtomicBool::new(false));
        let (cut, cut_rx) = watch::channel(0u64);
        let (flag, hole) = (up.clone(), black_hole.clone());
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                if !flag.load(Ordering::SeqCst) {
                    if hole.load(Ordering::SeqCst) {
                        held.push(client); // open, silent
                    }
                    continue; // else dropped: connection reset
                }
                let upstream = upstream.clone();
                let mut cut_rx = cut_rx.clone();
                cut_rx.borrow_and_update(); // only cuts after this connection count
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Proxy { addr, up, black_hole, cut }
    }

    fn set(&self, up: bool, black_hole: bool) {
        self.black_hole.store(black_hole, Ordering::SeqCst);
        self.up.store(up, Ordering::SeqCst);
        if !up {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_continues_through_a_registry_outage_and_catches_up_after() {
    let s3 = std::env::var("PM_TEST_S3_URL").unwrap_or_else(|_| panic!("PM_TEST_S3_URL is not set: run `make test`"));
    let endpoint = std::env::var("AWS_ENDPOINT").unwrap();
    let f = fixture();
    let root_url = format!("{s3}/serve-outage-{}-{}", std::process::id(), pm_core::data::time::now().0);
    // The test writes directly; the server reads through the proxy.
    let direct = Registry::new(&Store::open(&root_url).unwrap(), "pm-failure");
    let (v1, _) = direct.register(Bytes::from(f.bundle.to_json()), json!({}), None, "test", "one").await.unwrap();
    let (v2, _) = direct.register(Bytes::from(f.bundle2.to_json()), json!({}), None, "test", "two").await.unwrap();
    direct.promote(&v1, "test", "go").await.unwrap();

    let proxy = Proxy::start(endpoint.trim_start_matches("http://").to_string()).await;
    let proxied_endpoint = format!("http://{}", proxy.addr);
    let via_proxy = Store::open_with(&root_url, &[("aws_endpoint", proxied_endpoint.as_str())]).unwrap();
    let source = ModelSource::Registry(Registry::new(&via_proxy, "pm-failure"));
    let st = AppState::new(ServeConfig::default(), &source.url()).unwrap();
    let mut loader = Loader::new(source);
    let app = app(st.clone());
    st.poll_within(&mut loader, Duration::from_secs(10)).await;
    assert_eq!(st.slot.get().unwrap().version, v1);
    let readings: Vec<_> = (0..30).map(|i| reading_json(&f.ds, i, true)).collect();
    call(&app, "POST", "/telemetry", Some(json!({ "readings": readings }))).await;
    let machine = f.ds.telemetry.machine[0];

    // Down, two ways: connections reset (the store client retries with a randomised backoff, then
    // gives up by itself, or the poll timeout ends it first) and a black hole (only the poll
    // timeout ends the poll). The model keeps serving; the status says why.
    direct.promote(&v2, "test", "promoted during the outage").await.unwrap();
    let cases: [(bool, &[&str]); 2] =
        [(false, &["error sending request", "did not answer within 2 s"]), (true, &["did not answer within 2 s"])];
    for (n, (black_hole, says)) in cases.into_iter().enumerate() {
        proxy.set(false, black_hole);
        st.poll_within(&mut loader, Duration::from_secs(2)).await;
        let h = call(&app, "GET", "/health", None).await.body;
        assert_eq!((h["status"].as_str(), h["model_version"].as_str()), (Some("degraded"), Some(v1.as_str())), "{h}");
        let error = h["last_error"].as_str().unwrap();
        assert!(says.iter().any(|s| error.contains(s)), "{h}");
        assert_eq!(call(&app, "GET", "/ready", None).await.status, StatusCode::OK);
        assert_eq!(
            call(&app, "GET", "/metrics/summary", None).await.body["status"],
            "degraded",
            "the dashboard agrees"
        );
        let p = call(&app, "POST", "/predict", Some(json!({ "machineID": machine }))).await;
        assert_eq!((p.status, p.body["model_version"].as_str()), (StatusCode::OK, Some(v1.as_str())), "{}", p.text);
        let m = call(&app, "GET", "/metrics", None).await.text;
        assert!(m.contains(&format!("pm_registry_polls_total{{result=\"error\"}} {}", n + 1)), "{m}");
    }

    // Back: the promotion made meanwhile is served, the error clears.
    proxy.set(true, false);
    st.poll_within(&mut loader, Duration::from_secs(20)).await;
    let h = call(&app, "GET", "/health", None).await.body;
    assert_eq!((h["status"].as_str(), h["model_version"].as_str()), (Some("ok"), Some(v2.as_str())), "{h}");
    assert!(h["last_error"].is_null(), "{h}");
    let p = call(&app, "POST", "/predict", Some(json!({ "machineID": machine }))).await;
    assert_eq!(p.body["model_version"].as_str(), Some(v2.as_str()));
}
