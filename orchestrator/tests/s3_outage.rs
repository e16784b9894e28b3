//! The S3 server goes away in the middle of a run and comes back: the run retries and succeeds,
//! nothing written before the outage is lost, and the logs of the attempts that failed during it
//! are stored once it is over. Uses its own SeaweedFS instance (the binary
//! that `make test` installs, `PM_WEED_BIN`), on its own port and data folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pm_core::artifacts::store::Store;
use pm_orchestrator::local::{RunRecord, StepStatus};

const PORT: u16 = 8469;
const KEY: &str = "outage-key";
const SECRET: &str = "outage-secret-0123456789";

fn options() -> Vec<(&'static str, String)> {
    vec![
        ("aws_endpoint", format!("http://127.0.0.1:{PORT}")),
        ("aws_allow_http", "true".into()),
        ("aws_region", "us-east-1".into()),
        ("aws_access_key_id", KEY.into()),
        ("aws_secret_access_key", SECRET.into()),
    ]
}

fn store(url: &str) -> Store {
    let o = options();
    let refs: Vec<(&str, &str)> = o.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Store::open_with(url, &refs).unwrap()
}

/// A SeaweedFS server, stopped when dropped (also when the test fails).
struct Weed(Child);

impl Drop for Weed {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

fn start_weed(weed: &str, data: &Path) -> Weed {
    let child = Command::new(weed)
        .args([
            "mini",
            &format!("-dir={}", data.display()),
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            &format!("-s3.port={PORT}"),
            "-admin.ui=false",
            "-webdav=false",
        ])
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Weed(child)
}

fn stop(child: &mut Child) {
    // weed mini runs several servers in its process group.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

async fn wait_ready(bucket: &Store) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while bucket.put(".ready", bytes::Bytes::from_static(b"ok")).await.is_err() {
        assert!(Instant::now() < deadline, "SeaweedFS did not come up");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_stopped_and_restarted_mid_run() {
    let weed = std::env::var("PM_WEED_BIN")
        .unwrap_or_else(|_| panic!("PM_WEED_BIN is not set: run the tests with `make test`"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("weed");
    std::fs::create_dir_all(&data).unwrap();
    let server = start_weed(&weed, &data);
    let bucket = store("s3://outage");
    wait_ready(&bucket).await;

    let gate = dir.path().join("gate");
    let yaml = format!(
        r#"
name: outage
components:
  first:
    image: localhost/pm/fault:test
    command: [pm-fault]
    outputs: {{out: {{type: Dataset}}}}
    args: [--artifact-uri, "{{{{outputs.out.uri}}}}"]
  second:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {{data: {{type: Dataset}}}}
    outputs: {{out: {{type: Dataset}}}}
    args: [--input-uri, "{{{{inputs.data.uri}}}}", --wait-for, "{}", --artifact-uri, "{{{{outputs.out.uri}}}}"]
steps:
  first: {{component: first}}
  second: {{component: second, with: {{data: "{{{{steps.first.outputs.out}}}}"}}, retries: {{max: 6, backoff_seconds: 1, backoff_factor: 2, backoff_max_seconds: 8}}}}
"#,
        gate.display()
    );
    let file = dir.path().join("outage.yaml");
    std::fs::write(&file, yaml).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_pm-fault")).parent().unwrap().to_path_buf();
    let mut orch = Command::new(env!("CARGO_BIN_EXE_pm-orchestrator"));
    orch.args(["run", file.to_str().unwrap(), "--root", "s3://outage/root", "--bin-dir", bin_dir.to_str().unwrap()]);
    orch.args(["--work-dir", dir.path().join("work").to_str().unwrap()]);
    for (k, v) in options() {
        orch.env(k.to_uppercase(), v);
    }
    let orch = orch.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();

    // Once the first step is done (its artifact is in S3), take the server away.
    let root = store("s3://outage/root");
    let deadline = Instant::now() + Duration::from_secs(60);
    let first: RunRecord = loop {
        assert!(Instant::now() < deadline, "the first step never finished");
        if let Ok(runs) = pm_orchestrator::local::list_runs(&root).await
            && let Some(r) = runs.first()
            && r.steps["first"].status == StepStatus::Succeeded
        {
            break r.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(server);
    // The second step now tries to read its input and write its output while S3 is down.
    std::fs::write(&gate, "open").unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let server = start_weed(&weed, &data);
    wait_ready(&bucket).await;

    let out = tokio::task::spawn_blocking(move || orch.wait_with_output()).await.unwrap().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "the run failed:\n{log}");
    let rec = pm_orchestrator::local::load_run(&root, &first.run_id).await.unwrap();
    assert_eq!(rec.status, "succeeded", "{log}");
    assert_eq!(rec.steps["second"].status, StepStatus::Succeeded);
    // The outage was seen: the second step failed while the store was down and was retried.
    let attempts = rec.steps["second"].attempts;
    assert!(attempts > 1, "the second step never saw the outage:\n{log}");
    // The failed attempts' logs, which could not be stored during the outage, were kept and
    // stored once it was over: every attempt's log is there.
    assert_eq!(rec.steps["second"].logs.len(), attempts as usize);
    for attempt in 1..=attempts {
        let name = format!("runs/{}/logs/second.attempt-{attempt}.log", rec.run_id);
        let text = root.get(&name).await.unwrap_or_else(|e| panic!("{name}: {e}\n{log}"));
        assert!(String::from_utf8_lossy(&text).contains("pm-fault: invocation"), "{name}");
    }
    // Nothing lost: the first artifact is intact, and the second was committed whole.
    for step in ["first", "second"] {
        let o = &rec.steps[step].outputs["out"];
        let m = Store::open_with(
            o.uri.as_deref().unwrap(),
            &options().iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>(),
        )
        .unwrap()
        .read_manifest()
        .await
        .unwrap();
        assert_eq!(Some(m.content_hash()), o.content_hash, "{step}");
    }
    drop(server);
}
