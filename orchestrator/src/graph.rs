//! The validated pipeline: a petgraph DAG of steps with resolved, type-checked bindings.
//!
//! **Architecture invariant:** this module knows nothing about processes, Kubeflow or Vertex AI.
//! Backends (`local`, `kfp`, `vertex`) are functions of a [`Pipeline`].

use std::collections::{BTreeMap, BTreeSet};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;

use crate::spec::{ComponentSpec, PipelineSpec, ResourceSpec, RetrySpec, SpecError, StepSpec, Type, err};

/// Where a step input's value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    Literal(Value),
    Param(String),
    Output {
        step: String,
        output: String,
    },
    /// Not bound: the component's default.
    Default(Value),
}

/// A comparison operator of a `when` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// `left op right`, each side a reference (parameter or step output) or a literal.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub left: Binding,
    pub op: CmpOp,
    pub right: Binding,
    pub text: String,
}

/// One step, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub component: String,
    /// Every component input: its type and binding.
    pub inputs: BTreeMap<String, (Type, Binding)>,
    pub outputs: BTreeMap<String, Type>,
    pub when: Option<Condition>,
    pub retries: Option<RetrySpec>,
    pub timeout_seconds: Option<u64>,
    pub cache: bool,
    pub resources: ResourceSpec,
    pub env: BTreeMap<String, String>,
    pub display_name: String,
    /// Steps this one waits for (data dependencies, condition inputs and `after`).
    pub upstream: BTreeSet<String>,
}

/// A validated pipeline.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub spec: PipelineSpec,
    pub steps: BTreeMap<String, Step>,
    pub graph: DiGraph<String, ()>,
    /// Steps in a topological order (ties broken by name, so the order is stable).
    pub order: Vec<String>,
}

