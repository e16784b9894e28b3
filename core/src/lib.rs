//! `pm-core`: the library under every predictive-maintenance binary.
//!
//! - [`data`]: the data contract, the strict CSV reader, datetimes, ingest and its validation
//!   report.
//! - [`features`]: the one feature kernel (batch) and the per-machine online state that calls it.
//! - [`learn`]: the histogram tree learners, the model serving evaluates, the temporal split,
//!   training.
//! - [`eval`]: metrics, the evaluation with its gates, drift.
//! - [`artifacts`]: the object store and its artifacts, the model bundle, the registry.
//! - [`cli`]: what every binary shares (logging, runtime, signals, exit codes, progress);
//!   [`rng`] and [`html`]: the project's random numbers and HTML escaping.
//!
//! [`data`] and [`features`] depend on no other part of the crate: the kernel sees only the
//! contract's tables. The other parts meet in the model bundle, which holds a model, its split,
//! its metrics' threshold rule and its drift baselines.
//!
//! **Architecture invariant:** this crate does not depend on polars; the serving binary links it.

pub mod artifacts;
pub mod cli;
pub mod data;
pub mod eval;
pub mod features;
pub mod html;
pub mod learn;
pub mod rng;
