//! The local backend under faults: retries, timeouts, a step killed mid-write, the orchestrator
//! killed mid-run, caching, conditions and parallelism. Steps are `pm-fault` processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pm_core::artifacts::store::Store;
use pm_orchestrator::graph::load;
use pm_orchestrator::local::{LocalOptions, RunRecord, StepStatus, run};
use serde_json::Value;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_pm-fault")).parent().unwrap().to_path_buf()
}

struct Env {
    _dir: tempfile::TempDir,
    root: Store,
    scratch: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = Store::open(dir.path().join("root").to_str().unwrap()).unwrap();
    let scratch = dir.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    Env { _dir: dir, root, scratch }
}

fn opts(e: &Env, params: &[(&str, Value)]) -> LocalOptions {
    LocalOptions {
        root: e.root.clone(),
        bin_dir: bin_dir(),
        parallelism: 2,
        params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        resume: None,
        use_cache: true,
        work_dir: e.scratch.join("work"),
        kill_grace_secs: 1,
        env: BTreeMap::new(),
        show_progress: false,
        runner: Default::default(),
    }
}

async fn go(yaml: &str, o: LocalOptions) -> RunRecord {
    let p = load(yaml).unwrap_or_else(|e| panic!("{e:?}"));
    run(p, o, yaml).await.unwrap()
}

const HEADER: &str = r#"
name: faults
parameters:
  counter: {type: string, default: ""}
  gate: {type: string, default: ""}
  payload: {type: string, default: payload}
components:
  write:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs:
      counter: {type: string}
      fail_times: {type: int, default: 0}
      payload: {type: string, default: payload}
    outputs:
      out: {type: Dataset}
    args: ["--counter={{inputs.counter}}", "--fail-times={{inputs.fail_times}}", --artifact-uri, "{{outputs.out.uri}}", "--payload={{inputs.payload}}"]
  read:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs:
      data: {type: Dataset}
    outputs:
      ok: {type: bool}
    args: [--input-uri, "{{inputs.data.uri}}", --value-file, "{{outputs.ok.file}}", --value, "true"]
"#;

fn counter(e: &Env, name: &str) -> Value {
    Value::String(e.scratch.join(name).display().to_string())
}

#[tokio::test]
async fn a_step_that_fails_twice_then_succeeds_is_retried() {
    let e = env();
    let yaml = format!(
        "{HEADER}steps:\n  a:\n    component: write\n    retries: {{max: 3, backoff_seconds: 0.05}}\n    with: {{counter: \"{{{{params.counter}}}}\", fail_times: 2}}\n  b:\n    component: read\n    with: {{data: \"{{{{steps.a.outputs.out}}}}\"}}\n"
    );
    let r = go(&yaml, opts(&e, &[("counter", counter(&e, "c1"))])).await;
    assert_eq!(r.status, "succeeded");
    assert_eq!(r.steps["a"].status, StepStatus::Succeeded);
    assert_eq!(r.steps["a"].attempts, 3);
    assert_eq!(r.steps["a"].logs.len(), 3, "one log per attempt");
    assert_eq!(r.steps["b"].outputs["ok"].value, Some(Value::Bool(true)));
    // The lineage: b's input is a's output, by URI and content hash.
    assert_eq!(r.steps["b"].inputs["data"].uri, r.steps["a"].outputs["out"].uri);
    assert!(r.steps["a"].outputs["out"].content_hash.is_some());
    let log = e.root.get(&format!("runs/{}/logs/a.attempt-1.log", r.run_id)).await.unwrap();
    assert!(String::from_utf8_lossy(&log).contains("failing on purpose"));

    // Too few retries: the step fails and what needs it does not run.
    let yaml = yaml.replace("max: 3", "max: 1");
    let r = go(&yaml, opts(&e, &[("counter", counter(&e, "c2"))])).await;
    assert_eq!(r.status, "failed");
    assert_eq!(r.steps["a"].status, StepStatus::Failed);
    assert_eq!(r.steps["a"].attempts, 2);
    assert!(r.steps["a"].message.as_deref().unwrap().contains("failed after 2 attempt(s): exit code 1"));
    assert_eq!(r.steps["b"].status, StepStatus::NotRun);
}

