//! `health`, `checks`, `check`, `start-checks` and `stop-checks`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use cairn_api::types::CheckInfo;
use cairn_api::{Client, ClientError};
use cairn_supervisor::CheckStatus;
use clap::Args;

use super::Io;
use super::changes::task_logs;
use crate::args::ListFormatArgs;
use crate::table::{render, row};

/// Arguments of `health`.
#[derive(Args)]
pub struct HealthArgs {
    /// Check level to filter for.
    #[arg(long, value_parser = ["alive", "ready"])]
    level: Option<String>,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Checks (default: all).
    checks: Vec<String>,
}

/// Arguments of `checks`.
#[derive(Args)]
pub struct ChecksArgs {
    /// Check level to filter for.
    #[arg(long, value_parser = ["alive", "ready"])]
    level: Option<String>,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Checks to show (default: all).
    checks: Vec<String>,
}

/// Arguments of `check`.
#[derive(Args)]
pub struct CheckArgs {
    /// Run the check now.
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    format: ListFormatArgs,
    /// The check.
    check: String,
}

/// Arguments of `start-checks`.
#[derive(Args)]
pub struct StartChecksArgs {
    /// Checks to start.
    #[arg(required = true)]
    checks: Vec<String>,
}

/// Arguments of `stop-checks`.
#[derive(Args)]
pub struct StopChecksArgs {
    /// Checks to stop.
    #[arg(required = true)]
    checks: Vec<String>,
}

/// A check as Pebble's client decodes and prints it (`checks --format json`, `check`): its
/// fields in that order, `failures` even when none (the API leaves it out then).
#[derive(serde::Serialize)]
#[serde(rename_all = "kebab-case")]
struct Shown<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    level: &'a str,
    startup: &'a str,
    status: &'a str,
    successes: u32,
    failures: u32,
    threshold: u32,
    #[serde(skip_serializing_if = "str::is_empty")]
    change_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    prev_change_id: &'a str,
    /// `check --refresh`: the run's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// `check`: the task log of a failing check.
    #[serde(skip_serializing_if = "String::is_empty")]
    logs: String,
}

impl<'a> From<&'a CheckInfo> for Shown<'a> {
    fn from(c: &'a CheckInfo) -> Self {
        Shown {
            name: &c.name,
            level: &c.level,
            startup: &c.startup,
            status: &c.status,
            successes: c.successes,
            failures: c.failures,
            threshold: c.threshold,
            change_id: &c.change_id,
            prev_change_id: &c.prev_change_id,
            error: None,
            logs: String::new(),
        }
    }
}

/// `health`: `healthy` (exit 0) or `unhealthy` (exit 1).
pub async fn health(client: &Client, args: HealthArgs, io: &mut Io<'_>) -> Result<i32> {
    let healthy = client.health(args.level.as_deref(), &args.checks).await?;
    if !args.format.text() {
        args.format.write(
            io.out,
            &serde_json::json!({ "healthy": healthy }).to_string(),
        )?;
        return Ok(0);
    }
    writeln!(io.out, "{}", if healthy { "healthy" } else { "unhealthy" })?;
    Ok(if healthy { 0 } else { 1 })
}

/// `checks`: each check's level, startup, status, counts and change.
pub async fn checks(client: &Client, args: ChecksArgs, io: &mut Io<'_>) -> Result<i32> {
    let ChecksArgs {
        level,
        format,
        checks,
    } = args;
    let list = client
        .checks(level.as_deref().unwrap_or(""), &checks)
        .await?;
    if !format.text() {
        let checks: BTreeMap<&str, Shown> =
            list.iter().map(|c| (c.name.as_str(), c.into())).collect();
        format.write(io.out, &super::json_under("checks", &checks)?)?;
    } else if list.is_empty() {
        let note = if checks.is_empty() && level.is_none() {
            "Plan has no health checks."
        } else {
            "No matching health checks."
        };
        writeln!(io.err, "{note}")?;
    } else {
        let mut rows = vec![row([
            "Check",
            "Level",
            "Startup",
            "Status",
            "Successes",
            "Failures",
            "Change",
        ])];
        for c in &list {
            let inactive = c.status() == Some(CheckStatus::Inactive);
            rows.push(vec![
                c.name.clone(),
                if c.level.is_empty() {
                    "-".into()
                } else {
                    c.level.clone()
                },
                c.startup.clone(),
                c.status.clone(),
                if inactive {
                    "-".into()
                } else {
                    c.successes.to_string()
                },
                if inactive {
                    "-".into()
                } else {
                    format!("{}/{}", c.failures, c.threshold)
                },
                change_info(client, c, &io.program).await,
            ]);
        }
        io.out.write_all(render(&rows).as_bytes())?;
    }
    Ok(0)
}

