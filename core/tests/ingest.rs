//! The data contract: valid variants are read identically; each malformed input gets its exact,
//! located error under `fail`, and is recorded (never silently lost) under `drop`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use pm_core::data::contract::{Contract, Dataset, FileKind};
use pm_core::data::ingest::{
    BadRowPolicy, DataError, InputFile, MissingPolicy, ReadOptions, ValidationReport, read_dataset,
};

const TELEMETRY: &str = "\"datetime\",\"machineID\",\"volt\",\"rotate\",\"pressure\",\"vibration\"
2015-01-01 06:00:00,1,176.217853015625,418.504078221616,113.077935462083,45.0876857639276
2015-01-01 07:00:00,1,162.87922289706,402.747489565395,95.4605253823187,43.4139726834815
2015-01-01 08:00:00,1,170.989902405567,527.349825452291,75.2379048586662,34.1788471214451
2015-01-01 06:00:00,2,176.558913393288,423.945999237512,109.373596465566,36.5820860111043
2015-01-01 07:00:00,2,160.128123283723,452.117493120138,103.067707485366,41.6914116740418
";
const ERRORS: &str = "\"datetime\",\"machineID\",\"errorID\"
2015-01-01 07:00:00,1,\"error1\"
2015-01-01 06:00:00,2,\"error3\"
";
const MAINT: &str = "\"datetime\",\"machineID\",\"comp\"
2014-06-01 06:00:00,1,\"comp2\"
2015-01-01 06:00:00,2,\"comp4\"
";
const FAILURES: &str = "\"datetime\",\"machineID\",\"failure\"
2015-01-01 08:00:00,1,\"comp2\"
";
const MACHINES: &str = "\"machineID\",\"model\",\"age\"
1,\"model3\",18
2,\"model4\",7
";

/// The five files, as text; tests replace one of them.
#[derive(Clone)]
struct Files {
    texts: [Vec<u8>; 5],
}

impl Files {
    fn valid() -> Self {
        Files { texts: [TELEMETRY, ERRORS, MAINT, FAILURES, MACHINES].map(|s| s.as_bytes().to_vec()) }
    }

    fn with(mut self, kind: FileKind, text: impl Into<Vec<u8>>) -> Self {
        self.texts[kind as usize] = text.into();
        self
    }

    fn read(&self, policy: BadRowPolicy) -> Result<(Dataset, ValidationReport), DataError> {
        self.read_with(&ReadOptions::new(policy))
    }

    fn read_with(&self, opts: &ReadOptions) -> Result<(Dataset, ValidationReport), DataError> {
        self.read_full(&Contract::azure_pdm(), opts)
    }

    fn read_contract(
        &self,
        contract: &Contract,
        policy: BadRowPolicy,
    ) -> Result<(Dataset, ValidationReport), DataError> {
        self.read_full(contract, &ReadOptions::new(policy))
    }

    fn read_full(&self, contract: &Contract, opts: &ReadOptions) -> Result<(Dataset, ValidationReport), DataError> {
        let files: Vec<InputFile<'_>> =
            FileKind::ALL.iter().map(|&k| InputFile::csv(k, k.file_name(), &self.texts[k as usize])).collect();
        read_dataset(&files, contract, opts)
    }
}

fn telemetry_with(line_no: usize, replacement: &str) -> String {
    TELEMETRY
        .lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == line_no { format!("{replacement}\n") } else { format!("{l}\n") })
        .collect()
}

/// Reading `files` under `fail` gives exactly `expected`; under `drop` (for row-level problems)
/// the bad row is recorded and everything else kept.
fn check_error(files: Files, expected: &str) {
    let err = files.read(BadRowPolicy::Fail).err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some(expected));
}

/// Row-level problems: under `drop` the row is left out, recorded with its reason and raw text,
/// and every other row is kept.
fn check_dropped(files: Files, file: FileKind, line: u64, reason: &str) {
    let (_, rep) = files.read(BadRowPolicy::Drop).unwrap();
    let row = rep
        .dropped_rows
        .iter()
        .find(|r| r.line == line && r.file == file.file_name())
        .unwrap_or_else(|| panic!("line {line} not recorded: {:?}", rep.dropped_rows));
    assert_eq!(row.reason, reason);
    let text = String::from_utf8_lossy(&files.texts[file as usize]).into_owned();
    let raw = text.split('\n').nth(line as usize - 1).unwrap().trim_end_matches('\r');
    assert_eq!(row.raw, raw);
    let f = &rep.files[file.name()];
    assert_eq!(f.rows_read, f.rows_kept + f.rows_dropped + f.exact_duplicate_rows, "nothing lost");
    assert_eq!(rep.dropped_rows.len() as u64, rep.files.values().map(|f| f.rows_dropped).sum::<u64>());
}

#[test]
fn the_valid_fixture_reads_sorted_and_typed() {
    let (ds, rep) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry.len(), 5);
    assert_eq!(ds.telemetry.machine, vec![1, 1, 1, 2, 2]);
    assert_eq!(ds.telemetry.sensors[3][0], 45.0876857639276);
    assert_eq!(ds.errors.kind, vec![0, 2]);
    assert_eq!(ds.machines.model, vec![2, 3]);
    assert_eq!(rep.files["telemetry"].columns["volt"].count, 5);
    assert!(rep.dropped_rows.is_empty());
    // The maintenance record of 2014 is before machine 1's telemetry: reported, kept.
    assert_eq!(rep.events_outside_telemetry_range["maint"].before, 1);
    assert_eq!(ds.maint.len(), 2);
}

