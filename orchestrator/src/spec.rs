//! The pipeline YAML format, as written by users. **API boundary.**
//!
//! ```yaml
//! name: pm-training
//! description: Ingest, features, train, evaluate, gated deploy.
//! parameters:
//!   data_uri: {type: uri, default: local-bucket/raw}
//!   label_horizon_hours: {type: int, default: 24}
//! defaults:                      # applied to every step unless it says otherwise
//!   retries: {max: 2, backoff_seconds: 5}
//!   env: {RUST_LOG: info}
//! components:
//!   ingest:
//!     image: localhost/pm/ingest:0.1.0
//!     command: [/usr/local/bin/pm-ingest]
//!     inputs: {source: {type: uri}}
//!     outputs: {dataset: {type: Dataset}, rows: {type: int}}
//!     args: ["--input-uri={{inputs.source}}", --output-uri, "{{outputs.dataset.uri}}",
//!            --rows-output-file, "{{outputs.rows.file}}"]
//! steps:
//!   ingest:
//!     component: ingest
//!     with: {source: "{{params.data_uri}}"}
//! ```
//!
//! Types: parameters `string`, `int`, `float`, `bool`, `uri` (a string naming a store location;
//! its content is fingerprinted for caching); artifacts `Dataset`, `Model`, `Metrics`,
//! `ClassificationMetrics`, `HTML`, `Artifact`. Unknown keys are errors; [`check_keys`] reports all
//! of them with their YAML paths before the typed parse.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Type of a parameter or artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Type {
    #[serde(rename = "string")]
    String,
    #[serde(rename = "int")]
    Int,
    #[serde(rename = "float")]
    Float,
    #[serde(rename = "bool")]
    Bool,
    /// A string naming a store location (URL or path); fingerprinted for caching.
    #[serde(rename = "uri")]
    Uri,
    Dataset,
    Model,
    Metrics,
    ClassificationMetrics,
    #[serde(rename = "HTML")]
    Html,
    Artifact,
}

impl Type {
    pub fn is_artifact(self) -> bool {
        matches!(
            self,
            Type::Dataset | Type::Model | Type::Metrics | Type::ClassificationMetrics | Type::Html | Type::Artifact
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Int => "int",
            Type::Float => "float",
            Type::Bool => "bool",
            Type::Uri => "uri",
            Type::Dataset => "Dataset",
            Type::Model => "Model",
            Type::Metrics => "Metrics",
            Type::ClassificationMetrics => "ClassificationMetrics",
            Type::Html => "HTML",
            Type::Artifact => "Artifact",
        }
    }

    /// The name with its article: "an int", "a Dataset".
    pub fn article(self) -> String {
        let n = self.name();
        if n.starts_with(['a', 'e', 'i', 'o', 'u', 'H']) { format!("an {n}") } else { format!("a {n}") }
    }

    /// Whether a value of type `from` may be bound where `self` is expected.
    pub fn accepts(self, from: Type) -> bool {
        self == from
            || (self == Type::Float && from == Type::Int)
            || (self == Type::String && from == Type::Uri)
            || (self == Type::Uri && from == Type::String)
            || (self == Type::Artifact && from.is_artifact())
    }
}

/// A pipeline parameter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub ty: Type,
    /// Without a default the parameter is required at run time.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A component input or output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IoSpec {
    #[serde(rename = "type")]
    pub ty: Type,
    /// Inputs only: used when a step does not bind the input (then it is optional).
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// A reusable containerised step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComponentSpec {
    /// Container image (for Kubeflow / Vertex and `run --runner podman`).
    pub image: String,
    /// Entry point; locally the binary of the same file name is run from `--bin-dir`.
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub inputs: BTreeMap<String, IoSpec>,
    #[serde(default)]
    pub outputs: BTreeMap<String, IoSpec>,
    #[serde(default)]
    pub description: Option<String>,
}

/// Retry policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Retries after the first attempt.
    pub max: u32,
    #[serde(default = "default_backoff")]
    pub backoff_seconds: f64,
    #[serde(default = "default_factor")]
    pub backoff_factor: f64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_seconds: f64,
}