/// `check`: one check as YAML (or JSON), with the logs of its failing change.
pub async fn check(client: &Client, args: CheckArgs, io: &mut Io<'_>) -> Result<i32> {
    let CheckArgs {
        refresh,
        format,
        check,
    } = args;
    let (info, error) = if refresh {
        client.refresh_check(&check).await?
    } else {
        let found = client.checks("", std::slice::from_ref(&check)).await?;
        match found.into_iter().next() {
            Some(i) => (i, None),
            None => bail!("cannot find check {check:?}"),
        }
    };
    let mut logs = String::new();
    if (info.failures > 0 || error.is_some()) && !info.change_id.is_empty() {
        logs = task_logs(client, &info.change_id).await?;
        if logs.is_empty() && !info.prev_change_id.is_empty() {
            logs = task_logs(client, &info.prev_change_id).await?;
        }
    }
    let shown = Shown {
        error,
        logs,
        ..Shown::from(&info)
    };
    // The text is the check as YAML.
    let json = serde_json::to_string(&shown)?;
    if format.text() {
        crate::args::write_yaml(io.out, &json)?;
    } else {
        format.write(io.out, &json)?;
    }
    Ok(0)
}

/// `start-checks`: starts stopped checks.
pub async fn start_checks(client: &Client, args: StartChecksArgs, io: &mut Io<'_>) -> Result<i32> {
    let changed = client.checks_action("start", &args.checks).await?;
    if changed.is_empty() {
        writeln!(io.out, "Checks already started.")?;
    } else {
        writeln!(io.out, "Checks started: {}", changed.join(", "))?;
    }
    Ok(0)
}

/// `stop-checks`: stops running checks.
pub async fn stop_checks(client: &Client, args: StopChecksArgs, io: &mut Io<'_>) -> Result<i32> {
    let changed = client.checks_action("stop", &args.checks).await?;
    if changed.is_empty() {
        writeln!(io.out, "Checks already stopped.")?;
    } else {
        writeln!(io.out, "Checks stopped: {}", changed.join(", "))?;
    }
    Ok(0)
}

/// Pebble's `checks` Change column: the change ID, with the last task log line when the
/// check is failing (cut to 70 characters).
async fn change_info(client: &Client, c: &CheckInfo, program: &str) -> String {
    if c.change_id.is_empty() {
        return "-".into();
    }
    if c.failures == 0 {
        return c.change_id.clone();
    }
    let last = |id: String| async move {
        let chg = client.change(&id).await?;
        let log = chg
            .tasks
            .first()
            .and_then(|t| t.log.last())
            .map(|l| {
                let l = l.splitn(3, ' ').nth(2).unwrap_or(l);
                l.replace('\n', "\\n")
            })
            .unwrap_or_default();
        Ok::<_, ClientError>((id, log))
    };
    let mut found = last(c.change_id.clone()).await;
    if matches!(&found, Ok((_, log)) if log.is_empty()) && !c.prev_change_id.is_empty() {
        found = last(c.prev_change_id.clone()).await;
    }
    match found {
        Err(e) => format!("{} ({e})", c.change_id),
        Ok((_, log)) if log.is_empty() => c.change_id.clone(),
        Ok((id, mut log)) => {
            const MAX: usize = 70;
            if log.len() > MAX {
                let more = format!("... run \"{program} tasks {id}\" for more");
                let mut cut = MAX.saturating_sub(more.len());
                while !log.is_char_boundary(cut) {
                    cut -= 1;
                }
                log = format!("{}{more}", &log[..cut]);
            }
            format!("{} ({log})", c.change_id)
        }
    }
}