#[test]
fn bom_crlf_unquoted_reordered_and_us_datetimes_read_identically() {
    let (clean, _) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    let variants = [
        Files::valid().with(FileKind::Telemetry, format!("\u{feff}{TELEMETRY}")),
        Files::valid().with(FileKind::Telemetry, TELEMETRY.replace('\n', "\r\n")),
        Files::valid().with(FileKind::Errors, ERRORS.replace('"', "")),
        Files::valid().with(FileKind::Machines, "model,machineID,age\nmodel3,1,18\nmodel4,2,7"),
        Files::valid().with(
            FileKind::Telemetry,
            TELEMETRY
                .replace("2015-01-01 06:00:00", "1/1/2015 6:00:00 AM")
                .replace("2015-01-01 08:00:00", "1/1/2015 8:00:00 AM"),
        ),
        Files::valid().with(FileKind::Telemetry, format!("{TELEMETRY}\n\n")),
    ];
    for (i, v) in variants.iter().enumerate() {
        let (ds, _) = v.read(BadRowPolicy::Fail).unwrap_or_else(|e| panic!("variant {i}: {e}"));
        assert_eq!(ds, clean, "variant {i}");
    }
}

#[test]
fn any_row_order_gives_the_same_data_and_is_reported() {
    let (clean, _) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    let mut lines: Vec<&str> = TELEMETRY.lines().collect();
    lines[1..].reverse();
    let shuffled = lines.join("\n");
    let (ds, rep) = Files::valid().with(FileKind::Telemetry, shuffled).read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds, clean);
    // Keys (2,7) (2,6) (1,8) (1,7) (1,6): each is smaller than the one before.
    assert_eq!(rep.files["telemetry"].out_of_order_rows, 4);
}

#[test]
fn gaps_are_measured_per_machine() {
    let text = telemetry_with(3, "2015-01-01 11:00:00,1,1,2,3,4");
    let (_, rep) = Files::valid().with(FileKind::Telemetry, text).read(BadRowPolicy::Fail).unwrap();
    // Machine 1: 06:00, 08:00, 11:00 -> two gaps, 1 + 2 missing readings.
    assert_eq!(rep.gaps.machines_with_gaps, 1);
    assert_eq!(rep.gaps.gaps, 2);
    assert_eq!(rep.gaps.missing_readings, 3);
    assert_eq!(rep.gaps.largest[0].missing_readings, 2);
}

// ---- The malformed corpus: one test each, asserting the exact error. ----

#[test]
fn c01_missing_column() {
    let text: String = TELEMETRY.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string() + "\n").collect();
    check_error(
        Files::valid().with(FileKind::Telemetry, text),
        "PdM_telemetry.csv: line 1: missing column 'vibration'; expected datetime, machineID, volt, rotate, pressure, vibration",
    );
}

#[test]
fn c02_extra_column_is_ignored_and_listed_or_refused_when_strict() {
    let (clean, _) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    // A sensor the contract does not know, in the middle, and an unnamed index column at the end.
    let text: String = TELEMETRY
        .lines()
        .enumerate()
        .map(|(i, l)| {
            let (head, tail) = l.split_at(l.find(',').unwrap());
            if i == 0 { format!("{head},\"humidity\"{tail},\n") } else { format!("{head},\"41.5\"{tail},{i}\n") }
        })
        .collect();
    let f = Files::valid().with(FileKind::Telemetry, text);
    let (ds, rep) = f.read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds, clean);
    assert_eq!(rep.files["telemetry"].ignored_columns, vec!["humidity".to_string(), "#8".to_string()]);
    assert!(rep.files["errors"].ignored_columns.is_empty());
    let strict = |f: &Files| {
        let opts = ReadOptions { strict_columns: true, ..ReadOptions::new(BadRowPolicy::Fail) };
        f.read_with(&opts).err().map(|e| e.to_string())
    };
    assert_eq!(
        strict(&f).as_deref(),
        Some(
            "PdM_telemetry.csv: line 1, column 2 'humidity': unexpected column; expected exactly datetime, machineID, volt, rotate, pressure, vibration (--strict-columns)"
        )
    );
    assert_eq!(strict(&Files::valid()), None);
}

#[test]
fn c03_wrong_type() {
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(3, "2015-01-01 07:00:00,1,abc,402.7,95.4,43.4"));
    check_error(f.clone(), "PdM_telemetry.csv: line 3, column 3 'volt': expected a number, found \"abc\"");
    check_dropped(f, FileKind::Telemetry, 3, "expected a number, found \"abc\"");
}

#[test]
fn c04_nan() {
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(2, "2015-01-01 06:00:00,1,176.2,NaN,113.0,45.0"));
    check_error(f.clone(), "PdM_telemetry.csv: line 2, column 4 'rotate': non-finite value \"NaN\"");
    check_dropped(f, FileKind::Telemetry, 2, "non-finite value \"NaN\"");
}

#[test]
fn c05_infinity() {
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(4, "2015-01-01 08:00:00,1,170.9,527.3,inf,34.1"));
    check_error(f, "PdM_telemetry.csv: line 4, column 5 'pressure': non-finite value \"inf\"");
}

