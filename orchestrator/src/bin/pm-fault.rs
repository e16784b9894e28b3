//! `pm-fault`: a component that misbehaves on request, for the orchestrator's fault tests (and
//! for trying retries, timeouts and caching by hand). Not part of the product pipelines.
//!
//! ```text
//! pm-fault [--counter FILE] [--fail-times N [--fail-code C]] [--fill FILE] [--sleep-secs S] [--spawn-child]
//!          [--input-uri URI] [--artifact-uri URI --files K [--die-after F]]
//!          [--value-file FILE --value V] [--wait-for FILE]
//! ```
//! - `--counter` counts invocations in FILE; `--fail-times N` exits 1 (or `--fail-code`) on the
//!   first N of them; `--fill` writes a file until the disk is full;
//!   `--die-after F` (first invocation only) kills itself with SIGKILL after writing F files of
//!   the artifact, before its manifest.
//! - `--sleep-secs` sleeps (with `--spawn-child`, in a child `sleep` process too, to check that a
//!   timeout kills the whole process group).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::Parser;
use pm_core::artifacts::store::Store;

#[derive(Debug, Parser)]
#[command(name = "pm-fault", about = "A component that fails, hangs or dies on request (for tests)")]
struct Args {
    #[arg(long)]
    counter: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    fail_times: u32,
    /// The exit code of a failure on purpose (1: may be transient; 65: bad input, not retried).
    #[arg(long, default_value_t = 1)]
    fail_code: u8,
    /// Fill this file until the disk is full (then go on).
    #[arg(long)]
    fill: Option<PathBuf>,
    #[arg(long, default_value_t = 0.0)]
    sleep_secs: f64,
    #[arg(long)]
    spawn_child: bool,
    /// Wait until this file exists before going on.
    #[arg(long)]
    wait_for: Option<PathBuf>,
    /// An artifact that must exist (committed) for this step to run.
    #[arg(long)]
    input_uri: Option<String>,
    #[arg(long)]
    artifact_uri: Option<String>,
    #[arg(long, default_value_t = 3)]
    files: u32,
    #[arg(long)]
    die_after: Option<u32>,
    /// With --die-after: first leave a half-written staging file (`part-K.txt#1`, as a local
    /// object store write killed mid-way leaves) of this many bytes.
    #[arg(long, default_value_t = 0)]
    staging_bytes: usize,
    #[arg(long)]
    value_file: Option<PathBuf>,
    #[arg(long, default_value = "")]
    value: String,
    /// Content of the artifact files (so that a changed input changes the artifact).
    #[arg(long, default_value = "payload")]
    payload: String,
}

/// Increments the invocation counter and returns this invocation's number (1-based).
fn invocation(counter: Option<&PathBuf>) -> Result<u32> {
    let Some(path) = counter else { return Ok(1) };
    let n = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u32>().ok()).unwrap_or(0) + 1;
    std::fs::write(path, n.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

async fn run(args: Args) -> Result<()> {
    let n = invocation(args.counter.as_ref())?;
    eprintln!("pm-fault: invocation {n}");
    if n <= args.fail_times {
        if args.fail_code != 1 {
            eprintln!("pm-fault: failing on purpose with exit code {}", args.fail_code);
            std::process::exit(i32::from(args.fail_code));
        }
        anyhow::bail!("failing on purpose (invocation {n} of the first {})", args.fail_times);
    }
    if let Some(path) = &args.fill {
        use std::io::Write;
        let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|()| f.flush()).is_ok() {}
        eprintln!("pm-fault: filled {}", path.display());
    }
    if let Some(uri) = &args.input_uri {
        Store::open(uri)?.read_manifest().await.with_context(|| format!("input {uri}"))?;
    }
    if let Some(gate) = &args.wait_for {
        while !gate.exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    if args.sleep_secs > 0.0 {
        if args.spawn_child {
            std::process::Command::new("sleep").arg(args.sleep_secs.to_string()).spawn()?;
        }
        tokio::time::sleep(Duration::from_secs_f64(args.sleep_secs)).await;
    }
    if let Some(uri) = &args.artifact_uri {
        let store = Store::open(uri)?;
        let mut files = Vec::new();
        for k in 0..args.files {
            let name = format!("part-{k}.txt");
            let bytes = Bytes::from(format!("{} {k}\n", args.payload));
            if args.die_after == Some(k) && n == 1 {
                if let (true, Some(dir)) = (args.staging_bytes > 0, uri.strip_prefix("file://")) {
                    std::fs::create_dir_all(dir)?;
                    std::fs::write(format!("{dir}/{name}#1"), vec![b'x'; args.staging_bytes])?;
                }
                // Die mid-write: some files are there, the manifest is not.
                eprintln!("pm-fault: dying after {k} files");
                nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL)?;
            }
            store.put(&name, bytes.clone()).await?;
            files.push((name, bytes));
        }
        store.write_artifact("Dataset", "pm-fault", files, serde_json::Value::Null).await?;
    }
    if let Some(f) = &args.value_file {
        pm_core::cli::write_output_parameter(Some(f), &args.value)?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    pm_core::cli::run_main("pm-fault", run(args))
}
