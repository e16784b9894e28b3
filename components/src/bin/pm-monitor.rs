use clap::Parser;
use pm_components::{cli, monitor};

fn main() -> std::process::ExitCode {
    let args = monitor::MonitorArgs::parse();
    cli::run_main("pm-monitor", async move { monitor::run(&args).await.map(|_| ()) })
}
