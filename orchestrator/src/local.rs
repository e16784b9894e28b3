//! The local backend: every step runs as a child process of its component binary.
//!
//! - **Parallelism**: steps whose dependencies are done run concurrently, at most `parallelism`.
//! - **Artifacts** pass by URL under the pipeline root (`<root>/runs/<run-id>/<step>/<output>`);
//!   output parameters come back through files, as under Kubeflow.
//! - **Retries** with exponential backoff; a **timeout** kills the step's whole process group
//!   (SIGTERM, then SIGKILL after a grace period).
//! - **Caching**: a step's key hashes its component (image, command, args, the binary's identity),
//!   its resolved input values, the content hashes of its input artifacts and a fingerprint of
//!   every `uri` input's objects. A hit reuses the recorded outputs after checking they still exist
//!   unchanged: each artifact's manifest has the recorded content hash and every file its size and
//!   SHA-256 (a step whose outputs fail the check runs again). A rerun after a failure, or after the orchestrator was killed, therefore resumes:
//!   finished steps come from the cache.
//! - **Lineage**: `<root>/runs/<run-id>/run.json` records per step its status, attempts, times,
//!   exit code, cache key, and output URIs with their content hashes; logs are kept per attempt in
//!   `<root>/runs/<run-id>/logs/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use pm_core::artifacts::store::{Store, sha256_hex};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::graph::{Binding, CmpOp, Piece, Pipeline, Placeholder, Step, parse_arg};
use crate::spec::Type;

/// Options of a local run.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Pipeline root: artifacts, cache and run records live below it.
    pub root: Store,
    /// Where component binaries are (a command `/usr/local/bin/pm-x` runs `<bin_dir>/pm-x`).
    pub bin_dir: PathBuf,
    pub parallelism: usize,
    pub params: BTreeMap<String, Value>,
    /// Continue this run (reuse its finished steps) instead of starting a new one.
    pub resume: Option<String>,
    pub use_cache: bool,
    /// Local scratch space (parameter files, staged `.path` outputs, logs).
    pub work_dir: PathBuf,
    /// Seconds between SIGTERM and SIGKILL when a step times out.
    pub kill_grace_secs: u64,
    /// Extra environment for every step (e.g. store credentials).
    pub env: BTreeMap<String, String>,
    pub show_progress: bool,
    /// How a step runs: a child process of its binary, or its component's image.
    pub runner: Runner,
}

/// How the local backend starts a step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Runner {
    /// A child process of the component's binary from `bin_dir`.
    #[default]
    Process,
    /// `<engine> run` of the component's image (podman; the OCI images of `make images`): host
    /// network, the step's scratch folder mounted at the same path (for `.file`/`.path` outputs),
    /// the step's environment plus the orchestrator's `AWS_*`, `GOOGLE_*`, `AZURE_*` and
    /// `RUST_LOG` variables (store credentials), and the step's memory limit.
    Container { engine: String },
}

/// Variables of the orchestrator's own environment a container step receives.
const PASSED_TO_CONTAINERS: [&str; 4] = ["AWS_", "GOOGLE_", "AZURE_", "RUST_LOG"];

/// State of a step in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Cached,
    /// Its condition was false (or a step it needs was skipped).
    Skipped,
    Failed,
    /// Not run because a step it needs failed.
    NotRun,
}

impl StepStatus {
    fn done_ok(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Cached)
    }
}

/// An output of a finished step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<Value>,
}

/// One step of a run record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub duration_secs: f64,
    /// Start and end, milliseconds since the epoch.
    #[serde(default)]
    pub start_ms: i64,
    #[serde(default)]
    pub end_ms: i64,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub cache_key: Option<String>,
    /// Input values and artifact URIs/hashes (lineage).
    #[serde(default)]
    pub inputs: BTreeMap<String, OutputRecord>,
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputRecord>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub logs: Vec<String>,
}

impl StepRecord {
    fn pending() -> Self {
        StepRecord {
            status: StepStatus::Pending,
            attempts: 0,
            started_at: None,
            ended_at: None,
            duration_secs: 0.0,
            start_ms: 0,
            end_ms: 0,
            exit_code: None,
            cache_key: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
            message: None,
            logs: Vec::new(),
        }
    }
}

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub pipeline: String,
    /// SHA-256 of the pipeline document.
    pub pipeline_hash: String,
    pub params: BTreeMap<String, Value>,
    pub status: String,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(default)]
    pub duration_secs: f64,
    pub steps: BTreeMap<String, StepRecord>,
    /// Why the run failed when no step did (an internal error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A cache entry (`<root>/cache/<key>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CacheEntry {
    step: String,
    run_id: String,
    outputs: BTreeMap<String, OutputRecord>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

pub fn new_run_id(pipeline: &str) -> String {
    let now = pm_core::data::time::now().rfc3339();
    let stamp: String = now.chars().filter(char::is_ascii_digit).collect();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{pipeline}-{stamp}-{:04x}", nanos & 0xffff)
}

