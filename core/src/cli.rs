//! What every step binary shares: logging, the async runtime, exit codes, progress, and KFP
//! output parameters.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Chooses the log format: `text` (the default) or `json`.
pub const LOG_FORMAT_ENV: &str = "PM_LOG_FORMAT";

/// Logs to stderr through `tracing`; `RUST_LOG` overrides the default `info`. Text, in colour only
/// on a terminal (and not under `NO_COLOR`): a log file, CI output or `podman logs` get plain
/// text. With `PM_LOG_FORMAT=json`, one JSON object per line with `severity`, `message` and `time`
/// (the fields Cloud Logging reads from a container's output on Vertex AI or GKE) and the event's
/// own fields. Refuses any other format.
pub fn init_tracing() -> Result<()> {
    let json = match std::env::var(LOG_FORMAT_ENV) {
        Err(std::env::VarError::NotPresent) => false,
        Ok(v) if v.is_empty() || v == "text" => false,
        Ok(v) if v == "json" => true,
        Ok(v) => anyhow::bail!("{LOG_FORMAT_ENV}={v:?}: expected text or json"),
        Err(e) => anyhow::bail!("{LOG_FORMAT_ENV}: {e}"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        fmt.event_format(JsonLine).try_init()
    } else {
        fmt.with_target(false)
            .with_ansi(use_colour(std::io::IsTerminal::is_terminal(&std::io::stderr()), std::env::var_os("NO_COLOR")))
            .try_init()
    };
    Ok(())
}

/// One event as one JSON line (see [`init_tracing`]).
struct JsonLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let severity = match *meta.level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            _ => "DEBUG",
        };
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        let mut line = serde_json::Map::new();
        line.insert("severity".into(), severity.into());
        line.insert("time".into(), crate::data::time::now_rfc3339_micros().into());
        line.insert("message".into(), fields.0.remove("message").unwrap_or_else(|| "".into()));
        line.insert("target".into(), meta.target().into());
        for (k, v) in fields.0 {
            // An event field never hides one of the four above.
            line.entry(k).or_insert(v);
        }
        writeln!(w, "{}", serde_json::Value::Object(line))
    }
}

