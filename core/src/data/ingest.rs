//! Reading and validating the five CSV files into a [`Dataset`] plus a [`ValidationReport`].
//!
//! Every problem names its file, line and column. Under [`BadRowPolicy::Fail`] the first bad row
//! stops the read; under [`BadRowPolicy::Drop`] each bad row is left out and recorded, with its
//! reason and its raw text, in the report: nothing is dropped silently.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::contract::{Contract, Dataset, DatetimeForm, Events, FileKind, Machines, Telemetry};
use crate::data::csv::{self, EncodingError, Tokenizer, show_value};

use crate::data::time::{HOUR, Timestamp};

/// What to do with a row that breaks the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BadRowPolicy {
    /// Stop at the first bad row with an error naming it.
    #[default]
    Fail,
    /// Leave bad rows out and record each one in the report.
    Drop,
}

impl std::str::FromStr for BadRowPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(BadRowPolicy::Fail),
            "drop" => Ok(BadRowPolicy::Drop),
            other => Err(format!("unknown policy {other:?} (expected fail or drop)")),
        }
    }
}

/// What to do with an empty sensor value (empty, `NA`, `null` or `NULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Keep the reading, the value missing (NaN in memory, null in the data set artifact):
    /// features are computed over the values present and the learners have a missing bin.
    #[default]
    Keep,
    /// Leave the row out and record it in the report, whatever the bad-row policy.
    Drop,
    /// Stop at the first missing value with an error naming it.
    Fail,
}

impl std::str::FromStr for MissingPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(MissingPolicy::Keep),
            "drop" => Ok(MissingPolicy::Drop),
            "fail" => Ok(MissingPolicy::Fail),
            other => Err(format!("unknown policy {other:?} (expected keep, drop or fail)")),
        }
    }
}

/// How a file's records are numbered in errors and the report: CSV lines (the header is line 1),
/// or the rows of a table (a Parquet file: the first data row is row 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Numbering {
    #[default]
    Line,
    Row,
}

impl Numbering {
    pub fn word(self) -> &'static str {
        match self {
            Numbering::Line => "line",
            Numbering::Row => "row",
        }
    }

    pub fn is_line(&self) -> bool {
        *self == Numbering::Line
    }
}

/// A contract violation, located as precisely as possible.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct DataError {
    /// The file as the user named it (path or URL).
    pub file: String,
    /// The line (or, for a table, the row) of the problem.
    pub line: Option<u64>,
    pub numbering: Numbering,
    /// 1-based index and name of the column.
    pub column: Option<(usize, String)>,
    pub message: String,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ": {} {line}", self.numbering.word())?;
        }
        if let Some((idx, name)) = &self.column {
            write!(f, ", column {idx} '{name}'")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One input file: its kind, a display name for messages, and its bytes as CSV text. A table
/// read from another format (Parquet) is given as CSV text with [`Numbering::Row`]: its header is
/// line 0, so that the text's line numbers are the table's row numbers.
#[derive(Clone, Copy, Debug)]
pub struct InputFile<'a> {
    pub kind: FileKind,
    pub name: &'a str,
    pub data: &'a [u8],
    pub numbering: Numbering,
}

impl<'a> InputFile<'a> {
    /// A CSV file.
    pub fn csv(kind: FileKind, name: &'a str, data: &'a [u8]) -> Self {
        InputFile { kind, name, data, numbering: Numbering::Line }
    }
}

/// Options of a read.
#[derive(Clone, Debug)]
pub struct ReadOptions {
    pub policy: BadRowPolicy,
    /// Refuse a file with a column the contract does not name (by default such columns are
    /// ignored and listed in the report).
    pub strict_columns: bool,
    /// What an empty sensor value does (a missing key, label or age is always a bad row).
    pub on_missing: MissingPolicy,
}

impl ReadOptions {
    pub fn new(policy: BadRowPolicy) -> Self {
        ReadOptions { policy, strict_columns: false, on_missing: MissingPolicy::Keep }
    }
}

/// A row left out under [`BadRowPolicy::Drop`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DroppedRow {
    pub file: String,
    /// The line, or for a table the row (`numbering: row`).
    pub line: u64,
    #[serde(default, skip_serializing_if = "Numbering::is_line")]
    pub numbering: Numbering,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub column: Option<String>,
    pub reason: String,
    /// The row's text as read (lossy UTF-8).
    pub raw: String,
}

/// Summary statistics of one numeric column over the kept rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct ColumnStats {
    pub count: u64,
    pub missing: u64,
    /// Values outside the contract's physical bounds (bad rows under the policy).
    #[serde(default)]
    pub out_of_bounds: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub std: Option<f64>,
}

impl ColumnStats {
    /// Statistics of the present values of a column (NaN is a missing value, counted elsewhere).
    fn of(values: &[f64], missing: u64) -> Self {
        let present = || values.iter().copied().filter(|v| !v.is_nan());
        let count = present().count();
        if count == 0 {
            return ColumnStats { missing, ..Default::default() };
        }
        let n = count as f64;
        let (mut lo, mut hi, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
        for v in present() {
            lo = lo.min(v);
            hi = hi.max(v);
            sum += v;
        }
        let mean = sum / n;
        let var = if count > 1 { present().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0) } else { 0.0 };
        ColumnStats {
            count: count as u64,
            missing,
            min: Some(lo),
            max: Some(hi),
            mean: Some(mean),
            std: Some(var.sqrt()),
            out_of_bounds: 0,
        }
    }
}