#[tokio::test]
async fn a_hanging_step_is_killed_with_its_process_group() {
    let e = env();
    let yaml = r#"
name: hang
components:
  sleeper:
    image: localhost/pm/fault:test
    command: [pm-fault]
    args: [--sleep-secs, "29.357", --spawn-child]
steps:
  s: {component: sleeper, timeout_seconds: 1}
"#;
    let t = Instant::now();
    let r = go(yaml, opts(&e, &[])).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(r.steps["s"].status, StepStatus::Failed);
    assert!(r.steps["s"].message.as_deref().unwrap().contains("timed out after 1 s"), "{:?}", r.steps["s"].message);
    // The grandchild `sleep` was in the step's process group: it is gone too (a killed process
    // may take a moment to be reaped).
    let t = Instant::now();
    loop {
        let ps = std::process::Command::new("pgrep").args(["-f", "sleep 29.357"]).output().unwrap();
        if ps.stdout.is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "left behind: {}", String::from_utf8_lossy(&ps.stdout));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_step_killed_mid_write_leaves_no_visible_artifact_and_a_rerun_completes() {
    let e = env();
    let component = r#"
name: midwrite
parameters:
  counter: {type: string}
components:
  w:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {counter: {type: string}}
    outputs: {out: {type: Dataset}}
    args: ["--counter={{inputs.counter}}", --artifact-uri, "{{outputs.out.uri}}", --files, "4", --die-after, "2"]
steps:
  w: {component: w, with: {counter: "{{params.counter}}"}, retries: {max: 0}}
"#;
    let c = counter(&e, "mid");
    let r = go(component, opts(&e, &[("counter", c.clone())])).await;
    assert_eq!(r.steps["w"].status, StepStatus::Failed);
    assert_eq!(r.steps["w"].exit_code, Some(128 + 9), "SIGKILL");
    // Two files made it, the manifest did not: readers do not see an artifact.
    let out = e.root.join(&format!("runs/{}/w/out", r.run_id));
    assert_eq!(out.list("").await.unwrap(), vec!["part-0.txt", "part-1.txt"]);
    assert!(out.read_manifest().await.is_err());
    // A rerun (the counter says: second invocation, no dying) completes.
    let r2 = go(component, opts(&e, &[("counter", c)])).await;
    assert_eq!(r2.steps["w"].status, StepStatus::Succeeded);
    let out = Store::open(r2.steps["w"].outputs["out"].uri.as_deref().unwrap()).unwrap();
    assert_eq!(out.read_manifest().await.unwrap().files.len(), 4);
}

/// An attempt killed mid-write leaves a half-written staging file (`part-2.txt#1`) beside the
/// files it finished; the next attempt removes it before it runs, and the committed artifact
/// holds no stray file.
#[tokio::test]
async fn the_next_attempt_removes_a_killed_attempts_staging_files() {
    let e = env();
    let yaml = r#"
name: staging
parameters:
  counter: {type: string}
components:
  w:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {counter: {type: string}}
    outputs: {out: {type: Dataset}}
    args: ["--counter={{inputs.counter}}", --artifact-uri, "{{outputs.out.uri}}", --files, "4", --die-after, "2", --staging-bytes, "1000000"]
steps:
  w: {component: w, with: {counter: "{{params.counter}}"}, retries: {max: 1, backoff_seconds: 0.05}}
"#;
    let r = go(yaml, opts(&e, &[("counter", counter(&e, "staging"))])).await;
    let w = &r.steps["w"];
    assert_eq!((w.status, w.attempts), (StepStatus::Succeeded, 2), "{w:?}");
    let log = e.root.get(&format!("runs/{}/logs/w.attempt-1.log", r.run_id)).await.unwrap();
    assert!(String::from_utf8_lossy(&log).contains("dying after 2 files"), "the first attempt died mid-write");
    let dir = e.root.url().strip_prefix("file://").unwrap().to_string() + &format!("/runs/{}/w/out", r.run_id);
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["_manifest.json", "part-0.txt", "part-1.txt", "part-2.txt", "part-3.txt"]);
    let out = Store::open(w.outputs["out"].uri.as_deref().unwrap()).unwrap();
    out.verify_artifact(&out.read_manifest().await.unwrap()).await.unwrap();
}

