//! Platt scaling: the margins made probabilities.

use crate::learn::model::{Calibration, sigmoid};

/// Fits Platt scaling `sigmoid(a * m + b)` to margins `m` and labels `y`: Newton's method on the
/// log loss with a backtracking line search (and a tiny ridge for stability).
pub fn fit_platt(margins: &[f64], y: &[u8]) -> Calibration {
    let loss = |a: f64, b: f64| -> f64 {
        margins
            .iter()
            .zip(y)
            .map(|(&m, &yy)| {
                let z = a * m + b;
                let z = if yy == 1 { -z } else { z };
                z.max(0.0) + (-z.abs()).exp().ln_1p()
            })
            .sum::<f64>()
            + 0.5e-6 * ((a - 1.0) * (a - 1.0) + b * b)
    };
    let (mut a, mut b) = (1.0f64, 0.0f64);
    let mut current = loss(a, b);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (1e-6 * (a - 1.0), 1e-6 * b, 1e-6, 0.0, 1e-6);
        for (&m, &yy) in margins.iter().zip(y) {
            let p = sigmoid(a * m + b);
            let d = p - f64::from(yy);
            let w = (p * (1.0 - p)).max(1e-12);
            ga += d * m;
            gb += d;
            haa += w * m * m;
            hab += w * m;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs().partial_cmp(&1e-300) != Some(std::cmp::Ordering::Greater) {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut step = 1.0;
        let mut improved = false;
        for _ in 0..40 {
            let (na, nb) = (a - step * da, b - step * db);
            let l = loss(na, nb);
            if l <= current {
                (a, b, current, improved) = (na, nb, l, true);
                break;
            }
            step *= 0.5;
        }
        if !improved || (step * da).abs() < 1e-10 && (step * db).abs() < 1e-10 {
            break;
        }
    }
    if a.is_finite() && b.is_finite() { Calibration { a, b } } else { Calibration { a: 1.0, b: 0.0 } }
}
