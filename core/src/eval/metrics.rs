//! Evaluation metrics: ranking (ROC AUC, PR AUC), the confusion matrix at a threshold, threshold
//! rules, and event-level metrics (is a failure warned ahead, how early, how many false alarms).
//!
//! Conventions: a row is predicted positive when `score >= threshold`. Tied scores are handled as
//! one group everywhere (ROC AUC equals the Mann-Whitney statistic with average ranks; PR AUC is
//! average precision over score groups, as scikit-learn defines it).

use serde::{Deserialize, Serialize};

use crate::data::time::HOUR;

/// Row indices sorted by score, highest first (NaN scores last), ties in index order.
fn order_desc(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (scores[a], scores[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => a.cmp(&b),
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ => y.total_cmp(&x).then(a.cmp(&b)),
        }
    });
    idx
}

/// Cumulative (true positives, false positives) after each group of tied scores, with the
/// group's score, highest first.
fn groups(scores: &[f64], labels: &[u8]) -> Vec<(f64, u64, u64)> {
    let idx = order_desc(scores);
    let mut out: Vec<(f64, u64, u64)> = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && (scores[idx[i]] == s || (s.is_nan() && scores[idx[i]].is_nan())) {
            if labels[idx[i]] == 1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((s, tp, fp));
    }
    out
}

/// Area under the ROC curve; NaN when a class is absent.
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> f64 {
    let g = groups(scores, labels);
    let Some(&(_, p, n)) = g.last() else {
        return f64::NAN;
    };
    if p == 0 || n == 0 {
        return f64::NAN;
    }
    let mut area = 0.0;
    let (mut tp0, mut fp0) = (0u64, 0u64);
    for &(_, tp, fp) in &g {
        area += (fp - fp0) as f64 * (tp + tp0) as f64 / 2.0;
        tp0 = tp;
        fp0 = fp;
    }
    area / (p as f64 * n as f64)
}

/// Area under the precision-recall curve as average precision: the sum over score groups of
/// (recall gained) x (precision at that group). NaN when there is no positive.
pub fn pr_auc(scores: &[f64], labels: &[u8]) -> f64 {
    let g = groups(scores, labels);
    let Some(&(_, p, _)) = g.last() else {
        return f64::NAN;
    };
    if p == 0 {
        return f64::NAN;
    }
    let mut ap = 0.0;
    let mut tp0 = 0u64;
    for &(_, tp, fp) in &g {
        if tp > tp0 {
            ap += (tp - tp0) as f64 / p as f64 * (tp as f64 / (tp + fp) as f64);
        }
        tp0 = tp;
    }
    ap
}

/// Counts at a threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Confusion {
    pub fn at(scores: &[f64], labels: &[u8], threshold: f64) -> Self {
        let mut c = Confusion::default();
        for (&s, &y) in scores.iter().zip(labels) {
            match (s >= threshold, y == 1) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) }
    }
    /// FP / (FP + TN): the share of healthy hours that raise an alarm.
    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.fp, self.fp + self.tn)
    }
    /// FN / (FN + TP): the share of pre-failure hours without an alarm.
    pub fn miss_rate(&self) -> f64 {
        ratio(self.fn_, self.fn_ + self.tp)
    }
}

/// How the alarm threshold is chosen (on the validation slice only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdRule {
    /// The threshold with the best F1.
    MaxF1,
    /// The threshold with the lowest `miss_cost * FN + false_alarm_cost * FP`.
    Cost { miss_cost: f64, false_alarm_cost: f64 },
}

/// Chooses a threshold among the observed scores. Returns `(threshold, objective)`.
pub fn choose_threshold(scores: &[f64], labels: &[u8], rule: &ThresholdRule) -> (f64, f64) {
    let g = groups(scores, labels);
    let Some(&(_, p, _)) = g.last() else {
        return (0.5, f64::NAN);
    };
    let mut best = (f64::INFINITY, f64::NEG_INFINITY);
    for &(s, tp, fp) in g.iter().filter(|(s, _, _)| !s.is_nan()) {
        let fn_ = p - tp;
        let value = match rule {
            ThresholdRule::MaxF1 => {
                let c = Confusion { tp, fp, tn: 0, fn_ };
                c.f1()
            }
            ThresholdRule::Cost { miss_cost, false_alarm_cost } => {
                -(miss_cost * fn_ as f64 + false_alarm_cost * fp as f64)
            }
        };
        if value > best.1 {
            best = (s, value);
        }
    }
    let objective = match rule {
        ThresholdRule::MaxF1 => best.1,
        ThresholdRule::Cost { .. } => -best.1,
    };
    (best.0, objective)
}