#[test]
fn c06_empty_file() {
    check_error(Files::valid().with(FileKind::Telemetry, ""), "PdM_telemetry.csv: the file is empty");
    check_error(Files::valid().with(FileKind::Machines, "\n\n"), "PdM_machines.csv: the file is empty");
}

#[test]
fn c07_header_only() {
    let header = TELEMETRY.lines().next().unwrap();
    check_error(Files::valid().with(FileKind::Telemetry, header), "PdM_telemetry.csv: no data rows after the header");
    // A fleet without failures is valid: an events file may be header-only.
    let (ds, _) = Files::valid()
        .with(FileKind::Failures, "\"datetime\",\"machineID\",\"failure\"\n")
        .read(BadRowPolicy::Fail)
        .unwrap();
    assert!(ds.failures.is_empty());
}

#[test]
fn c08_repeated_header_row() {
    let header = TELEMETRY.lines().next().unwrap();
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(4, header));
    check_error(f.clone(), "PdM_telemetry.csv: line 4: repeated header row (the header is on line 1)");
    check_dropped(f, FileKind::Telemetry, 4, "repeated header row (the header is on line 1)");
}

#[test]
fn c09_duplicated_column_name() {
    let text = TELEMETRY.replacen("\"rotate\"", "\"volt\"", 1);
    check_error(
        Files::valid().with(FileKind::Telemetry, text),
        "PdM_telemetry.csv: line 1, column 4 'volt': column name repeated (first at column 3)",
    );
}

#[test]
fn c10_negative_machine_id() {
    let f =
        Files::valid().with(FileKind::Telemetry, telemetry_with(2, "2015-01-01 06:00:00,-3,176.2,418.5,113.0,45.0"));
    check_error(
        f.clone(),
        "PdM_telemetry.csv: line 2, column 2 'machineID': machine id must be a positive integer, found \"-3\"",
    );
    check_dropped(f, FileKind::Telemetry, 2, "machine id must be a positive integer, found \"-3\"");
}

#[test]
fn c11_fractional_machine_id() {
    let f = Files::valid().with(FileKind::Errors, "datetime,machineID,errorID\n2015-01-01 07:00:00,1.5,error1\n");
    check_error(
        f,
        "PdM_errors.csv: line 2, column 2 'machineID': machine id must be a positive integer, found \"1.5\"",
    );
}

#[test]
fn c12_impossible_date() {
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(3, "2015-02-30 07:00:00,1,162.8,402.7,95.4,43.4"));
    check_error(
        f,
        "PdM_telemetry.csv: line 3, column 1 'datetime': invalid datetime \"2015-02-30 07:00:00\": day 30 out of range for 2015-02",
    );
}

#[test]
fn c13_unparseable_datetime() {
    let f = Files::valid().with(FileKind::Maint, "datetime,machineID,comp\n01.06.2014 06:00,1,comp2\n");
    check_error(
        f,
        "PdM_maint.csv: line 2, column 1 'datetime': invalid datetime \"01.06.2014 06:00\": expected 'YYYY-MM-DD HH:MM:SS' or 'M/D/YYYY H:MM:SS AM|PM'",
    );
}

#[test]
fn c14_twelve_hour_clock_out_of_range() {
    let f = Files::valid().with(FileKind::Failures, "datetime,machineID,failure\n1/1/2015 13:00:00 PM,1,comp2\n");
    check_error(
        f,
        "PdM_failures.csv: line 2, column 1 'datetime': invalid datetime \"1/1/2015 13:00:00 PM\": hour 13 out of range",
    );
}

#[test]
fn c15_truncated_last_line() {
    let text = format!("{}2015-01-01 08:00:00,2,17", TELEMETRY);
    let f = Files::valid().with(FileKind::Telemetry, text);
    check_error(f.clone(), "PdM_telemetry.csv: line 7: expected 6 fields, found 3");
    check_dropped(f, FileKind::Telemetry, 7, "expected 6 fields, found 3");
}

#[test]
fn c16_an_empty_sensor_value_is_kept_as_missing_by_default() {
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(5, "2015-01-01 06:00:00,2,176.5,,109.3,36.5"));
    let (ds, rep) = f.read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry.len(), 5);
    // Line 5 is machine 2's first reading: row 3 once sorted.
    assert!(ds.telemetry.sensors[1][3].is_nan());
    assert_eq!(ds.telemetry.sensors[0][3], 176.5);
    let rotate = &rep.files["telemetry"].columns["rotate"];
    assert_eq!((rotate.count, rotate.missing), (4, 1));
    assert!(rotate.mean.unwrap().is_finite(), "statistics over the values present");
    assert!(rep.dropped_rows.is_empty());
    // `--on-missing fail` stops at it, whatever the bad-row policy; `drop` leaves the row out.
    let with = |on_missing| ReadOptions { on_missing, ..ReadOptions::new(BadRowPolicy::Drop) };
    let err = f.read_with(&with(MissingPolicy::Fail)).unwrap_err().to_string();
    assert_eq!(err, "PdM_telemetry.csv: line 5, column 4 'rotate': missing value");
    let fail_fail = ReadOptions { on_missing: MissingPolicy::Fail, ..ReadOptions::new(BadRowPolicy::Fail) };
    assert_eq!(f.read_with(&fail_fail).unwrap_err().to_string(), err);
    let drop_under_fail = ReadOptions { on_missing: MissingPolicy::Drop, ..ReadOptions::new(BadRowPolicy::Fail) };
    let (ds, rep) = f.read_with(&drop_under_fail).unwrap();
    assert_eq!(ds.telemetry.len(), 4);
    assert_eq!(rep.dropped_rows.len(), 1);
    assert_eq!((rep.dropped_rows[0].line, rep.dropped_rows[0].reason.as_str()), (5, "missing value"));
    assert_eq!(rep.files["telemetry"].rows_dropped, 1);
}

