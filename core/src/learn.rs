//! Histogram tree learners: gradient-boosted trees (leaf-wise, LightGBM-style) and a random
//! forest, on one engine.
//!
//! Features are binned once into at most 255 quantile bins plus a missing bin (`u8` per value);
//! a split "bin <= b" is the threshold "x <= upper\[b\]" on raw values, so a trained tree runs on
//! raw feature rows ([`crate::model::Tree`]) exactly as it ran on bins. Histograms hold
//! (gradient, hessian, count) per bin; boosting builds only the smaller child's histogram and
//! gets the larger one by subtraction. Everything is deterministic for a seed: parallel work is
//! split by feature (boosting) or by tree (forest), never by a racing reduction.
//!
//! Parameters are checked before use ([`GbdtParams::check`], [`ForestParams::check`]), as linfa
//! does with its `ParamGuard`.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::model::{Calibration, Combine, Ensemble, Tree, logit, sigmoid};
use crate::rng::{Rng, derive_seed};

/// Index of the missing-value bin; real bins are `0..=254`.
pub const MISSING: u8 = 255;
const CELLS: usize = 256;

/// Maps one feature's raw values to bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinMapper {
    /// Inclusive upper bound of each real bin; the last is `+inf`.
    pub upper: Vec<f32>,
}

impl BinMapper {
    /// Fits bins on a sample of values: every distinct value its own bin when there are few,
    /// quantiles otherwise. Bounds sit midway between neighbouring distinct values.
    pub fn fit(values: &mut Vec<f32>, max_bins: usize) -> Self {
        values.retain(|v| !v.is_nan());
        values.sort_by(f32::total_cmp);
        let mut distinct: Vec<(f32, usize)> = Vec::new();
        for &v in values.iter() {
            match distinct.last_mut() {
                Some((d, c)) if *d == v => *c += 1,
                _ => distinct.push((v, 1)),
            }
        }
        let max_bins = max_bins.clamp(2, 255);
        let mut upper = Vec::new();
        if distinct.len() <= max_bins {
            for w in distinct.windows(2) {
                upper.push(midpoint(w[0].0, w[1].0));
            }
        } else {
            // Cut after the distinct value where the cumulative count crosses each quantile.
            let total = values.len();
            let mut cum = 0;
            let mut next_cut = 1;
            for w in distinct.windows(2) {
                cum += w[0].1;
                if cum * max_bins >= next_cut * total {
                    upper.push(midpoint(w[0].0, w[1].0));
                    while next_cut * total <= cum * max_bins {
                        next_cut += 1;
                    }
                    if upper.len() + 1 >= max_bins {
                        break;
                    }
                }
            }
        }
        upper.push(f32::INFINITY);
        BinMapper { upper }
    }

    #[inline]
    pub fn bin(&self, x: f32) -> u8 {
        if x.is_nan() { MISSING } else { self.upper.partition_point(|&u| u < x) as u8 }
    }

    pub fn n_bins(&self) -> usize {
        self.upper.len()
    }
}

fn midpoint(a: f32, b: f32) -> f32 {
    let m = ((f64::from(a) + f64::from(b)) / 2.0) as f32;
    // Keep a < m <= b... or at least m >= a so that `a` stays left of the cut.
    if m < a { a } else { m }
}

/// A binned matrix: `cols[feature][row]`, and optionally the same bins row-major
/// (`row_major[row * n_features + feature]`), which boosting's histograms read.
#[derive(Clone, Debug, Default)]
pub struct Binned {
    pub n_rows: usize,
    pub cols: Vec<Vec<u8>>,
    pub row_major: Vec<u8>,
}

impl Binned {
    /// Bins `rows` of raw `columns` with `mappers`.
    pub fn new(columns: &[Vec<f32>], rows: &[u32], mappers: &[BinMapper]) -> Self {
        let cols = columns
            .par_iter()
            .zip(mappers)
            .map(|(col, m)| rows.iter().map(|&r| m.bin(col[r as usize])).collect())
            .collect();
        Binned { n_rows: rows.len(), cols, row_major: Vec::new() }
    }

    /// Adds the row-major copy (used by boosting).
    pub fn with_row_major(mut self) -> Self {
        let n_feat = self.cols.len();
        let mut rm = vec![0u8; self.n_rows * n_feat];
        rm.par_chunks_mut(n_feat.max(1) * 1024).enumerate().for_each(|(chunk, out)| {
            let first = chunk * 1024;
            for (i, row) in out.chunks_mut(n_feat.max(1)).enumerate() {
                for (f, b) in row.iter_mut().enumerate() {
                    *b = self.cols[f][first + i];
                }
            }
        });
        self.row_major = rm;
        self
    }
}

