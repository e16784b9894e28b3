//! Drift of the served inputs: the feature vectors of the last `capacity` predictions, binned
//! with the training baseline the bundle carries, and their population stability index per
//! feature (computed when `/metrics` is scraped).
//!
//! The hot path records one prediction in `sample` (a systematic sample: binning a row costs a
//! search per feature), and only when the window's lock is free (`try_lock`): under heavy
//! concurrency a few rows are skipped rather than making requests wait on each other. The window
//! is a sample of recent traffic either way.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use pm_core::eval::drift::FeatureBaseline;

#[derive(Debug)]
pub struct DriftWindow {
    inner: Mutex<Inner>,
    baseline: Vec<FeatureBaseline>,
    sample: u64,
    seen: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    capacity: usize,
    /// Ring of rows of bin indices (`n_features` per row).
    bins: Vec<u8>,
    next: usize,
    len: usize,
    /// Per feature, a count per baseline bin (offsets in `offsets`).
    counts: Vec<u64>,
    total_rows: u64,
}

impl DriftWindow {
    /// A window of `capacity` rows, recording one prediction in `sample` (1 = all).
    pub fn new(baseline: Vec<FeatureBaseline>, capacity: usize, sample: u32) -> Self {
        let n_bins: usize = baseline.iter().map(FeatureBaseline::n_bins).sum();
        let capacity = capacity.max(1);
        DriftWindow {
            inner: Mutex::new(Inner {
                capacity,
                bins: vec![0; capacity * baseline.len()],
                next: 0,
                len: 0,
                counts: vec![0; n_bins],
                total_rows: 0,
            }),
            baseline,
            sample: u64::from(sample.max(1)),
            seen: AtomicU64::new(0),
        }
    }

    /// Records a feature row if it is in the sample and no other request holds the window.
    pub fn record(&self, row: &[f64]) {
        if self.sample > 1 && !self.seen.fetch_add(1, Ordering::Relaxed).is_multiple_of(self.sample) {
            return;
        }
        let Ok(mut w) = self.inner.try_lock() else { return };
        let n = self.baseline.len();
        if row.len() != n || n == 0 {
            return;
        }
        let w = &mut *w;
        let slot = w.next * n;
        let full = w.len == w.capacity;
        let mut offset = 0;
        for (f, b) in self.baseline.iter().enumerate() {
            if full {
                let old = usize::from(w.bins[slot + f]);
                w.counts[offset + old] = w.counts[offset + old].saturating_sub(1);
            }
            let bin = b.bin(row[f]).min(usize::from(u8::MAX));
            w.bins[slot + f] = bin as u8;
            w.counts[offset + bin] += 1;
            offset += b.n_bins();
        }
        w.next = (w.next + 1) % w.capacity;
        w.len = (w.len + 1).min(w.capacity);
        w.total_rows += 1;
    }

    /// `(rows in the window, PSI per feature in feature order)`.
    pub fn psi(&self) -> (usize, Vec<(String, f64)>) {
        let w = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut offset = 0;
        let mut out = Vec::with_capacity(self.baseline.len());
        for b in &self.baseline {
            let counts = &w.counts[offset..offset + b.n_bins()];
            out.push((b.name.clone(), if w.len == 0 { 0.0 } else { b.psi(counts) }));
            offset += b.n_bins();
        }
        (w.len, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_forgets_old_rows_and_measures_a_shift() {
        let train: Vec<f64> = (0..10_000).map(|i| f64::from(i % 100)).collect();
        let base = vec![FeatureBaseline::fit("x", train.iter().copied())];
        let w = DriftWindow::new(base.clone(), 500, 1);
        for i in 0..500 {
            w.record(&[f64::from(i % 100)]);
        }
        let (n, psi) = w.psi();
        assert_eq!(n, 500);
        assert!(psi[0].1 < 0.02, "same distribution: {psi:?}");
        // Shift everything to the top bin: the window fills with new rows and forgets the old.
        for _ in 0..500 {
            w.record(&[1e6]);
        }
        let (n, psi) = w.psi();
        assert_eq!(n, 500);
        let direct = base[0].psi_of(std::iter::repeat_n(1e6, 500));
        assert!((psi[0].1 - direct).abs() < 1e-12, "{} vs {direct}", psi[0].1);
        assert!(psi[0].1 > 1.0);
        // Rows of the wrong width are ignored, not a panic.
        w.record(&[1.0, 2.0]);
        assert_eq!(w.psi().0, 500);
    }

    #[test]
    fn a_sample_of_one_in_four_records_every_fourth_row() {
        let base = vec![FeatureBaseline::fit("x", (0..1000).map(f64::from))];
        let w = DriftWindow::new(base, 1000, 4);
        for i in 0..400 {
            // Rows 0, 4, 8, ... are in the sample; all of them sit in the top bin.
            w.record(&[if i % 4 == 0 { 1e6 } else { -1e6 }]);
        }
        let (n, psi) = w.psi();
        assert_eq!(n, 100);
        let only_top = FeatureBaseline::fit("x", (0..1000).map(f64::from)).psi_of(std::iter::repeat_n(1e6, 100));
        assert!((psi[0].1 - only_top).abs() < 1e-12, "{} vs {only_top}", psi[0].1);
    }
}