#[test]
fn c17_missing_markers_in_every_sensor_and_the_missing_report() {
    // Machine 1 (lines 2-4) misses volt on 2 and 3 (a run of two hours), machine 2 rotate,
    // pressure and vibration once each, written as R, SQL and pandas write them.
    let text = telemetry_with(2, "2015-01-01 06:00:00,1,NA,418.5,113.0,45.0");
    let text = text.replace("2015-01-01 07:00:00,1,162.87922289706,", "2015-01-01 07:00:00,1,,");
    let text = text.replace(
        "2015-01-01 06:00:00,2,176.558913393288,423.945999237512,109.373596465566,36.5820860111043",
        "2015-01-01 06:00:00,2,176.5,null,NULL,",
    );
    let (ds, rep) = Files::valid().with(FileKind::Telemetry, text).read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry.len(), 5);
    for (sensor, n) in [("volt", 2), ("rotate", 1), ("pressure", 1), ("vibration", 1)] {
        assert_eq!(rep.files["telemetry"].columns[sensor].missing, n, "{sensor}");
    }
    let m = &rep.missing_values;
    assert_eq!((m.values, m.readings), (5, 3));
    assert_eq!(m.per_machine.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), vec![(1, 2), (2, 3)]);
    let run = m.longest_run.as_ref().unwrap();
    assert_eq!(
        (run.machine, run.sensor.as_str(), run.first.as_str(), run.last.as_str(), run.readings, run.hours),
        (1, "volt", "2015-01-01 06:00:00", "2015-01-01 07:00:00", 2, 2.0)
    );
    // A literal NaN is not a missing marker: it is a bad value.
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(5, "2015-01-01 06:00:00,2,NaN,423.9,109.3,36.5"));
    check_error(f, "PdM_telemetry.csv: line 5, column 3 'volt': non-finite value \"NaN\"");
}

/// A missing key, label or age is a bad row under the policy, kept as missing nowhere.
#[test]
fn c35_missing_keys_labels_and_ages_are_bad_rows() {
    let cases = [
        (FileKind::Telemetry, telemetry_with(5, ",2,176.5,423.9,109.3,36.5"), 5, "column 1 'datetime': missing value"),
        (
            FileKind::Telemetry,
            telemetry_with(5, "2015-01-01 06:00:00,,176.5,423.9,109.3,36.5"),
            5,
            "column 2 'machineID': missing value",
        ),
        (FileKind::Errors, format!("{ERRORS}2015-01-01 09:00:00,1,\n"), 4, "column 3 'errorID': missing value"),
        (FileKind::Errors, format!("{ERRORS},1,error2\n"), 4, "column 1 'datetime': missing value"),
        (FileKind::Maint, format!("{MAINT}2015-01-01 09:00:00,,comp1\n"), 4, "column 2 'machineID': missing value"),
        (FileKind::Maint, format!("{MAINT}2015-01-01 09:00:00,1,NA\n"), 4, "column 3 'comp': missing value (\"NA\")"),
        (FileKind::Failures, format!("{FAILURES}2015-01-01 09:00:00,1,\n"), 3, "column 3 'failure': missing value"),
        (FileKind::Machines, format!("{MACHINES}3,model1,\n"), 4, "column 3 'age': missing value"),
        (FileKind::Machines, format!("{MACHINES}3,,4\n"), 4, "column 2 'model': missing value"),
    ];
    for (kind, text, line, msg) in cases {
        let f = Files::valid().with(kind, text);
        check_error(f.clone(), &format!("{}: line {line}, {msg}", kind.file_name()));
        let reason = msg.split_once(": ").unwrap().1;
        check_dropped(f, kind, line, reason);
    }
}

#[test]
fn c18_unknown_error_id() {
    let f = Files::valid().with(FileKind::Errors, format!("{ERRORS}2015-01-01 07:00:00,2,\"error9\"\n"));
    check_error(
        f.clone(),
        "PdM_errors.csv: line 4, column 3 'errorID': unknown error id \"error9\" (expected one of error1, error2, error3, error4, error5)",
    );
    let (_, rep) = f.read(BadRowPolicy::Drop).unwrap();
    assert_eq!(rep.files["errors"].unknown_labels["error9"], 1);
}

#[test]
fn c19_unknown_component() {
    let f = Files::valid().with(FileKind::Failures, format!("{FAILURES}2015-01-01 08:00:00,2,\"comp7\"\n"));
    check_error(
        f,
        "PdM_failures.csv: line 3, column 3 'failure': unknown component \"comp7\" (expected one of comp1, comp2, comp3, comp4)",
    );
}

