//! The `pm-serve` binary against a registry on the real S3 server `make test` starts: it primes
//! its fleet state from raw CSVs in the bucket, serves, follows promotion and rollback while a
//! load loop runs (zero failed requests), refuses a corrupted bundle while the previous model
//! keeps serving, and stops cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::fixture;
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_core::data::contract::FileKind;
use serde_json::{Value, json};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, Value) {
    match client.get(url).send().await {
        Ok(r) => {
            let s = r.status().as_u16();
            (s, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn wait_for(what: &str, timeout: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_follows_the_registry_on_s3_under_load_without_failing_a_request() {
    let s3 = std::env::var("PM_TEST_S3_URL").unwrap_or_else(|_| panic!("PM_TEST_S3_URL is not set: run `make test`"));
    let f = fixture();
    let unique = format!("serve-e2e-{}-{}", std::process::id(), pm_core::data::time::now().0);
    let root = Store::open(&format!("{s3}/{unique}")).unwrap();
    for kind in FileKind::ALL {
        root.put(&format!("raw/{}", kind.file_name()), Bytes::from(pm_core::data::csv::write::file(&f.ds, kind)))
            .await
            .unwrap();
    }
    let reg_root = root.join("registry");
    let reg = Registry::new(&reg_root, "pm-failure");
    let (v1, _) = reg.register(Bytes::from(f.bundle.to_json()), json!({}), None, "test", "first").await.unwrap();
    let (v2, _) = reg.register(Bytes::from(f.bundle2.to_json()), json!({}), None, "test", "second").await.unwrap();
    reg.promote(&v1, "test", "go live").await.unwrap();

    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("pm-serve.log");
    let child = Command::new(env!("CARGO_BIN_EXE_pm-serve"))
        .args(["--registry-uri", reg_root.url(), "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--poll-interval-secs", "0.2", "--prime-from", &root.url_of("raw")])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let mut server = Server { child, base: format!("http://127.0.0.1:{port}") };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let base = server.base.clone();
    wait_for("readiness", Duration::from_secs(60), async || get(&client, &format!("{base}/ready")).await.0 == 200)
        .await;
    // The container's HEALTHCHECK command: 0 while serving.
    let healthcheck = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_pm-serve"))
            .args(["healthcheck", "--port", &port.to_string(), "--path", path])
            .output()
            .unwrap()
    };
    assert!(healthcheck("/health").status.success());
    assert!(healthcheck("/ready").status.success());
    let missing = healthcheck("/no-such-route");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("answered 404"), "{missing:?}");
    // Primed from the bucket: every machine of the data set can be scored at its last reading.
    let (_, h) = get(&client, &format!("{base}/metrics/summary")).await;
    assert_eq!(h["metrics"]["fleet_machines"], json!(f.ds.machines.len()));

    // Load: eight clients predicting from the machines' states and one sending new telemetry for
    // them, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let seen_v2 = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    {
        let (stop, failed, written, client, base) =
            (stop.clone(), failed.clone(), written.clone(), client.clone(), base.clone());
        let last: Vec<(u32, i64)> =
            f.ds.telemetry.machine_ranges().into_iter().map(|(m, r)| (m, f.ds.telemetry.time[r.end - 1])).collect();
        tasks.push(tokio::spawn(async move {
            let mut hour = 0i64;
            while !stop.load(Ordering::Relaxed) {
                hour += 1;
                let readings: Vec<Value> = last
                    .iter()
                    .map(|&(m, t)| json!({ "machineID": m, "datetime": pm_core::data::time::Timestamp(t + hour * pm_core::data::time::HOUR).to_string(),
                                           "volt": 170.0 + hour as f64 % 5.0, "rotate": 450.0, "pressure": 100.0, "vibration": 40.0 }))
                    .collect();
                let n = readings.len() as u64;
                let r = client.post(format!("{base}/telemetry")).json(&json!({ "readings": readings })).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        assert_eq!(v["accepted"]["readings"], json!(n), "{v}");
                        written.fetch_add(n, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed telemetry: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for k in 0..8u32 {
        let (stop, ok, failed, seen_v2, client, base) =
            (stop.clone(), ok.clone(), failed.clone(), seen_v2.clone(), client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let machine = 1 + (i + k) % 12;
                i += 1;
                let r = client.post(format!("{base}/predict")).json(&json!({ "machineID": machine })).send().await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        let v: Value = r.json().await.unwrap_or(Value::Null);
                        if v["model_version"] == "v2" {
                            seen_v2.store(true, Ordering::Relaxed);
                        }
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let version = async || get(&client, &format!("{base}/model/info")).await.1["model_info"]["version"].clone();

    reg.promote(&v2, "test", "better").await.unwrap();
    wait_for("v2 served", Duration::from_secs(20), async || version().await == "v2").await;
    wait_for("load sees v2", Duration::from_secs(20), async || seen_v2.load(Ordering::Relaxed)).await;
    reg.rollback(None, "test", "regression").await.unwrap();
    wait_for("v1 served after rollback", Duration::from_secs(20), async || version().await == "v1").await;

    // A bundle whose stored bytes no longer match: refused, v1 keeps serving.
    let mut b3 = f.bundle.clone();
    b3.threshold = (b3.threshold * 0.9).max(0.01);
    let b3_json = b3.to_json();
    let (v3, _) = reg.register(Bytes::from(b3_json.clone()), json!({}), None, "test", "third").await.unwrap();
    let hash = pm_core::artifacts::store::sha256_hex(&b3_json);
    let bundle_dir = reg_root.join(&format!("pm-failure/bundles/{hash}"));
    bundle_dir.put("bundle.json", Bytes::from(b3_json[..b3_json.len() / 2].to_vec())).await.unwrap();
    reg.promote(&v3, "test", "bad upload").await.unwrap();
    wait_for("refusal", Duration::from_secs(20), async || {
        get(&client, &format!("{base}/health")).await.1["refused"]["version"] == json!(v3)
    })
    .await;
    let (status, h) = get(&client, &format!("{base}/health")).await;
    assert_eq!((status, h["status"].as_str(), h["model_version"].as_str()), (200, Some("degraded"), Some("v1")));
    assert!(h["refused"]["reason"].as_str().unwrap().contains("content does not match the manifest"), "{h}");
    assert_eq!(get(&client, &format!("{base}/ready")).await.0, 200);
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("pm_model_refused 1"), "{metrics}");
    assert!(metrics.contains("pm_model_reloads_total{result=\"refused\"} 1"), "{metrics}");
    assert!(metrics.contains("pm_model_reloads_total{result=\"ok\"} 3"), "v1, v2, v1 again: {metrics}");
    // Back to v1 in the registry: the refusal clears.
    reg.rollback(Some(&v1), "test", "revert bad upload").await.unwrap();
    wait_for("refusal cleared", Duration::from_secs(20), async || {
        get(&client, &format!("{base}/health")).await.1["status"] == "ok"
    })
    .await;

    // The dashboard, rendered by a real browser while the load runs: it polls /metrics/summary
    // and shows the live numbers (make test provides Debian's chromium as PM_CHROMIUM).
    if let Some(chromium) = common::optional_tool("PM_CHROMIUM", "the dashboard's check in a real browser") {
        let profile = tempfile::tempdir().unwrap();
        let out = tokio::process::Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
            .args(["--disable-component-update", "--disable-sync", "--virtual-time-budget=9000", "--dump-dom"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("{base}/dashboard"))
            .output()
            .await
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        let text = |id: &str| -> String {
            let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
            let from = start + dom[start..].find('>').unwrap() + 1;
            dom[from..from + dom[from..].find('<').unwrap()].to_string()
        };
        let number = |id: &str| text(id).parse::<f64>().unwrap_or_else(|_| panic!("#{id} is {:?}", text(id)));
        let polls: u32 = dom.split("data-polls=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
        assert!(polls >= 3, "{polls} polls");
        assert_eq!(
            (text("status"), text("model-version"), text("model-name")),
            ("ok".into(), "v1".into(), "pm-failure".into())
        );
        assert!(
            number("req-rate") > 0.0 && number("pred-rate") > 0.0,
            "rates {} {}",
            text("req-rate"),
            text("pred-rate")
        );
        assert!(number("p50") > 0.0 && number("p99") >= number("p50"), "p50 {} p99 {}", text("p50"), text("p99"));
        assert_eq!(number("err-rate"), 0.0);
        let risk: f64 = ["LOW", "MEDIUM", "HIGH"].iter().map(|r| number(&format!("risk-{r}"))).sum();
        assert!(risk > 50.0 && number("pred-total") >= risk, "{risk} predictions by risk");
        assert_eq!(number("fleet"), f.ds.machines.len() as f64);
    }

    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} failed requests of {}", ok + failed);
    assert!(ok > 1_000, "the load loop ran ({ok} predictions)");
    let written = written.load(Ordering::Relaxed);
    eprintln!("load during the swaps: {ok} predictions, {written} readings written, none failed");
    assert!(written > 100, "the telemetry writer ran ({written} readings)");

    // SIGTERM: a clean exit with the summary line.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "pm-serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    let down = healthcheck("/health");
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("connecting to 127.0.0.1"), "{down:?}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("Primed the fleet state."), "{log}");
    assert!(log.contains("Refused a model bundle"), "{log}");
    assert!(log.contains("pm-serve stopped."), "{log}");
}

/// A server that cannot start says why once (not once through the log and again on stderr),
/// with the exit code of the failure: a bad registry URL is bad input.
#[test]
fn a_failure_to_start_is_reported_once() {
    let out = Command::new(env!("CARGO_BIN_EXE_pm-serve"))
        .args(["--registry-uri", "ftp://nowhere/registry", "--port", &free_port().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)), "{err}");
    assert_eq!(err.matches("unsupported scheme \"ftp\"").count(), 1, "{err}");
}
