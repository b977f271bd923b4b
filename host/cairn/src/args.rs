//! Command-line pieces shared by the host commands and the Pebble-style commands: the
//! `--format` option, Pebble's `--abs-time` and `--no-wait` mixins, and Go-style durations.

use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};

/// How a command prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Tables and text for people (the default).
    Text,
    /// JSON for programs.
    Json,
}

// By hand rather than derived: a derived `ValueEnum` turns the variants' doc comments into
// help text, which would change every `--help` page into clap's long layout.
impl ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &[Format::Text, Format::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Format::Text => "text",
            Format::Json => "json",
        }))
    }
}

/// `--format`, as Pebble's format mixin.
#[derive(Args)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl FormatArgs {
    /// True for `--format json`.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// `--format` of Pebble's listings: text, json or yaml.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Tables and Pebble's text.
    Text,
    /// One line of JSON.
    Json,
    /// The same value as YAML, as Go's `yaml.v3` writes it.
    Yaml,
}

/// `--format`, as Pebble's format mixin (`text`, `json` or `yaml`).
#[derive(Args)]
pub struct ListFormatArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

/// Fields Pebble's client types hold as `time.Time`: `yaml.v3` writes them unquoted.
const TIME_FIELDS: &[&str] = &[
    "spawn-time",
    "ready-time",
    "first-occurred",
    "last-occurred",
    "last-repeated",
    "current-since",
];

impl ListFormatArgs {
    /// True for the default text output.
    pub fn text(&self) -> bool {
        self.format == ListFormat::Text
    }

    /// Writes a value given as its JSON as the format asks (Pebble's `formatNonText`).
    pub fn write(&self, out: &mut dyn std::io::Write, json: &str) -> anyhow::Result<()> {
        match self.format {
            ListFormat::Yaml => write_yaml(out, json),
            _ => Ok(writeln!(out, "{json}")?),
        }
    }
}

/// Writes a value given as its JSON as YAML, as Pebble's `yaml.Marshal` of it.
pub fn write_yaml(out: &mut dyn std::io::Write, json: &str) -> anyhow::Result<()> {
    let yaml = cairn_plan::json_to_yaml(json, TIME_FIELDS)
        .map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))?;
    out.write_all(yaml.as_bytes())?;
    Ok(())
}

/// `--abs-time`, as Pebble's time mixin.
#[derive(Args)]
pub struct TimeArgs {
    /// Display absolute times (in RFC 3339 format). Otherwise, display relative times up to
    /// 60 days, then YYYY-MM-DD.
    #[arg(long)]
    pub abs_time: bool,
}

/// `--no-wait`, as Pebble's wait mixin.
#[derive(Args)]
pub struct WaitArgs {
    /// Do not wait for the operation to finish but just print the change id.
    #[arg(long)]
    pub no_wait: bool,
}

/// `cairn run --limit`: the budget of every application that does not override it.
#[derive(Args)]
pub struct BudgetArgs {
    /// Default limit of every application, KEY=VALUE (repeatable). Keys: memory, deadline
    /// (at most --memory-limit-mib and --event-deadline, their defaults), log-bytes (1MiB
    /// per event), status-bytes (1KiB), state-bytes (1MiB), relation-bytes (1MiB written
    /// per event), layer-bytes (1MiB of a container's layers), layers (100), services (100), checks (20), check-period
    /// (shortest, 100ms), log-targets (4), execs (16 at once), queue (256 events), deferred (32),
    /// workload-memory, workload-cpu, workload-pids (unlimited), host-cpu (100m: the host's
    /// CPU for an app's Pebble API requests and process starts).
    #[arg(long = "limit", value_name = "KEY=VALUE", value_parser = parse_limit)]
    pub limits: Vec<(String, String)>,
}

/// A budget setting `key=value` (`value` may be `default` to drop an app's override),
/// checked as the daemon will.
pub fn parse_limit(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("invalid limit {s:?}: expected key=value"))?;
    let pair = (k.to_string(), v.to_string());
    cairn_runtime::budget::normalize_overrides(&Default::default(), std::slice::from_ref(&pair))?;
    Ok(pair)
}

/// A Go-style duration (`5m`, `1h30m`, `200ms`) as clap's value parser, with the plan's
/// parser so that the CLI and layers accept the same texts.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    cairn_plan::parse_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        format: FormatArgs,
        #[arg(long, value_parser = parse_duration)]
        after: Option<Duration>,
    }

    #[test]
    fn format_defaults_to_text_and_refuses_other_names() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert!(!cli.format.json());
        let cli = Cli::try_parse_from(["x", "--format", "json"]).unwrap();
        assert!(cli.format.json());
        let err = Cli::try_parse_from(["x", "--format", "yaml"])
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("error: invalid value 'yaml' for '--format <FORMAT>'\n  [possible values: text, json]"),
            "{err}"
        );
    }

    #[test]
    fn limits_are_checked_as_the_daemon_checks_them() {
        #[derive(Parser)]
        struct Run {
            #[command(flatten)]
            budget: BudgetArgs,
        }
        let r = Run::try_parse_from(["x", "--limit", "log-bytes=2MiB", "--limit", "queue=default"])
            .unwrap();
        assert_eq!(
            r.budget.limits,
            [
                ("log-bytes".to_string(), "2MiB".to_string()),
                ("queue".to_string(), "default".to_string())
            ]
        );
        let err = Run::try_parse_from(["x", "--limit", "logs=1"])
            .err()
            .unwrap();
        assert!(err.to_string().contains("unknown limit \"logs\""), "{err}");
        assert!(Run::try_parse_from(["x", "--limit", "execs"]).is_err());
    }

    #[test]
    fn durations_are_go_style() {
        let cli = Cli::try_parse_from(["x", "--after", "1m30s"]).unwrap();
        assert_eq!(cli.after, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["x", "--after", "soon"]).is_err());
    }
}
