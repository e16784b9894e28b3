//! The data layer: what a fleet's files are and how they are read.
//!
//! - [`contract`]: the five files of the Azure PdM schema and the typed tables they become.
//! - [`csv`]: a strict tokenizer that keeps line and column numbers, and the writer.
//! - [`time`]: the datetime forms of the data set.
//! - [`ingest`]: parse, check against the contract, and report ([`ingest::ValidationReport`]).

pub mod contract;
pub mod csv;
pub mod ingest;
pub mod time;
