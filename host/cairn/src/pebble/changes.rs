//! `changes` and `tasks`, and the waiting that `start`, `stop`, `replan`… do on their change
//! (Pebble's `cmd_changes.go`, `cmd_tasks.go`, `wait.go` and `last.go`).

use anyhow::{Context, Result, anyhow, bail};
use cairn_api::types::ChangeInfo;
use cairn_api::{Client, ClientError};
use cairn_supervisor::ChangeStatus;
use clap::Args;

use super::Io;
use super::times::{fmt_time, parse_time};
use crate::args::{ListFormatArgs, TimeArgs, WaitArgs};
use crate::table::{render, row};

/// Arguments of `changes`.
#[derive(Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Only changes that touched this service.
    service: Option<String>,
}

/// Arguments of `tasks`.
#[derive(Args)]
pub struct TasksArgs {
    /// Select last change of given type (start, stop, replan, ...). A question mark at the
    /// end of the type means to do nothing if no change of the given type is found.
    #[arg(long = "last", value_name = "TYPE")]
    last: Option<String>,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Change ID.
    change_id: Option<String>,
    /// Arguments past the change ID, ignored as Pebble ignores them.
    #[arg(hide = true)]
    _ignored: Vec<String>,
}

/// `changes`: the container's changes, oldest first.
pub async fn changes(client: &Client, args: ChangesArgs, io: &mut Io<'_>) -> Result<i32> {
    let ChangesArgs {
        time,
        format,
        service,
    } = args;
    if let Some(s) = service.as_deref()
        && !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
    {
        bail!(
            "'{p} changes' command expects a service name, try '{p} tasks {s}'",
            p = io.program
        );
    }
    if service.as_deref() == Some("everything") {
        writeln!(io.out, "Yes, yes it does.")?;
        return Ok(0);
    }
    let mut changes = client.changes("all", service.as_deref()).await?;
    changes.sort_by_key(|c| parse_time(&c.spawn_time));
    if !format.text() {
        format.write(io.out, &super::json_under("changes", &changes)?)?;
    } else if changes.is_empty() {
        writeln!(io.err, "no changes found")?;
    } else {
        let mut rows = vec![row(["ID", "Status", "Spawn", "Ready", "Summary"])];
        for c in &changes {
            rows.push(vec![
                c.id.clone(),
                c.status.clone(),
                fmt_time(&c.spawn_time, time.abs_time),
                c.ready_time
                    .as_deref()
                    .map(|t| fmt_time(t, time.abs_time))
                    .unwrap_or_else(|| "-".into()),
                c.summary.clone(),
            ]);
        }
        writeln!(io.out, "{}", render(&rows))?;
    }
    Ok(0)
}

/// `tasks`: one change's tasks, then the log of each task that has one.
pub async fn tasks(client: &Client, args: TasksArgs, io: &mut Io<'_>) -> Result<i32> {
    let TasksArgs {
        last,
        time,
        format,
        change_id,
        ..
    } = args;
    let id = match (change_id, last) {
        (None, None) => bail!("please provide change ID or type with --last=<type>"),
        (Some(_), Some(_)) => bail!("cannot use change ID and type together"),
        (Some(id), None) => id,
        (None, Some(kind)) => match last_change_id(client, &kind).await? {
            Some(id) => id,
            None => return Ok(0),
        },
    };
    let chg = client.change(&id).await?;
    if !format.text() {
        format.write(io.out, &serde_json::to_string(&chg)?)?;
    } else {
        io.out
            .write_all(tasks_text(&chg, time.abs_time).as_bytes())?;
    }
    Ok(0)
}

/// Posts a services action and, unless `--no-wait`, waits for its change.
pub async fn services_action(
    client: &Client,
    action: &str,
    services: &[String],
    wait: WaitArgs,
    io: &mut Io<'_>,
) -> Result<i32> {
    let id = client.services_action(action, services).await?;
    if wait.no_wait {
        writeln!(io.out, "{id}")?;
        return Ok(0);
    }
    let chg = tokio::select! {
        r = client.wait_change(&id, None) => r?,
        _ = tokio::signal::ctrl_c() => {
            // As Pebble: Ctrl-C aborts the change, then waits for it to finish.
            let aborter = Client::unix(client.socket());
            if let Err(e) = aborter.abort_change(&id).await {
                writeln!(io.err, "{e}")?;
            }
            aborter.wait_change(&id, None).await?
        }
    };
    finished(chg).map(|()| 0)
}

/// The outcome of a waited-for change, as Pebble's CLI reports it.
fn finished(chg: ChangeInfo) -> Result<()> {
    if !chg.ready {
        bail!("change {} is not ready", chg.id);
    }
    if chg.status() == Some(ChangeStatus::Done) {
        return Ok(());
    }
    match chg.err {
        Some(err) if !err.is_empty() => Err(anyhow!(ClientError::Change {
            change_id: chg.id,
            err,
        })),
        _ => bail!(
            "change finished in status {:?} with no error message",
            chg.status
        ),
    }
}

/// The newest change of a kind (`--last=kind`, `kind?` = fine if none).
async fn last_change_id(client: &Client, kind: &str) -> Result<Option<String>> {
    let (kind, optional) = match kind.strip_suffix('?') {
        Some(k) => (k, true),
        None => (kind, false),
    };
    let changes = client.changes("all", None).await?;
    if changes.is_empty() {
        if optional {
            return Ok(None);
        }
        bail!("no changes found");
    }
    let latest = changes
        .iter()
        .filter(|c| c.kind == kind)
        .max_by_key(|c| parse_time(&c.spawn_time));
    match latest {
        Some(c) => Ok(Some(c.id.clone())),
        None if optional => Ok(None),
        None => bail!("no changes of type {kind:?} found"),
    }
}

/// Every log line of a change's first task, one per line.
pub async fn task_logs(client: &Client, id: &str) -> Result<String> {
    let chg = client
        .change(id)
        .await
        .with_context(|| format!("cannot get task logs for change {id}"))?;
    Ok(chg
        .tasks
        .first()
        .map(|t| t.log.iter().map(|l| format!("{l}\n")).collect())
        .unwrap_or_default())
}

/// The `tasks` table, then a dotted rule, the summary and the log of each task with a log.
fn tasks_text(chg: &ChangeInfo, abs: bool) -> String {
    const LINE: &str = "......................................................................";
    let mut rows = vec![row(["Status", "Spawn", "Ready", "Summary"])];
    for t in &chg.tasks {
        let mut summary = t.summary.clone();
        if t.status() == Some(ChangeStatus::Doing) && t.progress.total > 1 {
            summary = format!(
                "{summary} ({:.2}%)",
                t.progress.done as f64 / t.progress.total as f64 * 100.0
            );
        }
        rows.push(vec![
            t.status.clone(),
            fmt_time(&t.spawn_time, abs),
            t.ready_time
                .as_deref()
                .map(|r| fmt_time(r, abs))
                .unwrap_or_else(|| "-".into()),
            summary,
        ]);
    }
    let mut s = render(&rows);
    for t in chg.tasks.iter().filter(|t| !t.log.is_empty()) {
        s.push('\n');
        s.push_str(LINE);
        s.push('\n');
        s.push_str(&t.summary);
        s.push_str("\n\n");
        for l in &t.log {
            s.push_str(l);
            s.push('\n');
        }
    }
    s.push('\n');
    s
}
