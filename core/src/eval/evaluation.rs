//! Evaluation on the test slice: row metrics at the model's threshold, event-level metrics, the
//! quality gates, and the champion/challenger comparison. Pure; `pm-evaluate` does the I/O.

use serde::{Deserialize, Serialize};

use crate::artifacts::bundle::ModelBundle;
use crate::data::contract::Events;
use crate::eval::metrics::{self, Confusion, CurvePoint, EventMetrics, EventRows};
use crate::features::FeatureTable;
use crate::learn::split::SplitPlan;
use crate::learn::train::probabilities;

/// Quality gates (defaults: the system we replace's AUC >= 0.75, precision >= 0.20,
/// recall >= 0.50) and the champion/challenger rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Gates {
    pub min_roc_auc: f64,
    pub min_precision: f64,
    pub min_recall: f64,
    /// Minimum share of failures warned at least one hour ahead (0 disables).
    pub min_event_recall: f64,
    /// The metric a challenger must win on: `roc_auc` or `pr_auc`.
    pub compare_metric: String,
    /// The challenger must reach at least champion + margin.
    pub min_improvement: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            min_roc_auc: 0.75,
            min_precision: 0.20,
            min_recall: 0.50,
            min_event_recall: 0.0,
            compare_metric: "pr_auc".into(),
            min_improvement: 0.001,
        }
    }
}

/// The gates one source sets (an inline spec, the command line): only what it names. Unknown keys
/// are errors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    pub min_roc_auc: Option<f64>,
    pub min_precision: Option<f64>,
    pub min_recall: Option<f64>,
    pub min_event_recall: Option<f64>,
    pub compare_metric: Option<String>,
    pub min_improvement: Option<f64>,
}

/// The metrics a challenger can be compared on.
pub const COMPARE_METRICS: [&str; 3] = ["roc_auc", "pr_auc", "f1"];

impl Gates {
    /// The one source of truth for gates: the defaults, with each named source's settings on
    /// top. Two sources that set a gate to different values are an error naming both, and the
    /// result is checked ([`Gates::check`]).
    pub fn from_sources(sources: &[(&str, &GateSettings)]) -> Result<Gates, String> {
        fn pick<T: Clone + PartialEq + std::fmt::Display>(
            key: &str,
            sources: &[(&str, &GateSettings)],
            get: impl Fn(&GateSettings) -> Option<T>,
            into: &mut T,
        ) -> Result<(), String> {
            let mut chosen: Option<(&str, T)> = None;
            for (source, settings) in sources {
                let Some(v) = get(settings) else { continue };
                match &chosen {
                    Some((first, w)) if *w != v => {
                        return Err(format!("{key}: {first} says {w} and {source} says {v}; give it once"));
                    }
                    Some(_) => {}
                    None => chosen = Some((source, v)),
                }
            }
            if let Some((_, v)) = chosen {
                *into = v;
            }
            Ok(())
        }
        let mut g = Gates::default();
        pick("min_roc_auc", sources, |s| s.min_roc_auc, &mut g.min_roc_auc)?;
        pick("min_precision", sources, |s| s.min_precision, &mut g.min_precision)?;
        pick("min_recall", sources, |s| s.min_recall, &mut g.min_recall)?;
        pick("min_event_recall", sources, |s| s.min_event_recall, &mut g.min_event_recall)?;
        pick("compare_metric", sources, |s| s.compare_metric.clone(), &mut g.compare_metric)?;
        pick("min_improvement", sources, |s| s.min_improvement, &mut g.min_improvement)?;
        g.check()?;
        Ok(g)
    }

