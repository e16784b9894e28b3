use clap::Parser;
use pm_components::{cli, registry_cli};

fn main() -> std::process::ExitCode {
    let args = registry_cli::RegistryArgs::parse();
    cli::run_main("pm-registry", async move { registry_cli::run(&args).await })
}