/// Resolves run-time parameter values: defaults, overrides, types.
pub fn resolve_params(p: &Pipeline, overrides: &BTreeMap<String, Value>) -> Result<BTreeMap<String, Value>> {
    p.parameter_values(overrides)
        .map_err(|errs| anyhow!("{}", errs.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")))?;
    let mut out = BTreeMap::new();
    for (k, ps) in &p.spec.parameters {
        let v =
            overrides.get(k).or(ps.default.as_ref()).cloned().ok_or_else(|| anyhow!("parameter {k} has no value"))?;
        out.insert(k.clone(), v);
    }
    Ok(out)
}

/// Parameter text as a component receives it (strings unquoted, others as JSON).
fn as_arg(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an output parameter file's text.
fn parse_output(text: &str, ty: Type) -> Result<Value, String> {
    let t = text.trim();
    match ty {
        Type::Bool => match t {
            "true" | "True" | "1" => Ok(Value::Bool(true)),
            "false" | "False" | "0" => Ok(Value::Bool(false)),
            _ => Err(format!("{t:?} is not a bool")),
        },
        Type::Int => t.parse::<i64>().map(Value::from).map_err(|_| format!("{t:?} is not an int")),
        Type::Float => t.parse::<f64>().map(|x| json!(x)).map_err(|_| format!("{t:?} is not a float")),
        _ => Ok(Value::String(t.to_string())),
    }
}

fn compare(a: &Value, op: CmpOp, b: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
            _ => None,
        },
    };
    match (op, ord) {
        (CmpOp::Eq, o) => o == Some(Ordering::Equal),
        (CmpOp::Ne, o) => o != Some(Ordering::Equal),
        (CmpOp::Lt, Some(o)) => o == Ordering::Less,
        (CmpOp::Le, Some(o)) => o != Ordering::Greater,
        (CmpOp::Gt, Some(o)) => o == Ordering::Greater,
        (CmpOp::Ge, Some(o)) => o != Ordering::Less,
        _ => false,
    }
}

/// The binary a component command runs locally.
pub fn binary_for(bin_dir: &Path, command0: &str) -> PathBuf {
    let name = Path::new(command0).file_name().map_or_else(|| command0.into(), |n| n.to_os_string());
    let candidate = bin_dir.join(&name);
    if candidate.exists() || command0.contains('/') {
        return candidate;
    }
    // A bare name that is not in bin_dir: from PATH (e.g. `sh` for script components).
    PathBuf::from(command0)
}

/// Identity of what runs a step, for cache keys: the image's id under a container runner.
async fn runner_identity(runner: &Runner, bin: &Path, image: &str) -> Value {
    match runner {
        Runner::Process => binary_identity(bin),
        Runner::Container { engine } => {
            let id = tokio::process::Command::new(engine)
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .output()
                .await
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            json!({"engine": engine, "image_id": id})
        }
    }
}

/// Identity of a binary for cache keys: path, size and modification time (a rebuild changes it).
fn binary_identity(path: &Path) -> Value {
    match std::fs::metadata(path) {
        Ok(m) => {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            json!({"path": path.display().to_string(), "size": m.len(), "mtime_ns": mtime.to_string()})
        }
        Err(_) => json!({"path": path.display().to_string()}),
    }
}

/// A fingerprint of the objects under a store location: names, sizes, modification times.
async fn fingerprint(uri: &str) -> Result<String> {
    let store = Store::open(uri)?;
    let names = store.list("").await?;
    let mut h = Vec::new();
    for n in names {
        let meta = store.head_meta(&n).await?;
        h.push(format!("{n}\t{}\t{}", meta.0, meta.1));
    }
    Ok(sha256_hex(h.join("\n").as_bytes()))
}

struct Shared {
    record: Mutex<RunRecord>,
    opts: LocalOptions,
    pipeline: Pipeline,
    run_dir: Store,
    progress: Option<indicatif::MultiProgress>,
    /// Step logs not stored yet (the store was unavailable): `(local file, name in the run
    /// folder)`. Uploaded with the next run record that gets through.
    unsent_logs: Mutex<Vec<(PathBuf, String)>>,
    /// Why the last write of the run record failed, if it did.
    record_problem: Mutex<Option<pm_core::artifacts::store::StoreError>>,
}

/// Attempts of a run-record write while the store is unavailable: ~70 s in all.
const RECORD_WRITE_ATTEMPTS: u32 = 12;

impl Shared {
    /// Writes `name` into the run folder, retrying while the store is unavailable (an outage);
    /// a refusal that no retry fixes (no space, permissions) is returned at once.
    async fn put_retrying(&self, name: &str, bytes: Bytes) -> Result<(), pm_core::artifacts::store::StoreError> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            match self.run_dir.put(name, bytes.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if !e.is_transient() || attempt == RECORD_WRITE_ATTEMPTS => return Err(e),
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "Could not write {name}; retrying.");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                    attempt += 1;
                }
            }
        }
    }

    /// Writes run.json, and the step logs kept while the store was unavailable. A failure does
    /// not stop the run; it is remembered, and the run's end reports it if it lasts.
    async fn save(&self) {
        let bytes = {
            let r = self.record.lock().await;
            serde_json::to_vec_pretty(&*r).unwrap_or_default()
        };
        let problem = match self.put_retrying("run.json", Bytes::from(bytes)).await {
            Ok(()) => {
                self.send_unsent_logs().await;
                None
            }
            Err(e) => {
                tracing::error!(error = %e, "Could not write the run record.");
                Some(e)
            }
        };
        *self.record_problem.lock().await = problem;
    }

    /// Stores a step attempt's log; kept for a later try when the store refuses it now.
    async fn store_log(&self, local: PathBuf, name: String) {
        let sent = match std::fs::read(&local) {
            Ok(bytes) => self.run_dir.put(&name, Bytes::from(bytes)).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("reading {}: {e}", local.display())),
        };
        if let Err(e) = sent {
            tracing::warn!(log = %name, error = %e, "Could not store the step log now; it is kept and sent later.");
            self.unsent_logs.lock().await.push((local, name));
        }
    }

    /// Sends the logs kept by [`Shared::store_log`]; those that fail again stay kept.
    async fn send_unsent_logs(&self) {
        let pending = std::mem::take(&mut *self.unsent_logs.lock().await);
        let mut left = Vec::new();
        for (local, name) in pending {
            let sent = match std::fs::read(&local) {
                Ok(bytes) => self.put_retrying(&name, Bytes::from(bytes)).await.is_ok(),
                Err(_) => false,
            };
            if !sent {
                left.push((local, name));
            }
        }
        self.unsent_logs.lock().await.extend(left);
    }
}