/// One point of a curve, KFP-style names.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub threshold: f64,
    /// True positive rate = recall.
    pub tpr: f64,
    pub fpr: f64,
    pub precision: f64,
}

/// ROC/PR curve at each group of tied scores, thinned to at most `max_points` (keeping the ends).
pub fn curve(scores: &[f64], labels: &[u8], max_points: usize) -> Vec<CurvePoint> {
    let g = groups(scores, labels);
    let Some(&(_, p, n)) = g.last() else {
        return Vec::new();
    };
    let mut pts: Vec<CurvePoint> = g
        .iter()
        .filter(|(s, _, _)| !s.is_nan())
        .map(|&(s, tp, fp)| CurvePoint {
            threshold: s,
            tpr: ratio(tp, p),
            fpr: ratio(fp, n),
            precision: ratio(tp, tp + fp),
        })
        .collect();
    if pts.len() > max_points && max_points >= 2 {
        let step = (pts.len() - 1) as f64 / (max_points - 1) as f64;
        pts = (0..max_points).map(|i| pts[((i as f64 * step).round() as usize).min(pts.len() - 1)]).collect();
    }
    pts
}

/// Failure-level outcome of an alarm rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetrics {
    /// Failures with at least one reading in their warning window.
    pub failures: u64,
    /// Of those, failures with an alarm at least `min_lead_hours` before them, within the horizon.
    pub warned: u64,
    pub warned_share: f64,
    /// Lead time of the first alarm in the warning window, hours (warned failures).
    pub median_lead_hours: f64,
    pub p10_lead_hours: f64,
    /// Runs of consecutive alarmed hours not followed by a failure within the horizon.
    pub false_alarm_episodes: u64,
    pub machine_months: f64,
    pub false_alarms_per_machine_month: f64,
}

/// Rows of an evaluated slice, sorted by `(machine, time)`.
#[derive(Clone, Copy, Debug)]
pub struct EventRows<'a> {
    pub machine: &'a [u32],
    pub time: &'a [i64],
    pub alarm: &'a [bool],
    pub label: &'a [u8],
}

