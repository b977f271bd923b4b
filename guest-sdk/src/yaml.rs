//! A small block-style YAML writer for the layer types: serde's JSON of a value, rewritten
//! in field order with every string quoted JSON-style (valid YAML double-quoted scalars), so
//! no value is ever misread as a number or a bool. Kept apart from the layer types so the
//! SDK needs no YAML serializer of its own inside the guest.

use serde::Serialize;

/// Renders a serializable value as block-style YAML in field order, quoting every
/// string JSON-style (valid YAML double-quoted scalars), so no value is ever misread as a
/// number or a bool.
pub(crate) fn to_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    // Layer types only hold strings, numbers, bools, lists and string-keyed maps, which
    // always serialize.
    let json = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let node = JsonReader {
        text: &json,
        pos: 0,
    }
    .value();
    let mut out = String::new();
    match &node {
        Node::Map(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Node::List(l) if !l.is_empty() => write_list(&mut out, l, 0),
        other => {
            write_scalar(&mut out, other);
            out.push('\n');
        }
    }
    out
}

/// A JSON value in the order serde wrote it; scalars are kept as their JSON text.
enum Node<'a> {
    Scalar(&'a str),
    Map(Vec<(&'a str, Node<'a>)>),
    List(Vec<Node<'a>>),
}

/// Reads serde_json's compact output (no whitespace, always well formed).
struct JsonReader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> JsonReader<'a> {
    fn peek(&self) -> u8 {
        self.text.as_bytes().get(self.pos).copied().unwrap_or(b'}')
    }

    fn value(&mut self) -> Node<'a> {
        match self.peek() {
            b'{' => {
                self.pos += 1;
                let mut entries = Vec::new();
                while self.peek() != b'}' {
                    let key = self.string();
                    self.pos += 1; // ':'
                    entries.push((key, self.value()));
                    if self.peek() == b',' {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Node::Map(entries)
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek() != b']' && self.pos < self.text.len() {
                    items.push(self.value());
                    if self.peek() == b',' {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
                Node::List(items)
            }
            b'"' => Node::Scalar(self.string()),
            _ => {
                let start = self.pos;
                while self.pos < self.text.len() && !matches!(self.peek(), b',' | b'}' | b']') {
                    self.pos += 1;
                }
                Node::Scalar(&self.text[start..self.pos])
            }
        }
    }

    fn string(&mut self) -> &'a str {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        self.pos += 1;
        while self.pos < bytes.len() && bytes[self.pos] != b'"' {
            self.pos += if bytes[self.pos] == b'\\' { 2 } else { 1 };
        }
        self.pos += 1;
        &self.text[start..self.pos.min(bytes.len())]
    }
}

fn write_map(out: &mut String, map: &[(&str, Node<'_>)], indent: usize) {
    for (key, value) in map {
        pad(out, indent);
        write_key(out, key);
        out.push(':');
        write_nested(out, value, indent);
    }
}

fn write_list(out: &mut String, list: &[Node<'_>], indent: usize) {
    for value in list {
        pad(out, indent);
        out.push('-');
        write_nested(out, value, indent);
    }
}

fn write_nested(out: &mut String, value: &Node<'_>, indent: usize) {
    match value {
        Node::Map(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + 2);
        }
        Node::List(l) if !l.is_empty() => {
            out.push('\n');
            write_list(out, l, indent + 2);
        }
        other => {
            out.push(' ');
            write_scalar(out, other);
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Writes a map key (given as a JSON string) plain when YAML reads it back unchanged.
fn write_key(out: &mut String, quoted: &str) {
    const RESERVED: &[&str] = &["y", "yes", "n", "no", "on", "off", "true", "false", "null"];
    let key = quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or("");
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !RESERVED.contains(&key.to_ascii_lowercase().as_str());
    if plain {
        out.push_str(key);
    } else {
        write_scalar(out, &Node::Scalar(quoted));
    }
}

fn write_scalar(out: &mut String, value: &Node<'_>) {
    match value {
        // JSON scalars (quoted strings, numbers, true/false/null) are valid YAML scalars,
        // except that YAML wants DEL, the C1 controls (NEL is a line break), the Unicode
        // line and paragraph separators and the BOM escaped too.
        Node::Scalar(text) => {
            for c in text.chars() {
                if matches!(
                    c,
                    '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}'
                ) {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push(c);
                }
            }
        }
        Node::Map(_) => out.push_str("{}"),
        Node::List(_) => out.push_str("[]"),
    }
}
