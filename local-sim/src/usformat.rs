//! Rewrites `YYYY-MM-DD HH:MM:SS` datetimes of a CSV text as `M/D/YYYY H:MM:SS AM|PM`, the form
//! of spreadsheet-saved copies of the data set (used to test and demonstrate that both read the
//! same).

use pm_core::data::time::Timestamp;

/// Converts every field that parses as an ISO datetime; other fields are left as they are.
pub fn iso_to_us(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 8);
    for line in text.split_inclusive(|&b| b == b'\n') {
        for (i, field) in line.split(|&b| b == b',').enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let (body, nl) = match field.strip_suffix(b"\n") {
                Some(b) => (b, true),
                None => (field, false),
            };
            match Timestamp::parse(body) {
                Ok(t) if body.len() == 19 => {
                    let (y, mo, d, h, mi, s) = t.civil();
                    let (h12, ampm) = match h {
                        0 => (12, "AM"),
                        1..=11 => (h, "AM"),
                        12 => (12, "PM"),
                        _ => (h - 12, "PM"),
                    };
                    out.extend_from_slice(format!("{mo}/{d}/{y} {h12}:{mi:02}:{s:02} {ampm}").as_bytes());
                }
                _ => out.extend_from_slice(body),
            }
            if nl {
                out.push(b'\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn converts_datetimes_only() {
        let text = b"\"datetime\",\"machineID\"\n2015-01-05 06:00:00,1\n2015-12-31 13:30:00,2\n2015-01-01 00:00:00,3";
        let out = String::from_utf8(super::iso_to_us(text)).unwrap();
        assert_eq!(
            out,
            "\"datetime\",\"machineID\"\n1/5/2015 6:00:00 AM,1\n12/31/2015 1:30:00 PM,2\n1/1/2015 12:00:00 AM,3"
        );
    }
}
