use clap::Parser;
use pm_components::{cli, ingest};

fn main() -> std::process::ExitCode {
    // `pm-ingest contract ...`: the contract's default, schema and check; anything else ingests.
    if std::env::args_os().nth(1).is_some_and(|a| a == "contract") {
        let args = ingest::ContractArgs::parse_from(std::env::args_os().skip(1));
        return cli::run_main("pm-ingest", async move {
            print!("{}", ingest::contract_command(&args).await?);
            Ok(())
        });
    }
    let args = ingest::IngestArgs::parse();
    cli::run_main("pm-ingest", async move { ingest::run(&args).await.map(|_| ()) })
}
