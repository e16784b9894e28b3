//! A small, strict CSV tokenizer for the data contract's files.
//!
//! Accepts what real copies of the data set contain: quoted and unquoted fields (`""` escapes a
//! quote), `\n` or `\r\n` line ends, a UTF-8 byte-order mark, a missing final newline, blank
//! lines (skipped and counted). Refuses, with the line and column, what would make a value
//! ambiguous: a quote inside an unquoted field, text after a closing quote, a quoted field
//! left open at the end of its line (no field of the contract spans lines), UTF-16 text.

use std::borrow::Cow;

/// Where a syntax problem is and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based physical line.
    pub line: u64,
    /// 1-based field index.
    pub column: usize,
    pub message: String,
}

/// Problems with the file as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodingError {
    Utf16,
}

/// Iterates the records of a CSV text.
pub struct Tokenizer<'a> {
    data: &'a [u8],
    pos: usize,
    /// Line number of the next line to read (1-based).
    line: u64,
    /// Byte offset of the last line read (the one a record or a syntax error is about).
    last_start: usize,
    /// Blank lines skipped so far.
    pub blank_lines: u64,
}

/// One record: its line, where it starts, and its raw bytes (without the line end).
#[derive(Debug)]
pub struct Record<'a> {
    pub line: u64,
    /// Byte offset of the record's first byte in the tokenized text.
    pub start: usize,
    pub raw: &'a [u8],
}

impl<'a> Tokenizer<'a> {
    /// Starts at the beginning of `data`, skipping a UTF-8 byte-order mark.
    pub fn new(data: &'a [u8]) -> Result<Self, EncodingError> {
        if data.starts_with(&[0xFF, 0xFE]) || data.starts_with(&[0xFE, 0xFF]) {
            return Err(EncodingError::Utf16);
        }
        let pos = if data.starts_with(&[0xEF, 0xBB, 0xBF]) { 3 } else { 0 };
        Ok(Tokenizer { data, pos, line: 1, last_start: pos, blank_lines: 0 })
    }

    /// Starts in the middle of a text whose first line is `first_line` (for parallel chunks).
    pub fn at_line(data: &'a [u8], first_line: u64) -> Self {
        Tokenizer { data, pos: 0, line: first_line, last_start: 0, blank_lines: 0 }
    }

    /// Number of the next line to be read.
    pub fn next_line(&self) -> u64 {
        self.line
    }

    /// Byte offset of the line the last record (or syntax error) came from: with [`line_at`], its
    /// text in O(its length), whatever the size of the file.
    pub fn last_start(&self) -> usize {
        self.last_start
    }