/// Runs a pipeline locally; returns the run record (also written to the store).
pub async fn run(pipeline: Pipeline, opts: LocalOptions, pipeline_text: &str) -> Result<RunRecord> {
    let params = resolve_params(&pipeline, &opts.params)?;
    let started = Instant::now();
    let (run_id, mut record) = match &opts.resume {
        Some(id) => {
            let bytes = opts
                .root
                .join(&store_path(&["runs", id])?)
                .get("run.json")
                .await
                .with_context(|| format!("loading run {id} to resume it"))?;
            let mut r: RunRecord = serde_json::from_slice(&bytes).with_context(|| format!("runs/{id}/run.json"))?;
            if r.pipeline_hash != sha256_hex(pipeline_text.as_bytes()) {
                anyhow::bail!("run {id} was started with a different pipeline document; start a new run instead");
            }
            if r.params != params {
                anyhow::bail!("run {id} was started with different parameters; start a new run instead");
            }
            for s in r.steps.values_mut() {
                if !s.status.done_ok() && s.status != StepStatus::Skipped {
                    *s = StepRecord::pending();
                }
            }
            r.status = "running".into();
            r.message = None;
            (id.clone(), r)
        }
        None => {
            let id = new_run_id(&pipeline.spec.name);
            let r = RunRecord {
                run_id: id.clone(),
                pipeline: pipeline.spec.name.clone(),
                pipeline_hash: sha256_hex(pipeline_text.as_bytes()),
                params: params.clone(),
                status: "running".into(),
                started_at: pm_core::data::time::now_rfc3339(),
                ended_at: None,
                duration_secs: 0.0,
                steps: pipeline.steps.keys().map(|k| (k.clone(), StepRecord::pending())).collect(),
                message: None,
            };
            (id, r)
        }
    };
    for k in pipeline.steps.keys() {
        record.steps.entry(k.clone()).or_insert_with(StepRecord::pending);
    }
    if let (Some(_), Runner::Container { engine }) = (&opts.resume, &opts.runner) {
        // A killed orchestrator cannot stop its `podman run`s: their containers may still run,
        // and would write beside the steps this run starts again.
        match remove_leftover_containers(engine, &run_id, pipeline.steps.keys().map(String::as_str)).await {
            Ok(gone) => {
                for name in gone {
                    tracing::warn!(container = %name, "Removed a container left running by this run's killed orchestrator.");
                }
            }
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "Could not look for containers left by this run."),
        }
    }
    let run_dir = opts.root.join(&store_path(&["runs", &run_id])?);
    let progress = opts.show_progress.then(indicatif::MultiProgress::new);
    let shared = Arc::new(Shared {
        record: Mutex::new(record),
        opts: opts.clone(),
        pipeline,
        run_dir,
        progress,
        unsent_logs: Mutex::new(Vec::new()),
        record_problem: Mutex::new(None),
    });
    shared.save().await;
    tracing::info!(run_id = %run_id, root = %opts.root.url(), "Run started.");

    // The scheduler runs as a task of its own: should anything in it panic, the run is still
    // ended, as failed, and its record says why.
    let scheduled = tokio::spawn(schedule(shared.clone(), run_id.clone(), params.clone())).await;
    let internal = match scheduled {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(e) => Some(format!("the scheduler panicked: {}", panic_message(e))),
    };
    if let Some(m) = &internal {
        tracing::error!(run_id = %run_id, error = %m, "Internal error; the run is marked failed.");
        shared.record.lock().await.message = Some(format!("internal error: {m}"));
    }
    let mut rec = shared.record.lock().await.clone();
    let ok = internal.is_none() && rec.steps.values().all(|s| s.status.done_ok() || s.status == StepStatus::Skipped);
    rec.status = if ok { "succeeded".into() } else { "failed".into() };
    rec.ended_at = Some(pm_core::data::time::now_rfc3339());
    rec.duration_secs = started.elapsed().as_secs_f64();
    *shared.record.lock().await = rec.clone();
    shared.save().await;
    tracing::info!(run_id = %run_id, status = %rec.status, "Run finished.");
    if let Some(problem) = shared.record_problem.lock().await.take() {
        let unsent: Vec<String> =
            shared.unsent_logs.lock().await.iter().map(|(local, _)| local.display().to_string()).collect();
        let logs = if unsent.is_empty() {
            String::new()
        } else {
            format!(" (the step logs are kept in {})", unsent.join(", "))
        };
        return Err(anyhow::Error::new(problem)
            .context(format!("run {run_id} {}, but its run record could not be written{logs}", rec.status)));
    }
    Ok(rec)
}

/// The text of a task's panic.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into()),
        Err(e) => e.to_string(),
    }
}

/// What a finished step means for the steps that wait on it.
fn settled(status: StepStatus) -> bool {
    status.done_ok() || matches!(status, StepStatus::Skipped | StepStatus::Failed | StepStatus::NotRun)
}

/// Runs the pending steps of a run: each as soon as the steps it needs are done, at most
/// `parallelism` at once. A step whose upstream failed is not run; one whose upstream was
/// skipped is skipped. Linear in steps + edges: each step keeps the count of upstream steps not
/// settled yet, and a settled step decrements its dependents' counts.
async fn schedule(shared: Arc<Shared>, run_id: String, params: BTreeMap<String, Value>) -> Result<()> {
    let pipeline = &shared.pipeline;
    let mut downstream: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, step) in &pipeline.steps {
        for up in &step.upstream {
            downstream.entry(up.as_str()).or_default().push(name.as_str());
        }
    }
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ready: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
    {
        let rec = shared.record.lock().await;
        let status = |n: &str| rec.steps.get(n).map_or(StepStatus::Pending, |r| r.status);
        for name in &pipeline.order {
            if status(name) != StepStatus::Pending {
                continue;
            }
            let open = pipeline.steps[name].upstream.iter().filter(|u| !settled(status(u))).count();
            if open == 0 {
                ready.push_back(name);
            } else {
                waiting.insert(name, open);
            }
        }
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(shared.opts.parallelism.max(1)));
    let mut running: tokio::task::JoinSet<(String, StepRecord)> = tokio::task::JoinSet::new();
    let mut names: BTreeMap<tokio::task::Id, String> = BTreeMap::new();
    loop {
        // Decide, for each step whose upstream is settled, whether it runs, is skipped or cannot run.
        while let Some(name) = ready.pop_front() {
            let outcome = {
                let mut rec = shared.record.lock().await;
                let ups: Vec<StepStatus> = pipeline.steps[name]
                    .upstream
                    .iter()
                    .map(|u| rec.steps.get(u).map_or(StepStatus::Pending, |r| r.status))
                    .collect();
                let r = rec.steps.get_mut(name).ok_or_else(|| anyhow!("step {name} has no record"))?;
                if ups.iter().any(|s| matches!(s, StepStatus::Failed | StepStatus::NotRun)) {
                    r.status = StepStatus::NotRun;
                    r.message = Some("a step it needs failed".into());
                    false
                } else if ups.contains(&StepStatus::Skipped) {
                    r.status = StepStatus::Skipped;
                    r.message = Some("a step it needs was skipped".into());
                    false
                } else {
                    r.status = StepStatus::Running;
                    true
                }
            };
            if outcome {
                let (shared, sem, run_id, params) = (shared.clone(), sem.clone(), run_id.clone(), params.clone());
                let owned = name.to_string();
                let handle = running.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let rec = run_step(&shared, &run_id, &owned, &params).await;
                    (owned, rec)
                });
                names.insert(handle.id(), name.to_string());
            } else {
                release(name, &downstream, &mut waiting, &mut ready);
            }
        }
        shared.save().await;
        let Some(joined) = running.join_next_with_id().await else {
            break;
        };
        let (name, rec) = match joined {
            Ok((_, done)) => done,
            Err(e) => {
                let name = names.get(&e.id()).cloned().ok_or_else(|| anyhow!("an unknown step task failed"))?;
                let mut rec = StepRecord::pending();
                rec.status = StepStatus::Failed;
                rec.message = Some(format!("internal error: the step's task panicked: {}", panic_message(e)));
                tracing::error!(step = %name, message = ?rec.message, "Internal error; the step is marked failed.");
                (name, rec)
            }
        };
        let key = pipeline.steps.get_key_value(&name).map(|(k, _)| k.as_str()).ok_or_else(|| anyhow!("step {name}"))?;
        shared.record.lock().await.steps.insert(name, rec);
        release(key, &downstream, &mut waiting, &mut ready);
    }
    if !waiting.is_empty() {
        anyhow::bail!("steps never became ready: {}", waiting.keys().copied().collect::<Vec<_>>().join(", "));
    }
    Ok(())
}

