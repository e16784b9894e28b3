//! Our tree learners behind linfa's traits, so that they slot into linfa code (`Dataset`, `Fit`,
//! `Predict`). linfa-trees itself is not used for training: its trees predict labels only (no
//! probabilities, hence no ROC curve or tunable alarm threshold) and cost more than a whole boosted
//! model per tree (docs/decisions/linfa-trees.md).
//!
//! ```
//! use linfa::prelude::*;
//! use ndarray::{Array1, Array2};
//! use pm_components::linfa_compat::Boosting;
//! use pm_core::learn::GbdtParams;
//!
//! let x = Array2::from_shape_fn((400, 2), |(i, j)| ((i * 7 + j * 13) % 100) as f32 / 100.0);
//! let y: Array1<bool> = x.column(0).iter().map(|&v| v > 0.5).collect();
//! let data = Dataset::new(x.clone(), y);
//! let params = GbdtParams { max_rounds: 20, min_data_in_leaf: 5, ..GbdtParams::default() }.check()?;
//! let model = Boosting::new(params, 42).fit(&data)?;
//! let p: Array1<f64> = model.predict(&x);
//! assert!(p[399] > 0.5 && p[0] < 0.5);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use linfa::dataset::{AsTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use ndarray::{Array1, ArrayBase, Data, Ix2};
use pm_core::learn::model::Ensemble;
use pm_core::learn::{self, Binned, TrainSet, ValidForestParams, ValidGbdtParams};

/// Gradient boosting as a linfa estimator (no validation slice: all `max_rounds` are trained).
#[derive(Clone, Debug)]
pub struct Boosting {
    params: ValidGbdtParams,
    seed: u64,
}

impl Boosting {
    pub fn new(params: ValidGbdtParams, seed: u64) -> Self {
        Boosting { params, seed }
    }
}

/// The random forest as a linfa estimator.
#[derive(Clone, Debug)]
pub struct Forest {
    params: ValidForestParams,
    seed: u64,
}

impl Forest {
    pub fn new(params: ValidForestParams, seed: u64) -> Self {
        Forest { params, seed }
    }
}

/// A fitted ensemble; predicts probabilities of the positive class.
#[derive(Clone, Debug, PartialEq)]
pub struct Fitted(pub Ensemble);

/// Columns, labels and weights of a linfa data set (weights default to 1).
fn prepare<S: Data<Elem = f32>, T: AsTargets<Elem = bool>>(
    ds: &DatasetBase<ArrayBase<S, Ix2>, T>,
) -> (Vec<Vec<f32>>, Vec<u8>, Vec<f64>) {
    let x = ds.records();
    let columns: Vec<Vec<f32>> = x.columns().into_iter().map(|c| c.to_vec()).collect();
    let targets = ds.as_targets();
    let y: Vec<u8> = targets.iter().map(|&b| u8::from(b)).collect();
    let w: Vec<f64> = match ds.weights() {
        Some(w) if w.len() == y.len() => w.iter().map(|&v| f64::from(v)).collect(),
        _ => vec![1.0; y.len()],
    };
    (columns, y, w)
}

fn bins(columns: &[Vec<f32>], n: usize, max_bins: usize, seed: u64) -> (Vec<learn::BinMapper>, Binned) {
    let rows: Vec<u32> = (0..n as u32).collect();
    let mappers = learn::fit_mappers(columns, &rows, max_bins, 200_000, seed);
    let binned = Binned::new(columns, &rows, &mappers);
    (mappers, binned)
}

impl<S: Data<Elem = f32>, T: AsTargets<Elem = bool>> Fit<ArrayBase<S, Ix2>, T, linfa::Error> for Boosting {
    type Object = Fitted;

