//! Service command lines: Pebble's shell-like splitting (no shell involved) and the
//! optional trailing `[ default args ]` group that `pebble run --args` replaces.

use crate::error::PlanError;
use crate::quote::quote;
use crate::types::Service;

/// Splits a command line into words the way Pebble does (`x-go/strutil/shlex`): blanks
/// separate words, `'...'` is literal, `"..."` allows `\` escapes, `\` escapes the next
/// character, and an unquoted `#` at the start of a word comments out the rest of the line.
pub fn split_command(input: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum State {
        Start,
        Word,
        Escape,
        QuotedEscape,
        DoubleQuoted,
        SingleQuoted,
        Comment,
    }
    let mut words = Vec::new();
    let mut word = String::new();
    let mut state = State::Start;
    for c in input.chars() {
        let space = matches!(c, ' ' | '\t' | '\r' | '\n');
        state = match state {
            State::Start => match c {
                _ if space => State::Start,
                '"' => State::DoubleQuoted,
                '\'' => State::SingleQuoted,
                '\\' => State::Escape,
                '#' => State::Comment,
                _ => {
                    word.push(c);
                    State::Word
                }
            },
            State::Word => match c {
                _ if space => {
                    words.push(std::mem::take(&mut word));
                    State::Start
                }
                '"' => State::DoubleQuoted,
                '\'' => State::SingleQuoted,
                '\\' => State::Escape,
                _ => {
                    word.push(c);
                    State::Word
                }
            },
            State::Escape => {
                word.push(c);
                State::Word
            }
            State::QuotedEscape => {
                word.push(c);
                State::DoubleQuoted
            }
            State::DoubleQuoted => match c {
                '"' => State::Word,
                '\\' => State::QuotedEscape,
                _ => {
                    word.push(c);
                    State::DoubleQuoted
                }
            },
            State::SingleQuoted => match c {
                '\'' => State::Word,
                _ => {
                    word.push(c);
                    State::SingleQuoted
                }
            },
            State::Comment => {
                if c == '\n' {
                    State::Start
                } else {
                    State::Comment
                }
            }
        };
    }
    match state {
        State::Start | State::Comment => {}
        State::Word => words.push(word),
        State::Escape | State::QuotedEscape => {
            return Err("EOF found after escape character".into());
        }
        State::DoubleQuoted | State::SingleQuoted => {
            return Err("EOF found when expecting closing quote".into());
        }
    }
    Ok(words)
}

/// Quotes one word so that [`split_command`] gives it back (single quotes unless all safe).
pub fn quote_word(word: &str) -> String {
    if word.is_empty() {
        return "''".to_string();
    }
    let safe = word
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&c));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\"'\"'"))
    }
}

