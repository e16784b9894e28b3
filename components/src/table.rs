//! Parquet encoding of the typed tables and of the feature matrix (polars).
//!
//! Column names and types are part of the artifact contract (ARCHITECTURE.md, "Artifacts"):
//! `datetime` is a Parquet timestamp in milliseconds, `machineID` is `UInt32`, labels are
//! strings as in the CSV files, sensors and features are floats.

use std::io::Cursor;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use pm_core::data::contract::{Contract, Dataset, Events, FileKind, Machines, Telemetry};
use pm_core::features::FeatureTable;
use polars::prelude::{
    Column, DataFrame, Int64Chunked, IntoColumn, ParquetCompression, ParquetReader, ParquetWriter, SerReader, TimeUnit,
};

const MS: i64 = 1_000;

fn datetime_column(name: &str, secs: &[i64]) -> Column {
    let ms: Vec<i64> = secs.iter().map(|s| s * MS).collect();
    Int64Chunked::from_vec(name.into(), ms).into_datetime(TimeUnit::Milliseconds, None).into_column()
}

fn write(mut df: DataFrame) -> Result<Bytes> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Lz4Raw)
        .finish(&mut df)
        .context("encoding Parquet")?;
    Ok(Bytes::from(buf))
}

fn read(bytes: &Bytes, what: &str) -> Result<DataFrame> {
    ParquetReader::new(Cursor::new(bytes.as_ref())).finish().with_context(|| format!("decoding {what}"))
}

fn labels_column(name: &str, kinds: &[u16], vocab: &[String]) -> Column {
    let v: Vec<&str> = kinds.iter().map(|&k| vocab.get(usize::from(k)).map_or("", String::as_str)).collect();
    Column::new(name.into(), v)
}

/// The five tables of a data set as Parquet files, named `<kind>.parquet`.
pub fn dataset_to_parquet(ds: &Dataset) -> Result<Vec<(String, Bytes)>> {
    let c = &ds.contract;
    let mut out = Vec::new();
    let t = &ds.telemetry;
    let mut cols = vec![datetime_column("datetime", &t.time), Column::new("machineID".into(), t.machine.clone())];
    // A missing reading (NaN in memory) is a null in the artifact, as warehouses write it.
    for (sensor, col) in c.sensors.iter().zip(&t.sensors) {
        let values: Vec<Option<f64>> = col.iter().map(|&v| (!v.is_nan()).then_some(v)).collect();
        cols.push(Column::new(sensor.name.as_str().into(), values));
    }
    out.push(("telemetry.parquet".to_string(), write(DataFrame::new(t.len(), cols)?)?));
    for kind in [FileKind::Errors, FileKind::Maint, FileKind::Failures] {
        let ev = ds.events(kind).ok_or_else(|| anyhow!("no events of kind {kind:?}"))?;
        let label = kind.label_column().unwrap_or("label");
        let cols = vec![
            datetime_column("datetime", &ev.time),
            Column::new("machineID".into(), ev.machine.clone()),
            labels_column(label, &ev.kind, c.vocabulary(kind)),
        ];
        out.push((format!("{}.parquet", kind.name()), write(DataFrame::new(ev.len(), cols)?)?));
    }
    out.push(("machines.parquet".to_string(), machines_to_parquet(&ds.machines, c)?));
    Ok(out)
}

fn u32_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<u32>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.u32().with_context(|| format!("{what}: column {name} must be UInt32"))?;
    if ca.null_count() > 0 {
        bail!("{what}: column {name} has nulls");
    }
    Ok(ca.into_no_null_iter().collect())
}

fn f64_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<f64>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.f64().with_context(|| format!("{what}: column {name} must be Float64"))?;
    if ca.null_count() > 0 {
        bail!("{what}: column {name} has nulls");
    }
    Ok(ca.into_no_null_iter().collect())
}

/// A sensor column: nulls are missing readings, NaN in memory.
fn sensor_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<f64>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.f64().with_context(|| format!("{what}: column {name} must be Float64"))?;
    Ok(ca.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

fn f32_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<f32>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.f32().with_context(|| format!("{what}: column {name} must be Float32"))?;
    // Nulls are undefined features (e.g. a std of one reading), stored as NaN in memory.
    Ok(ca.iter().map(|v| v.unwrap_or(f32::NAN)).collect())
}