impl Pipeline {
    /// Checks and converts run-time parameter values for a pipeline: known names, right types,
    /// required ones present.
    pub fn parameter_values(
        &self,
        values: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, Value>, Vec<SpecError>> {
        let mut errors = Vec::new();
        for (k, v) in values {
            match self.spec.parameters.get(k) {
                None => errors.push(err(format!("parameters.{k}"), "unknown parameter")),
                Some(ps) if !literal_fits(v, ps.ty) => {
                    errors.push(err(format!("parameters.{k}"), format!("{v} is not {}", ps.ty.article())));
                }
                Some(_) => {}
            }
        }
        for (k, ps) in &self.spec.parameters {
            if ps.default.is_none() && !values.contains_key(k) {
                errors.push(err(
                    format!("parameters.{k}"),
                    format!("required parameter ({}) has no value", ps.ty.name()),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(values
            .iter()
            .map(|(k, v)| {
                let ty = self.spec.parameters[k].ty;
                let v = match (ty, v.as_f64()) {
                    (Type::Int | Type::Float, Some(x)) => Value::from(x),
                    _ => v.clone(),
                };
                (k.clone(), v)
            })
            .collect())
    }

    /// Points every image under `localhost/` (what `make images` builds) at `registry`:
    /// `localhost/pm/pm-train:0.1.0` becomes `<registry>/pm/pm-train:0.1.0`. Cloud runners
    /// (Vertex AI, Kubeflow) pull from a registry, not from the build machine.
    pub fn with_image_registry(mut self, registry: &str) -> Self {
        let registry = registry.trim_end_matches('/');
        for c in self.spec.components.values_mut() {
            if let Some(rest) = c.image.strip_prefix("localhost/") {
                c.image = format!("{registry}/{rest}");
            }
        }
        self
    }
}

/// A placeholder inside component args.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placeholder {
    /// `{{inputs.NAME}}`: a parameter input's value.
    InputValue(String),
    /// `{{inputs.NAME.uri}}`: an artifact input's location.
    InputUri(String),
    /// `{{outputs.NAME.uri}}`: where to write an output artifact (a store URL).
    OutputUri(String),
    /// `{{outputs.NAME.path}}`: a local file path for an output artifact.
    OutputPath(String),
    /// `{{outputs.NAME.file}}`: the file to write an output parameter's value into.
    OutputFile(String),
}

/// A component argument: text and placeholders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Ph(Placeholder),
}

/// Splits an argument into text and `{{...}}` pieces.
pub fn parse_arg(arg: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_string()));
        }
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed placeholder in {arg:?}"))?;
        let inner = after[..end].trim();
        let parts: Vec<&str> = inner.split('.').collect();
        let ph = match parts.as_slice() {
            ["inputs", n] => Placeholder::InputValue(n.to_string()),
            ["inputs", n, "uri"] => Placeholder::InputUri(n.to_string()),
            ["outputs", n, "uri"] => Placeholder::OutputUri(n.to_string()),
            ["outputs", n, "path"] => Placeholder::OutputPath(n.to_string()),
            ["outputs", n, "file"] => Placeholder::OutputFile(n.to_string()),
            _ => {
                return Err(format!(
                    "unknown placeholder {{{{{inner}}}}} (expected inputs.NAME, inputs.NAME.uri, outputs.NAME.uri, outputs.NAME.path or outputs.NAME.file)"
                ));
            }
        };
        out.push(Piece::Ph(ph));
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// A binding expression: `{{params.NAME}}`, `{{steps.STEP.outputs.NAME}}`, or a literal.
pub fn parse_binding(v: &Value) -> Result<Binding, String> {
    let Value::String(s) = v else {
        return Ok(Binding::Literal(v.clone()));
    };
    let t = s.trim();
    if !t.contains("{{") {
        return Ok(Binding::Literal(v.clone()));
    }
    let inner = t
        .strip_prefix("{{")
        .and_then(|x| x.strip_suffix("}}"))
        .ok_or_else(|| format!("{s:?}: a binding is a literal or exactly one {{{{...}}}} reference"))?
        .trim();
    let parts: Vec<&str> = inner.split('.').collect();
    match parts.as_slice() {
        ["params", p] => Ok(Binding::Param(p.to_string())),
        ["steps", st, "outputs", o] => Ok(Binding::Output { step: st.to_string(), output: o.to_string() }),
        _ => Err(format!("unknown reference {{{{{inner}}}}} (expected params.NAME or steps.STEP.outputs.NAME)")),
    }
}

fn parse_condition(text: &str) -> Result<Condition, String> {
    let ops = [
        ("==", CmpOp::Eq),
        ("!=", CmpOp::Ne),
        (">=", CmpOp::Ge),
        ("<=", CmpOp::Le),
        (">", CmpOp::Gt),
        ("<", CmpOp::Lt),
    ];
    for (sym, op) in ops {
        if let Some((l, r)) = text.split_once(sym) {
            let side = |s: &str| -> Result<Binding, String> {
                let s = s.trim();
                if s.starts_with("{{") {
                    return parse_binding(&Value::String(s.to_string()));
                }
                // A literal: JSON scalars; 'quoted' or bare words are strings.
                let lit = serde_json::from_str::<Value>(s)
                    .unwrap_or_else(|_| Value::String(s.trim_matches('\'').trim_matches('"').to_string()));
                Ok(Binding::Literal(lit))
            };
            return Ok(Condition { left: side(l)?, op, right: side(r)?, text: text.to_string() });
        }
    }
    Err(format!("{text:?}: expected `<reference> <op> <value>` with op one of == != < <= > >="))
}

/// The type of a JSON literal, if it fits `ty`.
pub fn literal_fits(v: &Value, ty: Type) -> bool {
    match ty {
        Type::String | Type::Uri => v.is_string(),
        Type::Int => v.as_i64().is_some() || v.as_u64().is_some(),
        Type::Float => v.is_number(),
        Type::Bool => v.is_boolean(),
        _ => false,
    }
}

/// What a name in a pipeline may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// Steps and components: letters, digits, `_` and `-`, starting with a letter (Kubeflow task
    /// and component names).
    Node,
    /// Parameters, inputs and outputs: letters, digits and `_`, not starting with a digit (they
    /// are keyword arguments in the kfp SDK).
    Value,
}

/// The longest name accepted (a Kubernetes label value's limit).
pub const MAX_NAME_LEN: usize = 63;