    /// Reads the next non-blank record into `fields` (cleared first).
    /// Returns `None` at the end of the text.
    pub fn next_record(&mut self, fields: &mut Vec<Cow<'a, [u8]>>) -> Option<Result<Record<'a>, SyntaxError>> {
        loop {
            if self.pos >= self.data.len() {
                return None;
            }
            let start = self.pos;
            let rest = &self.data[start..];
            let (len, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (i, start + i + 1),
                None => (rest.len(), self.data.len()),
            };
            let mut raw = &rest[..len];
            if let [body @ .., b'\r'] = raw {
                raw = body;
            }
            let line = self.line;
            self.line += 1;
            self.pos = next;
            if raw.iter().all(|&b| b == b' ' || b == b'\t') {
                self.blank_lines += 1;
                continue;
            }
            self.last_start = start;
            fields.clear();
            return Some(split_fields(raw, line, fields).map(|()| Record { line, start, raw }));
        }
    }
}

fn split_fields<'a>(raw: &'a [u8], line: u64, fields: &mut Vec<Cow<'a, [u8]>>) -> Result<(), SyntaxError> {
    let err = |column: usize, message: String| SyntaxError { line, column, message };
    let mut i = 0;
    loop {
        let column = fields.len() + 1;
        // Leading spaces before a field are not part of it.
        while i < raw.len() && raw[i] == b' ' {
            i += 1;
        }
        if i < raw.len() && raw[i] == b'"' {
            // Quoted field.
            let mut j = i + 1;
            let mut owned: Option<Vec<u8>> = None;
            let mut seg_start = j;
            loop {
                match raw[j..].iter().position(|&b| b == b'"') {
                    None => {
                        return Err(err(column, "unterminated quoted field".to_string()));
                    }
                    Some(k) => {
                        let q = j + k;
                        if raw.get(q + 1) == Some(&b'"') {
                            let buf = owned.get_or_insert_with(Vec::new);
                            buf.extend_from_slice(&raw[seg_start..=q]);
                            j = q + 2;
                            seg_start = j;
                        } else {
                            let value = match owned.take() {
                                Some(mut buf) => {
                                    buf.extend_from_slice(&raw[seg_start..q]);
                                    Cow::Owned(buf)
                                }
                                None => Cow::Borrowed(&raw[seg_start..q]),
                            };
                            fields.push(value);
                            i = q + 1;
                            break;
                        }
                    }
                }
            }
            while i < raw.len() && raw[i] == b' ' {
                i += 1;
            }
            match raw.get(i) {
                None => return Ok(()),
                Some(b',') => i += 1,
                Some(&c) => {
                    return Err(err(column, format!("unexpected {} after closing quote", show_byte(c))));
                }
            }
        } else {
            let end = raw[i..].iter().position(|&b| b == b',').map_or(raw.len(), |k| i + k);
            let mut value = &raw[i..end];
            while let [body @ .., b' '] = value {
                value = body;
            }
            if value.contains(&b'"') {
                return Err(err(column, "quote inside an unquoted field".to_string()));
            }
            fields.push(Cow::Borrowed(value));
            if end == raw.len() {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

/// The line of `data` that starts at byte `start`, without its line end.
pub fn line_at(data: &[u8], start: usize) -> &[u8] {
    let rest = data.get(start..).unwrap_or_default();
    let line = rest.iter().position(|&b| b == b'\n').map_or(rest, |k| &rest[..k]);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn show_byte(c: u8) -> String {
    if c.is_ascii_graphic() { format!("'{}'", c as char) } else { format!("byte 0x{c:02X}") }
}

/// Shows a field value in an error message: quoted, escaped, cut to 40 characters.
pub fn show_value(v: &[u8]) -> String {
    format!("{:?}", show_raw(v))
}

/// A field value as the file writes it, cut to 40 characters: for values known to be plain (a
/// number that parsed: `1e308`, not its 309 digits).
pub fn show_raw(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// Splits `data` into about `n` chunks that start at line starts, each with its first line number.
/// The first chunk starts at byte 0. Used to tokenize big files on several cores.
pub fn line_chunks(data: &[u8], n: usize) -> Vec<(usize, usize)> {
    let n = n.max(1);
    let target = data.len() / n + 1;
    let mut bounds = vec![0];
    let mut pos = 0;
    while pos + target < data.len() {
        let probe = pos + target;
        match data[probe..].iter().position(|&b| b == b'\n') {
            Some(k) if probe + k + 1 < data.len() => {
                pos = probe + k + 1;
                bounds.push(pos);
            }
            _ => break,
        }
    }
    bounds.push(data.len());
    bounds.windows(2).map(|w| (w[0], w[1])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(text: &str) -> Vec<Result<(u64, Vec<String>), SyntaxError>> {
        let mut t = Tokenizer::new(text.as_bytes()).unwrap();
        let mut fields = Vec::new();
        let mut out = Vec::new();
        while let Some(r) = t.next_record(&mut fields) {
            out.push(r.map(|rec| (rec.line, fields.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect())));
        }
        out
    }

    fn ok(line: u64, f: &[&str]) -> Result<(u64, Vec<String>), SyntaxError> {
        Ok((line, f.iter().map(|s| s.to_string()).collect()))
    }

    #[test]
    fn every_record_and_syntax_error_knows_where_its_line_starts() {
        let text = "\u{feff}a,b\r\n\r\n1,\"2\r\n3,4";
        let mut t = Tokenizer::new(text.as_bytes()).unwrap();
        let mut fields = Vec::new();
        let mut starts = Vec::new();
        while let Some(r) = t.next_record(&mut fields) {
            let start = r.as_ref().map_or(t.last_start(), |rec| rec.start);
            starts.push((start, String::from_utf8_lossy(line_at(text.as_bytes(), start)).into_owned()));
        }
        let want = [(3, "a,b"), (10, "1,\"2"), (16, "3,4")].map(|(s, l)| (s, l.to_string()));
        assert_eq!(starts, want);
        assert_eq!(line_at(b"x\n", 9), b"", "past the end: empty, no panic");
    }

    #[test]
    fn quoted_unquoted_crlf_bom_and_blank_lines() {
        let text = "\u{feff}\"datetime\",\"machineID\"\r\n2015-01-01 06:00:00,1\r\n\r\n \"a\"\"b\" , 2 \n\"\",\n";
        assert_eq!(
            records(text),
            vec![
                ok(1, &["datetime", "machineID"]),
                ok(2, &["2015-01-01 06:00:00", "1"]),
                ok(4, &["a\"b", "2"]),
                ok(5, &["", ""]),
            ]
        );
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = |text: &str| records(text).into_iter().find_map(Result::err).unwrap();
        assert_eq!(e("a,b\n1,\"2\n"), SyntaxError { line: 2, column: 2, message: "unterminated quoted field".into() });
        assert_eq!(
            e("a,b\n1,\"2\"x\n"),
            SyntaxError { line: 2, column: 2, message: "unexpected 'x' after closing quote".into() }
        );
        assert_eq!(
            e("a,b\n1,2\"\n"),
            SyntaxError { line: 2, column: 2, message: "quote inside an unquoted field".into() }
        );
    }

    #[test]
    fn utf16_is_refused() {
        assert_eq!(Tokenizer::new(&[0xFF, 0xFE, b'a']).err(), Some(EncodingError::Utf16));
    }

    #[test]
    fn chunks_cover_the_text_at_line_starts() {
        let text: String = (0..1000).map(|i| format!("{i},x\n")).collect();
        let chunks = line_chunks(text.as_bytes(), 7);
        assert!(chunks.len() >= 2);
        assert_eq!(chunks[0].0, 0);
        assert_eq!(chunks.last().unwrap().1, text.len());
        for w in chunks.windows(2) {
            assert_eq!(w[0].1, w[1].0);
            assert_eq!(text.as_bytes()[w[1].0 - 1], b'\n');
        }
    }
}

/// Writing tables in the format of the original distribution: R-style CSV with a quoted header,
/// quoted strings, unquoted numbers and datetimes, `\n` line ends, 15 significant digits.
pub mod write {
    use crate::data::contract::{Dataset, FileKind};
    use crate::data::time::Timestamp;
    use rayon::prelude::*;
    use std::fmt::Write as _;

    /// Formats `x` with 15 significant digits and no trailing zeros, as R's `write.csv` does.
    pub fn push_f64(out: &mut String, x: f64) {
        if x == 0.0 || !x.is_finite() {
            let _ = write!(out, "{x}");
            return;
        }
        let int_digits = x.abs().log10().floor() as i32 + 1;
        let decimals = (15 - int_digits).clamp(0, 17) as usize;
        let start = out.len();
        let _ = write!(out, "{x:.decimals$}");
        if out[start..].contains('.') {
            let trimmed = out.trim_end_matches('0').trim_end_matches('.').len();
            out.truncate(trimmed);
        }
    }

    fn header(ds: &Dataset, kind: FileKind) -> String {
        let cols = ds.contract.columns(kind);
        let mut h = cols.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(",");
        h.push('\n');
        h
    }

    /// The file of `kind` as bytes.
    pub fn file(ds: &Dataset, kind: FileKind) -> Vec<u8> {
        let mut out = header(ds, kind);
        match kind {
            FileKind::Telemetry => {
                let t = &ds.telemetry;
                let chunk = 16_384;
                let parts: Vec<String> = (0..t.len().div_ceil(chunk))
                    .into_par_iter()
                    .map(|c| {
                        let mut s = String::with_capacity(chunk * 90);
                        for i in c * chunk..((c + 1) * chunk).min(t.len()) {
                            let _ = write!(s, "{},{}", Timestamp(t.time[i]), t.machine[i]);
                            for col in &t.sensors {
                                s.push(',');
                                push_f64(&mut s, col[i]);
                            }
                            s.push('\n');
                        }
                        s
                    })
                    .collect();
                for p in parts {
                    out.push_str(&p);
                }
            }
            FileKind::Errors | FileKind::Maint | FileKind::Failures => {
                let vocab = ds.contract.vocabulary(kind);
                if let Some(ev) = ds.events(kind) {
                    for i in 0..ev.len() {
                        let label = vocab.get(usize::from(ev.kind[i])).map_or("", String::as_str);
                        let _ = writeln!(out, "{},{},\"{label}\"", Timestamp(ev.time[i]), ev.machine[i]);
                    }
                }
            }
            FileKind::Machines => {
                let m = &ds.machines;
                for i in 0..m.len() {
                    let model = ds.contract.models.get(usize::from(m.model[i])).map_or("", String::as_str);
                    let _ = write!(out, "{},\"{model}\",", m.id[i]);
                    push_f64(&mut out, m.age[i]);
                    out.push('\n');
                }
            }
        }
        out.into_bytes()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn fifteen_significant_digits_like_r() {
            let f = |x: f64| {
                let mut s = String::new();
                super::push_f64(&mut s, x);
                s
            };
            assert_eq!(f(176.217853015625), "176.217853015625");
            assert_eq!(f(45.08768576392761), "45.0876857639276");
            assert_eq!(f(18.0), "18");
            assert_eq!(f(0.5), "0.5");
            assert_eq!(f(-3.25), "-3.25");
            assert_eq!(f(0.0), "0");
        }
    }
}
