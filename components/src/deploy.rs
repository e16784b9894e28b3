//! `pm-deploy`: promotes a blessed model in the registry; when the model is not blessed it changes
//! nothing and says why.

use std::path::PathBuf;

use anyhow::{Result, bail};
use pm_core::artifacts::bundle::BUNDLE_FILE;
use pm_core::artifacts::registry::Registry;
use pm_core::artifacts::store::{Store, sha256_hex};

use crate::evaluate::load_evaluation;

/// Arguments of `pm-deploy`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "pm-deploy", version, about = "Register and promote a blessed model")]
pub struct DeployArgs {
    /// Model artifact written by pm-train.
    #[arg(long)]
    pub model_uri: String,
    /// Evaluation artifact written by pm-evaluate for this model.
    #[arg(long)]
    pub evaluation_uri: String,
    /// Registry root (URL or path).
    #[arg(long)]
    pub registry_uri: String,
    /// Registry name (default: the bundle's name).
    #[arg(long)]
    pub model_name: Option<String>,
    /// Source commit recorded with the version.
    #[arg(long, env = "PM_SOURCE_COMMIT")]
    pub source_commit: Option<String>,
    /// Who deploys (recorded in the audit log).
    #[arg(long, default_value = "pm-deploy")]
    pub actor: String,
    /// Write the promoted version (empty when nothing was promoted) to this file (KFP output parameter).
    #[arg(long)]
    pub version_output_file: Option<PathBuf>,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq)]
pub enum DeployOutcome {
    Promoted {
        version: String,
    },
    /// The model was already the active version.
    AlreadyActive {
        version: String,
    },
    NotBlessed {
        reasons: Vec<String>,
    },
}

pub async fn run(args: &DeployArgs) -> Result<DeployOutcome> {
    let model = Store::open(&args.model_uri)?;
    let (bundle, manifest) = crate::train::load_bundle(&model).await?;
    let bytes = model.read_artifact_file(&manifest, BUNDLE_FILE).await?;
    let record = load_evaluation(&Store::open(&args.evaluation_uri)?).await?;
    if record.bundle_sha256 != sha256_hex(&bytes) {
        bail!(
            "the evaluation at {} is of another model (bundle {}), not of {} (bundle {}): refusing to deploy",
            args.evaluation_uri,
            record.bundle_sha256,
            model.url(),
            sha256_hex(&bytes)
        );
    }
    let e = &record.evaluation;
    let outcome = if !e.blessed {
        let failed: Vec<String> = e.reasons.iter().filter(|r| r.starts_with("FAIL")).cloned().collect();
        println!("deploy: not blessed, the registry is unchanged:");
        for r in &failed {
            println!("  {r}");
        }
        DeployOutcome::NotBlessed { reasons: failed }
    } else {
        let name = args.model_name.clone().unwrap_or_else(|| bundle.name.clone());
        let reg = Registry::new(&Store::open(&args.registry_uri)?, &name);
        let metrics = serde_json::json!({"validation": bundle.validation, "test": e.candidate});
        let reason = format!("blessed by pm-evaluate: {}", e.reasons.join("; "));
        let (version, _) = reg.register(bytes, metrics, args.source_commit.clone(), &args.actor, &reason).await?;
        match reg.promote(&version, &args.actor, &reason).await {
            Ok(ev) => {
                println!("deploy: promoted {name} {version} (registry event {}) -> {}", ev.seq, reg.url());
                DeployOutcome::Promoted { version }
            }
            Err(pm_core::artifacts::registry::RegistryError::AlreadyActive { .. }) => {
                println!("deploy: {name} {version} is already the active version; nothing to do");
                DeployOutcome::AlreadyActive { version }
            }
            Err(err) => return Err(err.into()),
        }
    };
    let version = match &outcome {
        DeployOutcome::Promoted { version } | DeployOutcome::AlreadyActive { version } => version.as_str(),
        DeployOutcome::NotBlessed { .. } => "",
    };
    pm_core::cli::write_output_parameter(args.version_output_file.as_deref(), version)?;
    Ok(outcome)
}
