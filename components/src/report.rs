//! The offline evaluation report: one HTML file with inline SVG charts (ROC and PR curves,
//! lead-time histogram, feature importance). No scripts, no external assets: it opens anywhere,
//! including as a KFP/Vertex `HTML` artifact.

use std::fmt::Write as _;

use pm_core::artifacts::bundle::ModelBundle;
use pm_core::data::time::Timestamp;
use pm_core::eval::evaluation::{Evaluation, TestMetrics};
use pm_core::html::escape as esc;

const W: f64 = 420.0;
const H: f64 = 300.0;
const PAD: f64 = 45.0;

/// A line chart on [0, 1] x [0, 1].
fn unit_chart(title: &str, x_label: &str, y_label: &str, points: &[(f64, f64)], diagonal: bool) -> String {
    let sx = |x: f64| PAD + x.clamp(0.0, 1.0) * (W - 2.0 * PAD);
    let sy = |y: f64| H - PAD - y.clamp(0.0, 1.0) * (H - 2.0 * PAD);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="{PAD}" y="{PAD}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        W - 2.0 * PAD,
        H - 2.0 * PAD
    );
    for k in 0..=4 {
        let v = f64::from(k) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{v:.2}</text>"#,
            sx(v),
            H - PAD + 14.0
        );
        let _ =
            write!(s, r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{v:.2}</text>"#, PAD - 4.0, sy(v) + 3.0);
    }
    if diagonal {
        let _ = write!(
            s,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ccc" stroke-dasharray="4"/>"##,
            sx(0.0),
            sy(0.0),
            sx(1.0),
            sy(1.0)
        );
    }
    let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
    let _ = write!(s, r##"<polyline fill="none" stroke="#1f6feb" stroke-width="2" points="{}"/>"##, path.join(" "));
    title_and_x_label(&mut s, title, x_label);
    let _ = write!(
        s,
        r#"<text x="12" y="{}" font-size="11" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>"#,
        H / 2.0,
        H / 2.0,
        esc(y_label)
    );
    s.push_str("</svg>");
    s
}

/// A chart's title (top) and x-axis label (bottom).
fn title_and_x_label(s: &mut String, title: &str, x_label: &str) {
    let _ = write!(
        s,
        r#"<text x="{}" y="18" font-size="13" text-anchor="middle" font-weight="bold">{}</text>"#,
        W / 2.0,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
        W / 2.0,
        H - 8.0,
        esc(x_label)
    );
}

/// Vertical bars.
fn histogram(title: &str, x_label: &str, values: &[f64], lo: f64, hi: f64, bins: usize) -> String {
    let mut counts = vec![0usize; bins];
    for &v in values {
        let b = (((v - lo) / (hi - lo)) * bins as f64).floor().clamp(0.0, (bins - 1) as f64) as usize;
        counts[b] += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let bw = (W - 2.0 * PAD) / bins as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" role="img" aria-label="{}">"#,
        esc(title)
    );
    for (i, &c) in counts.iter().enumerate() {
        let h = (c as f64 / max) * (H - 2.0 * PAD);
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#2da44e"><title>{c}</title></rect>"##,
            PAD + i as f64 * bw + 1.0,
            H - PAD - h,
            bw - 2.0
        );
    }
    for k in 0..=4 {
        let v = lo + (hi - lo) * f64::from(k) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{v:.0}</text>"#,
            PAD + f64::from(k) / 4.0 * (W - 2.0 * PAD),
            H - PAD + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
        PAD - 4.0,
        PAD + 4.0,
        max as usize
    );
    title_and_x_label(&mut s, title, x_label);
    s.push_str("</svg>");
    s
}

/// Horizontal bars, largest first.
fn bars(title: &str, items: &[(String, f64)]) -> String {
    let row = 16.0;
    let h = PAD + row * items.len() as f64 + 10.0;
    let w = 560.0;
    let label_w = 220.0;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-12);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="18" font-size="13" text-anchor="middle" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    for (i, (name, v)) in items.iter().enumerate() {
        let y = PAD + row * i as f64;
        let bw = v / max * (w - label_w - 60.0);
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + 11.0,
            esc(name)
        );
        let _ = write!(s, r##"<rect x="{label_w}" y="{y}" width="{bw:.1}" height="{}" fill="#8250df"/>"##, row - 4.0);
        let _ = write!(s, r#"<text x="{:.1}" y="{}" font-size="10">{:.3}</text>"#, label_w + bw + 4.0, y + 11.0, v);
    }
    s.push_str("</svg>");
    s
}

