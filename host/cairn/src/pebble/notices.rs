//! `notify`, `notices`, `notice`, `warnings` and `okay`.

use std::time::Duration;

use anyhow::{Result, bail};
use cairn_api::Client;
use cairn_supervisor::timefmt::rfc3339;
use clap::Args;
use time::OffsetDateTime;

use super::Io;
use super::cli_state::CliState;
use super::times::fmt_time;
use crate::args::{ListFormatArgs, TimeArgs, parse_duration};
use crate::table::{render, row};

/// Arguments of `notify`.
#[derive(Args)]
pub struct NotifyArgs {
    /// Prevent a notice with the same type and key from reoccurring within this duration.
    #[arg(long, value_parser = parse_duration)]
    repeat_after: Option<Duration>,
    /// The notice key, such as example.com/backup/done.
    key: String,
    /// Data as name=value.
    data: Vec<String>,
}

/// Arguments of `notices`.
#[derive(Args)]
pub struct NoticesArgs {
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
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
}

/// Arguments of `notice`.
#[derive(Args)]
pub struct NoticeArgs {
    /// Look up a notice of this user (admin only; with type and key).
    #[arg(long)]
    uid: Option<u32>,
    #[command(flatten)]
    format: ListFormatArgs,
    /// The notice ID, or its type when a key follows.
    id_or_type: String,
    /// The key (look up by type and key).
    key: Option<String>,
}

/// Arguments of `warnings`.
#[derive(Args)]
pub struct WarningsArgs {
    /// Show all warnings, acknowledged or not.
    #[arg(long)]
    all: bool,
    /// Show more information.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
}

/// Arguments of `okay`.
#[derive(Args)]
pub struct OkayArgs {
    /// Only acknowledge warnings, not other notices.
    #[arg(long)]
    warnings: bool,
}

/// `notify`: records a custom notice with optional data.
pub async fn notify(client: &Client, args: NotifyArgs, io: &mut Io<'_>) -> Result<i32> {
    let mut map = std::collections::BTreeMap::new();
    for kv in &args.data {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("data args must be in \"name=value\" format, not {kv:?}");
        };
        map.insert(k.to_string(), v.to_string());
    }
    let id = client.notify(&args.key, &map, args.repeat_after).await?;
    writeln!(io.out, "Recorded notice {id}")?;
    Ok(0)
}

/// `notices`: the notices after the last `okay`, remembering the last one listed.
pub async fn notices(client: &Client, args: NoticesArgs, io: &mut Io<'_>) -> Result<i32> {
    let NoticesArgs {
        users,
        uid,
        types,
        keys,
        timeout,
        time,
        format,
    } = args;
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
    let mut state = CliState::load(&io.cli_state, client.socket())?;
    if let Some(after) = state.notices_last_okayed {
        q.push(("after", rfc3339(after)));
    }
    let list = client.notices(&q, timeout).await?;
    if let Some(last) = list.last() {
        state.notices_last_listed = Some(last.last_repeated);
        state.save(&io.cli_state, client.socket())?;
    }
    if !format.text() {
        format.write(io.out, &super::json_under("notices", &list)?)?;
    } else if list.is_empty() {
        match timeout {
            Some(t) => writeln!(
                io.err,
                "No matching notices after waiting {}.",
                cairn_plan::format_duration(t)
            )?,
            None => writeln!(io.err, "No matching notices.")?,
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
            rows.push(vec![
                n.id.clone(),
                n.user_id.map_or("public".into(), |u| u.to_string()),
                n.type_.clone(),
                key,
                fmt_time(&rfc3339(n.first_occurred), time.abs_time),
                fmt_time(&rfc3339(n.last_repeated), time.abs_time),
                n.occurrences.to_string(),
            ]);
        }
        io.out.write_all(render(&rows).as_bytes())?;
    }
    Ok(0)
}

/// `notice`: one notice as YAML (or JSON), by ID or by type and key.
pub async fn notice(client: &Client, args: NoticeArgs, io: &mut Io<'_>) -> Result<i32> {
    let NoticeArgs {
        uid,
        format,
        id_or_type,
        key,
    } = args;
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
    // The text is the notice as YAML.
    let json = serde_json::to_string(&notice)?;
    if format.text() {
        crate::args::write_yaml(io.out, &json)?;
    } else {
        format.write(io.out, &json)?;
    }
    Ok(0)
}

/// `warnings`: the warnings after the last `okay` (all with `--all`).
pub async fn warnings(client: &Client, args: WarningsArgs, io: &mut Io<'_>) -> Result<i32> {
    let WarningsArgs {
        all,
        verbose,
        time,
        format,
    } = args;
    let mut q: Vec<(&str, String)> = vec![("types", "warning".into())];
    let mut state = CliState::load(&io.cli_state, client.socket())?;
    if !all && let Some(after) = state.warnings_last_okayed {
        q.push(("after", rfc3339(after)));
    }
    let list = client.notices(&q, None).await?;
    if !all && let Some(last) = list.last() {
        state.warnings_last_listed = Some(last.last_repeated);
        state.save(&io.cli_state, client.socket())?;
    }
    if !format.text() {
        format.write(io.out, &super::json_under("warnings", &list)?)?;
    } else if list.is_empty() {
        if all || state.warnings_last_okayed.is_none() {
            writeln!(io.err, "No warnings.")?;
        } else {
            writeln!(io.err, "No further warnings.")?;
        }
    } else {
        let t = |x: OffsetDateTime| fmt_time(&rfc3339(x), time.abs_time);
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
                writeln!(io.out, "---")?;
            }
            io.out.write_all(render(&rows).as_bytes())?;
            writeln!(io.out, "warning: |")?;
            for line in w.key.trim_end().split('\n') {
                writeln!(io.out, "  {line}")?;
            }
        }
    }
    Ok(0)
}

/// `okay`: acknowledges what `notices` and `warnings` listed last.
pub async fn okay(client: &Client, args: OkayArgs, io: &mut Io<'_>) -> Result<i32> {
    let mut state = CliState::load(&io.cli_state, client.socket())?;
    let okayed_warnings = state.warnings_last_listed.is_some();
    if okayed_warnings {
        state.warnings_last_okayed = state.warnings_last_listed;
    }
    let mut okayed_notices = false;
    if !args.warnings && state.notices_last_listed.is_some() {
        okayed_notices = true;
        state.notices_last_okayed = state.notices_last_listed;
    }
    state.save(&io.cli_state, client.socket())?;
    let p = &io.program;
    if args.warnings && !okayed_warnings {
        bail!("no warnings have been listed; try '{p} warnings'");
    }
    if !args.warnings && !okayed_notices && !okayed_warnings {
        bail!("no notices or warnings have been listed; try '{p} notices' or '{p} warnings'");
    }
    Ok(0)
}
