//! Tree-ensemble models: what training produces and serving evaluates.
//!
//! One representation serves gradient-boosted trees and random forests: a [`Tree`] is a set of
//! parallel node arrays; an [`Ensemble`] combines trees (sum of margins through a sigmoid for
//! boosting, mean of leaf probabilities for a forest), then an optional Platt calibration maps the
//! result to a probability. A [`Model`] holds the failure model and, optionally, one model per
//! component. Inputs are `f32` feature rows in `FeatureSpec::names()` order; NaN means missing and
//! follows each split's learned default direction.

use serde::{Deserialize, Serialize};

/// A binary decision tree. Node 0 is the root. A node is a leaf when `feature[node] < 0`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    pub feature: Vec<i32>,
    /// A row goes left when `x <= threshold`.
    pub threshold: Vec<f32>,
    pub left: Vec<u32>,
    pub right: Vec<u32>,
    /// Where a missing (NaN) value goes.
    pub default_left: Vec<bool>,
    /// Leaf output: a margin (boosting) or a probability (forest). Internal nodes keep the value
    /// they would have as leaves.
    pub value: Vec<f64>,
}

impl Tree {
    /// A tree with only a root leaf.
    pub fn leaf(value: f64) -> Self {
        Tree {
            feature: vec![-1],
            threshold: vec![0.0],
            left: vec![0],
            right: vec![0],
            default_left: vec![true],
            value: vec![value],
        }
    }

    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// Appends a leaf, returning its index.
    pub fn push_leaf(&mut self, value: f64) -> u32 {
        self.feature.push(-1);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.default_left.push(true);
        self.value.push(value);
        (self.feature.len() - 1) as u32
    }

    /// Turns leaf `node` into a split with the two given children.
    pub fn set_split(&mut self, node: u32, feature: usize, threshold: f32, default_left: bool, left: u32, right: u32) {
        let n = node as usize;
        self.feature[n] = feature as i32;
        self.threshold[n] = threshold;
        self.default_left[n] = default_left;
        self.left[n] = left;
        self.right[n] = right;
    }

    /// The leaf a row falls into.
    #[inline]
    pub fn leaf_of(&self, x: &[f32]) -> usize {
        let mut n = 0usize;
        loop {
            let f = self.feature[n];
            if f < 0 {
                return n;
            }
            let v = x[f as usize];
            let go_left = if v.is_nan() { self.default_left[n] } else { v <= self.threshold[n] };
            n = if go_left { self.left[n] } else { self.right[n] } as usize;
        }
    }

    #[inline]
    pub fn predict(&self, x: &[f32]) -> f64 {
        self.value[self.leaf_of(x)]
    }

    /// Splits on the longest path from the root to a leaf.
    pub fn depth(&self) -> u32 {
        depth_of(&self.feature, &self.left, &self.right)
    }

    /// Checks the structure (used when loading a bundle): indices in range, no cycles.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        let n = self.feature.len();
        if n == 0 {
            return Err("empty tree".into());
        }
        let lens = [self.threshold.len(), self.left.len(), self.right.len(), self.default_left.len(), self.value.len()];
        if lens.iter().any(|&l| l != n) {
            return Err("node arrays have different lengths".into());
        }
        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                return Err(format!("node {i} is reached twice"));
            }
            let f = self.feature[i];
            if f >= 0 {
                if f as usize >= n_features {
                    return Err(format!("node {i} splits on feature {f}, but the model has {n_features}"));
                }
                for child in [self.left[i] as usize, self.right[i] as usize] {
                    if child >= n || child <= i {
                        return Err(format!("node {i} has an invalid child {child}"));
                    }
                    stack.push(child);
                }
            } else if !self.value[i].is_finite() {
                return Err(format!("leaf {i} has a non-finite value"));
            }
        }
        Ok(())
    }
}

/// Depth of a tree in parallel node arrays (`feature < 0` marks a leaf) whose children come after
/// their parent, as every tree here is built and validated.
pub(crate) fn depth_of(feature: &[i32], left: &[u32], right: &[u32]) -> u32 {
    let mut d = vec![0u32; feature.len()];
    for i in (0..d.len()).rev() {
        if feature[i] >= 0 {
            let child = |c: Option<&u32>| c.and_then(|&c| d.get(c as usize)).copied().unwrap_or(0);
            d[i] = 1 + child(left.get(i)).max(child(right.get(i)));
        }
    }
    d.first().copied().unwrap_or(0)
}

