//! Go's `%q` string quoting (`strconv.Quote`), used to build Pebble's exact messages.

/// Quotes `s` the way Go's `strconv.Quote` does: double quotes, with `"`, `\`, control
/// and non-printable characters escaped, and printable Unicode kept as is.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{07}' => out.push_str("\\a"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{0b}' => out.push_str("\\v"),
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space; not control, format, separator (other than space) or private-use characters.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u,
        0x00ad | 0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f | 0x180e | 0x200b..=0x200f
        | 0x202a..=0x202e | 0x2060..=0x206f | 0xd800..=0xdfff | 0xe000..=0xf8ff | 0xfeff
        | 0xfff9..=0xfffb | 0xfffe | 0xffff | 0xf0000..=0x10ffff)
}

#[cfg(test)]
mod tests {
    use super::quote;

    fn check(input: &str, expected: &str) {
        assert_eq!(quote(input), expected, "quoting {input:?}");
    }

    #[test]
    fn quotes_like_go() {
        check("svc", r#""svc""#);
        check("a\"b\\c", r#""a\"b\\c""#);
        check("tab\tnl\n", r#""tab\tnl\n""#);
        check("\u{0}\u{1b}\u{7f}", r#""\x00\x1b\x7f""#);
        check("héllo ☃", "\"héllo ☃\"");
        check("\u{200b}", r#""\u200b""#);
        check("", r#""""#);
    }
}