/// An event's fields as JSON values (numbers and booleans stay typed; the rest as text).
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // A non-finite number is not JSON: as text.
        let v = serde_json::Number::from_f64(value).map_or_else(|| value.to_string().into(), serde_json::Value::Number);
        self.0.insert(field.name().into(), v);
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// Colours on a terminal unless `NO_COLOR` is set to something (<https://no-color.org>).
fn use_colour(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Runs a step's main future. On failure it logs the full error chain once and exits with the
/// code [`exit_code_for`] gives: whether a retry could help.
///
/// SIGTERM and SIGINT end the step at once with 143 / 130 (128 + signal): a container's PID 1
/// that installs no handler ignores SIGTERM, so `podman stop` or a Kubernetes pod deletion would
/// otherwise wait out the grace period. Exiting mid-step is safe because every artifact write is
/// atomic (nothing partial becomes visible) and a rerun resumes from the cache.
pub fn run_main<F: Future<Output = Result<()>>>(name: &str, fut: F) -> ExitCode {
    run_main_with(name, fut, || {})
}

/// [`run_main`], calling `on_signal` before exiting on SIGTERM/SIGINT (the orchestrator stops the
/// steps it started).
pub fn run_main_with<F: Future<Output = Result<()>>>(name: &str, fut: F, on_signal: fn()) -> ExitCode {
    if let Err(e) = init_tracing() {
        eprintln!("{name}: {e:#}");
        return ExitCode::from(2);
    }
    if let Err(e) = stop_with_parent() {
        eprintln!("{name}: {e}");
        return ExitCode::from(143);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.spawn(exit_on_signal(name.to_string(), on_signal));
    match step_timeout() {
        Ok(Some(secs)) => {
            rt.spawn(exit_at_timeout(name.to_string(), secs));
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = rt.block_on(fut);
    let signalled = SIGNALLED.load(std::sync::atomic::Ordering::SeqCst);
    if signalled != 0 {
        // The work ended because of the signal (its steps were stopped): exit as the signal says.
        eprintln!("{name}: stopped by a signal");
        return ExitCode::from(signalled);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(name, &e),
    }
}

/// Reports a binary's failure once and gives the exit code it calls for ([`exit_code_for`]).
pub fn failed(name: &str, e: &anyhow::Error) -> ExitCode {
    let code = exit_code_for(e);
    report_error(name, e, code);
    ExitCode::from(code)
}

/// Prints a failure once: through `tracing` when it shows errors (so that JSON logs stay one
/// object per line), else on stderr.
fn report_error(name: &str, e: &anyhow::Error, code: u8) {
    let kind = match code {
        exit::BAD_INPUT => " (bad input: not retried)",
        exit::ENVIRONMENT => " (the machine refused: not retried)",
        _ => "",
    };
    if tracing::enabled!(tracing::Level::ERROR) {
        tracing::error!(exit_code = code, "{name}: {e:#}{kind}");
    } else {
        eprintln!("{name}: error: {e:#}{kind}");
    }
}

/// The exit codes of every binary, and what the local orchestrator does with each (README,
/// "Failure model"). Codes that say "not retried" mean the same inputs would fail the same way.
pub mod exit {
    /// A failure that may be transient (a store outage, a crash): retried.
    pub const FAILED: u8 = 1;
    /// Bad command-line arguments (clap's own code): not retried.
    pub const USAGE: u8 = 2;
    /// The inputs break a contract — data, a spec, a parameter value, a corrupt artifact: not
    /// retried (sysexits' EX_DATAERR).
    pub const BAD_INPUT: u8 = 65;
    /// The machine refused — no space left, permission denied, a read-only file system: not
    /// retried (sysexits' EX_IOERR).
    pub const ENVIRONMENT: u8 = 74;
    /// The step ran out of its time (`PM_STEP_TIMEOUT_SECS`), as `timeout(1)` says: retried.
    pub const TIMED_OUT: u8 = 124;

    /// Whether an attempt that exited with `code` is worth retrying.
    pub fn retryable(code: i32) -> bool {
        ![USAGE, BAD_INPUT, ENVIRONMENT].map(i32::from).contains(&code)
    }
}

/// Exit code of a step that ran out of time (as `timeout(1)`'s).
pub const TIMED_OUT: u8 = exit::TIMED_OUT;

/// Marks an error as caused by the inputs (an argument, a spec, the data): the step exits with
/// [`exit::BAD_INPUT`]. Displays as the error it wraps.
#[derive(Debug)]
pub struct BadInput(pub anyhow::Error);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for BadInput {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// `result.bad_input()?`: see [`BadInput`].
pub trait BadInputExt<T> {
    fn bad_input(self) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> BadInputExt<T> for std::result::Result<T, E> {
    fn bad_input(self) -> Result<T> {
        self.map_err(|e| anyhow::Error::new(BadInput(e.into())))
    }
}

/// The exit code for a failure: [`exit::BAD_INPUT`] when anything in its chain is a refusal of
/// the inputs (a [`BadInput`], a data, spec, split, parameter or bundle error, a corrupt
/// artifact), [`exit::ENVIRONMENT`] when the machine refused (disk full, permissions), else
/// [`exit::FAILED`].
pub fn exit_code_for(e: &anyhow::Error) -> u8 {
    use crate::artifacts::store::StoreError;
    let bad = |c: &(dyn std::error::Error + 'static)| {
        c.is::<BadInput>()
            || c.is::<crate::data::ingest::DataError>()
            || c.is::<crate::data::contract::ContractError>()
            || c.is::<crate::features::SpecError>()
            || c.is::<crate::learn::split::SplitError>()
            || c.is::<crate::learn::ParamError>()
            || c.is::<crate::artifacts::bundle::BundleError>()
            || c.is::<crate::data::time::TimeError>()
            || matches!(c.downcast_ref::<crate::learn::train::TrainError>(), Some(t) if !matches!(t, crate::learn::train::TrainError::Shape { .. }))
            || matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Corrupt { .. } | StoreError::Url { .. }))
    };
    let environment = |c: &(dyn std::error::Error + 'static)| {
        matches!(c.downcast_ref::<StoreError>(), Some(StoreError::Refused { .. }))
            || c.downcast_ref::<std::io::Error>().is_some_and(crate::artifacts::store::refused_by_the_machine)
    };
    if e.chain().any(environment) {
        exit::ENVIRONMENT
    } else if e.chain().any(bad) {
        exit::BAD_INPUT
    } else {
        exit::FAILED
    }
}

/// The environment variable through which a parent (the local orchestrator) gives a step its
/// process id, asking the step to stop when it dies.
pub const PARENT_PID_ENV: &str = "PM_PARENT_PID";

/// A step started by the local orchestrator receives SIGTERM when the orchestrator dies, even by
/// SIGKILL (which it cannot relay), so that no step outlives its run: Linux's parent-death signal.
/// Refuses to start if the parent already died. Nothing when not started so (a container, a
/// shell).
fn stop_with_parent() -> Result<()> {
    let Some(parent) = std::env::var(PARENT_PID_ENV).ok().and_then(|p| p.parse::<u32>().ok()) else {
        return Ok(());
    };
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)
        .map_err(|e| anyhow::anyhow!("cannot ask for a signal at the orchestrator's exit: {e}"))?;
    // The parent may have died before the request: then the step has been re-parented.
    if std::os::unix::process::parent_id() != parent {
        anyhow::bail!("the orchestrator that started this step ({PARENT_PID_ENV}={parent}) is gone; not starting");
    }
    Ok(())
}

/// The environment variable that gives a step its own time limit, in seconds: the Kubeflow and
/// Vertex AI specs set it from the pipeline's `timeout_seconds` (their IR has no task timeout), so
/// that a hung step fails there as it does under the local orchestrator.
pub const STEP_TIMEOUT_ENV: &str = "PM_STEP_TIMEOUT_SECS";

fn step_timeout() -> Result<Option<u64>> {
    match std::env::var(STEP_TIMEOUT_ENV) {
        Err(_) => Ok(None),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(Some(secs)),
            _ => anyhow::bail!("{STEP_TIMEOUT_ENV}={v:?} is not a positive number of seconds"),
        },
    }
}

/// Ends the step with [`TIMED_OUT`] after `secs` (safe mid-step: artifact writes are atomic).
async fn exit_at_timeout(name: String, secs: u64) {
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    tracing::error!("{name}: timed out after {secs} s ({STEP_TIMEOUT_ENV}); stopping");
    eprintln!("{name}: timed out after {secs} s ({STEP_TIMEOUT_ENV})");
    std::process::exit(i32::from(TIMED_OUT));
}

/// The exit code a received SIGTERM/SIGINT calls for (0: none received).
static SIGNALLED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Whether SIGTERM or SIGINT was received (long-running work stops starting new things).
pub fn stopping() -> bool {
    SIGNALLED.load(std::sync::atomic::Ordering::SeqCst) != 0
}

/// Waits on a worker thread, so it fires even while the step computes on the main thread.
async fn exit_on_signal(name: String, on_signal: fn()) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return;
    };
    let (sig, code) = tokio::select! {
        _ = term.recv() => ("SIGTERM", 143u8),
        _ = int.recv() => ("SIGINT", 130u8),
    };
    SIGNALLED.store(code, std::sync::atomic::Ordering::SeqCst);
    tracing::warn!("{name}: {sig} received; stopping (no partial artifact is visible, a rerun resumes)");
    tokio::task::spawn_blocking(on_signal).await.ok();
    eprintln!("{name}: stopped by {sig}");
    std::process::exit(i32::from(code));
}

