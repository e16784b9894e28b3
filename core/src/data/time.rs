//! Timestamps: seconds since 1970-01-01 00:00:00, naive UTC (the data set carries no zone).
//!
//! Two text forms are read, exactly as distributed copies of the data set write them:
//! `2015-01-05 06:00:00` (the original R export; `T` instead of the space and a trailing `Z`
//! are accepted too) and `1/5/2015 6:00:00 AM` (copies re-saved by spreadsheet tools).
//! Parsing is strict: every field is range-checked, including the day against its month.

use std::fmt;

/// Seconds per hour.
pub const HOUR: i64 = 3_600;
/// Seconds per day.
pub const DAY: i64 = 86_400;

/// A point in time, seconds since the Unix epoch (naive UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// Why a datetime text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("expected 'YYYY-MM-DD HH:MM:SS' or 'M/D/YYYY H:MM:SS AM|PM'")]
    Format,
    #[error("month {0} out of range 1..=12")]
    Month(u32),
    #[error("day {day} out of range for {year}-{month:02}")]
    Day { year: i64, month: u32, day: u32 },
    #[error("hour {0} out of range")]
    Hour(u32),
    #[error("minute {0} out of range 0..=59")]
    Minute(u32),
    #[error("second {0} out of range 0..=59")]
    Second(u32),
}