/// Fits one mapper per feature on (a deterministic sample of at most `sample` of) `rows`.
pub fn fit_mappers(columns: &[Vec<f32>], rows: &[u32], max_bins: usize, sample: usize, seed: u64) -> Vec<BinMapper> {
    let chosen: Vec<u32> = if rows.len() <= sample {
        rows.to_vec()
    } else {
        let mut rng = Rng::new(derive_seed(seed, 0xB1B5));
        let mut r = rows.to_vec();
        // Partial Fisher-Yates: the first `sample` entries are a uniform sample.
        for i in 0..sample {
            let j = i + rng.below((r.len() - i) as u64) as usize;
            r.swap(i, j);
        }
        r.truncate(sample);
        r.sort_unstable();
        r
    };
    columns
        .par_iter()
        .map(|col| {
            let mut v: Vec<f32> = chosen.iter().map(|&r| col[r as usize]).collect();
            BinMapper::fit(&mut v, max_bins)
        })
        .collect()
}

/// Sums over a set of rows: gradient (or positive weight), hessian (or weight), count.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cell {
    pub g: f64,
    pub h: f64,
    pub n: u32,
}

impl Cell {
    fn add(&mut self, o: &Cell) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }
    fn sub(&self, o: &Cell) -> Cell {
        Cell { g: self.g - o.g, h: self.h - o.h, n: self.n.wrapping_sub(o.n) }
    }
}

/// Builds the histograms of `features` over `rows` (positions in `binned`), with per-row values
/// `g`, `h` and `n` given in the order of `rows`.
fn build_hist(
    binned: &Binned,
    features: &[usize],
    rows: &[u32],
    g: &[f64],
    h: &[f64],
    n: Option<&[u32]>,
    out: &mut [Cell],
) {
    let one = |f: usize, cells: &mut [Cell]| {
        cells.fill(Cell::default());
        let col = &binned.cols[f];
        match n {
            None => {
                for (j, &r) in rows.iter().enumerate() {
                    let c = &mut cells[usize::from(col[r as usize])];
                    c.g += g[j];
                    c.h += h[j];
                    c.n += 1;
                }
            }
            Some(n) => {
                for (j, &r) in rows.iter().enumerate() {
                    let c = &mut cells[usize::from(col[r as usize])];
                    c.g += g[j];
                    c.h += h[j];
                    c.n += n[j];
                }
            }
        }
    };
    if rows.len() * features.len() < 200_000 {
        for &f in features {
            one(f, &mut out[f * CELLS..(f + 1) * CELLS]);
        }
    } else {
        let mut wanted = vec![false; binned.cols.len()];
        for &f in features {
            wanted[f] = true;
        }
        out.par_chunks_mut(CELLS).enumerate().filter(|(f, _)| wanted[*f]).for_each(|(f, cells)| one(f, cells));
    }
}

/// Row-wise histograms of every feature over `rows` (needs [`Binned::with_row_major`]), with the
/// per-row values `g[r]`, `h[r]`: each row's bins are one contiguous read, and the per-feature
/// updates are independent. A leaf's rows are in ascending order (the partition is stable), so
/// `g` and `h` are read forwards, without gathering them first. Large inputs are split into chunks
/// with private histograms summed in chunk order (deterministic).
fn build_hist_rowwise(
    binned: &Binned,
    rows: &[u32],
    g: &[f64],
    h: &[f64],
    out: &mut [Cell],
    scratch: &mut Vec<Vec<Cell>>,
) {
    let n_feat = binned.cols.len();
    let one = |rows: &[u32], cells: &mut [Cell]| {
        cells.fill(Cell::default());
        // One 256-cell block per feature: a u8 bin indexes it without a bounds check.
        let (blocks, _) = cells.as_chunks_mut::<CELLS>();
        for &r in rows {
            let (gg, hh) = (g[r as usize], h[r as usize]);
            let start = r as usize * n_feat;
            let bins = &binned.row_major[start..start + n_feat];
            for (block, &b) in blocks.iter_mut().zip(bins) {
                let c = &mut block[usize::from(b)];
                c.g += gg;
                c.h += hh;
                c.n += 1;
            }
        }
    };
    let threads = rayon::current_num_threads();
    if rows.len() < 4_096 || threads < 2 {
        one(rows, out);
        return;
    }
    let chunk = rows.len().div_ceil(threads);
    while scratch.len() < threads {
        scratch.push(vec![Cell::default(); n_feat * CELLS]);
    }
    scratch.par_iter_mut().take(threads).enumerate().for_each(|(t, cells)| {
        let lo = (t * chunk).min(rows.len());
        let hi = ((t + 1) * chunk).min(rows.len());
        one(&rows[lo..hi], cells);
    });
    out.copy_from_slice(&scratch[0]);
    for part in scratch.iter().take(threads).skip(1) {
        for (o, c) in out.iter_mut().zip(part) {
            o.add(c);
        }
    }
}

/// A candidate split.
#[derive(Clone, Copy, Debug)]
struct Split {
    feature: usize,
    bin: u8,
    default_left: bool,
    gain: f64,
    left: Cell,
    right: Cell,
}

