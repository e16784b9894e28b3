//! Temporal train / validation / test split with embargo gaps.
//!
//! The time span of the data is cut at fractions of its length. Between slices an **embargo** of
//! at least the label horizon is left out: a training row at `t` has a label that looks at
//! failures in `(t, t + H]`, so the next slice must start at least `H` after the training slice
//! ends, or the same failure would label rows on both sides (leakage). The split refuses an
//! embargo shorter than the horizon.

use serde::{Deserialize, Serialize};

use crate::data::time::{HOUR, Timestamp};

/// Split settings (the `split` section of the training spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitSpec {
    /// Share of the time span used for training.
    pub train_fraction: f64,
    /// Share of the time span used for validation (early stopping, threshold, calibration).
    pub valid_fraction: f64,
    /// Gap between slices, hours; defaults to the label horizon (the minimum allowed).
    pub embargo_hours: Option<u32>,
}

impl Default for SplitSpec {
    fn default() -> Self {
        SplitSpec { train_fraction: 0.7, valid_fraction: 0.1, embargo_hours: None }
    }
}

/// The time boundaries of a split. Slices are `[start, train_end)`, `[valid_start, valid_end)`,
/// `[test_start, end]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitPlan {
    pub start: i64,
    pub train_end: i64,
    pub valid_start: i64,
    pub valid_end: i64,
    pub test_start: i64,
    pub end: i64,
    pub embargo_hours: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error(
        "embargo of {embargo} h is shorter than the label horizon of {horizon} h: labels would leak across the split"
    )]
    Embargo { embargo: u32, horizon: u32 },
    #[error("fractions must be positive and leave room for a test slice (train {train} + valid {valid} < 1)")]
    Fractions { train: String, valid: String },
    #[error("the {slice} slice is empty ({from} .. {to}); the data span is too short for this split")]
    Empty { slice: &'static str, from: String, to: String },
}

/// Row indices of each slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitRows {
    pub train: Vec<u32>,
    pub valid: Vec<u32>,
    pub test: Vec<u32>,
}

impl SplitPlan {
    pub fn new(times: &[i64], spec: &SplitSpec, horizon_hours: u32) -> Result<Self, SplitError> {
        let (tf, vf) = (spec.train_fraction, spec.valid_fraction);
        if !(tf > 0.0 && vf > 0.0 && tf + vf < 1.0) {
            return Err(SplitError::Fractions { train: tf.to_string(), valid: vf.to_string() });
        }
        let embargo = spec.embargo_hours.unwrap_or(horizon_hours);
        if embargo < horizon_hours {
            return Err(SplitError::Embargo { embargo, horizon: horizon_hours });
        }
        let start = times.iter().copied().min().unwrap_or(0);
        let end = times.iter().copied().max().unwrap_or(0);
        let span = (end - start) as f64;
        // Cut on whole hours.
        let at = |f: f64| start + ((span * f) as i64).div_euclid(HOUR) * HOUR;
        let gap = i64::from(embargo) * HOUR;
        let train_end = at(tf);
        let valid_start = train_end + gap;
        let valid_end = at(tf + vf).max(valid_start);
        let test_start = valid_end + gap;
        Ok(SplitPlan { start, train_end, valid_start, valid_end, test_start, end, embargo_hours: embargo })
    }

    /// Which slice each row belongs to (rows in embargo gaps belong to none).
    pub fn rows(&self, times: &[i64]) -> Result<SplitRows, SplitError> {
        let mut out = SplitRows { train: Vec::new(), valid: Vec::new(), test: Vec::new() };
        for (i, &t) in times.iter().enumerate() {
            if t < self.train_end {
                out.train.push(i as u32);
            } else if t >= self.valid_start && t < self.valid_end {
                out.valid.push(i as u32);
            } else if t >= self.test_start {
                out.test.push(i as u32);
            }
        }
        let check = |rows: &Vec<u32>, slice, from: i64, to: i64| {
            if rows.is_empty() {
                Err(SplitError::Empty { slice, from: Timestamp(from).to_string(), to: Timestamp(to).to_string() })
            } else {
                Ok(())
            }
        };
        check(&out.train, "train", self.start, self.train_end)?;
        check(&out.valid, "validation", self.valid_start, self.valid_end)?;
        check(&out.test, "test", self.test_start, self.end)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_are_separated_by_the_embargo() {
        let times: Vec<i64> = (0..1000).map(|h| h * HOUR).collect();
        let plan = SplitPlan::new(&times, &SplitSpec::default(), 24).unwrap();
        let rows = plan.rows(&times).unwrap();
        let last_train = times[*rows.train.last().unwrap() as usize];
        let first_valid = times[rows.valid[0] as usize];
        let last_valid = times[*rows.valid.last().unwrap() as usize];
        let first_test = times[rows.test[0] as usize];
        assert!(first_valid - last_train > 24 * HOUR - HOUR);
        assert!(first_valid - last_train >= 24 * HOUR);
        assert!(first_test - last_valid >= 24 * HOUR);
        assert_eq!(rows.train.len(), 699);
        assert_eq!(rows.train.len() + rows.valid.len() + rows.test.len(), 1000 - 2 * 24);
    }

    #[test]
    fn a_short_embargo_or_bad_fractions_are_refused() {
        let times: Vec<i64> = (0..100).map(|h| h * HOUR).collect();
        let short = SplitSpec { embargo_hours: Some(12), ..SplitSpec::default() };
        assert_eq!(
            SplitPlan::new(&times, &short, 24).unwrap_err().to_string(),
            "embargo of 12 h is shorter than the label horizon of 24 h: labels would leak across the split"
        );
        let bad = SplitSpec { train_fraction: 0.9, valid_fraction: 0.1, embargo_hours: None };
        assert!(SplitPlan::new(&times, &bad, 24).is_err());
        let plan = SplitPlan::new(&times, &SplitSpec::default(), 72).unwrap();
        assert!(plan.rows(&times).unwrap_err().to_string().starts_with("the validation slice is empty"));
    }
}
