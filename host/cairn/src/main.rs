/*! The `cairn` command: the charm host daemon and the commands that drive it.

`cairn run` starts the host on a state directory; `deploy`, `config`, `status`,
`events` and `remove` talk to it over its control socket. Every command takes `--dir`
(or `CAIRN_DIR`); the default is `$XDG_STATE_HOME/cairn`, else `~/.local/state/cairn`.
*/

#![forbid(unsafe_code)]

mod args;
mod control;
mod daemon;
mod demo;
mod metrics;
mod output;
mod pebble;
mod standalone;
mod table;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_runtime::HostConfig;
use clap::{Parser, Subcommand};

use args::{BudgetArgs, FormatArgs, parse_duration, parse_limit};
use control::Request;

/// The Cairn charm host: WebAssembly charms driving a Pebble-compatible supervisor.
#[derive(Parser)]
#[command(name = "cairn", version, about)]
struct Cli {
    /// State directory of the host.
    #[arg(long, global = true, env = "CAIRN_DIR")]
    dir: Option<PathBuf>,
    /// The container that Pebble-style commands act on, as <app>/<unit-number>[/<name>]
    /// (default: $PEBBLE_SOCKET or $PEBBLE/.pebble.socket).
    #[arg(long, global = true, value_name = "UNIT/NAME")]
    container: Option<String>,
    #[command(subcommand)]
    command: Command,
}

/// `cairn run --containers`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Containers {
    /// The host's filesystem.
    Shared,
    /// A root directory per container.
    Isolated,
}

/// `cairn run --tenancy`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TenancyArg {
    /// Workloads are trusted.
    Shared,
    /// Workloads are kept apart by namespaces.
    Strict,
}

/// `cairn run --tenancy-net`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum TenancyNet {
    /// The host's network.
    Host,
    /// Loopback only.
    None,
}

#[derive(Subcommand)]
enum Command {
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

#[derive(Subcommand)]
enum PebbleCommand {
    /// Run the supervisor on $PEBBLE (default /var/lib/pebble/default), serving its API on
    /// $PEBBLE_SOCKET or $PEBBLE/.pebble.socket.
    ///
    /// Additional arguments may be given to a service's `[ default args ]` command with
    /// `--args <service> <arg>... ;` (repeatable; the list ends at `;` or the end of the
    /// command line), for example: run --args myservice --port 8080 \; --hold
    Run {
        /// Do not start the default services.
        #[arg(long)]
        hold: bool,
        /// Also serve the open endpoints over plain HTTP on this address (e.g. :4000).
        #[arg(long, value_name = "ADDRESS")]
        http: Option<String>,
        /// Create $PEBBLE and $PEBBLE/layers if missing.
        #[arg(long)]
        create_dirs: bool,
        /// Seed identities from file (like update-identities --replace).
        #[arg(long, value_name = "FILE")]
        identities: Option<std::path::PathBuf>,
    },
    #[command(flatten)]
    Client(pebble::ClientCommand),
}

/// Prints an action run; a failed run is an error (exit code 1) after it is shown.
fn show_action(rec: &cairn_runtime::ActionRecord, format: &FormatArgs) -> Result<()> {
    if format.json() {
        println!("{}", serde_json::to_string_pretty(rec)?);
    } else {
        print!("{}", output::action_text(rec));
    }
    if rec.status == cairn_runtime::ActionStatus::Failed {
        bail!("action {} failed: {}", rec.id, rec.message);
    }
    Ok(())
}

fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("cairn");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    home.join(".local/state/cairn")
}

fn split_kv(items: &[String]) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("invalid setting {s:?}: expected key=value"),
        })
        .collect()
}

fn main() {
    // A strict container's init is this binary started afresh: it runs nothing else.
    cairn_supervisor::namespaces::run_init_if_asked();
    // Invoked as `pebble` (a symlink), behave as `cairn pebble`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args.first().and_then(|a| {
        std::path::Path::new(a)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
    });
    if invoked_as.as_deref() == Some("pebble") && args.len() > 1 {
        args.insert(1, "pebble".into());
    }
    let run_args = take_run_args(&mut args);
    pebble::init_local_offset();
    let cli = Cli::parse_from(args);
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cairn=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().expect("cannot start tokio runtime");
    let result = rt.block_on(dispatch(cli, run_args));
    // Blocking reads still parked on pipes must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Takes `--args <service> <arg>... [;]` groups out of `pebble run`'s command line. They are