impl Timestamp {
    /// Builds a timestamp from civil fields, validating each one.
    pub fn from_civil(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Result<Self, TimeError> {
        if !(1..=12).contains(&month) {
            return Err(TimeError::Month(month));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(TimeError::Day { year, month, day });
        }
        let days = days_from_civil(year, month, day);
        Ok(Timestamp(days * DAY + clock_seconds(hour, minute, second)?))
    }

    /// Parses either accepted text form.
    pub fn parse(text: &[u8]) -> Result<Self, TimeError> {
        // Fast path: the fixed-width ISO form, 19 bytes (+ optional 'Z').
        if let Some(b) = iso_body(text) {
            let year = digits(&b[0..4]).ok_or(TimeError::Format)?;
            let month = digits(&b[5..7]).ok_or(TimeError::Format)?;
            let day = digits(&b[8..10]).ok_or(TimeError::Format)?;
            let (hour, minute, second) = iso_clock(b)?;
            return Self::from_civil(i64::from(year), month, day, hour, minute, second);
        }
        parse_us_12h(text)
    }

    /// [`Timestamp::parse`] for a run of texts that mostly share their days (a machine's hourly
    /// readings): `day` remembers the last ISO date read and its midnight, so a text of that date
    /// has only its clock read. Same results and errors as `parse`.
    #[inline(always)]
    pub fn parse_in_day(text: &[u8], day: &mut Option<([u8; 10], i64)>) -> Result<Self, TimeError> {
        let iso = iso_body(text);
        // A fixed-size compare (two loads), not a call to `memcmp`: it runs once per reading.
        if let (Some(b), Some((date, midnight))) = (iso, *day)
            && <[u8; 10]>::try_from(&b[..10]).is_ok_and(|d| d == date)
        {
            let (hour, minute, second) = iso_clock(b)?;
            return Ok(Timestamp(midnight + clock_seconds(hour, minute, second)?));
        }
        Self::parse_new_day(text, iso, day)
    }

    /// [`Timestamp::parse_in_day`] of a text not of the remembered day.
    #[cold]
    fn parse_new_day(text: &[u8], iso: Option<&[u8]>, day: &mut Option<([u8; 10], i64)>) -> Result<Self, TimeError> {
        let t = Self::parse(text)?;
        if let Some(b) = iso
            && let Ok(date) = b[..10].try_into()
        {
            *day = Some((date, t.0.div_euclid(DAY) * DAY));
        }
        Ok(t)
    }

    /// Hours since the epoch, rounded down.
    pub fn hours(self) -> i64 {
        self.0.div_euclid(HOUR)
    }

    /// Civil fields `(year, month, day, hour, minute, second)`.
    pub fn civil(self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.0.div_euclid(DAY);
        let secs = self.0.rem_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        // The casts are exact: secs is in 0..86400.
        let hour = (secs / HOUR) as u32;
        let minute = ((secs % HOUR) / 60) as u32;
        let second = (secs % 60) as u32;
        (y, m, d, hour, minute, second)
    }

    /// RFC 3339 in UTC, e.g. `2015-01-05T06:00:00Z`.
    pub fn rfc3339(self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        if !(0..=9999).contains(&y) {
            return format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z");
        }
        // Fixed width, written digit by digit (serving formats two per prediction).
        let mut b = *b"0000-00-00T00:00:00Z";
        let two = |b: &mut [u8; 20], at: usize, v: u32| {
            b[at] = b'0' + (v / 10) as u8;
            b[at + 1] = b'0' + (v % 10) as u8;
        };
        let y = y as u32;
        two(&mut b, 0, y / 100);
        two(&mut b, 2, y % 100);
        two(&mut b, 5, mo);
        two(&mut b, 8, d);
        two(&mut b, 11, h);
        two(&mut b, 14, mi);
        two(&mut b, 17, s);
        b.iter().map(|&c| char::from(c)).collect()
    }
}

/// The data set's own form, `2015-01-05 06:00:00`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.civil();
        write!(f, "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }
}

#[inline]
fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// The 19 bytes `YYYY-MM-DD[ T]hh:mm:ss` of an ISO text (with an optional trailing `Z`), by the
/// positions of its separators; the fields are read by the caller.
#[inline]
fn iso_body(text: &[u8]) -> Option<&[u8]> {
    let b = match text {
        [body @ .., b'Z'] if body.len() == 19 => body,
        _ if text.len() == 19 => text,
        _ => return None,
    };
    (b[4] == b'-' && b[7] == b'-' && (b[10] == b' ' || b[10] == b'T') && b[13] == b':' && b[16] == b':').then_some(b)
}

/// Hour, minute and second of an ISO body.
#[inline]
fn iso_clock(b: &[u8]) -> Result<(u32, u32, u32), TimeError> {
    let field = |r: std::ops::Range<usize>| digits(&b[r]).ok_or(TimeError::Format);
    Ok((field(11..13)?, field(14..16)?, field(17..19)?))
}

/// Seconds since midnight of a clock, each field range-checked.
#[inline]
fn clock_seconds(hour: u32, minute: u32, second: u32) -> Result<i64, TimeError> {
    if hour > 23 {
        return Err(TimeError::Hour(hour));
    }
    if minute > 59 {
        return Err(TimeError::Minute(minute));
    }
    if second > 59 {
        return Err(TimeError::Second(second));
    }
    Ok(i64::from(hour) * HOUR + i64::from(minute) * 60 + i64::from(second))
}

/// `M/D/YYYY H:MM:SS AM|PM` (also `H:MM` without seconds).
fn parse_us_12h(text: &[u8]) -> Result<Timestamp, TimeError> {
    let s = std::str::from_utf8(text).map_err(|_| TimeError::Format)?;
    let mut parts = s.split(' ').filter(|p| !p.is_empty());
    let (date, clock, ampm) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(c), Some(a), None) => (d, c, a),
        _ => return Err(TimeError::Format),
    };
    let mut dp = date.split('/');
    let (m, d, y) = match (dp.next(), dp.next(), dp.next(), dp.next()) {
        (Some(m), Some(d), Some(y), None) if m.len() <= 2 && d.len() <= 2 && y.len() == 4 => (m, d, y),
        _ => return Err(TimeError::Format),
    };
    let mut cp = clock.split(':');
    let (h, mi, sec) = match (cp.next(), cp.next(), cp.next(), cp.next()) {
        (Some(h), Some(mi), sec, None) if h.len() <= 2 && mi.len() == 2 => (h, mi, sec),
        _ => return Err(TimeError::Format),
    };
    let num = |t: &str| digits(t.as_bytes()).ok_or(TimeError::Format);
    let (month, day, year) = (num(m)?, num(d)?, num(y)?);
    let (hour12, minute) = (num(h)?, num(mi)?);
    let second = match sec {
        Some(t) if t.len() == 2 => num(t)?,
        Some(_) => return Err(TimeError::Format),
        None => 0,
    };
    if !(1..=12).contains(&hour12) {
        return Err(TimeError::Hour(hour12));
    }
    let hour = match ampm {
        "AM" | "am" => hour12 % 12,
        "PM" | "pm" => hour12 % 12 + 12,
        _ => return Err(TimeError::Format),
    };
    Timestamp::from_civil(i64::from(year), month, day, hour, minute, second)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (era arithmetic: 400-year cycles of
/// 146,097 days, years counted from March so that the leap day ends the year).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both casts are exact: d is in 1..=31 and m in 1..=12.
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The current time.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    Timestamp(secs)
}