/// Whether `name` is a valid name of its kind. Names become file and object paths in the local
/// backend (`runs/<run>/<step>/<output>`), so this also keeps every path inside the run's
/// folders: no `/`, no `.`, nothing absolute.
pub fn valid_name(name: &str, kind: NameKind) -> bool {
    let mut chars = name.chars();
    let first_ok = match (kind, chars.next()) {
        (NameKind::Node, Some(c)) => c.is_ascii_alphabetic(),
        (NameKind::Value, Some(c)) => c.is_ascii_alphabetic() || c == '_',
        (_, None) => false,
    };
    first_ok
        && name.len() <= MAX_NAME_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (c == '-' && kind == NameKind::Node))
}

/// The error for a name that is not valid, at `path`.
fn name_error(path: String, name: &str, kind: NameKind) -> SpecError {
    let rule = match kind {
        NameKind::Node => "letters, digits, '_' and '-', starting with a letter",
        NameKind::Value => "letters, digits and '_', not starting with a digit",
    };
    err(path, format!("{name:?} is not a valid name: use {rule}, at most {MAX_NAME_LEN} characters"))
}

/// Every name of the document that is not valid, with its YAML path.
fn check_names(spec: &PipelineSpec, errors: &mut Vec<SpecError>) {
    for p in spec.parameters.keys().filter(|p| !valid_name(p, NameKind::Value)) {
        errors.push(name_error(format!("parameters.{p}"), p, NameKind::Value));
    }
    for (c, comp) in &spec.components {
        if !valid_name(c, NameKind::Node) {
            errors.push(name_error(format!("components.{c}"), c, NameKind::Node));
        }
        for (what, names) in [("inputs", &comp.inputs), ("outputs", &comp.outputs)] {
            for n in names.keys().filter(|n| !valid_name(n, NameKind::Value)) {
                errors.push(name_error(format!("components.{c}.{what}.{n}"), n, NameKind::Value));
            }
        }
    }
    for s in spec.steps.keys().filter(|s| !valid_name(s, NameKind::Node)) {
        errors.push(name_error(format!("steps.{s}"), s, NameKind::Node));
    }
}

/// Makes a KFP/Vertex-safe name: lower case, `[a-z0-9-]`.
pub fn sanitize(name: &str) -> String {
    let s: String =
        name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    s.trim_matches('-').to_string()
}

impl Pipeline {
    /// Validates a parsed document; returns every problem found.
    pub fn build(spec: PipelineSpec) -> Result<Pipeline, Vec<SpecError>> {
        let mut errors = Vec::new();
        let name_ok = !spec.name.is_empty()
            && spec.name.len() <= 113
            && spec.name.starts_with(|c: char| c.is_ascii_lowercase())
            && spec.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !name_ok {
            errors.push(err("name", format!("{:?} must be lower-case letters, digits and dashes, starting with a letter, at most 113 characters", spec.name)));
        }
        for (p, ps) in &spec.parameters {
            if ps.ty.is_artifact() {
                errors.push(err(
                    format!("parameters.{p}.type"),
                    format!("pipeline parameters are values, not artifacts ({})", ps.ty.name()),
                ));
            }
            if let Some(d) = &ps.default
                && !literal_fits(d, ps.ty)
            {
                errors.push(err(format!("parameters.{p}.default"), format!("{d} is not {}", ps.ty.article())));
            }
        }
        check_names(&spec, &mut errors);
        let d = &spec.defaults;
        check_settings("defaults", d.retries.as_ref(), d.timeout_seconds, d.resources.as_ref(), &mut errors);
        for (c, comp) in &spec.components {
            check_component(c, comp, &mut errors);
        }
        // KFP task and component names are sanitised: two steps must not collide.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for s in spec.steps.keys() {
            if let Some(prev) = seen.insert(sanitize(s), s) {
                errors.push(err(
                    format!("steps.{s}"),
                    format!("duplicate name: {s:?} and {prev:?} both become {:?}", sanitize(s)),
                ));
            }
        }
        if spec.steps.is_empty() {
            errors.push(err("steps", "a pipeline needs at least one step"));
        }

