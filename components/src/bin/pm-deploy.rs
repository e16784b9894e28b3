use clap::Parser;
use pm_components::{cli, deploy};

fn main() -> std::process::ExitCode {
    let args = deploy::DeployArgs::parse();
    cli::run_main("pm-deploy", async move { deploy::run(&args).await.map(|_| ()) })
}
