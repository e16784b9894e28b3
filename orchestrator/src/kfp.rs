//! Kubeflow Pipelines v2 emitter: a validated [`Pipeline`] → a single-document `PipelineSpec`
//! (the IR that `kfp` compiles to and Vertex AI Pipelines runs), as JSON.
//!
//! Mapping: each step is a task `<step>` of the root DAG with component `comp-<step>` and executor
//! `exec-<step>` (names sanitised to `[a-z0-9-]`). Placeholders become KFP's:
//! `{{inputs.x}}` → `{{$.inputs.parameters['x']}}`, `{{inputs.x.uri}}` →
//! `{{$.inputs.artifacts['x'].uri}}`, `{{outputs.y.uri}}` / `.path` → `{{$.outputs.artifacts['y'].uri}}` /
//! `.path`, `{{outputs.p.file}}` → `{{$.outputs.parameters['p'].output_file}}`. A step with `when` is
//! wrapped, as `dsl.If` compiles, in a DAG component `comp-condition-<n>` whose root task carries the
//! condition as CEL over `pipelinechannel--…` inputs. The IR has no task timeout: a step's
//! `timeout_seconds` becomes the `PM_STEP_TIMEOUT_SECS` variable of its container, which our step
//! binaries enforce themselves.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::graph::{Binding, Condition, Piece, Pipeline, Placeholder, Step, cores, gigabytes, parse_arg, sanitize};
use crate::spec::{ResourceSpec, RetrySpec, SpecError, Type, err};

pub const SCHEMA_VERSION: &str = "2.1.0";

/// The `parameterType` of a value type.
pub fn parameter_type(t: Type) -> &'static str {
    match t {
        Type::String | Type::Uri => "STRING",
        Type::Int => "NUMBER_INTEGER",
        Type::Float => "NUMBER_DOUBLE",
        Type::Bool => "BOOLEAN",
        _ => "STRING",
    }
}

/// The `schemaTitle` of an artifact type.
pub fn schema_title(t: Type) -> &'static str {
    match t {
        Type::Dataset => "system.Dataset",
        Type::Model => "system.Model",
        Type::Metrics => "system.Metrics",
        Type::ClassificationMetrics => "system.ClassificationMetrics",
        Type::Html => "system.HTML",
        _ => "system.Artifact",
    }
}

fn artifact_type(t: Type) -> Value {
    json!({"artifactType": {"schemaTitle": schema_title(t), "schemaVersion": "0.0.1"}})
}

/// A literal as KFP writes defaults and constants: integers as doubles.
fn kfp_value(v: &Value, t: Type) -> Value {
    match (t, v.as_f64()) {
        (Type::Int | Type::Float, Some(x)) => json!(x),
        _ => v.clone(),
    }
}

fn duration(secs: f64) -> String {
    if secs.fract() == 0.0 { format!("{}s", secs as u64) } else { format!("{secs}s") }
}

fn retry_policy(r: &RetrySpec) -> Value {
    json!({
        "maxRetryCount": r.max,
        "backoffDuration": duration(r.backoff_seconds),
        "backoffFactor": r.backoff_factor,
        "backoffMaxDuration": duration(r.backoff_max_seconds),
    })
}

fn resources(r: &ResourceSpec, path: &str, errors: &mut Vec<SpecError>) -> Option<Value> {
    let mut m = Map::new();
    let mut add = |q: &Option<String>, legacy: &str, field: &str, parse: fn(&str) -> Option<f64>| {
        if let Some(q) = q {
            match parse(q) {
                Some(v) => {
                    m.insert(legacy.to_string(), json!(v));
                    m.insert(field.to_string(), json!(q));
                }
                None => errors.push(err(path, format!("invalid quantity {q:?}"))),
            }
        }
    };
    add(&r.cpu_request, "cpuRequest", "resourceCpuRequest", cores);
    add(&r.cpu_limit, "cpuLimit", "resourceCpuLimit", cores);
    add(&r.memory_request, "memoryRequest", "resourceMemoryRequest", gigabytes);
    add(&r.memory_limit, "memoryLimit", "resourceMemoryLimit", gigabytes);
    (!m.is_empty()).then_some(Value::Object(m))
}

