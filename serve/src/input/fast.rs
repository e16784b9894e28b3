//! The fast path of [`Vocab::predict_request`]: one pass over the body's bytes by a scanner of
//! the request's own grammar, building no `serde_json::Value` tree (no map nodes, no key strings,
//! no boxed numbers), whose building and dropping took most of a window request's time
//! (docs/decisions/serving-window-mode.md; `serve/examples/window-cost.rs` measures it).
//!
//! It accepts only requests that are valid, and yields for them exactly what the `Value` path
//! yields, bit for bit (a property test compares the two over valid and invalid bodies).
//! Anything else — JSON it does not need to understand (escapes, non-ASCII text), broken JSON, an
//! unknown or repeated field, both spellings of a field, a value of the wrong type or out of
//! bounds, a Vertex `instances` body — makes it give up, and the `Value` path, which words every
//! refusal with the field's path, parses the body again. So it decides nothing on its own.
//!
//! Numbers come out as serde_json (with the workspace's `float_roundtrip` feature) reads them into
//! a `Value` and `Value::as_f64` converts them: see [`Number::value`].

use std::collections::HashMap;

use pm_core::data::time::Timestamp;

use super::{Event, MachineMeta, PredictRequest, Reading, Source, Values, Vocab, Window};

/// Parses a `/predict` body; `None` when the body is not a valid request of the native shape.
pub fn predict_request(vocab: &Vocab, body: &[u8]) -> Option<PredictRequest> {
    whole(vocab, body, |s| request(vocab, s))
}