#[test]
fn c20_unknown_model() {
    let f = Files::valid().with(FileKind::Machines, "machineID,model,age\n1,model3,18\n2,model9,7\n");
    check_error(
        f,
        "PdM_machines.csv: line 3, column 2 'model': unknown model \"model9\" (expected one of model1, model2, model3, model4)",
    );
}

#[test]
fn c21_conflicting_reading() {
    let f = Files::valid().with(FileKind::Telemetry, format!("{TELEMETRY}2015-01-01 06:00:00,1,1,2,3,4\n"));
    check_error(
        f.clone(),
        "PdM_telemetry.csv: line 7, column 1 'datetime': conflicting reading for machine 1 at 2015-01-01 06:00:00: line 2 has other values",
    );
    check_dropped(
        f.clone(),
        FileKind::Telemetry,
        7,
        "conflicting reading for machine 1 at 2015-01-01 06:00:00: line 2 has other values",
    );
    let (ds, rep) = f.read(BadRowPolicy::Drop).unwrap();
    assert_eq!(ds.telemetry.sensors[0][0], 176.217853015625, "the first reading is kept");
    assert_eq!(rep.files["telemetry"].conflicting_duplicate_rows, 1);
    assert_eq!(rep.files["telemetry"].exact_duplicate_rows, 0);
}

/// The data rows of `text` (after its header), each with its line end.
fn data_lines(text: &str) -> Vec<String> {
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

#[test]
fn c32_exact_duplicates_are_removed_and_counted_in_every_file() {
    let (clean, _) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    // Every file exported twice over, the second copy written differently (unquoted, spaced)
    // but equal in value, plus one more copy of a single row.
    let twice = |text: &str, again: &str| {
        let second: String = data_lines(text).iter().map(|l| l.replace('"', "").replace(',', ", ")).collect();
        format!("{text}{second}{again}")
    };
    let f = Files::valid()
        .with(FileKind::Telemetry, twice(TELEMETRY, &data_lines(TELEMETRY)[2]))
        .with(FileKind::Errors, twice(ERRORS, ""))
        .with(FileKind::Maint, twice(MAINT, ""))
        .with(FileKind::Failures, twice(FAILURES, ""))
        .with(FileKind::Machines, twice(MACHINES, "1,model3,18.0\n"));
    // Under the strict policy too: an exact duplicate is not a bad row.
    let (ds, rep) = f.read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds, clean);
    assert!(rep.dropped_rows.is_empty());
    let t = &rep.files["telemetry"];
    assert_eq!((t.rows_read, t.rows_kept, t.rows_dropped, t.exact_duplicate_rows), (11, 5, 0, 6));
    assert_eq!(t.conflicting_duplicate_rows, 0);
    let first: Vec<(u64, u64)> = t.exact_duplicate_examples.iter().map(|d| (d.line, d.first_line)).collect();
    assert_eq!(first, vec![(7, 2), (8, 3), (9, 4), (10, 5), (11, 6), (12, 4)]);
    for (kind, n) in [("errors", 2), ("maint", 2), ("failures", 1), ("machines", 3)] {
        let r = &rep.files[kind];
        assert_eq!((r.exact_duplicate_rows, r.rows_kept + r.exact_duplicate_rows), (n, r.rows_read), "{kind}");
    }
    assert_eq!(
        rep.files["machines"].exact_duplicate_examples[2],
        pm_core::data::ingest::DuplicateOf { line: 6, first_line: 2 }
    );
}

#[test]
fn c33_only_the_first_exact_duplicates_are_listed() {
    let row = &data_lines(TELEMETRY)[0];
    let text = format!("{TELEMETRY}{}", row.repeat(25));
    let (ds, rep) = Files::valid().with(FileKind::Telemetry, text).read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry.len(), 5);
    let t = &rep.files["telemetry"];
    assert_eq!(t.exact_duplicate_rows, 25);
    let lines: Vec<u64> = t.exact_duplicate_examples.iter().map(|d| d.line).collect();
    assert_eq!(lines, (7..17).collect::<Vec<u64>>());
    assert!(t.exact_duplicate_examples.iter().all(|d| d.first_line == 2));
}

#[test]
fn c22_unknown_machine() {
    let f = Files::valid().with(FileKind::Telemetry, format!("{TELEMETRY}2015-01-01 06:00:00,7,1,2,3,4\n"));
    check_error(f.clone(), "PdM_telemetry.csv: line 7, column 2 'machineID': machine 7 is not in the machines file");
    check_dropped(f, FileKind::Telemetry, 7, "machine 7 is not in the machines file");
}

#[test]
fn c23_machine_defined_twice() {
    let f = Files::valid().with(FileKind::Machines, format!("{MACHINES}1,\"model1\",3\n"));
    check_error(
        f.clone(),
        "PdM_machines.csv: line 4, column 1 'machineID': machine 1 is already defined on line 2, differently",
    );
    check_dropped(f.clone(), FileKind::Machines, 4, "machine 1 is already defined on line 2, differently");
    let (_, rep) = f.read(BadRowPolicy::Drop).unwrap();
    assert_eq!(rep.files["machines"].conflicting_duplicate_rows, 1);
}

