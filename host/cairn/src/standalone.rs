//! `cairn pebble run`: a drop-in Pebble for a workload container.
//!
//! One supervisor on `$PEBBLE` (default `/var/lib/pebble/default`): layers from
//! `$PEBBLE/layers`, the API on `$PEBBLE_SOCKET` or `$PEBBLE/.pebble.socket` (plus TCP for the
//! open endpoints with `--http`), `startup: enabled` services started unless `--hold`. It
//! exits on SIGINT/SIGTERM after stopping every service (code 0), or when a service's exit
//! action asks for a shutdown (0 for success, 10 for failure, as Pebble).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_supervisor::{ShutdownRequest, Supervisor, SupervisorError, SupervisorOptions};

/// Pebble's default directory.
pub const DEFAULT_PEBBLE: &str = "/var/lib/pebble/default";

/// Options of `pebble run`.
pub struct RunOptions {
    /// Do not start default services.
    pub hold: bool,
    /// Address of the plain-HTTP listener for open endpoints (`:4000`, `127.0.0.1:4000`).
    pub http: Option<String>,
    /// Address of the HTTPS listener (`:8443`): the whole API, to callers with a client
    /// certificate.
    pub https: Option<String>,
    /// Create `$PEBBLE` and `$PEBBLE/layers` if missing.
    pub create_dirs: bool,
    /// `--args <service> <arg>...` lists, one per use of the flag.
    pub args: Vec<Vec<String>>,
    /// `--identities FILE`: identities seeded at start (as `update-identities --replace`).
    pub identities: Option<PathBuf>,
    /// `--verbose`: every service's output also to stdout.
    pub verbose: bool,
}

impl RunOptions {
    /// The options of `pebble run` (or `enter`) given `flags` and the `--args` lists.
    pub fn new(flags: crate::cli::RunFlags, args: Vec<Vec<String>>) -> RunOptions {
        RunOptions {
            hold: flags.hold,
            http: flags.http,
            https: flags.https,
            create_dirs: flags.create_dirs,
            args,
            identities: flags.identities,
            verbose: verbose(flags.verbose),
        }
    }
}

/// `--verbose`, or `PEBBLE_VERBOSE=1` as Pebble reads it.
fn verbose(flag: bool) -> bool {
    flag || std::env::var("PEBBLE_VERBOSE").is_ok_and(|v| v == "1")
}

/// Pebble's `convertArgs`: one list per service, named first, each service at most once.
fn service_args(args: &[Vec<String>]) -> Result<std::collections::BTreeMap<String, Vec<String>>> {
    let mut map = std::collections::BTreeMap::new();
    for list in args {
        let Some((name, rest)) = list.split_first() else {
            bail!("--args requires a service name");
        };
        if map.insert(name.clone(), rest.to_vec()).is_some() {
            bail!("--args provided more than once for {name:?} service");
        }
    }
    Ok(map)
}

/// `$PEBBLE`, as Pebble resolves it.
pub fn pebble_dir() -> PathBuf {
    std::env::var_os("PEBBLE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PEBBLE))
}

/// The API socket, as Pebble resolves it.
pub fn pebble_socket() -> PathBuf {
    std::env::var_os("PEBBLE_SOCKET")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| pebble_dir().join(".pebble.socket"))
}

/// Go-style listen address of `flag`: `:4000` means every interface.
fn parse_addr(flag: &str, s: &str) -> Result<SocketAddr> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse()
        .with_context(|| format!("invalid --{flag} address {s:?}"))
}

/// Runs until a signal or a shutdown request; returns the process exit code.
pub async fn run(opts: RunOptions) -> Result<i32> {
    start(opts).await?.serve().await
}

/// A started `pebble run`: the supervisor and its API server.
struct Running {
    sup: Supervisor,
    server: cairn_api::ServerHandle,
    socket: PathBuf,
}

