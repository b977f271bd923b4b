//! The command line both binaries parse: the host's commands (`run`, `pebble run`, `demo`,
//! `pack`), which `cairn-host` runs, and the client commands, which `cairn` runs itself.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use crate::args::{BudgetArgs, FormatArgs, parse_duration, parse_limit};
use crate::pebble;

/// The Cairn charm host: WebAssembly charms driving a Pebble-compatible supervisor.
/// The options every command takes.
#[derive(clap::Args)]
pub struct Globals {
    /// State directory of the host.
    #[arg(long, global = true, env = "CAIRN_DIR")]
    pub dir: Option<PathBuf>,
    /// The container that Pebble-style commands act on, as <app>/<unit-number>[/<name>]
    /// (default: $PEBBLE_SOCKET or $PEBBLE/.pebble.socket).
    #[arg(long, global = true, value_name = "UNIT/NAME")]
    pub container: Option<String>,
}

/// The Cairn charm host: WebAssembly charms driving a Pebble-compatible supervisor.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// The command line of a command to the daemon alone: parsed without building the rest
/// (Pebble's forty commands, twice, were most of a client command's parsing).
#[derive(Parser)]
#[command(name = "cairn", version, about)]
pub struct ControlCli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: ControlCommand,
}

/// The name of the command in `args` (the first word that is neither an option nor a
/// global option's value), if any.
pub fn command_name(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        if word == "--dir" || word == "--container" {
            words.next();
        } else if !word.starts_with('-') {
            return Some(word);
        }
    }
    None
}

/// `cairn run --containers`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Containers {
    /// The host's filesystem.
    Shared,
    /// A root directory per container.
    Isolated,
}

/// `cairn run --tenancy`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TenancyArg {
    /// Workloads are trusted.
    Shared,
    /// Workloads are kept apart by namespaces.
    Strict,
}

/// `cairn run --tenancy-net`.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum TenancyNet {
    /// The host's network.
    Host,
    /// Loopback only.
    None,
}

/// What `cairn` does.
#[derive(Subcommand)]
pub enum Command {
    /// Run the host daemon on the state directory.
    Run {
        /// Period of update-status events (Go duration, e.g. 5m, 30s).
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        update_status_interval: Duration,
        /// CPU/wall deadline of one event.
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        event_deadline: Duration,
        /// Linear memory limit per unit, in MiB.
        #[arg(long, default_value_t = 64)]
        memory_limit_mib: usize,
        /// First retry delay of a failed event (doubles up to 60s).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        retry_delay: Duration,
        /// Where compiled components are cached (default: <dir>/cache); may be shared by
        /// several hosts of the same version.
        #[arg(long, env = "CAIRN_CACHE_DIR")]
        cache_dir: Option<PathBuf>,
        /// How unit containers see the filesystem: `shared` (the host's, as Pebble in a
        /// pod) or `isolated` (a root directory each, entered by services, exec and checks;
        /// needs root).
        #[arg(long, value_enum, default_value_t = Containers::Shared)]
        containers: Containers,
        /// `strict` keeps tenants apart from each other and the host: every container
        /// isolated, in user, pid (and with `--tenancy-net none`, network) namespaces of its
        /// own, its root an unprivileged host id, a minimal environment and capability set
        /// (see README "Tenancy"; needs root).
        #[arg(long, value_enum, default_value_t = TenancyArg::Shared)]
        tenancy: TenancyArg,
        /// The network of strict containers: `host` (the host's) or `none` (loopback only).
        #[arg(long, value_enum, default_value_t = TenancyNet::Host)]
        tenancy_net: TenancyNet,
        /// The first host uid/gid of strict containers' ranges (65536 ids each).
        #[arg(long, default_value_t = cairn_supervisor::namespaces::DEFAULT_ID_BASE)]
        tenancy_id_base: u32,
        /// Whether to use wasmtime's pooling allocator where the machine allows it
        /// (`false` to allocate instances on demand).
        #[arg(long, env = "CAIRN_POOLING", default_value_t = true, action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        pooling: bool,
        /// Also serve the per-tenant metrics (OpenMetrics text) at `GET /metrics` on this
        /// TCP address (e.g. 127.0.0.1:9464).
        #[arg(long, value_name = "ADDRESS")]
        metrics_listen: Option<String>,
        #[command(flatten)]
        budget: BudgetArgs,
    },
    #[command(flatten)]
    Control(ControlCommand),
    /// Pebble itself: `cairn pebble run` is a drop-in Pebble for a workload container.
    Pebble {
        #[command(subcommand)]
        command: PebbleCommand,
    },
    #[command(flatten)]
    Container(pebble::ClientCommand),
    /// Pack a charm directory into a `.charm` that Juju deploys (`juju deploy ./x.charm`):
    /// charmcraft's layout, with a `dispatch` that runs `cairn-dispatch` on the component.
    Pack {
        /// The charm directory (its `charmcraft.yaml`, and `charm.wasm` or its crate built
        /// for wasm32-wasip2).
        path: PathBuf,
        /// Where to write the `.charm` (default: `<name>.charm` in the working directory).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The dispatcher to pack (default: `cairn-dispatch` beside this binary).
        #[arg(long)]
        dispatcher: Option<PathBuf>,
    },
    /// Build-free tour: start a daemon on a fresh directory, deploy the examples, show
    /// events and status, change config, remove.
    Demo {
        /// Keep the daemon's state directory afterwards.
        #[arg(long)]
        keep: bool,
    },
}

