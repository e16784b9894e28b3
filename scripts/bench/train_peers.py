"""Python peers for `make bench-train`: scikit-learn's RandomForest (the system we replace) and
LightGBM, on the features artifact written by pm-features, with the same temporal split.

Usage: train_peers.py FEATURES_PARQUET PLAN_JSON MODEL
  MODEL: sklearn_rf | lightgbm
Prints one JSON line: roc_auc, pr_auc, fit_cpu_s, fit_wall_s, peak_rss_mb, rounds.
"""
import json
import resource
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.metrics import average_precision_score, roc_auc_score


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    path, plan_path, model = sys.argv[1], sys.argv[2], sys.argv[3]
    plan = json.load(open(plan_path))
    table = pq.read_table(path)
    names = plan["features"]
    times = table.column("datetime").cast("int64").to_numpy() // 1000  # ms -> s
    X = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names]).astype(np.float32)
    y = table.column("label").to_numpy(zero_copy_only=False).astype(np.int8)
    tr = times < plan["train_end"]
    va = (times >= plan["valid_start"]) & (times < plan["valid_end"])
    te = times >= plan["test_start"]
    pos = y[tr].mean()
    # "balanced" class weights, as our learners use.
    w = np.where(y[tr] == 1, 0.5 / pos, 0.5 / (1 - pos))
    rounds = None
    if model == "sklearn_rf":
        from sklearn.ensemble import RandomForestClassifier
        # The seed's model; NaN filled with 0 as the seed's pipeline did.
        Xtr = np.nan_to_num(X[tr], nan=0.0)
        Xte = np.nan_to_num(X[te], nan=0.0)
        clf = RandomForestClassifier(n_estimators=100, max_depth=12, min_samples_split=5,
                                     class_weight="balanced", random_state=42, n_jobs=-1)
        c0, t0 = cpu(), time.perf_counter()
        clf.fit(Xtr, y[tr])
        c1, t1 = cpu(), time.perf_counter()
        s = clf.predict_proba(Xte)[:, 1]
    elif model == "lightgbm":
        import lightgbm as lgb
        # Unweighted, as our GBDT's default (class_weight: none).
        dtr = lgb.Dataset(X[tr], y[tr], free_raw_data=False)
        dva = lgb.Dataset(X[va], y[va], reference=dtr)
        # The same hyper-parameters as our GBDT's defaults, so that the comparison is of the
        # implementations: no class weights, 31 leaves, learning rate 0.1, min 50 rows per leaf, L2 5, 80 % of the
        # features per tree, 80 % of the rows per iteration, early stopping after 25 rounds.
        params = {"objective": "binary", "learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 50,
                  "lambda_l2": 5.0, "feature_fraction": 0.8, "bagging_fraction": 0.8, "bagging_freq": 1,
                  "max_bin": 255, "num_threads": 2, "verbose": -1, "seed": 42, "deterministic": True}
        c0, t0 = cpu(), time.perf_counter()
        booster = lgb.train(params, dtr, num_boost_round=500, valid_sets=[dva],
                            callbacks=[lgb.early_stopping(25, verbose=False)])
        c1, t1 = cpu(), time.perf_counter()
        rounds = booster.best_iteration
        s = booster.predict(X[te], num_iteration=booster.best_iteration)
    else:
        raise SystemExit(f"unknown model {model}")
    out = {
        "roc_auc": float(roc_auc_score(y[te], s)),
        "pr_auc": float(average_precision_score(y[te], s)),
        "fit_cpu_s": c1 - c0,
        "fit_wall_s": t1 - t0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rounds": rounds,
        "train_rows": int(tr.sum()),
        "test_rows": int(te.sum()),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