fn default_backoff() -> f64 {
    1.0
}
fn default_factor() -> f64 {
    2.0
}
fn default_backoff_max() -> f64 {
    600.0
}

/// Kubernetes-style resource requests and limits (`"2"`, `"500m"`, `"4G"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[serde(default)]
    pub cpu_request: Option<String>,
    #[serde(default)]
    pub cpu_limit: Option<String>,
    #[serde(default)]
    pub memory_request: Option<String>,
    #[serde(default)]
    pub memory_limit: Option<String>,
}

/// Settings every step inherits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDefaults {
    #[serde(default)]
    pub retries: Option<RetrySpec>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub cache: Option<bool>,
    #[serde(default)]
    pub resources: Option<ResourceSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// One node of the pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Name of a component in `components`.
    pub component: String,
    /// Component input bindings: a literal, `{{params.NAME}}` or `{{steps.STEP.outputs.NAME}}`.
    #[serde(default, rename = "with")]
    pub with_: BTreeMap<String, serde_json::Value>,
    /// Run only when this holds, e.g. `"{{steps.evaluate.outputs.blessed}} == true"`.
    #[serde(default)]
    pub when: Option<String>,
    /// Extra ordering (beyond data dependencies).
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub retries: Option<RetrySpec>,
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    #[serde(default)]
    pub cache: Option<bool>,
    #[serde(default)]
    pub resources: Option<ResourceSpec>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A pipeline document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// Lower-case letters, digits and dashes (Kubeflow and Vertex AI derive job names from it).
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub parameters: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub defaults: StepDefaults,
    pub components: BTreeMap<String, ComponentSpec>,
    pub steps: BTreeMap<String, StepSpec>,
}

/// A problem found in a pipeline document, located by its YAML path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpecError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

pub(crate) fn err(path: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError { path: path.into(), message: message.into() }
}

/// The keys each mapping of the format allows: (path pattern, keys). `*` matches any key.
const SHAPE: &[(&str, &[&str])] = &[
    ("", &["name", "description", "parameters", "defaults", "components", "steps"]),
    ("parameters.*", &["type", "default", "description"]),
    ("defaults", &["retries", "timeout_seconds", "cache", "resources", "env"]),
    ("defaults.retries", &["max", "backoff_seconds", "backoff_factor", "backoff_max_seconds"]),
    ("defaults.resources", &["cpu_request", "cpu_limit", "memory_request", "memory_limit"]),
    ("components.*", &["image", "command", "args", "inputs", "outputs", "description"]),
    ("components.*.inputs.*", &["type", "default", "description"]),
    ("components.*.outputs.*", &["type", "default", "description"]),
    (
        "steps.*",
        &[
            "component",
            "with",
            "when",
            "after",
            "retries",
            "timeout_seconds",
            "cache",
            "resources",
            "env",
            "display_name",
        ],
    ),
    ("steps.*.retries", &["max", "backoff_seconds", "backoff_factor", "backoff_max_seconds"]),
    ("steps.*.resources", &["cpu_request", "cpu_limit", "memory_request", "memory_limit"]),
];