#[tokio::test]
async fn unchanged_steps_come_from_the_cache_and_a_changed_input_reruns_downstream() {
    let e = env();
    let yaml = format!(
        "{HEADER}steps:\n  a:\n    component: write\n    with: {{counter: \"{{{{params.counter}}}}\", payload: \"{{{{params.payload}}}}\"}}\n  b:\n    component: read\n    with: {{data: \"{{{{steps.a.outputs.out}}}}\"}}\n"
    );
    let c = counter(&e, "cache");
    let r1 = go(&yaml, opts(&e, &[("counter", c.clone())])).await;
    let r2 = go(&yaml, opts(&e, &[("counter", c.clone())])).await;
    assert_eq!((r2.steps["a"].status, r2.steps["b"].status), (StepStatus::Cached, StepStatus::Cached));
    assert_eq!(r2.steps["a"].outputs, r1.steps["a"].outputs, "cached outputs are the recorded ones");
    assert_eq!(std::fs::read_to_string(c.as_str().unwrap()).unwrap(), "1", "the step ran once");
    // --no-cache runs everything again.
    let mut o = opts(&e, &[("counter", c.clone())]);
    o.use_cache = false;
    assert_eq!(go(&yaml, o).await.steps["a"].status, StepStatus::Succeeded);
    // A different payload changes a's artifact, so b (whose input hash changed) runs too.
    let r4 = go(&yaml, opts(&e, &[("counter", c.clone()), ("payload", Value::from("other"))])).await;
    assert_eq!((r4.steps["a"].status, r4.steps["b"].status), (StepStatus::Succeeded, StepStatus::Succeeded));
    // A cached output that was deleted is not trusted: the step runs again.
    let uri = r4.steps["a"].outputs["out"].uri.clone().unwrap();
    Store::open(&uri).unwrap().delete("_manifest.json").await.unwrap();
    let r5 = go(&yaml, opts(&e, &[("counter", c.clone()), ("payload", Value::from("other"))])).await;
    assert_eq!(r5.steps["a"].status, StepStatus::Succeeded);
    // Nor is one whose file was truncated behind an intact manifest: a runs again (b, whose input
    // is the same content, stays cached), and the artifact it recorded is whole.
    let r6 = go(&yaml, opts(&e, &[("counter", c.clone()), ("payload", Value::from("other"))])).await;
    assert_eq!((r6.steps["a"].status, r6.steps["b"].status), (StepStatus::Cached, StepStatus::Cached));
    let out = Store::open(r6.steps["a"].outputs["out"].uri.as_deref().unwrap()).unwrap();
    out.put("part-1.txt", bytes::Bytes::from_static(b"oth")).await.unwrap();
    assert!(out.read_manifest().await.is_ok(), "the manifest is intact");
    let r7 = go(&yaml, opts(&e, &[("counter", c), ("payload", Value::from("other"))])).await;
    assert_eq!((r7.steps["a"].status, r7.steps["b"].status), (StepStatus::Succeeded, StepStatus::Cached));
    let fresh = Store::open(r7.steps["a"].outputs["out"].uri.as_deref().unwrap()).unwrap();
    let m = fresh.read_manifest().await.unwrap();
    fresh.verify_artifact(&m).await.unwrap();
    assert_eq!(Some(m.content_hash()), r7.steps["a"].outputs["out"].content_hash);
}