/// How an ensemble's trees combine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Combine {
    /// `sigmoid(base_margin + sum of tree outputs)`.
    Boosting { base_margin: f64 },
    /// Mean of the trees' leaf probabilities.
    Forest,
}

/// Platt scaling: `p = sigmoid(a * s + b)` where `s` is the ensemble's margin (boosting) or the
/// logit of its mean probability (forest). Fitted on the validation slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    pub combine: Combine,
    pub trees: Vec<Tree>,
    pub n_features: usize,
    #[serde(default)]
    pub calibration: Option<Calibration>,
}

pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

impl Ensemble {
    /// The uncalibrated score on the margin scale.
    pub fn margin(&self, x: &[f32]) -> f64 {
        self.combine.margin(self.trees.len(), self.trees.iter().map(|t| t.predict(x)))
    }

    /// Probability of the positive class.
    pub fn predict_proba(&self, x: &[f32]) -> f64 {
        self.probability_of_margin(self.margin(x))
    }

    /// Probability of a margin given by [`Ensemble::margin`] (calibrated when the model is).
    pub fn probability_of_margin(&self, margin: f64) -> f64 {
        calibrated(self.calibration.as_ref(), margin)
    }

    /// The trees in one node array, for scoring (bit-identical results).
    pub fn flatten(&self) -> FlatEnsemble {
        let n_nodes: usize = self.trees.iter().map(|t| t.feature.len()).sum();
        let mut f = FlatEnsemble {
            nodes: Vec::with_capacity(n_nodes),
            values: Vec::with_capacity(n_nodes),
            roots: Vec::with_capacity(self.trees.len()),
            group_depth: Vec::with_capacity(self.trees.len().div_ceil(GROUP)),
            pad: 0,
            combine: self.combine.clone(),
            calibration: self.calibration.clone(),
        };
        for t in &self.trees {
            let offset = f.nodes.len() as u32;
            f.roots.push(offset);
            for i in 0..t.feature.len() {
                let here = offset + i as u32;
                f.nodes.push(match u32::try_from(t.feature[i]) {
                    Ok(k) => FlatNode {
                        threshold: t.threshold[i],
                        feature: k | if t.default_left[i] { DEFAULT_LEFT } else { 0 },
                        left: offset + t.left[i],
                        right: offset + t.right[i],
                    },
                    // A leaf leads to itself whatever the value (x <= inf, NaN goes left).
                    Err(_) => FlatNode { threshold: f32::INFINITY, feature: DEFAULT_LEFT, left: here, right: here },
                });
                f.values.push(t.value[i]);
            }
        }
        // A leaf of no tree, filling the free lanes of a last, partial group of trees.
        f.pad = f.nodes.len() as u32;
        f.nodes.push(FlatNode { threshold: f32::INFINITY, feature: DEFAULT_LEFT, left: f.pad, right: f.pad });
        f.values.push(0.0);
        let depths: Vec<u32> = self.trees.iter().map(Tree::depth).collect();
        f.group_depth = depths.chunks(GROUP).map(|d| d.iter().copied().max().unwrap_or(0)).collect();
        f
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.trees.is_empty() {
            return Err("ensemble has no trees".into());
        }
        for (i, t) in self.trees.iter().enumerate() {
            t.validate(self.n_features).map_err(|e| format!("tree {i}: {e}"))?;
        }
        if let Some(c) = &self.calibration
            && !(c.a.is_finite() && c.b.is_finite())
        {
            return Err("calibration is not finite".into());
        }
        Ok(())
    }
}

impl Combine {
    /// Combines the trees' outputs (in tree order) into the margin.
    fn margin(&self, n_trees: usize, outputs: impl Iterator<Item = f64>) -> f64 {
        match self {
            Combine::Boosting { base_margin } => base_margin + outputs.sum::<f64>(),
            Combine::Forest => logit(outputs.sum::<f64>() / n_trees.max(1) as f64),
        }
    }
}

fn calibrated(c: Option<&Calibration>, margin: f64) -> f64 {
    match c {
        Some(c) => sigmoid(c.a * margin + c.b),
        None => sigmoid(margin),
    }
}

/// Trees walked side by side by [`FlatEnsemble::margin`].
const GROUP: usize = 8;
/// `FlatNode::feature` bit: a missing value goes left.
const DEFAULT_LEFT: u32 = 1 << 31;

/// One split in 16 bytes: what a step of a tree walk reads sits in one cache line (the bundle's
/// [`Tree`] keeps five parallel arrays, its stable serialised form).
#[derive(Clone, Copy, Debug, PartialEq)]
struct FlatNode {
    threshold: f32,
    /// Feature index, with [`DEFAULT_LEFT`]; a leaf is its own child on both sides.
    feature: u32,
    /// Indices into the whole ensemble's node array.
    left: u32,
    right: u32,
}

