//! Go duration strings: parsing as `time.ParseDuration` does and formatting as
//! `time.Duration.String()` does, since Pebble layers and API values use them.

use std::time::Duration;

/// Why a duration string was rejected; `Display` is Go's `time.ParseDuration` message.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Malformed or out of range (`time: invalid duration "x"`).
    #[error("time: invalid duration {}", time_quote(.0))]
    Invalid(String),
    /// A number without a unit (`time: missing unit in duration "1"`).
    #[error("time: missing unit in duration {}", time_quote(.0))]
    MissingUnit(String),
    /// An unknown unit (`time: unknown unit "x" in duration "1x"`).
    #[error("time: unknown unit {} in duration {}", time_quote(.unit), time_quote(.input))]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A negative duration, which Go accepts but a `std::time::Duration` cannot hold.
    #[error("time: invalid duration {} (negative durations are not supported)", time_quote(.0))]
    Negative(String),
}

const LIMIT: u64 = 1 << 63;

/// Parses a Go duration string such as `"500ms"`, `"1m30s"`, `"1.5h"` or `"0"`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(input.to_string());
    let mut s = input.as_bytes();
    let mut negative = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let before = s.len();
        let (mut value, rest) = leading_int(s).ok_or_else(invalid)?;
        s = rest;
        let had_int = before != s.len();
        let mut fraction = 0u64;
        let mut scale = 1f64;
        let mut had_fraction = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let (f, sc, rest) = leading_fraction(s);
            fraction = f;
            scale = sc;
            s = rest;
            had_fraction = before != s.len();
        }
        if !had_int && !had_fraction {
            return Err(invalid());
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_string()));
        }
        let unit_bytes = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_bytes {
            b"ns" => 1,
            b"us" | [0xc2, 0xb5, b's'] | [0xce, 0xbc, b's'] => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: String::from_utf8_lossy(unit_bytes).into_owned(),
                    input: input.to_string(),
                });
            }
        };
        if value > LIMIT / unit {
            return Err(invalid());
        }
        value *= unit;
        if fraction > 0 {
            // Same float arithmetic as Go, so rounding matches.
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(invalid());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative(input.to_string()))
        };
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total))
}

/// Consumes leading decimal digits; `None` on overflow past 2^63.
fn leading_int(s: &[u8]) -> Option<(u64, &[u8])> {
    let mut x: u64 = 0;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(s[i] - b'0');
        if x > LIMIT {
            return None;
        }
        i += 1;
    }
    Some((x, &s[i..]))
}

/// Consumes the digits after a decimal point, keeping as many as fit.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let mut x: u64 = 0;
    let mut scale = 1f64;
    let mut overflow = false;
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        if !overflow {
            if x > (LIMIT - 1) / 10 {
                overflow = true;
            } else {
                let y = x * 10 + u64::from(s[i] - b'0');
                if y > LIMIT {
                    overflow = true;
                } else {
                    x = y;
                    scale *= 10.0;
                }
            }
        }
        i += 1;
    }
    (x, scale, &s[i..])
}

/// Formats a duration as Go's `Duration.String()`: `0s`, `500ms`, `1.5µs`, `1m30s`, `1h0m0s`.
pub fn format_duration(d: Duration) -> String {
    let mut u = d.as_nanos();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "\u{b5}s")
        } else {
            (6, "ms")
        };
        let (frac, int) = fmt_frac(u, prec);
        return format!("{int}{frac}{unit}");
    }
    let (frac, secs) = fmt_frac(u, 9);
    u = secs;
    let mut out = format!("{}{frac}s", u % 60);
    u /= 60;
    if u > 0 {
        out = format!("{}m{out}", u % 60);
        u /= 60;
        if u > 0 {
            out = format!("{u}h{out}");
        }
    }
    out
}

