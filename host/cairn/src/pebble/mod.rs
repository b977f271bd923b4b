//! Pebble's command line against one container: `cairn --container web/0 services`, or with
//! `PEBBLE`/`PEBBLE_SOCKET` set, or as `pebble services` through a symlink.
//!
//! Output follows Pebble's CLI: the same tables (Go's tabwriter with minwidth 5 and padding
//! 2), the same human times ("today at 15:04 UTC"), the same messages on stderr for empty
//! listings, and `start`/`stop`/`replan`… wait for their change (Ctrl-C aborts it) unless
//! `--no-wait`, which prints the change ID.
//!
//! One module per command area, as Pebble's `internals/cli` has one `cmd_<name>.go` per
//! command. Every command is an `async fn(&Client, args, &mut Io) -> Result<i32>` that
//! returns the exit code; an error is printed by `main` (exit code 1). [`Io`] stands for the
//! process's streams so that the tests run the commands against an in-process server.

mod changes;
mod checks;
mod cli_state;
mod exec;
mod files;
mod fill;
mod identities;

pub(crate) use identities::read_identities;
mod logs;
mod notices;
mod plan;
mod services;
mod socket;
mod times;
mod version;

#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use cairn_api::Client;
use clap::Subcommand;

pub use socket::resolve_socket;
pub use times::init_local_offset;

/// The commands that act on one container through its API.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Show the plan with layers combined.
    Plan,
    /// Dynamically add a layer to the plan's layers.
    Add(plan::AddArgs),
    /// Query the status of configured services.
    Services(services::ServicesArgs),
    /// Start a service and its dependencies.
    Start(services::StartArgs),
    /// Stop a service and its dependents.
    Stop(services::StopArgs),
    /// Restart a service.
    Restart(services::RestartArgs),
    /// Ensure running services match the current plan.
    Replan(plan::ReplanArgs),
    /// Start services set to start by default.
    Autostart(services::AutostartArgs),
    /// List system changes.
    Changes(changes::ChangesArgs),
    /// List a change's tasks.
    Tasks(changes::TasksArgs),
    /// Fetch service logs.
    Logs(logs::LogsArgs),
    /// Send a signal to one or more running services.
    Signal(services::SignalArgs),
    /// Query health of checks (exit code 1 when unhealthy).
    Health(checks::HealthArgs),
    /// Query the status of configured health checks.
    Checks(checks::ChecksArgs),
    /// Query the details of a configured health check.
    Check(checks::CheckArgs),
    /// Start one or more checks.
    #[command(name = "start-checks")]
    StartChecks(checks::StartChecksArgs),
    /// Stop one or more checks.
    #[command(name = "stop-checks")]
    StopChecks(checks::StopChecksArgs),
    /// Record a custom notice.
    Notify(notices::NotifyArgs),
    /// List notices.
    Notices(notices::NoticesArgs),
    /// Fetch a single notice, by ID or by type and key.
    Notice(notices::NoticeArgs),
    /// List warnings (those not yet acknowledged with `okay`, unless --all).
    Warnings(notices::WarningsArgs),
    /// Acknowledge the notices and warnings listed so far.
    Okay(notices::OkayArgs),
    /// Transfer a file to the remote system.
    Push(files::PushArgs),
    /// Retrieve a file from the remote system.
    Pull(files::PullArgs),
    /// List path contents.
    Ls(files::LsArgs),
    /// Create a directory.
    Mkdir(files::MkdirArgs),
    /// Remove a file or directory.
    Rm(files::RmArgs),
    /// Execute a remote command and wait for it to finish (exit code passed through).
    Exec(exec::ExecArgs),
    /// Show version details.
    Version(version::VersionArgs),
    /// List identities.
    Identities(identities::IdentitiesArgs),
    /// Show a single identity.
    Identity(identities::IdentityArgs),
    /// Add new identities.
    #[command(name = "add-identities")]
    AddIdentities(identities::FromArgs),
    /// Update or replace identities.
    #[command(name = "update-identities")]
    UpdateIdentities(identities::UpdateArgs),
    /// Remove identities.
    #[command(name = "remove-identities")]
    RemoveIdentities(identities::FromArgs),
}

/// What a command sees of the process besides its arguments: its three streams, the name it
/// was run as (for hints like "try 'pebble warnings'") and Pebble's CLI state file. `main`
/// passes the real ones; the tests pass buffers and a temporary file.
pub struct Io<'a> {
    /// Standard input (read by `exec`).
    pub stdin: &'a mut dyn Read,
    /// Whether standard input is a terminal (`exec` forwards it only when it is not, or
    /// with `-i`).
    pub stdin_is_terminal: bool,
    /// Standard output.
    pub out: &'a mut dyn Write,
    /// Standard error, for Pebble's notes on empty listings and `exec`'s stderr.
    pub err: &'a mut dyn Write,
    /// The program's name as invoked (`cairn` or `pebble`).
    pub program: String,
    /// Pebble's client state file (`cli.json`), shared with Pebble's own CLI.
    pub cli_state: PathBuf,
}