/// An [`Ensemble`] for scoring: every tree's nodes in one array. Built once when a model is
/// loaded for serving; gives exactly the ensemble's probabilities (same trees, same order, same
/// sums). Only built from validated ensembles (indices in range, no cycles).
#[derive(Clone, Debug, PartialEq)]
pub struct FlatEnsemble {
    nodes: Vec<FlatNode>,
    /// Leaf outputs, by node index.
    values: Vec<f64>,
    roots: Vec<u32>,
    /// Deepest leaf of each group of [`GROUP`] trees.
    group_depth: Vec<u32>,
    /// A leaf outside every tree: where the unused lanes of a partial group walk.
    pad: u32,
    combine: Combine,
    calibration: Option<Calibration>,
}

impl FlatEnsemble {
    /// One step of a walk; a leaf stays where it is. Branch-free: the child is a select.
    #[inline]
    fn step(&self, n: usize, x: &[f32]) -> usize {
        let node = self.nodes[n];
        let v = x.get((node.feature & !DEFAULT_LEFT) as usize).copied().unwrap_or(f32::NAN);
        // NaN compares false: it goes left only by the node's default.
        let go_left = v <= node.threshold || (v.is_nan() && node.feature & DEFAULT_LEFT != 0);
        (if go_left { node.left } else { node.right }) as usize
    }

    /// The margin: trees are walked eight at a time, each for its group's depth (leaves stay
    /// put), so the eight walks' loads overlap; outputs are summed in tree order, as the trees'.
    pub fn margin(&self, x: &[f32]) -> f64 {
        let outputs = self.roots.chunks(GROUP).zip(&self.group_depth).flat_map(|(roots, &depth)| {
            let mut n = [self.pad as usize; GROUP];
            for (slot, &r) in n.iter_mut().zip(roots) {
                *slot = r as usize;
            }
            for _ in 0..depth {
                for slot in &mut n {
                    *slot = self.step(*slot, x);
                }
            }
            (0..roots.len()).map(move |k| self.values[n[k]])
        });
        self.combine.margin(self.roots.len(), outputs)
    }

    pub fn predict_proba(&self, x: &[f32]) -> f64 {
        calibrated(self.calibration.as_ref(), self.margin(x))
    }
}

/// A [`Model`] for scoring (see [`FlatEnsemble`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FlatModel {
    pub failure: FlatEnsemble,
    pub components: Vec<FlatEnsemble>,
}

impl FlatModel {
    pub fn predict(&self, x: &[f32]) -> Scores {
        Scores {
            failure: self.failure.predict_proba(x),
            components: self.components.iter().map(|e| e.predict_proba(x)).collect(),
        }
    }
}

/// What a model outputs for one feature row.
#[derive(Clone, Debug, PartialEq)]
pub struct Scores {
    /// Probability of a failure within the label horizon.
    pub failure: f64,
    /// Per component, when the model has per-component heads.
    pub components: Vec<f64>,
}

/// A trained predictive-maintenance model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// `gbdt` or `random_forest`.
    pub algorithm: String,
    /// P(any failure within the horizon).
    pub failure: Ensemble,
    /// One-vs-rest heads, one per contract component (empty unless trained per component).
    #[serde(default)]
    pub components: Vec<Ensemble>,
}

impl Model {
    pub fn n_features(&self) -> usize {
        self.failure.n_features
    }

    pub fn predict(&self, x: &[f32]) -> Scores {
        Scores {
            failure: self.failure.predict_proba(x),
            components: self.components.iter().map(|e| e.predict_proba(x)).collect(),
        }
    }

