//! `pm-serve`: the promoted model over HTTP.
//!
//! - [`model`]: the served model, loaded from the registry's active version and swapped
//!   atomically on promotion or rollback; refused bundles leave the previous model serving.
//! - [`fleet`]: per-machine buffered telemetry; features come from `pm_core::online`, the same
//!   kernel as training's batch features.
//! - [`input`]: request validation with field paths; [`error`]: the one error format.
//! - [`routes`], [`oip`], [`docs`]: the HTTP surface (native, Vertex AI, Open Inference
//!   Protocol v2, OpenAPI 3.1); [`layers`]: its middleware (metrics, load shedding, timeout).
//! - [`metrics`], [`drift`]: Prometheus metrics, including per-feature PSI against the bundle's
//!   training baseline.
//!
//! **Architecture invariant:** no polars here (checked by `make lint`).

pub mod docs;
pub mod drift;
pub mod error;
pub mod fleet;
pub mod input;
pub mod layers;
pub mod metrics;
pub mod model;
pub mod oip;
pub mod predict;
pub mod routes;
pub mod server;
pub mod state;

pub use layers::App;
pub use routes::app;
pub use state::{AppState, ServeConfig};
