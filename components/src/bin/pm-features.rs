use clap::Parser;
use pm_components::{cli, features};

fn main() -> std::process::ExitCode {
    let args = features::FeaturesArgs::parse();
    cli::run_main("pm-features", async move { features::run(&args).await.map(|_| ()) })
}