        let mut steps = BTreeMap::new();
        for (name, st) in &spec.steps {
            if let Some(step) = resolve_step(&spec, name, st, &mut errors) {
                steps.insert(name.clone(), step);
            }
        }

        // The graph and its order.
        let mut graph = DiGraph::<String, ()>::new();
        let mut idx: BTreeMap<String, NodeIndex> = BTreeMap::new();
        for name in steps.keys() {
            idx.insert(name.clone(), graph.add_node(name.clone()));
        }
        for (name, step) in &steps {
            for up in &step.upstream {
                if let (Some(&a), Some(&b)) = (idx.get(up), idx.get(name)) {
                    graph.add_edge(a, b, ());
                }
            }
        }
        let mut order = Vec::new();
        match toposort(&graph, None) {
            Ok(_) => order = stable_order(&steps),
            Err(cycle) => {
                let start = graph[cycle.node_id()].clone();
                let path = cycle_path(&steps, &start);
                errors.push(err(format!("steps.{start}"), format!("dependency cycle: {}", path.join(" -> "))));
            }
        }
        if errors.is_empty() {
            Ok(Pipeline { spec, steps, graph, order })
        } else {
            errors.sort();
            errors.dedup();
            Err(errors)
        }
    }

    /// Output type of `step.output`.
    pub fn output_type(&self, step: &str, output: &str) -> Option<Type> {
        self.steps.get(step).and_then(|s| s.outputs.get(output)).copied()
    }

    pub fn component(&self, step: &Step) -> &ComponentSpec {
        &self.spec.components[&step.component]
    }
}

/// Each step's dependents (the reverse of `upstream`), for the linear walks below.
fn dependents(steps: &BTreeMap<String, Step>) -> BTreeMap<&str, Vec<&str>> {
    let mut down: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, step) in steps {
        for up in step.upstream.iter().filter(|u| steps.contains_key(*u)) {
            down.entry(up.as_str()).or_default().push(name.as_str());
        }
    }
    down
}

/// Kahn's algorithm with the ready steps taken by name: a stable, readable topological order, in
/// O((steps + edges) log steps).
fn stable_order(steps: &BTreeMap<String, Step>) -> Vec<String> {
    let down = dependents(steps);
    let mut indeg: BTreeMap<&str, usize> = steps
        .iter()
        .map(|(name, step)| (name.as_str(), step.upstream.iter().filter(|u| steps.contains_key(*u)).count()))
        .collect();
    let mut ready: BTreeSet<&str> = indeg.iter().filter(|(_, d)| **d == 0).map(|(k, _)| *k).collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(n) = ready.pop_first() {
        order.push(n.to_string());
        for &next in down.get(n).into_iter().flatten() {
            if let Some(d) = indeg.get_mut(next) {
                *d -= 1;
                if *d == 0 {
                    ready.insert(next);
                }
            }
        }
    }
    order
}

/// A path from `start` back to itself along dependents (a step known to be on a cycle), found
/// by an iterative depth-first search that visits each step once.
fn cycle_path(steps: &BTreeMap<String, Step>, start: &str) -> Vec<String> {
    let down = dependents(steps);
    let mut seen: BTreeSet<&str> = BTreeSet::from([start]);
    // The path so far, each step with the index of the next dependent to try.
    let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
    while let Some((at, i)) = stack.last_mut() {
        let next = down.get(*at).and_then(|d| d.get(*i)).copied();
        *i += 1;
        match next {
            None => {
                stack.pop();
            }
            Some(n) if n == start => {
                let mut path: Vec<String> = stack.iter().map(|(s, _)| s.to_string()).collect();
                path.push(start.to_string());
                return path;
            }
            Some(n) => {
                if seen.insert(n) {
                    stack.push((n, 0));
                }
            }
        }
    }
    vec![start.to_string()]
}

