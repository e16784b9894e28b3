//! `pm-orchestrator`: one pipeline definition (YAML), run on one machine today and on Vertex AI or
//! Kubeflow when a user outgrows it.
//!
//! - [`spec`]: the YAML format (raw serde types, unknown keys refused, JSON Schema).
//! - [`graph`]: validation into a petgraph DAG with typed, resolved bindings. Knows nothing about
//!   processes, Kubeflow or Vertex.
//! - Backends, each a function of a [`graph::Pipeline`]: [`local`] (child processes), [`kfp`]
//!   (Kubeflow Pipelines v2 IR), [`vertex`] (PipelineJob body and submission). [`dot`] draws it.

pub mod dot;
pub mod graph;
pub mod kfp;
pub mod local;
pub mod spec;
pub mod summary;
pub mod vertex;

/// Reads and validates a pipeline file; errors are one per line, each with its YAML path.
pub fn load_file(path: &std::path::Path) -> anyhow::Result<(graph::Pipeline, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match graph::load(&text) {
        Ok(p) => Ok((p, text)),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{}: {e}", path.display())).collect();
            anyhow::bail!("{} error(s):\n{}", errors.len(), lines.join("\n"))
        }
    }
}

/// Parses `NAME=VALUE` (the value as JSON when it parses, else as a string).
pub fn parse_param(s: &str) -> Result<(String, serde_json::Value), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
    Ok((k.trim().to_string(), value))
}
