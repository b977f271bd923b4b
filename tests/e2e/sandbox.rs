//! A guest that traps, panics, errors, loops or eats memory fails only its own event; the
//! unit recovers on the next event and the host and other units carry on.

use std::time::Duration;

use anyhow::Result;

use crate::common::*;

fn misbehave(d: &Daemon, mode: &str, want_error: &str) -> Result<()> {
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.ok(&["deploy", &example("pause")])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(15))?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(15))?;

    d.ok(&["config", "mis", &format!("mode={mode}")])?;
    let u = eventually(Duration::from_secs(20), || {
        d.unit("mis/0")
            .ok()
            .filter(|u| u["status"]["status"] == "error")
    })
    .must("mis/0 in error")?;
    let msg = u["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.starts_with("hook failed: \"config-changed\": "),
        "{msg}"
    );
    assert!(msg.contains(want_error), "{msg:?} lacks {want_error:?}");

    // Another tenant is unaffected.
    d.ok(&["config", "pause", "message=still-here"])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(15))?;

    // The next event recovers: the failed config-changed is retried (it now sees mode=ok)
    // and the new one follows. The failed attempt's stored-state change was discarded,
    // so the counter reads 3 (1 from deploy + 2), not 4.
    d.ok(&["config", "mis", "mode=ok"])?;
    d.wait_status("mis/0", "active", "handled 3", Duration::from_secs(20))?;
    let events = d.events("mis/0")?;
    assert!(
        events
            .iter()
            .any(|e| e["outcome"].as_str().unwrap().starts_with("error: ")),
        "{events:?}"
    );
    Ok(())
}

#[test]
fn trapping_guest_fails_only_its_event() -> Result<()> {
    let d = Daemon::start("trap", &["--retry-delay", "200ms"])?;
    misbehave(
        &d,
        "trap",
        "guest trapped: wasm trap: wasm `unreachable` instruction executed",
    )
}

#[test]
fn panicking_guest_fails_only_its_event() -> Result<()> {
    let d = Daemon::start("panic", &["--retry-delay", "200ms"])?;
    misbehave(&d, "panic", "panicked: misbehave: panic requested")
}

#[test]
fn erroring_handler_fails_only_its_event() -> Result<()> {
    let d = Daemon::start("error", &["--retry-delay", "200ms"])?;
    misbehave(&d, "error", "misbehave: error requested")
}

#[test]
fn looping_guest_is_stopped_at_its_deadline() -> Result<()> {
    let d = Daemon::start(
        "loop",
        &["--retry-delay", "200ms", "--event-deadline", "1s"],
    )?;
    misbehave(&d, "loop", "event deadline of 1s exceeded")
}

#[test]
fn memory_hungry_guest_hits_its_limit() -> Result<()> {
    let d = Daemon::start(
        "alloc",
        &["--retry-delay", "200ms", "--memory-limit-mib", "16"],
    )?;
    misbehave(&d, "alloc", "memory limit of 16 MiB exceeded")
}

#[test]
fn deferred_event_is_redelivered_before_the_next_one() -> Result<()> {
    let d = Daemon::start("defer", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(15))?;
    d.ok(&["config", "mis", "mode=defer"])?;
    eventually(Duration::from_secs(10), || {
        d.events("mis/0")
            .ok()
            .filter(|e| e.last().is_some_and(|e| e["outcome"] == "deferred"))
    })
    .must("config-changed deferred")?;
    d.ok(&["config", "mis", "label=next"])?;
    let events = eventually(Duration::from_secs(10), || {
        d.events("mis/0").ok().filter(|e| {
            e.len() >= 2
                && e[e.len() - 2]["outcome"] == "handled"
                && e[e.len() - 1]["outcome"] == "handled"
        })
    })
    .must("deferred event re-delivered")?;
    let tail = event_lines(&events[events.len() - 3..]);
    assert_eq!(
        tail,
        [
            "config-changed deferred",
            "config-changed handled",
            "config-changed handled"
        ]
    );
    Ok(())
}

/// The daemon's resident memory, in KiB.
fn daemon_rss_kib(d: &Daemon) -> Result<u64> {
    let pid = d.pid().must("daemon pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .must("VmRSS")
}

#[test]
fn host_calls_of_an_exec_stop_at_the_deadline_and_never_buffer_past_the_limit() -> Result<()> {
    let d = Daemon::start("exec-limits", &["--event-deadline", "2s"])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(15))?;

    // 100 MB of output for a 64 MiB guest: refused, drained, not held by the host.
    let out = d.ok(&["run-action", "mis/0", "flood", "--wait"])?;
    assert!(out.contains("code: \"413\""), "{out}");
    assert!(
        out.contains("it exceeds 64 MiB, the unit's memory limit; read it with read-stdout"),
        "{out}"
    );
    let rss = daemon_rss_kib(&d)?;
    assert!(rss < 200 * 1024, "daemon RSS {rss} KiB after the flood");
    // Within the limit, the output arrives whole.
    let out = d.ok(&["run-action", "mis/0", "flood", "bytes=1000000", "--wait"])?;
    assert!(out.contains("bytes: \"1000000\""), "{out}");

    // A guest blocked on a command that outlives its deadline is released at the deadline.
    let start = std::time::Instant::now();
    let out = d.cli(&["run-action", "mis/0", "hang", "--wait"])?;
    let took = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status: failed\n"), "{stdout}");
    assert!(stdout.contains("deadline"), "{stdout}");
    assert!(took < Duration::from_secs(10), "hang took {took:?}");
    d.wait_status("mis/0", "active", "", Duration::from_secs(5))?;
    Ok(())
}
