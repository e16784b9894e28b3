//! Artifacts: where everything a pipeline makes is kept.
//!
//! - [`store`]: the object store by URL, artifacts committed by their manifest, the run layout.
//! - [`bundle`]: the model bundle, versioned and validated on load.
//! - [`registry`]: the model registry, an append-only audit log with conditional writes.

pub mod bundle;
pub mod registry;
pub mod store;