/// A boolean label column as 0/1.
fn label_flag_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<u8>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.bool().with_context(|| format!("{what}: column {name} must be Boolean"))?;
    if ca.null_count() > 0 {
        bail!("{what}: column {name} has nulls");
    }
    Ok(ca.iter().map(|v| u8::from(v.unwrap_or(false))).collect())
}

fn flag_column(name: String, v: &[u8]) -> Column {
    let b: Vec<bool> = v.iter().map(|&x| x != 0).collect();
    Column::new(name.into(), b)
}

/// Ticks per second of a timestamp unit.
fn per_second(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Milliseconds => MS,
        TimeUnit::Microseconds => 1_000_000,
        TimeUnit::Nanoseconds => 1_000_000_000,
    }
}

fn time_col(df: &DataFrame, name: &str, what: &str) -> Result<Vec<i64>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let dt = c.datetime().with_context(|| format!("{what}: column {name} must be a timestamp"))?;
    let per_sec = per_second(dt.time_unit());
    let phys = dt.physical();
    if phys.null_count() > 0 {
        bail!("{what}: column {name} has nulls");
    }
    Ok(phys.into_no_null_iter().map(|v| v.div_euclid(per_sec)).collect())
}

fn label_col(df: &DataFrame, name: &str, vocab: &[String], what: &str) -> Result<Vec<u16>> {
    let c = df.column(name).with_context(|| format!("{what}: column {name}"))?;
    let ca = c.str().with_context(|| format!("{what}: column {name} must be a string"))?;
    ca.iter()
        .enumerate()
        .map(|(i, v)| {
            let v = v.ok_or_else(|| anyhow!("{what}: row {i}: column {name} is null"))?;
            vocab
                .iter()
                .position(|x| x == v)
                .map(|p| p as u16)
                .ok_or_else(|| anyhow!("{what}: row {i}: unknown {name} {v:?}"))
        })
        .collect()
}

fn check_sorted(machine: &[u32], time: &[i64], what: &str) -> Result<()> {
    if let Some(i) = (1..machine.len()).find(|&i| (machine[i - 1], time[i - 1]) > (machine[i], time[i])) {
        bail!("{what}: rows are not sorted by (machineID, datetime) at row {i}");
    }
    Ok(())
}

/// The machines table as Parquet: `machineID`, `model` (string), `age`.
pub fn machines_to_parquet(m: &Machines, contract: &Contract) -> Result<Bytes> {
    let cols = vec![
        Column::new("machineID".into(), m.id.clone()),
        labels_column("model", &m.model, &contract.models),
        Column::new("age".into(), m.age.clone()),
    ];
    write(DataFrame::new(m.len(), cols)?)
}

pub fn machines_from_parquet(bytes: &Bytes, contract: &Contract) -> Result<Machines> {
    let what = "machines.parquet";
    let df = read(bytes, what)?;
    Ok(Machines {
        id: u32_col(&df, "machineID", what)?,
        model: label_col(&df, "model", &contract.models, what)?,
        age: f64_col(&df, "age", what)?,
    })
}