fn placeholder(p: &Placeholder) -> String {
    match p {
        Placeholder::InputValue(n) => format!("{{{{$.inputs.parameters['{n}']}}}}"),
        Placeholder::InputUri(n) => format!("{{{{$.inputs.artifacts['{n}'].uri}}}}"),
        Placeholder::OutputUri(n) => format!("{{{{$.outputs.artifacts['{n}'].uri}}}}"),
        Placeholder::OutputPath(n) => format!("{{{{$.outputs.artifacts['{n}'].path}}}}"),
        Placeholder::OutputFile(n) => format!("{{{{$.outputs.parameters['{n}'].output_file}}}}"),
    }
}

fn component_spec(p: &Pipeline, step: &Step) -> Value {
    let comp = p.component(step);
    let mut in_params = Map::new();
    let mut in_arts = Map::new();
    for (name, io) in &comp.inputs {
        if io.ty.is_artifact() {
            in_arts.insert(name.clone(), artifact_type(io.ty));
        } else {
            let mut d = json!({"parameterType": parameter_type(io.ty)});
            if let Some(v) = &io.default {
                d["defaultValue"] = kfp_value(v, io.ty);
                d["isOptional"] = json!(true);
            }
            in_params.insert(name.clone(), d);
        }
    }
    let mut out_params = Map::new();
    let mut out_arts = Map::new();
    for (name, io) in &comp.outputs {
        if io.ty.is_artifact() {
            out_arts.insert(name.clone(), artifact_type(io.ty));
        } else {
            out_params.insert(name.clone(), json!({"parameterType": parameter_type(io.ty)}));
        }
    }
    let mut c = json!({"executorLabel": format!("exec-{}", sanitize(&step.name))});
    let defs = |params: Map<String, Value>, arts: Map<String, Value>| {
        let mut d = Map::new();
        if !params.is_empty() {
            d.insert("parameters".into(), Value::Object(params));
        }
        if !arts.is_empty() {
            d.insert("artifacts".into(), Value::Object(arts));
        }
        d
    };
    let inputs = defs(in_params, in_arts);
    if !inputs.is_empty() {
        c["inputDefinitions"] = Value::Object(inputs);
    }
    let outputs = defs(out_params, out_arts);
    if !outputs.is_empty() {
        c["outputDefinitions"] = Value::Object(outputs);
    }
    c
}

fn executor(p: &Pipeline, step: &Step, errors: &mut Vec<SpecError>) -> Value {
    let comp = p.component(step);
    let args: Vec<String> = comp
        .args
        .iter()
        .map(|a| {
            parse_arg(a)
                .unwrap_or_default()
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.clone(),
                    Piece::Ph(ph) => placeholder(ph),
                })
                .collect()
        })
        .collect();
    let mut container = json!({"image": comp.image, "command": comp.command, "args": args});
    // The IR has no task timeout: the step enforces its own (see `pm_core::cli`).
    let timeout = step
        .timeout_seconds
        .filter(|_| !step.env.contains_key(pm_core::cli::STEP_TIMEOUT_ENV))
        .map(|t| (pm_core::cli::STEP_TIMEOUT_ENV.to_string(), t.to_string()));
    // Cloud Logging reads `severity` and `message` from JSON lines (see `pm_core::cli`).
    let log_format = (!step.env.contains_key(pm_core::cli::LOG_FORMAT_ENV))
        .then(|| (pm_core::cli::LOG_FORMAT_ENV.to_string(), "json".to_string()));
    let env: Vec<Value> = step
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(timeout)
        .chain(log_format)
        .map(|(k, v)| json!({"name": k, "value": v}))
        .collect();
    if !env.is_empty() {
        container["env"] = Value::Array(env);
    }
    if let Some(r) = resources(&step.resources, &format!("steps.{}.resources", step.name), errors) {
        container["resources"] = r;
    }
    json!({"container": container})
}

/// How a value reaches a task inside a DAG: from the DAG's own inputs (`channel`) or directly.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Root,
    Condition,
}

fn channel_name(b: &Binding) -> Option<String> {
    match b {
        Binding::Param(p) => Some(format!("pipelinechannel--{p}")),
        Binding::Output { step, output } => Some(format!("pipelinechannel--{}-{output}", sanitize(step))),
        _ => None,
    }
}

