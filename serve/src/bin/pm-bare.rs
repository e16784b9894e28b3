//! The benchmark's reference: an axum server whose handler receives the request body and returns a
//! constant (no parsing, no model). `make bench-serve` measures pm-serve against it, alternately,
//! in the same run — with the same request bodies, so the reference pays the same transfer costs.
//!
//! `pm-bare <port> [busy-µs [steps-per-µs]]`: with `busy-µs`, each `/predict` first does that
//! much CPU work — a fixed number of steps of a dependent arithmetic chain, so that a preempted
//! request still does all of it (as pm-serve's work would, and as `serve/examples/window-cost.rs`
//! measures it). The benchmark's yardstick for what a given amount of work per request costs in
//! throughput when the load generator shares the cores. `pm-bare calibrate` prints the steps per
//! µs of an idle machine: the benchmark measures it once, before anything else starts, and gives
//! it to every busy instance (one calibrating itself while the others start runs slow, and its
//! work per request comes out short).

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
            v.parse().map_err(|_| format!("pm-bare: {name} {v:?} is not a number (usage: pm-bare <port> [busy-µs [steps-per-µs]] | pm-bare calibrate)"))
        }
    }
}

/// `steps` rounds of xorshift: each depends on the last, so they cannot overlap or be skipped.
fn work(steps: u64) -> u64 {
    let mut x = std::hint::black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..steps {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// Steps of [`work`] per µs here: the fastest of several timed runs (the least disturbed).
fn steps_per_us() -> u64 {
    const STEPS: u64 = 4_000_000;
    let fastest = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(work(STEPS));
            t.elapsed()
        })
        .min()
        .unwrap_or_default();
    (STEPS as f64 / fastest.as_secs_f64().max(1e-9) / 1e6).max(1.0) as u64
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("calibrate") {
        println!("{}", steps_per_us());
        return std::process::ExitCode::SUCCESS;
    }
    let args = (arg::<u16>(1, "port", 8081), arg::<u64>(2, "busy-µs", 0), arg::<u64>(3, "steps-per-µs", 0));
    let (port, busy_us, rate) = match args {
        (Ok(p), Ok(b), Ok(r)) => (p, b, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let steps = match (busy_us, rate) {
        (0, _) => 0,
        (_, 0) => busy_us.saturating_mul(steps_per_us()),
        _ => busy_us.saturating_mul(rate),
    };
    if steps > 0 {
        eprintln!("pm-bare: {busy_us} µs of work per request = {steps} steps");
    }
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
                    if steps > 0 {
                        std::hint::black_box(work(steps));
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