/// How a split is scored.
trait Criterion: Sync {
    /// Gain of splitting `total` into `left` and `right`, or `None` if not allowed.
    fn gain(&self, total: &Cell, left: &Cell, right: &Cell) -> Option<f64>;
}

struct NewtonGain {
    lambda: f64,
    min_data: u32,
    min_hessian: f64,
}

impl Criterion for NewtonGain {
    #[inline]
    fn gain(&self, total: &Cell, l: &Cell, r: &Cell) -> Option<f64> {
        if l.n < self.min_data || r.n < self.min_data || l.h < self.min_hessian || r.h < self.min_hessian {
            return None;
        }
        let score = |c: &Cell| c.g * c.g / (c.h + self.lambda);
        Some(score(l) + score(r) - score(total))
    }
}

struct GiniGain {
    min_leaf: u32,
}

impl Criterion for GiniGain {
    #[inline]
    fn gain(&self, total: &Cell, l: &Cell, r: &Cell) -> Option<f64> {
        if l.n < self.min_leaf || r.n < self.min_leaf || l.h <= 0.0 || r.h <= 0.0 {
            return None;
        }
        // W * gini(P / W) = 2 P (W - P) / W, with P = positive weight (g) and W = weight (h).
        let imp = |c: &Cell| 2.0 * c.g * (c.h - c.g) / c.h;
        Some(imp(total) - imp(l) - imp(r))
    }
}

fn best_split<C: Criterion>(
    hist: &[Cell],
    features: &[usize],
    mappers: &[BinMapper],
    total: &Cell,
    crit: &C,
) -> Option<Split> {
    let mut best: Option<Split> = None;
    for &f in features {
        let cells = &hist[f * CELLS..(f + 1) * CELLS];
        let missing = cells[usize::from(MISSING)];
        let n_real = mappers[f].n_bins();
        let mut left = Cell::default();
        for (b, cell) in cells.iter().enumerate().take(n_real.saturating_sub(1)) {
            left.add(cell);
            if left.n == 0 {
                continue;
            }
            for default_left in [false, true] {
                if default_left && missing.n == 0 {
                    continue;
                }
                let mut l = left;
                if default_left {
                    l.add(&missing);
                }
                let r = total.sub(&l);
                if r.n == 0 {
                    continue;
                }
                if let Some(gain) = crit.gain(total, &l, &r)
                    && gain > best.as_ref().map_or(1e-12, |s| s.gain)
                {
                    // Without missing values in training, send unseen NaN to the larger side.
                    let dl = if missing.n == 0 { l.n >= r.n } else { default_left };
                    best = Some(Split { feature: f, bin: b as u8, default_left: dl, gain, left: l, right: r });
                }
            }
        }
    }
    best
}

/// Stable in-place partition of `rows` by a split; returns the number of rows going left.
fn partition(rows: &mut [u32], col: &[u8], split: &Split, scratch: &mut Vec<u32>) -> usize {
    let goes_left = |r: u32| {
        let b = col[r as usize];
        if b == MISSING { split.default_left } else { b <= split.bin }
    };
    if rows.len() >= 65_536 && rayon::current_num_threads() > 1 {
        // Large leaves: partition chunks in parallel, then concatenate lefts then rights in chunk
        // order (the same stable order as the sequential pass).
        let parts: Vec<(Vec<u32>, Vec<u32>)> = rows
            .par_chunks(16_384)
            .map(|c| {
                let (mut l, mut r) = (Vec::with_capacity(c.len()), Vec::new());
                for &x in c {
                    if goes_left(x) { l.push(x) } else { r.push(x) }
                }
                (l, r)
            })
            .collect();
        let mut k = 0;
        for (l, _) in &parts {
            rows[k..k + l.len()].copy_from_slice(l);
            k += l.len();
        }
        let n_left = k;
        for (_, r) in &parts {
            rows[k..k + r.len()].copy_from_slice(r);
            k += r.len();
        }
        return n_left;
    }
    scratch.clear();
    let mut n_left = 0;
    for i in 0..rows.len() {
        let r = rows[i];
        if goes_left(r) {
            rows[n_left] = r;
            n_left += 1;
        } else {
            scratch.push(r);
        }
    }
    rows[n_left..].copy_from_slice(scratch);
    n_left
}

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