/// The task spec of a step in a scope.
fn task(step: &Step, scope: Scope) -> Value {
    let mut params = Map::new();
    let mut arts = Map::new();
    let mut deps = BTreeSet::new();
    for (name, (ty, b)) in &step.inputs {
        let v = match (b, scope) {
            (Binding::Default(_), _) => continue,
            (Binding::Literal(v), _) => json!({"runtimeValue": {"constant": kfp_value(v, *ty)}}),
            (Binding::Param(pn), Scope::Root) => json!({"componentInputParameter": pn}),
            (Binding::Output { step: s, output }, Scope::Root) => {
                deps.insert(sanitize(s));
                if ty.is_artifact() {
                    json!({"taskOutputArtifact": {"producerTask": sanitize(s), "outputArtifactKey": output}})
                } else {
                    json!({"taskOutputParameter": {"producerTask": sanitize(s), "outputParameterKey": output}})
                }
            }
            (b, Scope::Condition) => {
                let ch = channel_name(b).unwrap_or_default();
                if ty.is_artifact() {
                    json!({"componentInputArtifact": ch})
                } else {
                    json!({"componentInputParameter": ch})
                }
            }
        };
        if ty.is_artifact() {
            arts.insert(name.clone(), v);
        } else {
            params.insert(name.clone(), v);
        }
    }
    if scope == Scope::Root {
        for up in &step.upstream {
            deps.insert(sanitize(up));
        }
    }
    let mut t = json!({
        "componentRef": {"name": format!("comp-{}", sanitize(&step.name))},
        "taskInfo": {"name": step.display_name},
        "cachingOptions": if step.cache { json!({"enableCache": true}) } else { json!({}) },
    });
    if !deps.is_empty() {
        t["dependentTasks"] = json!(deps.into_iter().collect::<Vec<_>>());
    }
    let mut inputs = Map::new();
    if !params.is_empty() {
        inputs.insert("parameters".into(), Value::Object(params));
    }
    if !arts.is_empty() {
        inputs.insert("artifacts".into(), Value::Object(arts));
    }
    if !inputs.is_empty() {
        t["inputs"] = Value::Object(inputs);
    }
    if let Some(r) = &step.retries {
        t["retryPolicy"] = retry_policy(r);
    }
    t
}

fn cel_operand(b: &Binding) -> String {
    match b {
        Binding::Literal(v) | Binding::Default(v) => match v {
            Value::String(s) => format!("'{}'", s.replace('\'', "\\'")),
            other => other.to_string(),
        },
        b => format!("inputs.parameter_values['{}']", channel_name(b).unwrap_or_default()),
    }
}

fn cel(c: &Condition) -> String {
    // CEL writes the comparisons as the pipeline format does.
    format!("{} {} {}", cel_operand(&c.left), c.op.symbol(), cel_operand(&c.right))
}

