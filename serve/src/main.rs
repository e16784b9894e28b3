//! `pm-serve`: serves the registry's active model over HTTP.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_serve::model::{InputRules, ModelSource, RiskBands};
use pm_serve::server::{RunOptions, serve, shutdown_signal};
use pm_serve::{AppState, ServeConfig};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Serve failure predictions from the registry's ACTIVE model (hot-swapped on promotion and
/// rollback), with features computed from each machine's buffered telemetry exactly as in
/// training.
#[derive(Debug, Parser)]
#[command(
    name = "pm-serve",
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true,
    after_help = "Logging: RUST_LOG (default info); PM_LOG_FORMAT=text (default) or json (one object per line with severity, message and time, for Cloud Logging)."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Registry root (the model's registry is <root>/<model-name>), e.g. s3://bucket/registry.
    #[arg(long, env = "PM_REGISTRY_URI", required_unless_present = "bundle_uri")]
    registry_uri: Option<String>,
    /// Serve one Model artifact (a folder with bundle.json) instead of watching a registry;
    /// Vertex AI passes the model's artifact copy as AIP_STORAGE_URI.
    #[arg(long, env = "AIP_STORAGE_URI", conflicts_with = "registry_uri")]
    bundle_uri: Option<String>,
    #[arg(long, env = "PM_MODEL_NAME", default_value = "pm-failure")]
    model_name: String,
    #[arg(long, env = "PM_HOST", default_value = "0.0.0.0")]
    host: String,
    /// Vertex AI sets AIP_HTTP_PORT.
    #[arg(long, env = "AIP_HTTP_PORT", default_value_t = 8080)]
    port: u16,
    /// Extra readiness route (Vertex AI's AIP_HEALTH_ROUTE).
    #[arg(long, env = "AIP_HEALTH_ROUTE")]
    health_route: Option<String>,
    /// Extra predict route taking {"instances": [...]} (Vertex AI's AIP_PREDICT_ROUTE).
    #[arg(long, env = "AIP_PREDICT_ROUTE")]
    predict_route: Option<String>,
    /// Seconds between polls of the registry.
    #[arg(long, env = "PM_POLL_INTERVAL_SECS", default_value_t = 2.0)]
    poll_interval_secs: f64,
    /// Give up a poll of the model source after this many seconds (reported in /health and the
    /// metrics; the served model stays).
    #[arg(long, env = "PM_POLL_TIMEOUT_SECS", default_value_t = 15.0)]
    poll_timeout_secs: f64,
    /// Most items in one /predict/batch, Vertex or v2 request.
    #[arg(long, env = "PM_MAX_BATCH", default_value_t = 100)]
    max_batch: usize,
    /// Risk levels: 'auto' (MEDIUM from half the model's threshold, HIGH from the threshold) or
    /// 'MEDIUM,HIGH' cut points, e.g. 0.3,0.7.
    #[arg(long, env = "PM_RISK_BANDS", default_value = "auto")]
    risk_bands: RiskBands,
    /// Physical bounds of a sensor, repeatable: NAME=MIN:MAX, replacing the bounds the model's
    /// data contract gives that sensor (the ones ingest checked the training data against).
    #[arg(long = "bound", value_parser = parse_bound)]
    bounds: Vec<(String, f64, f64)>,
    /// Hours of telemetry kept per machine (at least what the model's windows need).
    #[arg(long, env = "PM_RETENTION_HOURS", default_value_t = 168)]
    retention_hours: u32,
    #[arg(long, env = "PM_MAX_MACHINES", default_value_t = 100_000)]
    max_machines: usize,
    /// Largest request body.
    #[arg(long, env = "PM_BODY_LIMIT_BYTES", default_value_t = 4 << 20)]
    body_limit_bytes: usize,
    #[arg(long, env = "PM_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Close a connection that has not sent a whole request header within this many seconds
    /// (slow or stalled clients); an idle keep-alive connection is closed after it too.
    #[arg(long, env = "PM_HEADER_READ_TIMEOUT_SECS", default_value_t = 10.0, value_parser = positive_seconds)]
    header_read_timeout_secs: f64,
    /// Prediction/telemetry requests handled at once; more are refused with 503 + Retry-After.
    #[arg(long, env = "PM_MAX_INFLIGHT", default_value_t = 512)]
    max_inflight: usize,
    /// Rows in the drift window (PSI sample).
    #[arg(long, env = "PM_DRIFT_WINDOW", default_value_t = 2_000)]
    drift_window: usize,
    /// Record one prediction in N in the drift window (1 = every prediction).
    #[arg(long, env = "PM_DRIFT_SAMPLE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    drift_sample: u32,
    /// Prime the fleet state from a raw data set (the five CSVs) at start.
    #[arg(long, env = "PM_PRIME_FROM")]
    prime_from: Option<String>,
    /// Async worker threads (default: one per core).
    #[arg(long, env = "PM_WORKERS")]
    workers: Option<usize>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Probe a running pm-serve (the container's HEALTHCHECK): exit 0 when GET <path> on
    /// 127.0.0.1:<port> answers 200 within the timeout, 1 otherwise. No shell or curl needed.
    Healthcheck {
        /// The server's port (the same variable as the server's).
        #[arg(long, env = "AIP_HTTP_PORT", default_value_t = 8080)]
        port: u16,
        /// `/health` (liveness) or `/ready` (a model is loaded).
        #[arg(long, default_value = "/health")]
        path: String,
        #[arg(long, default_value_t = 2_000)]
        timeout_ms: u64,
    },
}

/// One HTTP/1.0 GET over a plain socket: the status code.
fn probe(port: u16, path: &str, timeout: Duration) -> Result<u16> {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let k = s.read(&mut head[n..]).context("reading the answer")?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ').nth(1).and_then(|c| c.parse().ok()).with_context(|| format!("not an HTTP answer: {line:?}"))
}

fn healthcheck(port: u16, path: &str, timeout_ms: u64) -> ExitCode {
    match probe(port, path, Duration::from_millis(timeout_ms)) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(code) => {
            eprintln!("pm-serve healthcheck: GET {path} answered {code}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pm-serve healthcheck: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn parse_bound(s: &str) -> Result<(String, f64, f64), String> {
    let (name, range) = s.split_once('=').ok_or_else(|| format!("expected NAME=MIN:MAX, got {s:?}"))?;
    let (lo, hi) = range.split_once(':').ok_or_else(|| format!("expected NAME=MIN:MAX, got {s:?}"))?;
    let lo: f64 = lo.trim().parse().map_err(|_| format!("{lo:?} is not a number"))?;
    let hi: f64 = hi.trim().parse().map_err(|_| format!("{hi:?} is not a number"))?;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(format!("bounds of {name} must be finite with MIN < MAX, got {lo}:{hi}"));
    }
    Ok((name.trim().to_string(), lo, hi))
}

/// Seconds above 0 and at most a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("expected seconds above 0 and at most 86400, got {s:?}")),
    }
}

