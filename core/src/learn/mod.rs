//! Histogram tree learners: gradient-boosted trees (leaf-wise, LightGBM-style) and a random
//! forest, on one engine.
//!
//! Features are binned once into at most 255 quantile bins plus a missing bin (`u8` per value);
//! a split "bin <= b" is the threshold "x <= upper\[b\]" on raw values, so a trained tree runs on
//! raw feature rows ([`crate::learn::model::Tree`]) exactly as it ran on bins. Histograms hold
//! (gradient, hessian, count) per bin; boosting builds only the smaller child's histogram and
//! gets the larger one by subtraction. Everything is deterministic for a seed: parallel work is
//! split by feature (boosting) or by tree (forest), never by a racing reduction.
//!
//! Parameters are checked before use ([`GbdtParams::check`], [`ForestParams::check`]), as linfa
//! does with its `ParamGuard`.
//!
//! - [`bins`]: quantile bins per feature and the binned matrix.
//! - [`histograms`]: (gradient, hessian, count) histograms, split search, row partition.
//! - [`boosting`]: gradient boosting, early-stopped on the validation slice.
//! - [`forest`]: the bagged Gini forest.
//! - [`calibration`]: Platt scaling of the margins.
//! - [`model`]: the trained model as serving evaluates it (no training code).
//! - [`split`]: the temporal split with its embargo.
//! - [`train`]: feature table and training spec → model bundle.

pub mod bins;
pub mod boosting;
pub mod calibration;
pub mod forest;
pub mod histograms;
pub mod model;
pub mod split;
pub mod train;

pub use bins::{BinMapper, Binned, MISSING, fit_mappers};
pub use boosting::{GbdtFit, GbdtParams, ValidGbdtParams, fit_gbdt};
pub use calibration::fit_platt;
pub use forest::{ForestFit, ForestParams, MaxFeatures, ValidForestParams, fit_forest};

use serde::{Deserialize, Serialize};

use crate::learn::model::Tree;

use histograms::Split;

/// Feature importance: total split gain per feature, normalised to sum 1.
fn normalise(mut v: Vec<f64>) -> Vec<f64> {
    let s: f64 = v.iter().sum();
    if s > 0.0 {
        for x in &mut v {
            *x /= s;
        }
    }
    v
}

/// Training rows: binned features, 0/1 labels, per-row weights (class weights).
#[derive(Clone, Copy, Debug)]
pub struct TrainSet<'a> {
    pub binned: &'a Binned,
    pub y: &'a [u8],
    pub w: &'a [f64],
}

/// How positive rows are weighted.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeight {
    /// Both classes weigh the same in total (scikit-learn's `balanced`).
    Balanced,
    /// No reweighting.
    None,
    /// Positives weighted by the square root of the negative/positive ratio: imbalance handled,
    /// without the overshoot of full balancing in early boosting rounds.
    Sqrt,
}

/// Per-row weights for labels `y`.
pub fn class_weights(y: &[u8], cw: ClassWeight) -> Vec<f64> {
    match cw {
        ClassWeight::None => vec![1.0; y.len()],
        ClassWeight::Balanced => {
            let pos = y.iter().filter(|&&v| v == 1).count().max(1) as f64;
            let neg = (y.len() as f64 - pos).max(1.0);
            let n = y.len() as f64;
            let (wp, wn) = (n / (2.0 * pos), n / (2.0 * neg));
            y.iter().map(|&v| if v == 1 { wp } else { wn }).collect()
        }
        ClassWeight::Sqrt => {
            let pos = y.iter().filter(|&&v| v == 1).count().max(1) as f64;
            let neg = (y.len() as f64 - pos).max(1.0);
            let wp = (neg / pos).sqrt();
            y.iter().map(|&v| if v == 1 { wp } else { 1.0 }).collect()
        }
    }
}

/// Why parameters were refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{param}: {message}")]
pub struct ParamError {
    pub param: &'static str,
    pub message: String,
}

fn param_err<T>(param: &'static str, message: &str) -> Result<T, ParamError> {
    Err(ParamError { param, message: message.to_string() })
}

/// A tree while it is trained on bins.
#[derive(Clone, Debug, Default)]
struct BinTree {
    feature: Vec<i32>,
    bin: Vec<u8>,
    default_left: Vec<bool>,
    left: Vec<u32>,
    right: Vec<u32>,
    value: Vec<f64>,
}

impl BinTree {
    fn new_leaf(&mut self, value: f64) -> u32 {
        self.feature.push(-1);
        self.bin.push(0);
        self.default_left.push(true);
        self.left.push(0);
        self.right.push(0);
        self.value.push(value);
        (self.feature.len() - 1) as u32
    }

