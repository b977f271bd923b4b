//! A tenant's budget against the real daemon: floods through the charm's host calls (log,
//! stored state, status, layers, execs, pull, deferred events, the queue) and text meant
//! for the operator's terminal are each contained with a clear error, counted, and the
//! daemon and a co-tenant stay healthy.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::common::*;

/// The daemon's resident memory now and at its peak, in MiB.
fn daemon_rss_mib(d: &Daemon) -> Result<(u64, u64)> {
    let pid = d.pid().context("daemon pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .with_context(|| format!("no {name}"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// `cairn limits <app> --format json`.
fn limits(d: &Daemon, app: &str) -> Result<Value> {
    Ok(serde_json::from_str(
        &d.ok(&["limits", app, "--format", "json"])?,
    )?)
}

/// How often `limit` of `app` was hit.
fn hits(d: &Daemon, app: &str, limit: &str) -> Result<u64> {
    Ok(limits(d, app)?["hits"][limit].as_u64().unwrap_or(0))
}

/// Sets the misbehave app's `mode` and waits for `active` with `msg` in the message;
/// returns the message.
fn run_mode(d: &Daemon, app: &str, mode: &str, msg: &str, timeout: Duration) -> Result<String> {
    d.ok(&["config", app, &format!("mode={mode}")])?;
    let unit = format!("{app}/0");
    d.wait_status(&unit, "active", msg, timeout)?;
    Ok(d.unit(&unit)?["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// The co-tenant still answers: a config change is handled within `within`.
fn co_tenant_is_healthy(d: &Daemon, n: &str, within: Duration) -> Result<()> {
    d.ok(&["config", "good", &format!("label={n}")])?;
    let took = d.wait_status("good/0", "active", "handled", within)?;
    assert!(took < within, "co-tenant took {took:?}");
    Ok(())
}

/// Deploys the misbehave charm as `app` (with budget `limits`) and waits for it.
fn deploy(d: &Daemon, app: &str, limits: &[&str]) -> Result<()> {
    let prog = program("misbehave");
    let mut args = vec!["deploy", prog.as_str(), "--name", app];
    for l in limits {
        args.extend(["--limit", l]);
    }
    d.ok(&args)?;
    d.wait_status(
        &format!("{app}/0"),
        "active",
        "handled 1",
        Duration::from_secs(20),
    )?;
    Ok(())
}

#[test]
fn host_call_floods_are_cut_to_the_budget_and_the_daemon_stays_small() -> Result<()> {
    let d = Daemon::start("budget-floods", &[])?;
    deploy(&d, "good", &[])?;
    deploy(&d, "mis", &[])?;
    let (rss_before, _) = daemon_rss_mib(&d)?;

    // 1 GiB of log in one event: 1 MiB kept, then one line saying how much was dropped.
    run_mode(
        &d,
        "mis",
        "log-flood",
        "log-flood done",
        Duration::from_secs(60),
    )?;
    let log = std::fs::read(d.dir.join("units/mis-0/unit.log"))?;
    assert!(log.len() < 3 << 20, "unit.log is {} bytes", log.len());
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains(
            "mis/0: 1023.2 MiB of log dropped: over the budget of 1 MiB per event (log-bytes)"
        ),
        "{}",
        &text[text.len().saturating_sub(500)..]
    );
    assert!(!log.contains(&0x1b), "an escape byte reached unit.log");
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with("20")),
        "a log call made more than one line"
    );
    assert_eq!(hits(&d, "mis", "log-bytes")?, 1);

    // A 20 MiB status message: cut to 1 KiB, so every `cairn status` stays small.
    run_mode(&d, "mis", "status-flood", "sss", Duration::from_secs(30))?;
    let msg = d.unit("mis/0")?["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.len() <= 1024 && msg.ends_with('…'),
        "{} bytes",
        msg.len()
    );
    let status = d.ok(&["status"])?;
    assert!(
        status.len() < 8 << 10,
        "cairn status is {} bytes",
        status.len()
    );
    assert!(hits(&d, "mis", "status-bytes")? >= 1);

    // A 1 GiB sparse file: refused before it is read.
    let msg = run_mode(
        &d,
        "mis",
        "pull-flood",
        "pull-flood",
        Duration::from_secs(30),
    )?;
    assert!(
        msg.contains("file is 1 GiB, over the charm's memory budget of 64 MiB"),
        "{msg}"
    );
    assert_eq!(hits(&d, "mis", "memory")?, 1);

    let (rss_after, peak) = daemon_rss_mib(&d)?;
    eprintln!("daemon RSS: {rss_before} MiB before, {rss_after} MiB after, peak {peak} MiB");
    assert!(peak < rss_before + 300, "daemon peak {peak} MiB");
    co_tenant_is_healthy(&d, "after-floods", Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn stored_state_over_budget_fails_the_event_and_keeps_nothing() -> Result<()> {
    let d = Daemon::start("budget-state", &[])?;
    deploy(&d, "mis", &[])?;
    d.ok(&["config", "mis", "mode=state-flood"])?;
    let failed = eventually(Duration::from_secs(30), || {
        let u = d.unit("mis/0").ok()?;
        let m = u["status"]["message"].as_str()?.to_string();
        (u["status"]["status"] == "error" && m.contains("state-bytes")).then_some(m)
    })
    .context("no state-bytes failure")?;
    assert!(
        failed.contains("cannot set stored state \"flood-0\": it would take 1.0 MiB"),
        "{failed}"
    );
    assert!(
        failed.contains("over the budget of 1 MiB (state-bytes)"),
        "{failed}"
    );
    let record = std::fs::metadata(d.dir.join("units/mis-0/unit.json"))?.len();
    assert!(record < 1 << 20, "unit record is {record} bytes");
    // The failed event's state was discarded: only the counter is stored.
    d.ok(&["config", "mis", "mode=ok"])?;
    d.wait_status("mis/0", "active", "handled", Duration::from_secs(30))?;
    let record: Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("units/mis-0/unit.json"))?)?;
    let keys: Vec<&String> = record["stored"]
        .as_object()
        .context("stored")?
        .keys()
        .collect();
    assert_eq!(keys, ["handled"]);
    assert!(hits(&d, "mis", "state-bytes")? >= 1);
    Ok(())
}

#[test]
fn escape_sequences_and_newlines_are_shown_escaped_on_one_line() -> Result<()> {
    let d = Daemon::start("budget-escape", &[])?;
    deploy(&d, "mis", &[])?;
    run_mode(&d, "mis", "escape", "forged", Duration::from_secs(30))?;
    let status = d.ok(&["status"])?;
    assert!(
        !status.contains('\x1b') && !status.contains('\x07'),
        "{status:?}"
    );
    let row = status
        .lines()
        .find(|l| l.starts_with("mis/0"))
        .context("no unit row")?;
    assert!(
        row.contains("ok\\nother/0") && row.contains("\\u{1b}]0;pwned\\u{7}\\r"),
        "{row}"
    );
    assert!(
        !status.lines().any(|l| l.starts_with("other/0")),
        "a row was forged: {status}"
    );
    let log = std::fs::read_to_string(d.dir.join("units/mis-0/unit.log"))?;
    assert!(!log.contains('\x1b') && !log.contains('\r'), "{log:?}");
    assert!(
        !log.lines().any(|l| l.starts_with("other/0")),
        "a log line was forged: {log}"
    );
    let events = d.ok(&["events", "mis/0"])?;
    assert!(!events.contains('\x1b'), "{events:?}");
    Ok(())
}

/// Sends a raw HTTP request on a unit's Pebble socket; returns the status line and body.
fn pebble_post(socket: &std::path::Path, path: &str, body: &str) -> Result<(String, String)> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out.lines().next().unwrap_or_default().to_string();
    let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
    Ok((status, body.to_string()))
}

#[test]
fn layer_plan_and_exec_floods_are_refused_by_the_container_budget() -> Result<()> {
    let d = Daemon::start("budget-layers", &[])?;
    deploy(&d, "mis", &["execs=4"])?;
    let msg = run_mode(
        &d,
        "mis",
        "layer-flood",
        "layers added",
        Duration::from_secs(60),
    )?;
    for want in [
        "400 cannot add layer: layer is 2.0 MiB, over the container's budget of 1 MiB of layers",
        "400 cannot add layer: the plan would have 400 services, over the container's budget of 100",
        "400 cannot add layer: check \"fast\" has period 1ms, shorter than the container's minimum of 100ms",
        "100 layers added then 400 cannot add layer: the container would have 101 layers, over its budget of 100",
    ] {
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
    }

    let msg = run_mode(
        &d,
        "mis",
        "exec-flood",
        "exec-flood",
        Duration::from_secs(60),
    )?;
    assert!(
        msg.contains("started 4; 429 cannot call exec: 4 commands are running"),
        "{msg}"
    );
    assert_eq!(hits(&d, "mis", "execs")?, 1);

    // The same budget holds for a workload posting to its own socket.
    let socket = d.dir.join("units/mis-0/containers/work/.pebble.socket");
    let layer = format!(
        "{{\"action\":\"add\",\"combine\":false,\"label\":\"api\",\"format\":\"yaml\",\"layer\":\"summary: {}\\n\"}}",
        "z".repeat(2 << 20)
    );
    let (status, body) = pebble_post(&socket, "/v1/layers", &layer)?;
    assert!(status.starts_with("HTTP/1.1 400"), "{status} {body}");
    assert!(
        body.contains("over the container's budget of 1 MiB of layers"),
        "{body}"
    );
    let l = limits(&d, "mis")?;
    assert_eq!(l["hits"]["layers"], 1, "{l}");
    assert_eq!(l["hits"]["layer-bytes"], 2, "{l}");
    assert_eq!(l["hits"]["services"], 1, "{l}");
    assert_eq!(l["hits"]["check-period"], 1, "{l}");
    d.ok(&["status"])?;
    Ok(())
}

#[test]
fn deferred_events_and_the_queue_are_bounded() -> Result<()> {
    let d = Daemon::start("budget-queue", &["--limit", "deferred=3"])?;
    deploy(&d, "mis", &["queue=3"])?;
    // A charm deferring every event keeps one of each, not one per delivery.
    d.ok(&["config", "mis", "mode=defer-all"])?;
    for i in 0..8 {
        d.ok(&["config", "mis", &format!("label={i}")])?;
        std::thread::sleep(Duration::from_millis(50));
    }
    eventually(Duration::from_secs(30), || {
        (d.unit("mis/0").ok()?["queued"] == 0).then_some(())
    })
    .context("queue never drained")?;
    let record: Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("units/mis-0/unit.json"))?)?;
    assert_eq!(
        record["deferred"],
        serde_json::json!([{"kind": "config-changed"}]),
        "{record}"
    );

    // A unit holding its queue (an event failing): actions past `queue` are refused.
    d.ok(&["config", "mis", "mode=error"])?;
    eventually(Duration::from_secs(20), || {
        (d.unit("mis/0").ok()?["status"]["status"] == "error").then_some(())
    })
    .context("not in error")?;
    let mut refused = None;
    for _ in 0..5 {
        let out = d.cli(&["run-action", "mis/0", "echo", "message=hi"])?;
        if !out.status.success() {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.context("every action was queued")?;
    assert!(
        refused.contains(
            "cannot queue echo-action on mis/0: 3 events are waiting, the app's budget (queue=3)"
        ),
        "{refused}"
    );
    assert_eq!(hits(&d, "mis", "queue")?, 1);
    d.ok(&["status"])?;
    Ok(())
}

#[test]
fn limits_are_set_per_app_checked_against_the_host_and_survive_a_restart() -> Result<()> {
    let mut d = Daemon::start("budget-config", &["--limit", "log-bytes=2MiB"])?;
    deploy(&d, "mis", &["execs=3"])?;
    let l = limits(&d, "mis")?;
    assert_eq!(l["limits"]["log-bytes"], "2MiB", "{l}");
    assert_eq!(l["limits"]["execs"], "3", "{l}");
    assert_eq!(l["overridden"], serde_json::json!(["execs"]), "{l}");

    let out = d.cli(&["config", "mis", "--limits", "memory=1GiB"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("limit memory=1GiB is over the host's maximum of 64MiB"),
        "{err}"
    );
    let out = d.cli(&[
        "deploy",
        &program("misbehave"),
        "--name",
        "x",
        "--limit",
        "nope=1",
    ])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown limit \"nope\""));

    d.ok(&[
        "config",
        "mis",
        "--limits",
        "execs=default",
        "--limits",
        "services=7",
    ])?;
    d.stop_with(nix::sys::signal::Signal::SIGTERM);
    d.spawn()?;
    let l = limits(&d, "mis")?;
    assert_eq!(l["limits"]["execs"], "16", "{l}");
    assert_eq!(l["limits"]["services"], "7", "{l}");
    let table = d.ok(&["limits", "mis"])?;
    assert!(
        table
            .lines()
            .any(|r| r.split_whitespace().collect::<Vec<_>>() == ["services", "7", "app", "0"]),
        "{table}"
    );
    if d.cli(&["status"])?.status.success() {
        Ok(())
    } else {
        bail!("daemon unhealthy")
    }
}