/// Parses a list body `{"<field>": [<request>, ...]}`, `field` one of `fields`: `None` unless
/// the list is not empty and every item is a valid request of the native shape (then the
/// `Value` path answers, item by item, and words what is wrong with each).
pub fn request_list(
    vocab: &Vocab,
    body: &[u8],
    fields: &[&'static str],
) -> Option<(&'static str, Vec<PredictRequest>)> {
    whole(vocab, body, |s| {
        if !s.eat(b'{') {
            return None;
        }
        let name = s.string()?;
        let field = *fields.iter().find(|f| f.as_bytes() == name)?;
        if !s.eat(b':') {
            return None;
        }
        // The readings of every item's history are matched against the last layout read,
        // across items too: instances are written alike.
        let items = s.array(|s| request(vocab, s))?;
        (!items.is_empty() && s.eat(b'}')).then_some((field, items))
    })
}

/// What `read` reads from the body, when nothing but whitespace follows it.
fn whole<T>(vocab: &Vocab, body: &[u8], read: impl FnOnce(&mut Scan<'_>) -> Option<T>) -> Option<T> {
    if vocab.sensors.len() > MAX_SENSORS {
        return None;
    }
    let mut s = Scan { b: body, i: 0, day: None, layout: None };
    let out = read(&mut s)?;
    s.ws();
    (s.i == body.len()).then_some(out)
}

/// Sensors are tracked in a bit set; a contract with more takes the `Value` path.
const MAX_SENSORS: usize = 64 - SENSOR as usize;

// Field codes: one bit each in a `seen` set, so that a repeated field (or both spellings of
// one) gives up.
const MACHINE: u8 = 0;
const DATETIME: u8 = 1;
const HISTORY: u8 = 2;
const RETURN_FEATURES: u8 = 3;
const READINGS: u8 = 4;
const ERRORS: u8 = 5;
const MAINT: u8 = 6;
const META: u8 = 7;
const ERROR_ID: u8 = 8;
const COMP: u8 = 9;
const MODEL: u8 = 10;
const AGE: u8 = 11;
/// Sensor `i` of the contract is `SENSOR + i`.
const SENSOR: u8 = 12;
/// Every sensor's bit.
const SENSORS: u64 = !0u64 << SENSOR;

fn bits(codes: &[u8]) -> u64 {
    codes.iter().fold(0, |b, &c| b | (1 << c))
}

/// The code of a field name; sensor names only when `sensors`.
fn code(vocab: &Vocab, name: &[u8], sensors: bool) -> Option<u8> {
    Some(match name {
        b"machineID" | b"machine_id" => MACHINE,
        b"datetime" => DATETIME,
        b"history" => HISTORY,
        b"return_features" => RETURN_FEATURES,
        b"readings" => READINGS,
        b"errors" => ERRORS,
        b"maint" => MAINT,
        b"machine" => META,
        b"errorID" | b"error" => ERROR_ID,
        b"comp" => COMP,
        b"model" => MODEL,
        b"age" => AGE,
        _ if sensors => SENSOR + vocab.sensors.iter().position(|n| n.as_bytes() == name)? as u8,
        _ => return None,
    })
}

/// A cursor over the body.
struct Scan<'b> {
    b: &'b [u8],
    i: usize,
    /// The last ISO date read (`YYYY-MM-DD`) and its midnight: a window's readings share a few
    /// days, so most times need only their clock read.
    day: Option<([u8; 10], i64)>,
    /// The last reading read field by field, as the text before each of its values and the text
    /// after the last: the readings of a window are written alike, so the next one is first
    /// matched against it (see [`reading`]).
    layout: Option<Layout<'b>>,
}

/// A reading's text between its values: `(text up to the value, field)` per field, then the text
/// that closes the object.
struct Layout<'b> {
    fields: Vec<(&'b [u8], u8)>,
    close: &'b [u8],
}

impl<'b> Scan<'b> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// Consumes `c` (after whitespace) if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.b.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }

    /// Consumes `text` if it comes next, byte for byte.
    fn literal(&mut self, text: &[u8]) -> Option<()> {
        starts_with(&self.b[self.i..], text).then(|| self.i += text.len())
    }

    /// A string of printable ASCII without escapes (anything else gives up).
    fn string(&mut self) -> Option<&'b [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let rest = &self.b[self.i..];
        let len = rest.iter().position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))?;
        if rest[len] != b'"' {
            return None;
        }
        self.i += len + 1;
        Some(&rest[..len])
    }

    /// Skips digits; returns how many, with their value folded into `m` (wrapping: only
    /// meaningful for at most 19 digits). Eight at a time while there are eight.
    #[inline(always)]
    fn digits(&mut self, m: &mut u64) -> u32 {
        let start = self.i;
        while let Some(v) = self.b.get(self.i..self.i + 8).and_then(eight_digits) {
            *m = m.wrapping_mul(100_000_000).wrapping_add(v);
            self.i += 8;
        }
        while let Some(&c @ b'0'..=b'9') = self.b.get(self.i) {
            *m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            self.i += 1;
        }
        (self.i - start) as u32
    }

    /// A JSON number token, read in one pass.
    ///
    /// This and the other steps of reading a value (`digits`, `f64`, `bounded`, `sensor`,
    /// `reading_field`, `time`, `starts_with`, `eight_digits`, and `Timestamp::parse_in_day`)
    /// are inlined into the readings loop: left as calls (LTO keeps `number`, `bounded` and `time`
    /// out of line), they cost a large share of reading a window body.
    #[inline(always)]
    fn number(&mut self) -> Option<Number<'b>> {
        self.ws();
        let start = self.i;
        let negative = self.b.get(self.i) == Some(&b'-');
        self.i += usize::from(negative);
        let mut mantissa = 0u64;
        let mut digits = match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits(&mut mantissa),
            _ => return None,
        };
        let (mut integer, mut exp10) = (true, 0i32);
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            integer = false;
            let frac = self.digits(&mut mantissa);
            if frac == 0 {
                return None;
            }
            digits += frac;
            exp10 = -(frac.min(999) as i32);
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            self.i += 1;
            integer = false;
            let negative_exp = self.b.get(self.i) == Some(&b'-');
            self.i += usize::from(matches!(self.b.get(self.i), Some(b'+' | b'-')));
            let mut e = 0u64;
            match self.digits(&mut e) {
                0 => return None,
                // A long exponent is left to the standard parser (via an exponent out of range).
                n if n > 3 => e = 9999,
                _ => {}
            }
            exp10 += if negative_exp { -(e as i32) } else { e as i32 };
        }
        Some(Number { text: &self.b[start..self.i], negative, integer, mantissa, digits, exp10 })
    }

    /// A number as serde_json reads it into a `Value`, then `Value::as_f64`.
    #[inline(always)]
    fn f64(&mut self) -> Option<f64> {
        self.number()?.value()
    }

    /// A finite number within the inclusive `bounds`.
    #[inline(always)]
    fn bounded(&mut self, (lo, hi): (f64, f64)) -> Option<f64> {
        self.f64().filter(|x| x.is_finite() && *x >= lo && *x <= hi)
    }

    /// A machine id: a non-negative integer that fits `u32`, also written with a zero fraction
    /// (`7.0`), as the `Value` path reads it.
    fn machine_id(&mut self) -> Option<u32> {
        let n = self.number()?;
        if n.negative || n.digits > 19 {
            return None;
        }
        if n.integer {
            return u32::try_from(n.mantissa).ok();
        }
        let x = n.value()?;
        (x.fract() == 0.0 && x <= f64::from(u32::MAX)).then_some(x as u32)
    }

    fn flag(&mut self) -> Option<bool> {
        self.ws();
        for (text, value) in [(&b"true"[..], true), (b"false", false)] {
            if self.b[self.i..].starts_with(text) {
                self.i += text.len();
                return Some(value);
            }
        }
        None
    }

    /// A datetime string, as `Timestamp::parse` reads it.
    ///
    /// A string that closes after 19 or 20 bytes (the ISO form, with or without `Z`) and parses
    /// is taken without scanning it first: a text that parses, in either accepted form, is
    /// digits, separators and AM/PM only — no escape, quote or control byte — so `string` would
    /// have returned the same bytes. Anything else is scanned, then parsed.
    #[inline(always)]
    fn time(&mut self) -> Option<i64> {
        self.ws();
        if self.b.get(self.i) == Some(&b'"') {
            let at = self.i + 1;
            for len in [19, 20] {
                if self.b.get(at + len) == Some(&b'"')
                    && let Ok(t) = Timestamp::parse_in_day(&self.b[at..at + len], &mut self.day)
                {
                    self.i = at + len + 1;
                    return Some(t.0);
                }
            }
        }
        let text = self.string()?;
        Timestamp::parse_in_day(text, &mut self.day).ok().map(|t| t.0)
    }

    fn label(&mut self, labels: &HashMap<String, u16>) -> Option<u16> {
        labels.get(std::str::from_utf8(self.string()?).ok()?).copied()
    }

    /// An object whose fields are among `allowed` (codes; sensors too when `sensors`), each
    /// once, each value read by `value`. Returns the codes seen.
    fn object(
        &mut self,
        vocab: &Vocab,
        allowed: u64,
        sensors: bool,
        mut value: impl FnMut(&mut Self, u8) -> Option<()>,
    ) -> Option<u64> {
        if !self.eat(b'{') {
            return None;
        }
        let mut seen = 0u64;
        if self.eat(b'}') {
            return Some(seen);
        }
        loop {
            let c = code(vocab, self.string()?, sensors)?;
            let bit = 1u64 << c;
            if allowed & bit == 0 || seen & bit != 0 || !self.eat(b':') {
                return None;
            }
            seen |= bit;
            value(self, c)?;
            if !self.eat(b',') {
                return self.eat(b'}').then_some(seen);
            }
        }
    }

    /// An array, each element read by `item`.
    fn array<T>(&mut self, mut item: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
        self.array_into(16, |s, out| {
            out.push(item(s)?);
            Some(())
        })
    }

    /// An array, each element added to the list (room for `capacity` at first) by `add`.
    fn array_into<T>(
        &mut self,
        capacity: usize,
        mut add: impl FnMut(&mut Self, &mut Vec<T>) -> Option<()>,
    ) -> Option<Vec<T>> {
        if !self.eat(b'[') {
            return None;
        }
        let mut out = Vec::with_capacity(capacity);
        if self.eat(b']') {
            return Some(out);
        }
        loop {
            add(self, &mut out)?;
            if !self.eat(b',') {
                return self.eat(b']').then_some(out);
            }
        }
    }

    /// Sensor `code`'s value into `values`: a number within its bounds, or `null` (missing:
    /// NaN, as the `Value` path reads it).
    #[inline(always)]
    fn sensor(&mut self, vocab: &Vocab, code: u8, values: &mut [f64]) -> Option<()> {
        let i = usize::from(code - SENSOR);
        self.ws();
        values[i] = match self.b.get(self.i) {
            Some(b'n') => {
                self.i = self.i.checked_add(4).filter(|&e| self.b.get(self.i..e) == Some(b"null"))?;
                f64::NAN
            }
            _ => self.bounded(vocab.bounds[i])?,
        };
        Some(())
    }
}