/// What was found in one file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct FileReport {
    pub name: String,
    /// `row` for a table (Parquet): every line number of this file's entries is a row number.
    #[serde(default, skip_serializing_if = "Numbering::is_line")]
    pub numbering: Numbering,
    pub rows_read: u64,
    pub rows_kept: u64,
    pub rows_dropped: u64,
    pub blank_lines: u64,
    /// Rows whose `(machine, time)` key is smaller than the previous row's, in file order.
    pub out_of_order_rows: u64,
    /// Rows that repeat an earlier row's values exactly (a re-export, say): removed and counted
    /// here, never bad rows. `rows_read = rows_kept + rows_dropped + exact_duplicate_rows`.
    pub exact_duplicate_rows: u64,
    /// The first exact duplicates in the file (at most [`DUPLICATE_EXAMPLES`]).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub exact_duplicate_examples: Vec<DuplicateOf>,
    /// Rows with the key of an earlier row (the same machine and time, or the same machine id)
    /// but other values: bad rows under the policy, as nothing says which one is right.
    pub conflicting_duplicate_rows: u64,
    /// Rows naming a machine absent from the machines file.
    pub unknown_machine_rows: u64,
    /// Columns the contract does not name, ignored (`#k`: the k-th column, which has no name).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub ignored_columns: Vec<String>,
    /// Label values outside the contract vocabulary, with counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub unknown_labels: BTreeMap<String, u64>,
    /// Counts per label value (event files and machine models).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub label_counts: BTreeMap<String, u64>,
    /// Numeric columns: min/max/mean/std/missing.
    pub columns: BTreeMap<String, ColumnStats>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub first_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_time: Option<String>,
}

impl FileReport {
    /// The report of a file whose header has been read, before its rows.
    fn of(file: &InputFile<'_>, header: &Header) -> Self {
        FileReport {
            name: file.name.to_string(),
            numbering: file.numbering,
            ignored_columns: header.ignored.clone(),
            ..Default::default()
        }
    }
}

/// How many exact duplicates a file report lists by line.
pub const DUPLICATE_EXAMPLES: usize = 10;

/// An exact duplicate: its line, and the line of the row it repeats (which is kept).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DuplicateOf {
    pub line: u64,
    pub first_line: u64,
}

/// Collects a file's exact duplicates: counts them and keeps the lowest-numbered examples.
#[derive(Default)]
struct ExactDuplicates {
    found: Vec<DuplicateOf>,
}

impl ExactDuplicates {
    fn push(&mut self, line: u64, first_line: u64) {
        self.found.push(DuplicateOf { line, first_line });
    }

    /// Writes the count and the examples into `report`.
    fn finish(mut self, report: &mut FileReport) {
        report.exact_duplicate_rows = self.found.len() as u64;
        let n = self.found.len().min(DUPLICATE_EXAMPLES);
        if n > 0 {
            self.found.select_nth_unstable(n - 1);
            self.found.truncate(n);
            self.found.sort_unstable();
        }
        report.exact_duplicate_examples = self.found;
    }
}

/// A hole in one machine's telemetry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub machine: u32,
    pub after: String,
    pub before: String,
    pub missing_readings: u64,
}

/// Telemetry continuity over all machines.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct GapReport {
    pub cadence_secs: i64,
    pub machines_with_gaps: u64,
    pub gaps: u64,
    pub missing_readings: u64,
    /// Consecutive readings whose spacing is not a multiple of the cadence.
    pub off_cadence_steps: u64,
    /// The largest gaps (at most 20), largest first.
    pub largest: Vec<Gap>,
}

/// Events outside the telemetry time range of their machine. They are kept: maintenance before
/// the telemetry window, for instance, is what "hours since the last replacement" is built from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct OutsideRange {
    pub before: u64,
    pub after: u64,
    /// Events of machines that have no telemetry at all.
    pub machine_without_telemetry: u64,
}

/// Missing sensor values kept in the telemetry (per column: the file report's `columns`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct MissingReport {
    /// Missing values over all sensors.
    pub values: u64,
    /// Readings with at least one missing value.
    pub readings: u64,
    /// Missing values per machine (machines that have any).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub per_machine: BTreeMap<u32, u64>,
    /// The longest run of consecutive readings of one machine missing one sensor's value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub longest_run: Option<MissingRun>,
}

/// A run of consecutive readings of one machine without a value of one sensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissingRun {
    pub machine: u32,
    pub sensor: String,
    /// Times of the first and the last reading of the run.
    pub first: String,
    pub last: String,
    pub readings: u64,
    /// From the first reading to the one after the last, at the expected cadence.
    pub hours: f64,
}

/// Counts the missing values of a sorted telemetry table, per machine, and finds the longest run.
fn missing_report(tel: &Telemetry, contract: &Contract) -> MissingReport {
    let mut rep = MissingReport::default();
    if tel.sensors.iter().all(|c| !c.iter().any(|v| v.is_nan())) {
        return rep;
    }
    rep.readings = (0..tel.len()).filter(|&i| tel.sensors.iter().any(|c| c[i].is_nan())).count() as u64;
    // (readings, machine, sensor, first index, last index) of the longest run so far.
    let mut best: Option<(u64, u32, usize, usize, usize)> = None;
    for (m, r) in tel.machine_ranges() {
        let mut n = 0u64;
        for (s, col) in tel.sensors.iter().enumerate() {
            let mut run_start = None;
            for i in r.clone() {
                if col[i].is_nan() {
                    n += 1;
                    let start = *run_start.get_or_insert(i);
                    let len = (i - start + 1) as u64;
                    if best.is_none_or(|b| len > b.0) {
                        best = Some((len, m, s, start, i));
                    }
                } else {
                    run_start = None;
                }
            }
        }
        if n > 0 {
            rep.per_machine.insert(m, n);
            rep.values += n;
        }
    }
    rep.longest_run = best.map(|(readings, machine, s, a, b)| MissingRun {
        machine,
        sensor: contract.sensors[s].name.clone(),
        first: Timestamp(tel.time[a]).to_string(),
        last: Timestamp(tel.time[b]).to_string(),
        readings,
        hours: (tel.time[b] - tel.time[a] + contract.cadence_secs()) as f64 / HOUR as f64,
    });
    rep
}

/// The validation report artifact (`validation_report.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationReport {
    pub schema_version: u32,
    pub policy: BadRowPolicy,
    pub files: BTreeMap<String, FileReport>,
    pub machines: u64,
    pub gaps: GapReport,
    pub events_outside_telemetry_range: BTreeMap<String, OutsideRange>,
    /// Sensor values kept as missing (`--on-missing keep`): where they are.
    #[serde(default)]
    pub missing_values: MissingReport,
    /// Every row left out, with its reason.
    pub dropped_rows: Vec<DroppedRow>,
}