    /// Every gate is a share in [0, 1]; the improvement margin is a finite number in [-1, 1]
    /// (negative: a challenger may be that much worse); the comparison metric is one of
    /// [`COMPARE_METRICS`].
    pub fn check(&self) -> Result<(), String> {
        for (key, v) in [
            ("min_roc_auc", self.min_roc_auc),
            ("min_precision", self.min_precision),
            ("min_recall", self.min_recall),
            ("min_event_recall", self.min_event_recall),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{key}: {v} is not a share between 0 and 1"));
            }
        }
        if !(-1.0..=1.0).contains(&self.min_improvement) {
            return Err(format!("min_improvement: {} is not between -1 and 1", self.min_improvement));
        }
        if !COMPARE_METRICS.contains(&self.compare_metric.as_str()) {
            return Err(format!(
                "compare_metric: {:?} is not one of {}",
                self.compare_metric,
                COMPARE_METRICS.join(", ")
            ));
        }
        Ok(())
    }
}

/// Metrics of one model on the test slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct TestMetrics {
    pub roc_auc: f64,
    pub pr_auc: f64,
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub false_alarm_rate: f64,
    pub miss_rate: f64,
    pub confusion: Confusion,
    pub rows: u64,
    pub positives: u64,
    pub events: EventMetrics,
}

impl TestMetrics {
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "roc_auc" => Some(self.roc_auc),
            "pr_auc" => Some(self.pr_auc),
            "f1" => Some(self.f1),
            _ => None,
        }
    }
}

/// The champion's side of the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChampionResult {
    pub version: String,
    pub metrics: Option<TestMetrics>,
    /// Why the champion was not scored, if it was not.
    pub note: Option<String>,
}

/// Everything `pm-evaluate` decides.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub candidate: TestMetrics,
    pub champion: Option<ChampionResult>,
    pub gates: Gates,
    pub blessed: bool,
    /// One line per gate: passed or failed, with the numbers.
    pub reasons: Vec<String>,
    pub roc_curve: Vec<CurvePoint>,
    /// Lead times (hours) of the warned test failures.
    pub lead_times_hours: Vec<f64>,
    pub test_start: i64,
    pub test_end: i64,
}

/// Rows of the test slice.
pub fn test_rows(plan: &SplitPlan, times: &[i64]) -> Vec<u32> {
    times.iter().enumerate().filter(|(_, t)| **t >= plan.test_start).map(|(i, _)| i as u32).collect()
}

/// Scores `rows` of `table` with a bundle's failure model and computes its test metrics.
pub fn score(
    bundle: &ModelBundle,
    table: &FeatureTable,
    rows: &[u32],
    failures: &Events,
) -> (TestMetrics, Vec<f64>, Vec<f64>) {
    let scores = probabilities(&bundle.model.failure, &table.columns, rows);
    let labels: Vec<u8> = rows.iter().map(|&r| table.label[r as usize]).collect();
    let thr = bundle.threshold;
    let conf = Confusion::at(&scores, &labels, thr);
    let alarm: Vec<bool> = scores.iter().map(|&s| s >= thr).collect();
    let machine: Vec<u32> = rows.iter().map(|&r| table.machine[r as usize]).collect();
    let time: Vec<i64> = rows.iter().map(|&r| table.time[r as usize]).collect();
    let start = time.iter().copied().min().unwrap_or(0);
    let fails: Vec<(u32, i64)> = (0..failures.len())
        .filter(|&i| failures.time[i] > start)
        .map(|i| (failures.machine[i], failures.time[i]))
        .collect();
    let horizon = bundle.feature_spec.label.horizon_hours;
    let event_rows = EventRows { machine: &machine, time: &time, alarm: &alarm, label: &labels };
    let events = metrics::event_metrics(&event_rows, &fails, horizon, 1);
    let leads = lead_times(&event_rows, &fails, horizon);
    let m = TestMetrics {
        roc_auc: metrics::roc_auc(&scores, &labels),
        pr_auc: metrics::pr_auc(&scores, &labels),
        threshold: thr,
        precision: conf.precision(),
        recall: conf.recall(),
        f1: conf.f1(),
        false_alarm_rate: conf.false_alarm_rate(),
        miss_rate: conf.miss_rate(),
        confusion: conf,
        rows: rows.len() as u64,
        positives: labels.iter().filter(|&&l| l == 1).count() as u64,
        events,
    };
    (m, scores, leads)
}