/// Splits off `prec` fractional digits: returns (".ddd" without trailing zeros, integer part).
fn fmt_frac(v: u128, prec: u32) -> (String, u128) {
    let divisor = 10u128.pow(prec);
    let frac = v % divisor;
    let int = v / divisor;
    if frac == 0 {
        return (String::new(), int);
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), int)
}

/// Go's `time` package quoting: ASCII kept (with `"` and `\` escaped), other bytes as `\xNN`.
fn time_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x80 {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(input: &str, nanos: u64) {
        assert_eq!(
            parse_duration(input),
            Ok(Duration::from_nanos(nanos)),
            "parsing {input:?}"
        );
    }

    fn check_parse_err(input: &str, message: &str) {
        let err = parse_duration(input).expect_err(input);
        assert_eq!(err.to_string(), message, "parsing {input:?}");
    }

    fn check_format(nanos: u64, expected: &str) {
        assert_eq!(
            format_duration(Duration::from_nanos(nanos)),
            expected,
            "formatting {nanos}ns"
        );
    }

    #[test]
    fn parses_go_durations() {
        check_parse("0", 0);
        check_parse("-0", 0);
        check_parse("+0", 0);
        check_parse("0s", 0);
        check_parse("5s", 5_000_000_000);
        check_parse("+5s", 5_000_000_000);
        check_parse("500ms", 500_000_000);
        check_parse("1m30s", 90_000_000_000);
        check_parse("2h", 7_200_000_000_000);
        check_parse("1.5h", 5_400_000_000_000);
        check_parse("1.s", 1_000_000_000);
        check_parse(".5s", 500_000_000);
        check_parse("10ns", 10);
        check_parse("11us", 11_000);
        check_parse("12µs", 12_000);
        check_parse("12μs", 12_000);
        check_parse("3h2m1.5s", 10_921_500_000_000);
        check_parse("1.0000000001s", 1_000_000_000);
        check_parse("0.100000000000000000000h", 360_000_000_000);
        check_parse("9223372036854775807ns", 9_223_372_036_854_775_807);
    }

    #[test]
    fn rejects_bad_durations() {
        check_parse_err("", r#"time: invalid duration """#);
        check_parse_err("foo", r#"time: invalid duration "foo""#);
        check_parse_err("3", r#"time: missing unit in duration "3""#);
        check_parse_err("-", r#"time: invalid duration "-""#);
        check_parse_err("s", r#"time: invalid duration "s""#);
        check_parse_err(".", r#"time: invalid duration ".""#);
        check_parse_err(".s", r#"time: invalid duration ".s""#);
        check_parse_err("1d", r#"time: unknown unit "d" in duration "1d""#);
        check_parse_err(
            "1µ",
            r#"time: unknown unit "\xc2\xb5" in duration "1\xc2\xb5""#,
        );
        check_parse_err(
            "9223372036854775808ns",
            r#"time: invalid duration "9223372036854775808ns""#,
        );
        check_parse_err("3000000h", r#"time: invalid duration "3000000h""#);
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
    }

    #[test]
    fn formats_like_go() {
        check_format(0, "0s");
        check_format(1, "1ns");
        check_format(1_100, "1.1µs");
        check_format(2_200_000, "2.2ms");
        check_format(500_000_000, "500ms");
        check_format(1_000_000_000, "1s");
        check_format(3_300_000_000, "3.3s");
        check_format(30_000_000_000, "30s");
        check_format(90_000_000_000, "1m30s");
        check_format(240_000_000_000, "4m0s");
        check_format(3_600_000_000_000, "1h0m0s");
        check_format(4_800_000_000_000, "1h20m0s");
        check_format(5_400_500_000_000, "1h30m0.5s");
        check_format(9_223_372_036_854_775_807, "2562047h47m16.854775807s");
    }

    #[test]
    fn round_trips() {
        for text in ["1h0m0s", "1m30s", "500ms", "1.5µs", "2h45m10.25s"] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
        }
    }
}
