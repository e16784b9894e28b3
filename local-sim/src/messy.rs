//! Makes a generated data set look like a real fleet's export: sensor values left empty, rows
//! exported twice, rows out of order (`pm-datagen --missing-rate --dup-rate --shuffle`).
//!
//! Works on the CSV text the writer produced, so what it makes is exactly what a reader of the
//! files sees. Deterministic for a seed, like the generator.

use pm_core::data::contract::{Contract, FileKind};
use pm_core::rng::{Rng, derive_seed};

/// How messy to make the files.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mess {
    /// Chance that each telemetry sensor value is written empty.
    pub missing_rate: f64,
    /// Chance that each data row (of every file) is written a second time, unchanged.
    pub dup_rate: f64,
    /// Write the data rows of every file in a random order.
    pub shuffle: bool,
    pub seed: u64,
}

impl Mess {
    /// No change at all.
    pub fn none(seed: u64) -> Self {
        Mess { missing_rate: 0.0, dup_rate: 0.0, shuffle: false, seed }
    }

    /// Whether the files come out as they went in.
    pub fn is_none(&self) -> bool {
        self.missing_rate == 0.0 && self.dup_rate == 0.0 && !self.shuffle
    }

    /// Checks the rates (each in `[0, 1]`), naming the flag of a bad one.
    pub fn check(&self) -> Result<(), String> {
        for (flag, r) in [("--missing-rate", self.missing_rate), ("--dup-rate", self.dup_rate)] {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("{flag} must be between 0 and 1, got {r}"));
            }
        }
        Ok(())
    }
}

/// What [`apply`] did to one file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessCount {
    pub values_emptied: u64,
    pub rows_duplicated: u64,
}

/// The field indices of `kind`'s file, as `pm_core::data::csv::write` lays it out under
/// `contract`, that hold sensor values: the [`apply`] argument (datetime and machine id come first).
pub fn sensor_columns(contract: &Contract, kind: FileKind) -> Vec<usize> {
    if kind == FileKind::Telemetry { (2..2 + contract.sensors.len()).collect() } else { Vec::new() }
}

/// Rewrites one CSV file (header first, data rows after). `sensor_columns` are the 0-based field
/// indices whose values may be emptied (none for event and machine files); `stream` keeps the
/// files' random choices independent.
pub fn apply(text: &[u8], sensor_columns: &[usize], mess: &Mess, stream: u64) -> (Vec<u8>, MessCount) {
    let mut count = MessCount::default();
    if mess.is_none() {
        return (text.to_vec(), count);
    }
    let mut rng = Rng::new(derive_seed(mess.seed, 0x6d65_7373 ^ stream));
    let mut lines = text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let Some(header) = lines.next() else { return (text.to_vec(), count) };
    let mut rows: Vec<Vec<u8>> = Vec::new();
    for line in lines {
        let row = if mess.missing_rate > 0.0 && !sensor_columns.is_empty() {
            let mut out = Vec::with_capacity(line.len());
            for (i, field) in line.split(|&b| b == b',').enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if sensor_columns.contains(&i) && rng.chance(mess.missing_rate) {
                    count.values_emptied += 1;
                } else {
                    out.extend_from_slice(field);
                }
            }
            out
        } else {
            line.to_vec()
        };
        if mess.dup_rate > 0.0 && rng.chance(mess.dup_rate) {
            count.rows_duplicated += 1;
            rows.push(row.clone());
        }
        rows.push(row);
    }
    if mess.shuffle {
        rng.shuffle(&mut rows);
    }
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    out.extend_from_slice(header);
    out.push(b'\n');
    for row in rows {
        out.extend_from_slice(&row);
        out.push(b'\n');
    }
    (out, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"t,m,a,b\n1,1,10,20\n2,1,11,21\n3,1,12,22\n4,1,13,23\n";

    fn rows(text: &[u8]) -> Vec<String> {
        String::from_utf8(text.to_vec()).unwrap().lines().skip(1).map(str::to_string).collect()
    }

    #[test]
    fn no_mess_is_the_identity() {
        assert_eq!(apply(TEXT, &[2, 3], &Mess::none(1), 0), (TEXT.to_vec(), MessCount::default()));
    }

    #[test]
    fn every_value_missing_empties_only_the_sensor_columns() {
        let (out, n) = apply(TEXT, &[2, 3], &Mess { missing_rate: 1.0, ..Mess::none(1) }, 0);
        assert_eq!(rows(&out), ["1,1,,", "2,1,,", "3,1,,", "4,1,,"]);
        assert_eq!(n, MessCount { values_emptied: 8, rows_duplicated: 0 });
    }

    #[test]
    fn duplicates_are_exact_copies_and_shuffle_keeps_every_row() {
        let mess = Mess { dup_rate: 1.0, shuffle: true, ..Mess::none(7) };
        let (out, n) = apply(TEXT, &[], &mess, 0);
        assert_eq!(n.rows_duplicated, 4);
        assert!(out.starts_with(b"t,m,a,b\n"));
        let mut got = rows(&out);
        assert_ne!(got, {
            let mut s = got.clone();
            s.sort();
            s
        });
        got.sort();
        let mut want: Vec<String> = rows(TEXT).into_iter().flat_map(|r| [r.clone(), r]).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(apply(TEXT, &[], &mess, 0).0, out, "deterministic for a seed");
    }

    #[test]
    fn rates_outside_zero_to_one_are_refused() {
        assert_eq!(
            Mess { missing_rate: 1.5, ..Mess::none(0) }.check(),
            Err("--missing-rate must be between 0 and 1, got 1.5".into())
        );
        assert!(Mess { dup_rate: f64::NAN, ..Mess::none(0) }.check().is_err());
        assert!(Mess { missing_rate: 0.02, dup_rate: 0.005, shuffle: true, seed: 0 }.check().is_ok());
    }
}
