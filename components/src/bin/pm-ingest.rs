use clap::Parser;
use pm_components::{cli, ingest};

fn main() -> std::process::ExitCode {
    let args = ingest::IngestArgs::parse();
    cli::run_main("pm-ingest", async move { ingest::run(&args).await.map(|_| ()) })
}
