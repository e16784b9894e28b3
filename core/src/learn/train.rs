//! Training: a feature table and a [`TrainSpec`] in, a [`ModelBundle`] out. Pure (no I/O), so the
//! `pm-train` step and the tests share it.
//!
//! Steps: temporal split with embargo → bins fitted on the training slice → the learner(s) →
//! Platt calibration and alarm threshold on the validation slice only → validation metrics,
//! per-feature drift baselines, bundle.

use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::artifacts::bundle::{BUNDLE_FORMAT_VERSION, MachineInfo, ModelBundle, ValidationMetrics};
use crate::eval::drift::FeatureBaseline;
use crate::eval::metrics::{self, Confusion, ThresholdRule};
use crate::features::{FeatureSpec, FeatureTable};
use crate::learn::model::{Ensemble, Model};
use crate::learn::split::{SplitPlan, SplitRows, SplitSpec};
use crate::learn::{self, Binned, ForestParams, GbdtParams, TrainSet};

/// Which learner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Gbdt,
    RandomForest,
    /// Train both; keep the one with the better validation PR AUC.
    Auto,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gbdt" => Ok(Algorithm::Gbdt),
            "random_forest" | "rf" => Ok(Algorithm::RandomForest),
            "auto" => Ok(Algorithm::Auto),
            other => Err(format!("unknown model {other:?} (expected gbdt, random_forest or auto)")),
        }
    }
}

/// The training spec: the `train` section of a pipeline, or a YAML/JSON document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSpec {
    /// Registry name of the model.
    pub name: String,
    pub model: Algorithm,
    pub seed: u64,
    pub split: SplitSpec,
    pub gbdt: GbdtParams,
    pub random_forest: ForestParams,
    pub threshold: ThresholdRule,
    /// Also train one-vs-rest heads per component.
    pub per_component: bool,
    /// Platt-calibrate probabilities on the validation slice.
    pub calibrate: bool,
}

