//! The benchmark's reference: an axum server whose handler receives the request body and returns a
//! constant (no parsing, no model). `make bench-serve` measures pm-serve against it, alternately,
//! in the same run — with the same request bodies, so the reference pays the same transfer costs.
//!
//! `pm-bare <port> [busy-µs]`: with `busy-µs`, each `/predict` first keeps its worker busy that
//! long (a spin, no sleep) — the benchmark's yardstick for what a given amount of work per request
//! costs in throughput when the load generator shares the cores.

use axum::Router;
use axum::routing::{get, post};

// The same allocator as pm-serve, so the comparison measures the work, not the allocator.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ANSWER: &str = r#"{"machineID":1,"failure_probability":0.01}"#;

/// Argument `n` parsed, `default` when absent; an unreadable value is an error naming it.
fn arg<T: std::str::FromStr>(n: usize, name: &str, default: T) -> Result<T, String> {
    match std::env::args().nth(n) {
        None => Ok(default),
        Some(v) => {
            v.parse().map_err(|_| format!("pm-bare: {name} {v:?} is not a number (usage: pm-bare <port> [busy-µs])"))
        }
    }
}

fn main() -> std::process::ExitCode {
    let (port, busy_us) = match (arg::<u16>(1, "port", 8081), arg::<u64>(2, "busy-µs", 0)) {
        (Ok(p), Ok(b)) => (p, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let busy = std::time::Duration::from_micros(busy_us);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pm-bare: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let res: std::io::Result<()> = rt.block_on(async move {
        let app = Router::new()
            .route(
                "/predict",
                post(move |_body: axum::body::Bytes| async move {
                    if !busy.is_zero() {
                        let start = std::time::Instant::now();
                        while start.elapsed() < busy {
                            std::hint::spin_loop();
                        }
                    }
                    ANSWER
                }),
            )
            .route("/health", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await
    });
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pm-bare: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