fn config(args: &Args) -> Result<(ServeConfig, RunOptions)> {
    for r in args.health_route.iter().chain(&args.predict_route) {
        pm_serve::routes::check_route(r).map_err(anyhow::Error::msg)?;
    }
    if args.max_batch == 0 {
        bail!("--max-batch must be at least 1");
    }
    let mut bounds: Vec<(String, f64, f64)> = Vec::new();
    for b in &args.bounds {
        bounds.retain(|(n, _, _)| *n != b.0);
        bounds.push(b.clone());
    }
    let cfg = ServeConfig {
        model_name: args.model_name.clone(),
        max_batch: args.max_batch,
        risk: args.risk_bands,
        rules: InputRules { bounds, drift_window: args.drift_window, drift_sample: args.drift_sample },
        retention_hours: args.retention_hours,
        max_machines: args.max_machines,
        body_limit_bytes: args.body_limit_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms),
        max_inflight: args.max_inflight,
        vertex_health_route: args.health_route.clone(),
        vertex_predict_route: args.predict_route.clone(),
    };
    let source = match (&args.registry_uri, &args.bundle_uri) {
        (Some(r), _) => ModelSource::Registry(Registry::new(&Store::open(r)?, &args.model_name)),
        (None, Some(b)) => ModelSource::Bundle(Store::open(b)?),
        (None, None) => bail!("give --registry-uri (PM_REGISTRY_URI) or --bundle-uri (AIP_STORAGE_URI)"),
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .or_else(|_| format!("[{}]:{}", args.host, args.port).parse())
        .with_context(|| format!("--host {:?} is not an IP address", args.host))?;
    let opts = RunOptions {
        addr,
        source,
        poll_interval: pm_serve::routes::poll_interval(args.poll_interval_secs),
        poll_timeout: pm_serve::routes::poll_interval(args.poll_timeout_secs),
        prime_from: args.prime_from.clone(),
        header_read_timeout: Duration::from_secs_f64(args.header_read_timeout_secs),
    };
    Ok((cfg, opts))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Healthcheck { port, path, timeout_ms }) = &args.command {
        return healthcheck(*port, path, *timeout_ms);
    }
    if let Err(e) = pm_core::cli::init_tracing() {
        eprintln!("pm-serve: {e:#}");
        return ExitCode::from(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pm-serve: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run = async {
        let (cfg, opts) = config(&args)?;
        let state = AppState::new(cfg, &opts.source.url())?;
        serve(state, opts, shutdown_signal()).await
    };
    match rt.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => pm_core::cli::failed("pm-serve", &e),
    }
}