    fn fit(&self, ds: &DatasetBase<ArrayBase<S, Ix2>, T>) -> Result<Fitted, linfa::Error> {
        let (columns, y, w) = prepare(ds);
        if y.is_empty() {
            return Err(linfa::Error::NotEnoughSamples);
        }
        let (mappers, binned) = bins(&columns, y.len(), self.params.params().max_bins, self.seed);
        let binned = binned.with_row_major();
        let cw = learn::class_weights(&y, self.params.params().class_weight);
        let w: Vec<f64> = w.iter().zip(&cw).map(|(a, b)| a * b).collect();
        let fit = learn::fit_gbdt(&self.params, &mappers, &TrainSet { binned: &binned, y: &y, w: &w }, None, self.seed);
        Ok(Fitted(fit.ensemble))
    }
}

impl<S: Data<Elem = f32>, T: AsTargets<Elem = bool>> Fit<ArrayBase<S, Ix2>, T, linfa::Error> for Forest {
    type Object = Fitted;

    fn fit(&self, ds: &DatasetBase<ArrayBase<S, Ix2>, T>) -> Result<Fitted, linfa::Error> {
        let (columns, y, w) = prepare(ds);
        if y.is_empty() {
            return Err(linfa::Error::NotEnoughSamples);
        }
        let (mappers, binned) = bins(&columns, y.len(), self.params.params().max_bins, self.seed);
        let cw = learn::class_weights(&y, self.params.params().class_weight);
        let w: Vec<f64> = w.iter().zip(&cw).map(|(a, b)| a * b).collect();
        let fit = learn::fit_forest(&self.params, &mappers, &TrainSet { binned: &binned, y: &y, w: &w }, self.seed);
        Ok(Fitted(fit.ensemble))
    }
}

impl<S: Data<Elem = f32>> PredictInplace<ArrayBase<S, Ix2>, Array1<f64>> for Fitted {
    fn predict_inplace(&self, x: &ArrayBase<S, Ix2>, y: &mut Array1<f64>) {
        let mut row = vec![0.0f32; x.ncols()];
        for (out, r) in y.iter_mut().zip(x.rows()) {
            for (v, &xv) in row.iter_mut().zip(r.iter()) {
                *v = xv;
            }
            *out = self.0.predict_proba(&row);
        }
    }

    fn default_target(&self, x: &ArrayBase<S, Ix2>) -> Array1<f64> {
        Array1::zeros(x.nrows())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linfa::prelude::*;
    use ndarray::Array2;
    use pm_core::learn::{ForestParams, GbdtParams};

    #[test]
    fn linfa_fit_equals_the_direct_learner() {
        let mut r = pm_core::rng::Rng::new(3);
        let x = Array2::from_shape_fn((2_000, 3), |_| r.f64() as f32);
        let y: Array1<bool> = x.rows().into_iter().map(|row| row[0] > 0.6 && row[1] < 0.5).collect();
        let data = Dataset::new(x.clone(), y.clone());
        let params = GbdtParams { max_rounds: 15, ..GbdtParams::default() }.check().unwrap();
        let via_linfa = Boosting::new(params.clone(), 9).fit(&data).unwrap();

        let columns: Vec<Vec<f32>> = x.columns().into_iter().map(|c| c.to_vec()).collect();
        let labels: Vec<u8> = y.iter().map(|&b| u8::from(b)).collect();
        let (mappers, binned) = bins(&columns, labels.len(), 255, 9);
        let w = learn::class_weights(&labels, params.params().class_weight);
        let direct = learn::fit_gbdt(
            &params,
            &mappers,
            &TrainSet { binned: &binned.with_row_major(), y: &labels, w: &w },
            None,
            9,
        );
        assert_eq!(via_linfa.0, direct.ensemble);

        let p: Array1<f64> = via_linfa.predict(&x);
        let scores: Vec<f64> = p.to_vec();
        assert!(pm_core::eval::metrics::roc_auc(&scores, &labels) > 0.99);
        let forest =
            Forest::new(ForestParams { trees: 10, ..ForestParams::default() }.check().unwrap(), 1).fit(&data).unwrap();
        assert!(pm_core::eval::metrics::roc_auc(&forest.predict(&x).to_vec(), &labels) > 0.99);
        let empty = Dataset::new(Array2::<f32>::zeros((0, 3)), Array1::<bool>::from(vec![]));
        assert!(Boosting::new(params, 1).fit(&empty).is_err());
    }
}