pub const VALIDATION_REPORT_VERSION: u32 = 2;

/// Reads and validates the five files.
pub fn read_dataset(
    files: &[InputFile<'_>],
    contract: &Contract,
    opts: &ReadOptions,
) -> Result<(Dataset, ValidationReport), DataError> {
    let find = |kind: FileKind| {
        files.iter().find(|f| f.kind == kind).ok_or_else(|| DataError {
            file: contract.file_name(kind).to_string(),
            line: None,
            numbering: Numbering::Line,
            column: None,
            message: "file not provided".to_string(),
        })
    };
    let mut dropped = Vec::new();
    let mut reports = BTreeMap::new();

    let mach_file = find(FileKind::Machines)?;
    let (machines, mach_report) = read_machines(mach_file, contract, opts, &mut dropped)?;
    reports.insert(FileKind::Machines.name().to_string(), mach_report);

    let tel_file = find(FileKind::Telemetry)?;
    let (telemetry, tel_report) = read_telemetry(tel_file, contract, &machines, opts, &mut dropped)?;
    reports.insert(FileKind::Telemetry.name().to_string(), tel_report);

    let mut events_out = BTreeMap::new();
    let mut tables = Vec::new();
    for kind in [FileKind::Errors, FileKind::Maint, FileKind::Failures] {
        let file = find(kind)?;
        let (events, report, outside) = read_events(file, contract, &machines, &telemetry, opts, &mut dropped)?;
        reports.insert(kind.name().to_string(), report);
        events_out.insert(kind.name().to_string(), outside);
        tables.push(events);
    }
    let failures = tables.pop().unwrap_or_default();
    let maint = tables.pop().unwrap_or_default();
    let errors = tables.pop().unwrap_or_default();

    let gaps = gap_report(&telemetry, contract.cadence_secs());
    let missing_values = missing_report(&telemetry, contract);
    dropped.sort_by(|a, b| (a.file.as_str(), a.line).cmp(&(b.file.as_str(), b.line)));
    let report = ValidationReport {
        schema_version: VALIDATION_REPORT_VERSION,
        policy: opts.policy,
        files: reports,
        machines: machines.len() as u64,
        gaps,
        events_outside_telemetry_range: events_out,
        missing_values,
        dropped_rows: dropped,
    };
    let dataset = Dataset { contract: contract.clone(), telemetry, errors, maint, failures, machines };
    Ok((dataset, report))
}

/// A row about machine `m`, which the machines file does not list: counted in `count`, then
/// refused as `policy` says (`column` is the machine id's).
fn unknown_machine(
    count: &mut u64,
    policy: BadRowPolicy,
    dropped: &mut Vec<DroppedRow>,
    file: &InputFile<'_>,
    at: At,
    column: (usize, &str),
    m: u32,
) -> Result<(), DataError> {
    *count += 1;
    bad_row(policy, dropped, file, at, Some(column), format!("machine {m} is not in the machines file"))
}

/// Where a row is in its file: its 1-based line, for messages, and the byte offset of that line,
/// so that a dropped row's text is found in O(its length), never by rescanning the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct At {
    line: u64,
    start: usize,
}

fn bad_row(
    policy: BadRowPolicy,
    dropped: &mut Vec<DroppedRow>,
    file: &InputFile<'_>,
    at: At,
    column: Option<(usize, &str)>,
    message: String,
) -> Result<(), DataError> {
    match policy {
        BadRowPolicy::Fail => Err(located_error(file, Some(at.line), column.map(|(i, n)| (i, n.to_string())), message)),
        BadRowPolicy::Drop => {
            dropped.push(DroppedRow {
                file: file.name.to_string(),
                line: at.line,
                numbering: file.numbering,
                column: column.map(|(_, n)| n.to_string()),
                reason: message,
                raw: String::from_utf8_lossy(csv::line_at(file.data, at.start)).into_owned(),
            });
            Ok(())
        }
    }
}

/// A parsed header: for each expected column, its field index in the file.
struct Header {
    /// `positions[k]` = field index of expected column `k`.
    positions: Vec<usize>,
    /// Expected column names, contract order.
    names: Vec<String>,
    n_fields: usize,
    /// The header record as read, to recognise repeated headers later.
    raw_fields: Vec<String>,
    /// Line of the header.
    line: u64,
    numbering: Numbering,
    /// Columns the contract does not name, as the header spells them (`#k` for an unnamed one):
    /// read past, listed in the report.
    ignored: Vec<String>,
}

impl Header {
    /// 1-based column index and name of expected column `k`, for messages.
    fn col(&self, k: usize) -> (usize, &str) {
        (self.positions[k] + 1, self.names[k].as_str())
    }
}

fn file_error(file: &InputFile<'_>, line: Option<u64>, message: String) -> DataError {
    located_error(file, line, None, message)
}

/// An error in `file`, at `line` (shown as the file numbers its records) and `column`.
fn located_error(
    file: &InputFile<'_>,
    line: Option<u64>,
    column: Option<(usize, String)>,
    message: String,
) -> DataError {
    DataError { file: file.name.to_string(), line: shown_line(file, line), numbering: file.numbering, column, message }
}

/// A line to show in a message: a table's header (line 0) has no row number.
fn shown_line(file: &InputFile<'_>, line: Option<u64>) -> Option<u64> {
    line.filter(|&l| !(file.numbering == Numbering::Row && l == 0))
}

