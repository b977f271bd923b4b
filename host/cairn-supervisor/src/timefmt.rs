//! Time formats Pebble uses on the wire and in logs.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 with as many fractional digits as needed (Go's `time.RFC3339Nano` in UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339 to the second, as task log lines start.
pub fn rfc3339_secs(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Millisecond UTC time as service log lines start (`2006-01-02T15:04:05.000Z`).
pub fn log_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Go's `time.RFC3339` layout, as Go's parse errors name it.
const GO_RFC3339: &str = "2006-01-02T15:04:05Z07:00";

/// Parses an RFC 3339 time as Go's `time.Parse(time.RFC3339, …)` does (what Pebble's API
/// reads timestamps with), failing with Go's words: `parsing time "x" as
/// "2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"`, `…: month out of range`,
/// `…: extra text: "…"`.
pub fn parse_rfc3339_go(value: &str) -> Result<OffsetDateTime, String> {
    let bad = |rest: &str, elem: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            go_quote(value),
            go_quote(GO_RFC3339),
            go_quote(rest),
            go_quote(elem)
        )
    };
    let range = |what: &str| format!("parsing time {}: {what} out of range", go_quote(value));
    let digits =
        |s: &str, n: usize| s.len() >= n && s.as_bytes()[..n].iter().all(u8::is_ascii_digit);
    let mut rest = value;
    // 2006
    if !digits(rest, 4) {
        return Err(bad(rest, "2006"));
    }
    let year: i32 = rest[..4].parse().map_err(|_| bad(rest, "2006"))?;
    rest = &rest[4..];
    let expect = |rest: &mut &str, lit: &str| -> Result<(), String> {
        match rest.strip_prefix(lit) {
            Some(r) => {
                *rest = r;
                Ok(())
            }
            None => Err(bad(rest, lit)),
        }
    };
    // A two-digit field (`fixed`) or Go's one-or-two-digit hour.
    let num = |rest: &mut &str, elem: &str, fixed: bool| -> Result<u32, String> {
        let b = rest.as_bytes();
        if b.is_empty() || !b[0].is_ascii_digit() {
            return Err(bad(rest, elem));
        }
        let n = if b.len() > 1 && b[1].is_ascii_digit() {
            2
        } else if fixed {
            return Err(bad(rest, elem));
        } else {
            1
        };
        let v = rest[..n].parse().map_err(|_| bad(rest, elem))?;
        *rest = &rest[n..];
        Ok(v)
    };
    expect(&mut rest, "-")?;
    let month = num(&mut rest, "01", true)?;
    if !(1..=12).contains(&month) {
        return Err(range("month"));
    }
    expect(&mut rest, "-")?;
    let day = num(&mut rest, "02", true)?;
    if !(1..=31).contains(&day) {
        return Err(range("day"));
    }
    expect(&mut rest, "T")?;
    let hour = num(&mut rest, "15", false)?;
    if hour >= 24 {
        return Err(range("hour"));
    }
    expect(&mut rest, ":")?;
    let minute = num(&mut rest, "04", true)?;
    if minute >= 60 {
        return Err(range("minute"));
    }
    expect(&mut rest, ":")?;
    let second = num(&mut rest, "05", true)?;
    if second >= 60 {
        return Err(range("second"));
    }
    // Fractional seconds after the seconds, with a period or a comma, as Go accepts.
    let mut nanos = 0u32;
    let b = rest.as_bytes();
    if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit() {
        let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = &rest[1..n];
        let mut scaled = 0u64;
        for (i, c) in frac.bytes().take(9).enumerate() {
            scaled += u64::from(c - b'0') * 10u64.pow(8 - i as u32);
        }
        nanos = scaled as u32;
        rest = &rest[n..];
    }
    // Z07:00
    let offset_secs = if let Some(r) = rest.strip_prefix('Z') {
        rest = r;
        0
    } else {
        let b = rest.as_bytes();
        if b.len() < 6 || b[3] != b':' || !(b[0] == b'+' || b[0] == b'-') {
            return Err(bad(rest, "Z07:00"));
        }
        let (Ok(hh), Ok(mm)) = (rest[1..3].parse::<i32>(), rest[4..6].parse::<i32>()) else {
            return Err(bad(rest, "Z07:00"));
        };
        if hh > 24 {
            return Err(range("time zone offset hour"));
        }
        if mm > 60 {
            return Err(range("time zone offset minute"));
        }
        let sign = if b[0] == b'-' { -1 } else { 1 };
        rest = &rest[6..];
        sign * (hh * 3600 + mm * 60)
    };
    if !rest.is_empty() {
        return Err(format!(
            "parsing time {}: extra text: {}",
            go_quote(value),
            go_quote(rest)
        ));
    }
    let month = time::Month::try_from(month as u8).map_err(|_| range("month"))?;
    let date = time::Date::from_calendar_date(year, month, day as u8).map_err(|_| range("day"))?;
    let time = time::Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
        .map_err(|_| range("second"))?;
    let offset = time::UtcOffset::from_whole_seconds(offset_secs)
        .map_err(|_| range("time zone offset hour"))?;
    Ok(time::PrimitiveDateTime::new(date, time).assume_offset(offset))
}