/// `hay.starts_with(text)`, inline for the 8 to 16 bytes between a reading's values (two
/// overlapping word compares instead of a call to `memcmp`, ~48 × 5 times per window) and for
/// the byte or few that close a reading.
#[inline(always)]
fn starts_with(hay: &[u8], text: &[u8]) -> bool {
    let n = text.len();
    let word = |b: &[u8], at: usize| b.get(at..at + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    match (hay.get(..n), n) {
        (None, _) => false,
        (Some(head), 8..=16) => word(head, 0) == word(text, 0) && word(head, n - 8) == word(text, n - 8),
        (Some(head), 0..=3) => head.iter().zip(text).all(|(a, b)| a == b),
        (Some(head), _) => head == text,
    }
}

/// The value of eight ASCII digits, if they are all digits (one load, three multiplications).
#[inline(always)]
fn eight_digits(b: &[u8]) -> Option<u64> {
    let v = u64::from_le_bytes(b.try_into().ok()?);
    // Every byte in '0'..='9': its high nibble is 3, and adding 6 does not carry out of the nibble.
    let all_digits = (v & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && (v.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    // Little-endian: the first digit is the lowest byte. Pairs, then quads, then the eight.
    let d = v - 0x3030_3030_3030_3030;
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF)
}

/// Powers of ten that are exact in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A number token checked against JSON's grammar: `±mantissa × 10^exp10` when it has at most
/// 19 digits.
struct Number<'b> {
    text: &'b [u8],
    negative: bool,
    /// No fraction, no exponent.
    integer: bool,
    mantissa: u64,
    digits: u32,
    exp10: i32,
}

impl Number<'_> {
    /// The correctly rounded value, as serde_json's with `float_roundtrip`. With one rounded
    /// operation when there is one: an integer of at most 19 digits (`u64 as f64`, as serde_json
    /// converts it; `-0` is -0.0 there too), or `m × 10^e` with `m <= 2^53` and `|e| <= 22`
    /// (both factors exact, so one multiplication or division rounds correctly — Clinger's fast
    /// path). Otherwise the standard library parses the text.
    fn value(&self) -> Option<f64> {
        let m = self.mantissa as f64;
        let exact = if self.digits > 19 {
            None
        } else if self.integer {
            Some(m)
        } else if self.mantissa <= 1 << 53 && (-22..=22).contains(&self.exp10) {
            let p = POW10[self.exp10.unsigned_abs() as usize];
            Some(if self.exp10 < 0 { m / p } else { m * p })
        } else {
            None
        };
        match exact {
            Some(x) => Some(if self.negative { -x } else { x }),
            None => std::str::from_utf8(self.text).ok()?.parse().ok(),
        }
    }
}

/// `{"machineID", "return_features"?}` with a reading, a history or neither.
fn request(v: &Vocab, s: &mut Scan<'_>) -> Option<PredictRequest> {
    let (mut machine, mut time, mut history, mut flag) = (None, None, None, false);
    // Allocated only for a request that carries a reading.
    let mut values = Values::new();
    let allowed = bits(&[MACHINE, DATETIME, HISTORY, RETURN_FEATURES]) | SENSORS;
    let seen = s.object(v, allowed, true, |s, code| {
        match code {
            MACHINE => machine = Some(s.machine_id()?),
            DATETIME => time = Some(s.time()?),
            HISTORY => history = Some(window(v, s)?),
            RETURN_FEATURES => flag = s.flag()?,
            _ => {
                values.resize(v.sensors.len(), f64::NAN);
                s.sensor(v, code, &mut values)?;
            }
        }
        Some(())
    })?;
    let machine = machine?;
    let source = match (history, time) {
        (Some(w), None) if seen & SENSORS == 0 => Source::Window(checked(w, machine)?),
        (None, Some(time)) => {
            // A sensor absent is missing.
            values.resize(v.sensors.len(), f64::NAN);
            Source::Reading(Reading { machine: Some(machine), time, values })
        }
        (None, None) if seen & SENSORS == 0 => Source::State,
        _ => return None,
    };
    Some(PredictRequest { machine, source, return_features: flag })
}