    fn split(&mut self, node: u32, s: &Split, vl: f64, vr: f64) -> (u32, u32) {
        let l = self.new_leaf(vl);
        let r = self.new_leaf(vr);
        let n = node as usize;
        self.feature[n] = s.feature as i32;
        self.bin[n] = s.bin;
        self.default_left[n] = s.default_left;
        self.left[n] = l;
        self.right[n] = r;
        (l, r)
    }

    /// Leaf reached by binned row `r`.
    #[inline]
    fn leaf_of(&self, binned: &Binned, r: usize) -> usize {
        let mut n = 0usize;
        loop {
            let f = self.feature[n];
            if f < 0 {
                return n;
            }
            let b = binned.cols[f as usize][r];
            let left = if b == MISSING { self.default_left[n] } else { b <= self.bin[n] };
            n = if left { self.left[n] } else { self.right[n] } as usize;
        }
    }

    fn to_tree(&self, mappers: &[BinMapper]) -> Tree {
        let mut t = Tree::default();
        for i in 0..self.feature.len() {
            let f = self.feature[i];
            let threshold = if f >= 0 { mappers[f as usize].upper[usize::from(self.bin[i])] } else { 0.0 };
            t.feature.push(f);
            t.threshold.push(threshold);
            t.default_left.push(self.default_left[i]);
            t.left.push(self.left[i]);
            t.right.push(self.right[i]);
            t.value.push(self.value[i]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::bins::*;
    use super::boosting::*;
    use super::histograms::*;
    use super::*;
    use crate::learn::model::sigmoid;
    use crate::rng::Rng;

    #[test]
    fn bins_cover_distinct_values_and_quantiles() {
        let mut v = vec![1.0, 1.0, 2.0, 3.0, f32::NAN, 3.0];
        let m = BinMapper::fit(&mut v, 255);
        assert_eq!(m.upper, vec![1.5, 2.5, f32::INFINITY]);
        assert_eq!((m.bin(0.0), m.bin(1.5), m.bin(1.6), m.bin(9.0), m.bin(f32::NAN)), (0, 0, 1, 2, MISSING));
        let mut many: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let q = BinMapper::fit(&mut many, 10);
        assert_eq!(q.n_bins(), 10);
        // Roughly equal-count bins.
        let counts = (0..10_000).fold(vec![0; 10], |mut c, i| {
            c[usize::from(q.bin(i as f32))] += 1;
            c
        });
        assert!(counts.iter().all(|&c| (900..=1100).contains(&c)), "{counts:?}");
    }

    fn toy(n: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<u8>) {
        // y = 1 when x0 > 0.7 and x1 < 0.5 (plus 5 % noise); x2 is noise; x1 has missing values.
        let mut r = Rng::new(seed);
        let mut cols = vec![Vec::new(), Vec::new(), Vec::new()];
        let mut y = Vec::new();
        for _ in 0..n {
            let (a, b, c) = (r.f64() as f32, r.f64() as f32, r.f64() as f32);
            let mut label = u8::from(a > 0.7 && b < 0.5);
            if r.chance(0.05) {
                label = 1 - label;
            }
            cols[0].push(a);
            cols[1].push(if r.chance(0.1) { f32::NAN } else { b });
            cols[2].push(c);
            y.push(label);
        }
        (cols, y)
    }

    fn auc(scores: &[f64], y: &[u8]) -> f64 {
        crate::eval::metrics::roc_auc(scores, y)
    }

    #[test]
    fn boosting_and_forest_learn_a_planted_rule_and_are_deterministic() {
        let (cols, y) = toy(20_000, 1);
        let (vcols, vy) = toy(5_000, 2);
        let rows: Vec<u32> = (0..20_000).collect();
        let vrows: Vec<u32> = (0..5_000).collect();
        let mappers = fit_mappers(&cols, &rows, 255, 10_000, 7);
        let binned = Binned::new(&cols, &rows, &mappers).with_row_major();
        let vbinned = Binned::new(&vcols, &vrows, &mappers);
        let w = class_weights(&y, ClassWeight::Balanced);
        let vw = class_weights(&vy, ClassWeight::Balanced);
        let train = TrainSet { binned: &binned, y: &y, w: &w };
        let valid = TrainSet { binned: &vbinned, y: &vy, w: &vw };
        let gp = GbdtParams { max_rounds: 60, ..GbdtParams::default() }.check().unwrap();
        let g1 = fit_gbdt(&gp, &mappers, &train, Some(&valid), 3);
        let g2 = fit_gbdt(&gp, &mappers, &train, Some(&valid), 3);
        assert_eq!(g1.ensemble, g2.ensemble, "same inputs and seed, same model");
        let fp = ForestParams { trees: 20, ..ForestParams::default() }.check().unwrap();
        let f1 = fit_forest(&fp, &mappers, &train, 3);
        let f2 = fit_forest(&fp, &mappers, &train, 3);
        assert_eq!(f1.ensemble, f2.ensemble);
        assert_ne!(f1.ensemble, fit_forest(&fp, &mappers, &train, 4).ensemble, "the seed matters");

        // Both separate the planted rule on held-out rows, on raw values (NaN included).
        let row = |i: usize| [vcols[0][i], vcols[1][i], vcols[2][i]];
        // The Bayes-optimal score: P(y=1 | x), knowing the rule, the noise and the missing values.
        let bayes: Vec<f64> = (0..5_000)
            .map(|i| match (vcols[0][i] > 0.7, vcols[1][i]) {
                (false, _) => 0.05,
                (true, b) if b.is_nan() => 0.5,
                (true, b) => {
                    if b < 0.5 {
                        0.95
                    } else {
                        0.05
                    }
                }
            })
            .collect();
        let ceiling = auc(&bayes, &vy);
        assert!(ceiling > 0.85 && ceiling < 0.92, "{ceiling}");
        for (name, e) in [("gbdt", &g1.ensemble), ("forest", &f1.ensemble)] {
            let s: Vec<f64> = (0..5_000).map(|i| e.predict_proba(&row(i))).collect();
            let a = auc(&s, &vy);
            assert!(a > ceiling - 0.02, "{name}: auc {a}, Bayes {ceiling}");
        }
        // The noise feature matters least.
        assert!(g1.importance[2] < g1.importance[0] && g1.importance[2] < g1.importance[1], "{:?}", g1.importance);
    }

    #[test]
    fn a_bin_split_is_the_same_as_its_raw_threshold() {
        // What makes trees trained on bins run on raw values: bin(x) <= b  <=>  x <= upper[b].
        let mut r = Rng::new(9);
        let mut v: Vec<f32> = (0..5_000).map(|_| (r.normal() * 10.0).round() as f32 / 4.0).collect();
        let m = BinMapper::fit(&mut v.clone(), 40);
        v.extend([f32::MIN, -0.0, 0.0, f32::MAX]);
        for &x in &v {
            for b in 0..m.n_bins() {
                assert_eq!(m.bin(x) as usize <= b, x <= m.upper[b], "x {x} bin {b}");
            }
        }
    }

    #[test]
    fn parallel_partition_is_the_sequential_stable_partition() {
        let mut r = Rng::new(4);
        let col: Vec<u8> = (0..200_000).map(|_| if r.chance(0.05) { MISSING } else { r.below(200) as u8 }).collect();
        let rows: Vec<u32> = (0..200_000u32).filter(|_| r.chance(0.7)).collect();
        let split =
            Split { feature: 0, bin: 90, default_left: true, gain: 1.0, left: Cell::default(), right: Cell::default() };
        let mut big = rows.clone();
        let n_left = partition(&mut big, &col, &split, &mut Vec::new());
        let left: Vec<u32> =
            rows.iter().copied().filter(|&x| col[x as usize] == MISSING || col[x as usize] <= 90).collect();
        let right: Vec<u32> =
            rows.iter().copied().filter(|&x| col[x as usize] != MISSING && col[x as usize] > 90).collect();
        assert_eq!(n_left, left.len());
        assert_eq!(&big[..n_left], &left[..]);
        assert_eq!(&big[n_left..], &right[..]);
    }

    #[test]
    fn platt_recovers_a_known_calibration() {
        let mut r = Rng::new(5);
        let m: Vec<f64> = (0..50_000).map(|_| 4.0 * r.normal()).collect();
        let y: Vec<u8> = m.iter().map(|&x| u8::from(r.chance(sigmoid(0.5 * x - 1.0)))).collect();
        let c = fit_platt(&m, &y);
        assert!((c.a - 0.5).abs() < 0.03 && (c.b + 1.0).abs() < 0.05, "{c:?}");
    }

    #[test]
    fn parameters_are_checked() {
        assert_eq!(
            GbdtParams { learning_rate: 0.0, ..GbdtParams::default() }.check().unwrap_err().to_string(),
            "learning_rate: must be in (0, 1]"
        );
        assert_eq!(
            ForestParams { trees: 0, ..ForestParams::default() }.check().unwrap_err().to_string(),
            "trees: must be at least 1"
        );
    }
}
