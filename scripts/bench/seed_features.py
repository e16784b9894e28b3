"""The feature computation of the Python system we replace, re-implemented for a side-by-side
benchmark: read the telemetry and failures CSVs with pandas, then per machine a row-count rolling
window (3 and 24 rows, min_periods=1) of mean/std/max/min per sensor, a forward fill over the whole
frame, and the 72 h label built with one boolean mask per failure (O(failures x rows)).

Prints one JSON line: {"read_s": ..., "features_s": ..., "rows": ..., "features": ..., "positives": ...}
"""
import json
import sys
import time

import pandas as pd

SENSORS = ["volt", "rotate", "pressure", "vibration"]


def features(tel: pd.DataFrame) -> pd.DataFrame:
    df = tel.sort_values(["machineID", "datetime"]).reset_index(drop=True)
    grouped = df.groupby("machineID")
    for window in (3, 24):
        for s in SENSORS:
            roll = grouped[s].rolling(window, min_periods=1)
            df[f"{s}_{window}h_mean"] = roll.mean().reset_index(level=0, drop=True)
            df[f"{s}_{window}h_std"] = roll.std().reset_index(level=0, drop=True)
            df[f"{s}_{window}h_max"] = roll.max().reset_index(level=0, drop=True)
            df[f"{s}_{window}h_min"] = roll.min().reset_index(level=0, drop=True)
    return df.ffill().fillna(0)


def labels(df: pd.DataFrame, failures: pd.DataFrame, hours: int) -> pd.Series:
    label = pd.Series(0, index=df.index)
    window = pd.Timedelta(hours=hours)
    for _, f in failures.iterrows():
        mask = (df["machineID"] == f["machineID"]) & (df["datetime"] >= f["datetime"] - window) & (df["datetime"] < f["datetime"])
        label[mask] = 1
    return label


def main() -> None:
    folder = sys.argv[1]
    hours = int(sys.argv[2]) if len(sys.argv) > 2 else 72
    t0 = time.perf_counter()
    tel = pd.read_csv(f"{folder}/PdM_telemetry.csv")
    tel["datetime"] = pd.to_datetime(tel["datetime"], format="%Y-%m-%d %H:%M:%S")
    fail = pd.read_csv(f"{folder}/PdM_failures.csv")
    fail["datetime"] = pd.to_datetime(fail["datetime"], format="%Y-%m-%d %H:%M:%S")
    t1 = time.perf_counter()
    df = features(tel)
    df["failure_within_window"] = labels(df, fail, hours)
    t2 = time.perf_counter()
    n_features = len([c for c in df.columns if c not in ("datetime", "machineID", "failure_within_window")])
    print(json.dumps({"read_s": t1 - t0, "features_s": t2 - t1, "rows": len(df), "features": n_features,
                      "positives": int(df["failure_within_window"].sum())}))


if __name__ == "__main__":
    main()
