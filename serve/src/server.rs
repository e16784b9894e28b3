//! Running a server: bind, watch the model source, prime the fleet state, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use pm_core::artifacts::store::Store;
use pm_core::data::contract::{Dataset, FileKind};
use pm_core::data::ingest::{BadRowPolicy, InputFile, ReadOptions, read_dataset};
use pm_core::data::time::HOUR;

use crate::input::{Event, MachineMeta, Reading, TelemetryBatch};
use crate::model::{Loader, ModelSource};
use crate::state::AppState;

/// How to run (beyond [`crate::state::ServeConfig`]).
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub addr: SocketAddr,
    pub source: ModelSource,
    pub poll_interval: Duration,
    /// A poll not finished by then is given up (and reported) until the next one.
    pub poll_timeout: Duration,
    /// Raw data set (the five CSVs) whose latest hours prime the fleet state at start.
    pub prime_from: Option<String>,
    /// A connection that has not sent a request's whole header within this time is closed (a
    /// slow or stalled client, slowloris); an idle keep-alive connection too.
    pub header_read_timeout: Duration,
}

/// The default of [`RunOptions::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` resolves; then stops accepting, lets requests in flight finish, and
/// stops watching the registry.
pub async fn serve(
    state: AppState,
    opts: RunOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.addr).await.with_context(|| format!("binding {}", opts.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(addr = %local, source = %opts.source.url(), "pm-serve listening.");
    if opts.prime_from.is_some() {
        state.priming.store(true, Ordering::Release);
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(watch(state.clone(), opts.clone(), stop_rx));
    let app = crate::routes::app(state.clone());
    accept(listener, app, opts.header_read_timeout, async move {
        shutdown.await;
        tracing::info!("Shutting down: finishing requests in flight.");
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = watcher.await;
    let m = &state.metrics;
    let served: u64 = ["LOW", "MEDIUM", "HIGH"].iter().map(|r| m.predictions.with_label_values(&[r]).get()).sum();
    tracing::info!(
        predictions = served,
        uptime_secs = state.started.elapsed().as_secs(),
        model = state.slot.get().map(|m| m.version.clone()).as_deref().unwrap_or("none"),
        "pm-serve stopped."
    );
    Ok(())
}

/// Serves HTTP/1.1 connections on `listener` with `app` until `shutdown` resolves, then stops
/// accepting, asks every connection to close after its request in flight, and waits for them.
///
/// axum's own `serve` sets no timer on hyper's connections, so a client that trickles a header
/// (or never finishes one) held its connection open indefinitely; here each connection has hyper's
/// header read timeout.
pub async fn accept(
    listener: tokio::net::TcpListener,
    app: crate::layers::App,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (signal_tx, signal_rx) = tokio::sync::watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Every connection task holds a receiver; all are gone once every connection has closed.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
    loop {
        let io = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((io, _)) => io,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let service = HyperApp(app.clone());
        let conn = http.serve_connection(TokioIo::new(io), service);
        let (signal_tx, close_rx) = (signal_tx.clone(), close_rx.clone());
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let mut stopping = std::pin::pin!(signal_tx.closed());
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("connection ended: {e}");
                        }
                        break;
                    }
                    () = &mut stopping => conn.as_mut().graceful_shutdown(),
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

/// An error of `accept`: a connection reset before it was accepted is skipped; anything else
/// (out of file descriptors, for one) is logged and waited out for a second rather than spun on.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!("accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// The application as a hyper service: each request's body as axum's.
#[derive(Clone)]
struct HyperApp(crate::layers::App);

impl hyper::service::Service<axum::http::Request<hyper::body::Incoming>> for HyperApp {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = crate::layers::AppFuture;

    fn call(&self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        tower_service::Service::call(&mut self.0.clone(), req.map(axum::body::Body::new))
    }
}

/// Polls the model source until told to stop; primes the fleet after the first model loads.
async fn watch(state: AppState, opts: RunOptions, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut loader = Loader::new(opts.source.clone());
    let mut primed = opts.prime_from.is_none();
    loop {
        state.poll_within(&mut loader, opts.poll_timeout).await;
        if !primed && state.slot.get().is_some() {
            primed = true;
            if let Some(url) = &opts.prime_from
                && let Err(e) = prime(&state, url).await
            {
                tracing::error!("Priming the fleet state from {url} failed (serving without it): {e:#}");
            }
            state.priming.store(false, Ordering::Release);
        }
        if let ModelSource::Bundle(_) = opts.source
            && state.slot.get().is_some()
        {
            // A bundle URI is loaded once.
            let _ = stop.changed().await;
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.poll_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Reads a raw data set and feeds each machine's latest history (as much as the buffers keep)
/// into the fleet state, as if it had arrived through `/telemetry`.
pub async fn prime(state: &AppState, url: &str) -> Result<()> {
    let Some(model) = state.slot.get() else { return Ok(()) };
    let store = Store::open(url)?;
    let contract = model.bundle.feature_spec.contract.clone();
    let mut files = Vec::new();
    for kind in FileKind::ALL {
        let name = contract.file_name(kind);
        // pm-serve links no Parquet reader: prime it from CSV files (or from the pipeline's data).
        if contract.files.get(kind).format() == pm_core::data::contract::FileFormat::Parquet {
            anyhow::bail!("--prime-from reads CSV files; the contract's {} file {name} is Parquet", kind.name());
        }
        let bytes = store.get(name).await.with_context(|| format!("reading {}", store.url_of(name)))?;
        files.push((kind, store.url_of(name), bytes));
    }
    let keep_hours = i64::from(state.cfg.retention_hours.max(model.bundle.feature_spec.telemetry_history_hours()));
    let st = state.clone();
    let spec = model.bundle.feature_spec.clone();
    let started = std::time::Instant::now();
    let (applied, n) = tokio::task::spawn_blocking(move || -> Result<_> {
        let inputs: Vec<InputFile<'_>> =
            files.iter().map(|(kind, name, bytes)| InputFile::csv(*kind, name, bytes)).collect();
        let (ds, _) = read_dataset(&inputs, &contract, &ReadOptions::new(BadRowPolicy::Fail))?;
        let batch = latest_history(&ds, keep_hours);
        let n = batch.len();
        Ok((st.fleet.apply(&spec, &batch), n))
    })
    .await
    .context("priming task failed")??;
    tracing::info!(
        url,
        items = n,
        readings = applied.accepted.readings,
        machines = state.fleet.len(),
        rejected = applied.rejected.len(),
        secs = started.elapsed().as_secs_f64(),
        "Primed the fleet state."
    );
    Ok(())
}

/// Each machine's readings and errors of its last `hours`, every maintenance record, and the
/// machines table, as a telemetry batch.
pub fn latest_history(ds: &Dataset, hours: i64) -> TelemetryBatch {
    let mut batch = TelemetryBatch::default();
    let mut cutoff = std::collections::HashMap::new();
    for (m, range) in ds.telemetry.machine_ranges() {
        let last = ds.telemetry.time[range.end - 1];
        let from = last - hours * HOUR;
        cutoff.insert(m, from);
        for i in range.filter(|&i| ds.telemetry.time[i] > from) {
            batch.readings.push(Reading {
                machine: Some(m),
                time: ds.telemetry.time[i],
                values: ds.telemetry.sensors.iter().map(|col| col[i]).collect(),
            });
        }
    }
    for i in 0..ds.errors.len() {
        let m = ds.errors.machine[i];
        if cutoff.get(&m).is_some_and(|&from| ds.errors.time[i] > from) {
            batch.errors.push(Event { machine: Some(m), time: ds.errors.time[i], kind: ds.errors.kind[i] });
        }
    }
    for i in 0..ds.maint.len() {
        batch.maint.push(Event { machine: Some(ds.maint.machine[i]), time: ds.maint.time[i], kind: ds.maint.kind[i] });
    }
    for i in 0..ds.machines.len() {
        batch.machines.push(MachineMeta {
            machine: Some(ds.machines.id[i]),
            model: ds.machines.model[i],
            age: ds.machines.age[i],
        });
    }
    batch
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
