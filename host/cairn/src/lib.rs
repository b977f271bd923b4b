/*! The `cairn` command, as two binaries over this library.

`cairn` is what users run. Its client commands (`deploy`, `config`, `status`, `events`, the
Pebble-style commands, …) talk to a daemon's control socket or a container's Pebble API;
it links neither wasmtime nor the supervisor's runtime, so that a client command starts in
about a millisecond. The host's commands (`run`, `pebble run`, `demo`, `pack`) it hands to
`cairn-host` beside it, with the same command line (exec: same process). `cairn-host` runs
everything, and is what a strict container's init is started from.

Every command takes `--dir` (or `CAIRN_DIR`); the default is `$XDG_STATE_HOME/cairn`, else
`~/.local/state/cairn`.
*/

#![forbid(unsafe_code)]

mod args;
mod cli;
mod client;
mod control;
mod daemon;
mod demo;
mod host;
mod metrics;
mod output;
mod pebble;
mod standalone;
mod table;

use std::os::unix::process::CommandExt;

use clap::Parser;

/// The name of the host's binary, which `cairn` runs the host's commands with.
pub const HOST_BINARY: &str = "cairn-host";

/// `CAIRN_LOG` (default: warnings, and the host's own information) to stderr.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cairn=info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// `pebble run`'s log, as Pebble writes its own: `2006-01-02T15:04:05.000Z [pebble] message`
/// to stderr (`CAIRN_LOG` still chooses what is logged); nothing when `quiet`.
fn init_tracing_as_pebble(quiet: bool) {
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, format::Writer};
    use tracing_subscriber::registry::LookupSpan;
    struct PebbleFormat;
    impl<S, N> FormatEvent<S, N> for PebbleFormat
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &tracing::Event<'_>,
        ) -> std::fmt::Result {
            let now = time::OffsetDateTime::now_utc();
            write!(
                writer,
                "{} [pebble] ",
                cairn_supervisor::timefmt::log_time(now)
            )?;
            ctx.field_format().format_fields(writer.by_ref(), event)?;
            writeln!(writer)
        }
    }
    let filter = match quiet {
        true => tracing_subscriber::EnvFilter::new("off"),
        false => tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cairn=info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(PebbleFormat)
        .init();
}

/// Exits with `result`'s exit code (an error: printed, exit code 1).
fn exit(result: anyhow::Result<i32>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}

/// `cairn`'s main: a client command is run here, a host command by `cairn-host`.
pub fn client_main() -> ! {
    let args = cli::args_as_cairn();
    let mut parsed = args.clone();
    cli::take_run_args(&mut parsed);
    // A command to the daemon is parsed alone: most of the process's parsing was building
    // the commands it is not.
    if cli::command_name(&parsed)
        .is_some_and(<cli::ControlCommand as clap::Subcommand>::has_subcommand)
    {
        let cli = cli::ControlCli::parse_from(parsed);
        if std::env::var_os("CAIRN_LOG").is_some() {
            init_tracing();
        }
        let dir = cli.globals.dir.unwrap_or_else(cli::default_dir);
        exit(client::dispatch_control(dir, cli.command).map(|()| 0))
    }
    let cli = cli::parse(parsed);
    if cli.command.runs_host() {
        exit(Err(exec_host()));
    }
    // A client logs little: the subscriber only when asked for.
    if std::env::var_os("CAIRN_LOG").is_some() {
        init_tracing();
    }
    exit(client::dispatch(cli))
}

/// Replaces this process by `cairn-host` (beside this binary, symlinks resolved) with the
/// same command line; returns only if that fails.
fn exec_host() -> anyhow::Error {
    let host = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name(HOST_BINARY),
        Err(e) => return anyhow::anyhow!("cannot find {HOST_BINARY}: {e}"),
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(&host);
    if let Some(arg0) = args.next() {
        command.arg0(arg0);
    }
    let e = command.args(args).exec();
    anyhow::anyhow!(
        "cannot run {}: {e} (it is built beside cairn: cargo build -p cairn)",
        host.display()
    )
}

/// `cairn-host`'s main: every command.
pub fn host_main() -> ! {
    // A strict container's init is this binary started afresh: it runs nothing else.
    cairn_supervisor::namespaces::run_init_if_asked();
    cairn_runtime::allocator::tune();
    let mut args = cli::args_as_cairn();
    let run_args = cli::take_run_args(&mut args);
    let cli = cli::parse(args);
    match &cli.command {
        cli::Command::Pebble {
            command: cli::PebbleCommand::Run(_),
        } => init_tracing_as_pebble(false),
        cli::Command::Pebble {
            command: cli::PebbleCommand::Enter {
                flags, subcommand, ..
            },
        } => init_tracing_as_pebble(standalone::enter_is_quiet(subcommand, flags.verbose)),
        _ => init_tracing(),
    }
    if !cli.command.runs_host() {
        exit(client::dispatch(cli));
    }
    // Before any thread: the local offset is read once (pebble run's log times).
    pebble::init_local_offset();
    let rt = tokio::runtime::Runtime::new().expect("cannot start tokio runtime");
    let result = rt.block_on(host::dispatch(cli.globals.dir, cli.command, run_args));
    // Blocking reads still parked on pipes must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    exit(result)
}
