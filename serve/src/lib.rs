//! `pm-serve`: the promoted model over HTTP.
//!
//! - [`model`]: the served model, loaded from the registry's active version and swapped
//!   atomically on promotion or rollback; refused bundles leave the previous model serving.
//! - [`fleet`]: per-machine buffered telemetry; features come from `pm_core::features::online`, the same
//!   kernel as training's batch features.
//! - [`input`]: request validation with field paths; [`body`]: reading and parsing request
//!   bodies; [`error`]: the one error format.
//! - [`routes`], [`oip`], [`docs`]: the HTTP surface (native, Vertex AI, Open Inference
//!   Protocol v2, OpenAPI 3.1); [`layers`]: its middleware (metrics, load shedding, timeout).
//! - [`metrics`], [`drift`]: Prometheus metrics, including per-feature PSI against the bundle's
//!   training baseline.
//!
//! **Architecture invariants** (checked by `make lint`): no polars here, and the modules import
//! each other without a cycle, in layers: `error` and `drift` depend on no other module; `input`
//! on `error`; `model`, `metrics`, `fleet` and `state` on those below them; `body`, `predict`,
//! `oip`, `docs` and `layers` on the state; `routes` and `server` on everything.

pub mod body;
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

#[cfg(test)]
mod layering {
    //! The modules' dependencies, read from the sources (`crate::<module>` outside test code), must
    //! form no cycle. `make lint` runs this test.

    use std::collections::{BTreeMap, BTreeSet};

    /// Module → the crate modules its code names.
    fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![];
        let mut dirs = vec![src.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() && !p.ends_with("bin") {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        let mut deps = BTreeMap::new();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap().with_extension("");
            // A module's submodules (input/fast.rs) belong to it.
            let module = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            // Test modules may use anything.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let entry: &mut BTreeSet<String> = deps.entry(module.clone()).or_default();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for part in line.split("crate::").skip(1) {
                    let name: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    if !name.is_empty() && name != module {
                        entry.insert(name);
                    }
                }
            }
        }
        deps
    }

    #[test]
    fn the_modules_import_each_other_without_a_cycle() {
        let deps = dependencies();
        assert!(deps.len() > 10, "{deps:?}");
        // Depth-first search for a back edge; reports the cycle it closes.
        fn visit(
            m: &str,
            deps: &BTreeMap<String, BTreeSet<String>>,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut cycle = path[i..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            if !done.insert(m.to_string()) {
                return None;
            }
            path.push(m.to_string());
            for d in deps.get(m).into_iter().flatten() {
                if let Some(c) = visit(d, deps, path, done) {
                    return Some(c);
                }
            }
            path.pop();
            None
        }
        let mut done = BTreeSet::new();
        for m in deps.keys() {
            if let Some(cycle) = visit(m, &deps, &mut vec![], &mut done) {
                panic!("serve/src imports in a cycle: {}", cycle.join(" -> "));
            }
        }
        // The leaves stay leaves.
        for leaf in ["error", "drift"] {
            assert_eq!(deps[leaf], BTreeSet::new(), "{leaf} must depend on no other module of the crate");
        }
    }
}