fn check_component(c: &str, comp: &ComponentSpec, errors: &mut Vec<SpecError>) {
    if comp.image.trim().is_empty() {
        errors.push(err(format!("components.{c}.image"), "must not be empty"));
    }
    if comp.command.is_empty() || comp.command[0].trim().is_empty() {
        errors.push(err(format!("components.{c}.command"), "must name the binary to run"));
    }
    for (i, d) in &comp.inputs {
        if let Some(v) = &d.default {
            if d.ty.is_artifact() {
                errors.push(err(format!("components.{c}.inputs.{i}.default"), "artifact inputs cannot have defaults"));
            } else if !literal_fits(v, d.ty) {
                errors
                    .push(err(format!("components.{c}.inputs.{i}.default"), format!("{v} is not {}", d.ty.article())));
            }
        }
    }
    for (i, o) in &comp.outputs {
        if o.default.is_some() {
            errors.push(err(format!("components.{c}.outputs.{i}.default"), "outputs have no default"));
        }
        if o.ty == Type::Uri {
            errors.push(err(
                format!("components.{c}.outputs.{i}.type"),
                "an output is a parameter or an artifact, not a uri",
            ));
        }
    }
    for (k, arg) in comp.args.iter().enumerate() {
        let path = format!("components.{c}.args[{k}]");
        match parse_arg(arg) {
            Err(e) => errors.push(err(path, e)),
            Ok(pieces) => {
                // A value on its own after `--flag` is read as an option when it starts with '-'
                // (a negative number, a dash-led string): `--flag=VALUE` reaches the step intact.
                if let ([Piece::Ph(Placeholder::InputValue(n))], Some(flag)) =
                    (pieces.as_slice(), k.checked_sub(1).and_then(|j| comp.args.get(j)))
                    && flag.starts_with("--")
                    && !flag.contains('=')
                    && !flag.contains("{{")
                {
                    errors.push(err(
                        path.clone(),
                        format!(
                            "write \"{flag}={{{{inputs.{n}}}}}\": a value given as its own argument after {flag} is read as an option when it starts with '-'"
                        ),
                    ));
                }
                for piece in pieces {
                    let Piece::Ph(ph) = piece else { continue };
                    let problem = match &ph {
                        Placeholder::InputValue(n) => match comp.inputs.get(n) {
                            None => Some(format!("{{{{inputs.{n}}}}}: the component has no input {n:?}")),
                            Some(d) if d.ty.is_artifact() => {
                                Some(format!("{{{{inputs.{n}}}}}: {n:?} is an artifact; use {{{{inputs.{n}.uri}}}}"))
                            }
                            _ => None,
                        },
                        Placeholder::InputUri(n) => match comp.inputs.get(n) {
                            None => Some(format!("{{{{inputs.{n}.uri}}}}: the component has no input {n:?}")),
                            Some(d) if !d.ty.is_artifact() => {
                                Some(format!("{{{{inputs.{n}.uri}}}}: {n:?} is a parameter; use {{{{inputs.{n}}}}}"))
                            }
                            _ => None,
                        },
                        Placeholder::OutputUri(n) | Placeholder::OutputPath(n) => match comp.outputs.get(n) {
                            None => Some(format!("the component has no output {n:?}")),
                            Some(d) if !d.ty.is_artifact() => {
                                Some(format!("{n:?} is a parameter output; use {{{{outputs.{n}.file}}}}"))
                            }
                            _ => None,
                        },
                        Placeholder::OutputFile(n) => match comp.outputs.get(n) {
                            None => Some(format!("the component has no output {n:?}")),
                            Some(d) if d.ty.is_artifact() => {
                                Some(format!("{n:?} is an artifact output; use {{{{outputs.{n}.uri}}}}"))
                            }
                            _ => None,
                        },
                    };
                    if let Some(p) = problem {
                        errors.push(err(path.clone(), p));
                    }
                }
            }
        }
    }
}

