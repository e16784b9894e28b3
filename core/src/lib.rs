//! `pm-core`: the library under every predictive-maintenance binary.
//!
//! - [`contract`]: the five files of the Azure PdM schema and the typed tables they become.
//! - [`csv`] and [`ingest`]: a strict reader that validates, locates every problem by file, line
//!   and column, and writes a [`ingest::ValidationReport`].
//! - [`time`]: the two datetime forms of the data set.
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