/// The commands to the daemon, over its control socket.
#[derive(Subcommand)]
pub enum ControlCommand {
    /// Deploy a charm (a directory with charmcraft.yaml and its built component).
    Deploy {
        /// Charm directory, or a .wasm with charmcraft.yaml beside it.
        path: PathBuf,
        /// Application name (default: the charm's name).
        #[arg(long)]
        name: Option<String>,
        /// Config setting key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// The app's own limit KEY=VALUE, over the host's default (repeatable; keys as
        /// `cairn run --limit`).
        #[arg(long = "limit", value_name = "KEY=VALUE", value_parser = parse_limit)]
        limits: Vec<(String, String)>,
        /// Number of units to deploy (unit 0 leads).
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        num_units: u32,
    },
    /// Move an application to a new build of its charm: checked first (the component loads,
    /// its containers and queued actions still fit), then each unit gets upgrade-charm and
    /// config-changed; stored state and running workloads are kept.
    Refresh {
        /// The application.
        app: String,
        /// The charm directory (or a .wasm with charmcraft.yaml beside it).
        #[arg(long)]
        path: PathBuf,
    },
    /// Add units to an application: each gets install, config-changed, start and
    /// pebble-ready.
    AddUnit {
        /// The application.
        app: String,
        /// Number of units to add.
        #[arg(short = 'n', long = "num-units", default_value_t = 1)]
        num_units: u32,
    },
    /// Remove units: each gets stop and remove, its services are stopped and its state
    /// deleted; a leader's leadership moves to another unit (which gets leader-elected).
    RemoveUnit {
        /// The units, such as web/1.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Retry the event a unit in error is failing on, now.
    Resolve {
        /// The unit, such as web/0.
        unit: String,
        /// Drop the failing event instead and go on with the queue.
        #[arg(long)]
        no_retry: bool,
    },
    /// Show or change an application's config.
    Config {
        /// The application.
        app: String,
        /// Settings key=value.
        settings: Vec<String>,
        /// Reset a key to its default (repeatable).
        #[arg(long, value_name = "KEY")]
        reset: Vec<String>,
        /// Change the app's limit KEY=VALUE (repeatable; VALUE `default` for the host's).
        #[arg(long = "limits", value_name = "KEY=VALUE", value_parser = parse_limit)]
        limits: Vec<(String, String)>,
        /// Return once every unit has run config-changed for the new config (up to this
        /// many seconds with a value; default 300); a unit in error fails the command.
        #[arg(long, num_args = 0..=1, default_missing_value = "300", value_name = "SECONDS")]
        wait: Option<u64>,
    },
    /// Show an application's limits (its budget) and how often each was hit.
    Limits {
        /// The application.
        app: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Print every tenant's counters (events, failures, limit hits, memory, CPU) as an
    /// OpenMetrics page.
    Metrics,
    /// Show applications, units, their status and their services.
    Status {
        /// Only these applications (and their relations), as `juju status APP...`.
        apps: Vec<String>,
        /// Also show the relations (integrations) between applications.
        #[arg(long)]
        relations: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Relate two applications: `cairn integrate web db` or `web:db db:database` where
    /// endpoints are ambiguous.
    Integrate {
        /// One end: an application, or application:endpoint.
        one: String,
        /// The other end.
        other: String,
    },
    /// Remove a relation: two ends as for integrate, or a relation id.
    RemoveRelation {
        /// One end, or the relation's id.
        one: String,
        /// The other end.
        other: Option<String>,
    },
    /// Show a unit's event history (event, outcome, duration).
    Events {
        /// The unit, such as web/0.
        unit: String,
        /// Only the last N events.
        #[arg(short = 'n', long)]
        n: Option<usize>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Run an action on a unit: `cairn run-action db/0 backup target=/x --wait`.
    RunAction {
        /// The unit, such as db/0.
        unit: String,
        /// The action's name.
        action: String,
        /// Parameters key=value, typed by the action's schema.
        params: Vec<String>,
        /// Wait for the result (up to this many seconds with a value; default 300).
        #[arg(long, num_args = 0..=1, default_missing_value = "300", value_name = "SECONDS")]
        wait: Option<u64>,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Show an action run: status, results, log, failure.
    ShowAction {
        /// The action run's id.
        id: String,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Remove an application: stop and remove its units, stop their services.
    Remove {
        /// The application.
        app: String,
    },
}

/// The options `pebble run` and `pebble enter` share.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct RunFlags {
    /// Do not start the default services.
    #[arg(long)]
    pub hold: bool,
    /// Also serve the open endpoints over plain HTTP on this address (e.g. :4000).
    #[arg(long, value_name = "ADDRESS")]
    pub http: Option<String>,
    /// Also serve the API over HTTPS on this address (e.g. :8443); callers present a
    /// client certificate, which a cert identity gives access.
    #[arg(long, value_name = "ADDRESS")]
    pub https: Option<String>,
    /// Create $PEBBLE and $PEBBLE/layers if missing.
    #[arg(long)]
    pub create_dirs: bool,
    /// Seed identities from file (like update-identities --replace).
    #[arg(long, value_name = "FILE")]
    pub identities: Option<std::path::PathBuf>,
    /// Log all output from services to stdout (also PEBBLE_VERBOSE=1).
    #[arg(short, long)]
    pub verbose: bool,
}

/// `cairn pebble …`.
#[derive(Subcommand)]
pub enum PebbleCommand {
    /// Run the supervisor on $PEBBLE (default /var/lib/pebble/default), serving its API on
    /// $PEBBLE_SOCKET or $PEBBLE/.pebble.socket.
    ///
    /// Additional arguments may be given to a service's `[ default args ]` command with
    /// `--args <service> <arg>... ;` (repeatable; the list ends at `;` or the end of the
    /// command line), for example: run --args myservice --port 8080 \; --hold
    Run(RunFlags),
    /// Run a subcommand under a container environment: Pebble as a container's entrypoint.
    ///
    /// Without a subcommand, as `run`. With one, the supervisor starts (services held
    /// unless --run), the subcommand runs against it, and the supervisor stops, but after
    /// `start` and `stop`, which leave it running. Supported: help, version, plan,
    /// services, ls and exec (services not started; no logs unless -v), start, and stop
    /// (after --run).
    Enter {
        #[command(flatten)]
        flags: RunFlags,
        /// Start default services before executing subcommand.
        #[arg(long)]
        run: bool,
        /// The subcommand and its arguments.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "subcommand"
        )]
        subcommand: Vec<String>,
    },
    #[command(flatten)]
    Client(pebble::ClientCommand),
}

impl Command {
    /// Whether this is one of the host's commands (run by `cairn-host`: they load the
    /// runtime), rather than a client of a running daemon or container.
    pub fn runs_host(&self) -> bool {
        matches!(
            self,
            Command::Run { .. }
                | Command::Demo { .. }
                | Command::Pack { .. }
                | Command::Pebble {
                    command: PebbleCommand::Run(_) | PebbleCommand::Enter { .. }
                }
        )
    }
}

/// The command line as given, with `pebble` put first when the program was invoked as
/// `pebble` (a symlink), so that it behaves as `cairn pebble`.
pub fn args_as_cairn() -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| {
        std::path::Path::new(a)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
    });
    if invoked_as.as_deref() == Some("pebble") && args.len() > 1 {
        args.insert(1, "pebble".into());
    }
    args
}

/// Parses the whole command line (`args_as_cairn`'s). As Pebble (`pebble …` through a
/// symlink, or `cairn pebble …`), a mistake Pebble's parser words its own way is worded as
/// Pebble's (an unknown command or flag), and every mistake exits 1, as Pebble's do.
pub fn parse(mut args: Vec<std::ffi::OsString>) -> Cli {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let as_pebble = args.get(1).is_some_and(|a| a == "pebble");
    // Pebble's global `--version` prints the client's version.
    if as_pebble && args.get(2).is_some_and(|a| a == "--version") {
        args.splice(2..3, ["version".into(), "--client".into()]);
    }
    let err = match Cli::try_parse_from(&args) {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    let shown = matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if !as_pebble || shown {
        err.exit()
    }
    let program = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map_or("cairn".into(), |f| f.to_string_lossy().into_owned());
    let context = |kind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let pebbles = match err.kind() {
        ErrorKind::InvalidSubcommand => context(ContextKind::InvalidSubcommand)
            .map(|c| format!("unknown command {c:?}, see '{program} help'")),
        // An argument past the command's last one.
        ErrorKind::UnknownArgument
            if context(ContextKind::InvalidArg).is_some_and(|a| !a.starts_with('-')) =>
        {
            Some("too many arguments for command".to_string())
        }
        ErrorKind::UnknownArgument => context(ContextKind::InvalidArg).map(|a| {
            let flag = a.split('=').next().unwrap_or(&a).trim_start_matches('-');
            format!("unknown flag `{flag}'")
        }),
        ErrorKind::MissingRequiredArgument => match err.get(ContextKind::InvalidArg) {
            Some(ContextValue::Strings(missing)) => Some(go_flags_missing(missing)),
            _ => None,
        },
        ErrorKind::InvalidValue => {
            let flag = context(ContextKind::InvalidArg).map(|a| go_flag_name(&a));
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            match (flag, err.get(ContextKind::ValidValue)) {
                (Some(flag), _) if value.is_empty() => {
                    Some(format!("expected argument for flag `{flag}'"))
                }
                (Some(flag), Some(ContextValue::Strings(valid))) => {
                    let allowed = match valid.split_last() {
                        Some((last, [])) => last.clone(),
                        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                        None => String::new(),
                    };
                    Some(format!(
                        "Invalid value `{value}' for option `{flag}'. Allowed values are: {allowed}"
                    ))
                }
                _ => None,
            }
        }
        ErrorKind::ValueValidation => {
            let flag = context(ContextKind::InvalidArg).map(|a| go_flag_name(&a));
            let source = std::error::Error::source(&err).map(|e| e.to_string());
            match (flag, source) {
                (Some(flag), Some(why)) if why.starts_with("time: ") => Some(format!(
                    "invalid argument for flag `{flag}' (expected time.Duration): {why}"
                )),
                _ => None,
            }
        }
        _ => None,
    };
    match pebbles {
        Some(message) => eprintln!("error: {message}"),
        None => {
            let _ = err.print();
        }
    }
    std::process::exit(1)
}

/// A flag as go-flags names it: `--level <LEVEL>` is `--level`.
fn go_flag_name(arg: &str) -> String {
    arg.split([' ', '=']).next().unwrap_or(arg).to_string()
}

/// go-flags' words for missing required flags or positional arguments (clap's names,
/// `<LAYER_PATH>` or `<SERVICES>...`, become Pebble's, `<layer-path>` or
/// `<service> (at least 1 argument)`).
fn go_flags_missing(missing: &[String]) -> String {
    let list = |names: Vec<String>| match names.split_last() {
        Some((last, [])) => (false, last.clone()),
        Some((last, rest)) => (true, format!("{} and {last}", rest.join(", "))),
        None => (false, String::new()),
    };
    if missing.iter().any(|m| m.starts_with('-')) {
        let mut flags: Vec<String> = missing
            .iter()
            .filter(|m| m.starts_with('-'))
            .map(|m| format!("`{}'", go_flag_name(m)))
            .collect();
        flags.sort();
        let (many, names) = list(flags);
        let s = if many { "s" } else { "" };
        return format!(
            "the required flag{s} {names} {} specified",
            if many { "were not" } else { "was not" }
        );
    }
    let names = missing
        .iter()
        .map(|m| {
            let (name, many) = match m.strip_suffix("...") {
                Some(n) => (n, true),
                None => (m.as_str(), false),
            };
            let name = name.trim_start_matches('<').trim_end_matches('>');
            let name = match name {
                "SIGNAL" => "SIGNAL".to_string(),
                "SERVICES" => "service".to_string(),
                "CHECKS" => "check".to_string(),
                "DATA" => "name=value".to_string(),
                other => other.to_ascii_lowercase().replace('_', "-"),
            };
            // Pebble's exec takes the rest of the line as its command: one argument needed.
            if many && name != "command" {
                format!("`<{name}> (at least 1 argument)`")
            } else {
                format!("`<{name}>`")
            }
        })
        .collect();
    let (many, names) = list(names);
    if many {
        format!("the required arguments {names} were not provided")
    } else {
        format!("the required argument {names} was not provided")
    }
}

/// `$XDG_STATE_HOME/cairn`, else `~/.local/state/cairn`: where `--dir` defaults to.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("cairn");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    home.join(".local/state/cairn")
}

/// `key=value` arguments, split.
pub(crate) fn split_kv(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid setting {s:?}: expected key=value"),
        })
        .collect()
}