/// The type of what a binding refers to, checking that it exists.
fn binding_type(
    spec: &PipelineSpec,
    b: &Binding,
    path: &str,
    self_step: &str,
    errors: &mut Vec<SpecError>,
) -> Option<Type> {
    match b {
        Binding::Param(p) => match spec.parameters.get(p) {
            Some(ps) => Some(ps.ty),
            None => {
                errors.push(err(path, format!("unknown parameter {p:?}")));
                None
            }
        },
        Binding::Output { step, output } => {
            if step == self_step {
                errors.push(err(path, format!("step {step:?} cannot use its own output")));
                return None;
            }
            let Some(st) = spec.steps.get(step) else {
                errors.push(err(path, format!("unknown step {step:?}")));
                return None;
            };
            let comp = spec.components.get(&st.component)?;
            match comp.outputs.get(output) {
                Some(o) => Some(o.ty),
                None => {
                    errors.push(err(path, format!("step {step:?} has no output {output:?}")));
                    None
                }
            }
        }
        Binding::Literal(_) | Binding::Default(_) => None,
    }
}

fn resolve_step(spec: &PipelineSpec, name: &str, st: &StepSpec, errors: &mut Vec<SpecError>) -> Option<Step> {
    let at = |k: &str| format!("steps.{name}.{k}");
    let Some(comp) = spec.components.get(&st.component) else {
        errors.push(err(at("component"), format!("unknown component {:?}", st.component)));
        return None;
    };
    let mut upstream = BTreeSet::new();
    let mut inputs = BTreeMap::new();
    for key in st.with_.keys() {
        if !comp.inputs.contains_key(key) {
            errors.push(err(
                format!("steps.{name}.with.{key}"),
                format!("component {:?} has no input {key:?}", st.component),
            ));
        }
    }
    for (input, decl) in &comp.inputs {
        let path = format!("steps.{name}.with.{input}");
        let binding = match st.with_.get(input) {
            None => match &decl.default {
                Some(d) => Binding::Default(d.clone()),
                None => {
                    errors.push(err(
                        format!("steps.{name}.with"),
                        format!("missing required input {input:?} ({})", decl.ty.name()),
                    ));
                    continue;
                }
            },
            Some(v) => match parse_binding(v) {
                Ok(b) => b,
                Err(e) => {
                    errors.push(err(path, e));
                    continue;
                }
            },
        };
        match &binding {
            Binding::Literal(v) => {
                if decl.ty.is_artifact() {
                    errors.push(err(
                        &path,
                        format!("{input:?} is a {} artifact: bind it to a step output", decl.ty.name()),
                    ));
                } else if !literal_fits(v, decl.ty) {
                    errors.push(err(&path, format!("type mismatch: {v} is not {}", decl.ty.article())));
                }
            }
            Binding::Param(_) | Binding::Output { .. } => {
                if let Some(ty) = binding_type(spec, &binding, &path, name, errors)
                    && !decl.ty.accepts(ty)
                {
                    errors.push(err(
                        &path,
                        format!("type mismatch: input {input:?} is {}, the value is {}", decl.ty.name(), ty.name()),
                    ));
                }
            }
            Binding::Default(_) => {}
        }
        if let Binding::Output { step, .. } = &binding {
            upstream.insert(step.clone());
        }
        inputs.insert(input.clone(), (decl.ty, binding));
    }
    let when = match &st.when {
        None => None,
        Some(text) => match parse_condition(text) {
            Err(e) => {
                errors.push(err(at("when"), e));
                None
            }
            Ok(c) => {
                let mut types = Vec::new();
                for side in [&c.left, &c.right] {
                    match side {
                        Binding::Literal(v) => types.push((None, Some(v.clone()))),
                        b => {
                            let ty = binding_type(spec, b, &at("when"), name, errors);
                            if let Some(t) = ty
                                && t.is_artifact()
                            {
                                errors.push(err(
                                    at("when"),
                                    format!("conditions compare values, not {} artifacts", t.name()),
                                ));
                            }
                            if let Binding::Output { step, .. } = b {
                                upstream.insert(step.clone());
                            }
                            types.push((ty, None));
                        }
                    }
                }
                // Literal against reference: the literal must fit the reference's type.
                for (ty, lit) in [(&types[0].0, &types[1].1), (&types[1].0, &types[0].1)] {
                    if let (Some(t), Some(v)) = (ty, lit)
                        && !t.is_artifact()
                        && !literal_fits(v, *t)
                    {
                        errors.push(err(at("when"), format!("type mismatch: {v} is not {}", t.article())));
                    }
                }
                Some(c)
            }
        },
    };
    for a in &st.after {
        if !spec.steps.contains_key(a) {
            errors.push(err(at("after"), format!("unknown step {a:?}")));
        } else if a == name {
            errors.push(err(at("after"), "a step cannot wait for itself"));
        } else {
            upstream.insert(a.clone());
        }
    }
    let d = &spec.defaults;
    let mut env = d.env.clone();
    env.extend(st.env.clone());
    check_settings(&format!("steps.{name}"), st.retries.as_ref(), st.timeout_seconds, st.resources.as_ref(), errors);
    let retries = st.retries.clone().or_else(|| d.retries.clone());
    Some(Step {
        name: name.to_string(),
        component: st.component.clone(),
        inputs,
        outputs: comp.outputs.iter().map(|(k, v)| (k.clone(), v.ty)).collect(),
        when,
        retries,
        timeout_seconds: st.timeout_seconds.or(d.timeout_seconds),
        cache: st.cache.or(d.cache).unwrap_or(true),
        resources: st.resources.clone().or_else(|| d.resources.clone()).unwrap_or_default(),
        env,
        display_name: st.display_name.clone().unwrap_or_else(|| name.to_string()),
        upstream,
    })
}