/// parsed like go-flags' `terminator:";"` option, which clap cannot express: everything up to
/// `;` (or the end) belongs to the group, dashes included.
fn take_run_args(args: &mut Vec<std::ffi::OsString>) -> Vec<Vec<String>> {
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

/// Runs the command; returns the process exit code (an error is exit code 1).
async fn dispatch(cli: Cli, run_args: Vec<Vec<String>>) -> Result<i32> {
    let dir = cli.dir.unwrap_or_else(default_dir);
    match cli.command {
        Command::Container(c)
        | Command::Pebble {
            command: PebbleCommand::Client(c),
        } => {
            let socket = pebble::resolve_socket(&dir, cli.container.as_deref())?;
            pebble::run(&socket, c).await
        }
        Command::Pebble {
            command:
                PebbleCommand::Run {
                    hold,
                    http,
                    create_dirs,
                    identities,
                },
        } => {
            standalone::run(standalone::RunOptions {
                hold,
                http,
                create_dirs,
                args: run_args,
                identities,
            })
            .await
        }
        command => dispatch_host(dir, command).await.map(|()| 0),
    }
}

/// The commands of the charm host (everything but Pebble's).
async fn dispatch_host(dir: PathBuf, command: Command) -> Result<()> {
    match command {
        Command::Run {
            update_status_interval,
            event_deadline,
            memory_limit_mib,
            retry_delay,
            cache_dir,
            containers,
            tenancy,
            tenancy_net,
            tenancy_id_base,
            pooling,
            metrics_listen,
            budget,
        } => {
            let mut config = HostConfig::new(&dir);
            // The engine's maxima are the defaults of memory and deadline.
            let defaults = cairn_runtime::Budget {
                memory: (memory_limit_mib << 20) as u64,
                deadline: event_deadline,
                ..cairn_runtime::Budget::default()
            };
            let overrides =
                cairn_runtime::budget::normalize_overrides(&Default::default(), &budget.limits)
                    .map_err(anyhow::Error::msg)?;
            config.budget = defaults
                .with_overrides(&overrides)
                .map_err(anyhow::Error::msg)?;
            config
                .budget
                .check_maxima((memory_limit_mib << 20) as u64, event_deadline)
                .map_err(anyhow::Error::msg)?;
            config.tenancy = match tenancy {
                TenancyArg::Shared => cairn_runtime::Tenancy::Shared,
                TenancyArg::Strict => cairn_runtime::Tenancy::Strict,
            };
            config.tenancy_net = match tenancy_net {
                TenancyNet::Host => cairn_runtime::NetMode::Host,
                TenancyNet::None => cairn_runtime::NetMode::None,
            };
            config.tenancy_id_base = tenancy_id_base;
            config.containers = match containers {
                Containers::Shared => cairn_runtime::ContainerMode::Shared,
                Containers::Isolated => cairn_runtime::ContainerMode::Isolated,
            };
            if let Some(c) = cache_dir {
                config.runtime.cache_dir = Some(c);
            }
            config.update_status_interval = update_status_interval;
            config.runtime.event_deadline = event_deadline;
            config.runtime.memory_limit = memory_limit_mib << 20;
            config.runtime.pooling = pooling;
            // Charm directories built with cargo: where their components are.
            config
                .target_dirs
                .extend(std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from));
            config.retry_base = retry_delay;
            daemon::run(daemon::DaemonOptions {
                config,
                metrics_listen,
            })
            .await
        }
        Command::Deploy {
            path,
            name,
            config,
            limits,
            num_units,
        } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find charm {}", path.display()))?;
            let v = control::call(
                &dir,
                &Request::Deploy {
                    path: path.display().to_string(),
                    name,
                    config: split_kv(&config)?,
                    limits,
                    units: num_units,
                },
            )
            .await?;
            println!("Deployed {}", v["app"].as_str().unwrap_or("?"));
            Ok(())
        }
        Command::Refresh { app, path } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find charm {}", path.display()))?;
            control::call(
                &dir,
                &Request::Refresh {
                    app: app.clone(),
                    path: path.display().to_string(),
                },
            )
            .await?;
            println!("Refreshed {app}");
            Ok(())
        }
        Command::AddUnit { app, num_units } => {
            let v = control::call(&dir, &Request::AddUnit { app, n: num_units }).await?;
            for u in v["units"].as_array().into_iter().flatten() {
                println!("Added {}", u.as_str().unwrap_or("?"));
            }
            Ok(())
        }
        Command::RemoveUnit { units } => {
            control::call(
                &dir,
                &Request::RemoveUnit {
                    units: units.clone(),
                },
            )
            .await?;
            for u in units {
                println!("Removed {u}");
            }
            Ok(())
        }
        Command::Resolve { unit, no_retry } => {
            control::call(&dir, &Request::Resolve { unit, no_retry }).await?;
            Ok(())
        }
        Command::Config {
            app,
            settings,
            reset,
            limits,
            wait,
        } => {
            let quiet = !(settings.is_empty() && reset.is_empty() && limits.is_empty());
            let v = control::call(
                &dir,
                &Request::Config {
                    app,
                    set: split_kv(&settings)?,
                    reset: reset.clone(),
                    limits,
                    wait,
                },
            )
            .await?;
            if !quiet {
                output::print_config(&v["config"]);
            }
            Ok(())
        }
        Command::Metrics => {
            let v = control::call(&dir, &Request::Metrics).await?;
            print!("{}", v.as_str().unwrap_or_default());
            Ok(())
        }
        Command::Integrate { one, other } => {
            let v = control::call(&dir, &Request::Integrate { one, other }).await?;
            let rel: cairn_runtime::RelationReport = serde_json::from_value(v)?;
            println!(
                "related {} and {} (relation {}, interface {})",
                rel.requirer, rel.provider, rel.id, rel.interface
            );
            Ok(())
        }
        Command::RemoveRelation { one, other } => {
            control::call(&dir, &Request::RemoveRelation { one, other }).await?;
            Ok(())
        }
        Command::Status {
            apps,
            relations,
            format,
        } => {
            let v = control::call(&dir, &Request::Status { apps }).await?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let report: cairn_runtime::StatusReport = serde_json::from_value(v)?;
                print!("{}", output::status_table(&report, relations));
            }
            Ok(())
        }
        Command::Limits { app, format } => {
            let v = control::call(&dir, &Request::Limits { app }).await?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let l: cairn_runtime::AppLimits = serde_json::from_value(v)?;
                print!("{}", output::limits_table(&l));
            }
            Ok(())
        }
        Command::Events { unit, n, format } => {
            let v = control::call(&dir, &Request::Events { unit, n }).await?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let events: Vec<cairn_runtime::HistoryEntry> = serde_json::from_value(v)?;
                print!("{}", output::events_table(&events));
            }
            Ok(())
        }
        Command::Remove { app } => {
            control::call(&dir, &Request::Remove { app: app.clone() }).await?;
            println!("Removed {app}");
            Ok(())
        }
        Command::RunAction {
            unit,
            action,
            params,
            wait,
            format,
        } => {
            let v = control::call(
                &dir,
                &Request::RunAction {
                    unit: unit.clone(),
                    action,
                    params: split_kv(&params)?,
                    wait,
                },
            )
            .await?;
            let rec: cairn_runtime::ActionRecord = serde_json::from_value(v.clone())?;
            if wait.is_none() {
                if format.json() {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    println!(
                        "Action {} queued on {unit}; see it with: cairn show-action {}",
                        rec.id, rec.id
                    );
                }
                return Ok(());
            }
            show_action(&rec, &format)
        }
        Command::ShowAction { id, format } => {
            let v = control::call(&dir, &Request::ShowAction { id }).await?;
            let rec: cairn_runtime::ActionRecord = serde_json::from_value(v)?;
            show_action(&rec, &format)
        }
        Command::Demo { keep } => demo::run(keep).await,
        Command::Pack {
            path,
            output,
            dispatcher,
        } => pack(&path, output, dispatcher),
        Command::Container(_) | Command::Pebble { .. } => {
            unreachable!("Pebble's commands are dispatched by dispatch()")
        }
    }
}