/// `done` settled: its dependents have one upstream step less to wait for; those with none left
/// are ready.
fn release<'a>(
    done: &str,
    downstream: &BTreeMap<&str, Vec<&'a str>>,
    waiting: &mut BTreeMap<&'a str, usize>,
    ready: &mut std::collections::VecDeque<&'a str>,
) {
    for &next in downstream.get(done).into_iter().flatten() {
        if let Some(open) = waiting.get_mut(next) {
            *open -= 1;
            if *open == 0 {
                waiting.remove(next);
                ready.push_back(next);
            }
        }
    }
}

/// Resolved inputs of a step: parameter values and artifact URIs (with content hashes).
async fn resolve_inputs(
    shared: &Shared,
    step: &Step,
    params: &BTreeMap<String, Value>,
) -> Result<BTreeMap<String, OutputRecord>> {
    let rec = shared.record.lock().await;
    let mut out = BTreeMap::new();
    for (name, (ty, b)) in &step.inputs {
        let r = match b {
            Binding::Literal(v) | Binding::Default(v) => OutputRecord { value: Some(v.clone()), ..Default::default() },
            Binding::Param(p) => OutputRecord { value: params.get(p).cloned(), ..Default::default() },
            Binding::Output { step: s, output } => {
                let o = rec.steps.get(s).and_then(|r| r.outputs.get(output)).cloned();
                o.ok_or_else(|| anyhow!("step {s} has no recorded output {output}"))?
            }
        };
        let _ = ty;
        out.insert(name.clone(), r);
    }
    Ok(out)
}

fn condition_holds(shared: &Shared, step: &Step, params: &BTreeMap<String, Value>, rec: &RunRecord) -> Result<bool> {
    let Some(c) = &step.when else { return Ok(true) };
    let value = |b: &Binding| -> Result<Value> {
        Ok(match b {
            Binding::Literal(v) | Binding::Default(v) => v.clone(),
            Binding::Param(p) => params.get(p).cloned().unwrap_or(Value::Null),
            Binding::Output { step, output } => rec
                .steps
                .get(step)
                .and_then(|r| r.outputs.get(output))
                .and_then(|o| o.value.clone())
                .ok_or_else(|| {
                    anyhow!("condition of {}: {step}.{output} has no value", shared.pipeline.steps[&step.clone()].name)
                })?,
        })
    };
    Ok(compare(&value(&c.left)?, c.op, &value(&c.right)?))
}

async fn cache_key(shared: &Shared, step: &Step, inputs: &BTreeMap<String, OutputRecord>) -> Result<String> {
    let comp = shared.pipeline.component(step);
    let bin = binary_for(&shared.opts.bin_dir, &comp.command[0]);
    let mut ins = BTreeMap::new();
    for (name, r) in inputs {
        let ty = step.inputs[name].0;
        let v = if ty.is_artifact() {
            json!({"artifact": r.content_hash})
        } else if ty == Type::Uri {
            let uri = r.value.as_ref().map(as_arg).unwrap_or_default();
            json!({"uri": uri, "fingerprint": fingerprint(&uri).await.unwrap_or_else(|e| format!("unavailable: {e}"))})
        } else {
            json!({"value": r.value})
        };
        ins.insert(name.clone(), v);
    }
    let key = json!({
        "component": step.component,
        "image": comp.image,
        "command": comp.command,
        "args": comp.args,
        "outputs": step.outputs,
        "binary": runner_identity(&shared.opts.runner, &bin, &comp.image).await,
        "env": step.env,
        "inputs": ins,
    });
    Ok(sha256_hex(key.to_string().as_bytes()))
}

/// A cache hit whose outputs still exist unchanged: each output artifact's manifest has the
/// recorded content hash, and every file matches the manifest (size and SHA-256, read in full).
/// Anything else is a miss, and the step runs again.
async fn cache_lookup(shared: &Shared, step: &str, key: &str) -> Option<BTreeMap<String, OutputRecord>> {
    let bytes = shared.opts.root.get(&store_path(&["cache", &format!("{key}.json")]).ok()?).await.ok()?;
    let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
    for (name, o) in &entry.outputs {
        if let (Some(uri), Some(hash)) = (&o.uri, &o.content_hash) {
            let verified = async {
                let store = Store::open(uri)?;
                let m = store.read_manifest().await?;
                if &m.content_hash() != hash {
                    return Err(pm_core::artifacts::store::StoreError::Corrupt {
                        url: uri.clone(),
                        reason: "its content hash is not the one the cache recorded".into(),
                    });
                }
                store.verify_artifact(&m).await
            };
            if let Err(e) = verified.await {
                tracing::warn!(step, output = %name, error = %e, "A cached output is gone or changed; running the step again.");
                return None;
            }
        }
    }
    Some(entry.outputs)
}

/// Process groups of the steps running now (for [`stop_running_steps`]).
static RUNNING: std::sync::Mutex<BTreeSet<u32>> = std::sync::Mutex::new(BTreeSet::new());

/// Removes a step's process group from [`RUNNING`] when its wait ends (or is cancelled).
struct Running(u32);

impl Running {
    fn new(pid: u32) -> Self {
        RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(pid);
        Running(pid)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&self.0);
    }
}

/// Stops every running step when the orchestrator itself is told to stop: SIGTERM to each step's
/// process group (steps exit at once; a container step's `podman run` forwards it), SIGKILL to
/// what is left after 3 s. Steps are in their own process groups, so without this they would
/// outlive the orchestrator.
pub fn stop_running_steps() {
    let groups: Vec<u32> = RUNNING.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect();
    for &g in &groups {
        kill_group(g, nix::sys::signal::Signal::SIGTERM);
    }
    let alive = |g: u32| nix::sys::signal::killpg(nix::unistd::Pid::from_raw(g as i32), None).is_ok();
    let deadline = Instant::now() + Duration::from_secs(3);
    while groups.iter().any(|&g| alive(g)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &g in &groups {
        kill_group(g, nix::sys::signal::Signal::SIGKILL);
    }
}

fn kill_group(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), sig);
}