/// Gradient-boosting parameters (unchecked; see [`GbdtParams::check`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GbdtParams {
    pub num_leaves: usize,
    pub max_depth: Option<usize>,
    pub learning_rate: f64,
    pub max_rounds: usize,
    /// Stop when the validation loss has not improved for this many rounds (0: never).
    pub early_stopping_rounds: usize,
    /// An improvement counts only if it lowers the best validation loss by this share of it.
    pub early_stopping_min_delta: f64,
    pub min_data_in_leaf: u32,
    pub min_sum_hessian_in_leaf: f64,
    pub lambda_l2: f64,
    /// Share of features each tree may use.
    pub feature_fraction: f64,
    /// Share of rows each tree is trained on (1: all).
    pub bagging_fraction: f64,
    /// Balanced bagging (LightGBM's `pos_bagging_fraction` / `neg_bagging_fraction`): when
    /// either is below 1, each tree samples positives and negatives at these rates instead.
    pub pos_bagging_fraction: f64,
    pub neg_bagging_fraction: f64,
    pub class_weight: ClassWeight,
    pub max_bins: usize,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            num_leaves: 31,
            max_depth: None,
            learning_rate: 0.1,
            max_rounds: 500,
            // The regularisation below (chosen on validation PR AUC on the default data) gives a
            // smooth validation loss: its longest stretch without improvement before the best
            // round is 10 rounds there.
            early_stopping_rounds: 25,
            early_stopping_min_delta: 0.0,
            min_data_in_leaf: 50,
            min_sum_hessian_in_leaf: 1e-3,
            lambda_l2: 5.0,
            feature_fraction: 0.8,
            bagging_fraction: 0.8,
            pos_bagging_fraction: 1.0,
            neg_bagging_fraction: 1.0,
            // Unweighted: balanced weights converged slower and to a lower validation PR AUC; the
            // imbalance is handled by calibrated probabilities and the validation threshold
            // (docs/decisions/class-weights.md).
            class_weight: ClassWeight::None,
            max_bins: 255,
        }
    }
}

/// Checked gradient-boosting parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidGbdtParams(GbdtParams);

impl GbdtParams {
    pub fn check(self) -> Result<ValidGbdtParams, ParamError> {
        let p = &self;
        if p.num_leaves < 2 {
            return param_err("num_leaves", "must be at least 2");
        }
        if !(p.learning_rate > 0.0 && p.learning_rate <= 1.0) {
            return param_err("learning_rate", "must be in (0, 1]");
        }
        if p.max_rounds == 0 {
            return param_err("max_rounds", "must be at least 1");
        }
        if !(p.feature_fraction > 0.0 && p.feature_fraction <= 1.0) {
            return param_err("feature_fraction", "must be in (0, 1]");
        }
        if !(p.bagging_fraction > 0.0 && p.bagging_fraction <= 1.0) {
            return param_err("bagging_fraction", "must be in (0, 1]");
        }
        for (name, v) in
            [("pos_bagging_fraction", p.pos_bagging_fraction), ("neg_bagging_fraction", p.neg_bagging_fraction)]
        {
            if !(v > 0.0 && v <= 1.0) {
                return param_err(
                    if name.starts_with("pos") { "pos_bagging_fraction" } else { "neg_bagging_fraction" },
                    "must be in (0, 1]",
                );
            }
        }
        if !(p.lambda_l2 >= 0.0 && p.min_sum_hessian_in_leaf >= 0.0) {
            return param_err("lambda_l2", "lambda_l2 and min_sum_hessian_in_leaf must be >= 0");
        }
        if !(2..=255).contains(&p.max_bins) {
            return param_err("max_bins", "must be in 2..=255");
        }
        if p.max_depth == Some(0) {
            return param_err("max_depth", "must be at least 1");
        }
        Ok(ValidGbdtParams(self))
    }
}

impl ValidGbdtParams {
    pub fn params(&self) -> &GbdtParams {
        &self.0
    }
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

/// What boosting produced.
#[derive(Clone, Debug)]
pub struct GbdtFit {
    pub ensemble: Ensemble,
    /// Number of rounds kept (the best validation round).
    pub rounds: usize,
    /// Validation loss after each round.
    pub valid_loss: Vec<f64>,
    /// Normalised total gain per feature.
    pub importance: Vec<f64>,
}

/// A finished [`BinTree`] laid out for scoring many binned rows. Leaves lead to themselves, so
/// every row takes the same number of steps (the tree's depth) and a step is branch-free; rows are
/// walked eight side by side, so that their loads overlap instead of each waiting for the last.
struct RowWalker {
    nodes: Vec<WalkNode>,
    depth: usize,
}

#[derive(Clone, Copy)]
struct WalkNode {
    feature: u32,
    bin: u8,
    default_left: bool,
    /// Left and right child (both the node itself for a leaf).
    next: [u32; 2],
}

impl RowWalker {
    fn new(tree: &BinTree) -> Self {
        let nodes: Vec<WalkNode> = (0..tree.feature.len())
            .map(|n| {
                if tree.feature[n] < 0 {
                    // Every bin, and the missing bin, goes "left", to the leaf itself.
                    WalkNode { feature: 0, bin: u8::MAX, default_left: true, next: [n as u32; 2] }
                } else {
                    WalkNode {
                        feature: tree.feature[n] as u32,
                        bin: tree.bin[n],
                        default_left: tree.default_left[n],
                        next: [tree.left[n], tree.right[n]],
                    }
                }
            })
            .collect();
        let depth = crate::model::depth_of(&tree.feature, &tree.left, &tree.right) as usize;
        RowWalker { nodes, depth }
    }