fn read_header<'a>(
    file: &InputFile<'a>,
    tok: &mut Tokenizer<'a>,
    expected: Vec<String>,
    opts: &ReadOptions,
) -> Result<Header, DataError> {
    let mut fields = Vec::new();
    let rec = match tok.next_record(&mut fields) {
        None => return Err(file_error(file, None, "the file is empty".to_string())),
        Some(Err(e)) => {
            return Err(located_error(file, Some(e.line), Some((e.column, format!("#{}", e.column))), e.message));
        }
        Some(Ok(r)) => r,
    };
    let got: Vec<String> = fields.iter().map(|f| String::from_utf8_lossy(f).trim().to_string()).collect();
    let expected_list = expected.join(", ");
    let lower = |s: &str| s.to_ascii_lowercase();
    if !got.iter().any(|g| expected.iter().any(|e| lower(e) == lower(g))) {
        return Err(file_error(
            file,
            Some(rec.line),
            match file.numbering {
                Numbering::Line => format!("line {} is not a header; expected the columns {expected_list}", rec.line),
                Numbering::Row => format!("the table has none of the contract's columns; expected {expected_list}"),
            },
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, g) in got.iter().enumerate() {
        if let Some(first) = seen.insert(lower(g), i) {
            let message = format!("column name repeated (first at column {})", first + 1);
            return Err(located_error(file, Some(rec.line), Some((i + 1, g.clone())), message));
        }
    }
    let mut ignored = Vec::new();
    for (i, g) in got.iter().enumerate() {
        if !expected.iter().any(|e| lower(e) == lower(g)) {
            let shown = if g.is_empty() { format!("#{}", i + 1) } else { g.clone() };
            if opts.strict_columns {
                let message = format!("unexpected column; expected exactly {expected_list} (--strict-columns)");
                return Err(located_error(file, Some(rec.line), Some((i + 1, shown)), message));
            }
            ignored.push(shown);
        }
    }
    let mut positions = Vec::with_capacity(expected.len());
    for e in &expected {
        match got.iter().position(|g| lower(g) == lower(e)) {
            Some(p) => positions.push(p),
            None => {
                return Err(file_error(
                    file,
                    Some(rec.line),
                    format!("missing column '{e}'; expected {expected_list}"),
                ));
            }
        }
    }
    Ok(Header {
        positions,
        names: expected,
        n_fields: got.len(),
        raw_fields: got,
        line: rec.line,
        numbering: file.numbering,
        ignored,
    })
}

/// Name of the field at 1-based file position `column`, as the header spells it.
fn field_name(header: &Header, column: usize) -> String {
    header.raw_fields.get(column - 1).cloned().unwrap_or_else(|| format!("#{column}"))
}

fn open<'a>(file: &InputFile<'a>) -> Result<Tokenizer<'a>, DataError> {
    if file.numbering == Numbering::Row {
        // A table's text: its header is line 0, its first row line 1.
        return Ok(Tokenizer::at_line(file.data, 0));
    }
    Tokenizer::new(file.data).map_err(|e| match e {
        EncodingError::Utf16 => file_error(file, None, "the file is UTF-16 encoded; save it as UTF-8".to_string()),
    })
}

/// A cell problem: message only; the caller adds file/line/column.
type CellResult<T> = Result<T, String>;

fn is_missing(v: &[u8]) -> bool {
    v.is_empty() || v == b"NA" || v == b"null" || v == b"NULL"
}

/// A datetime cell; `only` is the one text form the contract accepts, if it does not accept both.
fn parse_time(v: &[u8], only: Option<DatetimeForm>) -> CellResult<i64> {
    if is_missing(v) {
        return Err(missing_msg(v));
    }
    let t = Timestamp::parse(v).map_err(|e| format!("invalid datetime {}: {e}", show_value(v)))?;
    if let Some(form) = only
        && DatetimeForm::of(v) != form
    {
        return Err(format!(
            "datetime {} is in the {} form; the data contract accepts only the {} form",
            show_value(v),
            DatetimeForm::of(v).name(),
            form.name()
        ));
    }
    Ok(t.0)
}

/// The one datetime form `contract` accepts in `file`, if it does not accept every form (the forms
/// are CSV's: a table's datetimes, typed or text, may take either).
fn only_form(contract: &Contract, file: &InputFile<'_>) -> Option<DatetimeForm> {
    if file.numbering == Numbering::Row {
        return None;
    }
    match contract.datetime_forms.as_slice() {
        [] => None,
        [first, rest @ ..] if rest.iter().all(|f| f == first) => Some(*first),
        _ => None,
    }
}

fn missing_msg(v: &[u8]) -> String {
    if v.is_empty() { "missing value".to_string() } else { format!("missing value ({})", show_value(v)) }
}

fn parse_machine_id(v: &[u8]) -> CellResult<u32> {
    if is_missing(v) {
        return Err(missing_msg(v));
    }
    let ok = !v.is_empty() && v.len() <= 10 && v.iter().all(u8::is_ascii_digit);
    let parsed = if ok { std::str::from_utf8(v).ok().and_then(|s| s.parse::<u32>().ok()) } else { None };
    match parsed {
        Some(id) if id > 0 => Ok(id),
        _ => Err(format!("machine id must be a positive integer, found {}", show_value(v))),
    }
}

fn parse_f64(v: &[u8]) -> CellResult<f64> {
    if is_missing(v) {
        return Err(missing_msg(v));
    }
    let parsed = std::str::from_utf8(v).ok().and_then(|s| s.parse::<f64>().ok());
    match parsed {
        Some(x) if x.is_finite() => Ok(x),
        Some(_) => Err(format!("non-finite value {}", show_value(v))),
        None => Err(format!("expected a number, found {}", show_value(v))),
    }
}

fn parse_label(v: &[u8], vocab: &[String], what: &str) -> Result<u16, (String, Option<String>)> {
    if is_missing(v) {
        return Err((missing_msg(v), None));
    }
    match vocab.iter().position(|x| x.as_bytes() == v) {
        Some(i) => Ok(i as u16),
        None => {
            let label = String::from_utf8_lossy(v).into_owned();
            Err((format!("unknown {what} {} (expected one of {})", show_value(v), vocab.join(", ")), Some(label)))
        }
    }
}

