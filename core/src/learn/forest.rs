//! The random forest: bootstrap rows, a random subset of features per node, Gini splits on
//! histograms, trees in parallel.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::learn::model::{Combine, Ensemble};
use crate::rng::{Rng, derive_seed};

use super::bins::CELLS;
use super::histograms::{Cell, GiniGain, best_split, build_hist, partition};
use super::*;

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
pub(super) fn poisson1(rng: &mut Rng) -> u32 {
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

pub(super) fn grow_forest_tree(
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
