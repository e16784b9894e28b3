use clap::Parser;
use pm_components::{cli, evaluate};

fn main() -> std::process::ExitCode {
    let args = evaluate::EvaluateArgs::parse();
    cli::run_main("pm-evaluate", async move { evaluate::run(&args).await.map(|_| ()) })
}
