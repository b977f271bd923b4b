//! `logs`: the services' buffered output, and with `-f` what follows until Ctrl-C.

use anyhow::{Result, bail};
use cairn_api::{Client, LogLine};
use clap::Args;
use tokio::signal::unix::{SignalKind, signal};

use super::Io;
use super::times::log_time;
use crate::args::FormatArgs;

/// Arguments of `logs`.
#[derive(Args)]
pub struct LogsArgs {
    /// Follow (tail) logs for given services until Ctrl-C is pressed. If no services are
    /// specified, show logs from all services running when the command starts.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of logs to show (before following); defaults to 30. If 'all', show all
    /// buffered logs.
    #[arg(short = 'n')]
    n: Option<String>,
    #[command(flatten)]
    format: FormatArgs,
    /// Services (default: all).
    services: Vec<String>,
}

/// `logs`: one line per log entry, `<time> [<service>] <message>` or JSON.
pub async fn logs(client: &Client, args: LogsArgs, io: &mut Io<'_>) -> Result<i32> {
    let LogsArgs {
        follow,
        n,
        format,
        services,
    } = args;
    let n: i64 = match n.as_deref() {
        None => 30,
        Some("all") => -1,
        Some(s) => match s.parse::<i64>() {
            Ok(v) if v >= 0 => v,
            _ => bail!("expected n to be a non-negative integer or \"all\", not {s:?}"),
        },
    };
    // As Pebble's client: 0 is not sent, and the server's default (30) applies.
    let n = (n != 0).then_some(n);
    let json = format.json();
    if follow {
        // One listener for the whole loop: a Ctrl-C that arrives while a line is being
        // written is kept for the next turn (a fresh `ctrl_c()` per turn would miss it).
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut rx = client.follow_logs(&services, n).await?;
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(l) => {
                        writeln!(io.out, "{}", log_line(&l, json)?)?;
                        io.out.flush()?;
                    }
                    None => break,
                },
                _ = interrupt.recv() => break,
            }
        }
    } else {
        for l in client.logs(&services, n).await? {
            writeln!(io.out, "{}", log_line(&l, json)?)?;
        }
    }
    Ok(0)
}

/// One entry as Pebble prints it: `2026-11-22T10:11:12.345Z [srv] message`, or its JSON.
fn log_line(l: &LogLine, json: bool) -> Result<String> {
    if json {
        return Ok(serde_json::to_string(l)?);
    }
    Ok(format!(
        "{} [{}] {}",
        log_time(&l.time),
        l.service,
        l.message
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_lines_like_pebble() {
        let l = cairn_api::LogLine {
            time: "2026-11-22T10:11:12.345678901Z".into(),
            service: "srv1".into(),
            message: "hello".into(),
        };
        assert_eq!(
            super::log_line(&l, false).unwrap(),
            "2026-11-22T10:11:12.345Z [srv1] hello"
        );
    }
}
