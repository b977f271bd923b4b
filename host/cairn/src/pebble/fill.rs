//! Pebble's wrapping of API error messages (`fill` in its CLI): to the terminal's width
//! (else `$COLUMNS`, else 80; at most 100; one column kept free), under the `error: `
//! prefix, with later lines indented to it. Lines are broken as Go's `go/doc/comment`
//! printer breaks them: the fewest lines longer than the width, then the least sum of
//! squared leftover space per line (the last line free), plus 64 for a line not ending in
//! `.`, `,`, `:` or `;`.

/// The width Pebble wraps to: the terminal's, else `COLUMNS`, else 80 (under 40 is 80),
/// at most 100, less one.
fn width() -> usize {
    let term = terminal_width().filter(|w| *w > 0);
    let cols = term.or_else(|| std::env::var("COLUMNS").ok()?.parse().ok());
    let w = cols.filter(|w| *w >= 40).unwrap_or(80);
    w.min(100) - 1
}

/// Standard output's terminal width, if it is a terminal.
fn terminal_width() -> Option<usize> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    Some(usize::from(size.ws_col))
}

/// `message` wrapped as Pebble's CLI prints an API error after `error: `.
pub fn fill_error(message: &str) -> String {
    fill(message, "error: ".len(), width())
}

/// `para` wrapped to `width` columns with `indent` spaces before every line but the first
/// (whose place the caller's prefix takes).
fn fill(para: &str, indent: usize, width: usize) -> String {
    let max = width.saturating_sub(indent);
    let words: Vec<&str> = para.split_whitespace().collect();
    if words.is_empty() {
        return String::new();
    }
    let lines = breaks(&words, max);
    let pad = " ".repeat(indent);
    lines
        .windows(2)
        .map(|w| words[w[0]..w[1]].join(" "))
        .collect::<Vec<_>>()
        .join(&format!("\n{pad}"))
}

/// The cost of a line: (how far past `max` it goes, squared; the squared leftover plus the
/// punctuation penalty), compared in that order.
type Cost = (i64, i64);

/// Where each line starts (with `words.len()` last): a least-cost division by the cost
/// above, by dynamic programming over every line start.
fn breaks(words: &[&str], max: usize) -> Vec<usize> {
    let n = words.len();
    let mut total = vec![0usize; n + 1];
    for (i, w) in words.iter().enumerate() {
        total[i + 1] = total[i] + w.chars().count() + 1;
    }
    let weight = |i: usize, j: usize| -> Cost {
        let len = total[j] - 1 - total[i];
        if j == n && len <= max {
            return (0, 0);
        }
        let penalty = match words[j - 1].chars().last() {
            Some('.' | ',' | ':' | ';') => 0,
            _ => 64,
        };
        let d = max as i64 - len as i64;
        if len > max {
            (d * d, penalty)
        } else {
            (0, d * d + penalty)
        }
    };
    let add = |a: Cost, b: Cost| (a.0 + b.0, a.1 + b.1);
    let mut best: Vec<Cost> = vec![(0, 0)];
    let mut from = vec![0usize];
    for j in 1..=n {
        let mut pick = (add(best[0], weight(0, j)), 0);
        for (i, before) in best.iter().enumerate().take(j).skip(1) {
            let c = add(*before, weight(i, j));
            // Ties go to the later start, as the deque of Go's algorithm retires on ties.
            if c <= pick.0 {
                pick = (c, i);
            }
        }
        best.push(pick.0);
        from.push(pick.1);
    }
    let mut seq = vec![n];
    let mut j = n;
    while j > 0 {
        j = from[j];
        seq.push(j);
    }
    seq.reverse();
    seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_errors_wrap_as_pebbles_do() {
        // What Pebble v1.32.1 printed for this error at 80 columns.
        let msg = "invalid identity for \"1x\": identity name \"\" invalid: must start with an alphabetic character and only contain alphanumeric characters, underscore, and hyphen";
        assert_eq!(
            fill(msg, 7, 79),
            "invalid identity for \"1x\": identity name \"\" invalid: must start with\n       an alphabetic character and only contain alphanumeric characters,\n       underscore, and hyphen"
        );
        assert_eq!(fill("short one", 7, 79), "short one");
        assert_eq!(fill("", 7, 79), "");
    }
}