impl Default for TrainSpec {
    fn default() -> Self {
        TrainSpec {
            name: "pm-failure".into(),
            model: Algorithm::Gbdt,
            seed: 42,
            split: SplitSpec::default(),
            gbdt: GbdtParams::default(),
            random_forest: ForestParams::default(),
            threshold: ThresholdRule::MaxF1,
            per_component: false,
            calibrate: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("split: {0}")]
    Split(#[from] crate::learn::split::SplitError),
    #[error("parameters: {0}")]
    Params(#[from] learn::ParamError),
    #[error("the training slice has no positive rows (no failure within the label horizon)")]
    NoPositives,
    #[error("the feature table has {found} feature columns, the spec defines {expected}")]
    Shape { found: usize, expected: usize },
}

/// Timings and choices of a training run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TrainReport {
    pub algorithm: String,
    pub train_rows: usize,
    pub valid_rows: usize,
    pub test_rows: usize,
    pub bin_secs: f64,
    pub fit_secs: f64,
    pub gbdt_rounds: Option<usize>,
    /// Validation loss after each boosting round (first head).
    pub gbdt_valid_loss: Vec<f64>,
    /// Validation PR AUC of each learner tried.
    pub candidates: Vec<(String, f64)>,
}

/// Margins of an ensemble for `rows` of a column-major table, in parallel.
pub fn margins(e: &Ensemble, columns: &[Vec<f32>], rows: &[u32]) -> Vec<f64> {
    // The flat node array scores bit-identically to the trees, faster.
    let flat = e.flatten();
    rows.par_chunks(4096)
        .flat_map_iter(|chunk| {
            let mut x = vec![0.0f32; columns.len()];
            chunk
                .iter()
                .map(|&r| {
                    for (v, col) in x.iter_mut().zip(columns) {
                        *v = col[r as usize];
                    }
                    flat.margin(&x)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Probabilities of an ensemble for `rows`.
pub fn probabilities(e: &Ensemble, columns: &[Vec<f32>], rows: &[u32]) -> Vec<f64> {
    margins(e, columns, rows).into_iter().map(|m| e.probability_of_margin(m)).collect()
}

fn pick(v: &[u8], rows: &[u32]) -> Vec<u8> {
    rows.iter().map(|&r| v[r as usize]).collect()
}

struct Prepared<'a> {
    table: &'a FeatureTable,
    rows: SplitRows,
    mappers: Vec<learn::BinMapper>,
    train_bins: Binned,
    valid_bins: Binned,
}

/// A fitted binary head with its feature importance and its probabilities on the validation rows
/// (computed once: calibration, model choice and threshold use them).
struct Head {
    ensemble: Ensemble,
    importance: Vec<f64>,
    valid_scores: Vec<f64>,
}

/// Fits one binary head (failure, or one component) with the chosen algorithm.
fn fit_head(
    spec: &TrainSpec,
    algo: Algorithm,
    p: &Prepared<'_>,
    labels: &[u8],
    seed: u64,
    report: &mut TrainReport,
) -> Result<Head, TrainError> {
    let y = pick(labels, &p.rows.train);
    let vy = pick(labels, &p.rows.valid);
    if !y.contains(&1) {
        return Err(TrainError::NoPositives);
    }
    let (ens, importance) = match algo {
        Algorithm::Gbdt | Algorithm::Auto => {
            let params = spec.gbdt.clone().check()?;
            let w = learn::class_weights(&y, params.params().class_weight);
            let vw = learn::class_weights(&vy, params.params().class_weight);
            let train = TrainSet { binned: &p.train_bins, y: &y, w: &w };
            let valid = TrainSet { binned: &p.valid_bins, y: &vy, w: &vw };
            let fit = learn::fit_gbdt(&params, &p.mappers, &train, Some(&valid), seed);
            report.gbdt_rounds.get_or_insert(fit.rounds);
            if report.gbdt_valid_loss.is_empty() {
                report.gbdt_valid_loss = fit.valid_loss.clone();
            }
            (fit.ensemble, fit.importance)
        }
        Algorithm::RandomForest => {
            let params = spec.random_forest.clone().check()?;
            let w = learn::class_weights(&y, params.params().class_weight);
            let train = TrainSet { binned: &p.train_bins, y: &y, w: &w };
            let fit = learn::fit_forest(&params, &p.mappers, &train, seed);
            (fit.ensemble, fit.importance)
        }
    };
    let mut ens = ens;
    let m = margins(&ens, &p.table.columns, &p.rows.valid);
    if spec.calibrate {
        ens.calibration = Some(learn::fit_platt(&m, &vy));
    }
    let valid_scores = m.into_iter().map(|m| ens.probability_of_margin(m)).collect();
    Ok(Head { ensemble: ens, importance, valid_scores })
}

/// Trains a bundle. `data_hash` is the content hash of the features artifact; `machines` the fleet.
pub fn train(
    feature_spec: &FeatureSpec,
    table: &FeatureTable,
    spec: &TrainSpec,
    data_hash: &str,
    machines: Vec<MachineInfo>,
) -> Result<(ModelBundle, TrainReport), TrainError> {
    let n_feat = feature_spec.n_features();
    if table.columns.len() != n_feat {
        return Err(TrainError::Shape { found: table.columns.len(), expected: n_feat });
    }
    let plan = SplitPlan::new(&table.time, &spec.split, feature_spec.label.horizon_hours)?;
    let rows = plan.rows(&table.time)?;
    let mut report = TrainReport {
        train_rows: rows.train.len(),
        valid_rows: rows.valid.len(),
        test_rows: rows.test.len(),
        ..Default::default()
    };

    let t0 = Instant::now();
    let max_bins = spec.gbdt.max_bins.min(spec.random_forest.max_bins).clamp(2, 255);
    let mappers = learn::fit_mappers(&table.columns, &rows.train, max_bins, 200_000, spec.seed);
    let uses_boosting = matches!(spec.model, Algorithm::Gbdt | Algorithm::Auto);
    let mut train_bins = Binned::new(&table.columns, &rows.train, &mappers);
    if uses_boosting {
        train_bins = train_bins.with_row_major();
    }
    let mut valid_bins = Binned::new(&table.columns, &rows.valid, &mappers);
    if uses_boosting {
        valid_bins = valid_bins.with_row_major();
    }
    report.bin_secs = t0.elapsed().as_secs_f64();
    let prepared = Prepared { table, rows, mappers, train_bins, valid_bins };

    let t1 = Instant::now();
    let vy = pick(&table.label, &prepared.rows.valid);
    let algos: Vec<Algorithm> = match spec.model {
        Algorithm::Auto => vec![Algorithm::Gbdt, Algorithm::RandomForest],
        a => vec![a],
    };
    let mut best: Option<(Algorithm, Head, f64)> = None;
    for algo in algos {
        let head = fit_head(spec, algo, &prepared, &table.label, spec.seed, &mut report)?;
        let pr = metrics::pr_auc(&head.valid_scores, &vy);
        report.candidates.push((algo_name(algo).to_string(), pr));
        if best.as_ref().is_none_or(|b| pr > b.2) {
            best = Some((algo, head, pr));
        }
    }
    let Some((algo, Head { ensemble: failure, importance, valid_scores: scores }, _)) = best else {
        return Err(TrainError::NoPositives);
    };
    let mut components = Vec::new();
    if spec.per_component {
        for (c, labels) in table.label_component.iter().enumerate() {
            let head = fit_head(spec, algo, &prepared, labels, spec.seed.wrapping_add(c as u64 + 1), &mut report)?;
            components.push(head.ensemble);
        }
    }
    report.fit_secs = t1.elapsed().as_secs_f64();
    report.algorithm = algo_name(algo).to_string();

    // Threshold and metrics on the validation slice.
    let (threshold, _) = metrics::choose_threshold(&scores, &vy, &spec.threshold);
    let conf = Confusion::at(&scores, &vy, threshold);
    let validation = ValidationMetrics {
        roc_auc: metrics::roc_auc(&scores, &vy),
        pr_auc: metrics::pr_auc(&scores, &vy),
        precision: conf.precision(),
        recall: conf.recall(),
        f1: conf.f1(),
        rows: vy.len() as u64,
        positives: vy.iter().filter(|&&v| v == 1).count() as u64,
    };

    // Drift baselines from (a sample of) the training rows.
    let names = feature_spec.names();
    let step = (prepared.rows.train.len() / 200_000).max(1);
    let baseline: Vec<FeatureBaseline> = names
        .par_iter()
        .zip(&table.columns)
        .map(|(name, col)| {
            FeatureBaseline::fit(name, prepared.rows.train.iter().step_by(step).map(|&r| f64::from(col[r as usize])))
        })
        .collect();

    let bundle = ModelBundle {
        format_version: BUNDLE_FORMAT_VERSION,
        name: spec.name.clone(),
        feature_spec: feature_spec.clone(),
        model: Model { algorithm: report.algorithm.clone(), failure, components },
        threshold: threshold.clamp(0.0, 1.0),
        threshold_rule: spec.threshold.clone(),
        baseline,
        training_data_hash: data_hash.to_string(),
        split: plan,
        params: serde_json::to_value(spec).unwrap_or(serde_json::Value::Null),
        validation,
        importance,
        machines,
        trainer_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok((bundle, report))
}

fn algo_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::Gbdt | Algorithm::Auto => "gbdt",
        Algorithm::RandomForest => "random_forest",
    }
}