/// Lead times of warned failures (for the report's histogram).
fn lead_times(rows: &EventRows<'_>, failures: &[(u32, i64)], horizon_hours: u32) -> Vec<f64> {
    let mut out = Vec::new();
    for &f in failures {
        let single = metrics::event_metrics(rows, &[f], horizon_hours, 1);
        if single.warned == 1 {
            out.push(single.median_lead_hours);
        }
    }
    out
}

/// Applies the gates and the champion rule.
pub fn decide(candidate: &TestMetrics, champion: Option<&ChampionResult>, gates: &Gates) -> (bool, Vec<String>) {
    let mut ok = true;
    let mut reasons = Vec::new();
    let mut check = |name: &str, value: f64, min: f64| {
        let pass = value >= min;
        ok &= pass;
        reasons.push(format!("{} {name} {value:.4} (minimum {min:.4})", if pass { "pass:" } else { "FAIL:" }));
    };
    check("test ROC AUC", candidate.roc_auc, gates.min_roc_auc);
    check("precision at threshold", candidate.precision, gates.min_precision);
    check("recall at threshold", candidate.recall, gates.min_recall);
    if gates.min_event_recall > 0.0 {
        check("failures warned >= 1 h ahead", candidate.events.warned_share, gates.min_event_recall);
    }
    match champion {
        None => reasons.push("pass: no active model to beat".into()),
        Some(ChampionResult { version, metrics: None, note }) => {
            reasons
                .push(format!("pass: champion {version} not comparable ({})", note.as_deref().unwrap_or("no metrics")));
        }
        Some(ChampionResult { version, metrics: Some(cm), .. }) => {
            let metric = gates.compare_metric.as_str();
            match (candidate.get(metric), cm.get(metric)) {
                (Some(c), Some(h)) => {
                    let pass = c >= h + gates.min_improvement;
                    ok &= pass;
                    reasons.push(format!(
                        "{} {metric} {c:.4} vs champion {version} {h:.4} (must improve by {:.4})",
                        if pass { "pass:" } else { "FAIL:" },
                        gates.min_improvement
                    ));
                }
                _ => {
                    ok = false;
                    reasons.push(format!("FAIL: unknown comparison metric {metric:?} (roc_auc, pr_auc or f1)"));
                }
            }
        }
    }
    (ok, reasons)
}

/// The active model to compare with: its version, and its bundle with the feature table to score
/// it on (when comparable), or a note saying why it is not scored.
#[derive(Clone, Copy, Debug)]
pub struct Champion<'a> {
    pub version: &'a str,
    pub scored: Option<(&'a ModelBundle, &'a FeatureTable)>,
    pub note: Option<&'a str>,
}