    #[inline]
    fn step(&self, n: usize, row: &[u8]) -> usize {
        let node = &self.nodes[n];
        let b = row[node.feature as usize];
        let left = if b == MISSING { node.default_left } else { b <= node.bin };
        node.next[usize::from(!left)] as usize
    }

    /// Leaf reached by each of `rows` (`row(i)` gives row `i`'s bins), into `out`.
    fn leaves<'a>(&self, n: usize, row: impl Fn(usize) -> &'a [u8], out: &mut impl FnMut(usize, usize)) {
        const LANES: usize = 8;
        let mut i = 0;
        while i + LANES <= n {
            let lanes: [&[u8]; LANES] = std::array::from_fn(|k| row(i + k));
            let mut node = [0usize; LANES];
            for _ in 0..self.depth {
                for (nd, r) in node.iter_mut().zip(&lanes) {
                    *nd = self.step(*nd, r);
                }
            }
            for (k, nd) in node.into_iter().enumerate() {
                out(i + k, nd);
            }
            i += LANES;
        }
        for j in i..n {
            let r = row(j);
            let mut nd = 0;
            for _ in 0..self.depth {
                nd = self.step(nd, r);
            }
            out(j, nd);
        }
    }
}

struct LeafState {
    node: u32,
    begin: usize,
    end: usize,
    depth: usize,
    hist: usize,
    best: Option<Split>,
}

fn weighted_logloss(margins: &[f64], y: &[u8], w: &[f64]) -> f64 {
    let mut loss = 0.0;
    let mut wsum = 0.0;
    for ((&m, &yy), &ww) in margins.iter().zip(y).zip(w) {
        // log(1 + e^-m) for y=1, log(1 + e^m) for y=0, computed stably.
        let z = if yy == 1 { -m } else { m };
        loss += ww * (z.max(0.0) + (-z.abs()).exp().ln_1p());
        wsum += ww;
    }
    loss / wsum.max(1e-300)
}

