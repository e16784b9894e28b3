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

use pm_core::cli::BadInputExt;

/// Reads and validates a pipeline file; errors are one per line, each with its YAML path (bad
/// input: the orchestrator exits 65).
pub fn load_file(path: &std::path::Path) -> anyhow::Result<(graph::Pipeline, String)> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    match graph::load(&text) {
        Ok(p) => Ok((p, text)),
        Err(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{}: {e}", path.display())).collect();
            Err(anyhow::anyhow!("{} error(s):\n{}", errors.len(), lines.join("\n"))).bad_input()
        }
    }
}

/// Splits `NAME=VALUE` (the command line's `--param`); the value is typed later, by
/// [`typed_params`], from the parameter's declared type.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// Command-line parameter values as the pipeline declares them: a `string` or `uri` takes the
/// text as it is (`1`, `true`, `null` and `1e3` are text too), an `int` a whole number, a `float`
/// a finite number, a `bool` `true` or `false`. Every problem is reported, each naming the
/// parameter.
pub fn typed_params(
    p: &graph::Pipeline,
    raw: &[(String, String)],
) -> anyhow::Result<std::collections::BTreeMap<String, serde_json::Value>> {
    use serde_json::Value;
    use spec::Type;
    let mut out = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    for (name, text) in raw {
        let Some(ps) = p.spec.parameters.get(name) else {
            let known: Vec<&str> = p.spec.parameters.keys().map(String::as_str).collect();
            errors.push(format!("--param {name}: unknown parameter (the pipeline has {})", known.join(", ")));
            continue;
        };
        let t = text.trim();
        let value = match ps.ty {
            Type::Int => t.parse::<i64>().ok().map(Value::from),
            Type::Float => t.parse::<f64>().ok().filter(|x| x.is_finite()).map(Value::from),
            Type::Bool => match t {
                "true" | "True" => Some(Value::Bool(true)),
                "false" | "False" => Some(Value::Bool(false)),
                _ => None,
            },
            _ => Some(Value::String(text.clone())),
        };
        match value {
            Some(v) => {
                out.insert(name.clone(), v);
            }
            None => errors.push(format!("--param {name}={text}: {text:?} is not {}", ps.ty.article())),
        }
    }
    if errors.is_empty() { Ok(out) } else { Err(anyhow::anyhow!("{}", errors.join("\n"))).bad_input() }
}
