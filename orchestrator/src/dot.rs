//! The pipeline graph as Graphviz DOT and as Mermaid.

use crate::graph::{Binding, Pipeline};

fn edges(p: &Pipeline) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for step in p.steps.values() {
        let mut labelled = std::collections::BTreeSet::new();
        for (input, (_, b)) in &step.inputs {
            if let Binding::Output { step: from, output } = b {
                out.push((from.clone(), step.name.clone(), format!("{output} → {input}")));
                labelled.insert(from.clone());
            }
        }
        for up in &step.upstream {
            if !labelled.contains(up) {
                out.push((up.clone(), step.name.clone(), String::new()));
            }
        }
    }
    out
}

pub fn dot(p: &Pipeline) -> String {
    let mut s = format!("digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", p.spec.name);
    for name in &p.order {
        let step = &p.steps[name];
        let label = match &step.when {
            Some(c) => format!("{}\\n({})\\nwhen {}", name, step.component, c.text.replace('"', "'")),
            None => format!("{}\\n({})", name, step.component),
        };
        s.push_str(&format!(
            "  \"{name}\" [label=\"{label}\"{}];\n",
            if step.when.is_some() { ", style=\"rounded,dashed\"" } else { "" }
        ));
    }
    for (a, b, l) in edges(p) {
        s.push_str(&format!("  \"{a}\" -> \"{b}\" [label=\"{l}\"];\n"));
    }
    s.push_str("}\n");
    s
}

pub fn mermaid(p: &Pipeline) -> String {
    let id = |n: &str| n.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    let mut s = String::from("flowchart LR\n");
    for name in &p.order {
        let step = &p.steps[name];
        s.push_str(&format!("  {}[\"{} ({})\"]\n", id(name), name, step.component));
    }
    for (a, b, l) in edges(p) {
        if l.is_empty() {
            s.push_str(&format!("  {} --> {}\n", id(&a), id(&b)));
        } else {
            s.push_str(&format!("  {} -- \"{}\" --> {}\n", id(&a), l, id(&b)));
        }
    }
    for (name, step) in &p.steps {
        if let Some(c) = &step.when {
            s.push_str(&format!("  %% {} runs when {}\n", id(name), c.text));
        }
    }
    s
}