/// Writes a KFP output parameter: the bare value into the file KFP named.
pub fn write_output_parameter(path: Option<&Path>, value: impl std::fmt::Display) -> Result<()> {
    if let Some(p) = path {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(p, value.to_string()).with_context(|| format!("writing output parameter {}", p.display()))?;
    }
    Ok(())
}

/// A spinner with a message per phase; hidden when stderr is not a terminal.
pub fn progress(step: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_prefix(step.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_say_whether_a_retry_can_help() {
        let data = crate::data::ingest::DataError {
            file: "PdM_telemetry.csv".into(),
            line: Some(3),
            numbering: Default::default(),
            column: None,
            message: "bad".into(),
        };
        let full = std::io::Error::from_raw_os_error(28);
        let refused = crate::artifacts::store::StoreError::Refused { url: "file:///x".into(), message: "full".into() };
        let outage = crate::artifacts::store::StoreError::Backend { url: "s3://b/x".into(), message: "timeout".into() };
        let cases: [(anyhow::Error, u8); 6] = [
            (anyhow::Error::new(data).context("reading the telemetry file"), exit::BAD_INPUT),
            (Err::<(), _>(anyhow::anyhow!("gates: 1.5")).bad_input().unwrap_err(), exit::BAD_INPUT),
            (anyhow::Error::new(full).context("writing"), exit::ENVIRONMENT),
            (anyhow::Error::new(refused), exit::ENVIRONMENT),
            (anyhow::Error::new(outage).context("reading"), exit::FAILED),
            (anyhow::anyhow!("something else"), exit::FAILED),
        ];
        for (e, code) in cases {
            assert_eq!(exit_code_for(&e), code, "{e:#}");
            assert_eq!(exit::retryable(i32::from(code)), code == exit::FAILED, "{code}");
        }
        // A marked error reads as the error it marks.
        let marked = Err::<(), _>(anyhow::anyhow!("inner").context("outer")).bad_input().unwrap_err();
        assert_eq!(format!("{marked:#}"), "outer: inner");
    }
}