fn metrics_rows(m: &TestMetrics) -> String {
    let e = &m.events;
    let rows = [
        ("ROC AUC", format!("{:.4}", m.roc_auc)),
        ("PR AUC", format!("{:.4}", m.pr_auc)),
        ("threshold", format!("{:.4}", m.threshold)),
        ("precision / recall / F1", format!("{:.3} / {:.3} / {:.3}", m.precision, m.recall, m.f1)),
        ("false alarm rate / miss rate", format!("{:.4} / {:.4}", m.false_alarm_rate, m.miss_rate)),
        (
            "confusion (TP FP TN FN)",
            format!("{} {} {} {}", m.confusion.tp, m.confusion.fp, m.confusion.tn, m.confusion.fn_),
        ),
        ("failures warned >= 1 h ahead", format!("{} of {} ({:.1} %)", e.warned, e.failures, 100.0 * e.warned_share)),
        ("lead time median / p10", format!("{:.1} h / {:.1} h", e.median_lead_hours, e.p10_lead_hours)),
        (
            "false alarms per machine-month",
            format!(
                "{:.3} ({} episodes over {:.1} machine-months)",
                e.false_alarms_per_machine_month, e.false_alarm_episodes, e.machine_months
            ),
        ),
    ];
    rows.iter().map(|(k, v)| format!("<tr><th>{k}</th><td>{v}</td></tr>")).collect()
}

/// The whole report.
pub fn html(eval: &Evaluation, bundle: &ModelBundle, model_uri: &str) -> String {
    let roc: Vec<(f64, f64)> =
        std::iter::once((0.0, 0.0)).chain(eval.roc_curve.iter().map(|p| (p.fpr, p.tpr))).collect();
    let pr: Vec<(f64, f64)> = eval.roc_curve.iter().map(|p| (p.tpr, p.precision)).collect();
    let horizon = f64::from(bundle.feature_spec.label.horizon_hours);
    let names = bundle.feature_spec.names();
    let mut imp: Vec<(String, f64)> = names.into_iter().zip(bundle.importance.iter().copied()).collect();
    imp.sort_by(|a, b| b.1.total_cmp(&a.1));
    imp.truncate(20);
    let verdict = if eval.blessed { "BLESSED" } else { "NOT BLESSED" };
    let champion = match &eval.champion {
        Some(c) => match &c.metrics {
            Some(m) => format!("<h2>Champion {}</h2><table>{}</table>", esc(&c.version), metrics_rows(m)),
            None => format!(
                "<h2>Champion {}</h2><p>{}</p>",
                esc(&c.version),
                esc(c.note.as_deref().unwrap_or("not scored"))
            ),
        },
        None => "<h2>Champion</h2><p>No active model in the registry.</p>".into(),
    };
    let reasons: String = eval.reasons.iter().map(|r| format!("<li>{}</li>", esc(r))).collect();
    format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>pm evaluation: {name}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;color:#1f2328}}table{{border-collapse:collapse}}th,td{{text-align:left;padding:3px 10px;border-bottom:1px solid #eee}}.v{{font-weight:bold;color:{color}}}.charts svg{{margin:8px;border:1px solid #eee}}</style></head><body>
<h1>Evaluation of {name} ({algo})</h1>
<p>Model: <code>{uri}</code><br>Test slice: {from} .. {to}; label: failure within {horizon} h; {rows} rows, {pos} positive.</p>
<p class="v">{verdict}</p><ul>{reasons}</ul>
<h2>Candidate on the test slice</h2><table>{cand}</table>
{champion}
<div class="charts">{roc_svg}{pr_svg}{lead_svg}</div>
<div class="charts">{imp_svg}</div>
</body></html>"##,
        name = esc(&bundle.name),
        algo = esc(&bundle.model.algorithm),
        color = if eval.blessed { "#1a7f37" } else { "#cf222e" },
        uri = esc(model_uri),
        from = Timestamp(eval.test_start),
        to = Timestamp(eval.test_end),
        rows = eval.candidate.rows,
        pos = eval.candidate.positives,
        cand = metrics_rows(&eval.candidate),
        roc_svg = unit_chart("ROC curve", "false positive rate", "true positive rate", &roc, true),
        pr_svg = unit_chart("Precision-recall curve", "recall", "precision", &pr, false),
        lead_svg = histogram(
            "Lead time of warned failures",
            "hours before the failure",
            &eval.lead_times_hours,
            0.0,
            horizon,
            12
        ),
        imp_svg = bars("Feature importance (share of split gain, top 20)", &imp),
    )
}