#[test]
fn c24_age_outside_its_bounds() {
    for (age, shown) in [("-4", "-4"), ("130.5", "130.5")] {
        let f = Files::valid().with(FileKind::Machines, format!("machineID,model,age\n1,model3,18\n2,model4,{age}\n"));
        let reason = format!("age = {shown} is outside its bounds [0, 100] years (data contract)");
        check_error(f.clone(), &format!("PdM_machines.csv: line 3, column 3 'age': {reason}"));
        check_dropped(f.clone(), FileKind::Machines, 3, &reason);
        let (_, rep) = f.read(BadRowPolicy::Drop).unwrap();
        assert_eq!(rep.files["machines"].columns["age"].out_of_bounds, 1);
    }
}

/// `volt = 1e308` and a negative rotation are bad rows, named with the value and the bound, never
/// data; the bounds are the contract's, so a contract with others moves them.
#[test]
fn c34_a_value_outside_the_contracts_physical_bounds_is_a_bad_row() {
    for (line, row, reason) in [
        (
            3,
            "2015-01-01 07:00:00,1,1e308,402.7,95.4,43.4",
            "volt = 1e308 is outside its physical bounds [0, 1000] V (data contract)",
        ),
        (
            4,
            "2015-01-01 08:00:00,1,170.9,-1,75.2,34.1",
            "rotate = -1 is outside its physical bounds [0, 10000] rpm (data contract)",
        ),
        (
            5,
            "2015-01-01 06:00:00,2,176.5,423.9,1000.5,36.5",
            "pressure = 1000.5 is outside its physical bounds [0, 1000] (data contract)",
        ),
    ] {
        let f = Files::valid().with(FileKind::Telemetry, telemetry_with(line, row));
        let column = ["volt", "rotate", "pressure"][line - 3];
        check_error(f.clone(), &format!("PdM_telemetry.csv: line {line}, column {line} '{column}': {reason}"));
        check_dropped(f.clone(), FileKind::Telemetry, line as u64, reason);
        let (_, rep) = f.read(BadRowPolicy::Drop).unwrap();
        assert_eq!(rep.files["telemetry"].columns[column].out_of_bounds, 1);
    }
    // The bounds are inclusive, and they are the contract's.
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(3, "2015-01-01 07:00:00,1,1000,0,95.4,43.4"));
    assert!(f.read(BadRowPolicy::Fail).is_ok());
    let mut contract = Contract::azure_pdm();
    contract.sensors[0].max = Some(999.0);
    contract.sensors[1].min = None;
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(3, "2015-01-01 07:00:00,1,170,-5,95.4,43.4"));
    assert!(f.read_contract(&contract, BadRowPolicy::Fail).is_ok(), "rotate has no lower bound here");
    let f = Files::valid().with(FileKind::Telemetry, telemetry_with(3, "2015-01-01 07:00:00,1,1000,5,95.4,43.4"));
    let err = f.read_contract(&contract, BadRowPolicy::Fail).unwrap_err().to_string();
    assert!(err.ends_with("volt = 1000 is outside its physical bounds [0, 999] V (data contract)"), "{err}");
}

#[test]
fn c25_unterminated_quote() {
    let f = Files::valid()
        .with(FileKind::Errors, "\"datetime\",\"machineID\",\"errorID\"\n2015-01-01 07:00:00,1,\"error1\n");
    check_error(f, "PdM_errors.csv: line 2, column 3 'errorID': unterminated quoted field");
}

#[test]
fn c26_quote_inside_unquoted_field() {
    let f =
        Files::valid().with(FileKind::Telemetry, telemetry_with(2, "2015-01-01 06:00:00,1,17\"6.2,418.5,113.0,45.0"));
    check_error(f, "PdM_telemetry.csv: line 2, column 3 'volt': quote inside an unquoted field");
}

#[test]
fn c27_utf16() {
    let text: Vec<u8> = [0xFF, 0xFE].into_iter().chain(ERRORS.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    check_error(
        Files::valid().with(FileKind::Errors, text),
        "PdM_errors.csv: the file is UTF-16 encoded; save it as UTF-8",
    );
}

#[test]
fn c28_no_header() {
    let body: String = TELEMETRY.lines().skip(1).map(|l| format!("{l}\n")).collect();
    check_error(
        Files::valid().with(FileKind::Telemetry, body),
        "PdM_telemetry.csv: line 1: line 1 is not a header; expected the columns datetime, machineID, volt, rotate, pressure, vibration",
    );
}

#[test]
fn c29_an_event_repeated_is_an_exact_duplicate() {
    let f = Files::valid().with(FileKind::Errors, format!("{ERRORS}2015-01-01 07:00:00,1,\"error1\"\n"));
    let (ds, rep) = f.read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.errors.len(), 2);
    let e = &rep.files["errors"];
    assert_eq!((e.exact_duplicate_rows, e.rows_dropped), (1, 0));
    assert_eq!(e.exact_duplicate_examples, vec![pm_core::data::ingest::DuplicateOf { line: 4, first_line: 2 }]);
    // Another error at the same time is another event, not a duplicate.
    let f = Files::valid().with(FileKind::Errors, format!("{ERRORS}2015-01-01 07:00:00,1,\"error2\"\n"));
    assert_eq!(f.read(BadRowPolicy::Fail).unwrap().0.errors.len(), 3);
}

#[test]
fn c30_text_after_closing_quote() {
    let f = Files::valid().with(FileKind::Machines, "machineID,model,age\n1,\"model3\"x,18\n");
    check_error(f, "PdM_machines.csv: line 2, column 2 'model': unexpected 'x' after closing quote");
}

