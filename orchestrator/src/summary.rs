//! The end-of-run summary: a Vertex-console-like table of steps, and the key outputs.

use crate::local::{RunRecord, StepStatus};

fn status_text(s: StepStatus) -> &'static str {
    match s {
        StepStatus::Pending => "pending",
        StepStatus::Running => "running",
        StepStatus::Succeeded => "succeeded",
        StepStatus::Cached => "cached",
        StepStatus::Skipped => "skipped",
        StepStatus::Failed => "FAILED",
        StepStatus::NotRun => "not run",
    }
}

/// Renders a run record as text.
pub fn render(r: &RunRecord, order: &[String]) -> String {
    let total: f64 = r.steps.values().map(|s| s.duration_secs).sum::<f64>().max(1e-9);
    let mut out = format!(
        "Pipeline {}  run {}  {}  in {:.1} s\n\n",
        r.pipeline,
        r.run_id,
        r.status.to_uppercase(),
        r.duration_secs
    );
    out.push_str(&format!(
        "{:<12} {:<10} {:>8} {:>9} {:>6} {:<6} {}\n",
        "step", "status", "attempts", "duration", "share", "cached", "outputs"
    ));
    for name in order {
        let Some(s) = r.steps.get(name) else { continue };
        let outputs: Vec<String> = s
            .outputs
            .iter()
            .filter_map(|(k, o)| {
                o.value.as_ref().map(|v| match v.as_f64() {
                    Some(x) if x.fract() != 0.0 => format!("{k}={x:.4}"),
                    _ => format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                })
            })
            .collect();
        let detail = if outputs.is_empty() { s.message.clone().unwrap_or_default() } else { outputs.join(" ") };
        out.push_str(&format!(
            "{:<12} {:<10} {:>8} {:>8.2}s {:>5.0}% {:<6} {}\n",
            name,
            status_text(s.status),
            s.attempts,
            s.duration_secs,
            100.0 * s.duration_secs / total,
            if s.status == StepStatus::Cached { "yes" } else { "no" },
            detail
        ));
    }
    // The results a reader looks for first, wherever a step reported them.
    let find = |key: &str| r.steps.values().find_map(|s| s.outputs.get(key).and_then(|o| o.value.clone()));
    let mut key = Vec::new();
    if let Some(v) = find("roc_auc").and_then(|v| v.as_f64()) {
        key.push(format!("test ROC AUC {v:.4}"));
    }
    if let Some(v) = find("blessed") {
        key.push(format!("blessed: {v}"));
    }
    match r.steps.get("deploy").map(|s| (s.status, s.outputs.get("version").and_then(|o| o.value.clone()))) {
        Some((StepStatus::Succeeded, Some(v))) if v.as_str().is_some_and(|s| !s.is_empty()) => {
            key.push(format!("promoted version: {}", v.as_str().unwrap_or_default()))
        }
        Some((StepStatus::Skipped, _)) => key.push("nothing promoted (not blessed)".into()),
        _ => {}
    }
    if !key.is_empty() {
        out.push_str(&format!("\n{}\n", key.join("  ·  ")));
    }
    out
}
