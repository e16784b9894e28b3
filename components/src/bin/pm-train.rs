use clap::Parser;
use pm_components::{cli, train};

fn main() -> std::process::ExitCode {
    let args = train::TrainArgs::parse();
    cli::run_main("pm-train", async move { train::run(&args).await.map(|_| ()) })
}