/// Reads the five tables back. `get` returns the bytes of a file of the artifact.
pub fn dataset_from_parquet(contract: &Contract, mut get: impl FnMut(&str) -> Result<Bytes>) -> Result<Dataset> {
    let df = read(&get("telemetry.parquet")?, "telemetry.parquet")?;
    let what = "telemetry.parquet";
    let mut telemetry = Telemetry::with_sensors(0);
    telemetry.time = time_col(&df, "datetime", what)?;
    telemetry.machine = u32_col(&df, "machineID", what)?;
    telemetry.sensors = contract.sensors.iter().map(|s| sensor_col(&df, &s.name, what)).collect::<Result<_>>()?;
    check_sorted(&telemetry.machine, &telemetry.time, what)?;
    let mut events = Vec::new();
    for kind in [FileKind::Errors, FileKind::Maint, FileKind::Failures] {
        let name = format!("{}.parquet", kind.name());
        let df = read(&get(&name)?, &name)?;
        let label = kind.label_column().unwrap_or("label");
        let ev = Events {
            time: time_col(&df, "datetime", &name)?,
            machine: u32_col(&df, "machineID", &name)?,
            kind: label_col(&df, label, contract.vocabulary(kind), &name)?,
        };
        check_sorted(&ev.machine, &ev.time, &name)?;
        events.push(ev);
    }
    let machines = machines_from_parquet(&get("machines.parquet")?, contract)?;
    let mut it = events.into_iter();
    let (errors, maint, failures) = match (it.next(), it.next(), it.next()) {
        (Some(e), Some(m), Some(f)) => (e, m, f),
        _ => bail!("missing event tables"),
    };
    Ok(Dataset { contract: contract.clone(), telemetry, errors, maint, failures, machines })
}

/// The feature matrix as one Parquet file: keys, features (Float32, NaN where undefined),
/// `label`, `label_<component>` (Boolean), `hours_to_failure`.
pub fn features_to_parquet(t: &FeatureTable, components: &[String]) -> Result<Bytes> {
    let mut cols = vec![Column::new("machineID".into(), t.machine.clone()), datetime_column("datetime", &t.time)];
    for (name, col) in t.names.iter().zip(&t.columns) {
        cols.push(Column::new(name.as_str().into(), col.clone()));
    }
    cols.push(flag_column("label".into(), &t.label));
    for (name, col) in components.iter().zip(&t.label_component) {
        cols.push(flag_column(format!("label_{name}"), col));
    }
    cols.push(Column::new("hours_to_failure".into(), t.hours_to_failure.clone()));
    write(DataFrame::new(t.n_rows(), cols)?)
}

/// Reads a feature matrix written by [`features_to_parquet`], checking its columns against the
/// spec's feature names.
pub fn features_from_parquet(bytes: &Bytes, names: &[String], components: &[String]) -> Result<FeatureTable> {
    let what = "features.parquet";
    let df = read(bytes, what)?;
    let t = FeatureTable {
        names: names.to_vec(),
        machine: u32_col(&df, "machineID", what)?,
        time: time_col(&df, "datetime", what)?,
        columns: names.iter().map(|n| f32_col(&df, n, what)).collect::<Result<_>>()?,
        label: label_flag_col(&df, "label", what)?,
        label_component: components
            .iter()
            .map(|c| label_flag_col(&df, &format!("label_{c}"), what))
            .collect::<Result<_>>()?,
        hours_to_failure: f32_col(&df, "hours_to_failure", what)?,
    };
    let expected = 2 + names.len() + 1 + components.len() + 1;
    if df.width() != expected {
        let extra: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .filter(|n| {
                !names.contains(n)
                    && !["machineID", "datetime", "label", "hours_to_failure"].contains(&n.as_str())
                    && !n.starts_with("label_")
            })
            .collect();
        bail!("{what}: {} columns, expected {expected}; unexpected: {}", df.width(), extra.join(", "));
    }
    Ok(t)
}

/// A Parquet file of failures only (for event-level evaluation).
pub fn failures_to_parquet(ds: &Dataset) -> Result<Bytes> {
    let ev = &ds.failures;
    let cols = vec![
        datetime_column("datetime", &ev.time),
        Column::new("machineID".into(), ev.machine.clone()),
        labels_column("failure", &ev.kind, &ds.contract.components),
    ];
    write(DataFrame::new(ev.len(), cols)?)
}

pub fn failures_from_parquet(bytes: &Bytes, contract: &Contract) -> Result<Events> {
    let what = "failures.parquet";
    let df = read(bytes, what)?;
    Ok(Events {
        time: time_col(&df, "datetime", what)?,
        machine: u32_col(&df, "machineID", what)?,
        kind: label_col(&df, "failure", &contract.components, what)?,
    })
}