/// Event-level metrics. `failures` are `(machine, time)` pairs; `horizon_hours` is the label
/// horizon (the warning window is `[F - horizon, F - min_lead]`).
pub fn event_metrics(
    rows: &EventRows<'_>,
    failures: &[(u32, i64)],
    horizon_hours: u32,
    min_lead_hours: u32,
) -> EventMetrics {
    let horizon = i64::from(horizon_hours) * HOUR;
    let min_lead = i64::from(min_lead_hours) * HOUR;
    let ranges = crate::data::contract::ranges_by_key(rows.machine);
    let range_of = |m: u32| ranges.binary_search_by_key(&m, |(k, _)| *k).ok().map(|i| ranges[i].1.clone());
    let mut out = EventMetrics::default();
    let mut leads = Vec::new();
    for &(m, f) in failures {
        let Some(r) = range_of(m) else { continue };
        let times = &rows.time[r.clone()];
        let lo = times.partition_point(|&t| t < f - horizon);
        let hi = times.partition_point(|&t| t <= f - min_lead);
        if lo >= hi {
            continue;
        }
        out.failures += 1;
        if let Some(j) = (lo..hi).find(|&j| rows.alarm[r.start + j]) {
            out.warned += 1;
            leads.push((f - times[j]) as f64 / HOUR as f64);
        }
    }
    out.warned_share = ratio(out.warned, out.failures);
    leads.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if leads.is_empty() { f64::NAN } else { leads[((leads.len() - 1) as f64 * p).round() as usize] }
    };
    out.median_lead_hours = q(0.5);
    out.p10_lead_hours = q(0.1);
    let mut hours = 0.0;
    for (_, r) in &ranges {
        hours += r.len() as f64;
        let mut in_episode = false;
        let mut prev_t = i64::MIN;
        for i in r.clone() {
            let false_alarm = rows.alarm[i] && rows.label[i] == 0;
            let contiguous = rows.time[i] - prev_t <= HOUR;
            if false_alarm && !(in_episode && contiguous) {
                out.false_alarm_episodes += 1;
            }
            in_episode = false_alarm;
            prev_t = rows.time[i];
        }
    }
    out.machine_months = hours / 730.0;
    out.false_alarms_per_machine_month =
        if out.machine_months > 0.0 { out.false_alarm_episodes as f64 / out.machine_months } else { 0.0 };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_by_hand_with_ties() {
        // Positives at 0.9, 0.5(tie), 0.3; negatives at 0.5(tie), 0.2.
        // Pairs: (0.9>0.5,0.9>0.2)=2, (0.5=0.5 -> 0.5, 0.5>0.2)=1.5, (0.3<0.5, 0.3>0.2)=1 => 4.5/6.
        let s = [0.9, 0.5, 0.3, 0.5, 0.2];
        let y = [1, 1, 1, 0, 0];
        assert!((roc_auc(&s, &y) - 0.75).abs() < 1e-12);
        assert!(roc_auc(&[0.1, 0.2], &[1, 1]).is_nan());
        assert_eq!(roc_auc(&[0.1, 0.9], &[0, 1]), 1.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5], &[0, 1, 0]), 0.5);
    }

    #[test]
    fn pr_auc_by_hand() {
        // Sorted: 0.9(+), 0.8(-), 0.7(+), 0.1(-). AP = 1/2 * 1 + 1/2 * 2/3 = 0.8333.
        let ap = pr_auc(&[0.1, 0.9, 0.7, 0.8], &[0, 1, 1, 0]);
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        // Ties: both positives tied with one negative: AP = 1 * 2/3.
        assert!((pr_auc(&[0.5, 0.5, 0.5, 0.1], &[1, 1, 0, 0]) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn confusion_and_rates() {
        let c = Confusion::at(&[0.9, 0.6, 0.4, 0.2, 0.6], &[1, 0, 1, 0, 1], 0.6);
        assert_eq!(c, Confusion { tp: 2, fp: 1, tn: 1, fn_: 1 });
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.recall() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.false_alarm_rate() - 0.5).abs() < 1e-12);
        assert!((c.miss_rate() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn thresholds_by_f1_and_by_cost() {
        let s = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4];
        let y = [1, 1, 0, 1, 0, 0];
        // >=0.8: P=1 R=2/3 F1=0.8; >=0.6: P=3/4 R=1 F1=0.857 (best); >=0.4: P=1/2.
        let (t, f1) = choose_threshold(&s, &y, &ThresholdRule::MaxF1);
        assert_eq!(t, 0.6);
        assert!((f1 - 6.0 / 7.0).abs() < 1e-12);
        // Misses cost 10, false alarms 1: catching everyone costs 1 (0.6) or 3 (0.4).
        let (t, cost) = choose_threshold(&s, &y, &ThresholdRule::Cost { miss_cost: 10.0, false_alarm_cost: 1.0 });
        assert_eq!((t, cost), (0.6, 1.0));
        // False alarms cost 100: the best is the highest threshold that flags nothing wrong.
        let (t, _) = choose_threshold(&s, &y, &ThresholdRule::Cost { miss_cost: 1.0, false_alarm_cost: 100.0 });
        assert_eq!(t, 0.8);
    }

    #[test]
    fn lead_times_and_false_alarm_episodes_by_hand() {
        // Machine 1: hourly readings 0..48 h; a failure at 40 h, horizon 24 h.
        let time: Vec<i64> = (0..48).map(|h| h * HOUR).collect();
        let machine = vec![1u32; 48];
        let label: Vec<u8> = (0..48).map(|h| u8::from((16..40).contains(&h))).collect();
        // Alarms: 5..=6 (false, one episode), 10 (false), 30..=38 (true), 45 (false).
        let alarm: Vec<bool> = (0..48).map(|h| matches!(h, 5 | 6 | 10 | 30..=38 | 45)).collect();
        let rows = EventRows { machine: &machine, time: &time, alarm: &alarm, label: &label };
        let m = event_metrics(&rows, &[(1, 40 * HOUR), (2, 10 * HOUR)], 24, 1);
        assert_eq!(m.failures, 1, "machine 2 has no readings");
        assert_eq!(m.warned, 1);
        assert_eq!(m.median_lead_hours, 10.0, "first alarm in [16 h, 39 h] is at 30 h");
        assert_eq!(m.false_alarm_episodes, 3);
        assert!((m.machine_months - 48.0 / 730.0).abs() < 1e-12);
        // An alarm at the failure hour itself is no warning.
        let late: Vec<bool> = (0..48).map(|h| h == 40).collect();
        let rows = EventRows { alarm: &late, ..rows };
        assert_eq!(event_metrics(&rows, &[(1, 40 * HOUR)], 24, 1).warned, 0);
    }
}