#[test]
fn c31_missing_file() {
    let files: Vec<InputFile<'_>> = vec![InputFile::csv(FileKind::Machines, "m.csv", MACHINES.as_bytes())];
    let err = read_dataset(&files, &Contract::azure_pdm(), &ReadOptions::new(BadRowPolicy::Fail)).unwrap_err();
    assert_eq!(err.to_string(), "PdM_telemetry.csv: file not provided");
}

#[test]
fn drop_policy_keeps_every_good_row_and_accounts_for_every_bad_one() {
    let text = format!(
        "{}2015-01-01 09:00:00,1,x,1,1,1\n2015-01-01 08:00:00,2,1,2,3\n2015-01-01 09:00:00,9,1,2,3,4\n",
        TELEMETRY
    );
    let (ds, rep) = Files::valid().with(FileKind::Telemetry, text).read(BadRowPolicy::Drop).unwrap();
    let (clean, _) = Files::valid().read(BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry, clean.telemetry);
    let t = &rep.files["telemetry"];
    assert_eq!((t.rows_read, t.rows_kept, t.rows_dropped), (8, 5, 3));
    let lines: Vec<u64> = rep.dropped_rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![7, 8, 9]);
    assert_eq!(t.unknown_machine_rows, 1);
    // The report is a JSON artifact.
    let json = serde_json::to_string(&rep).unwrap();
    let back: ValidationReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, rep);
}

/// A telemetry file big enough to be read in parallel chunks (> 1 MiB), with a BOM and CRLF line
/// ends, and a bad row of each kind every 997 lines: every dropped row is reported with its own
/// line number and exactly its text, wherever its chunk starts.
#[test]
fn dropped_rows_in_a_chunked_file_keep_their_lines_and_text() {
    let mut text = String::from("\u{feff}datetime,machineID,volt,rotate,pressure,vibration\r\n");
    let mut expected = Vec::new();
    let hours = 16_000u64;
    for h in 0..hours {
        let line = h + 2;
        let time = pm_core::data::time::Timestamp(1_420_092_000 + 3600 * h as i64).to_string();
        let row = match (line % 997 == 0).then_some(line / 997 % 3) {
            Some(0) => format!("{time},1,volt?,418.5,113.07,45.08"),
            Some(1) => format!("{time},1,176.2,418.5,113.07"),
            Some(_) => format!("{time},1,\"176.2,418.5,113.07,45.08"),
            None => format!("{time},1,176.217853015625,418.504078221616,113.077935462083,45.0876857639276"),
        };
        if line % 997 == 0 {
            expected.push((line, row.clone()));
        }
        text.push_str(&row);
        text.push_str("\r\n");
    }
    assert!(text.len() > 1 << 20, "the file must be chunked");
    let (ds, rep) = Files::valid().with(FileKind::Telemetry, text).read(BadRowPolicy::Drop).unwrap();
    let got: Vec<(u64, String)> = rep.dropped_rows.iter().map(|r| (r.line, r.raw.clone())).collect();
    assert_eq!(got, expected);
    assert_eq!(ds.telemetry.len() as u64, hours - expected.len() as u64);
}

/// The fixture under another fleet's names: `contract.yaml`'s columns, sensors and vocabularies.
fn renamed(text: &str) -> String {
    let mut t = text.to_string();
    for (from, to) in [
        ("\"datetime\"", "\"ts\""),
        ("\"machineID\"", "\"unit\""),
        ("\"errorID\"", "\"alarm\""),
        ("\"comp\"", "\"part\""),
        ("\"failure\"", "\"part\""),
        ("\"model\"", "\"type\""),
        ("\"age\"", "\"years\""),
        ("\"volt\"", "\"p_out\""),
        ("\"rotate\"", "\"t_out\""),
        ("\"pressure\"", "\"amps\""),
        ("\"vibration\"", "\"vib\""),
        ("error", "alarm_"),
        ("comp", "part_"),
        ("model", "type_"),
    ] {
        t = t.replace(from, to);
    }
    t
}

fn renamed_contract() -> Contract {
    let azure = Contract::azure_pdm();
    let mut yaml = String::from(
        "name: renamed\ncolumns: {datetime: ts, machine_id: unit, error: alarm, maint_component: part, failure_component: part, model: type, age: years}\n",
    );
    yaml.push_str("sensors: [p_out, t_out, amps, vib]\n");
    let list = |prefix: &str, n: usize| (1..=n).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>().join(", ");
    yaml.push_str(&format!("error_types: [{}]\n", list("alarm_", azure.error_types.len())));
    yaml.push_str(&format!("components: [{}]\n", list("part_", azure.components.len())));
    yaml.push_str(&format!("models: [{}]\n", list("type_", azure.models.len())));
    Contract::parse(yaml.as_bytes(), "renamed.yaml").unwrap()
}