/// The window checks of the `Value` path: readings not empty, every item about `machine`.
fn checked(w: Window, machine: u32) -> Option<Window> {
    (!w.readings.is_empty() && w.foreign_item(machine).is_none()).then_some(w)
}

/// `{"readings", "errors"?, "maint"?, "machine"?}`.
fn window(v: &Vocab, s: &mut Scan<'_>) -> Option<Window> {
    let mut w = Window::default();
    let seen = s.object(v, bits(&[READINGS, ERRORS, MAINT, META]), false, |s, code| {
        match code {
            READINGS => w.readings = readings(v, s)?,
            ERRORS => w.errors = s.array(|s| event(v, s, ERROR_ID, &v.error_types))?,
            MAINT => w.maint = s.array(|s| event(v, s, COMP, &v.components))?,
            _ => w.machine = Some(meta(v, s)?),
        }
        Some(())
    })?;
    (seen & bits(&[READINGS]) != 0).then_some(w)
}

/// A window's readings, each read in place at the end of the list: a reading is ~100 bytes, and
/// moving it out through the return values of the functions that read it costs more than reading
/// its fields.
fn readings(v: &Vocab, s: &mut Scan<'_>) -> Option<Vec<Reading>> {
    // Room for two days of hourly readings, the usual window, without growing.
    s.array_into(64, |s, out| {
        out.push(blank_reading(v));
        reading(v, s, out.last_mut()?)
    })
}

/// `{"machineID"?, "datetime", <sensors>}` into `r` (blank).
///
/// A reading written exactly as the last one, up to its values — same fields in the same order,
/// same spacing — is read by matching that text and reading only the values; the tokens matched
/// are the ones the field-by-field reading accepted, so the result is the same. Anything else is
/// read field by field, and becomes the layout the next reading is matched against.
fn reading(v: &Vocab, s: &mut Scan<'_>, r: &mut Reading) -> Option<()> {
    if like_last(v, s, r).is_some() {
        return Some(());
    }
    // A partial match may have set fields this reading does not have.
    *r = blank_reading(v);
    // The layout starts at the `{`: the first reading of an array often follows `[` directly and
    // the next ones `, `.
    s.ws();
    let (mut fields, mut end) = (Vec::with_capacity(v.sensors.len() + 2), s.i);
    let seen = s.object(v, bits(&[MACHINE, DATETIME]) | SENSORS, true, |s, code| {
        fields.push((&s.b[end..s.i], code));
        reading_field(v, s, code, r)?;
        end = s.i;
        Some(())
    })?;
    if seen & bits(&[DATETIME]) == 0 {
        return None;
    }
    s.layout = Some(Layout { fields, close: &s.b[end..s.i] });
    Some(())
}

/// A reading of missing values (a sensor the reading does not name stays missing), its values
/// inline when they fit (`MAX_SENSORS` allows more than the inline eight): built from a buffer
/// rather than value by value (`smallvec!`'s loop and moves showed in the time to read a window
/// body).
#[inline(always)]
fn blank_reading(v: &Vocab) -> Reading {
    let n = v.sensors.len();
    let values = if n <= 8 { Values::from_buf_and_len([f64::NAN; 8], n) } else { smallvec::smallvec![f64::NAN; n] };
    Reading { machine: None, time: 0, values }
}

/// The value of field `code` of a reading into `r`.
#[inline(always)]
fn reading_field(v: &Vocab, s: &mut Scan<'_>, code: u8, r: &mut Reading) -> Option<()> {
    match code {
        MACHINE => r.machine = Some(s.machine_id()?),
        DATETIME => r.time = s.time()?,
        _ => s.sensor(v, code, &mut r.values)?,
    }
    Some(())
}

/// A reading laid out as the last one read field by field, into `r`; `None` (and the cursor
/// where it was) when it is not, or a value is not valid.
fn like_last(v: &Vocab, s: &mut Scan<'_>, r: &mut Reading) -> Option<()> {
    let layout = s.layout.take()?;
    let start = s.i;
    s.ws();
    let done = matching(v, s, &layout, r);
    if done.is_none() {
        s.i = start;
    }
    s.layout = Some(layout);
    done
}

fn matching(v: &Vocab, s: &mut Scan<'_>, layout: &Layout<'_>, r: &mut Reading) -> Option<()> {
    for &(text, code) in &layout.fields {
        s.literal(text)?;
        reading_field(v, s, code, r)?;
    }
    s.literal(layout.close)
}

/// An error (`kind_code` `ERROR_ID`) or maintenance (`COMP`) event.
fn event(v: &Vocab, s: &mut Scan<'_>, kind_code: u8, labels: &HashMap<String, u16>) -> Option<Event> {
    let (mut machine, mut time, mut kind) = (None, 0, 0);
    let seen = s.object(v, bits(&[MACHINE, DATETIME, kind_code]), false, |s, code| {
        match code {
            MACHINE => machine = Some(s.machine_id()?),
            DATETIME => time = s.time()?,
            _ => kind = s.label(labels)?,
        }
        Some(())
    })?;
    let needed = bits(&[DATETIME, kind_code]);
    (seen & needed == needed).then_some(Event { machine, time, kind })
}