fn matches(pattern: &str, path: &[String]) -> bool {
    let parts: Vec<&str> = if pattern.is_empty() { vec![] } else { pattern.split('.').collect() };
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// Reports every unknown key of a YAML document (all of them, with their paths).
pub fn check_keys(doc: &yaml_serde::Value) -> Vec<SpecError> {
    let mut errors = Vec::new();
    walk(doc, &mut Vec::new(), &mut errors);
    errors
}

fn walk(v: &yaml_serde::Value, path: &mut Vec<String>, errors: &mut Vec<SpecError>) {
    let yaml_serde::Value::Mapping(map) = v else {
        return;
    };
    let allowed = SHAPE.iter().find(|(p, _)| matches(p, path)).map(|(_, keys)| *keys);
    for (k, child) in map {
        let key = match k {
            yaml_serde::Value::String(s) => s.clone(),
            other => format!("{other:?}"),
        };
        if let Some(keys) = allowed
            && !keys.contains(&key.as_str())
        {
            let at = if path.is_empty() { key.clone() } else { format!("{}.{key}", path.join(".")) };
            errors.push(err(at, format!("unknown key; expected one of {}", keys.join(", "))));
            continue;
        }
        path.push(key);
        // Binding values and env maps are free-form: do not descend.
        let free = matches!(path.last().map(String::as_str), Some("with" | "env" | "default"));
        if !free {
            walk(child, path, errors);
        }
        path.pop();
    }
}

/// The largest pipeline document accepted (a pipeline of ~200,000 steps).
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;
/// The deepest nesting of flow collections (`[...]`, `{...}`) accepted.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Refuses a document too large, or nested deeper than [`MAX_FLOW_DEPTH`] flow collections,
/// before the YAML parser sees it: its scanner takes time quadratic in the nesting depth
/// (100,000 nested `[` took 70 s). A light scan: quoted text and comments are skipped, and a
/// bracket counts only where a flow collection can start (after `:`, `-`, `[`, `{`, a comma inside
/// a collection, or at the start of a line), so brackets inside plain text do not.
fn check_size_and_depth(text: &str) -> Result<(), SpecError> {
    if text.len() > MAX_DOCUMENT_BYTES {
        return Err(err(
            "",
            format!("the document is {} bytes; at most {MAX_DOCUMENT_BYTES} are accepted", text.len()),
        ));
    }
    let mut depth = 0usize;
    let (mut line, mut column) = (1usize, 0usize);
    // The last character that was not a space or tab on this line (None at its start).
    let mut last: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        column += 1;
        let token_start = match last {
            None | Some(':' | '-' | '[' | '{' | '?') => true,
            // A comma separates entries only inside a flow collection.
            Some(',') => depth > 0,
            _ => false,
        };
        match c {
            '\n' => {
                line += 1;
                column = 0;
                last = None;
                continue;
            }
            ' ' | '\t' => continue,
            '#' => {
                while chars.peek().is_some_and(|&n| n != '\n') {
                    chars.next();
                }
                continue;
            }
            '"' | '\'' if token_start => {
                // A quoted scalar, possibly over several lines.
                while let Some(q) = chars.next() {
                    column += 1;
                    if q == '\n' {
                        line += 1;
                        column = 0;
                    } else if c == '"' && q == '\\' {
                        chars.next();
                        column += 1;
                    } else if q == c {
                        if c == '\'' && chars.peek() == Some(&'\'') {
                            chars.next();
                            column += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            '[' | '{' if token_start => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(err(
                        format!("line {line}, column {column}"),
                        format!("flow collections nested deeper than {MAX_FLOW_DEPTH} levels"),
                    ));
                }
            }
            ']' | '}' if depth > 0 => depth -= 1,
            // A bracket inside plain text: text, not an indicator for what follows.
            '[' | '{' | ']' | '}' => {
                last = Some('a');
                continue;
            }
            _ => {}
        }
        last = Some(c);
    }
    Ok(())
}

/// Parses a pipeline document: its size and nesting first, then all unknown keys (each with its
/// path), then the typed parse (one error, with its line and column).
pub fn parse(text: &str) -> Result<PipelineSpec, Vec<SpecError>> {
    check_size_and_depth(text).map_err(|e| vec![e])?;
    let doc: yaml_serde::Value = yaml_serde::from_str(text).map_err(|e| vec![yaml_error(&e)])?;
    let unknown = check_keys(&doc);
    if !unknown.is_empty() {
        return Err(unknown);
    }
    // Parse the text again (not the value) so that type errors keep their line and column.
    yaml_serde::from_str(text).map_err(|e| vec![yaml_error(&e)])
}

fn yaml_error(e: &yaml_serde::Error) -> SpecError {
    let mut message = e.to_string();
    match e.location() {
        Some(loc) => {
            // The location leads the message; do not repeat it at the end.
            if let Some(i) = message.rfind(" at line ") {
                message.truncate(i);
            }
            err(format!("line {}, column {}", loc.line(), loc.column()), message)
        }
        None => err("", message),
    }
}

/// The JSON Schema of the format (committed as `pipelines/pipeline.schema.json`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(PipelineSpec)).unwrap_or_default()
}
