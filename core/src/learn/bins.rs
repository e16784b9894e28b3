//! Quantile bins: each feature's raw values mapped to at most 255 bins and a missing bin.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::{Rng, derive_seed};

/// Index of the missing-value bin; real bins are `0..=254`.
pub const MISSING: u8 = 255;
pub(super) const CELLS: usize = 256;

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

pub(super) fn midpoint(a: f32, b: f32) -> f32 {
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