/// `{"machineID"?, "model", "age"}`.
fn meta(v: &Vocab, s: &mut Scan<'_>) -> Option<MachineMeta> {
    let (mut machine, mut model, mut age) = (None, 0, 0.0);
    let seen = s.object(v, bits(&[MACHINE, MODEL, AGE]), false, |s, code| {
        match code {
            MACHINE => machine = Some(s.machine_id()?),
            MODEL => model = s.label(&v.models)?,
            _ => age = s.bounded(v.age_bounds)?,
        }
        Some(())
    })?;
    let needed = bits(&[MODEL, AGE]);
    (seen & needed == needed).then_some(MachineMeta { machine, model, age })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::body::parse_json;
    use crate::input::{PredictRequest, Vocab};
    /// The default contract's bounds, except pressure, which takes any finite number (so that
    /// every number form is compared).
    fn vocab() -> Vocab {
        Vocab::new(&pm_core::data::contract::Contract::azure_pdm(), &[("pressure".into(), f64::MIN, f64::MAX)])
    }

    /// The `Value` path's answer: the specification.
    fn slow(v: &Vocab, body: &str) -> Option<Result<PredictRequest, crate::error::ApiError>> {
        parse_json(body.as_bytes()).ok().map(|j| v.predict_request(&j, ""))
    }

    const READING: &str =
        r#"{"datetime": "2015-01-01 06:00:00", "volt": 170.5, "rotate": 450, "pressure": 100.25, "vibration": 40}"#;

    #[test]
    fn valid_requests_take_the_fast_path_and_equal_the_value_path() {
        let v = vocab();
        let window = format!(
            r#"{{"machineID": 7, "return_features": true, "history": {{
                "readings": [{READING}, {{"machine_id": 7, "vibration": 41.5, "pressure": 99, "rotate": 451.5, "volt": 171, "datetime": "2015-01-01T07:00:00Z"}}],
                "errors": [{{"datetime": "2015-01-01 05:00:00", "errorID": "error3"}}, {{"machineID": 7, "datetime": "2015-01-01 04:00:00", "error": "error1"}}],
                "maint": [{{"datetime": "2014-12-01 06:00:00", "comp": "comp2"}}],
                "machine": {{"age": 18.5, "model": "model3"}}}}}}"#
        );
        let bodies = [
            r#"{"machineID": 7}"#.to_string(),
            r#" { "machine_id" : 4294967295 , "return_features" : false } "#.to_string(),
            r#"{"machineID": 3, "datetime": "1/1/2015 6:00:00 AM", "volt": 0, "rotate": 10000, "pressure": 1e2, "vibration": 1000}"#.to_string(),
            // Numbers as JSON writes them, negative zeros included.
            r#"{"machineID": 3, "datetime": "2015-01-01 06:00:00", "volt": -0, "rotate": 1E+3, "pressure": 0.5e-1, "vibration": 1000}"#.to_string(),
            "{\"machineID\":3,\"datetime\":\"2015-01-01 06:00:00\",\r\n\t\"volt\":-0.0,\"rotate\":2,\"pressure\":3,\"vibration\":4}\n".to_string(),
            window,
            format!(r#"{{"machineID": 7, "history": {{"readings": [{READING}], "errors": [], "maint": []}}}}"#),
            // Missing values: a sensor absent or null; no sensor at all.
            r#"{"machineID": 3, "datetime": "2015-01-01 06:00:00", "volt": null, "pressure": 3, "vibration":null}"#.to_string(),
            r#"{"machineID": 3, "datetime": "2015-01-01 06:00:00"}"#.to_string(),
            format!(
                r#"{{"machineID": 7, "history": {{"readings": [{READING}, {{"datetime": "2015-01-01 07:00:00", "volt": null, "rotate": 2, "pressure": 3, "vibration": 4}}, {{"datetime": "2015-01-01 08:00:00", "volt": null, "rotate": 2, "pressure": 3, "vibration": 4}}, {{"datetime": "2015-01-01 09:00:00", "rotate": 2}}]}}}}"#
            ),
        ];
        for b in &bodies {
            let fast = super::predict_request(&v, b.as_bytes());
            assert!(fast.is_some(), "the fast path gave up on a valid request: {b}");
            assert_eq!(bitwise(slow(&v, b)), bitwise(fast.map(Ok::<_, crate::error::ApiError>)), "{b}");
        }
    }

    #[test]
    fn a_reading_laid_out_as_the_last_is_matched_not_scanned() {
        let v = vocab();
        let second =
            r#", {"datetime": "2015-01-01 07:00:00", "volt": 171.5, "rotate": 451, "pressure": 99.5, "vibration": 41}"#;
        let other = r#", {"volt": 1, "datetime": "2015-01-01 08:00:00", "rotate": 2, "pressure": 3, "vibration": 4}"#;
        let text = format!("{READING}{second}{other}");
        let mut s = super::Scan { b: text.as_bytes(), i: 0, day: None, layout: None };
        let blank = || super::blank_reading(&v);
        assert!(super::like_last(&v, &mut s, &mut blank()).is_none(), "no layout yet");
        let mut first = blank();
        super::reading(&v, &mut s, &mut first).expect("the first reading");
        assert!(s.eat(b','));
        // The second, by its layout: the values read, the cursor after its `}`.
        let mut r = blank();
        super::like_last(&v, &mut s, &mut r).expect("the second reading matches the first's layout");
        assert_eq!((r.time - first.time, &r.values[..]), (3600, &[171.5, 451.0, 99.5, 41.0][..]));
        assert_eq!(s.i, READING.len() + second.len());
        // Fields in another order: not matched, the cursor left where it was; read field by field.
        assert!(s.eat(b','));
        assert!(super::like_last(&v, &mut s, &mut blank()).is_none());
        assert_eq!(s.i, READING.len() + second.len() + 1);
        let mut third = blank();
        assert!(super::reading(&v, &mut s, &mut third).is_some());
        assert_eq!((third.time - first.time, &third.values[..]), (7200, &[1.0, 2.0, 3.0, 4.0][..]));
        assert_eq!(s.i, text.len());
    }

    /// Debug text, which tells `-0.0` from `0.0` (`==` does not).
    fn bitwise<T: std::fmt::Debug>(x: T) -> String {
        format!("{x:?}")
    }

    #[test]
    fn anything_else_is_left_to_the_value_path() {
        let v = vocab();
        let h = |readings: &str| format!(r#"{{"machineID": 7, "history": {{"readings": [{readings}]}}}}"#);
        let refused = [
            String::new(),
            "{}".into(),
            "[1]".into(),
            r#"{"machineID": 7"#.into(),
            r#"{"machineID": 7} x"#.into(),
            r#"{"machineID": -7}"#.into(),
            r#"{"machineID": 7.5}"#.into(),
            r#"{"machineID": 4294967296}"#.into(),
            r#"{"machineID": "7"}"#.into(),
            r#"{"machineID": 7, "return_features": "yes"}"#.into(),
            r#"{"machineID": 7, "temperature": 20}"#.into(),
            r#"{"machineID": 7, "volt": 170}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-02-30 06:00:00", "volt": 1, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": -1, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": 1e400, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"instances": [{"machineID": 7}]}"#.into(),
            r#"{"machineID": 07}"#.into(),
            r#"{"machineID": 7,}"#.into(),
            r#"{"machineID" 7}"#.into(),
            r#"{"machineID": 7, "return_features": truex}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": 1., "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": .5, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": +1, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            r#"{"machineID": 7, "datetime": "2015-01-01 06:00:00", "volt": 1e, "rotate": 2, "pressure": 3, "vibration": 4}"#.into(),
            "{\"machineID\": 7, \"datetime\": \"2015-01-01\t06:00:00\", \"volt\": 1, \"rotate\": 2, \"pressure\": 3, \"vibration\": 4}".into(),
            r#"{"machineID": 7, "history": {"readings": []}}"#.into(),
            r#"{"machineID": 7, "history": {"errors": []}}"#.into(),
            r#"{"machineID": 7, "history": {"readings": null}}"#.into(),
            h(r#"{"machineID": 8, "datetime": "2015-01-01 06:00:00", "volt": 1, "rotate": 2, "pressure": 3, "vibration": 4}"#),
            // A time of a day already read, out of range (the date is not parsed again).
            h(&format!(
                r#"{READING}, {{"datetime": "2015-01-01 24:00:00", "volt": 1, "rotate": 2, "pressure": 3, "vibration": 4}}"#
            )),
            h(r#"{"datetime": "2015-01-01 06:00:00", "volt": nul, "rotate": 2, "pressure": 3}"#),
            h(r#"{"datetime": "2015-01-01 06:00:00", "volt": nullx, "rotate": 2, "pressure": 3}"#),
            r#"{"machineID": 7, "volt": 1}"#.into(),
            h(r#"{"datetime": "2015-01-01 06:00:00", "volt": 1, "rotate": 2, "pressure": 3, "vibration": "4"}"#),
            format!(r#"{{"machineID": 7, "history": {{"readings": [{READING}], "errors": [{{"datetime": "2015-01-01 05:00:00", "errorID": "error9"}}]}}}}"#),
            format!(r#"{{"machineID": 7, "history": {{"readings": [{READING}], "maint": [{{"comp": "comp1"}}]}}}}"#),
            format!(r#"{{"machineID": 7, "history": {{"readings": [{READING}], "machine": {{"model": "model3", "age": -1}}}}}}"#),
            format!(r#"{{"machineID": 7, "datetime": "2015-01-01 06:00:00", "history": {{"readings": [{READING}]}}}}"#),
        ];
        for b in &refused {
            assert!(super::predict_request(&v, b.as_bytes()).is_none(), "the fast path took {b}");
            assert!(!matches!(slow(&v, b), Some(Ok(_))), "the Value path accepts {b}");
        }
        // A repeated field: the fast path gives up, and the Value path refuses it by name.
        let repeated = r#"{"machineID": 7, "machineID": 8}"#;
        assert!(super::predict_request(&v, repeated.as_bytes()).is_none());
        let e = crate::body::parse_json(repeated.as_bytes()).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("duplicate_field", Some("machineID")));
        // Valid for the Value path, but not the fast path's to decide: both spellings of a
        // field, escapes.
        for b in [
            r#"{"machineID": 7, "machine_id": 8}"#,
            r#"{"machine\u0049D": 3, "d\u0061tetime": "2015-01-01 06:00:00", "volt": 1, "rotate": 2, "pressure": 3, "vibration": 4}"#,
        ] {
            assert!(super::predict_request(&v, b.as_bytes()).is_none(), "{b}");
            assert!(matches!(slow(&v, b), Some(Ok(_))), "{b}");
        }
    }

    /// A JSON object of the fields that come out `Some`, shuffled, plus sometimes a field the
    /// request shape does not expect (a repeat, the other spelling, an unknown name). The flag
    /// says whether no such field was added anywhere inside.
    fn object(fields: Vec<(&'static str, BoxedStrategy<(String, bool)>)>) -> BoxedStrategy<(String, bool)> {
        let parts: Vec<_> = fields
            .into_iter()
            .map(|(k, s)| prop::option::weighted(0.98, s).prop_map(move |v| v.map(|(v, c)| (format!("{k:?}:{v}"), c))))
            .collect();
        let extra = prop::option::weighted(
            0.02,
            prop::sample::select(vec![r#""temperature":1"#, r#""machineID":1"#, r#""machine_id":1"#, r#""volt":170"#]),
        );
        let sep = prop::sample::select(vec![",", ", ", " ,\n\t", "\r\n,"]);
        (parts, extra, sep)
            .prop_flat_map(|(parts, extra, sep)| {
                let mut clean = extra.is_none();
                let mut items: Vec<String> = Vec::new();
                for (p, c) in parts.into_iter().flatten() {
                    clean &= c;
                    items.push(p);
                }
                items.extend(extra.map(str::to_string));
                Just(items).prop_shuffle().prop_map(move |items| (format!("{{{}}}", items.join(sep)), clean))
            })
            .boxed()
    }

    fn one_of(texts: &[&'static str]) -> BoxedStrategy<(String, bool)> {
        prop::sample::select(texts.to_vec()).prop_map(|t| (t.to_string(), true)).boxed()
    }

    /// Mostly `good`, sometimes one of `bad` (values of the wrong type, range or machine).
    fn or_bad(good: BoxedStrategy<(String, bool)>, bad: &[&'static str]) -> BoxedStrategy<(String, bool)> {
        prop_oneof![40 => good, 1 => one_of(bad)].boxed()
    }

    fn list(item: BoxedStrategy<(String, bool)>, max: usize) -> BoxedStrategy<(String, bool)> {
        prop_oneof![
            20 => prop::collection::vec(item, 1..max).prop_map(|xs| {
                let clean = xs.iter().all(|x| x.1);
                (format!("[{}]", xs.into_iter().map(|x| x.0).collect::<Vec<_>>().join(",")), clean)
            }),
            1 => one_of(&["[]", "null", "{}", "3"]),
        ]
        .boxed()
    }

    fn request() -> BoxedStrategy<(String, bool)> {
        let id = || or_bad(one_of(&["1", "1.0", "1e0"]), &["2", "\"1\"", "-1", "1.5", "4294967296", "null"]);
        let time = || {
            let good = (1u32..4, 0u32..24).prop_map(|(d, h)| (format!("\"2015-01-0{d} {h:02}:00:00\""), true)).boxed();
            let bad = [
                "\"2015-02-30 06:00:00\"",
                "\"2015-01-01 24:00:00\"",
                "\"2015-01-02 23:60:00\"",
                "\"2015-01-03 06:00:60\"",
                "\"2015-01-01 6:00:00\"",
                "\"2015-01-01 06:0a:00\"",
                "\"2015-01-01 06:00:\\\"0\"",
                "5",
                "null",
                "\"yesterday\"",
            ];
            // Escapes at and before the ISO form's width: valid times the fast path may leave to
            // the Value path.
            let escaped = one_of(&["\"2015-01-01 06:00:0\\u0030\"", "\"2015-01-01 06:00:00\\u005a\""])
                .prop_map(|(text, _)| (text, false));
            prop_oneof![
                20 => good,
                1 => one_of(&["\"2015-01-02T05:00:00Z\"", "\"1/2/2015 5:00:00 AM\""]),
                2 => one_of(&bad),
                1 => escaped,
            ]
            .boxed()
        };
        let sensor = || {
            let good = prop_oneof![
                4 => (0.0f64..600.0).prop_map(|x| (format!("{x}"), true)),
                4 => (0.0f64..600.0, 0usize..16).prop_map(|(x, d)| (format!("{x:.d$}"), true)),
                2 => (0u32..600).prop_map(|x| (x.to_string(), true)),
                1 => (0.0f64..600.0).prop_map(|x| (format!("{x:e}"), true)),
                1 => (0.0f64..6.0, -3i32..3).prop_map(|(x, e)| (format!("{x:.3}E{e:+}"), true)),
                1 => (1u64..1 << 53, -30i32..30).prop_map(|(m, e)| (format!("{m}e{e}"), true)),
                1 => one_of(&["-0", "-0.0", "0", "0e0", "1000", "12345678901234567890", "98765432109876543210", "1e-400"]),
                // A missing value.
                1 => one_of(&["null"]),
            ];
            let bad = [
                "-5", "1e5", "1e400", "\"nan\"", "nul", "nullnull", "true", "01", "1.", ".5", "+1", "-", "1e", "0x10",
                "1.5.2",
            ];
            or_bad(good.boxed(), &bad)
        };
        let reading = || {
            object(vec![
                ("machineID", id()),
                ("datetime", time()),
                ("volt", sensor()),
                ("rotate", sensor()),
                ("pressure", sensor()),
                ("vibration", sensor()),
            ])
        };
        let event = |kind: &'static str, label: BoxedStrategy<(String, bool)>| {
            object(vec![("machineID", id()), ("datetime", time()), (kind, label)])
        };
        let meta = object(vec![
            ("machineID", id()),
            ("model", or_bad(one_of(&["\"model3\""]), &["\"modelX\"", "3"])),
            ("age", or_bad(one_of(&["3", "18.5"]), &["-1", "101", "\"3\""])),
        ]);
        // Readings written alike (same fields, order and spacing; values vary), as a window
        // usually is: read by matching the first one's layout.
        let alike = (
            Just(["\"machineID\"", "\"datetime\"", "\"volt\"", "\"rotate\"", "\"pressure\"", "\"vibration\""])
                .prop_shuffle(),
            any::<bool>(),
            prop::sample::select(vec![",", ", ", " ,\n\t"]),
        )
            .prop_flat_map(move |(names, with_id, sep)| {
                let values = move |name: &str| match name {
                    "\"machineID\"" => id(),
                    "\"datetime\"" => time(),
                    _ => sensor(),
                };
                let names: Vec<&'static str> = names.into_iter().filter(|n| with_id || *n != "\"machineID\"").collect();
                let item = names.iter().map(|n| values(n)).collect::<Vec<_>>();
                prop::collection::vec(item, 1..6).prop_map(move |rows| {
                    let clean = rows.iter().flatten().all(|v| v.1);
                    let objects: Vec<String> = rows
                        .iter()
                        .map(|row| {
                            let fields: Vec<String> =
                                names.iter().zip(row).map(|(n, v)| format!("{n}:{}", v.0)).collect();
                            format!("{{{}}}", fields.join(sep))
                        })
                        .collect();
                    (format!("[{}]", objects.join(sep)), clean)
                })
            })
            .boxed();
        let history = object(vec![
            ("readings", prop_oneof![list(reading(), 4), alike].boxed()),
            ("errors", list(event("errorID", or_bad(one_of(&["\"error1\"", "\"error5\""]), &["\"error9\"", "3"])), 3)),
            ("maint", list(event("comp", or_bad(one_of(&["\"comp1\"", "\"comp4\""]), &["\"compX\""])), 3)),
            ("machine", meta),
        ]);
        let flag = || or_bad(one_of(&["true", "false"]), &["\"yes\"", "null"]);
        prop_oneof![
            object(vec![("machineID", id()), ("return_features", flag())]),
            object(vec![
                ("machineID", id()),
                ("datetime", time()),
                ("volt", sensor()),
                ("rotate", sensor()),
                ("pressure", sensor()),
                ("vibration", sensor()),
                ("return_features", flag()),
            ]),
            object(vec![("machineID", id()), ("history", history), ("return_features", flag())]),
        ]
        .boxed()
    }

    /// What the fast path takes equals the `Value` path's result, bit for bit; returns whether
    /// it took the body and whether the `Value` path accepts it.
    fn agree(v: &Vocab, body: &str) -> Result<(bool, bool), TestCaseError> {
        let fast = super::predict_request(v, body.as_bytes());
        let spec = slow(v, body);
        if let Some(f) = &fast {
            let Some(Ok(s)) = &spec else {
                return Err(TestCaseError::fail(format!("the fast path took a body the Value path refuses: {body}")));
            };
            prop_assert_eq!(bitwise(f), bitwise(s), "{}", body);
        }
        Ok((fast.is_some(), matches!(spec, Some(Ok(_)))))
    }

    /// A list body agrees with the `Value` path item by item; returns whether the fast path took
    /// it and whether every item is valid in a list field the fast path reads.
    fn agree_list(v: &Vocab, body: &str) -> Result<(bool, bool), TestCaseError> {
        const FIELDS: [&str; 2] = ["instances", "predictions"];
        let fast = super::request_list(v, body.as_bytes(), &FIELDS);
        // The `Value` path's reading: one known field holding a non-empty array of valid items.
        let spec = parse_json(body.as_bytes()).ok().and_then(|j| {
            let map = j.as_object()?;
            let (field, list) = map.iter().next().filter(|_| map.len() == 1)?;
            let field = FIELDS.into_iter().find(|f| f == field)?;
            let items = list.as_array().filter(|l| !l.is_empty())?;
            items.iter().map(|item| v.predict_request(item, "").ok()).collect::<Option<Vec<_>>>().map(|l| (field, l))
        });
        if let Some((field, items)) = &fast {
            let Some((f, s)) = &spec else {
                return Err(TestCaseError::fail(format!("the fast path took a list the Value path refuses: {body}")));
            };
            prop_assert_eq!(field, f);
            prop_assert_eq!(bitwise(items), bitwise(s), "{}", body);
        }
        Ok((fast.is_some(), spec.is_some()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Lists (`/predict/batch`, Vertex `instances`) of requests written alike or not, valid
        /// and not, whole and cut short, under the fields the fast path reads and others: the
        /// fast path agrees with the `Value` path item by item (a reading layout learnt in one
        /// item is only a guess for the next), and takes every list of valid items.
        #[test]
        fn the_fast_list_path_agrees_with_the_value_path(
            items in prop::collection::vec(request(), 0..4),
            field in prop::sample::select(vec!["instances", "predictions", "parameters"]),
            sep in prop::sample::select(vec![",", ", ", " ,\n\t"]),
            ws in prop::sample::select(vec!["", " ", "\n\t "]),
            cut in 0.0f64..1.0,
        ) {
            let v = vocab();
            let clean = items.iter().all(|(_, c)| *c);
            let texts: Vec<&str> = items.iter().map(|(t, _)| t.as_str()).collect();
            let body = format!("{{{ws}\"{field}\":{ws}[{}]{ws}}}{ws}", texts.join(sep));
            let (taken, valid) = agree_list(&v, &body)?;
            prop_assert!(taken || !valid || !clean, "the fast path gave up on a valid list: {}", body);
            agree_list(&v, &body[..(body.len() as f64 * cut) as usize])?;
        }

        /// Over generated bodies, valid and not, whole and cut short: the fast path agrees with
        /// the `Value` path, and takes every body the `Value` path accepts unless a field was
        /// repeated or unexpected.
        #[test]
        fn the_fast_path_agrees_with_the_value_path((body, clean) in request(), cut in 0.0f64..1.0) {
            let v = vocab();
            let (taken, valid) = agree(&v, &body)?;
            prop_assert!(taken || !valid || !clean, "the fast path gave up on a valid body: {}", body);
            agree(&v, &body[..(body.len() as f64 * cut) as usize])?;
        }
    }
}