/// How `enter` runs a subcommand (Pebble's `commandEnterFlags`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum EnterKind {
    /// `exec`: no logs, `-v` refused.
    Exec,
    /// `help`: no supervisor at all.
    Help,
    /// `ls`, `plan`, `services`, `version`: no logs unless `-v`, `--run` refused.
    Look,
    /// `start`: the supervisor keeps running after it.
    Start,
    /// `stop`: needs `--run`; the supervisor keeps running after it.
    Stop,
}

fn enter_kind(subcommand: &[String]) -> Option<EnterKind> {
    Some(match subcommand.first()?.as_str() {
        "exec" => EnterKind::Exec,
        "help" => EnterKind::Help,
        "ls" | "plan" | "services" | "version" => EnterKind::Look,
        "start" => EnterKind::Start,
        "stop" => EnterKind::Stop,
        _ => return None,
    })
}

/// Whether `enter` with `subcommand` keeps the daemon's log quiet (Pebble silences it for
/// `exec` always and for the read-only subcommands unless `-v`).
pub fn enter_is_quiet(subcommand: &[String], verbose: bool) -> bool {
    let verbose = self::verbose(verbose);
    match enter_kind(subcommand) {
        Some(EnterKind::Exec) => true,
        Some(EnterKind::Look) => !verbose,
        _ => false,
    }
}

/// `pebble enter [--run] [subcommand…]`: Pebble as a container's entrypoint. Without a
/// subcommand, `run`; with one, the supervisor starts (services held unless `--run`), the
/// subcommand runs against it, and the supervisor stops, unless the subcommand is `start`
/// or `stop`, after which it goes on serving as `run` does.
pub async fn enter(
    mut opts: RunOptions,
    run_services: bool,
    subcommand: Vec<String>,
) -> Result<i32> {
    if subcommand.is_empty() {
        return run(opts).await;
    }
    let name = subcommand[0].clone();
    // Parsed as the Pebble CLI parses it, with the same words for its mistakes.
    let mut argv: Vec<std::ffi::OsString> = vec!["pebble".into(), "pebble".into()];
    argv.extend(subcommand.iter().map(Into::into));
    let cli = crate::cli::parse(argv);
    let kind = enter_kind(&subcommand);
    let command = match (cli.command, kind) {
        (
            crate::cli::Command::Pebble {
                command: crate::cli::PebbleCommand::Client(c),
            },
            Some(kind),
        ) => (c, kind),
        _ => bail!("enter: subcommand {name:?} is not supported"),
    };
    let (command, kind) = command;
    if kind == EnterKind::Stop && !run_services {
        bail!("enter: must use --run before {name:?} subcommand");
    }
    if matches!(kind, EnterKind::Look | EnterKind::Help) && run_services {
        bail!("enter: cannot provide --run before {name:?} subcommand");
    }
    if kind == EnterKind::Exec && opts.verbose {
        bail!("enter: cannot provide -v/--verbose before {name:?} subcommand");
    }
    opts.hold = !run_services;
    let running = start(opts).await?;
    let result = crate::pebble::run(&running.socket, command).await;
    let keep = matches!(kind, EnterKind::Start | EnterKind::Stop);
    match result {
        Ok(0) if keep => running.serve().await,
        result => {
            running.stop().await;
            result
        }
    }
}