    /// The model for scoring: bit-identical probabilities, faster tree walks.
    pub fn flatten(&self) -> FlatModel {
        FlatModel {
            failure: self.failure.flatten(),
            components: self.components.iter().map(Ensemble::flatten).collect(),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.failure.validate().map_err(|e| format!("failure model: {e}"))?;
        for (i, c) in self.components.iter().enumerate() {
            if c.n_features != self.failure.n_features {
                return Err(format!(
                    "component model {i} expects {} features, the failure model {}",
                    c.n_features, self.failure.n_features
                ));
            }
            c.validate().map_err(|e| format!("component model {i}: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random valid tree of depth <= `depth` over `n_features` features.
    fn random_tree(r: &mut crate::rng::Rng, n_features: usize, depth: u32) -> Tree {
        let mut t = Tree::leaf(r.normal());
        let mut open = vec![(0u32, 0u32)];
        while let Some((node, d)) = open.pop() {
            if d >= depth || r.below(4) == 0 {
                continue;
            }
            let (l, rr) = (t.push_leaf(r.normal()), t.push_leaf(r.normal()));
            let feature = r.below(n_features as u64) as usize;
            t.set_split(node, feature, r.uniform(-2.0, 2.0) as f32, r.below(2) == 0, l, rr);
            open.push((l, d + 1));
            open.push((rr, d + 1));
        }
        t
    }

    // 43 trees: five full groups of eight walked together and a partial one.
    #[test]
    fn flattened_ensembles_score_bit_for_bit_like_the_trees() {
        let mut r = crate::rng::Rng::new(7);
        let n_features = 9;
        for (k, combine) in [Combine::Boosting { base_margin: -1.25 }, Combine::Forest].into_iter().enumerate() {
            for calibration in [None, Some(Calibration { a: 0.8, b: -0.3 })] {
                let trees: Vec<Tree> = (0..43).map(|_| random_tree(&mut r, n_features, 7)).collect();
                let trees = if k == 1 {
                    // Forest leaves are probabilities.
                    trees
                        .into_iter()
                        .map(|mut t| {
                            t.value.iter_mut().for_each(|v| *v = sigmoid(*v));
                            t
                        })
                        .collect()
                } else {
                    trees
                };
                let e = Ensemble { combine: combine.clone(), trees, n_features, calibration };
                e.validate().unwrap();
                let flat = e.flatten();
                for _ in 0..2_000 {
                    let x: Vec<f32> = (0..n_features)
                        .map(|_| if r.below(10) == 0 { f32::NAN } else { r.uniform(-3.0, 3.0) as f32 })
                        .collect();
                    assert_eq!(flat.predict_proba(&x).to_bits(), e.predict_proba(&x).to_bits(), "{x:?}");
                }
            }
        }
        let m = Model {
            algorithm: "gbdt".into(),
            failure: Ensemble {
                combine: Combine::Boosting { base_margin: 0.1 },
                trees: vec![stump(), random_tree(&mut r, 2, 5)],
                n_features: 2,
                calibration: None,
            },
            components: vec![Ensemble {
                combine: Combine::Forest,
                trees: vec![stump()],
                n_features: 2,
                calibration: None,
            }],
        };
        for x in [[0.0, 0.4], [1.0, f32::NAN], [f32::NAN, 0.9]] {
            assert_eq!(m.flatten().predict(&x), m.predict(&x));
        }
    }

    fn stump() -> Tree {
        let mut t = Tree::leaf(0.0);
        let l = t.push_leaf(-1.0);
        let r = t.push_leaf(2.0);
        t.set_split(0, 1, 0.5, false, l, r);
        t
    }

    #[test]
    fn trees_route_values_and_missing() {
        let t = stump();
        assert_eq!(t.predict(&[9.0, 0.5]), -1.0);
        assert_eq!(t.predict(&[9.0, 0.6]), 2.0);
        assert_eq!(t.predict(&[9.0, f32::NAN]), 2.0, "missing goes right here");
        t.validate(2).unwrap();
        assert!(t.validate(1).unwrap_err().contains("feature 1"));
    }

    #[test]
    fn a_cyclic_tree_is_refused() {
        let mut t = stump();
        t.left[0] = 0;
        assert!(t.validate(2).is_err());
    }

    #[test]
    fn boosting_and_forest_combine_as_documented() {
        let b = Ensemble {
            combine: Combine::Boosting { base_margin: 0.5 },
            trees: vec![stump(), stump()],
            n_features: 2,
            calibration: None,
        };
        assert!((b.predict_proba(&[0.0, 0.0]) - sigmoid(0.5 - 2.0)).abs() < 1e-15);
        let mut leafy = Tree::leaf(0.2);
        leafy.value[0] = 0.2;
        let f = Ensemble {
            combine: Combine::Forest,
            trees: vec![leafy.clone(), Tree::leaf(0.6)],
            n_features: 2,
            calibration: None,
        };
        assert!((f.predict_proba(&[0.0, 0.0]) - 0.4).abs() < 1e-12);
        let c = Ensemble { calibration: Some(Calibration { a: 2.0, b: -1.0 }), ..f };
        assert!((c.predict_proba(&[0.0, 0.0]) - sigmoid(2.0 * logit(0.4) - 1.0)).abs() < 1e-12);
    }
}