/// Runs one step: condition, cache, attempts with retries and timeout, outputs.
async fn run_step(shared: &Shared, run_id: &str, name: &str, params: &BTreeMap<String, Value>) -> StepRecord {
    let step = &shared.pipeline.steps[name];
    let mut rec = StepRecord::pending();
    let started = Instant::now();
    rec.started_at = Some(pm_core::data::time::now_rfc3339());
    rec.start_ms = now_ms();
    let bar = shared.progress.as_ref().map(|m| {
        let b = m.add(indicatif::ProgressBar::new_spinner());
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix:<12} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.set_prefix(name.to_string());
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let say = |msg: String| {
        if let Some(b) = &bar {
            b.set_message(msg);
        }
    };
    let result = async {
        let holds = {
            let r = shared.record.lock().await;
            condition_holds(shared, step, params, &r)?
        };
        if !holds {
            rec.status = StepStatus::Skipped;
            rec.message = step.when.as_ref().map(|c| format!("condition `{}` is false", c.text));
            return Ok::<(), anyhow::Error>(());
        }
        let inputs = resolve_inputs(shared, step, params).await?;
        rec.inputs = inputs.clone();
        let key = cache_key(shared, step, &inputs).await?;
        rec.cache_key = Some(key.clone());
        if step.cache && shared.opts.use_cache {
            say("checking the cache".into());
            if let Some(outputs) = cache_lookup(shared, name, &key).await {
                rec.outputs = outputs;
                rec.status = StepStatus::Cached;
                return Ok(());
            }
        }
        execute(shared, run_id, step, &inputs, &mut rec, &say).await?;
        if step.cache {
            let entry = CacheEntry { step: name.to_string(), run_id: run_id.to_string(), outputs: rec.outputs.clone() };
            if let Err(e) = shared
                .opts
                .root
                .put(&store_path(&["cache", &format!("{key}.json")])?, Bytes::from(serde_json::to_vec_pretty(&entry)?))
                .await
            {
                tracing::warn!(step = name, error = %e, "Could not write the cache entry.");
            }
        }
        rec.status = StepStatus::Succeeded;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        rec.status = StepStatus::Failed;
        rec.message = Some(format!("{e:#}"));
    }
    rec.ended_at = Some(pm_core::data::time::now_rfc3339());
    rec.end_ms = now_ms();
    rec.duration_secs = started.elapsed().as_secs_f64();
    if let Some(b) = bar {
        b.finish_with_message(format!("{:?} in {:.1} s", rec.status, rec.duration_secs));
    }
    tracing::info!(step = name, status = ?rec.status, attempts = rec.attempts, secs = rec.duration_secs, "Step finished.");
    rec
}

async fn execute(
    shared: &Shared,
    run_id: &str,
    step: &Step,
    inputs: &BTreeMap<String, OutputRecord>,
    rec: &mut StepRecord,
    say: &impl Fn(String),
) -> Result<()> {
    let comp = shared.pipeline.component(step);
    let places = StepPlaces::new(&shared.opts, run_id, step)?;
    let local = &places.local;
    std::fs::create_dir_all(local).with_context(|| format!("creating {}", local.display()))?;
    let place = |o: &str| places.outputs.get(o).ok_or_else(|| anyhow!("step {} has no output {o:?}", step.name));
    let mut args: Vec<String> = comp.command[1..].to_vec();
    for a in &comp.args {
        let mut s = String::new();
        for piece in parse_arg(a).map_err(|e| anyhow!(e))? {
            match piece {
                Piece::Text(t) => s.push_str(&t),
                Piece::Ph(Placeholder::InputValue(n)) => {
                    s.push_str(&inputs.get(&n).and_then(|r| r.value.as_ref()).map(as_arg).unwrap_or_default())
                }
                Piece::Ph(Placeholder::InputUri(n)) => {
                    s.push_str(inputs.get(&n).and_then(|r| r.uri.as_deref()).unwrap_or_default())
                }
                Piece::Ph(Placeholder::OutputUri(n)) => s.push_str(&place(&n)?.uri),
                Piece::Ph(Placeholder::OutputPath(n)) => s.push_str(&place(&n)?.path.display().to_string()),
                Piece::Ph(Placeholder::OutputFile(n)) => s.push_str(&place(&n)?.file.display().to_string()),
            }
        }
        args.push(s);
    }
    let bin = binary_for(&shared.opts.bin_dir, &comp.command[0]);
    let max_attempts = 1 + step.retries.as_ref().map_or(0, |r| r.max);
    let mut last_err = String::new();
    for attempt in 1..=max_attempts {
        rec.attempts = attempt;
        if attempt > 1 {
            let r = step
                .retries
                .as_ref()
                .map_or((1.0, 2.0, 600.0), |r| (r.backoff_seconds, r.backoff_factor, r.backoff_max_seconds));
            let wait = (r.0 * r.1.powi(attempt as i32 - 2)).min(r.2);
            say(format!("attempt {attempt}/{max_attempts} in {wait:.1} s ({last_err})"));
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        if pm_core::cli::stopping() {
            return Err(anyhow!("not started: the orchestrator is stopping (signal)"));
        }
        // Fresh scratch for this attempt: stale output files of a failed attempt never count.
        let _ = std::fs::remove_dir_all(local.join("outputs"));
        let _ = std::fs::remove_dir_all(local.join("artifacts"));
        for p in places.outputs.values() {
            let _ = std::fs::create_dir_all(p.path.parent().unwrap_or(local));
        }
        // What an earlier attempt killed mid-write left in the step's artifact folders.
        for (o, ty) in &step.outputs {
            if let (true, Some(p)) = (ty.is_artifact(), places.outputs.get(o)) {
                match Store::open(&p.uri)?.clean_staging().await {
                    Ok(gone) if !gone.is_empty() => {
                        tracing::info!(step = %step.name, output = %o, files = ?gone, "Removed staging files of an interrupted write.");
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(step = %step.name, output = %o, error = %e, "Could not clean staging files.")
                    }
                }
            }
        }
        let log_path = local.join(format!("attempt-{attempt}.log"));
        say(format!("running (attempt {attempt}/{max_attempts})"));
        let launch = match &shared.opts.runner {
            Runner::Process => Launch {
                program: bin.clone(),
                args: args.clone(),
                env: shared.opts.env.iter().chain(&step.env).map(|(k, v)| (k.clone(), v.clone())).collect(),
                container: None,
            },
            Runner::Container { engine } => {
                let name = container_name(run_id, &step.name, attempt);
                container_launch(engine, &name, comp, step, &shared.opts.env, local, &args)?
            }
        };
        let outcome = spawn_and_wait(&launch, &log_path, step.timeout_seconds, shared.opts.kill_grace_secs).await;
        let log_name = store_path(&["logs", &format!("{}.attempt-{attempt}.log", step.name)])?;
        if log_path.exists() {
            rec.logs.push(shared.run_dir.url_of(&log_name));
            shared.store_log(log_path.clone(), log_name).await;
        }
        match outcome {
            Ok(0) => {
                rec.exit_code = Some(0);
                match collect_outputs(shared, step, &places).await {
                    Ok(outputs) => {
                        rec.outputs = outputs;
                        return Ok(());
                    }
                    Err(e) => last_err = format!("{e:#}"),
                }
            }
            Ok(code) => {
                rec.exit_code = Some(code);
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: Vec<&str> = tail.lines().rev().take(3).collect();
                last_err = format!("exit code {code}: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | "));
                if !pm_core::cli::exit::retryable(code) {
                    // The step says the same inputs would fail the same way (README, "Failure model").
                    tracing::warn!(step = %step.name, attempt, error = %last_err, "Step failed for good; not retried.");
                    return Err(anyhow!("failed for good after {attempt} attempt(s), not retried: {last_err}"));
                }
            }
            Err(e) => {
                rec.exit_code = None;
                last_err = format!("{e:#}");
            }
        }
        tracing::warn!(step = %step.name, attempt, error = %last_err, "Step attempt failed.");
    }
    Err(anyhow!("failed after {max_attempts} attempt(s): {last_err}"))
}

/// What to start for a step attempt.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// `(engine, container name)`: removed by force if the step times out.
    container: Option<(String, String)>,
}

