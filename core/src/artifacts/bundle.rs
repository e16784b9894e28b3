//! The model bundle: everything serving needs to turn a machine's history into a validated
//! prediction, in one versioned JSON document (`bundle.json` inside a `Model` artifact).
//!
//! **API boundary.** `format_version` is checked on load: a bundle from a newer format is refused
//! with a clear error, never half-read. The bundle is a pure function of the training inputs and
//! the seed (no timestamps inside), so retraining on the same data gives the same bytes.

use serde::{Deserialize, Serialize};

use crate::eval::drift::FeatureBaseline;
use crate::eval::metrics::ThresholdRule;
use crate::features::FeatureSpec;
use crate::learn::model::Model;
use crate::learn::split::SplitPlan;

/// 2: the data contract's sensors are objects with unit and physical bounds (format 1 saved bare
/// names, which still load, as sensors without bounds).
pub const BUNDLE_FORMAT_VERSION: u32 = 2;
pub const BUNDLE_FILE: &str = "bundle.json";

/// A machine the model was trained on (for serving: model and age come with the bundle).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MachineInfo {
    pub id: u32,
    pub model: String,
    pub age: f64,
}

/// Metrics on the validation slice (the test slice belongs to `pm-evaluate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ValidationMetrics {
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub rows: u64,
    pub positives: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelBundle {
    pub format_version: u32,
    /// Registry name of the model, e.g. `pm-failure`.
    pub name: String,
    pub feature_spec: FeatureSpec,
    pub model: Model,
    /// Alarm when P(failure) >= threshold.
    pub threshold: f64,
    pub threshold_rule: ThresholdRule,
    /// Training distribution of each feature, for drift monitoring.
    pub baseline: Vec<FeatureBaseline>,
    /// Content hash of the features artifact trained on.
    pub training_data_hash: String,
    pub split: SplitPlan,
    /// The training spec as given (learner parameters, seed, ...).
    pub params: serde_json::Value,
    pub validation: ValidationMetrics,
    /// Normalised importance per feature, in feature order.
    pub importance: Vec<f64>,
    pub machines: Vec<MachineInfo>,
    /// The `pm` version that trained it.
    pub trainer_version: String,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum BundleError {
    #[error("not a model bundle: {0}")]
    Parse(String),
    #[error("bundle format {found} is newer than this build supports ({BUNDLE_FORMAT_VERSION}); upgrade pm")]
    Version { found: u32 },
    #[error("invalid bundle: {0}")]
    Invalid(String),
}

impl ModelBundle {
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data cannot fail; an empty document would be refused on load.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a bundle: format version, feature spec, model structure, and that the
    /// pieces agree with each other.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleError> {
        // Look at the version first, so that a newer format gets the right message.
        let probe: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| BundleError::Parse(e.to_string()))?;
        match probe.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(v) if v > u64::from(BUNDLE_FORMAT_VERSION) => {
                return Err(BundleError::Version { found: v as u32 });
            }
            Some(_) => {}
            None => return Err(BundleError::Parse("missing format_version".into())),
        }
        let b: ModelBundle = serde_json::from_value(probe).map_err(|e| BundleError::Parse(e.to_string()))?;
        b.validate()?;
        Ok(b)
    }

    pub fn validate(&self) -> Result<(), BundleError> {
        let invalid = |m: String| Err(BundleError::Invalid(m));
        self.feature_spec.validate().map_err(|e| BundleError::Invalid(format!("feature spec: {e}")))?;
        let n = self.feature_spec.n_features();
        if self.model.n_features() != n {
            return invalid(format!(
                "the model expects {} features, the feature spec defines {n}",
                self.model.n_features()
            ));
        }
        self.model.validate().map_err(BundleError::Invalid)?;
        if !self.model.components.is_empty()
            && self.model.components.len() != self.feature_spec.contract.components.len()
        {
            return invalid(format!(
                "{} component heads for {} components",
                self.model.components.len(),
                self.feature_spec.contract.components.len()
            ));
        }
        if !(self.threshold.is_finite() && (0.0..=1.0).contains(&self.threshold)) {
            return invalid(format!("threshold {} is not a probability", self.threshold));
        }
        if self.baseline.len() != n || self.importance.len() != n {
            return invalid("baseline and importance must have one entry per feature".into());
        }
        Ok(())
    }
}