/// The current time in RFC 3339 (UTC), e.g. `2026-11-26T07:26:16Z`.
pub fn now_rfc3339() -> String {
    now().rfc3339()
}

/// The current time in RFC 3339 (UTC) with microseconds, e.g. `2026-11-26T07:26:16.123456Z`
/// (log lines, which several may share a second).
pub fn now_rfc3339_micros() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let whole = Timestamp(d.as_secs() as i64).rfc3339();
    format!("{}.{:06}Z", whole.trim_end_matches('Z'), d.subsec_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Result<Timestamp, TimeError> {
        Timestamp::parse(s.as_bytes())
    }

    #[test]
    fn iso_and_us_forms_agree() {
        let a = ts("2015-01-05 06:00:00").unwrap();
        assert_eq!(a.0, 1_420_437_600);
        assert_eq!(ts("1/5/2015 6:00:00 AM").unwrap(), a);
        assert_eq!(ts("2015-01-05T06:00:00Z").unwrap(), a);
        assert_eq!(ts("1/5/2015 6:00 AM").unwrap(), a);
        assert_eq!(ts("12/31/2015 12:00:00 AM").unwrap(), ts("2015-12-31 00:00:00").unwrap());
        assert_eq!(ts("12/31/2015 12:30:00 PM").unwrap(), ts("2015-12-31 12:30:00").unwrap());
        assert_eq!(ts("7/4/2015 11:00:00 PM").unwrap(), ts("2015-07-04 23:00:00").unwrap());
    }

    /// The day memo changes no result or error: texts of a remembered day, of another day, of
    /// the other form, and broken clocks after a remembered date.
    #[test]
    fn parse_in_day_equals_parse() {
        let texts = [
            "2015-01-05 06:00:00",
            "2015-01-05 07:30:59",
            "2015-01-05T23:59:59Z",
            "2015-01-05 24:00:00",
            "2015-01-05 06:60:00",
            "2015-01-05 06:00:60",
            "2015-01-05 6:00:00x",
            "2015-01-05 0a:00:00",
            "1/6/2015 6:00:00 AM",
            "2015-01-06 00:00:00",
            "2015-02-30 06:00:00",
            "2015-01-06 05:00:00",
            "1969-12-31 23:00:00",
            "1969-12-31 01:00:00",
        ];
        let mut day = None;
        for t in texts {
            assert_eq!(Timestamp::parse_in_day(t.as_bytes(), &mut day), ts(t), "{t}");
        }
        assert_eq!(day, Some((*b"1969-12-31", -DAY)));
    }

    #[test]
    fn display_round_trips() {
        for s in ["2014-06-01 06:00:00", "2016-02-29 23:59:59", "1970-01-01 00:00:00", "1969-12-31 23:00:00"] {
            assert_eq!(ts(s).unwrap().to_string(), s);
        }
        assert_eq!(ts("2015-01-05 06:00:00").unwrap().rfc3339(), "2015-01-05T06:00:00Z");
        assert_eq!(Timestamp::from_civil(987, 3, 4, 5, 6, 7).unwrap().rfc3339(), "0987-03-04T05:06:07Z");
        assert_eq!(ts("2099-12-31 23:59:59").unwrap().rfc3339(), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for day in -800_000..800_000i64 {
            if day % 997 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn refuses_impossible_dates_with_the_reason() {
        assert_eq!(ts("2015-13-01 06:00:00"), Err(TimeError::Month(13)));
        assert_eq!(ts("2015-02-29 06:00:00"), Err(TimeError::Day { year: 2015, month: 2, day: 29 }));
        assert!(ts("2016-02-29 06:00:00").is_ok());
        assert_eq!(ts("2015-01-01 24:00:00"), Err(TimeError::Hour(24)));
        assert_eq!(ts("2015-01-01 06:60:00"), Err(TimeError::Minute(60)));
        assert_eq!(ts("13/1/2015 6:00:00 AM"), Err(TimeError::Month(13)));
        assert_eq!(ts("1/1/2015 13:00:00 PM"), Err(TimeError::Hour(13)));
        for bad in
            ["", "2015-01-01", "2015/01/01 06:00:00", "1/1/2015 6:00:00", "x015-01-01 06:00:00", "1/1/15 6:00:00 AM"]
        {
            assert_eq!(ts(bad), Err(TimeError::Format), "{bad:?}");
        }
    }
}
