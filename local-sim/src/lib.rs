//! `pm-local-sim`: everything needed to run the product on one machine without real data.
//!
//! - [`generate`]: a deterministic generator of Azure-PdM-shaped data calibrated to the published
//!   facts of the real data set (binary `pm-datagen`).

pub mod generate;
pub mod stats;
pub mod usformat;
