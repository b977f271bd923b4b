//! Implicit typing of plain scalars, as `yaml.v3`'s `resolve` does (YAML 1.2 core schema
//! plus 1.1-style octals and timestamps), used both to decode values and to decide when
//! the emitter must quote a string.

use std::sync::LazyLock;

use regex::Regex;

/// A resolved scalar value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str,
    Timestamp,
    Merge,
}

static YAML_FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").expect("valid regex")
});

/// The tag a plain scalar resolves to (`!!null`, `!!bool`, `!!int`, `!!float`, `!!timestamp`, `!!str`...).
pub(crate) fn resolve_tag(value: &str) -> &'static str {
    tag_of(&resolve_plain(value))
}

/// The short tag of a resolved value.
pub(crate) fn tag_of(resolved: &Resolved) -> &'static str {
    match resolved {
        Resolved::Null => "!!null",
        Resolved::Bool(_) => "!!bool",
        Resolved::Int(_) | Resolved::Uint(_) => "!!int",
        Resolved::Float(_) => "!!float",
        Resolved::Str => "!!str",
        Resolved::Timestamp => "!!timestamp",
        Resolved::Merge => "!!merge",
    }
}

/// Resolves `value` under an explicit or implied `tag` (empty or the node's tag). A value
/// that cannot have the tag it was explicitly given is an error (`yaml.v3`'s message).
pub(crate) fn resolve(tag: &str, value: &str) -> Result<(String, Resolved), String> {
    match tag {
        "" | "!!str" | "!!bool" | "!!int" | "!!float" | "!!null" | "!!timestamp" => {}
        other => return Ok((other.to_string(), Resolved::Str)),
    }
    if tag == "!!str" {
        return Ok(("!!str".to_string(), Resolved::Str));
    }
    let resolved = if tag == "!!timestamp" || tag.is_empty() {
        resolve_plain(value)
    } else {
        match resolve_plain(value) {
            Resolved::Timestamp => Resolved::Str,
            other => other,
        }
    };
    let rtag = tag_of(&resolved);
    if tag.is_empty() || tag == rtag {
        return Ok((rtag.to_string(), resolved));
    }
    if tag == "!!float" {
        match resolved {
            Resolved::Int(i) => return Ok(("!!float".to_string(), Resolved::Float(i as f64))),
            Resolved::Uint(u) => return Ok(("!!float".to_string(), Resolved::Float(u as f64))),
            _ => {}
        }
    }
    Err(format!("yaml: cannot decode {rtag} `{value}` as a {tag}"))
}

/// Resolves an untagged plain scalar.
pub(crate) fn resolve_plain(value: &str) -> Resolved {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    let first = value.as_bytes()[0];
    match first {
        b'.' => {
            if let Some(f) = go_parse_float(value) {
                return Resolved::Float(f);
            }
        }
        b'+' | b'-' | b'0'..=b'9' => {
            if is_timestamp(value) {
                return Resolved::Timestamp;
            }
            let plain = value.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Resolved::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Resolved::Uint(u);
            }
            if YAML_FLOAT.is_match(&plain)
                && let Ok(f) = plain.parse::<f64>()
            {
                return Resolved::Float(f);
            }
            let (negative, digits) = match plain.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, plain.as_str()),
            };
            for (prefix, radix) in [("0b", 2), ("0o", 8)] {
                if let Some(rest) = digits.strip_prefix(prefix) {
                    if rest.is_empty() || rest.starts_with(['+', '-']) {
                        break;
                    }
                    if let Ok(u) = u64::from_str_radix(rest, radix) {
                        if negative {
                            if u <= 1 << 63 {
                                return Resolved::Int((u as i64).wrapping_neg());
                            }
                        } else if let Ok(i) = i64::try_from(u) {
                            return Resolved::Int(i);
                        } else {
                            return Resolved::Uint(u);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    Resolved::Str
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b`/leading-`0` octal prefixes.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let magnitude = go_parse_uint(rest)?;
    if negative {
        if magnitude <= 1 << 63 {
            Some((magnitude as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no sign allowed).
fn go_parse_uint(s: &str) -> Option<u64> {
    let (radix, digits) = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
    {
        (16, rest)
    } else if let Some(rest) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, rest)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input (also `inf`, `infinity`, `nan`).
pub(crate) fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" || lower == "nan" {
        return s.parse::<f64>().ok();
    }
    if body.is_empty()
        || !body
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Whether a plain scalar is one of the timestamp forms `yaml.v3` recognises
/// (`2006-1-2`, `2006-1-2T15:4:5.999999999Z07:00`, `2006-1-2 15:4:5.999999999`).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    static DATE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:(?:([Tt])|( ))([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$",
        )
        .expect("valid regex")
    });
    let Some(c) = DATE.captures(s) else {
        return false;
    };
    let year: u32 = c[1].parse().unwrap_or(0);
    let month: u32 = c[2].parse().unwrap_or(0);
    let day: u32 = c[3].parse().unwrap_or(0);
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days {
        return false;
    }
    if c.get(6).is_some() {
        let hour: u32 = c[6].parse().unwrap_or(99);
        let minute: u32 = c[7].parse().unwrap_or(99);
        let second: u32 = c[8].parse().unwrap_or(99);
        if hour > 23 || minute > 59 || second > 59 {
            return false;
        }
        // The "T" forms need a zone; the space-separated form must not have one.
        let has_zone = c.get(10).is_some();
        if c.get(4).is_some() != has_zone {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(value: &str, expected: Resolved) {
        assert_eq!(resolve_plain(value), expected, "resolving {value:?}");
    }

    #[test]
    fn resolves_like_yaml_v3() {
        check("~", Resolved::Null);
        check("", Resolved::Null);
        check("True", Resolved::Bool(true));
        check("yes", Resolved::Str);
        check("on", Resolved::Str);
        check("10", Resolved::Int(10));
        check("-10", Resolved::Int(-10));
        check("0x1F", Resolved::Int(31));
        check("010", Resolved::Int(8));
        check("0o17", Resolved::Int(15));
        check("0b101", Resolved::Int(5));
        check("1_000", Resolved::Int(1000));
        check("18446744073709551615", Resolved::Uint(u64::MAX));
        check("1.5", Resolved::Float(1.5));
        check("1e3", Resolved::Float(1000.0));
        check(".5", Resolved::Float(0.5));
        check("-.inf", Resolved::Float(f64::NEG_INFINITY));
        check("2024-01-02", Resolved::Timestamp);
        check("2024-1-2T15:04:05Z", Resolved::Timestamp);
        check("2024-02-30", Resolved::Str);
        check("12:30", Resolved::Str);
        check("1.2.3", Resolved::Str);
        check("-", Resolved::Str);
        check("<<", Resolved::Merge);
        check("echo hi", Resolved::Str);
        check("500ms", Resolved::Str);
    }

    #[test]
    fn explicit_tags() {
        assert_eq!(
            resolve("!!str", "10").unwrap(),
            ("!!str".to_string(), Resolved::Str)
        );
        assert_eq!(
            resolve("!!float", "10").unwrap(),
            ("!!float".to_string(), Resolved::Float(10.0))
        );
        assert_eq!(
            resolve("!!int", "abc").unwrap_err(),
            "yaml: cannot decode !!str `abc` as a !!int"
        );
        assert_eq!(
            resolve("!custom", "abc").unwrap(),
            ("!custom".to_string(), Resolved::Str)
        );
    }
}