/// Starts the supervisor and its API as `pebble run` does; the caller serves or stops it.
async fn start(opts: RunOptions) -> Result<Running> {
    let dir = pebble_dir();
    let socket = pebble_socket();
    if opts.create_dirs {
        std::fs::create_dir_all(dir.join("layers"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
    } else if !dir.is_dir() {
        bail!(
            "cannot find pebble directory {:?}: use --create-dirs to create it",
            dir.display().to_string()
        );
    }
    // A unit's container directory is the daemon's while it runs: its supervisors hold no
    // lock file of their own (the daemon's lock on its state directory covers them).
    if let Ok(real) = std::fs::canonicalize(&dir)
        && let Some((state, pid)) = real.ancestors().find_map(|a| {
            cairn_supervisor::lock::held_elsewhere(&a.join(crate::daemon::LOCK_FILE))
                .map(|pid| (a.to_path_buf(), pid))
        })
    {
        bail!(
            "cannot run in {}: it belongs to the cairn daemon of {} (pid {pid})",
            dir.display(),
            state.display()
        );
    }
    if let Err(e) = cairn_supervisor::reaper::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    if let Err(e) = cairn_api::server::raise_nofile_limit() {
        tracing::warn!("cannot raise the open file limit: {e}");
    }
    let http = opts
        .http
        .as_deref()
        .map(|a| parse_addr("http", a))
        .transpose()?;
    let https = match opts.https.as_deref() {
        Some(a) => {
            let addr = parse_addr("https", a)?;
            let config =
                cairn_api::server::tls::server_config(&dir).context("cannot serve HTTPS")?;
            Some((addr, config))
        }
        None => None,
    };
    let args = service_args(&opts.args)?;
    let sup = Supervisor::open(SupervisorOptions {
        // No `env`: services inherit the daemon's environment and nothing more, as
        // Pebble's do (Juju sets PEBBLE_SOCKET in the container; they get it from there).
        // Layers added over the API live in memory only, as Pebble's.
        keep_layers: false,
        echo_output: opts.verbose,
        ..SupervisorOptions::new(&dir)
    })?;
    if !args.is_empty() {
        sup.set_service_args(&args)?;
    }
    let api =
        cairn_api::ApiServer::with_addresses(sup.clone(), opts.http.clone(), opts.https.clone());
    let server = cairn_api::server::serve_tls(api, &socket, http, https, Default::default())
        .await
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    tracing::info!("Started daemon.");
    tracing::debug!("API on {}", socket.display());
    if let Some(path) = &opts.identities {
        let ids = crate::pebble::read_identities(path)
            .map_err(|e| anyhow::anyhow!("cannot read identities: {e}"))?;
        sup.change_identities(cairn_supervisor::identities::IdentitiesAction::Replace, ids)
            .map_err(|e| anyhow::anyhow!("cannot replace identities: {e}"))?;
    }
    if !opts.hold {
        match sup.services_action(cairn_supervisor::ServicesAction::Autostart, &[]) {
            Ok(_) | Err(SupervisorError::NoDefaultServices) => {}
            Err(e) => tracing::warn!("Cannot start default services: {e}"),
        }
    }
    Ok(Running {
        sup,
        server,
        socket,
    })
}

impl Running {
    /// Serves until a signal or a shutdown request, then stops; the process exit code.
    async fn serve(self) -> Result<i32> {
        let sup = &self.sup;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut shutdown = sup.shutdown_requests();
        let code = loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break 0,
                _ = term.recv() => break 0,
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break 0;
                    }
                    match *shutdown.borrow() {
                        Some(ShutdownRequest::Success) => break 0,
                        Some(ShutdownRequest::Failure) => break 10,
                        Some(ShutdownRequest::CheckFailure) => break 11,
                        None => continue,
                    }
                }
            }
        };
        self.stop().await;
        Ok(code)
    }

    /// Stops every service and the API.
    async fn stop(self) {
        tracing::info!("Stopping all running services.");
        self.sup.stop_all().await;
        self.server.stop();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_style_addresses() {
        assert_eq!(
            super::parse_addr("http", ":4000").unwrap().to_string(),
            "0.0.0.0:4000"
        );
        assert_eq!(
            super::parse_addr("http", "127.0.0.1:80")
                .unwrap()
                .to_string(),
            "127.0.0.1:80"
        );
        assert!(super::parse_addr("http", "nope").is_err());
    }

    #[test]
    fn service_args_like_convert_args() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let m = super::service_args(&[v(&["srv", "--port", "80"]), v(&["other"])]).unwrap();
        assert_eq!(m["srv"], v(&["--port", "80"]));
        assert!(m["other"].is_empty());
        assert_eq!(
            super::service_args(&[v(&["a"]), v(&["a", "x"])])
                .unwrap_err()
                .to_string(),
            "--args provided more than once for \"a\" service"
        );
    }
}