/// Compiles a pipeline to a KFP v2 `PipelineSpec`.
pub fn compile(p: &Pipeline) -> Result<Value, Vec<SpecError>> {
    let mut errors = Vec::new();
    // Steps outside a condition cannot consume what a conditional step produces (KFP would need
    // dag outputs of the condition group, which this emitter does not write).
    for step in p.steps.values() {
        for up in &step.upstream {
            if p.steps.get(up).is_some_and(|u| u.when.is_some()) {
                errors.push(err(
                    format!("steps.{}", step.name),
                    format!("depends on conditional step {up:?}: not expressible in the KFP IR this compiler emits"),
                ));
            }
        }
    }
    let mut components = Map::new();
    let mut executors = Map::new();
    let mut root_tasks = Map::new();
    let mut n_cond = 0;
    for name in &p.order {
        let step = &p.steps[name];
        let s = sanitize(name);
        components.insert(format!("comp-{s}"), component_spec(p, step));
        executors.insert(format!("exec-{s}"), executor(p, step, &mut errors));
        let Some(cond) = &step.when else {
            root_tasks.insert(s, task(step, Scope::Root));
            continue;
        };
        n_cond += 1;
        let cname = format!("condition-{n_cond}");
        // Everything the inner task and the condition use becomes a channel input of the group.
        let mut uses: BTreeMap<String, (Type, Binding)> = BTreeMap::new();
        for (ty, b) in step.inputs.values() {
            if let Some(ch) = channel_name(b) {
                uses.insert(ch, (*ty, b.clone()));
            }
        }
        for b in [&cond.left, &cond.right] {
            if let Some(ch) = channel_name(b) {
                let ty = match b {
                    Binding::Param(pn) => p.spec.parameters[pn].ty,
                    Binding::Output { step, output } => p.output_type(step, output).unwrap_or(Type::String),
                    _ => Type::String,
                };
                uses.insert(ch, (ty, b.clone()));
            }
        }
        let (mut def_params, mut def_arts, mut in_params, mut in_arts) =
            (Map::new(), Map::new(), Map::new(), Map::new());
        let mut deps = BTreeSet::new();
        for (ch, (ty, b)) in &uses {
            let source = match b {
                Binding::Param(pn) => json!({"componentInputParameter": pn}),
                Binding::Output { step: st, output } => {
                    deps.insert(sanitize(st));
                    if ty.is_artifact() {
                        json!({"taskOutputArtifact": {"producerTask": sanitize(st), "outputArtifactKey": output}})
                    } else {
                        json!({"taskOutputParameter": {"producerTask": sanitize(st), "outputParameterKey": output}})
                    }
                }
                _ => continue,
            };
            if ty.is_artifact() {
                def_arts.insert(ch.clone(), artifact_type(*ty));
                in_arts.insert(ch.clone(), source);
            } else {
                def_params.insert(ch.clone(), json!({"parameterType": parameter_type(*ty)}));
                in_params.insert(ch.clone(), source);
            }
        }
        for up in &step.upstream {
            deps.insert(sanitize(up));
        }
        let mut group = json!({"dag": {"tasks": {s.clone(): task(step, Scope::Condition)}}});
        let mut defs = Map::new();
        if !def_params.is_empty() {
            defs.insert("parameters".into(), Value::Object(def_params));
        }
        if !def_arts.is_empty() {
            defs.insert("artifacts".into(), Value::Object(def_arts));
        }
        if !defs.is_empty() {
            group["inputDefinitions"] = Value::Object(defs);
        }
        components.insert(format!("comp-{cname}"), group);
        let mut inputs = Map::new();
        if !in_params.is_empty() {
            inputs.insert("parameters".into(), Value::Object(in_params));
        }
        if !in_arts.is_empty() {
            inputs.insert("artifacts".into(), Value::Object(in_arts));
        }
        let mut t = json!({
            "componentRef": {"name": format!("comp-{cname}")},
            "taskInfo": {"name": format!("{}-gate", step.display_name)},
            "triggerPolicy": {"condition": cel(cond)},
            "inputs": Value::Object(inputs),
        });
        if !deps.is_empty() {
            t["dependentTasks"] = json!(deps.into_iter().collect::<Vec<_>>());
        }
        root_tasks.insert(cname, t);
    }
    let mut root_params = Map::new();
    for (name, ps) in &p.spec.parameters {
        let mut d = json!({"parameterType": parameter_type(ps.ty)});
        if let Some(v) = &ps.default {
            d["defaultValue"] = kfp_value(v, ps.ty);
            d["isOptional"] = json!(true);
        }
        if let Some(desc) = &ps.description {
            d["description"] = json!(desc);
        }
        root_params.insert(name.clone(), d);
    }
    let mut root = json!({"dag": {"tasks": Value::Object(root_tasks)}});
    if !root_params.is_empty() {
        root["inputDefinitions"] = json!({"parameters": Value::Object(root_params)});
    }
    let mut info = json!({"name": p.spec.name});
    if let Some(d) = &p.spec.description {
        info["description"] = json!(d);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(json!({
        "pipelineInfo": info,
        "root": root,
        "components": Value::Object(components),
        "deploymentSpec": {"executors": Value::Object(executors)},
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": concat!("pm-orchestrator-", env!("CARGO_PKG_VERSION")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(cores("500m"), Some(0.5));
        assert_eq!(cores("2"), Some(2.0));
        assert_eq!(gigabytes("4G"), Some(4.0));
        assert_eq!(gigabytes("512M"), Some(0.512));
        assert!((gigabytes("1Gi").unwrap() - 1.073741824).abs() < 1e-12);
        assert_eq!(gigabytes("lots"), None);
        assert_eq!(duration(30.0), "30s");
        assert_eq!(duration(1.5), "1.5s");
    }
}