/// Runs one command against the container's API on the process's own streams; returns the
/// process exit code.
pub async fn run(socket: &Path, cmd: ClientCommand) -> Result<i32> {
    let client = Client::unix(socket);
    let mut stdin = std::io::stdin();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut io = Io {
        stdin_is_terminal: stdin.is_terminal(),
        stdin: &mut stdin,
        out: &mut stdout,
        err: &mut stderr,
        program: program(),
        cli_state: cli_state::default_path(),
    };
    let code = execute(&client, cmd, &mut io).await;
    io.out.flush()?;
    code.map_err(pebble_error)
}

/// Pebble's `--format json` of a listing: `{"<key>": value}`, the value's fields in their
/// own order (a `serde_json::Value` would sort them).
pub(crate) fn json_under(key: &str, value: &impl serde::Serialize) -> serde_json::Result<String> {
    serde_json::to_string(&std::collections::BTreeMap::from([(key, value)]))
}

/// An API error (a files request's per-path one too) as Pebble's CLI words it: wrapped to
/// the terminal, and a refused local user told to try with sudo.
fn pebble_error(e: anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<cairn_api::ClientError>() {
        Some(cairn_api::ClientError::Api { kind, message, .. }) => {
            let root = nix::unistd::Uid::current().is_root();
            let message = if kind == "login-required" && !root {
                format!("{message} (try with sudo)")
            } else {
                message.clone()
            };
            anyhow::anyhow!(fill::fill_error(&message))
        }
        // A files request's per-path error is a client error in Pebble's client too.
        Some(cairn_api::ClientError::Path { message, .. }) => {
            anyhow::anyhow!(fill::fill_error(message))
        }
        _ => e,
    }
}

/// Runs one command with the given streams; returns its exit code.
pub async fn execute(client: &Client, cmd: ClientCommand, io: &mut Io<'_>) -> Result<i32> {
    use ClientCommand as C;
    match cmd {
        C::Plan => plan::plan(client, io).await,
        C::Add(a) => plan::add(client, a, io).await,
        C::Services(a) => services::services(client, a, io).await,
        C::Start(a) => services::start(client, a, io).await,
        C::Stop(a) => services::stop(client, a, io).await,
        C::Restart(a) => services::restart(client, a, io).await,
        C::Replan(a) => plan::replan(client, a, io).await,
        C::Autostart(a) => services::autostart(client, a, io).await,
        C::Changes(a) => changes::changes(client, a, io).await,
        C::Tasks(a) => changes::tasks(client, a, io).await,
        C::Logs(a) => logs::logs(client, a, io).await,
        C::Signal(a) => services::signal(client, a, io).await,
        C::Health(a) => checks::health(client, a, io).await,
        C::Checks(a) => checks::checks(client, a, io).await,
        C::Check(a) => checks::check(client, a, io).await,
        C::StartChecks(a) => checks::start_checks(client, a, io).await,
        C::StopChecks(a) => checks::stop_checks(client, a, io).await,
        C::Notify(a) => notices::notify(client, a, io).await,
        C::Notices(a) => notices::notices(client, a, io).await,
        C::Notice(a) => notices::notice(client, a, io).await,
        C::Warnings(a) => notices::warnings(client, a, io).await,
        C::Okay(a) => notices::okay(client, a, io).await,
        C::Push(a) => files::push(client, a, io).await,
        C::Pull(a) => files::pull(client, a, io).await,
        C::Ls(a) => files::ls(client, a, io).await,
        C::Mkdir(a) => files::mkdir(client, a, io).await,
        C::Rm(a) => files::rm(client, a, io).await,
        C::Exec(a) => exec::exec(client, a, io).await,
        C::Version(a) => version::version(client, a, io).await,
        C::Identities(a) => identities::identities(client, a, io).await,
        C::Identity(a) => identities::identity(client, a, io).await,
        C::AddIdentities(a) => identities::add(client, a, io).await,
        C::UpdateIdentities(a) => identities::update(client, a, io).await,
        C::RemoveIdentities(a) => identities::remove(client, a, io).await,
    }
}

/// The file name the process was run as, as Pebble's `os.Args[0]` in its hints.
fn program() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "cairn".into())
}