/// A Parquet file given as one of the five inputs, as CSV text for the same checks as a CSV
/// file (`pm_core::data::ingest::Numbering::Row`: the header is line 0, row `k` is line `k`).
///
/// Values are written so that reading them back gives exactly what the table holds: integers as
/// they are, floats in their shortest exact form (`NaN` and infinities as such, refused by the
/// checks like in a CSV), nulls empty (a missing value), strings quoted, one line each (a line
/// break inside a string is written `\n`), booleans as `true`/`false`, timestamps (any unit;
/// a zone is read as UTC) as `YYYY-MM-DD HH:MM:SS`, with the fraction when there is one (which
/// the datetime check then refuses: the data set keeps whole seconds). Another column type is
/// refused with the column's name and type.
pub fn parquet_as_csv(bytes: &[u8], what: &str) -> Result<Vec<u8>> {
    use polars::prelude::DataType;
    use std::fmt::Write as _;

    enum Col {
        Int(Vec<Option<i64>>),
        UInt(Vec<Option<u64>>),
        Float(Vec<Option<f64>>),
        Time(Vec<Option<i64>>, i64),
        Str(Vec<Option<String>>),
        Bool(Vec<Option<bool>>),
        Null,
    }
    let df = ParquetReader::new(Cursor::new(bytes))
        .finish()
        .with_context(|| format!("{what}: not a readable Parquet file"))?;
    let mut text = String::new();
    let mut cols = Vec::with_capacity(df.width());
    for (i, c) in df.columns().iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        push_quoted(&mut text, c.name().as_str());
        let s = c.as_materialized_series();
        let bad = |e: polars::prelude::PolarsError| anyhow!("{what}: column '{}': {e}", c.name());
        let col = match s.dtype() {
            DataType::Null => Col::Null,
            DataType::Boolean => Col::Bool(s.bool().map_err(bad)?.iter().collect()),
            DataType::String => Col::Str(s.str().map_err(bad)?.iter().map(|v| v.map(String::from)).collect()),
            DataType::Float32 | DataType::Float64 => {
                Col::Float(s.cast(&DataType::Float64).map_err(bad)?.f64().map_err(bad)?.iter().collect())
            }
            DataType::UInt64 => Col::UInt(s.u64().map_err(bad)?.iter().collect()),
            DataType::Datetime(unit, _) => {
                let phys = s.datetime().map_err(bad)?.physical().clone();
                Col::Time(phys.iter().collect(), per_second(*unit))
            }
            t if t.is_integer() => {
                Col::Int(s.cast(&DataType::Int64).map_err(bad)?.i64().map_err(bad)?.iter().collect())
            }
            t => bail!(
                "{what}: column '{}' has type {t}; expected integers, floats, strings, booleans or timestamps",
                c.name()
            ),
        };
        cols.push(col);
    }
    text.push('\n');
    for r in 0..df.height() {
        for (i, col) in cols.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = match col {
                Col::Null => Ok(()),
                Col::Int(v) => v[r].map_or(Ok(()), |x| write!(text, "{x}")),
                Col::UInt(v) => v[r].map_or(Ok(()), |x| write!(text, "{x}")),
                Col::Float(v) => v[r].map_or(Ok(()), |x| write!(text, "{x:?}")),
                Col::Bool(v) => v[r].map_or(Ok(()), |x| write!(text, "{x}")),
                Col::Str(v) => {
                    if let Some(x) = &v[r] {
                        push_quoted(&mut text, &x.replace('\r', "\\r").replace('\n', "\\n"));
                    }
                    Ok(())
                }
                Col::Time(v, per_sec) => v[r].map_or(Ok(()), |x| {
                    let (secs, frac) = (x.div_euclid(*per_sec), x.rem_euclid(*per_sec));
                    write!(text, "{}", pm_core::data::time::Timestamp(secs))?;
                    if frac != 0 {
                        let digits = per_sec.ilog10() as usize;
                        write!(text, ".{frac:0digits$}")?;
                    }
                    Ok(())
                }),
            };
        }
        text.push('\n');
    }
    Ok(text.into_bytes())
}

fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    out.push_str(&s.replace('"', "\"\""));
    out.push('"');
}