/// Evaluates a candidate (and scores the champion when given its bundle and feature table).
pub fn evaluate(
    candidate: &ModelBundle,
    table: &FeatureTable,
    failures: &Events,
    champion: Option<Champion<'_>>,
    gates: &Gates,
) -> Evaluation {
    let rows = test_rows(&candidate.split, &table.time);
    let (metrics_c, scores, leads) = score(candidate, table, &rows, failures);
    let labels: Vec<u8> = rows.iter().map(|&r| table.label[r as usize]).collect();
    let champion = champion.map(|Champion { version, scored, note }| {
        let (version, note) = (version.to_string(), note.map(str::to_string));
        match scored {
            // The champion is this very model: its metrics are the candidate's.
            Some((bundle, _)) if bundle == candidate => ChampionResult {
                version,
                metrics: Some(metrics_c.clone()),
                note: Some("the active model is this model".into()),
            },
            Some((bundle, champ_table)) => {
                // The champion is scored on the candidate's test rows and labels.
                let mut t = champ_table.clone();
                t.label = table.label.clone();
                t.time = table.time.clone();
                t.machine = table.machine.clone();
                let (m, _, _) = score(bundle, &t, &rows, failures);
                ChampionResult { version, metrics: Some(m), note }
            }
            None => ChampionResult { version, metrics: None, note },
        }
    });
    let (blessed, reasons) = decide(&metrics_c, champion.as_ref(), gates);
    Evaluation {
        roc_curve: metrics::curve(&scores, &labels, 200),
        candidate: metrics_c,
        champion,
        gates: gates.clone(),
        blessed,
        reasons,
        lead_times_hours: leads,
        test_start: candidate.split.test_start,
        test_end: candidate.split.end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(roc: f64, pr: f64, p: f64, r: f64) -> TestMetrics {
        TestMetrics { roc_auc: roc, pr_auc: pr, precision: p, recall: r, ..Default::default() }
    }

    #[test]
    fn gates_and_champion() {
        let g = Gates::default();
        let (ok, reasons) = decide(&tm(0.9, 0.5, 0.3, 0.6), None, &g);
        assert!(ok, "{reasons:?}");
        let (ok, reasons) = decide(&tm(0.74, 0.5, 0.3, 0.6), None, &g);
        assert!(!ok);
        assert_eq!(reasons[0], "FAIL: test ROC AUC 0.7400 (minimum 0.7500)");
        let champ = ChampionResult { version: "v3".into(), metrics: Some(tm(0.9, 0.50, 0.3, 0.6)), note: None };
        // Equal to the champion is not better.
        let (ok, reasons) = decide(&tm(0.9, 0.5005, 0.3, 0.6), Some(&champ), &g);
        assert!(!ok);
        assert_eq!(reasons.last().unwrap(), "FAIL: pr_auc 0.5005 vs champion v3 0.5000 (must improve by 0.0010)");
        let (ok, _) = decide(&tm(0.9, 0.52, 0.3, 0.6), Some(&champ), &g);
        assert!(ok);
        let not_comparable =
            ChampionResult { version: "v3".into(), metrics: None, note: Some("different label horizon".into()) };
        let (ok, reasons) = decide(&tm(0.9, 0.52, 0.3, 0.6), Some(&not_comparable), &g);
        assert!(ok);
        assert_eq!(reasons.last().unwrap(), "pass: champion v3 not comparable (different label horizon)");
    }

    #[test]
    fn gates_come_from_one_merge_of_their_sources() {
        let inline = GateSettings { min_precision: Some(0.9), ..Default::default() };
        let flags = GateSettings { min_recall: Some(0.8), min_precision: Some(0.9), ..Default::default() };
        let g = Gates::from_sources(&[("--gates-inline", &inline), ("the flags", &flags)]).unwrap();
        assert_eq!((g.min_precision, g.min_recall, g.min_roc_auc), (0.9, 0.8, Gates::default().min_roc_auc));
        // The same gate with two values is a conflict, named with both sources.
        let other = GateSettings { min_precision: Some(0.5), ..Default::default() };
        let e = Gates::from_sources(&[("--gates-inline", &inline), ("--min-precision", &other)]).unwrap_err();
        assert_eq!(e, "min_precision: --gates-inline says 0.9 and --min-precision says 0.5; give it once");
        // Values outside their range are refused.
        for (s, msg) in [
            (GateSettings { min_roc_auc: Some(1.5), ..Default::default() }, "min_roc_auc: 1.5 is not a share"),
            (GateSettings { min_recall: Some(f64::NAN), ..Default::default() }, "min_recall: NaN is not a share"),
            (GateSettings { min_improvement: Some(2.0), ..Default::default() }, "min_improvement: 2 is not between"),
            (GateSettings { compare_metric: Some("auc".into()), ..Default::default() }, "compare_metric: \"auc\""),
        ] {
            let e = Gates::from_sources(&[("x", &s)]).unwrap_err();
            assert!(e.starts_with(msg), "{e}");
        }
        // A negative margin is allowed: the challenger may be that much worse.
        let s = GateSettings { min_improvement: Some(-1.0), ..Default::default() };
        assert_eq!(Gates::from_sources(&[("x", &s)]).unwrap().min_improvement, -1.0);
    }
}
