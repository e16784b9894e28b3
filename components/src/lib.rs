//! `pm-components`: the pipeline steps. Each step is a library function (`run`) taking its
//! arguments struct, plus a thin binary (`src/bin/pm-<step>.rs`) that parses the command line and
//! calls it. Steps exchange artifacts only through the store (`pm_core::artifacts::store`), addressed by URL,
//! so a binary runs unchanged as a local child process or in a Kubeflow / Vertex AI container.
//!
//! **Architecture invariant:** this is the only crate (with the benches) that links polars; it is
//! used for Parquet encoding and nothing in `pm-core` depends on it.

pub use pm_core::cli;
pub mod deploy;
pub mod evaluate;
pub mod features;
pub mod ingest;
pub mod linfa_compat;
pub mod monitor;
pub mod registry_cli;
pub mod report;
pub mod table;
pub mod train;
