//! `pm-serve`: serves the registry's active model over HTTP.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use pm_core::registry::Registry;
use pm_core::store::Store;
use pm_serve::model::{InputRules, ModelSource, RiskBands};
use pm_serve::server::{RunOptions, serve, shutdown_signal};
use pm_serve::{AppState, ServeConfig};

/// Serve failure predictions from the registry's ACTIVE model (hot-swapped on promotion and
/// rollback), with features computed from each machine's buffered telemetry exactly as in
/// training.
#[derive(Debug, Parser)]
#[command(name = "pm-serve", version)]
struct Args {
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
    /// Most items in one /predict/batch, Vertex or v2 request.
    #[arg(long, env = "PM_MAX_BATCH", default_value_t = 100)]
    max_batch: usize,
    /// Risk levels: 'auto' (MEDIUM from half the model's threshold, HIGH from the threshold) or
    /// 'MEDIUM,HIGH' cut points, e.g. 0.3,0.7.
    #[arg(long, env = "PM_RISK_BANDS", default_value = "auto")]
    risk_bands: RiskBands,
    /// Physical bounds of a sensor, repeatable: NAME=MIN:MAX (defaults for volt, rotate,
    /// pressure, vibration; give one to replace that sensor's).
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
    /// Prediction/telemetry requests handled at once; more are refused with 503 + Retry-After.
    #[arg(long, env = "PM_MAX_INFLIGHT", default_value_t = 512)]
    max_inflight: usize,
    /// Predictions in the drift window (PSI sample).
    #[arg(long, default_value_t = 2_000)]
    drift_window: usize,
    /// Prime the fleet state from a raw data set (the five CSVs) at start.
    #[arg(long, env = "PM_PRIME_FROM")]
    prime_from: Option<String>,
    /// Async worker threads (default: one per core).
    #[arg(long, env = "PM_WORKERS")]
    workers: Option<usize>,
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

fn config(args: &Args) -> Result<(ServeConfig, RunOptions)> {
    for r in args.health_route.iter().chain(&args.predict_route) {
        pm_serve::routes::check_route(r).map_err(anyhow::Error::msg)?;
    }
    if args.max_batch == 0 {
        bail!("--max-batch must be at least 1");
    }
    let mut bounds = pm_serve::state::default_bounds();
    for b in &args.bounds {
        bounds.retain(|(n, _, _)| *n != b.0);
        bounds.push(b.clone());
    }
    let cfg = ServeConfig {
        model_name: args.model_name.clone(),
        max_batch: args.max_batch,
        risk: args.risk_bands,
        rules: InputRules { bounds, age_bounds: (0.0, 100.0), drift_window: args.drift_window },
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
        prime_from: args.prime_from.clone(),
    };
    Ok((cfg, opts))
}

fn main() -> ExitCode {
    let args = Args::parse();
    pm_core::cli::init_tracing();
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
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pm-serve: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