/// The name of a step attempt's container: `pm-<run>-<step>-<attempt>`.
fn container_name(run_id: &str, step: &str, attempt: u32) -> String {
    format!("{}{attempt}", container_prefix(run_id, step))
}

fn container_prefix(run_id: &str, step: &str) -> String {
    format!("pm-{}-{}-", sanitize_name(run_id), sanitize_name(step))
}

/// Removes (by force) the containers of `run_id`'s step attempts, running or not; returns their
/// names. Only names this runner gives (`pm-<run>-<step>-<attempt>` for a step of the pipeline).
async fn remove_leftover_containers(
    engine: &str,
    run_id: &str,
    steps: impl Iterator<Item = &str>,
) -> Result<Vec<String>> {
    let prefixes: Vec<String> = steps.map(|s| container_prefix(run_id, s)).collect();
    let out = tokio::process::Command::new(engine)
        .args(["ps", "--all", "--format", "{{.Names}}"])
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {engine} ps"))?;
    if !out.status.success() {
        anyhow::bail!("{engine} ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|n| {
            prefixes.iter().any(|p| {
                n.strip_prefix(p.as_str()).is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
            })
        })
        .map(String::from)
        .collect();
    if !ours.is_empty() {
        force_remove(engine, &ours).await?;
    }
    Ok(ours)
}

/// `<engine> rm --force --time 0 <names>`: stops and removes the containers at once.
async fn force_remove(engine: &str, names: &[String]) -> Result<()> {
    let st = tokio::process::Command::new(engine)
        .args(["rm", "--force", "--time", "0"])
        .args(names)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {engine} rm"))?;
    if !st.success() {
        anyhow::bail!("{engine} rm {} failed ({st})", names.join(" "));
    }
    Ok(())
}

fn sanitize_name(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// `<engine> run` for a step: see [`Runner::Container`].
fn container_launch(
    engine: &str,
    name: &str,
    comp: &crate::spec::ComponentSpec,
    step: &Step,
    extra_env: &BTreeMap<String, String>,
    local: &Path,
    step_args: &[String],
) -> Result<Launch> {
    // The image runs as an unprivileged user: it must be able to write its output files.
    make_world_writable(local)?;
    let mut args: Vec<String> = ["run", "--rm", "--network", "host", "--name", name].map(String::from).to_vec();
    args.push(format!("--volume={}:{}", local.display(), local.display()));
    args.push(format!("--entrypoint={}", comp.command[0]));
    let mut env: BTreeMap<String, String> =
        std::env::vars().filter(|(k, _)| PASSED_TO_CONTAINERS.iter().any(|p| k.starts_with(p))).collect();
    env.extend(extra_env.clone());
    env.extend(step.env.clone());
    for (k, v) in &env {
        args.push(format!("--env={k}={v}"));
    }
    if let Some(m) = &step.resources.memory_limit {
        args.push(format!("--memory={}", m.trim_end_matches('i').to_lowercase()));
    }
    args.push(comp.image.clone());
    args.extend(step_args.iter().cloned());
    Ok(Launch {
        program: PathBuf::from(engine),
        args,
        env: Vec::new(),
        container: Some((engine.to_string(), name.to_string())),
    })
}

fn make_world_writable(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777))
            .with_context(|| format!("opening {} to the container user", d.display()))?;
        for e in std::fs::read_dir(&d)?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    Ok(())
}

/// Spawns a step in its own process group; returns its exit code (a signal counts as 128 + n).
async fn spawn_and_wait(launch: &Launch, log: &Path, timeout: Option<u64>, grace: u64) -> Result<i32> {
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        // A step of ours stops if this process dies, even by SIGKILL (see `pm_core::cli`).
        .env(pm_core::cli::PARENT_PID_ENV, std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().with_context(|| format!("starting {}", launch.program.display()))?;
    let pid = child.id().unwrap_or(0);
    let _running = (pid > 0).then(|| Running::new(pid));
    let status = match timeout {
        None => child.wait().await?,
        Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), child.wait()).await {
            Ok(s) => s?,
            Err(_) => {
                kill_group(pid, nix::sys::signal::Signal::SIGTERM);
                if tokio::time::timeout(Duration::from_secs(grace), child.wait()).await.is_err() {
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait().await;
                } else {
                    // The leader exited; make sure nothing of its group survives.
                    kill_group(pid, nix::sys::signal::Signal::SIGKILL);
                }
                if let Some((engine, name)) = &launch.container {
                    let _ = force_remove(engine, std::slice::from_ref(name)).await;
                }
                anyhow::bail!("timed out after {secs} s; process group {pid} killed");
            }
        },
    };
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// One path segment of a name (a step, an output, a run id): refused if it could leave the
/// folder it is joined to (empty, `.`, `..`, a separator, a NUL). Validation already allows only
/// such names; this proves it where the paths are built.
fn segment(name: &str) -> Result<&str> {
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if ok { Ok(name) } else { Err(anyhow!("{name:?} cannot name a file or folder of a run")) }
}

