//! The client commands: what `cairn` runs itself, talking to a daemon's control socket or
//! a container's Pebble API, without loading the runtime.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::args::FormatArgs;
use crate::cli::{Cli, Command, ControlCommand, PebbleCommand, default_dir, split_kv};
use crate::control::{self, Request};
use crate::{output, pebble};

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

/// Runs a client command (not one that [`Command::runs_host`]); returns the process's exit
/// code (an error is exit code 1). Only Pebble's commands start a (one-thread) runtime.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let dir = cli.globals.dir.unwrap_or_else(default_dir);
    match cli.command {
        Command::Container(c)
        | Command::Pebble {
            command: PebbleCommand::Client(c),
        } => {
            pebble::init_local_offset();
            let socket = pebble::resolve_socket(&dir, cli.globals.container.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start tokio runtime")?;
            let code = rt.block_on(pebble::run(&socket, c));
            // Blocking reads still parked on pipes must not keep the process alive.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            code
        }
        Command::Control(c) => dispatch_control(dir, c).map(|()| 0),
        _ => bail!("not a client command"),
    }
}

/// The commands that talk to the daemon's control socket.
pub fn dispatch_control(dir: PathBuf, command: ControlCommand) -> Result<()> {
    match command {
        ControlCommand::Deploy {
            path,
            name,
            config,
            limits,
            num_units,
        } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find charm {}", path.display()))?;
            let v = control::call_blocking(
                &dir,
                &Request::Deploy {
                    path: path.display().to_string(),
                    name,
                    config: split_kv(&config)?,
                    limits,
                    units: num_units,
                },
            )?;
            println!("Deployed {}", v["app"].as_str().unwrap_or("?"));
            Ok(())
        }
        ControlCommand::Refresh { app, path } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("cannot find charm {}", path.display()))?;
            control::call_blocking(
                &dir,
                &Request::Refresh {
                    app: app.clone(),
                    path: path.display().to_string(),
                },
            )?;
            println!("Refreshed {app}");
            Ok(())
        }
        ControlCommand::AddUnit { app, num_units } => {
            let v = control::call_blocking(&dir, &Request::AddUnit { app, n: num_units })?;
            for u in v["units"].as_array().into_iter().flatten() {
                println!("Added {}", u.as_str().unwrap_or("?"));
            }
            Ok(())
        }
        ControlCommand::RemoveUnit { units } => {
            control::call_blocking(
                &dir,
                &Request::RemoveUnit {
                    units: units.clone(),
                },
            )?;
            for u in units {
                println!("Removed {u}");
            }
            Ok(())
        }
        ControlCommand::Resolve { unit, no_retry } => {
            control::call_blocking(&dir, &Request::Resolve { unit, no_retry })?;
            Ok(())
        }
        ControlCommand::Config {
            app,
            settings,
            reset,
            limits,
            wait,
        } => {
            let quiet = !(settings.is_empty() && reset.is_empty() && limits.is_empty());
            let v = control::call_blocking(
                &dir,
                &Request::Config {
                    app,
                    set: split_kv(&settings)?,
                    reset: reset.clone(),
                    limits,
                    wait,
                },
            )?;
            if !quiet {
                output::print_config(&v["config"]);
            }
            Ok(())
        }
        ControlCommand::Metrics => {
            let v = control::call_blocking(&dir, &Request::Metrics)?;
            print!("{}", v.as_str().unwrap_or_default());
            Ok(())
        }
        ControlCommand::Integrate { one, other } => {
            let v = control::call_blocking(&dir, &Request::Integrate { one, other })?;
            let rel: cairn_runtime::RelationReport = serde_json::from_value(v)?;
            println!(
                "related {} and {} (relation {}, interface {})",
                rel.requirer, rel.provider, rel.id, rel.interface
            );
            Ok(())
        }
        ControlCommand::RemoveRelation { one, other } => {
            control::call_blocking(&dir, &Request::RemoveRelation { one, other })?;
            Ok(())
        }
        ControlCommand::Status {
            apps,
            relations,
            format,
        } => {
            let v = control::call_blocking(&dir, &Request::Status { apps })?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let report: cairn_runtime::StatusReport = serde_json::from_value(v)?;
                print!("{}", output::status_table(&report, relations));
            }
            Ok(())
        }
        ControlCommand::Limits { app, format } => {
            let v = control::call_blocking(&dir, &Request::Limits { app })?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let l: cairn_runtime::AppLimits = serde_json::from_value(v)?;
                print!("{}", output::limits_table(&l));
            }
            Ok(())
        }
        ControlCommand::Events { unit, n, format } => {
            let v = control::call_blocking(&dir, &Request::Events { unit, n })?;
            if format.json() {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                let events: Vec<cairn_runtime::HistoryEntry> = serde_json::from_value(v)?;
                print!("{}", output::events_table(&events));
            }
            Ok(())
        }
        ControlCommand::Remove { app } => {
            control::call_blocking(&dir, &Request::Remove { app: app.clone() })?;
            println!("Removed {app}");
            Ok(())
        }
        ControlCommand::RunAction {
            unit,
            action,
            params,
            wait,
            format,
        } => {
            let v = control::call_blocking(
                &dir,
                &Request::RunAction {
                    unit: unit.clone(),
                    action,
                    params: split_kv(&params)?,
                    wait,
                },
            )?;
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
        ControlCommand::ShowAction { id, format } => {
            let v = control::call_blocking(&dir, &Request::ShowAction { id })?;
            let rec: cairn_runtime::ActionRecord = serde_json::from_value(v)?;
            show_action(&rec, &format)
        }
    }
}
