//! `cairn run`: the host daemon serving the control socket.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use cairn_runtime::{Host, HostConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::control::{Reply, Request, SOCKET};

/// Options of `cairn run`.
pub struct DaemonOptions {
    /// The host's configuration.
    pub config: HostConfig,
    /// Where to serve `GET /metrics` over TCP, if anywhere.
    pub metrics_listen: Option<String>,
}

/// Runs the daemon until SIGINT/SIGTERM, then stops every service and exits.
pub async fn run(opts: DaemonOptions) -> Result<()> {
    let dir = opts.config.dir.clone();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _lock = lock(&dir)?;
    // Orphans of services are re-parented to the host and reaped, as with Pebble.
    if let Err(e) = cairn_supervisor::reaper::become_subreaper() {
        tracing::warn!("cannot become a child subreaper: {e}");
    }
    // Room for many unit sockets' connections, with a reserve they cannot take.
    match cairn_api::server::raise_nofile_limit() {
        Ok(n) => tracing::debug!("open file limit: {n}"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
    let socket = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = cairn_api::sockpath::SocketPath::new(&socket)
        .and_then(|p| UnixListener::bind(p.path()))
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    // Only the daemon's user and root may control it (the peer is checked as well).
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set the mode of {}", socket.display()))?;
    let host = Host::open(opts.config).await?;
    tracing::info!("cairn daemon ready on {}", socket.display());
    println!(
        "cairn: serving {} (pooling allocator: {})",
        socket.display(),
        host.runtime().pooling()
    );
    let host = Arc::new(host);
    if let Some(addr) = &opts.metrics_listen {
        crate::metrics::listen(addr, host.clone()).await?;
    }
    // Free pages back to the kernel now and then: a burst of events leaves freed memory
    // in the allocator that an idle host would keep.
    tokio::spawn(async {
        let mut every = tokio::time::interval(TRIM_EVERY);
        loop {
            every.tick().await;
            let _ = tokio::task::spawn_blocking(cairn_runtime::allocator::trim).await;
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut backoff = cairn_api::server::AcceptBackoff::new();
    let what = socket.display().to_string();
    loop {
        tokio::select! {
            // Running out of descriptors pauses accepting; it never stops the daemon.
            (stream, _) = backoff.accept(&what, || listener.accept()) => {
                let host = host.clone();
                tokio::spawn(async move {
                    if let Err(e) = serve(stream, &host).await {
                        tracing::debug!("control connection: {e:#}");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    tracing::info!("stopping: stopping all services");
    host.shutdown().await;
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// The state directory's lock file, held by the daemon for its life.
pub const LOCK_FILE: &str = "cairn.lock";

/// How often the daemon returns its allocator's free pages to the kernel.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Takes the state directory's lock for the life of the process. It is a POSIX record lock
/// (`F_SETLK`), not `flock`: record locks belong to the process and are not inherited by
/// the children it forks, so a child between fork and exec when the daemon is killed
/// cannot keep the next daemon out.
fn lock(dir: &std::path::Path) -> Result<std::fs::File> {
    let path: PathBuf = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let whole_file = nix::libc::flock {
        l_type: nix::libc::F_WRLCK as _,
        l_whence: nix::libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_SETLK(&whole_file)).map_err(|e| {
        anyhow::anyhow!(
            "cannot lock {}: another cairn daemon uses this directory ({e})",
            path.display()
        )
    })?;
    Ok(f)
}

/// Longest request line the control socket reads.
const MAX_REQUEST: u64 = 1 << 20;
/// How long a control client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an error reply's text (errors may quote the request).
const MAX_ERROR: usize = 4096;

async fn serve(stream: UnixStream, host: &Host) -> Result<()> {
    let peer = stream.peer_cred().map(|c| c.uid()).ok();
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r.take(MAX_REQUEST + 1));
    let reply = if peer.is_none_or(|uid| uid != 0 && uid != nix::unistd::Uid::current().as_raw()) {
        Reply::Error("access denied".into())
    } else {
        let mut line = Vec::new();
        let read = tokio::time::timeout(REQUEST_TIMEOUT, reader.read_until(b'\n', &mut line)).await;
        match read {
            Err(_) => Reply::Error("cannot read request: timed out".into()),
            Ok(Err(e)) => Reply::Error(format!("cannot read request: {e}")),
            Ok(Ok(_)) if line.len() as u64 > MAX_REQUEST => Reply::Error(format!(
                "cannot read request: longer than {MAX_REQUEST} bytes"
            )),
            Ok(Ok(_)) => match crate::control::decode_request(&line) {
                Ok(req) => match handle(host, req).await {
                    Ok(v) => Reply::Ok(v),
                    Err(e) => Reply::Error(format!("{e:#}")),
                },
                Err(e) => Reply::Error(format!("cannot decode request: {e}")),
            },
        }
    };
    let reply = match reply {
        Reply::Error(e) if e.len() > MAX_ERROR => {
            let mut end = MAX_ERROR;
            while !e.is_char_boundary(end) {
                end -= 1;
            }
            Reply::Error(format!("{}... ({} bytes)", &e[..end], e.len()))
        }
        r => r,
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    // A client still sending (a refused or over-long request) would have its connection
    // reset, losing this reply, if the socket closed with its bytes unread: stop writing,
    // then discard what it sends for a moment (bounded in time and bytes).
    let _ = w.shutdown().await;
    let mut rest = reader.into_inner().into_inner().take(16 << 20);
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        tokio::io::copy(&mut rest, &mut tokio::io::sink()),
    )
    .await;
    Ok(())
}

async fn handle(host: &Host, req: Request) -> Result<serde_json::Value> {
    Ok(match req {
        Request::Deploy {
            path,
            name,
            config,
            limits,
            units,
        } => {
            let app = host
                .deploy_with(
                    path.as_ref(),
                    &cairn_runtime::DeployOptions {
                        name,
                        settings: config,
                        limits,
                        units,
                    },
                )
                .await?;
            serde_json::json!({ "app": app })
        }
        Request::Refresh { app, path } => {
            let hash = host.refresh(&app, path.as_ref()).await?;
            serde_json::json!({ "app": app, "charm": hash })
        }
        Request::AddUnit { app, n } => {
            let units = host.add_unit(&app, n).await?;
            serde_json::json!({ "units": units })
        }
        Request::RemoveUnit { units } => {
            for unit in &units {
                host.remove_unit(unit).await?;
            }
            serde_json::json!({ "removed": units })
        }
        Request::Resolve { unit, no_retry } => {
            let how = if no_retry {
                cairn_runtime::Resolve::Skip
            } else {
                cairn_runtime::Resolve::Retry
            };
            host.resolve(&unit, how).await?;
            serde_json::json!({ "resolved": unit })
        }
        Request::Config {
            app,
            set,
            reset,
            limits,
            wait,
        } => {
            if !limits.is_empty() {
                host.set_limits(&app, &limits).await?;
            }
            let changed = if set.is_empty() && reset.is_empty() {
                false
            } else {
                host.set_config(&app, &set, &reset).await?
            };
            if let Some(secs) = wait {
                let generation = host.config_generation(&app).await?;
                host.wait_config(&app, generation, std::time::Duration::from_secs(secs))
                    .await?;
            }
            let config = host.get_config(&app).await?;
            serde_json::json!({ "changed": changed, "config": config })
        }
        Request::Status { apps } => serde_json::to_value(host.status_of(&apps).await)?,
        Request::Integrate { one, other } => {
            serde_json::to_value(host.integrate(&one, &other).await?)?
        }
        Request::RemoveRelation { one, other } => {
            host.remove_relation(&one, other.as_deref()).await?;
            serde_json::json!({ "removed": one })
        }
        Request::Metrics => serde_json::Value::String(host.metrics().await),
        Request::Limits { app } => serde_json::to_value(host.limits(&app).await?)?,
        Request::Events { unit, n } => serde_json::to_value(host.events(&unit, n).await?)?,
        Request::Remove { app } => {
            host.remove(&app).await?;
            serde_json::json!({ "removed": app })
        }
        Request::RunAction {
            unit,
            action,
            params,
            wait,
        } => {
            let rec = host.run_action(&unit, &action, &params).await?;
            let rec = match wait {
                Some(secs) => {
                    host.wait_action(&rec.id, std::time::Duration::from_secs(secs))
                        .await?
                }
                None => rec,
            };
            serde_json::to_value(rec)?
        }
        Request::ShowAction { id } => serde_json::to_value(host.show_action(&id)?)?,
    })
}
