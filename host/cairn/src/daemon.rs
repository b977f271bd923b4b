//! `cairn run`: the host daemon serving the control socket.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use cairn_runtime::{Host, HostConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::control::{Reply, Request, SOCKET};

/// Options of `cairn run`.
pub struct DaemonOptions {
    pub config: HostConfig,
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
    let socket = dir.join(SOCKET);
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let host = Host::open(opts.config).await?;
    tracing::info!("cairn daemon ready on {}", socket.display());
    println!(
        "cairn: serving {} (pooling allocator: {})",
        socket.display(),
        host.runtime().pooling()
    );
    let host = Arc::new(host);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            conn = listener.accept() => {
                let (stream, _) = conn?;
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

fn lock(dir: &std::path::Path) -> Result<std::fs::File> {
    let path: PathBuf = dir.join("cairn.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    nix::fcntl::Flock::lock(f.try_clone()?, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| {
            anyhow::anyhow!(
                "cannot lock {}: another cairn daemon uses this directory ({e})",
                path.display()
            )
        })
        .map(std::mem::forget)?;
    Ok(f)
}

async fn serve(stream: UnixStream, host: &Host) -> Result<()> {
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).await?;
    let reply = match crate::control::decode_request(&line) {
        Ok(req) => match handle(host, req).await {
            Ok(v) => Reply::Ok(v),
            Err(e) => Reply::Error(format!("{e:#}")),
        },
        Err(e) => Reply::Error(format!("cannot decode request: {e}")),
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    w.write_all(&out).await?;
    Ok(())
}

async fn handle(host: &Host, req: Request) -> Result<serde_json::Value> {
    Ok(match req {
        Request::Deploy { path, name, config } => {
            let app = host.deploy(path.as_ref(), name.as_deref(), &config).await?;
            serde_json::json!({ "app": app })
        }
        Request::Config { app, set, reset } => {
            let changed = if set.is_empty() && reset.is_empty() {
                false
            } else {
                host.set_config(&app, &set, &reset).await?
            };
            let config = host.get_config(&app).await?;
            serde_json::json!({ "changed": changed, "config": config })
        }
        Request::Status => serde_json::to_value(host.status().await)?,
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
