//! CPU cost of one window-mode `/predict` request, in isolation (no HTTP, no other process): how
//! long pm-serve's own work takes for a given body — reading it, replaying its history into a
//! fresh buffer and scoring the row, writing the answer. `make bench-serve` prints it beside the
//! wrk numbers, to tell the server's work from the cost of sharing two cores with the load
//! generator. Each step is timed twice: with warm caches (a tight loop) and with cold ones (each
//! call after a sweep through 16 MB), the two ends of what a request finds in the server, where
//! wrk, the kernel and the other worker run between two requests. It also times reading the
//! same history as the instances of a Vertex AI body.
//!
//! Usage: `window-cost <registry-url> <body.json>` (the active model of `pm-failure`).

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::Store;
use pm_serve::body::parse_json;
use pm_serve::predict::{predict_one, score};
use pm_serve::state::{AppState, ServeConfig};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// µs per call of `f`: the median of nine rounds of `n` calls (after one round not counted), as
/// this machine's neighbours make single rounds vary by half.
fn per_call<T>(n: u32, mut f: impl FnMut() -> T) -> f64 {
    let mut round = || {
        let t = Instant::now();
        for _ in 0..n {
            black_box(f());
        }
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    round();
    let mut rounds: Vec<f64> = (0..9).map(|_| round()).collect();
    rounds.sort_by(f64::total_cmp);
    rounds[4]
}

/// µs per call of `f` with cold caches: the median of 301 calls, each after a sweep through
/// 16 MB (beyond this machine's caches). In the server, wrk, the kernel and the other worker
/// share the cores between two requests, so a request finds its data somewhere between the
/// warm caches of [`per_call`] and these.
fn per_cold_call<T>(mut f: impl FnMut() -> T) -> f64 {
    let mut sweep = vec![1u64; 2 << 20];
    let mut times: Vec<f64> = (0..301)
        .map(|_| {
            // One write per 64-byte line.
            for (i, w) in sweep.iter_mut().enumerate().step_by(8) {
                *w = w.wrapping_add(i as u64);
            }
            black_box(&sweep);
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [registry, body] = args.as_slice() else { bail!("usage: window-cost <registry-url> <body.json>") };
    let body = std::fs::read(body).with_context(|| format!("reading {body}"))?;
    let (version, bundle) = Registry::new(&Store::open(registry)?, "pm-failure")
        .active()
        .await?
        .with_context(|| format!("no active model in {registry}"))?;
    let st = AppState::new(ServeConfig::default(), registry)?;
    if !st.offer(version.clone(), String::new(), bundle, registry) {
        bail!("model {version} refused");
    }
    let model = st.slot.get().context("no model loaded")?;
    let req = model.vocab.predict_request_fast(&body).context("the body does not take the fast path")?;
    let n = 5_000;
    let parse = per_call(n, || model.vocab.predict_request_fast(&body));
    let predict = per_call(n, || predict_one(&st, &model, &req, "").map(|_| ()));
    let answer = predict_one(&st, &model, &req, "").map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let write = per_call(n, || serde_json::to_vec(&answer));
    let x = vec![0.0; model.n_features()];
    let scoring = per_call(n, || score(&model, &x));
    println!(
        "window request, in isolation (µs): read the body {parse:.1}, replay + row + score {predict:.1} (of which scoring {scoring:.1}), write the answer {write:.1}; total {:.1}",
        parse + predict + write
    );
    let cold = (
        per_cold_call(|| model.vocab.predict_request_fast(&body)),
        per_cold_call(|| predict_one(&st, &model, &req, "").map(|_| ())),
        per_cold_call(|| score(&model, &x)),
        per_cold_call(|| serde_json::to_vec(&answer)),
    );
    println!(
        "the same with cold caches (µs): read the body {:.1}, replay + row + score {:.1} (of which scoring {:.1}), write the answer {:.1}; total {:.1}",
        cold.0,
        cold.1,
        cold.2,
        cold.3,
        cold.0 + cold.1 + cold.3
    );
    // The same history as the instances of a Vertex AI request (`/predict` or `/predict/batch`):
    // read straight from the bytes, or through a `serde_json::Value` tree (any list the fast
    // path does not take).
    let k = 10;
    let list = format!("{{\"instances\": [{}]}}", vec![String::from_utf8_lossy(&body); k].join(", "));
    let list = list.as_bytes();
    model.vocab.request_list_fast(list, &["instances"]).context("the Vertex body does not take the fast path")?;
    let fast = per_call(n / 10, || model.vocab.request_list_fast(list, &["instances"])) / k as f64;
    let tree = per_call(n / 50, || -> Option<usize> {
        let v = parse_json(list).ok()?;
        let items = v.get("instances")?.as_array()?;
        Some(items.iter().filter_map(|item| model.vocab.predict_request(item, "").ok()).count())
    }) / k as f64;
    println!(
        "Vertex body of {k} such instances, in isolation (µs per instance): read straight from the bytes {fast:.1}, through a JSON value tree {tree:.1}"
    );
    Ok(())
}