fn is_repeated_header(fields: &[Cow<'_, [u8]>], header: &Header) -> bool {
    fields.len() == header.raw_fields.len()
        && fields.iter().zip(&header.raw_fields).all(|(f, h)| String::from_utf8_lossy(f).trim().eq_ignore_ascii_case(h))
}

/// Checks the field count and recognises repeated headers; returns the row problem if any.
fn shape_problem(fields: &[Cow<'_, [u8]>], header: &Header) -> Option<String> {
    if is_repeated_header(fields, header) {
        return Some(match header.numbering {
            Numbering::Line => format!("repeated header row (the header is on line {})", header.line),
            Numbering::Row => "the row repeats the column names".to_string(),
        });
    }
    if fields.len() != header.n_fields {
        return Some(format!("expected {} fields, found {}", header.n_fields, fields.len()));
    }
    None
}

/// The machines file as parsed, before duplicate ids are refused.
struct ParsedMachines {
    table: Machines,
    /// Where each row is in the file.
    rows: Vec<At>,
    /// 1-based index and name of the machine id column.
    id_col: (usize, String),
    report: FileReport,
}

/// A row-level problem: where, column (index and name) if known, message.
type RowProblem = (At, Option<(usize, String)>, String);

/// Parses the machines file, then refuses repeated ids and sorts by id.
fn read_machines(
    file: &InputFile<'_>,
    contract: &Contract,
    opts: &ReadOptions,
    dropped: &mut Vec<DroppedRow>,
) -> Result<(Machines, FileReport), DataError> {
    let policy = opts.policy;
    let ParsedMachines { table: parsed, rows, id_col, mut report } = parse_machines(file, contract, opts, dropped)?;
    report.out_of_order_rows = count_out_of_order(&parsed.id, |i| parsed.id[i]);
    let mut order: Vec<usize> = (0..parsed.len()).collect();
    order.sort_by_key(|&i| (parsed.id[i], rows[i]));
    let mut out = Machines::default();
    let mut prev: Option<usize> = None;
    let mut exact = ExactDuplicates::default();
    for i in order {
        let id = parsed.id[i];
        if let Some(p) = prev
            && parsed.id[p] == id
        {
            if parsed.model[p] == parsed.model[i] && parsed.age[p].to_bits() == parsed.age[i].to_bits() {
                exact.push(rows[i].line, rows[p].line);
                continue;
            }
            report.conflicting_duplicate_rows += 1;
            let msg =
                format!("machine {id} is already defined on {} {}, differently", file.numbering.word(), rows[p].line);
            bad_row(policy, dropped, file, rows[i], Some((id_col.0, &id_col.1)), msg)?;
            continue;
        }
        prev = Some(i);
        out.id.push(id);
        out.model.push(parsed.model[i]);
        out.age.push(parsed.age[i]);
    }
    exact.finish(&mut report);
    report.rows_kept = out.len() as u64;
    report.rows_dropped = report.rows_read - report.rows_kept - report.exact_duplicate_rows;
    let parsed_age = report.columns.get("age").cloned().unwrap_or_default();
    let age = ColumnStats { out_of_bounds: parsed_age.out_of_bounds, ..ColumnStats::of(&out.age, parsed_age.missing) };
    report.columns.insert("age".into(), age);
    report.label_counts = count_labels(&out.model, &contract.models);
    Ok((out, report))
}

/// Where the next record of a small file (machines, events) that tokenizes and has the
/// header's number of fields, each record counted in `rows_read`. A record that does not is a bad
/// row under `policy`: an error, or dropped (recorded) and the next one read.
fn next_row<'a>(
    tok: &mut Tokenizer<'a>,
    fields: &mut Vec<Cow<'a, [u8]>>,
    header: &Header,
    rows_read: &mut u64,
    policy: BadRowPolicy,
    dropped: &mut Vec<DroppedRow>,
    file: &InputFile<'_>,
) -> Result<Option<At>, DataError> {
    while let Some(rec) = tok.next_record(fields) {
        *rows_read += 1;
        match rec {
            Err(e) => {
                let name = field_name(header, e.column);
                let at = At { line: e.line, start: tok.last_start() };
                bad_row(policy, dropped, file, at, Some((e.column, &name)), e.message)?;
            }
            Ok(rec) => {
                let at = At { line: rec.line, start: rec.start };
                match shape_problem(fields, header) {
                    Some(msg) => bad_row(policy, dropped, file, at, None, msg)?,
                    None => return Ok(Some(at)),
                }
            }
        }
    }
    Ok(None)
}

fn parse_machines(
    file: &InputFile<'_>,
    contract: &Contract,
    opts: &ReadOptions,
    dropped: &mut Vec<DroppedRow>,
) -> Result<ParsedMachines, DataError> {
    let policy = opts.policy;
    let mut tok = open(file)?;
    let header = read_header(file, &mut tok, contract.columns(FileKind::Machines), opts)?;
    let id_col = (header.col(0).0, header.col(0).1.to_string());
    let mut out = Machines::default();
    let mut rows = Vec::new();
    let mut report = FileReport::of(file, &header);
    let mut age_missing = 0;
    let mut age_out_of_bounds = 0;
    let mut fields = Vec::new();
    while let Some(at) = next_row(&mut tok, &mut fields, &header, &mut report.rows_read, policy, dropped, file)? {
        let f = |k: usize| &*fields[header.positions[k]];
        let id = match parse_machine_id(f(0)) {
            Ok(v) => v,
            Err(m) => {
                bad_row(policy, dropped, file, at, Some(header.col(0)), m)?;
                continue;
            }
        };
        let model = match parse_label(f(1), &contract.models, "model") {
            Ok(v) => v,
            Err((m, label)) => {
                if let Some(l) = label {
                    *report.unknown_labels.entry(l).or_default() += 1;
                }
                bad_row(policy, dropped, file, at, Some(header.col(1)), m)?;
                continue;
            }
        };
        let age = match parse_f64(f(2)) {
            Ok(v) if (contract.age.min..=contract.age.max).contains(&v) => v,
            Ok(_) => {
                age_out_of_bounds += 1;
                let (lo, hi) = (contract.age.min, contract.age.max);
                let v = csv::show_raw(f(2));
                let m = format!("age = {v} is outside its bounds [{lo}, {hi}] years (data contract)");
                bad_row(policy, dropped, file, at, Some(header.col(2)), m)?;
                continue;
            }
            Err(m) => {
                if is_missing(f(2)) {
                    age_missing += 1;
                }
                bad_row(policy, dropped, file, at, Some(header.col(2)), m)?;
                continue;
            }
        };
        out.id.push(id);
        out.model.push(model);
        out.age.push(age);
        rows.push(at);
    }
    report.blank_lines = tok.blank_lines;
    if report.rows_read == 0 {
        return Err(file_error(file, None, "no data rows after the header".to_string()));
    }
    let age = ColumnStats { missing: age_missing, out_of_bounds: age_out_of_bounds, ..Default::default() };
    report.columns.insert("age".into(), age);
    Ok(ParsedMachines { table: out, rows, id_col, report })
}

/// Telemetry rows parsed from one chunk of the file.
struct TelemetryChunk {
    table: Telemetry,
    rows: Vec<At>,
    dropped: Vec<DroppedRow>,
    error: Option<DataError>,
    rows_read: u64,
    blank_lines: u64,
    missing: Vec<u64>,
    out_of_bounds: Vec<u64>,
}

fn parse_telemetry_chunk(
    file: &InputFile<'_>,
    chunk: &[u8],
    first_line: u64,
    base: usize,
    header: &Header,
    contract: &Contract,
    opts: &ReadOptions,
) -> TelemetryChunk {
    let policy = opts.policy;
    let only = only_form(contract, file);
    let n_sensors = header.names.len() - 2;
    let mut out = TelemetryChunk {
        table: Telemetry::with_sensors(n_sensors),
        rows: Vec::new(),
        dropped: Vec::new(),
        error: None,
        rows_read: 0,
        blank_lines: 0,
        missing: vec![0; header.names.len()],
        out_of_bounds: vec![0; header.names.len()],
    };
    let mut tok = Tokenizer::at_line(chunk, first_line);
    let mut fields = Vec::with_capacity(header.n_fields);
    let mut values = vec![0.0; n_sensors];
    'rows: while let Some(rec) = tok.next_record(&mut fields) {
        out.rows_read += 1;
        // A missing value under `--on-missing drop` leaves the row out whatever the bad-row
        // policy; under `fail` it stops.
        let mut missing_policy: Option<BadRowPolicy> = None;
        let problem: Option<RowProblem> = match rec {
            Err(e) => {
                let at = At { line: e.line, start: base + tok.last_start() };
                Some((at, Some((e.column, field_name(header, e.column))), e.message))
            }
            Ok(rec) => 'check: {
                let at = At { line: rec.line, start: base + rec.start };
                if let Some(msg) = shape_problem(&fields, header) {
                    break 'check Some((at, None, msg));
                }
                let f = |k: usize| &*fields[header.positions[k]];
                let col = |k: usize| {
                    let (i, n) = header.col(k);
                    Some((i, n.to_string()))
                };
                let time = match parse_time(f(0), only) {
                    Ok(t) => t,
                    Err(m) => {
                        out.missing[0] += u64::from(is_missing(f(0)));
                        break 'check Some((at, col(0), m));
                    }
                };
                let machine = match parse_machine_id(f(1)) {
                    Ok(m) => m,
                    Err(m) => {
                        out.missing[1] += u64::from(is_missing(f(1)));
                        break 'check Some((at, col(1), m));
                    }
                };
                for (s, v) in values.iter_mut().enumerate() {
                    if is_missing(f(s + 2)) {
                        out.missing[s + 2] += 1;
                        match opts.on_missing {
                            MissingPolicy::Keep => {
                                *v = f64::NAN;
                                continue;
                            }
                            MissingPolicy::Drop => missing_policy = Some(BadRowPolicy::Drop),
                            MissingPolicy::Fail => missing_policy = Some(BadRowPolicy::Fail),
                        }
                        break 'check Some((at, col(s + 2), missing_msg(f(s + 2))));
                    }
                    match parse_f64(f(s + 2)) {
                        Ok(x) if contract.sensors[s].admits(x) => *v = x,
                        Ok(_) => {
                            out.out_of_bounds[s + 2] += 1;
                            let sensor = &contract.sensors[s];
                            let m = format!(
                                "{} = {} is outside its physical bounds {} (data contract)",
                                sensor.name,
                                csv::show_raw(f(s + 2)),
                                sensor.bounds_text()
                            );
                            break 'check Some((at, col(s + 2), m));
                        }
                        Err(m) => break 'check Some((at, col(s + 2), m)),
                    }
                }
                out.table.machine.push(machine);
                out.table.time.push(time);
                for (col, &v) in out.table.sensors.iter_mut().zip(&values) {
                    col.push(v);
                }
                out.rows.push(at);
                None
            }
        };
        if let Some((at, column, msg)) = problem {
            let column = column.as_ref().map(|(i, n)| (*i, n.as_str()));
            let policy = missing_policy.unwrap_or(policy);
            if let Err(e) = bad_row(policy, &mut out.dropped, file, at, column, msg) {
                out.error = Some(e);
                break 'rows;
            }
        }
    }
    out.blank_lines = tok.blank_lines;
    out
}

