//! Drift: how far recent inputs have moved from the training data, per feature.
//!
//! A [`FeatureBaseline`] (saved in the model bundle) holds a feature's training distribution as
//! ten bins (deciles of the training values; fewer for discrete features) plus the missing share.
//! The population stability index compares bin shares:
//! `PSI = sum over bins of (actual - expected) * ln(actual / expected)`, with shares floored at
//! 1e-4; above 0.2 is the usual "significant shift". The Kolmogorov-Smirnov statistic is the
//! largest gap between the two cumulative distributions at the baseline's percentiles.

use serde::{Deserialize, Serialize};

/// The training distribution of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureBaseline {
    pub name: String,
    /// Interior bin edges (a value `x` is in bin `i` where `i` = number of edges `< x`).
    pub edges: Vec<f64>,
    /// Share of non-missing training values in each bin (`edges.len() + 1` entries).
    pub shares: Vec<f64>,
    pub missing_share: f64,
    pub mean: f64,
    pub sd: f64,
    /// Percentiles 0, 1, ..., 100 of the non-missing training values (for KS).
    pub percentiles: Vec<f64>,
}

const FLOOR: f64 = 1e-4;

impl FeatureBaseline {
    pub fn fit(name: &str, values: impl Iterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = Vec::new();
        let mut missing = 0usize;
        for x in values {
            if x.is_nan() { missing += 1 } else { v.push(x) }
        }
        let total = v.len() + missing;
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            if v.is_empty() { f64::NAN } else { v[((v.len() - 1) as f64 * p).round() as usize] }
        };
        let mut edges: Vec<f64> = (1..10).map(|k| q(f64::from(k) / 10.0)).filter(|x| !x.is_nan()).collect();
        edges.dedup();
        let mut counts = vec![0usize; edges.len() + 1];
        for &x in &v {
            counts[edges.partition_point(|&e| e < x)] += 1;
        }
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n).sqrt();
        FeatureBaseline {
            name: name.to_string(),
            shares: counts.iter().map(|&c| c as f64 / n).collect(),
            edges,
            missing_share: if total == 0 { 0.0 } else { missing as f64 / total as f64 },
            mean: if v.is_empty() { f64::NAN } else { mean },
            sd: if v.is_empty() { f64::NAN } else { sd },
            percentiles: (0..=100).map(|k| q(f64::from(k) / 100.0)).collect(),
        }
    }

    /// Bin of a value (the last index is the missing bin).
    pub fn bin(&self, x: f64) -> usize {
        if x.is_nan() { self.edges.len() + 1 } else { self.edges.partition_point(|&e| e < x) }
    }

    pub fn n_bins(&self) -> usize {
        self.edges.len() + 2
    }

    /// PSI of observed per-bin counts (`n_bins()` entries, the missing bin last).
    pub fn psi(&self, counts: &[u64]) -> f64 {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let present = 1.0 - self.missing_share;
        let mut psi = 0.0;
        for (i, &c) in counts.iter().enumerate() {
            let expected = if i < self.shares.len() { self.shares[i] * present } else { self.missing_share };
            let (e, a) = (expected.max(FLOOR), (c as f64 / total as f64).max(FLOOR));
            psi += (a - e) * (a / e).ln();
        }
        psi
    }

    /// PSI of a sample of values.
    pub fn psi_of(&self, values: impl Iterator<Item = f64>) -> f64 {
        let mut counts = vec![0u64; self.n_bins()];
        for x in values {
            counts[self.bin(x)] += 1;
        }
        self.psi(&counts)
    }

    /// Kolmogorov-Smirnov statistic of a sample against the baseline, at the percentiles.
    pub fn ks_of(&self, values: impl Iterator<Item = f64>) -> f64 {
        let mut v: Vec<f64> = values.filter(|x| !x.is_nan()).collect();
        if v.is_empty() || self.percentiles.iter().any(|p| p.is_nan()) {
            return 0.0;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut d: f64 = 0.0;
        for (k, &p) in self.percentiles.iter().enumerate() {
            // Baseline CDF at its k-th percentile is at least k/100; the sample's is the share <= p.
            let sample = v.partition_point(|&x| x <= p) as f64 / n;
            d = d.max((sample - k as f64 / 100.0).abs());
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() {
        let mut r = Rng::new(1);
        let train: Vec<f64> = (0..50_000).map(|_| r.normal()).collect();
        let b = FeatureBaseline::fit("x", train.iter().copied());
        assert_eq!(b.shares.len(), 10);
        let same: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        assert!(b.psi_of(same.iter().copied()) < 0.01);
        assert!(b.ks_of(same.iter().copied()) < 0.03);
        let shifted: Vec<f64> = (0..20_000).map(|_| r.normal() + 1.0).collect();
        assert!(b.psi_of(shifted.iter().copied()) > 0.5);
        assert!(b.ks_of(shifted.iter().copied()) > 0.3);
    }

    #[test]
    fn discrete_features_and_missing_values() {
        let vals: Vec<f64> = (0..1000).map(|i| if i % 10 == 0 { f64::NAN } else { f64::from(i % 2) }).collect();
        let b = FeatureBaseline::fit("onehot", vals.iter().copied());
        assert_eq!(b.edges, vec![0.0, 1.0][..b.edges.len()].to_vec());
        assert!((b.missing_share - 0.1).abs() < 1e-12);
        assert!(b.psi_of(vals.iter().copied()).abs() < 1e-9);
        let all_missing = vec![f64::NAN; 100];
        assert!(b.psi_of(all_missing.into_iter()) > 1.0);
    }
}