/// Gradient boosting with the logistic loss, leaf-wise growth and early stopping on `valid`.
pub fn fit_gbdt(
    params: &ValidGbdtParams,
    mappers: &[BinMapper],
    train: &TrainSet<'_>,
    valid: Option<&TrainSet<'_>>,
    seed: u64,
) -> GbdtFit {
    let p = params.params();
    let n = train.binned.n_rows;
    let n_feat = train.binned.cols.len();
    let wsum: f64 = train.w.iter().sum();
    let wpos: f64 = train.y.iter().zip(train.w).filter(|(y, _)| **y == 1).map(|(_, w)| w).sum();
    let base_margin = logit((wpos / wsum.max(1e-300)).clamp(1e-6, 1.0 - 1e-6));
    let mut score = vec![base_margin; n];
    let mut vscore = valid.map(|v| vec![base_margin; v.binned.n_rows]).unwrap_or_default();
    let crit =
        NewtonGain { lambda: p.lambda_l2, min_data: p.min_data_in_leaf.max(1), min_hessian: p.min_sum_hessian_in_leaf };
    let mut g = vec![0.0; n];
    let mut h = vec![0.0; n];
    let mut scratch = Vec::with_capacity(n);
    let mut pool: Vec<Vec<Cell>> = Vec::new();
    let mut thread_hists: Vec<Vec<Cell>> = Vec::new();
    let mut trees: Vec<BinTree> = Vec::new();
    let mut importance = vec![0.0; n_feat];
    let mut valid_loss = Vec::new();
    let mut best = (f64::INFINITY, 0usize);
    let mut rng = Rng::new(derive_seed(seed, 0x6BD7));
    let all_features: Vec<usize> = (0..n_feat).collect();
    let bagging = p.bagging_fraction < 1.0 || p.pos_bagging_fraction < 1.0 || p.neg_bagging_fraction < 1.0;

    for round in 0..p.max_rounds {
        // Gradients and hessians of the weighted log loss (element-wise: parallel and exact).
        const CHUNK: usize = 16_384;
        g.par_chunks_mut(CHUNK).zip(h.par_chunks_mut(CHUNK)).enumerate().for_each(|(c, (gs, hs))| {
            let off = c * CHUNK;
            for (j, (gi, hi)) in gs.iter_mut().zip(hs.iter_mut()).enumerate() {
                let i = off + j;
                let pr = sigmoid(score[i]);
                let w = train.w[i];
                *gi = w * (pr - f64::from(train.y[i]));
                *hi = (w * pr * (1.0 - pr)).max(1e-16);
            }
        });
        let features: Vec<usize> = if p.feature_fraction < 1.0 {
            let k = ((n_feat as f64 * p.feature_fraction).ceil() as usize).max(1);
            let mut f = all_features.clone();
            for i in 0..k {
                let j = i + rng.below((n_feat - i) as u64) as usize;
                f.swap(i, j);
            }
            f.truncate(k);
            f.sort_unstable();
            f
        } else {
            all_features.clone()
        };
        let balanced = p.pos_bagging_fraction < 1.0 || p.neg_bagging_fraction < 1.0;
        let mut rows: Vec<u32> = if bagging {
            // One random stream per chunk of rows: parallel, and the same bag for a seed.
            let round_seed = rng.next_u64();
            let y = train.y;
            (0..n.div_ceil(CHUNK))
                .into_par_iter()
                .flat_map_iter(|c| {
                    let mut r = Rng::new(derive_seed(round_seed, c as u64));
                    (c * CHUNK..((c + 1) * CHUNK).min(n))
                        .filter(move |&i| {
                            let rate = match (balanced, y[i]) {
                                (false, _) => p.bagging_fraction,
                                (true, 1) => p.pos_bagging_fraction,
                                (true, _) => p.neg_bagging_fraction,
                            };
                            r.chance(rate)
                        })
                        .map(|i| i as u32)
                })
                .collect()
        } else {
            (0..n as u32).collect()
        };
        if rows.is_empty() {
            break;
        }

        // Grow one tree, leaf-wise.
        let mut tree = BinTree::default();
        let root_total = rows.iter().fold(Cell::default(), |mut c, &r| {
            c.g += g[r as usize];
            c.h += h[r as usize];
            c.n += 1;
            c
        });
        let root = tree.new_leaf(-root_total.g / (root_total.h + p.lambda_l2));
        let mut hists_free: Vec<usize> = (0..pool.len()).collect();
        let take_hist = |pool: &mut Vec<Vec<Cell>>, free: &mut Vec<usize>| -> usize {
            free.pop().unwrap_or_else(|| {
                pool.push(vec![Cell::default(); n_feat * CELLS]);
                pool.len() - 1
            })
        };
        let root_hist = take_hist(&mut pool, &mut hists_free);
        build_hist_rowwise(train.binned, &rows, &g, &h, &mut pool[root_hist], &mut thread_hists);
        let mut leaves = vec![LeafState {
            node: root,
            begin: 0,
            end: rows.len(),
            depth: 0,
            hist: root_hist,
            best: best_split(&pool[root_hist], &features, mappers, &root_total, &crit),
        }];
        while leaves.len() < p.num_leaves {
            let Some((li, _)) = leaves
                .iter()
                .enumerate()
                .filter_map(|(i, l)| l.best.map(|s| (i, s.gain)))
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            else {
                break;
            };
            let leaf = leaves.swap_remove(li);
            let Some(split) = leaf.best else { break };
            importance[split.feature] += split.gain;
            let n_left =
                partition(&mut rows[leaf.begin..leaf.end], &train.binned.cols[split.feature], &split, &mut scratch);
            let mid = leaf.begin + n_left;
            let vl = -split.left.g / (split.left.h + p.lambda_l2);
            let vr = -split.right.g / (split.right.h + p.lambda_l2);
            let (ln, rn) = tree.split(leaf.node, &split, vl, vr);
            // Build the smaller child's histogram; the larger one is parent - smaller, in place.
            let left_smaller = n_left <= (leaf.end - leaf.begin - n_left);
            let s_range = if left_smaller { leaf.begin..mid } else { mid..leaf.end };
            let small = take_hist(&mut pool, &mut hists_free);
            build_hist_rowwise(train.binned, &rows[s_range], &g, &h, &mut pool[small], &mut thread_hists);
            {
                let (a, b) = if small < leaf.hist {
                    let (x, y) = pool.split_at_mut(leaf.hist);
                    (&mut y[0], &x[small])
                } else {
                    let (x, y) = pool.split_at_mut(small);
                    (&mut x[leaf.hist], &y[0])
                };
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = x.sub(y);
                }
            }
            let large = leaf.hist;
            let depth = leaf.depth + 1;
            let can_split = p.max_depth.is_none_or(|d| depth < d);
            let (l_hist, r_hist) = if left_smaller { (small, large) } else { (large, small) };
            let find = |hist: usize, total: &Cell| {
                if can_split { best_split(&pool[hist], &features, mappers, total, &crit) } else { None }
            };
            let (lb, rb) = rayon::join(|| find(l_hist, &split.left), || find(r_hist, &split.right));
            leaves.push(LeafState { node: ln, begin: leaf.begin, end: mid, depth, hist: l_hist, best: lb });
            leaves.push(LeafState { node: rn, begin: mid, end: leaf.end, depth, hist: r_hist, best: rb });
        }
        // Leaf values with shrinkage.
        for v in &mut tree.value {
            *v *= p.learning_rate;
        }
        // In-bag rows: the value of the leaf whose range holds them. Out-of-bag rows (bagging):
        // routed through the tree, in parallel.
        let mut in_bag = vec![!bagging; n];
        for leaf in &leaves {
            let v = tree.value[leaf.node as usize];
            for &r in &rows[leaf.begin..leaf.end] {
                score[r as usize] += v;
                in_bag[r as usize] = true;
            }
        }
        let walker = RowWalker::new(&tree);
        if bagging {
            const BLOCK: usize = 4_096;
            let rm = &train.binned.row_major;
            score.par_chunks_mut(BLOCK).zip(in_bag.par_chunks(BLOCK)).enumerate().for_each(|(c, (sc, bag))| {
                let oob: Vec<usize> = (0..sc.len()).filter(|&i| !bag[i]).collect();
                let row = |i: usize| {
                    let r = c * BLOCK + oob[i];
                    &rm[r * n_feat..(r + 1) * n_feat]
                };
                walker.leaves(oob.len(), row, &mut |i, leaf| sc[oob[i]] += tree.value[leaf]);
            });
        }
        if let Some(v) = valid {
            const BLOCK: usize = 4_096;
            vscore.par_chunks_mut(BLOCK).enumerate().for_each(|(c, sc)| {
                if v.binned.row_major.is_empty() {
                    for (i, s) in sc.iter_mut().enumerate() {
                        *s += tree.value[tree.leaf_of(v.binned, c * BLOCK + i)];
                    }
                } else {
                    let rm = &v.binned.row_major;
                    let row = |i: usize| {
                        let r = c * BLOCK + i;
                        &rm[r * n_feat..(r + 1) * n_feat]
                    };
                    walker.leaves(sc.len(), row, &mut |i, leaf| sc[i] += tree.value[leaf]);
                }
            });
            let loss = weighted_logloss(&vscore, v.y, v.w);
            valid_loss.push(loss);
            if loss < best.0 * (1.0 - p.early_stopping_min_delta) - 1e-12 {
                best = (loss, round + 1);
            }
        } else {
            best = (0.0, round + 1);
        }
        trees.push(tree);
        if p.early_stopping_rounds > 0 && round + 1 >= best.1 + p.early_stopping_rounds {
            break;
        }
    }
    trees.truncate(best.1.max(1));
    let ensemble = Ensemble {
        combine: Combine::Boosting { base_margin },
        trees: trees.iter().map(|t| t.to_tree(mappers)).collect(),
        n_features: n_feat,
        calibration: None,
    };
    GbdtFit { ensemble, rounds: best.1.max(1), valid_loss, importance: normalise(importance) }
}