/// A store path below the root from checked segments (see [`segment`]).
fn store_path(parts: &[&str]) -> Result<String> {
    Ok(parts.iter().map(|p| segment(p)).collect::<Result<Vec<_>>>()?.join("/"))
}

/// A local path below `base` from checked segments (see [`segment`]).
fn local_path(base: &Path, parts: &[&str]) -> Result<PathBuf> {
    let mut out = base.to_path_buf();
    for p in parts {
        out.push(segment(p)?);
    }
    Ok(out)
}

/// Where a step's attempt reads and writes: its scratch folder below the work dir, and per
/// output the artifact's URL below the run's folder, the parameter file and the local file of a
/// `.path` output. Every one is built from checked segments, so none leaves its folder.
struct StepPlaces {
    local: PathBuf,
    outputs: BTreeMap<String, OutputPlace>,
}

struct OutputPlace {
    /// `<root>/runs/<run>/<step>/<output>`.
    uri: String,
    /// `<scratch>/outputs/<output>`: an output parameter's value.
    file: PathBuf,
    /// `<scratch>/artifacts/<output>/<output>`: a file the step writes for a `.path` output.
    path: PathBuf,
}

impl StepPlaces {
    fn new(opts: &LocalOptions, run_id: &str, step: &Step) -> Result<StepPlaces> {
        let local = local_path(&opts.work_dir, &["runs", run_id, &step.name])?;
        let mut outputs = BTreeMap::new();
        for o in step.outputs.keys() {
            let place = OutputPlace {
                uri: opts.root.url_of(&store_path(&["runs", run_id, &step.name, o])?),
                file: local_path(&local, &["outputs", o])?,
                path: local_path(&local, &["artifacts", o, o])?,
            };
            outputs.insert(o.clone(), place);
        }
        Ok(StepPlaces { local, outputs })
    }
}

async fn collect_outputs(shared: &Shared, step: &Step, places: &StepPlaces) -> Result<BTreeMap<String, OutputRecord>> {
    let comp = shared.pipeline.component(step);
    let uses_path: BTreeSet<String> = comp
        .args
        .iter()
        .flat_map(|a| parse_arg(a).unwrap_or_default())
        .filter_map(|p| match p {
            Piece::Ph(Placeholder::OutputPath(n)) => Some(n),
            _ => None,
        })
        .collect();
    let mut out = BTreeMap::new();
    for (o, ty) in &step.outputs {
        let place = places.outputs.get(o).ok_or_else(|| anyhow!("step {} has no output {o:?}", step.name))?;
        let rec = if ty.is_artifact() {
            let uri = place.uri.clone();
            let store = Store::open(&uri)?;
            if uses_path.contains(o) {
                // A file written to a local path: store it as a one-file artifact.
                let f = &place.path;
                let bytes = std::fs::read(f)
                    .with_context(|| format!("output {o}: the step wrote no file at {}", f.display()))?;
                store
                    .write_artifact(
                        ty.name(),
                        &format!("{} (via pm-orchestrator)", step.component),
                        vec![(o.clone(), Bytes::from(bytes))],
                        Value::Null,
                    )
                    .await?;
            }
            let m =
                store.read_manifest().await.with_context(|| format!("output {o}: no committed artifact at {uri}"))?;
            OutputRecord { uri: Some(uri), content_hash: Some(m.content_hash()), value: None }
        } else {
            let f = &place.file;
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("output parameter {o}: the step wrote no {}", f.display()))?;
            let v = parse_output(&text, *ty).map_err(|e| anyhow!("output parameter {o}: {e}"))?;
            OutputRecord { value: Some(v), ..Default::default() }
        };
        out.insert(o.clone(), rec);
    }
    Ok(out)
}