/// The most retries a step may have.
pub const MAX_RETRIES: u32 = 100;
/// The longest backoff between two attempts, and the longest step timeout, in seconds (a day and
/// a week).
pub const MAX_BACKOFF_SECONDS: f64 = 86_400.0;
pub const MAX_TIMEOUT_SECONDS: u64 = 604_800;
/// The largest backoff factor.
pub const MAX_BACKOFF_FACTOR: f64 = 100.0;

/// Checks the numbers of a step's settings (or of `defaults`) at `path`: every one finite and
/// within the bounds above, so that no backend meets a number it cannot use.
fn check_settings(
    path: &str,
    retries: Option<&RetrySpec>,
    timeout: Option<u64>,
    resources: Option<&ResourceSpec>,
    errors: &mut Vec<SpecError>,
) {
    if let Some(r) = retries {
        if r.max > MAX_RETRIES {
            errors.push(err(format!("{path}.retries.max"), format!("{} is more than {MAX_RETRIES} retries", r.max)));
        }
        let seconds = |v: f64| (0.0..=MAX_BACKOFF_SECONDS).contains(&v);
        if !seconds(r.backoff_seconds) {
            errors.push(err(
                format!("{path}.retries.backoff_seconds"),
                format!("{:?} is not between 0 and {MAX_BACKOFF_SECONDS} seconds", r.backoff_seconds),
            ));
        }
        if !(1.0..=MAX_BACKOFF_FACTOR).contains(&r.backoff_factor) {
            errors.push(err(
                format!("{path}.retries.backoff_factor"),
                format!("{:?} is not between 1 and {MAX_BACKOFF_FACTOR}", r.backoff_factor),
            ));
        }
        if !seconds(r.backoff_max_seconds) || r.backoff_max_seconds < r.backoff_seconds {
            errors.push(err(
                format!("{path}.retries.backoff_max_seconds"),
                format!(
                    "{:?} is not between backoff_seconds ({:?}) and {MAX_BACKOFF_SECONDS} seconds",
                    r.backoff_max_seconds, r.backoff_seconds
                ),
            ));
        }
    }
    if let Some(t) = timeout
        && !(1..=MAX_TIMEOUT_SECONDS).contains(&t)
    {
        errors.push(err(
            format!("{path}.timeout_seconds"),
            format!("{t} is not between 1 and {MAX_TIMEOUT_SECONDS} seconds (a week)"),
        ));
    }
    if let Some(r) = resources {
        let at = |k: &str| format!("{path}.resources.{k}");
        let mut quantity = |k: &str, q: &Option<String>, parse: fn(&str) -> Option<f64>, max: f64, unit: &str| {
            let q = q.as_deref()?;
            match parse(q) {
                Some(v) if v > 0.0 && v <= max => Some(v),
                _ => {
                    errors.push(err(at(k), format!("{q:?} is not a quantity above 0 and at most {max} {unit}")));
                    None
                }
            }
        };
        let cpu = (
            quantity("cpu_request", &r.cpu_request, cores, MAX_CORES, "cores"),
            quantity("cpu_limit", &r.cpu_limit, cores, MAX_CORES, "cores"),
        );
        let memory = (
            quantity("memory_request", &r.memory_request, gigabytes, MAX_GIGABYTES, "GB"),
            quantity("memory_limit", &r.memory_limit, gigabytes, MAX_GIGABYTES, "GB"),
        );
        let texts = [(&r.cpu_request, &r.cpu_limit), (&r.memory_request, &r.memory_limit)];
        for ((what, (request, limit)), (rq, lq)) in [("cpu", cpu), ("memory", memory)].into_iter().zip(texts) {
            if let (Some(request), Some(limit), Some(rq), Some(lq)) = (request, limit, rq, lq)
                && request > limit
            {
                errors.push(err(at(&format!("{what}_request")), format!("{rq:?} is more than {what}_limit {lq:?}")));
            }
        }
    }
}

