//! Table-driven tests of parsing, combining, validating, rendering and ordering,
//! mostly taken from Pebble's own test cases.

mod combine;
mod dir;
mod layers;
mod mutations;
mod order;
mod parse;
mod render;

/// Removes the common leading indentation of a multi-line YAML literal (and a leading newline).
pub(crate) fn yaml(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text).trim_end();
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    out
}
