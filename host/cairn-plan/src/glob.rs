//! Go's `path.Match`, which Pebble's files API uses to filter a directory listing by a
//! `pattern`. One implementation serves the supervisor and the SDK's testing harness, so
//! both read a pattern the same way.
//!
//! The rules: `*` matches any run of characters other than `/`, `?` any one character
//! other than `/`, `[...]` a class of characters and ranges (`[a-z0-9]`), negated with a
//! leading `^` (a leading `!` is an ordinary member, unlike in shells), and `\` makes the
//! next character literal, inside a class too. A class must hold at least one member; a
//! `-` or `]` that starts a member, a range left open and a trailing `\` make the pattern
//! malformed ([`BadPattern`]). As in Go, a malformed pattern is reported even when the
//! name fails to match before the bad part is reached.
//!
//! Go matches byte by byte; names here are `str`, so characters are compared instead,
//! which gives the same answers for valid UTF-8.

/// A pattern that Go's `path.Match` refuses; the message is Go's `path.ErrBadPattern`.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[error("syntax error in pattern")]
pub struct BadPattern;

/// Whether `name` matches the shell-style `pattern`, as Go's `path.Match` decides.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    let mut pattern = pattern.as_slice();
    let mut name = name.as_slice();
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = next_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star takes the rest of the name, unless it crosses a `/`.
            return Ok(!name.contains(&'/'));
        }
        // The chunk right here; a last chunk must use up the name.
        if let Some(after) = match_chunk(chunk, name)?
            && (after.is_empty() || !pattern.is_empty())
        {
            name = after;
            continue;
        }
        if star {
            // Let the star take one more character at a time, never a `/`.
            for skip in 1..=name.len() {
                if name[skip - 1] == '/' {
                    break;
                }
                if let Some(after) = match_chunk(chunk, &name[skip..])? {
                    if pattern.is_empty() && !after.is_empty() {
                        continue;
                    }
                    name = after;
                    continue 'chunks;
                }
            }
        }
        // No match; the rest of the pattern must still be well formed.
        while !pattern.is_empty() {
            let (_, chunk, rest) = next_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, &[])?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off the leading stars (whether there were any) and the chunk up to the next
/// star outside a class.
fn next_chunk(pattern: &[char]) -> (bool, &[char], &[char]) {
    let stars = pattern.iter().take_while(|c| **c == '*').count();
    let pattern = &pattern[stars..];
    let mut in_class = false;
    let mut end = 0;
    while end < pattern.len() {
        match pattern[end] {
            // The escaped character belongs to the chunk; a trailing `\` is caught later.
            '\\' if end + 1 < pattern.len() => end += 1,
            '[' => in_class = true,
            ']' => in_class = false,
            '*' if !in_class => break,
            _ => {}
        }
        end += 1;
    }
    (stars > 0, &pattern[..end], &pattern[end..])
}

/// Matches a star-free chunk against the start of `name`: `Some(rest of the name)` on a
/// match. After a mismatch the chunk is still read to the end, to report a bad pattern.
fn match_chunk<'n>(
    mut chunk: &[char],
    mut name: &'n [char],
) -> Result<Option<&'n [char]>, BadPattern> {
    let mut failed = false;
    while let Some((&first, rest)) = chunk.split_first() {
        chunk = rest;
        match first {
            '[' => {
                let c = take(&mut name, &mut failed);
                let negated = chunk.first() == Some(&'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut member = false;
                let mut members = 0;
                loop {
                    if members > 0 && chunk.first() == Some(&']') {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&'-') {
                        (hi, chunk) = class_char(&chunk[1..])?;
                    }
                    member |= c.is_some_and(|c| lo <= c && c <= hi);
                    members += 1;
                }
                if member == negated {
                    failed = true;
                }
            }
            '?' => {
                if take(&mut name, &mut failed) == Some('/') {
                    failed = true;
                }
            }
            literal => {
                let literal = if literal == '\\' {
                    let (&escaped, rest) = chunk.split_first().ok_or(BadPattern)?;
                    chunk = rest;
                    escaped
                } else {
                    literal
                };
                if take(&mut name, &mut failed).is_some_and(|c| c != literal) {
                    failed = true;
                }
            }
        }
    }
    Ok((!failed).then_some(name))
}

/// Takes the next name character, unless the match has already failed; running out of
/// name fails it.
fn take(name: &mut &[char], failed: &mut bool) -> Option<char> {
    if *failed {
        return None;
    }
    match name.split_first() {
        Some((c, rest)) => {
            *name = rest;
            Some(*c)
        }
        None => {
            *failed = true;
            None
        }
    }
}

/// Reads one end of a class member (an escaped character allowed) and returns it with the
/// rest of the class, which cannot be empty: the class still needs its `]`.
fn class_char(chunk: &[char]) -> Result<(char, &[char]), BadPattern> {
    let chunk = match chunk.first() {
        None | Some('-') | Some(']') => return Err(BadPattern),
        Some('\\') => &chunk[1..],
        Some(_) => chunk,
    };
    match chunk.split_first() {
        Some((&c, rest)) if !rest.is_empty() => Ok((c, rest)),
        _ => Err(BadPattern),
    }
}

#[cfg(test)]
mod tests {
    use super::{BadPattern, glob_match};

    fn matches(pattern: &str, name: &str) -> bool {
        glob_match(pattern, name).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
    }

    #[test]
    fn stars_and_question_marks_stop_at_slashes() {
        for (pattern, name, want) in [
            ("abc", "abc", true),
            ("*", "", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("*.txt", "notes.txt", true),
            ("*.txt", "notes.md", false),
            ("*x", "xxx", true),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern:?} on {name:?}");
        }
    }

    #[test]
    fn classes_negate_with_a_caret_only() {
        for (pattern, name, want) in [
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a[^a]b", "a☺b", true),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            // `!` is a member like any other, not a negation.
            ("[!a]", "b", false),
            ("[!a]", "!", true),
            ("[!a]", "a", true),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern:?} on {name:?}");
        }
    }

    #[test]
    fn backslash_makes_the_next_character_literal() {
        for (pattern, name, want) in [
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a\\*b", "axb", false),
            ("\\?", "?", true),
            ("\\?", "x", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "a", false),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern:?} on {name:?}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors_even_after_a_mismatch() {
        for (pattern, name) in [
            ("[", "a"),
            ("[^", "a"),
            ("[^bc", "a"),
            ("a[", "a"),
            ("a[", "ab"),
            ("a[", "x"),
            ("a/b[", "x"),
            ("\\", "a"),
            ("a\\", "a"),
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[-x]", "x"),
            ("[a-b-c]", "a"),
            ("*[", "abc"),
            ("x*[", "abc"),
        ] {
            assert_eq!(
                glob_match(pattern, name),
                Err(BadPattern),
                "{pattern:?} on {name:?}"
            );
        }
        assert_eq!(BadPattern.to_string(), "syntax error in pattern");
    }
}