fn read_telemetry(
    file: &InputFile<'_>,
    contract: &Contract,
    machines: &Machines,
    opts: &ReadOptions,
    dropped: &mut Vec<DroppedRow>,
) -> Result<(Telemetry, FileReport), DataError> {
    let policy = opts.policy;
    let mut tok = open(file)?;
    let header = read_header(file, &mut tok, contract.columns(FileKind::Telemetry), opts)?;
    // The rest of the file, from the first line after the header.
    let body_start = {
        let mut pos = if file.data.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
        let first_line = if file.numbering == Numbering::Row { 0 } else { 1 };
        for _ in first_line..tok.next_line() {
            pos = file.data[pos..].iter().position(|&b| b == b'\n').map_or(file.data.len(), |k| pos + k + 1);
        }
        pos
    };
    let body = &file.data[body_start..];
    let n_chunks = if body.len() > 1 << 20 { rayon::current_num_threads() * 4 } else { 1 };
    let chunks = csv::line_chunks(body, n_chunks);
    // Line numbers of each chunk's first line.
    let newline_counts: Vec<u64> =
        chunks.par_iter().map(|&(a, b)| body[a..b].iter().filter(|&&c| c == b'\n').count() as u64).collect();
    let mut first_lines = Vec::with_capacity(chunks.len());
    let mut line = tok.next_line();
    for n in &newline_counts {
        first_lines.push(line);
        line += n;
    }
    let parts: Vec<TelemetryChunk> = chunks
        .par_iter()
        .zip(first_lines.par_iter())
        .map(|(&(a, b), &first)| {
            parse_telemetry_chunk(file, &body[a..b], first, body_start + a, &header, contract, opts)
        })
        .collect();

    let mut report = FileReport::of(file, &header);
    let n_sensors = contract.sensors.len();
    let total: usize = parts.iter().map(|p| p.table.len()).sum();
    let mut tel = Telemetry::with_sensors(n_sensors);
    tel.machine.reserve(total);
    tel.time.reserve(total);
    for c in &mut tel.sensors {
        c.reserve(total);
    }
    let mut rows = Vec::with_capacity(total);
    let mut missing = vec![0u64; header.names.len()];
    let mut out_of_bounds = vec![0u64; header.names.len()];
    report.blank_lines = tok.blank_lines;
    for part in parts {
        if let Some(e) = part.error {
            return Err(e);
        }
        report.rows_read += part.rows_read;
        report.blank_lines += part.blank_lines;
        for (m, p) in missing.iter_mut().zip(&part.missing) {
            *m += p;
        }
        for (m, p) in out_of_bounds.iter_mut().zip(&part.out_of_bounds) {
            *m += p;
        }
        dropped.extend(part.dropped);
        tel.machine.extend_from_slice(&part.table.machine);
        tel.time.extend_from_slice(&part.table.time);
        for (c, p) in tel.sensors.iter_mut().zip(&part.table.sensors) {
            c.extend_from_slice(p);
        }
        rows.extend_from_slice(&part.rows);
    }
    if report.rows_read == 0 {
        return Err(file_error(file, None, "no data rows after the header".to_string()));
    }
    report.out_of_order_rows = count_out_of_order(&tel.machine, |i| (tel.machine[i], tel.time[i]));

    // Sort by (machine, time) unless already sorted (the usual case). The sort keys are copied
    // into one contiguous vector first: sorting indices by keys looked up in the columns costs a
    // cache miss per comparison, twice the whole read on a shuffled file.
    let sorted = (1..tel.len()).all(|i| (tel.machine[i - 1], tel.time[i - 1]) <= (tel.machine[i], tel.time[i]));
    let keyed: Option<Vec<u128>> = if sorted {
        None
    } else {
        if u32::try_from(tel.len()).is_err() {
            return Err(file_error(file, None, format!("{} rows are more than one read can sort", tel.len())));
        }
        // (machine, time, row index) packed in one integer: 16 bytes to move and one compare. The
        // index follows the file's order, so equal keys keep it.
        let mut k: Vec<u128> = (0..tel.len()).map(|i| sort_key(tel.machine[i], tel.time[i], i)).collect();
        k.par_sort_unstable();
        Some(k)
    };
    // In sorted order: the row at position `pos`, its machine and time.
    let at = |pos: usize| match &keyed {
        Some(k) => unpack_sort_key(k[pos]),
        None => (pos, tel.machine[pos], tel.time[pos]),
    };
    // Keep a row unless it repeats the previous (machine, time) or names an unknown machine
    // (`keep` is by sorted position).
    let mut keep = vec![true; tel.len()];
    // The previous kept row and its key (kept here: reading it back from the columns would be a
    // cache miss per row of a shuffled file).
    let mut prev: Option<(usize, u32, i64)> = None;
    let mut exact = ExactDuplicates::default();
    for (pos, keep_row) in keep.iter_mut().enumerate() {
        let (i, m, t) = at(pos);
        if machines.position(m).is_none() {
            *keep_row = false;
            unknown_machine(&mut report.unknown_machine_rows, policy, dropped, file, rows[i], header.col(1), m)?;
            continue;
        }
        if let Some((p, pm, pt)) = prev
            && pm == m
            && pt == t
        {
            *keep_row = false;
            if tel.sensors.iter().all(|c| c[p].to_bits() == c[i].to_bits()) {
                exact.push(rows[i].line, rows[p].line);
                continue;
            }
            report.conflicting_duplicate_rows += 1;
            bad_row(
                policy,
                dropped,
                file,
                rows[i],
                Some(header.col(0)),
                format!(
                    "conflicting reading for machine {m} at {}: {} {} has other values",
                    Timestamp(t),
                    file.numbering.word(),
                    rows[p].line
                ),
            )?;
            continue;
        }
        prev = Some((i, m, t));
    }
    let tel = if keyed.is_none() && keep.iter().all(|&k| k) {
        tel
    } else {
        // By sorted position; the sensors' gather (a random order when the file was not sorted)
        // reads one column per core.
        let kept: Vec<(usize, u32, i64)> = (0..tel.len()).filter(|&pos| keep[pos]).map(at).collect();
        Telemetry {
            machine: kept.iter().map(|k| k.1).collect(),
            time: kept.iter().map(|k| k.2).collect(),
            sensors: tel.sensors.par_iter().map(|c| kept.iter().map(|k| c[k.0]).collect()).collect(),
        }
    };
    exact.finish(&mut report);
    report.rows_kept = tel.len() as u64;
    report.rows_dropped = report.rows_read - report.rows_kept - report.exact_duplicate_rows;
    for (s, sensor) in contract.sensors.iter().enumerate() {
        let stats =
            ColumnStats { out_of_bounds: out_of_bounds[s + 2], ..ColumnStats::of(&tel.sensors[s], missing[s + 2]) };
        report.columns.insert(sensor.name.clone(), stats);
    }
    if let (Some(lo), Some(hi)) = (tel.time.iter().min(), tel.time.iter().max()) {
        report.first_time = Some(Timestamp(*lo).to_string());
        report.last_time = Some(Timestamp(*hi).to_string());
    }
    Ok((tel, report))
}

