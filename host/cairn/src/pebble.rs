//! Pebble's command line against one container: `cairn --container web/0 services`, or with
//! `PEBBLE`/`PEBBLE_SOCKET` set, or as `pebble services` through a symlink.
//!
//! Output follows Pebble's CLI: the same tables (Go's tabwriter with minwidth 5 and padding
//! 2), the same human times ("today at 15:04 UTC"), the same messages on stderr for empty
//! listings, and `start`/`stop`/`replan`… wait for their change (Ctrl-C aborts it) unless
//! `--no-wait`, which prints the change ID.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use cairn_api::{Client, ClientError};
use cairn_api::types::ChangeInfo;
use clap::{Args, Subcommand};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// The commands that act on one container through its API.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Show the plan with layers combined.
    Plan,
    /// Dynamically add a layer to the plan's layers.
    Add {
        /// Combine the new layer with an existing layer that has the given label (default is
        /// to append).
        #[arg(long)]
        combine: bool,
        /// Allow appending a new layer inside an existing subdirectory.
        #[arg(long)]
        inner: bool,
        /// The layer's label.
        label: String,
        /// Path of the layer YAML.
        layer_path: PathBuf,
    },
    /// Query the status of configured services.
    Services {
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
        /// Services to show (default: all).
        services: Vec<String>,
    },
    /// Start a service and its dependencies.
    Start {
        #[command(flatten)]
        wait: WaitArgs,
        /// Services to start.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Stop a service and its dependents.
    Stop {
        #[command(flatten)]
        wait: WaitArgs,
        /// Services to stop.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Restart a service.
    Restart {
        #[command(flatten)]
        wait: WaitArgs,
        /// Services to restart.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Ensure running services match the current plan.
    Replan {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Start services set to start by default.
    Autostart {
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List system changes.
    Changes {
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
        /// Only changes that touched this service.
        service: Option<String>,
    },
    /// List a change's tasks.
    Tasks {
        /// Select last change of given type (start, stop, replan, ...). A question mark at the
        /// end of the type means to do nothing if no change of the given type is found.
        #[arg(long = "last", value_name = "TYPE")]
        last: Option<String>,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
        /// Change ID.
        change_id: Option<String>,
    },
    /// Fetch service logs.
    Logs {
        /// Follow (tail) logs for given services until Ctrl-C is pressed. If no services are
        /// specified, show logs from all services running when the command starts.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Number of logs to show (before following); defaults to 30. If 'all', show all
        /// buffered logs.
        #[arg(short = 'n')]
        n: Option<String>,
        /// Output format.
        #[arg(long, default_value = "text", value_parser = ["text", "json"])]
        format: String,
        /// Services (default: all).
        services: Vec<String>,
    },
    /// Send a signal to one or more running services.
    Signal {
        /// The signal, uppercase (HUP or SIGHUP).
        signal: String,
        /// Services to signal.
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Query health of checks (exit code 1 when unhealthy).
    Health {
        /// Check level to filter for.
        #[arg(long, value_parser = ["alive", "ready"])]
        level: Option<String>,
        #[command(flatten)]
        format: FormatArgs,
        /// Checks (default: all).
        checks: Vec<String>,
    },
    /// Query the status of configured health checks.
    Checks {
        /// Check level to filter for.
        #[arg(long, value_parser = ["alive", "ready"])]
        level: Option<String>,
        #[command(flatten)]
        format: FormatArgs,
        /// Checks to show (default: all).
        checks: Vec<String>,
    },
    /// Query the details of a configured health check.
    Check {
        /// Run the check now.
        #[arg(long)]
        refresh: bool,
        #[command(flatten)]
        format: FormatArgs,
        /// The check.
        check: String,
    },
    /// Start one or more checks.
    #[command(name = "start-checks")]
    StartChecks {
        /// Checks to start.
        #[arg(required = true)]
        checks: Vec<String>,
    },
    /// Stop one or more checks.
    #[command(name = "stop-checks")]
    StopChecks {
        /// Checks to stop.
        #[arg(required = true)]
        checks: Vec<String>,
    },
    /// Record a custom notice.
    Notify {
        /// Prevent a notice with the same type and key from reoccurring within this duration.
        #[arg(long, value_parser = parse_go_duration)]
        repeat_after: Option<std::time::Duration>,
        /// The notice key, such as example.com/backup/done.
        key: String,
        /// Data as name=value.
        data: Vec<String>,
    },
    /// List notices.
    Notices {
        /// The only valid value is 'all': notices of any user (admin only; not with --uid).
        #[arg(long)]
        users: Option<String>,
        /// Only notices with this user ID (admin only; not with --users).
        #[arg(long)]
        uid: Option<u32>,
        /// Only notices of this type (repeatable).
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only notices with this key (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Wait up to this duration for matching notices to arrive.
        #[arg(long, value_parser = parse_go_duration)]
        timeout: Option<std::time::Duration>,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Fetch a single notice, by ID or by type and key.
    Notice {
        /// Look up a notice of this user (admin only; with type and key).
        #[arg(long)]
        uid: Option<u32>,
        #[command(flatten)]
        format: FormatArgs,
        /// The notice ID, or its type when a key follows.
        id_or_type: String,
        /// The key (look up by type and key).
        key: Option<String>,
    },
    /// List warnings (those not yet acknowledged with `okay`, unless --all).
    Warnings {
        /// Show all warnings, acknowledged or not.
        #[arg(long)]
        all: bool,
        /// Show more information.
        #[arg(long)]
        verbose: bool,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Acknowledge the notices and warnings listed so far.
    Okay {
        /// Only acknowledge warnings, not other notices.
        #[arg(long)]
        warnings: bool,
    },
    /// Transfer a file to the remote system.
    Push {
        /// Create parent directories for the file.
        #[arg(short = 'p')]
        parents: bool,
        /// Override mode bits (3-digit octal).
        #[arg(short = 'm')]
        mode: Option<String>,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Local path.
        local_path: PathBuf,
        /// Remote path.
        remote_path: String,
    },
    /// Retrieve a file from the remote system.
    Pull {
        /// Remote path.
        remote_path: String,
        /// Local path.
        local_path: PathBuf,
    },
    /// List path contents.
    Ls {
        /// List matching entries themselves, not directory contents.
        #[arg(short = 'd')]
        directory: bool,
        /// Use a long listing format.
        #[arg(short = 'l')]
        long: bool,
        #[command(flatten)]
        time: TimeArgs,
        #[command(flatten)]
        format: FormatArgs,
        /// Path (a glob in its last element filters).
        path: String,
    },
    /// Create a directory.
    Mkdir {
        /// Create parent directories as needed, and don't fail if the path exists.
        #[arg(short = 'p')]
        parents: bool,
        /// Override mode bits (3-digit octal).
        #[arg(short = 'm')]
        mode: Option<String>,
        #[command(flatten)]
        owner: OwnerArgs,
        /// Directory path.
        path: String,
    },
    /// Remove a file or directory.
    Rm {
        /// Remove all files and directories recursively in the specified path.
        #[arg(short = 'r')]
        recursive: bool,
        /// Path.
        path: String,
    },
    /// Execute a remote command and wait for it to finish (exit code passed through).
    Exec {
        /// Working directory to run the command in.
        #[arg(short = 'w')]
        working_dir: Option<String>,
        /// Environment variable to set (repeatable), KEY=VALUE.
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Run as this user.
        #[arg(long)]
        user: Option<String>,
        /// Run as this group.
        #[arg(long)]
        group: Option<String>,
        /// Kill the command after this long.
        #[arg(long, value_parser = parse_go_duration)]
        timeout: Option<std::time::Duration>,
        /// Inherit the environment, user, group and working dir of this service.
        #[arg(long)]
        context: Option<String>,
        /// Allocate a pseudo-terminal.
        #[arg(short = 't')]
        terminal: bool,
        /// Forward stdin (read to its end) to the command.
        #[arg(short = 'i')]
        interactive: bool,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Show version details.
    Version {
        /// Only display the client version.
        #[arg(long)]
        client: bool,
        #[command(flatten)]
        format: FormatArgs,
    },
}

/// `--uid`, `--user`, `--gid`, `--group` of push and mkdir.
#[derive(Args)]
pub struct OwnerArgs {
    /// Use specified user ID.
    #[arg(long)]
    uid: Option<u32>,
    /// Use specified username.
    #[arg(long)]
    user: Option<String>,
    /// Use specified group ID.
    #[arg(long)]
    gid: Option<u32>,
    /// Use specified group name.
    #[arg(long)]
    group: Option<String>,
}

impl OwnerArgs {
    fn ownership(&self, mode: Option<String>) -> cairn_supervisor::files::Ownership {
        cairn_supervisor::files::Ownership {
            permissions: mode.unwrap_or_default(),
            user_id: self.uid,
            user: self.user.clone().unwrap_or_default(),
            group_id: self.gid,
            group: self.group.clone().unwrap_or_default(),
        }
    }
}

/// `--abs-time`, as Pebble's time mixin.
#[derive(Args)]
pub struct TimeArgs {
    /// Display absolute times (in RFC 3339 format). Otherwise, display relative times up to
    /// 60 days, then YYYY-MM-DD.
    #[arg(long)]
    abs_time: bool,
}

/// `--format`, as Pebble's format mixin.
#[derive(Args)]
pub struct FormatArgs {
    /// Output format.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

impl FormatArgs {
    fn text(&self) -> bool {
        self.format == "text"
    }
}

/// `--no-wait`, as Pebble's wait mixin.
#[derive(Args)]
pub struct WaitArgs {
    /// Do not wait for the operation to finish but just print the change id.
    #[arg(long)]
    no_wait: bool,
}

fn parse_go_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    cairn_plan::parse_duration(s).map_err(|e| e.to_string())
}

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local UTC offset; call while the process is still single-threaded (the only
/// time the offset can be read soundly), before the async runtime starts.
pub fn init_local_offset() {
    let off = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(off);
}

fn local_offset() -> UtcOffset {
    *LOCAL_OFFSET.get().unwrap_or(&UtcOffset::UTC)
}

/// Resolves the API socket of the selected container: `--container app/N[/name]` under the
/// state directory, else `$PEBBLE_SOCKET` or `$PEBBLE/.pebble.socket`.
pub fn resolve_socket(state_dir: &Path, container: Option<&str>) -> Result<PathBuf> {
    let Some(sel) = container else {
        let env_set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if env_set("PEBBLE_SOCKET") || env_set("PEBBLE") {
            return Ok(crate::standalone::pebble_socket());
        }
        bail!(
            "no container selected: use --container <unit>/<name>, or set PEBBLE or PEBBLE_SOCKET"
        );
    };
    let mut parts = sel.splitn(3, '/');
    let (app, num, name) = (parts.next(), parts.next(), parts.next());
    let (Some(app), Some(num)) = (app, num) else {
        bail!("invalid container {sel:?}: expected <app>/<unit-number>[/<container>]");
    };
    if app.is_empty() || num.parse::<u32>().is_err() {
        bail!("invalid container {sel:?}: expected <app>/<unit-number>[/<container>]");
    }
    let unit_dir = state_dir.join("units").join(format!("{app}-{num}"));
    let containers = unit_dir.join("containers");
    if !unit_dir.is_dir() {
        bail!(
            "cannot find unit \"{app}/{num}\" in {}",
            state_dir.display()
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&containers)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let name = match name {
        Some(n) => {
            if !names.iter().any(|x| x == n) {
                bail!(
                    "unit \"{app}/{num}\" has no container {n:?} (it has: {})",
                    list_or_none(&names)
                );
            }
            n.to_string()
        }
        None => match names.as_slice() {
            [one] => one.clone(),
            [] => bail!("unit \"{app}/{num}\" has no containers"),
            _ => bail!(
                "unit \"{app}/{num}\" has several containers, choose one of: {}",
                names
                    .iter()
                    .map(|n| format!("{app}/{num}/{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    Ok(containers.join(name).join(".pebble.socket"))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Runs one command against the container's API; returns the process exit code.
pub async fn run(socket: &Path, cmd: ClientCommand) -> Result<i32> {
    let client = Client::unix(socket);
    let mut out = String::new();
    let code = execute(&client, cmd, &mut out).await;
    print!("{out}");
    code
}

async fn execute(client: &Client, cmd: ClientCommand, out: &mut String) -> Result<i32> {
    use std::fmt::Write;
    match cmd {
        ClientCommand::Plan => {
            out.push_str(&client.plan().await?);
        }
        ClientCommand::Add {
            combine,
            inner,
            label,
            layer_path,
        } => {
            let data = std::fs::read_to_string(&layer_path)
                .with_context(|| format!("cannot read {}", layer_path.display()))?;
            client.add_layer(&label, &data, combine, inner).await?;
            writeln!(
                out,
                "Layer {label:?} added successfully from {:?}",
                layer_path.display().to_string()
            )?;
        }
        ClientCommand::Services {
            time,
            format,
            services,
        } => {
            let list = client.services(&services).await?;
            if !format.text() {
                let map: serde_json::Map<String, serde_json::Value> = list
                    .iter()
                    .map(|s| Ok((s.name.clone(), serde_json::to_value(s)?)))
                    .collect::<Result<_>>()?;
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&serde_json::json!({ "services": map }))?
                )?;
            } else if list.is_empty() {
                eprintln!(
                    "{}",
                    if services.is_empty() {
                        "Plan has no services."
                    } else {
                        "No matching services."
                    }
                );
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
                out.push_str(&tabwriter(&rows));
            }
        }
        ClientCommand::Start { wait, services } => {
            return action(client, "start", &services, wait, out).await;
        }
        ClientCommand::Stop { wait, services } => {
            return action(client, "stop", &services, wait, out).await;
        }
        ClientCommand::Restart { wait, services } => {
            return action(client, "restart", &services, wait, out).await;
        }
        ClientCommand::Replan { wait } => return action(client, "replan", &[], wait, out).await,
        ClientCommand::Autostart { wait } => {
            return action(client, "autostart", &[], wait, out).await;
        }
        ClientCommand::Changes {
            time,
            format,
            service,
        } => {
            if let Some(s) = service.as_deref()
                && !s.is_empty()
                && s.bytes().all(|b| b.is_ascii_digit())
            {
                bail!(
                    "'{p} changes' command expects a service name, try '{p} tasks {s}'",
                    p = program()
                );
            }
            if service.as_deref() == Some("everything") {
                writeln!(out, "Yes, yes it does.")?;
                return Ok(0);
            }
            let mut changes = client.changes("all", service.as_deref()).await?;
            changes.sort_by_key(|c| parse_time(&c.spawn_time));
            if !format.text() {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(&serde_json::json!({ "changes": changes }))?
                )?;
            } else if changes.is_empty() {
                eprintln!("no changes found");
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
                out.push_str(&tabwriter(&rows));
                out.push('\n');
            }
        }
        ClientCommand::Tasks {
            last,
            time,
            format,
            change_id,
        } => {
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
                writeln!(out, "{}", serde_json::to_string(&chg)?)?;
            } else {
                out.push_str(&tasks_text(&chg, time.abs_time));
            }
        }
        ClientCommand::Logs {
            follow,
            n,
            format,
            services,
        } => {
            let n: i64 = match n.as_deref() {
                None => 30,
                Some("all") => -1,
                Some(s) => match s.parse::<i64>() {
                    Ok(v) if v >= 0 => v,
                    _ => bail!("expected n to be a non-negative integer or \"all\", not {s:?}"),
                },
            };
            let json = format == "json";
            if follow {
                let mut rx = client.follow_logs(&services, Some(n)).await?;
                loop {
                    tokio::select! {
                        line = rx.recv() => match line {
                            Some(l) => println!("{}", log_line(&l, json)?),
                            None => break,
                        },
                        _ = tokio::signal::ctrl_c() => break,
                    }
                }
            } else {
                for l in client.logs(&services, Some(n)).await? {
                    writeln!(out, "{}", log_line(&l, json)?)?;
                }
            }
        }
        ClientCommand::Signal { signal, services } => {
            if signal.to_uppercase() != signal {
                bail!("signal name must be uppercase, for example HUP");
            }
            let signal = if signal.starts_with("SIG") {
                signal
            } else {
                format!("SIG{signal}")
            };
            client.send_signal(&signal, &services).await?;
        }
        ClientCommand::Health {
            level,
            format,
            checks,
        } => {
            let healthy = client.health(level.as_deref(), &checks).await?;
            if !format.text() {
                writeln!(out, "{}", serde_json::json!({ "healthy": healthy }))?;
            } else {
                writeln!(out, "{}", if healthy { "healthy" } else { "unhealthy" })?;
                if !healthy {
                    return Ok(1);
                }
            }
        }
        ClientCommand::Checks {
            level,
            format,
            checks,
        } => {
            let list = client
                .checks(level.as_deref().unwrap_or(""), &checks)
                .await?;
            if !format.text() {
                let map: serde_json::Map<String, serde_json::Value> = list
                    .iter()
                    .map(|c| Ok((c.name.clone(), serde_json::to_value(c)?)))
                    .collect::<Result<_>>()?;
                writeln!(out, "{}", serde_json::json!({ "checks": map }))?;
            } else if list.is_empty() {
                eprintln!(
                    "{}",
                    if checks.is_empty() && level.is_none() {
                        "Plan has no health checks."
                    } else {
                        "No matching health checks."
                    }
                );
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
                    let inactive = c.status == "inactive";
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
                        change_info(client, c).await,
                    ]);
                }
                out.push_str(&tabwriter(&rows));
            }
        }
        ClientCommand::Check {
            refresh,
            format,
            check,
        } => {
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
            let mut v = serde_json::to_value(&info)?;
            if let Some(e) = error {
                v["error"] = e.into();
            }
            if !logs.is_empty() {
                v["logs"] = logs.into();
            }
            if format.text() {
                out.push_str(&serde_yaml::to_string(&v)?);
            } else {
                writeln!(out, "{v}")?;
            }
        }
        ClientCommand::StartChecks { checks } => {
            let changed = client.checks_action("start", &checks).await?;
            if changed.is_empty() {
                writeln!(out, "Checks already started.")?;
            } else {
                writeln!(out, "Checks started: {}", changed.join(", "))?;
            }
        }
        ClientCommand::StopChecks { checks } => {
            let changed = client.checks_action("stop", &checks).await?;
            if changed.is_empty() {
                writeln!(out, "Checks already stopped.")?;
            } else {
                writeln!(out, "Checks stopped: {}", changed.join(", "))?;
            }
        }
        ClientCommand::Notify {
            repeat_after,
            key,
            data,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for kv in &data {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("data args must be in \"name=value\" format, not {kv:?}");
                };
                map.insert(k.to_string(), v.to_string());
            }
            let id = client.notify(&key, &map, repeat_after).await?;
            writeln!(out, "Recorded notice {id}")?;
        }
        ClientCommand::Notices {
            users,
            uid,
            types,
            keys,
            timeout,
            time,
            format,
        } => {
            let mut q: Vec<(&str, String)> = Vec::new();
            if let Some(u) = users {
                q.push(("users", u));
            }
            if let Some(u) = uid {
                q.push(("user-id", u.to_string()));
            }
            for t in types {
                q.push(("types", t));
            }
            for k in keys {
                q.push(("keys", k));
            }
            let mut state = CliState::load(client.socket())?;
            if let Some(after) = state.notices_last_okayed {
                q.push(("after", rfc3339(after)));
            }
            let list = client.notices(&q, timeout).await?;
            if let Some(last) = list.last() {
                state.notices_last_listed = Some(last.last_repeated);
                state.save(client.socket())?;
            }
            if !format.text() {
                writeln!(out, "{}", serde_json::json!({ "notices": list }))?;
            } else if list.is_empty() {
                match timeout {
                    Some(t) => eprintln!(
                        "No matching notices after waiting {}.",
                        cairn_plan::format_duration(t)
                    ),
                    None => eprintln!("No matching notices."),
                }
            } else {
                let mut rows = vec![row([
                    "ID",
                    "User",
                    "Type",
                    "Key",
                    "First",
                    "Repeated",
                    "Occurrences",
                ])];
                for n in &list {
                    let key = if n.key.len() > 32 && n.key.is_ascii() {
                        format!("{}...{}", &n.key[..14], &n.key[n.key.len() - 15..])
                    } else {
                        n.key.clone()
                    };
                    let rfc = |t: time::OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
                    rows.push(vec![
                        n.id.clone(),
                        n.user_id.map_or("public".into(), |u| u.to_string()),
                        n.type_.clone(),
                        key,
                        fmt_time(&rfc(n.first_occurred), time.abs_time),
                        fmt_time(&rfc(n.last_repeated), time.abs_time),
                        n.occurrences.to_string(),
                    ]);
                }
                out.push_str(&tabwriter(&rows));
            }
        }
        ClientCommand::Notice {
            uid,
            format,
            id_or_type,
            key,
        } => {
            let notice = match key {
                Some(key) => {
                    let mut q: Vec<(&str, String)> =
                        vec![("types", id_or_type.clone()), ("keys", key.clone())];
                    if let Some(u) = uid {
                        q.push(("user-id", u.to_string()));
                    }
                    let found = client.notices(&q, None).await?;
                    let Some(first) = found.first().cloned() else {
                        bail!("cannot find {id_or_type} notice with key {key:?}");
                    };
                    found
                        .iter()
                        .skip(1)
                        .find(|n| n.user_id.is_some())
                        .cloned()
                        .unwrap_or(first)
                }
                None => {
                    if uid.is_some() {
                        bail!("cannot use --uid option when looking up notice by key");
                    }
                    client.notice(&id_or_type).await?
                }
            };
            if format.text() {
                out.push_str(&serde_yaml::to_string(&notice)?);
            } else {
                writeln!(out, "{}", serde_json::to_string(&notice)?)?;
            }
        }
        ClientCommand::Warnings {
            all,
            verbose,
            time,
            format,
        } => {
            let mut q: Vec<(&str, String)> = vec![("types", "warning".into())];
            let mut state = CliState::load(client.socket())?;
            if !all && let Some(after) = state.warnings_last_okayed {
                q.push(("after", rfc3339(after)));
            }
            let list = client.notices(&q, None).await?;
            if !all && let Some(last) = list.last() {
                state.warnings_last_listed = Some(last.last_repeated);
                state.save(client.socket())?;
            }
            if !format.text() {
                writeln!(out, "{}", serde_json::json!({ "warnings": list }))?;
            } else if list.is_empty() {
                if all || state.warnings_last_okayed.is_none() {
                    eprintln!("No warnings.");
                } else {
                    eprintln!("No further warnings.");
                }
            } else {
                let t = |x: time::OffsetDateTime| fmt_time(&rfc3339(x), time.abs_time);
                for (i, w) in list.iter().enumerate() {
                    let mut rows = Vec::new();
                    if verbose {
                        rows.push(vec!["first-occurrence:".to_string(), t(w.first_occurred)]);
                    }
                    rows.push(vec!["last-occurrence:".to_string(), t(w.last_occurred)]);
                    if verbose {
                        rows.push(vec!["last-repeated:".to_string(), t(w.last_repeated)]);
                        rows.push(vec!["repeats-after:".to_string(), w.repeat_after.clone()]);
                        rows.push(vec!["expires-after:".to_string(), w.expire_after.clone()]);
                    }
                    if i > 0 {
                        out.push_str("---\n");
                    }
                    out.push_str(&tabwriter(&rows));
                    out.push_str("warning: |\n");
                    for line in w.key.trim_end().split('\n') {
                        writeln!(out, "  {line}")?;
                    }
                }
            }
        }
        ClientCommand::Okay { warnings } => {
            let mut state = CliState::load(client.socket())?;
            let okayed_warnings = state.warnings_last_listed.is_some();
            if okayed_warnings {
                state.warnings_last_okayed = state.warnings_last_listed;
            }
            let mut okayed_notices = false;
            if !warnings && state.notices_last_listed.is_some() {
                okayed_notices = true;
                state.notices_last_okayed = state.notices_last_listed;
            }
            state.save(client.socket())?;
            let p = program();
            if warnings && !okayed_warnings {
                bail!("no warnings have been listed; try '{p} warnings'");
            }
            if !warnings && !okayed_notices && !okayed_warnings {
                bail!(
                    "no notices or warnings have been listed; try '{p} notices' or '{p} warnings'"
                );
            }
        }
        ClientCommand::Push {
            parents,
            mode,
            owner,
            local_path,
            remote_path,
        } => {
            let item = cairn_supervisor::files::WriteItem {
                path: remote_path,
                make_dirs: parents,
                ownership: owner.ownership(mode),
            };
            client.push_file(&local_path, &item).await?;
        }
        ClientCommand::Pull {
            remote_path,
            local_path,
        } => {
            let tmp = local_path.with_extension(format!("{}.part", std::process::id()));
            let mut f = tokio::fs::File::create(&tmp)
                .await
                .with_context(|| format!("cannot create {}", tmp.display()))?;
            let pulled = client.pull(&remote_path, &mut f).await;
            drop(f);
            match pulled {
                Ok(_) => std::fs::rename(&tmp, &local_path)
                    .with_context(|| format!("cannot write {}", local_path.display()))?,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e.into());
                }
            }
        }
        ClientCommand::Ls {
            directory,
            long,
            time,
            format,
            path,
        } => {
            let trimmed = path.trim_end_matches('/');
            let (dir, file) = match trimmed.rfind('/') {
                Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
                None => ("", trimmed),
            };
            let glob = |s: &str| s.contains(['*', '?', '[']);
            if glob(dir) {
                bail!("can only use globs on the last path element");
            }
            let (path, pattern) = if glob(file) {
                (dir.to_string(), Some(file))
            } else {
                (path.clone(), None)
            };
            let list = client.list_files(&path, pattern, directory).await?;
            if !format.text() {
                writeln!(out, "{}", serde_json::json!({ "files": list }))?;
            } else if long {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|f| {
                        vec![
                            mode_string(&f.type_, &f.permissions),
                            f.user.clone(),
                            f.group.clone(),
                            f.size.map_or("-".into(), |s| {
                                format!("{:>6}", format!("{}B", amount(s)))
                            }),
                            fmt_time(&f.last_modified, time.abs_time),
                            f.name.clone(),
                        ]
                    })
                    .collect();
                out.push_str(&tabwriter(&rows));
            } else {
                for f in &list {
                    writeln!(out, "{}", f.name)?;
                }
            }
        }
        ClientCommand::Mkdir {
            parents,
            mode,
            owner,
            path,
        } => {
            client
                .make_dir(&path, parents, &owner.ownership(mode))
                .await?;
        }
        ClientCommand::Rm { recursive, path } => {
            client.remove_path(&path, recursive).await?;
        }
        ClientCommand::Exec {
            working_dir,
            env,
            user,
            group,
            timeout,
            context,
            terminal,
            interactive,
            command,
        } => {
            let mut environment = std::collections::BTreeMap::new();
            for kv in &env {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("invalid environment variable {kv:?}: expected KEY=VALUE");
                };
                environment.insert(k.to_string(), v.to_string());
            }
            let opts = cairn_api::ExecOptions {
                command,
                environment,
                working_dir,
                timeout,
                user,
                group,
                service_context: context,
                terminal,
                interactive: interactive && terminal,
                split_stderr: !terminal,
            };
            let mut input = Vec::new();
            if interactive || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut input)
                    .context("cannot read stdin")?;
            }
            let done = client.exec(&opts, &input).await?;
            use std::io::Write as _;
            std::io::stdout().write_all(&done.stdout)?;
            std::io::stderr().write_all(&done.stderr)?;
            if let Some(e) = done.error {
                bail!("{e}");
            }
            return Ok(i32::try_from(done.exit_code).unwrap_or(1));
        }
        ClientCommand::Version {
            client: only,
            format,
        } => {
            let mine = format!("v{}", env!("CARGO_PKG_VERSION"));
            if only {
                if format.text() {
                    writeln!(out, "{mine}")?;
                } else {
                    writeln!(out, "{}", serde_json::json!({ "client": mine }))?;
                }
                return Ok(0);
            }
            let server = client.system_info().await;
            if format.text() {
                let sv = server
                    .as_ref()
                    .map(|s| s.version.clone())
                    .unwrap_or_else(|_| "-".into());
                out.push_str(&tabwriter(&[row(["client", &mine]), row(["server", &sv])]));
            } else {
                let sv = server?.version;
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({ "client": mine, "server": sv })
                )?;
            }
        }
    }
    Ok(0)
}

/// Pebble's `checks` Change column: the change ID, with the last task log line when the
/// check is failing (cut to 70 characters).
async fn change_info(client: &Client, c: &cairn_api::types::CheckInfo) -> String {
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
                let more = format!("... run \"{} tasks {id}\" for more", program());
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

/// Every log line of a change's first task, one per line.
async fn task_logs(client: &Client, id: &str) -> Result<String> {
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

/// Go's `FileMode.String()` for a listing entry: `-rw-r--r--`, `drwxr-xr-x`.
fn mode_string(type_: &str, permissions: &str) -> String {
    let t = match type_ {
        "directory" => 'd',
        "symlink" => 'L',
        "socket" => 'S',
        "named-pipe" => 'p',
        "device" => 'D',
        _ => '-',
    };
    let bits = u32::from_str_radix(permissions, 8).unwrap_or(0);
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if bits & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// snapd's `quantity.FormatAmount(n, -1)`: up to 3 significant digits with k/M/G/T/P/E.
fn amount(n: u64) -> String {
    if n < 1000 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = 0;
    let units = ["", "k", "M", "G", "T", "P", "E"];
    while v >= 999.5 && unit < units.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if v < 9.995 {
        format!("{v:.2}{}", units[unit])
    } else if v < 99.95 {
        format!("{v:.1}{}", units[unit])
    } else {
        format!("{v:.0}{}", units[unit])
    }
}

use cairn_supervisor::timefmt::rfc3339;

/// Pebble's client-side state (`$XDG_CONFIG_HOME/pebble/cli.json`, shared with Pebble's own
/// CLI): per socket, what `notices`/`warnings` listed last and what `okay` acknowledged.
#[derive(Default)]
struct CliState {
    notices_last_listed: Option<time::OffsetDateTime>,
    notices_last_okayed: Option<time::OffsetDateTime>,
    warnings_last_listed: Option<time::OffsetDateTime>,
    warnings_last_okayed: Option<time::OffsetDateTime>,
}

/// Go's zero time, which Pebble writes for "never".
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

impl CliState {
    fn path() -> PathBuf {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
            });
        config.join("pebble").join("cli.json")
    }

    fn load_full() -> Result<serde_json::Value> {
        match std::fs::read(Self::path()) {
            Ok(data) => serde_json::from_slice(&data).context("cannot load CLI state"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(serde_json::json!({ "pebble": {} }))
            }
            Err(e) => Err(anyhow!(e).context("cannot load CLI state")),
        }
    }

    fn load(socket: &Path) -> Result<CliState> {
        let full = Self::load_full()?;
        let entry = &full["pebble"][socket.display().to_string()];
        let t = |k: &str| {
            entry[k]
                .as_str()
                .filter(|v| *v != GO_ZERO_TIME)
                .and_then(parse_time)
        };
        Ok(CliState {
            notices_last_listed: t("notices-last-listed"),
            notices_last_okayed: t("notices-last-okayed"),
            warnings_last_listed: t("warnings-last-listed"),
            warnings_last_okayed: t("warnings-last-okayed"),
        })
    }

    fn save(&self, socket: &Path) -> Result<()> {
        let mut full = Self::load_full()?;
        let t = |v: Option<time::OffsetDateTime>| {
            v.map(rfc3339).unwrap_or_else(|| GO_ZERO_TIME.to_string())
        };
        if !full["pebble"].is_object() {
            full["pebble"] = serde_json::json!({});
        }
        full["pebble"][socket.display().to_string()] = serde_json::json!({
            "notices-last-listed": t(self.notices_last_listed),
            "notices-last-okayed": t(self.notices_last_okayed),
            "warnings-last-listed": t(self.warnings_last_listed),
            "warnings-last-okayed": t(self.warnings_last_okayed),
        });
        let path = Self::path();
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).context("cannot save CLI state")?;
        std::fs::write(&path, serde_json::to_vec(&full)?).context("cannot save CLI state")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(())
    }
}

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

/// Posts a services action and, unless `--no-wait`, waits for its change.
async fn action(
    client: &Client,
    action: &str,
    services: &[String],
    wait: WaitArgs,
    out: &mut String,
) -> Result<i32> {
    use std::fmt::Write;
    let id = client.services_action(action, services).await?;
    if wait.no_wait {
        writeln!(out, "{id}")?;
        return Ok(0);
    }
    let chg = tokio::select! {
        r = client.wait_change(&id, None) => r?,
        _ = tokio::signal::ctrl_c() => {
            // As Pebble: Ctrl-C aborts the change, then waits for it to finish.
            let aborter = Client::unix(client.socket());
            if let Err(e) = aborter.abort_change(&id).await {
                eprintln!("{e}");
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
    if chg.status == "Done" {
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

fn tasks_text(chg: &ChangeInfo, abs: bool) -> String {
    const LINE: &str = "......................................................................";
    let mut rows = vec![row(["Status", "Spawn", "Ready", "Summary"])];
    for t in &chg.tasks {
        let mut summary = t.summary.clone();
        if t.status == "Doing" && t.progress.total > 1 {
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
    let mut s = tabwriter(&rows);
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

fn log_line(l: &cairn_api::LogLine, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string(l)?);
    }
    let time = parse_time(&l.time)
        .map(|t| {
            let millis = time::format_description::parse_borrowed::<2>(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]",
            )
            .ok()
            .and_then(|f| t.format(&f).ok())
            .unwrap_or_default();
            format!("{millis}{}", zone_suffix(t.offset(), true))
        })
        .unwrap_or_else(|| l.time.clone());
    Ok(format!("{time} [{}] {}", l.service, l.message))
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Go's `Z07:00` (`iso`) or a `MST`-like zone name (`UTC`, else the numeric offset).
fn zone_suffix(off: UtcOffset, iso: bool) -> String {
    if off.is_utc() {
        return if iso { "Z".into() } else { "UTC".into() };
    }
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    if iso {
        format!("{sign}{:02}:{:02}", h.abs(), m.abs())
    } else {
        format!("{sign}{:02}{:02}", h.abs(), m.abs())
    }
}

/// Pebble's `fmtTime`: RFC 3339 with `--abs-time`, else `timeutil.Human` in local time.
fn fmt_time(s: &str, abs: bool) -> String {
    let Some(t) = parse_time(s) else {
        return s.to_string();
    };
    let t = t.to_offset(local_offset());
    if abs {
        return t
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| s.to_string());
    }
    human(t, OffsetDateTime::now_utc().to_offset(local_offset()))
}

/// `timeutil.Human`: relative days up to 60, then the date.
fn human(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = (then.date() - now.date()).whole_days();
    let hm = format!(
        "{:02}:{:02} {}",
        then.hour(),
        then.minute(),
        zone_suffix(then.offset(), false)
    );
    match d {
        -60..=-2 => format!("{} days ago, at {hm}", -d),
        -1 => format!("yesterday at {hm}"),
        0 => format!("today at {hm}"),
        1 => format!("tomorrow at {hm}"),
        2..=60 => format!("in {d} days, at {hm}"),
        _ => format!(
            "{:04}-{:02}-{:02}",
            then.year(),
            u8::from(then.month()),
            then.day()
        ),
    }
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// Go's `tabwriter.NewWriter(w, 5, 3, 2, ' ', 0)` for rows of equal length: every column
/// but the last is padded to max(5, widest cell + 2).
fn tabwriter(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols.saturating_sub(1))
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count() + 2)
                .max()
                .unwrap_or(0)
                .max(5)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < r.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn tabwriter_pads_like_go() {
        let t = tabwriter(&[
            row(["Service", "Startup", "Current", "Since"]),
            row(["srv1", "enabled", "active", "today at 10:00 UTC"]),
            row(["x", "disabled", "inactive", "-"]),
        ]);
        assert_eq!(
            t,
            "Service  Startup   Current   Since\n\
             srv1     enabled   active    today at 10:00 UTC\n\
             x        disabled  inactive  -\n"
        );
        // Narrow columns still get the minimum width of 5.
        assert_eq!(tabwriter(&[row(["a", "b"])]), "a    b\n");
    }

    #[test]
    fn human_times_like_timeutil() {
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(
            human(datetime!(2026-11-22 07:47 UTC), now),
            "today at 07:47 UTC"
        );
        assert_eq!(
            human(datetime!(2026-11-21 23:59 UTC), now),
            "yesterday at 23:59 UTC"
        );
        assert_eq!(
            human(datetime!(2026-11-19 08:00 UTC), now),
            "3 days ago, at 08:00 UTC"
        );
        assert_eq!(
            human(
                datetime!(2026-11-25 08:00 +01:00),
                now.to_offset(time::macros::offset!(+1))
            ),
            "in 3 days, at 08:00 +0100"
        );
        assert_eq!(human(datetime!(2026-01-02 08:00 UTC), now), "2026-01-02");
    }

    #[test]
    fn log_lines_like_pebble() {
        let l = cairn_api::LogLine {
            time: "2026-11-22T10:11:12.345678901Z".into(),
            service: "srv1".into(),
            message: "hello".into(),
        };
        assert_eq!(
            log_line(&l, false).unwrap(),
            "2026-11-22T10:11:12.345Z [srv1] hello"
        );
    }

    #[test]
    fn container_selection() {
        let d = std::env::temp_dir().join(format!("cairn-select-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = d.join("units/web-0/containers");
        std::fs::create_dir_all(c.join("web")).unwrap();
        let s = resolve_socket(&d, Some("web/0")).unwrap();
        assert_eq!(s, c.join("web/.pebble.socket"));
        assert_eq!(resolve_socket(&d, Some("web/0/web")).unwrap(), s);
        let e = resolve_socket(&d, Some("web/0/db")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit \"web/0\" has no container \"db\" (it has: web)"
        );
        std::fs::create_dir_all(c.join("aux")).unwrap();
        let e = resolve_socket(&d, Some("web/0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit \"web/0\" has several containers, choose one of: web/0/aux, web/0/web"
        );
        assert!(resolve_socket(&d, Some("web")).is_err());
        assert!(
            resolve_socket(&d, Some("db/1"))
                .unwrap_err()
                .to_string()
                .starts_with("cannot find unit \"db/1\"")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
