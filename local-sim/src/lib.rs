//! `pm-local-sim`: everything needed to run the product on one machine without real data.
//!
//! - [`generate`]: a deterministic generator of Azure-PdM-shaped data calibrated to the published
//!   facts of the real data set (binary `pm-datagen`).
//! - [`fleet`]: a simpler generator for any data contract (other sensors, vocabularies, cadence).
//! - [`messy`]: makes its files look like a field export (empty values, repeated rows, any order).

pub mod fleet;
pub mod generate;
pub mod messy;
pub mod stats;
pub mod usformat;