#[tokio::test]
async fn conditions_skip_steps_and_their_dependents() {
    let e = env();
    let yaml = r#"
name: gated
parameters:
  verdict: {type: string, default: "false"}
components:
  judge:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {verdict: {type: string}}
    outputs: {blessed: {type: bool}}
    args: [--value-file, "{{outputs.blessed.file}}", "--value={{inputs.verdict}}"]
  act:
    image: localhost/pm/fault:test
    command: [pm-fault]
    outputs: {done: {type: string}}
    args: [--value-file, "{{outputs.done.file}}", --value, "acted"]
steps:
  judge: {component: judge, with: {verdict: "{{params.verdict}}"}}
  deploy: {component: act, when: "{{steps.judge.outputs.blessed}} == true", after: [judge]}
  notify: {component: act, after: [deploy]}
"#;
    let r = go(yaml, opts(&e, &[])).await;
    assert_eq!(r.status, "succeeded");
    assert_eq!(r.steps["judge"].outputs["blessed"].value, Some(Value::Bool(false)));
    assert_eq!(r.steps["deploy"].status, StepStatus::Skipped);
    assert_eq!(r.steps["notify"].status, StepStatus::Skipped);
    let r = go(yaml, opts(&e, &[("verdict", Value::from("true"))])).await;
    assert_eq!(r.steps["deploy"].status, StepStatus::Succeeded);
    assert_eq!(r.steps["notify"].outputs["done"].value, Some(Value::from("acted")));
}

#[tokio::test]
async fn independent_steps_run_in_parallel_up_to_the_bound() {
    let e = env();
    let yaml = r#"
name: wide
components:
  nap:
    image: localhost/pm/fault:test
    command: [pm-fault]
    args: [--sleep-secs, "0.6"]
steps:
  a: {component: nap, cache: false}
  b: {component: nap, cache: false}
"#;
    let overlap = |r: &RunRecord| {
        let (a, b) = (&r.steps["a"], &r.steps["b"]);
        a.start_ms < b.end_ms && b.start_ms < a.end_ms
    };
    assert!(overlap(&go(yaml, opts(&e, &[])).await), "parallelism 2: the naps overlap");
    let mut one = opts(&e, &[]);
    one.parallelism = 1;
    assert!(!overlap(&go(yaml, one).await), "parallelism 1: one after the other");
}