/// Lists the runs under a root, newest first.
pub async fn list_runs(root: &Store) -> Result<Vec<RunRecord>> {
    let mut out = Vec::new();
    for name in root.list("runs").await? {
        if name.ends_with("/run.json") && name.matches('/').count() == 2 {
            let bytes = root.get(&name).await?;
            if let Ok(r) = serde_json::from_slice::<RunRecord>(&bytes) {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.run_id.cmp(&a.run_id)));
    Ok(out)
}

pub async fn load_run(root: &Store, run_id: &str) -> Result<RunRecord> {
    let bytes = root.get(&store_path(&["runs", run_id, "run.json"])?).await.with_context(|| format!("run {run_id}"))?;
    Ok(serde_json::from_slice(&bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_step_gets_its_image_entrypoint_mount_env_and_memory_limit() {
        let p = crate::graph::load(
            r#"
name: c
components:
  x:
    image: localhost/pm/pm-x:1
    command: [/usr/local/bin/pm-x]
    args: [--a, "1"]
steps:
  s:
    component: x
    env: {STEP_VAR: "v"}
    resources: {memory_limit: 2G}
"#,
        )
        .unwrap();
        let step = &p.steps["s"];
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("scratch");
        std::fs::create_dir_all(local.join("artifacts/out")).unwrap();
        let extra = BTreeMap::from([("AWS_ENDPOINT".to_string(), "http://127.0.0.1:1".to_string())]);
        let l = container_launch(
            "podman",
            "pm-r-s-1",
            p.component(step),
            step,
            &extra,
            &local,
            &["--a".into(), "1".into()],
        )
        .unwrap();
        assert_eq!(l.program, PathBuf::from("podman"));
        assert_eq!(l.container, Some(("podman".into(), "pm-r-s-1".into())));
        let args = l.args.join(" ");
        let mount = format!("--volume={}:{}", local.display(), local.display());
        for needle in [
            "run --rm --network host --name pm-r-s-1",
            mount.as_str(),
            "--entrypoint=/usr/local/bin/pm-x",
            "--env=AWS_ENDPOINT=http://127.0.0.1:1",
            "--env=STEP_VAR=v",
            "--memory=2g",
        ] {
            assert!(args.contains(needle), "{needle:?} not in {args}");
        }
        assert!(args.ends_with("localhost/pm/pm-x:1 --a 1"), "{args}");
        // The image's unprivileged user can write the step's outputs.
        use std::os::unix::fs::PermissionsExt;
        for d in [&local, &local.join("artifacts/out")] {
            assert_eq!(std::fs::metadata(d).unwrap().permissions().mode() & 0o777, 0o777, "{}", d.display());
        }
    }

    #[tokio::test]
    async fn a_resumed_run_removes_only_its_own_step_containers() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let engine = dir.path().join("engine");
        // A stand-in engine: `ps` lists containers of this run, of another run whose id starts
        // like this one's, and others; every call is logged.
        std::fs::write(
            &engine,
            format!(
                "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = ps ]; then printf '%s\\n' pm-train-1-features-1 pm-train-1-train-2 \\\n  pm-train-1-train-x pm-train-1-other-1 pm-train-10-train-1 pm-serve-sim-7 pm-train-1-features-; fi\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&engine, std::fs::Permissions::from_mode(0o755)).unwrap();
        let engine = engine.to_str().unwrap();
        let gone = remove_leftover_containers(engine, "train-1", ["features", "train"].into_iter()).await.unwrap();
        assert_eq!(gone, ["pm-train-1-features-1", "pm-train-1-train-2"]);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            calls.lines().collect::<Vec<_>>(),
            ["ps --all --format {{.Names}}", "rm --force --time 0 pm-train-1-features-1 pm-train-1-train-2"]
        );
        // Nothing of the run left: no `rm` at all.
        std::fs::remove_file(&log).unwrap();
        assert!(remove_leftover_containers(engine, "train-2", ["train"].into_iter()).await.unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
        // An engine that fails is an error, not an empty list.
        let err = remove_leftover_containers("/bin/false", "train-1", ["train"].into_iter()).await.unwrap_err();
        assert!(format!("{err:#}").contains("/bin/false ps"), "{err:#}");
    }

    #[test]
    fn every_path_of_a_run_is_built_from_plain_segments() {
        assert_eq!(segment("train").unwrap(), "train");
        for bad in ["", ".", "..", "a/b", "/abs", "a\\b", "a\0b", "../../etc"] {
            assert!(segment(bad).is_err(), "{bad:?}");
        }
        assert_eq!(store_path(&["runs", "r-1", "train", "model"]).unwrap(), "runs/r-1/train/model");
        assert!(store_path(&["runs", "../../x"]).is_err());
        assert!(local_path(Path::new("/w"), &["runs", "/etc"]).is_err());
        // A step that escaped validation still cannot name a place outside its folders.
        let p = crate::graph::load(
            "name: c\ncomponents:\n  x: {image: i, command: [c], outputs: {o: {type: Dataset}}}\nsteps:\n  s: {component: x}\n",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = scratch_options(dir.path());
        let places = StepPlaces::new(&opts, "r1", &p.steps["s"]).unwrap();
        assert_eq!(places.local, dir.path().join("work/runs/r1/s"));
        assert_eq!(places.outputs["o"].path, dir.path().join("work/runs/r1/s/artifacts/o/o"));
        assert!(places.outputs["o"].uri.ends_with("/root/runs/r1/s/o"), "{}", places.outputs["o"].uri);
        let mut evil = p.steps["s"].clone();
        evil.name = "../../../../x".into();
        assert!(StepPlaces::new(&opts, "r1", &evil).is_err());
        evil.name = "s".into();
        evil.outputs.insert("../../etc/passwd".into(), Type::String);
        assert!(StepPlaces::new(&opts, "r1", &evil).is_err());
        assert!(StepPlaces::new(&opts, "../r1", &p.steps["s"]).is_err());
    }

    fn scratch_options(dir: &Path) -> LocalOptions {
        LocalOptions {
            root: Store::open(dir.join("root").to_str().unwrap()).unwrap(),
            bin_dir: dir.into(),
            parallelism: 1,
            params: BTreeMap::new(),
            resume: None,
            use_cache: true,
            work_dir: dir.join("work"),
            kill_grace_secs: 1,
            env: BTreeMap::new(),
            show_progress: false,
            runner: Runner::Process,
        }
    }

    /// A panic inside the backend (here provoked by a pipeline altered after validation) ends the
    /// run as failed with the reason in its record; it is never left `running`.
    #[tokio::test]
    async fn a_panic_in_the_backend_marks_the_run_failed() {
        let yaml = "name: c\ncomponents:\n  x: {image: i, command: [c]}\nsteps:\n  s: {component: x}\n  t: {component: x, after: [s]}\n";
        let dir = tempfile::tempdir().unwrap();
        // In a step's task: its component is gone.
        let mut p = crate::graph::load(yaml).unwrap();
        p.steps.get_mut("s").unwrap().component = "gone".into();
        let r = run(p, scratch_options(dir.path()), yaml).await.unwrap();
        assert_eq!(r.status, "failed");
        assert_eq!(r.steps["s"].status, StepStatus::Failed);
        assert!(r.steps["s"].message.as_deref().unwrap().starts_with("internal error: the step's task panicked"));
        assert_eq!(r.steps["t"].status, StepStatus::NotRun);
        let stored =
            load_run(&Store::open(dir.path().join("root").to_str().unwrap()).unwrap(), &r.run_id).await.unwrap();
        assert_eq!(stored, r);
        // In the scheduler itself: the order names a step that does not exist.
        let mut p = crate::graph::load(yaml).unwrap();
        p.order.push("ghost".into());
        let r = run(p, scratch_options(dir.path()), yaml).await.unwrap();
        assert_eq!(r.status, "failed");
        assert!(r.message.as_deref().unwrap().starts_with("internal error: the scheduler panicked"), "{:?}", r.message);
    }

    #[tokio::test]
    async fn resuming_a_run_id_that_is_not_a_plain_name_is_refused() {
        let p =
            crate::graph::load("name: c\ncomponents:\n  x: {image: i, command: [c]}\nsteps:\n  s: {component: x}\n")
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = LocalOptions { resume: Some("../../outside".into()), ..scratch_options(dir.path()) };
        let e = run(p, opts, "").await.unwrap_err();
        assert!(format!("{e:#}").contains("\"../../outside\" cannot name a file or folder of a run"), "{e:#}");
    }

    #[test]
    fn output_parsing_and_comparisons() {
        assert_eq!(parse_output("true\n", Type::Bool), Ok(Value::Bool(true)));
        assert_eq!(parse_output("0.93", Type::Float), Ok(json!(0.93)));
        assert!(parse_output("yes", Type::Bool).is_err());
        assert!(compare(&json!(true), CmpOp::Eq, &json!(true)));
        assert!(!compare(&json!(false), CmpOp::Eq, &json!(true)));
        assert!(compare(&json!(0.8), CmpOp::Ge, &json!(0.75)));
        assert!(compare(&json!(3), CmpOp::Lt, &json!(3.5)));
        assert!(!compare(&json!("a"), CmpOp::Gt, &json!(1)));
    }
}
