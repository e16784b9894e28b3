//! Histograms of (gradient, hessian, count) per bin, the best split of a node, and the stable
//! partition of its rows.

use rayon::prelude::*;

use super::bins::{CELLS, MISSING};
use super::*;

/// Sums over a set of rows: gradient (or positive weight), hessian (or weight), count.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cell {
    pub g: f64,
    pub h: f64,
    pub n: u32,
}

impl Cell {
    pub(super) fn add(&mut self, o: &Cell) {
        self.g += o.g;
        self.h += o.h;
        self.n += o.n;
    }
    pub(super) fn sub(&self, o: &Cell) -> Cell {
        Cell { g: self.g - o.g, h: self.h - o.h, n: self.n.wrapping_sub(o.n) }
    }
}

/// Builds the histograms of `features` over `rows` (positions in `binned`), with per-row values
/// `g`, `h` and `n` given in the order of `rows`.
pub(super) fn build_hist(
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
pub(super) fn build_hist_rowwise(
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
pub(super) struct Split {
    pub(super) feature: usize,
    pub(super) bin: u8,
    pub(super) default_left: bool,
    pub(super) gain: f64,
    pub(super) left: Cell,
    pub(super) right: Cell,
}

/// How a split is scored.
pub(super) trait Criterion: Sync {
    /// Gain of splitting `total` into `left` and `right`, or `None` if not allowed.
    fn gain(&self, total: &Cell, left: &Cell, right: &Cell) -> Option<f64>;
}

pub(super) struct NewtonGain {
    pub(super) lambda: f64,
    pub(super) min_data: u32,
    pub(super) min_hessian: f64,
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

pub(super) struct GiniGain {
    pub(super) min_leaf: u32,
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

pub(super) fn best_split<C: Criterion>(
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
pub(super) fn partition(rows: &mut [u32], col: &[u8], split: &Split, scratch: &mut Vec<u32>) -> usize {
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