/// The orchestrator itself is SIGKILLed mid-run: its running step stops too, and `--resume` keeps
/// the finished step and finishes.
#[tokio::test]
async fn the_orchestrator_killed_mid_run_resumes() {
    let e = env();
    let gate = e.scratch.join("gate");
    let yaml = r#"
name: resumable
parameters:
  gate: {type: string}
components:
  first:
    image: localhost/pm/fault:test
    command: [pm-fault]
    outputs: {out: {type: Dataset}}
    args: [--artifact-uri, "{{outputs.out.uri}}"]
  second:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {data: {type: Dataset}, gate: {type: string}}
    outputs: {ok: {type: bool}}
    args: [--input-uri, "{{inputs.data.uri}}", "--wait-for={{inputs.gate}}", --value-file, "{{outputs.ok.file}}", --value, "true"]
steps:
  first: {component: first}
  second: {component: second, with: {data: "{{steps.first.outputs.out}}", gate: "{{params.gate}}"}}
"#;
    let file = e.scratch.join("resumable.yaml");
    std::fs::write(&file, yaml).unwrap();
    let orch = env!("CARGO_BIN_EXE_pm-orchestrator");
    let root_url = e.root.url().to_string();
    let args = |extra: &[&str]| {
        let mut a = vec![
            "run".to_string(),
            file.display().to_string(),
            "--root".into(),
            root_url.clone(),
            "--bin-dir".into(),
            bin_dir().display().to_string(),
        ];
        a.extend(["--param".into(), format!("gate={}", gate.display())]);
        a.extend(["--work-dir".into(), e.scratch.join("w").display().to_string()]);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child = std::process::Command::new(orch)
        .args(args(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first step is recorded as done, then SIGKILL the orchestrator.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_id = loop {
        assert!(Instant::now() < deadline, "the first step never finished");
        if let Ok(runs) = pm_orchestrator::local::list_runs(&e.root).await
            && let Some(r) = runs.first()
            && r.steps["first"].status == StepStatus::Succeeded
        {
            break r.run_id.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The fault must hit a running step: wait until the second step's process is up.
    let waiting = format!("--wait-for={}", gate.display());
    let running = || {
        let mut pgrep = std::process::Command::new("pgrep");
        pgrep.args(["-f", "--", &waiting]).stdout(std::process::Stdio::null()).status().unwrap().success()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the second step never started");
        let recorded = pm_orchestrator::local::load_run(&e.root, &run_id).await.ok();
        if running() && recorded.is_some_and(|r| r.steps["second"].status == StepStatus::Running) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    child.wait().unwrap();
    // The second step, waiting for the gate, does not outlive the orchestrator: it got SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(10);
    while running() {
        assert!(Instant::now() < deadline, "the running step outlived the SIGKILLed orchestrator");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&gate, "open").unwrap();
    let out = std::process::Command::new(orch).args(args(&["--resume", &run_id])).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = pm_orchestrator::local::load_run(&e.root, &run_id).await.unwrap();
    assert_eq!(r.status, "succeeded");
    assert_eq!(r.steps["first"].attempts, 1, "the finished step was not run again");
    assert_eq!(r.steps["second"].status, StepStatus::Succeeded);
    // A new run (not a resume) also reuses the first step, from the cache.
    let out = std::process::Command::new(orch).args(args(&[])).output().unwrap();
    assert!(out.status.success());
    let runs = pm_orchestrator::local::list_runs(&e.root).await.unwrap();
    assert_eq!(runs.len(), 2);
    let new = runs.iter().find(|r| r.run_id != run_id).unwrap();
    assert_eq!(new.steps["first"].status, StepStatus::Cached);
}

#[test]
fn sigterm_to_the_orchestrator_stops_its_running_steps() {
    let e = env();
    let yaml = e.scratch.join("p.yaml");
    std::fs::write(
        &yaml,
        r#"
name: stop
components:
  sleeper:
    image: localhost/pm/fault:test
    command: [pm-fault]
    args: [--sleep-secs, "31.713", --spawn-child]
steps:
  s: {component: sleeper}
"#,
    )
    .unwrap();
    let mut orch = std::process::Command::new(env!("CARGO_BIN_EXE_pm-orchestrator"))
        .args(["run", yaml.to_str().unwrap(), "--root", e.root.url(), "--bin-dir", bin_dir().to_str().unwrap()])
        .arg(format!("--work-dir={}", e.scratch.join("work").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let running =
        || !std::process::Command::new("pgrep").args(["-f", "sleep 31.713"]).output().unwrap().stdout.is_empty();
    let t = Instant::now();
    while !running() {
        assert!(t.elapsed() < Duration::from_secs(20), "the step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(orch.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = orch.try_wait().unwrap() {
            break s;
        }
        assert!(t.elapsed() < Duration::from_secs(8), "the orchestrator did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));
    // The step and its child were in their own process group: stopped with the orchestrator.
    let t = Instant::now();
    while running() {
        assert!(t.elapsed() < Duration::from_secs(5), "a step outlived the orchestrator");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_podman_runner_refuses_a_root_containers_cannot_reach() {
    let e = env();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pm-orchestrator"))
        .args(["run", "../pipelines/training.yaml", "--runner", "podman", "--root", e.root.url()])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--runner podman needs a pipeline root that containers can reach"), "{err}");
}

/// On Kubeflow and Vertex AI, where the IR has no task timeout, a step enforces its own from
/// `PM_STEP_TIMEOUT_SECS` (set by the emitted specs): a hung step exits 124 at its time.
#[test]
fn a_step_stops_itself_at_its_timeout() {
    let fault = bin_dir().join("pm-fault");
    let t = Instant::now();
    let out = std::process::Command::new(&fault)
        .args(["--sleep-secs", "60"])
        .env(pm_core::cli::STEP_TIMEOUT_ENV, "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::TIMED_OUT)), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(t.elapsed() < Duration::from_secs(30), "stopped only after {:?}", t.elapsed());
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out after 1 s (PM_STEP_TIMEOUT_SECS)"));
    // A malformed limit is refused before any work.
    let out = std::process::Command::new(&fault).env(pm_core::cli::STEP_TIMEOUT_ENV, "soon").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("PM_STEP_TIMEOUT_SECS=\"soon\" is not a positive number of seconds")
    );
}

/// A step that says its inputs are bad (exit 65) or that the machine refused (74) fails at once:
/// the same inputs would fail the same way. Exit 1 is retried.
#[tokio::test]
async fn a_step_that_reports_bad_input_is_not_retried() {
    let e = env();
    for (code, attempts) in [(65, 1), (74, 1), (2, 1), (1, 3)] {
        let yaml = format!(
            r#"
name: final
components:
  f:
    image: localhost/pm/fault:test
    command: [pm-fault]
    args: [--fail-times, "9", --fail-code, "{code}"]
steps:
  s: {{component: f, retries: {{max: 2, backoff_seconds: 0.05}}}}
"#
        );
        let r = go(&yaml, opts(&e, &[])).await;
        let s = &r.steps["s"];
        assert_eq!((s.status, s.attempts, s.exit_code), (StepStatus::Failed, attempts, Some(code)), "exit {code}");
        let message = s.message.as_deref().unwrap();
        assert_eq!(message.contains("not retried"), attempts == 1, "exit {code}: {message}");
    }
}

/// The pipeline root's disk fills up mid-run (a tmpfs in a private mount namespace): the run
/// ends at once, neither retrying the record writes for a minute nor claiming a record it could
/// not write; it says why, and where the step logs are.
#[test]
fn a_full_disk_ends_the_run_at_once_and_says_so() {
    let e = env();
    let disk = e.scratch.join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let yaml = e.scratch.join("full.yaml");
    std::fs::write(
        &yaml,
        r#"
name: full
parameters:
  filler: {type: string}
components:
  fill:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {path: {type: string}}
    args: ["--fill={{inputs.path}}"]
  after:
    image: localhost/pm/fault:test
    command: [pm-fault]
    outputs: {out: {type: Dataset}}
    args: [--artifact-uri, "{{outputs.out.uri}}"]
steps:
  fill: {component: fill, with: {path: "{{params.filler}}"}, cache: false}
  after: {component: after, after: [fill], retries: {max: 3, backoff_seconds: 0.05}}
"#,
    )
    .unwrap();
    let script = format!(
        "mount -t tmpfs -o size=256k tmpfs '{disk}' && exec '{orch}' run '{yaml}' --root '{disk}/root' --bin-dir '{bin}' --work-dir '{work}' --param 'filler={disk}/filler'",
        disk = disk.display(),
        orch = env!("CARGO_BIN_EXE_pm-orchestrator"),
        yaml = yaml.display(),
        bin = bin_dir().display(),
        work = e.scratch.join("work").display(),
    );
    let t = Instant::now();
    let out = std::process::Command::new("unshare")
        .args(["--map-root-user", "--mount", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs the orchestrator in a mount namespace of its own");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("mount:"), "could not mount a small disk for the test: {err}");
    assert!(t.elapsed() < Duration::from_secs(30), "took {:?}: {err}", t.elapsed());
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::ENVIRONMENT)), "{err}");
    assert!(err.contains("its run record could not be written"), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("the step logs are kept in"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("run record:"), "no path to a record that is not there");
}

/// Parameter values reach the step exactly as given, whatever they start with: negative numbers,
/// an empty string, option-like text.
#[tokio::test]
async fn any_value_reaches_the_step_intact() {
    let e = env();
    let yaml = r#"
name: values
parameters:
  text: {type: string}
  number: {type: float}
components:
  echo:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {v: {type: string}}
    outputs: {out: {type: string}}
    args: ["--value={{inputs.v}}", --value-file, "{{outputs.out.file}}"]
  echo_number:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {v: {type: float}}
    outputs: {out: {type: float}}
    args: ["--value={{inputs.v}}", --value-file, "{{outputs.out.file}}"]
steps:
  text: {component: echo, with: {v: "{{params.text}}"}, cache: false}
  number: {component: echo_number, with: {v: "{{params.number}}"}, cache: false}
"#;
    for (text, number) in [("-1", -1.5), ("", -0.001), ("--help", 0.0), ("-x", -1e-9), ("--value=x", -3.0)] {
        let r = go(yaml, opts(&e, &[("text", Value::from(text)), ("number", Value::from(number))])).await;
        assert_eq!(r.status, "succeeded", "{text:?}: {:?}", r.steps);
        assert_eq!(r.steps["text"].outputs["out"].value, Some(Value::from(text)));
        assert_eq!(r.steps["number"].outputs["out"].value, Some(Value::from(number)));
    }
}

/// `--param` values are typed by the pipeline's declarations: a string parameter takes any text
/// (`1`, `true`, `null`, `1e3` were refused as "not a string"); a number must be one.
#[test]
fn command_line_parameters_follow_their_declared_types() {
    let e = env();
    let yaml = e.scratch.join("typed.yaml");
    std::fs::write(
        &yaml,
        r#"
name: typed
parameters:
  text: {type: string}
  count: {type: int, default: 1}
components:
  echo:
    image: localhost/pm/fault:test
    command: [pm-fault]
    inputs: {v: {type: string}, n: {type: int}}
    outputs: {out: {type: string}}
    args: ["--value={{inputs.v}}", "--files={{inputs.n}}", --value-file, "{{outputs.out.file}}"]
steps:
  echo: {component: echo, with: {v: "{{params.text}}", n: "{{params.count}}"}, cache: false}
"#,
    )
    .unwrap();
    let run = |params: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pm-orchestrator"));
        cmd.args(["run", yaml.to_str().unwrap(), "--root", e.root.url(), "--bin-dir", bin_dir().to_str().unwrap()]);
        cmd.arg(format!("--work-dir={}", e.scratch.join("work").display()));
        cmd.arg(format!("--run-id-output-file={}", e.scratch.join("run-id").display()));
        for p in params {
            cmd.args(["--param", p]);
        }
        cmd.output().unwrap()
    };
    for text in ["1", "true", "null", "1e3", "{\"a\": 1}", " padded "] {
        let out = run(&[&format!("text={text}"), "count=2"]);
        assert!(out.status.success(), "{text:?}: {}", String::from_utf8_lossy(&out.stderr));
        let id = std::fs::read_to_string(e.scratch.join("run-id")).unwrap();
        let r = block_on(pm_orchestrator::local::load_run(&e.root, &id));
        assert_eq!(r.params["text"], Value::from(text));
        assert_eq!(r.params["count"], Value::from(2));
        assert_eq!(r.steps["echo"].outputs["out"].value, Some(Value::from(text.trim())), "{text:?}");
    }
    let out = run(&["text=x", "count=two", "nope=1"]);
    assert_eq!(out.status.code(), Some(i32::from(pm_core::cli::exit::BAD_INPUT)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--param count=two: \"two\" is not an int"), "{err}");
    assert!(err.contains("--param nope: unknown parameter (the pipeline has count, text)"), "{err}");
}

/// Runs a future to completion on a fresh runtime (for the synchronous tests).
fn block_on<T>(f: impl std::future::Future<Output = anyhow::Result<T>>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f).unwrap()
}