#[test]
fn c36_a_contract_with_other_names_reads_the_same_tables() {
    let azure = Files::valid().read(BadRowPolicy::Fail).unwrap().0;
    let contract = renamed_contract();
    let f = Files { texts: [TELEMETRY, ERRORS, MAINT, FAILURES, MACHINES].map(|s| renamed(s).into_bytes()) };
    let (ds, rep) = f.read_contract(&contract, BadRowPolicy::Fail).unwrap();
    assert_eq!(
        (&ds.telemetry, &ds.errors, &ds.maint, &ds.failures, &ds.machines),
        (&azure.telemetry, &azure.errors, &azure.maint, &azure.failures, &azure.machines)
    );
    assert_eq!(ds.contract, contract);
    assert!(rep.files.values().all(|r| r.ignored_columns.is_empty()));
    // The Azure files under the renamed contract: the contract's names are looked for.
    let err = Files::valid().read_contract(&contract, BadRowPolicy::Fail).unwrap_err().to_string();
    assert_eq!(err, "PdM_machines.csv: line 1: line 1 is not a header; expected the columns unit, type, years");
    // A label outside the renamed vocabulary names the contract's column.
    let f = f.clone().with(FileKind::Errors, "ts,unit,alarm\n2015-01-01 07:00:00,1,error1\n");
    let err = f.read_contract(&contract, BadRowPolicy::Fail).unwrap_err().to_string();
    assert!(err.starts_with("PdM_errors.csv: line 2, column 3 'alarm': "), "{err}");
}

#[test]
fn c37_the_contracts_datetime_forms_and_cadence() {
    let mut iso_only = Contract::azure_pdm();
    iso_only.datetime_forms = vec![pm_core::data::contract::DatetimeForm::Iso];
    let f = Files::valid().with(FileKind::Maint, "datetime,machineID,comp\n6/1/2014 6:00:00 AM,1,comp2\n");
    assert!(f.read(BadRowPolicy::Fail).is_ok(), "both forms by default");
    let err = f.read_contract(&iso_only, BadRowPolicy::Fail).unwrap_err().to_string();
    assert_eq!(
        err,
        "PdM_maint.csv: line 2, column 1 'datetime': datetime \"6/1/2014 6:00:00 AM\" is in the us form; the data contract accepts only the iso form"
    );
    // Ten-minute readings: gaps are measured against the contract's cadence.
    let mut ten = Contract::azure_pdm();
    ten.cadence = pm_core::data::contract::Cadence::parse("10m").unwrap();
    let text = "datetime,machineID,volt,rotate,pressure,vibration\n2015-01-01 06:00:00,1,1,2,3,4\n\
                2015-01-01 06:10:00,1,1,2,3,4\n2015-01-01 06:40:00,1,1,2,3,4\n2015-01-01 06:45:00,1,1,2,3,4\n\
                2015-01-01 06:00:00,2,1,2,3,4\n";
    let (_, rep) = Files::valid().with(FileKind::Telemetry, text).read_contract(&ten, BadRowPolicy::Fail).unwrap();
    assert_eq!(rep.gaps.cadence_secs, 600);
    assert_eq!((rep.gaps.gaps, rep.gaps.missing_readings, rep.gaps.off_cadence_steps), (1, 2, 1));
}

/// A table's text (how pm-ingest gives a Parquet file: its header is line 0): every message and
/// report entry numbers its rows, not its lines.
#[test]
fn c38_a_tables_rows_are_numbered_as_rows() {
    use pm_core::data::ingest::Numbering;
    let texts = [TELEMETRY, ERRORS, MAINT, FAILURES, MACHINES].map(|s| s.as_bytes().to_vec());
    let read = |texts: &[Vec<u8>; 5], policy| {
        let files: Vec<InputFile<'_>> = FileKind::ALL
            .iter()
            .map(|&k| InputFile { kind: k, name: k.file_name(), data: &texts[k as usize], numbering: Numbering::Row })
            .collect();
        read_dataset(&files, &Contract::azure_pdm(), &ReadOptions::new(policy))
    };
    let (ds, rep) = read(&texts, BadRowPolicy::Fail).unwrap();
    assert_eq!(ds.telemetry.len(), 5);
    assert!(rep.files.values().all(|f| f.numbering == Numbering::Row));
    let mut bad = texts.clone();
    bad[FileKind::Telemetry as usize] = telemetry_with(3, "2015-01-01 06:00:00,1,1,2,3,4").into_bytes();
    let err = read(&bad, BadRowPolicy::Fail).unwrap_err().to_string();
    assert_eq!(
        err,
        "PdM_telemetry.csv: row 2, column 1 'datetime': conflicting reading for machine 1 at 2015-01-01 06:00:00: row 1 has other values"
    );
    let (_, rep) = read(&bad, BadRowPolicy::Drop).unwrap();
    assert_eq!((rep.dropped_rows[0].line, rep.dropped_rows[0].numbering), (2, Numbering::Row));
    let mut no_col = texts.clone();
    no_col[FileKind::Maint as usize] = b"datetime,machineID\n2015-01-01 06:00:00,1\n".to_vec();
    let err = read(&no_col, BadRowPolicy::Fail).unwrap_err().to_string();
    assert_eq!(
        err, "PdM_maint.csv: missing column 'comp'; expected datetime, machineID, comp",
        "no row for the header"
    );
    let mut twice = texts.clone();
    twice[FileKind::Machines as usize] = b"machineID,model,age\n1,model3,18\n2,model4,7\n1,model1,3\n".to_vec();
    let err = read(&twice, BadRowPolicy::Fail).unwrap_err().to_string();
    assert_eq!(
        err,
        "PdM_machines.csv: row 3, column 1 'machineID': machine 1 is already defined on row 1, differently"
    );
}
