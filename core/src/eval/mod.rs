//! Evaluation: how good a model is, and whether new data still looks like its training data.
//!
//! - [`metrics`]: ROC/PR AUC with ties, confusion, threshold rules, event-level metrics.
//! - [`evaluation`]: test-slice metrics, the quality gates, champion/challenger.
//! - [`drift`]: per-feature training baselines, PSI and KS.

pub mod drift;
pub mod evaluation;
pub mod metrics;