/// Takes `--args <service> <arg>... [;]` groups out of `pebble run`'s command line. They are
/// parsed like go-flags' `terminator:";"` option, which clap cannot express: everything up to
/// `;` (or the end) belongs to the group, dashes included.
pub fn take_run_args(args: &mut Vec<std::ffi::OsString>) -> Vec<Vec<String>> {
    let Some(run) = args
        .windows(2)
        .position(|w| w[0] == "pebble" && w[1] == "run")
    else {
        return Vec::new();
    };
    let mut groups = Vec::new();
    let mut i = run + 2;
    while i < args.len() {
        if args[i] == "--args" {
            let end = args[i + 1..]
                .iter()
                .position(|a| a == ";")
                .map(|p| i + 1 + p)
                .unwrap_or(args.len());
            groups.push(
                args[i + 1..end]
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
            );
            args.drain(i..(end + 1).min(args.len()));
        } else {
            i += 1;
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_args_end_at_semicolon_or_end() {
        let mut argv: Vec<std::ffi::OsString> = [
            "cairn", "pebble", "run", "--args", "srv", "--port", "80", ";", "--hold", "--args",
            "b", "-x",
        ]
        .iter()
        .map(Into::into)
        .collect();
        let groups = super::take_run_args(&mut argv);
        assert_eq!(groups, vec![vec!["srv", "--port", "80"], vec!["b", "-x"]]);
        assert_eq!(argv, ["cairn", "pebble", "run", "--hold"]);
    }

    #[test]
    fn both_command_lines_are_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        super::ControlCli::command().debug_assert();
    }

    #[test]
    fn a_command_to_the_daemon_is_told_apart_past_the_global_options() {
        let name = |args: &[&str]| {
            let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            super::command_name(&args).map(str::to_string)
        };
        assert_eq!(
            name(&["cairn", "--dir", "status", "events"]),
            Some("events".into())
        );
        assert_eq!(
            name(&["cairn", "--dir=/x", "status"]),
            Some("status".into())
        );
        assert_eq!(
            name(&["cairn", "--container", "web/0", "services"]),
            Some("services".into())
        );
        assert_eq!(name(&["cairn", "--version"]), None);
        let is_control = |n: &str| <super::ControlCommand as clap::Subcommand>::has_subcommand(n);
        assert!(is_control("status") && is_control("run-action") && is_control("remove"));
        assert!(!is_control("services") && !is_control("run") && !is_control("pebble"));
    }
}
