//! `services`, `start`, `stop`, `restart`, `autostart` and `signal`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use cairn_api::Client;
use clap::Args;

use super::Io;
use super::changes::services_action;
use super::times::fmt_time;
use crate::args::{ListFormatArgs, TimeArgs, WaitArgs};
use crate::table::{render, row};

/// Arguments of `services`.
#[derive(Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Services to show (default: all).
    services: Vec<String>,
}

/// Arguments of `start`.
#[derive(Args)]
pub struct StartArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Services to start.
    #[arg(required = true)]
    services: Vec<String>,
}

/// Arguments of `stop`.
#[derive(Args)]
pub struct StopArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Services to stop.
    #[arg(required = true)]
    services: Vec<String>,
}

/// Arguments of `restart`.
#[derive(Args)]
pub struct RestartArgs {
    #[command(flatten)]
    wait: WaitArgs,
    /// Services to restart.
    #[arg(required = true)]
    services: Vec<String>,
}

/// Arguments of `autostart`.
#[derive(Args)]
pub struct AutostartArgs {
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `signal`.
#[derive(Args)]
pub struct SignalArgs {
    /// The signal, uppercase (HUP or SIGHUP).
    signal: String,
    /// Services to signal (none: the server says so, as Pebble's parser leaves it to it).
    services: Vec<String>,
}

/// `services`: the services' startup and current state, and since when.
pub async fn services(client: &Client, args: ServicesArgs, io: &mut Io<'_>) -> Result<i32> {
    let ServicesArgs {
        time,
        format,
        services,
    } = args;
    let list = client.services(&services).await?;
    if !format.text() {
        let services: BTreeMap<&str, _> = list.iter().map(|s| (s.name.as_str(), s)).collect();
        format.write(io.out, &super::json_under("services", &services)?)?;
    } else if list.is_empty() {
        let note = if services.is_empty() {
            "Plan has no services."
        } else {
            "No matching services."
        };
        writeln!(io.err, "{note}")?;
    } else {
        let mut rows = vec![row(["Service", "Startup", "Current", "Since"])];
        for s in &list {
            let since = s
                .current_since
                .as_deref()
                .map(|t| fmt_time(t, time.abs_time))
                .unwrap_or_else(|| "-".into());
            rows.push(vec![
                s.name.clone(),
                s.startup.clone(),
                s.current.as_str().to_string(),
                since,
            ]);
        }
        io.out.write_all(render(&rows).as_bytes())?;
    }
    Ok(0)
}

/// `start`: starts services and what they require.
pub async fn start(client: &Client, args: StartArgs, io: &mut Io<'_>) -> Result<i32> {
    services_action(client, "start", &args.services, args.wait, io).await
}

/// `stop`: stops services and what requires them.
pub async fn stop(client: &Client, args: StopArgs, io: &mut Io<'_>) -> Result<i32> {
    services_action(client, "stop", &args.services, args.wait, io).await
}

/// `restart`: stops, then starts services.
pub async fn restart(client: &Client, args: RestartArgs, io: &mut Io<'_>) -> Result<i32> {
    services_action(client, "restart", &args.services, args.wait, io).await
}

/// `autostart`: starts the services whose startup is enabled.
pub async fn autostart(client: &Client, args: AutostartArgs, io: &mut Io<'_>) -> Result<i32> {
    services_action(client, "autostart", &[], args.wait, io).await
}

/// `signal`: sends a signal (named in uppercase, with or without `SIG`) to services.
pub async fn signal(client: &Client, args: SignalArgs, _io: &mut Io<'_>) -> Result<i32> {
    let SignalArgs { signal, services } = args;
    if signal.to_uppercase() != signal {
        bail!("signal name must be uppercase, for example HUP");
    }
    let signal = if signal.starts_with("SIG") {
        signal
    } else {
        format!("SIG{signal}")
    };
    client.send_signal(&signal, &services).await?;
    Ok(0)
}