/// `cairn pack`: finds the component as `cairn deploy` does and writes the `.charm`.
fn pack(path: &Path, output: Option<PathBuf>, dispatcher: Option<PathBuf>) -> Result<()> {
    let target_dirs: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let src = cairn_runtime::charm::CharmSource::locate(path, &target_dirs)?;
    let dispatcher = match dispatcher {
        Some(d) => d,
        None => std::env::current_exe()
            .context("cannot find the dispatcher")?
            .with_file_name("cairn-dispatch"),
    };
    let out = output.unwrap_or_else(|| PathBuf::from(format!("{}.charm", src.meta.name)));
    let charm_dir = if path.extension().is_some_and(|e| e == "wasm") {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    let written = cairn_juju::pack::pack(&cairn_juju::pack::PackInput {
        charm_dir,
        component: src.wasm,
        dispatcher: dispatcher.clone(),
        out,
    })?;
    println!("Packed {}", written.display());
    // pack() checked that it starts on the declared bases; a dynamic one needs their glibc.
    let exe = std::fs::read(&dispatcher)
        .ok()
        .and_then(|b| cairn_juju::elf::inspect(&b).ok());
    if let Some(exe) = exe.filter(|e| e.dynamic) {
        let needs = exe
            .glibc
            .map(|(major, minor)| format!(" (glibc {major}.{minor} or later)"))
            .unwrap_or_default();
        eprintln!(
            "note: {} is linked dynamically{needs}; `cargo build-dispatcher` builds a static one",
            dispatcher.display()
        );
    }
    Ok(())
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
}
