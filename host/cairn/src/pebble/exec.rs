//! `exec`: runs a command in the container and passes its output and exit code through.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_api::{Client, ExecOptions};
use clap::Args;

use super::Io;
use crate::args::parse_duration;

/// Arguments of `exec`.
#[derive(Args)]
pub struct ExecArgs {
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
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
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
}

/// `exec`: stdin (when `-i` or not a terminal) goes to the command; its stdout and stderr
/// come back on ours, and its exit code is ours.
pub async fn exec(client: &Client, args: ExecArgs, io: &mut Io<'_>) -> Result<i32> {
    let ExecArgs {
        working_dir,
        env,
        user,
        group,
        timeout,
        context,
        terminal,
        interactive,
        command,
    } = args;
    let mut environment = BTreeMap::new();
    for kv in &env {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("invalid environment variable {kv:?}: expected KEY=VALUE");
        };
        environment.insert(k.to_string(), v.to_string());
    }
    let opts = ExecOptions {
        command,
        environment,
        working_dir,
        timeout,
        user_id: None,
        user,
        group_id: None,
        group,
        service_context: context,
        terminal,
        interactive: interactive && terminal,
        split_stderr: !terminal,
    };
    let mut input = Vec::new();
    if interactive || !io.stdin_is_terminal {
        io.stdin
            .read_to_end(&mut input)
            .context("cannot read stdin")?;
    }
    let done = client.exec(&opts, &input).await?;
    io.out.write_all(&done.stdout)?;
    io.err.write_all(&done.stderr)?;
    if let Some(e) = done.error {
        bail!("{e}");
    }
    Ok(i32::try_from(done.exit_code).unwrap_or(1))
}