/// The largest CPU and memory quantities accepted.
const MAX_CORES: f64 = 1024.0;
const MAX_GIGABYTES: f64 = 1e6;

/// CPU quantity in cores: "2" → 2, "500m" → 0.5 (`None` if it is not a finite number).
pub fn cores(q: &str) -> Option<f64> {
    let v = match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|v| v / 1000.0),
        None => q.parse().ok(),
    };
    v.filter(|v| v.is_finite())
}

/// Memory quantity in GB (decimal), as the KFP SDK's legacy float fields: "4G" → 4, "1Gi" →
/// 1.07 (`None` if it is not a finite number).
pub fn gigabytes(q: &str) -> Option<f64> {
    let units: [(&str, f64); 8] = [
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("Ti", 1024f64.powi(4)),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    let v = units
        .iter()
        .find_map(|(suffix, mult)| q.strip_suffix(suffix).map(|n| n.parse::<f64>().ok().map(|v| v * mult / 1e9)))
        .unwrap_or_else(|| q.parse::<f64>().ok().map(|bytes| bytes / 1e9));
    v.filter(|v| v.is_finite())
}

/// Validates a document from text: parse errors, then every semantic error.
pub fn load(text: &str) -> Result<Pipeline, Vec<SpecError>> {
    Pipeline::build(crate::spec::parse(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_bindings_parse() {
        assert_eq!(
            parse_arg("--x={{inputs.a}}/{{outputs.m.uri}}").unwrap(),
            vec![
                Piece::Text("--x=".into()),
                Piece::Ph(Placeholder::InputValue("a".into())),
                Piece::Text("/".into()),
                Piece::Ph(Placeholder::OutputUri("m".into())),
            ]
        );
        assert!(parse_arg("{{inputs.a").unwrap_err().contains("unclosed"));
        assert!(parse_arg("{{params.a}}").unwrap_err().contains("unknown placeholder"));
        assert_eq!(parse_binding(&Value::from("{{ params.h }}")).unwrap(), Binding::Param("h".into()));
        assert_eq!(
            parse_binding(&Value::from("{{steps.train.outputs.model}}")).unwrap(),
            Binding::Output { step: "train".into(), output: "model".into() }
        );
        assert_eq!(parse_binding(&Value::from(3)).unwrap(), Binding::Literal(Value::from(3)));
        assert!(parse_binding(&Value::from("x {{params.h}}")).is_err());
        let c = parse_condition("{{steps.evaluate.outputs.blessed}} == true").unwrap();
        assert_eq!(c.op, CmpOp::Eq);
        assert_eq!(c.right, Binding::Literal(Value::Bool(true)));
        assert_eq!(parse_condition("{{params.a}} >= 0.5").unwrap().op, CmpOp::Ge);
        assert!(parse_condition("{{params.a}}").is_err());
    }

    #[test]
    fn sanitized_names() {
        assert_eq!(sanitize("Train_Model"), "train-model");
    }
}