/// Go's `time` package quoting of a value in its errors: double quotes, `"` and `\`
/// escaped, bytes outside printable ASCII as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_parsed_and_refused_in_gos_words() {
        // Each message as real Pebble 1.32.1 answers `GET /v1/notices?after=<value>`.
        let layout = "as \"2006-01-02T15:04:05Z07:00\": ";
        for (value, want) in [
            (
                "bad",
                format!("parsing time \"bad\" {layout}cannot parse \"bad\" as \"2006\""),
            ),
            (
                "2024",
                format!("parsing time \"2024\" {layout}cannot parse \"\" as \"-\""),
            ),
            (
                "2024x",
                format!("parsing time \"2024x\" {layout}cannot parse \"x\" as \"-\""),
            ),
            (
                "2024-13-01T00:00:00Z",
                "parsing time \"2024-13-01T00:00:00Z\": month out of range".into(),
            ),
            (
                "2024-01-32T00:00:00Z",
                "parsing time \"2024-01-32T00:00:00Z\": day out of range".into(),
            ),
            (
                "2024-02-30T00:00:00Z",
                "parsing time \"2024-02-30T00:00:00Z\": day out of range".into(),
            ),
            (
                "2024-01-01T25:00:00Z",
                "parsing time \"2024-01-01T25:00:00Z\": hour out of range".into(),
            ),
            (
                "2024-01-01T00:61:00Z",
                "parsing time \"2024-01-01T00:61:00Z\": minute out of range".into(),
            ),
            (
                "2024-01-01T00:00:61Z",
                "parsing time \"2024-01-01T00:00:61Z\": second out of range".into(),
            ),
            (
                "2024-01-01",
                format!("parsing time \"2024-01-01\" {layout}cannot parse \"\" as \"T\""),
            ),
            (
                "2024-01-01T00:00:00",
                format!(
                    "parsing time \"2024-01-01T00:00:00\" {layout}cannot parse \"\" as \"Z07:00\""
                ),
            ),
            (
                "2024-01-01T00:00:00Zjunk",
                "parsing time \"2024-01-01T00:00:00Zjunk\": extra text: \"junk\"".into(),
            ),
            (
                "2024-01-01T00:00:00+0100",
                format!(
                    "parsing time \"2024-01-01T00:00:00+0100\" {layout}cannot parse \"+0100\" as \"Z07:00\""
                ),
            ),
            (
                "2024-1-01T00:00:00Z",
                format!(
                    "parsing time \"2024-1-01T00:00:00Z\" {layout}cannot parse \"1-01T00:00:00Z\" as \"01\""
                ),
            ),
        ] {
            assert_eq!(parse_rfc3339_go(value).unwrap_err(), want, "{value}");
        }
        let t = parse_rfc3339_go("2024-01-01T00:00:00.5Z").unwrap();
        assert_eq!(rfc3339(t), "2024-01-01T00:00:00.5Z");
        let t = parse_rfc3339_go("2024-03-04T05:06:07.123456789+02:00").unwrap();
        assert_eq!(t.offset().whole_hours(), 2);
        assert_eq!(t.nanosecond(), 123_456_789);
        assert_eq!(go_quote("a\"b\u{1}é"), "\"a\\\"b\\x01\\xc3\\xa9\"");
    }
}