/// How many features a forest node may choose from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    Sqrt,
    All,
}

/// Random-forest parameters (unchecked; see [`ForestParams::check`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForestParams {
    pub trees: usize,
    pub max_depth: usize,
    pub min_samples_split: u32,
    pub min_samples_leaf: u32,
    pub max_features: MaxFeatures,
    /// Bootstrap rows per tree (Poisson(1) counts); otherwise every tree sees every row.
    pub bootstrap: bool,
    pub class_weight: ClassWeight,
    pub max_bins: usize,
}

impl Default for ForestParams {
    /// The seed system's forest: 100 trees, depth 12, min_samples_split 5, balanced classes.
    fn default() -> Self {
        ForestParams {
            trees: 100,
            max_depth: 12,
            min_samples_split: 5,
            min_samples_leaf: 1,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            class_weight: ClassWeight::Balanced,
            max_bins: 255,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ValidForestParams(ForestParams);

impl ForestParams {
    pub fn check(self) -> Result<ValidForestParams, ParamError> {
        if self.trees == 0 {
            return param_err("trees", "must be at least 1");
        }
        if self.max_depth == 0 {
            return param_err("max_depth", "must be at least 1");
        }
        if self.min_samples_split < 2 {
            return param_err("min_samples_split", "must be at least 2");
        }
        if self.min_samples_leaf == 0 {
            return param_err("min_samples_leaf", "must be at least 1");
        }
        if !(2..=255).contains(&self.max_bins) {
            return param_err("max_bins", "must be in 2..=255");
        }
        Ok(ValidForestParams(self))
    }
}

impl ValidForestParams {
    pub fn params(&self) -> &ForestParams {
        &self.0
    }
}

/// What a forest fit produced.
#[derive(Clone, Debug)]
pub struct ForestFit {
    pub ensemble: Ensemble,
    pub importance: Vec<f64>,
}

/// A random forest: bootstrap rows, `sqrt(features)` per node, Gini splits on histograms,
/// leaves hold the weighted share of positives. Trees train in parallel.
pub fn fit_forest(params: &ValidForestParams, mappers: &[BinMapper], train: &TrainSet<'_>, seed: u64) -> ForestFit {
    let p = params.params();
    let n_feat = train.binned.cols.len();
    let k = match p.max_features {
        MaxFeatures::Sqrt => ((n_feat as f64).sqrt().round() as usize).clamp(1, n_feat),
        MaxFeatures::All => n_feat,
    };
    let results: Vec<(BinTree, Vec<f64>)> = (0..p.trees)
        .into_par_iter()
        .map(|t| grow_forest_tree(p, mappers, train, k, derive_seed(seed, t as u64)))
        .collect();
    let mut importance = vec![0.0; n_feat];
    let mut trees = Vec::with_capacity(results.len());
    for (tree, imp) in results {
        for (a, b) in importance.iter_mut().zip(imp) {
            *a += b;
        }
        trees.push(tree.to_tree(mappers));
    }
    ForestFit {
        ensemble: Ensemble { combine: Combine::Forest, trees, n_features: n_feat, calibration: None },
        importance: normalise(importance),
    }
}

/// Poisson(1) draw by inversion (the bootstrap multiplicity of a row).
fn poisson1(rng: &mut Rng) -> u32 {
    const CDF: [f64; 8] = [
        0.367_879_441,
        0.735_758_882,
        0.919_698_603,
        0.981_011_843,
        0.996_340_153,
        0.999_405_815,
        0.999_916_758,
        0.999_989_750,
    ];
    let u = rng.f64();
    CDF.iter().position(|&c| u < c).unwrap_or(8) as u32
}

fn grow_forest_tree(
    p: &ForestParams,
    mappers: &[BinMapper],
    train: &TrainSet<'_>,
    k: usize,
    seed: u64,
) -> (BinTree, Vec<f64>) {
    let n = train.binned.n_rows;
    let n_feat = train.binned.cols.len();
    let mut rng = Rng::new(seed);
    let mut rows: Vec<u32> = Vec::with_capacity(n);
    let mut count = vec![0u32; n];
    for (r, c) in count.iter_mut().enumerate() {
        *c = if p.bootstrap { poisson1(&mut rng) } else { 1 };
        if *c > 0 {
            rows.push(r as u32);
        }
    }
    // Per row: positive weight (g), weight (h), multiplicity (n).
    let pos_w = |r: usize| f64::from(count[r]) * train.w[r] * f64::from(train.y[r]);
    let all_w = |r: usize| f64::from(count[r]) * train.w[r];
    let mut tree = BinTree::default();
    let mut importance = vec![0.0; n_feat];
    let mut hist = vec![Cell::default(); n_feat * CELLS];
    let mut features: Vec<usize> = (0..n_feat).collect();
    let (mut og, mut oh, mut on) = (Vec::new(), Vec::new(), Vec::new());
    let mut scratch = Vec::new();
    let crit = GiniGain { min_leaf: p.min_samples_leaf };
    let total_of = |rows: &[u32]| {
        rows.iter().fold(Cell::default(), |mut c, &r| {
            c.g += pos_w(r as usize);
            c.h += all_w(r as usize);
            c.n += count[r as usize];
            c
        })
    };
    let root_total = total_of(&rows);
    let leaf_value = |c: &Cell| if c.h > 0.0 { c.g / c.h } else { 0.0 };
    let root = tree.new_leaf(leaf_value(&root_total));
    // Depth-first: (node, begin, end, depth, totals).
    let mut stack = vec![(root, 0usize, rows.len(), 0usize, root_total)];
    while let Some((node, begin, end, depth, total)) = stack.pop() {
        let pure = total.g <= 0.0 || total.g >= total.h;
        if depth >= p.max_depth || total.n < p.min_samples_split || pure {
            continue;
        }
        // Choose k features without replacement (partial Fisher-Yates).
        for i in 0..k {
            let j = i + rng.below((n_feat - i) as u64) as usize;
            features.swap(i, j);
        }
        let mut chosen = features[..k].to_vec();
        chosen.sort_unstable();
        let node_rows = &rows[begin..end];
        og.clear();
        oh.clear();
        on.clear();
        og.extend(node_rows.iter().map(|&r| pos_w(r as usize)));
        oh.extend(node_rows.iter().map(|&r| all_w(r as usize)));
        on.extend(node_rows.iter().map(|&r| count[r as usize]));
        build_hist(train.binned, &chosen, node_rows, &og, &oh, Some(&on), &mut hist);
        let Some(split) = best_split(&hist, &chosen, mappers, &total, &crit) else {
            continue;
        };
        importance[split.feature] += split.gain;
        let n_left = partition(&mut rows[begin..end], &train.binned.cols[split.feature], &split, &mut scratch);
        let mid = begin + n_left;
        let (ln, rn) = tree.split(node, &split, leaf_value(&split.left), leaf_value(&split.right));
        stack.push((rn, mid, end, depth + 1, split.right));
        stack.push((ln, begin, mid, depth + 1, split.left));
    }
    (tree, importance)
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
        crate::metrics::roc_auc(scores, y)
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