/// Builds a command line from base words and bracketed default arguments (Pebble's `CommandString`).
pub fn command_string(base: &[String], extra: &[String]) -> String {
    let join = |words: &[String]| {
        words
            .iter()
            .map(|w| quote_word(w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = join(base);
    if !extra.is_empty() {
        out.push_str(" [ ");
        out.push_str(&join(extra));
        out.push_str(" ]");
    }
    out
}

/// Splits a command into base words and the words of its `[ ... ]` group, with Pebble's rules.
pub(crate) fn split_bracketed(command: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let args = split_command(command)?;
    let mut base = Vec::new();
    let mut extra = Vec::new();
    let mut in_brackets = false;
    let mut got_brackets = false;
    for (index, arg) in args.into_iter().enumerate() {
        if in_brackets {
            match arg.as_str() {
                "[" => return Err("cannot nest [ ... ] groups".into()),
                "]" => in_brackets = false,
                _ => extra.push(arg),
            }
            continue;
        }
        if got_brackets {
            return Err("cannot have any arguments after [ ... ] group".into());
        }
        match arg.as_str() {
            "[" if index == 0 => return Err("cannot start command with [ ... ] group".into()),
            "[" => {
                in_brackets = true;
                got_brackets = true;
            }
            "]" => return Err("cannot have ] outside of [ ... ] group".into()),
            _ => base.push(arg),
        }
    }
    Ok((base, extra))
}

impl Service {
    /// Splits the command into (base words, arguments): the arguments are `extra_args` when
    /// given (they replace the `[ ... ]` defaults, as `pebble run --args` does), else the defaults.
    pub fn parse_command(
        &self,
        extra_args: Option<&[String]>,
    ) -> Result<(Vec<String>, Vec<String>), PlanError> {
        let (base, defaults) = split_bracketed(&self.command).map_err(|message| {
            PlanError::Command(format!(
                "cannot parse service {} command: {message}",
                quote(&self.name)
            ))
        })?;
        let args = match extra_args {
            Some(args) => args.to_vec(),
            None => defaults,
        };
        Ok((base, args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn check_split(input: &str, expected: &[&str]) {
        assert_eq!(
            split_command(input),
            Ok(words(expected)),
            "splitting {input:?}"
        );
    }

    #[test]
    fn splits_like_pebble() {
        check_split("cmd arg1 \"arg2 arg3\"", &["cmd", "arg1", "arg2 arg3"]);
        check_split("  a\tb\nc  ", &["a", "b", "c"]);
        check_split("a'b c'd", &["ab cd"]);
        check_split(r#"a "x\"y\\z" 'p\q'"#, &["a", r#"x"y\z"#, r"p\q"]);
        check_split(r"a\ b", &["a b"]);
        check_split("a #comment here\nb", &["a", "b"]);
        check_split("a#b", &["a#b"]);
        check_split("'' \"\"", &["", ""]);
        check_split("", &[]);
        assert_eq!(
            split_command("foo '"),
            Err("EOF found when expecting closing quote".to_string())
        );
        assert_eq!(
            split_command("foo \"bar"),
            Err("EOF found when expecting closing quote".to_string())
        );
        assert_eq!(
            split_command("foo \\"),
            Err("EOF found after escape character".to_string())
        );
    }

    struct Case {
        command: &'static str,
        args: Option<&'static [&'static str]>,
        base: &'static [&'static str],
        extra: &'static [&'static str],
        new_command: &'static str,
    }

    #[test]
    fn parse_command_cases() {
        let cases = [
            Case {
                command: "cmd --foo bar",
                args: None,
                base: &["cmd", "--foo", "bar"],
                extra: &[],
                new_command: "cmd --foo bar",
            },
            Case {
                command: "cmd --foo bar",
                args: Some(&["-v", "--opt"]),
                base: &["cmd", "--foo", "bar"],
                extra: &["-v", "--opt"],
                new_command: "cmd --foo bar [ -v --opt ]",
            },
            Case {
                command: "cmd [ --foo bar ]",
                args: None,
                base: &["cmd"],
                extra: &["--foo", "bar"],
                new_command: "cmd [ --foo bar ]",
            },
            Case {
                command: "cmd [ --foo bar ]",
                args: Some(&[]),
                base: &["cmd"],
                extra: &[],
                new_command: "cmd",
            },
            Case {
                command: "cmd [ --foo bar ]",
                args: Some(&["--bar", "foo"]),
                base: &["cmd"],
                extra: &["--bar", "foo"],
                new_command: "cmd [ --bar foo ]",
            },
            Case {
                command: "cmd --foo bar [ ]",
                args: None,
                base: &["cmd", "--foo", "bar"],
                extra: &[],
                new_command: "cmd --foo bar",
            },
            Case {
                command: r#"cmd -v [ --foo bar -e "x [ y ] z" ]"#,
                args: None,
                base: &["cmd", "-v"],
                extra: &["--foo", "bar", "-e", "x [ y ] z"],
                new_command: "cmd -v [ --foo bar -e 'x [ y ] z' ]",
            },
        ];
        for case in cases {
            let service = Service {
                name: "svc".into(),
                command: case.command.into(),
                ..Default::default()
            };
            let args = case.args.map(words);
            let (base, extra) = service.parse_command(args.as_deref()).unwrap();
            assert_eq!(base, words(case.base), "{}", case.command);
            assert_eq!(extra, words(case.extra), "{}", case.command);
            let new_command = command_string(&base, &extra);
            assert_eq!(new_command, case.new_command);
            let reparsed = Service {
                command: new_command,
                ..service
            };
            assert_eq!(reparsed.parse_command(None).unwrap(), (base, extra));
        }
    }

    fn check_command_error(command: &str, expected: &str) {
        let service = Service {
            name: "svc".into(),
            command: command.into(),
            ..Default::default()
        };
        let err = service.parse_command(None).unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(matches!(err, PlanError::Command(_)));
    }

    #[test]
    fn bracket_errors() {
        check_command_error(
            "[ cmd --foo ]",
            r#"cannot parse service "svc" command: cannot start command with [ ... ] group"#,
        );
        check_command_error(
            "cmd -v [ foo [ --bar ] ]",
            r#"cannot parse service "svc" command: cannot nest [ ... ] groups"#,
        );
        check_command_error(
            "cmd [ --foo ] --bar",
            r#"cannot parse service "svc" command: cannot have any arguments after [ ... ] group"#,
        );
        check_command_error(
            "cmd -v ] foo",
            r#"cannot parse service "svc" command: cannot have ] outside of [ ... ] group"#,
        );
        check_command_error(
            "foo '",
            r#"cannot parse service "svc" command: EOF found when expecting closing quote"#,
        );
    }

    #[test]
    fn quotes_unsafe_words() {
        assert_eq!(quote_word(""), "''");
        assert_eq!(quote_word("a-b_c@d%e+f=g:h,i./j"), "a-b_c@d%e+f=g:h,i./j");
        assert_eq!(quote_word("it's"), r#"'it'"'"'s'"#);
        assert_eq!(
            split_command(&quote_word("it's $x")).unwrap(),
            words(&["it's $x"])
        );
    }
}