/// `(machine, time, index)` as one integer ordered like the tuple (`index` < 2^32).
fn sort_key(machine: u32, time: i64, index: usize) -> u128 {
    let t = (time as u64) ^ (1 << 63);
    (u128::from(machine) << 96) | (u128::from(t) << 32) | (index as u128 & 0xFFFF_FFFF)
}

/// `(index, machine, time)` of a [`sort_key`].
fn unpack_sort_key(k: u128) -> (usize, u32, i64) {
    ((k & 0xFFFF_FFFF) as usize, (k >> 96) as u32, (((k >> 32) as u64) ^ (1 << 63)) as i64)
}

fn count_out_of_order<K: PartialOrd>(col: &[u32], key: impl Fn(usize) -> K) -> u64 {
    (1..col.len()).filter(|&i| key(i) < key(i - 1)).count() as u64
}

fn count_labels(kinds: &[u16], vocab: &[String]) -> BTreeMap<String, u64> {
    let mut out: BTreeMap<String, u64> = vocab.iter().map(|v| (v.clone(), 0)).collect();
    for &k in kinds {
        if let Some(name) = vocab.get(usize::from(k)) {
            *out.entry(name.clone()).or_default() += 1;
        }
    }
    out
}

fn read_events(
    file: &InputFile<'_>,
    contract: &Contract,
    machines: &Machines,
    telemetry: &Telemetry,
    opts: &ReadOptions,
    dropped: &mut Vec<DroppedRow>,
) -> Result<(Events, FileReport, OutsideRange), DataError> {
    let policy = opts.policy;
    let kind = file.kind;
    let mut tok = open(file)?;
    let header = read_header(file, &mut tok, contract.columns(kind), opts)?;
    let vocab = contract.vocabulary(kind);
    let only = only_form(contract, file);
    let what = match kind {
        FileKind::Errors => "error id",
        _ => "component",
    };
    let mut report = FileReport::of(file, &header);
    let mut ev = Events::default();
    let mut rows = Vec::new();
    let mut fields = Vec::new();
    while let Some(at) = next_row(&mut tok, &mut fields, &header, &mut report.rows_read, policy, dropped, file)? {
        let f = |k: usize| &*fields[header.positions[k]];
        let time = match parse_time(f(0), only) {
            Ok(t) => t,
            Err(m) => {
                bad_row(policy, dropped, file, at, Some(header.col(0)), m)?;
                continue;
            }
        };
        let machine = match parse_machine_id(f(1)) {
            Ok(m) => m,
            Err(m) => {
                bad_row(policy, dropped, file, at, Some(header.col(1)), m)?;
                continue;
            }
        };
        let label = match parse_label(f(2), vocab, what) {
            Ok(l) => l,
            Err((m, label)) => {
                if let Some(l) = label {
                    *report.unknown_labels.entry(l).or_default() += 1;
                }
                bad_row(policy, dropped, file, at, Some(header.col(2)), m)?;
                continue;
            }
        };
        ev.push(machine, time, label);
        rows.push(at);
    }
    report.blank_lines = tok.blank_lines;
    report.out_of_order_rows = count_out_of_order(&ev.machine, |i| (ev.machine[i], ev.time[i]));
    let mut order: Vec<usize> = (0..ev.len()).collect();
    order.sort_by_key(|&i| (ev.machine[i], ev.time[i], ev.kind[i], rows[i]));
    let mut out = Events::default();
    let mut prev: Option<usize> = None;
    let mut outside = OutsideRange::default();
    let mut exact = ExactDuplicates::default();
    let tel_ranges: HashMap<u32, (i64, i64)> = telemetry
        .machine_ranges()
        .into_iter()
        .map(|(m, r)| (m, (telemetry.time[r.start], telemetry.time[r.end - 1])))
        .collect();
    for i in order {
        let (m, t, k) = (ev.machine[i], ev.time[i], ev.kind[i]);
        if machines.position(m).is_none() {
            unknown_machine(&mut report.unknown_machine_rows, policy, dropped, file, rows[i], header.col(1), m)?;
            continue;
        }
        // An event is all key: one that repeats machine, time and kind is an exact duplicate.
        if let Some(p) = prev
            && (ev.machine[p], ev.time[p], ev.kind[p]) == (m, t, k)
        {
            exact.push(rows[i].line, rows[p].line);
            continue;
        }
        prev = Some(i);
        match tel_ranges.get(&m) {
            None => outside.machine_without_telemetry += 1,
            Some(&(lo, _)) if t < lo => outside.before += 1,
            Some(&(_, hi)) if t > hi => outside.after += 1,
            Some(_) => {}
        }
        out.push(m, t, k);
    }
    exact.finish(&mut report);
    report.rows_kept = out.len() as u64;
    report.rows_dropped = report.rows_read - report.rows_kept - report.exact_duplicate_rows;
    report.label_counts = count_labels(&out.kind, vocab);
    if let (Some(lo), Some(hi)) = (out.time.iter().min(), out.time.iter().max()) {
        report.first_time = Some(Timestamp(*lo).to_string());
        report.last_time = Some(Timestamp(*hi).to_string());
    }
    Ok((out, report, outside))
}

fn gap_report(tel: &Telemetry, cadence: i64) -> GapReport {
    let mut rep = GapReport { cadence_secs: cadence, ..Default::default() };
    let mut all: Vec<Gap> = Vec::new();
    for (m, r) in tel.machine_ranges() {
        let mut has_gap = false;
        for i in r.start + 1..r.end {
            let step = tel.time[i] - tel.time[i - 1];
            if step % cadence != 0 {
                rep.off_cadence_steps += 1;
            }
            if step > cadence {
                has_gap = true;
                rep.gaps += 1;
                let missing = (step / cadence - 1).max(0) as u64;
                rep.missing_readings += missing;
                all.push(Gap {
                    machine: m,
                    after: Timestamp(tel.time[i - 1]).to_string(),
                    before: Timestamp(tel.time[i]).to_string(),
                    missing_readings: missing,
                });
            }
        }
        rep.machines_with_gaps += u64::from(has_gap);
    }
    all.sort_by(|a, b| b.missing_readings.cmp(&a.missing_readings).then(a.machine.cmp(&b.machine)));
    all.truncate(20);
    rep.largest = all;
    rep
}
