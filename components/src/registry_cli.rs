//! `pm-registry`: list, show, promote, roll back and archive model versions.

use anyhow::Result;
use pm_core::artifacts::registry::{Action, Registry, Status};
use pm_core::artifacts::store::Store;

/// Arguments of `pm-registry`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pm-registry", version, about = "Inspect and change the model registry")]
pub struct RegistryArgs {
    /// Registry root (URL or path).
    #[arg(long, env = "PM_REGISTRY_URI")]
    pub registry_uri: String,
    /// Model name.
    #[arg(long, default_value = "pm-failure")]
    pub model_name: String,
    /// Who acts (recorded in the audit log).
    #[arg(long, default_value = "pm-registry")]
    pub actor: String,
    /// Why (recorded in the audit log).
    #[arg(long, default_value = "")]
    pub reason: String,
    #[command(subcommand)]
    pub command: RegistryCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum RegistryCommand {
    /// Versions with their status and key metrics.
    List,
    /// One version's record, as JSON.
    Show { version: String },
    /// Make a version active.
    Promote { version: String },
    /// Return to the previously active version, or to `--to`.
    Rollback {
        #[arg(long)]
        to: Option<String>,
    },
    /// Retire a version that is not active.
    Archive { version: String },
    /// The audit log.
    Log,
}

fn metric(m: &serde_json::Value, path: &[&str]) -> String {
    let mut v = m;
    for p in path {
        v = &v[*p];
    }
    v.as_f64().map_or("-".into(), |x| format!("{x:.4}"))
}

pub async fn run(args: &RegistryArgs) -> Result<()> {
    let reg = Registry::new(&Store::open(&args.registry_uri)?, &args.model_name);
    match &args.command {
        RegistryCommand::List => {
            let s = reg.state().await?;
            println!(
                "{:<8} {:<10} {:<14} {:>9} {:>9} {:<21} training data",
                "version", "status", "algorithm", "test AUC", "test PR", "created"
            );
            for v in s.versions.values() {
                let status = match v.status {
                    Status::Active => "ACTIVE",
                    Status::Candidate => "candidate",
                    Status::Archived => "archived",
                };
                let r = &v.record;
                println!(
                    "{:<8} {:<10} {:<14} {:>9} {:>9} {:<21} {}",
                    r.version,
                    status,
                    r.algorithm,
                    metric(&r.metrics, &["test", "roc_auc"]),
                    metric(&r.metrics, &["test", "pr_auc"]),
                    r.created_at,
                    &r.training_data_hash[..r.training_data_hash.len().min(12)]
                );
            }
        }
        RegistryCommand::Show { version } => {
            let s = reg.state().await?;
            let v = s.version(version).ok_or_else(|| anyhow::anyhow!("unknown version {version:?}"))?;
            println!("{}", serde_json::to_string_pretty(v)?);
        }
        RegistryCommand::Promote { version } => {
            let ev = reg.promote(version, &args.actor, &args.reason).await?;
            println!("promoted {version} (event {})", ev.seq);
        }
        RegistryCommand::Rollback { to } => {
            let ev = reg.rollback(to.as_deref(), &args.actor, &args.reason).await?;
            if let Action::Rollback { version, from } = &ev.action {
                println!("rolled back from {from} to {version} (event {})", ev.seq);
            }
        }
        RegistryCommand::Archive { version } => {
            let ev = reg.archive(version, &args.actor, &args.reason).await?;
            println!("archived {version} (event {})", ev.seq);
        }
        RegistryCommand::Log => {
            for ev in reg.state().await?.events {
                let what = match &ev.action {
                    Action::Register { record } => format!("register {}", record.version),
                    Action::Promote { version, previous } => {
                        format!("promote {version} (was {})", previous.as_deref().unwrap_or("-"))
                    }
                    Action::Rollback { version, from } => format!("rollback {from} -> {version}"),
                    Action::Archive { version } => format!("archive {version}"),
                };
                println!("{:>5} {} {:<14} {:<28} {}", ev.seq, ev.at, ev.actor, what, ev.reason);
            }
        }
    }
    Ok(())
}
