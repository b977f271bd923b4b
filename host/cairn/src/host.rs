//! The host's commands, which `cairn-host` runs: the daemon (`run`), a standalone Pebble
//! (`pebble run`), the tour (`demo`) and `pack`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cairn_runtime::HostConfig;

use crate::cli::{Command, Containers, PebbleCommand, TenancyArg, TenancyNet, default_dir};
use crate::{daemon, demo, standalone};

/// Runs a host command (one that [`Command::runs_host`]); `run_args` are `pebble run`'s
/// `--args` groups. Returns the process's exit code.
pub async fn dispatch(
    dir: Option<PathBuf>,
    command: Command,
    run_args: Vec<Vec<String>>,
) -> Result<i32> {
    let dir = dir.unwrap_or_else(default_dir);
    match command {
        Command::Pebble {
            command: PebbleCommand::Run(flags),
        } => standalone::run(standalone::RunOptions::new(flags, run_args)).await,
        Command::Pebble {
            command:
                PebbleCommand::Enter {
                    flags,
                    run,
                    subcommand,
                },
        } => {
            standalone::enter(
                standalone::RunOptions::new(flags, run_args),
                run,
                subcommand,
            )
            .await
        }
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
            .map(|()| 0)
        }
        Command::Demo { keep } => demo::run(keep).await.map(|()| 0),
        Command::Pack {
            path,
            output,
            dispatcher,
        } => pack(&path, output, dispatcher).map(|()| 0),
        _ => bail!("not a host command"),
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
