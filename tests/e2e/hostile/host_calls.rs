//! Attacks through the charm's host calls and WASI, each beside the calm co-tenant: calls
//! that block (a clock sleep, a stdin read, a wait on a command) and a guest that spins,
//! each ended at its deadline and interrupted by removal; floods of what a guest hands the
//! host (log, status, stored state, pulled files, layers, execs, deferred events, notices
//! queued as events) cut to the tenant's budget; text meant to hijack the operator's
//! terminal. The budget's own rules (per app, across a restart) are `budgets.rs`'s.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::*;

/// The most `cairn remove` may take for a unit stuck in its event.
const REMOVAL_BOUND: Duration = Duration::from_secs(2);

/// Deploys misbehave as `app` with two services running in its container (added through
/// the container's Pebble); returns the needle that finds the unit's processes (their
/// `PEBBLE` names the container directory).
fn deploy_with_services(d: &Daemon, app: &str) -> Result<String> {
    d.deploy_misbehave(app, &[])?;
    let layer = d.dir.join("services.yaml");
    std::fs::write(
        &layer,
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n  \
         b:\n    override: replace\n    command: sh -c 'while true; do sleep 0.1; done'\n    \
         startup: enabled\n",
    )?;
    let container = format!("{app}/0/work");
    d.ok(&[
        "--container",
        &container,
        "add",
        "svc",
        &layer.display().to_string(),
    ])?;
    d.ok(&["--container", &container, "replan"])?;
    let needle = d
        .dir
        .join("units")
        .join(format!("{app}-0"))
        .display()
        .to_string();
    if processes_with(&needle).len() < 2 {
        bail!(
            "{app}'s services are not running: {:?}",
            processes_with(&needle)
        );
    }
    Ok(needle)
}

/// Queues `n` more events behind `app`'s running one (a config change, then actions:
/// equal config-changed events waiting together are coalesced) and checks they wait.
fn queue_more(d: &Daemon, app: &str, n: usize) -> Result<()> {
    d.ok(&["config", app, "label=queued"])?;
    let unit = format!("{app}/0");
    for i in 1..n {
        d.ok(&["run-action", &unit, "echo", &format!("message=queued-{i}")])?;
    }
    let queued = d.unit(&unit)?["queued"].as_u64().unwrap_or(0);
    if queued < n as u64 {
        bail!("only {queued} events queued on {unit}");
    }
    Ok(())
}

/// Removes `app`, requiring it to end within [`REMOVAL_BOUND`] and to leave no process
/// found by `needle` and no unit in the status.
fn remove_promptly(d: &Daemon, app: &str, needle: &str) -> Result<()> {
    let start = Instant::now();
    d.ok(&["remove", app])?;
    let took = start.elapsed();
    eprintln!("hostile: removing {app} took {took:?}");
    assert!(
        took < REMOVAL_BOUND,
        "remove {app} took {took:?}\n{}",
        d.log()
    );
    let left = processes_with(needle);
    assert!(left.is_empty(), "{app} left processes: {left:?}");
    let status = d.status()?;
    assert!(
        status["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["name"] != app),
        "{status}"
    );
    Ok(())
}

/// Requires `unit`'s last deadline failure to say `deadline` and to have ended at it (not
/// when the guest's call would have returned): between `deadline` and 1.5 s past it.
fn ended_at_deadline(d: &Daemon, unit: &str, deadline: Duration) -> Result<()> {
    let want = format!("event deadline of {}s exceeded", deadline.as_secs());
    let failure = wait_failure(d, unit, &want, deadline * 5)?;
    let events = d.events(unit)?;
    let took = events
        .iter()
        .rev()
        .find(|e| e["outcome"] == failure.as_str())
        .and_then(|e| e["duration_us"].as_u64())
        .map(Duration::from_micros)
        .with_context(|| format!("no duration in {events:?}"))?;
    eprintln!("hostile: {unit} {failure:?} after {took:?}");
    assert!(
        took >= deadline && took < deadline + Duration::from_millis(1500),
        "{unit}'s event took {took:?} under a deadline of {deadline:?}"
    );
    Ok(())
}

#[test]
fn guests_blocked_in_host_calls_end_at_their_deadline_and_removal_interrupts_them() -> Result<()> {
    let d = Daemon::start(
        "hostile-blocking",
        &["--event-deadline", "30s", "--retry-delay", "100ms"],
    )?;
    let mut calm = Calm::deploy(&d)?;
    // Under a short deadline: a 60 s WASI clock sleep and a stdin read that never returns.
    d.deploy_misbehave("nap", &["deadline=2s"])?;
    d.deploy_misbehave("reader", &["deadline=2s"])?;
    // Under the host's 30 s: the same sleep, and an action waiting on `sleep 600` in its
    // container; both are removed while they wait, with events queued behind them.
    let sleeper = deploy_with_services(&d, "sleeper")?;
    let waiter = deploy_with_services(&d, "waiter")?;
    calm.beside("blocking host calls", || {
        d.ok(&["config", "nap", "mode=sleep"])?;
        d.ok(&["config", "reader", "mode=stdin"])?;
        d.ok(&["config", "sleeper", "mode=sleep"])?;
        d.ok(&["run-action", "waiter/0", "hang"])?;
        eventually(Duration::from_secs(10), || {
            processes_with(&waiter).into_iter().find(|(pid, _)| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.ends_with(b"sleep\x00600\x00"))
            })
        })
        .must("the action's `sleep 600`")?;
        Ok(())
    })?;
    ended_at_deadline(&d, "nap/0", Duration::from_secs(2))?;
    ended_at_deadline(&d, "reader/0", Duration::from_secs(2))?;
    // Nothing ends these events but their 30 s deadline, or removal.
    queue_more(&d, "sleeper", 3)?;
    remove_promptly(&d, "sleeper", &sleeper)?;
    queue_more(&d, "waiter", 3)?;
    remove_promptly(&d, "waiter", &waiter)?;
    calm.one()?;
    Ok(())
}

#[test]
fn a_spinning_guest_is_cut_at_its_deadline_removed_at_once_and_does_not_slow_its_neighbour()
-> Result<()> {
    let d = Daemon::start(
        "hostile-spin",
        &["--event-deadline", "30s", "--retry-delay", "100ms"],
    )?;
    let mut calm = Calm::deploy(&d)?;
    d.deploy_misbehave("spin", &["deadline=2s"])?;
    let whirl = deploy_with_services(&d, "whirl")?;
    calm.beside("spin", || {
        d.ok(&["config", "spin", "mode=loop"])?;
        // Under way: the first spin has begun (it fails at its deadline and is retried,
        // spinning again, for as long as the test runs).
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    })?;
    ended_at_deadline(&d, "spin/0", Duration::from_secs(2))?;
    d.ok(&["remove", "spin"])?;
    // One spinning under the host's 30 s deadline, events queued behind it.
    d.ok(&["config", "whirl", "mode=loop"])?;
    std::thread::sleep(Duration::from_millis(700));
    queue_more(&d, "whirl", 3)?;
    remove_promptly(&d, "whirl", &whirl)?;
    calm.one()?;
    Ok(())
}

#[test]
fn floods_of_log_status_state_pulls_and_results_are_cut_to_the_budget_and_the_daemon_stays_small()
-> Result<()> {
    let d = Daemon::start("hostile-floods", &["--retry-delay", "100ms"])?;
    let mut calm = Calm::deploy(&d)?;
    d.deploy_misbehave("mis", &[])?;
    let (rss_before, _) = d.rss_mib()?;
    let unit_log = d.dir.join("units/mis-0/unit.log");

    // 1 GiB of log in one event: 1 MiB kept, then one line saying how much was dropped.
    calm.beside_repeated("log flood", "mis", || {
        run_mode(
            &d,
            "mis",
            "log-flood",
            "log-flood done",
            Duration::from_secs(60),
        )?;
        let log = std::fs::read(&unit_log)?;
        assert!(log.len() < 3 << 20, "unit.log is {} bytes", log.len());
        let text = String::from_utf8_lossy(&log);
        assert!(
            text.contains(
                "mis/0: 1023.9 MiB of log dropped: over the budget of 1 MiB per event (log-bytes)"
            ),
            "{}",
            &text[text.len().saturating_sub(500)..]
        );
        assert!(!log.contains(&0x1b), "an escape byte reached unit.log");
        assert!(
            text.lines().all(|l| l.is_empty() || l.starts_with("20")),
            "a log call made more than one line"
        );
        assert_eq!(d.hits("mis", "log-bytes")?, 1);
        Ok(())
    })?;
    // A million empty log calls, half a million empty lines of output and a line of
    // control characters (each five bytes escaped): every line counts as written.
    calm.beside_repeated("log lines", "mis", || {
        let before = std::fs::metadata(&unit_log)?.len();
        let hits_before = d.hits("mis", "log-bytes")?;
        run_mode(
            &d,
            "mis",
            "log-lines",
            "log-lines done",
            Duration::from_secs(60),
        )?;
        let grew = std::fs::metadata(&unit_log)?.len().saturating_sub(before);
        eprintln!("hostile log lines: unit.log grew {grew} bytes");
        // The budget, and the marker line.
        assert!(
            grew <= (1 << 20) + 256,
            "unit.log grew {grew} bytes in one event"
        );
        assert_eq!(d.hits("mis", "log-bytes")?, hits_before + 1);
        Ok(())
    })?;
    let log_len = std::fs::metadata(&unit_log)?.len();
    eprintln!("hostile log floods: unit.log is {log_len} bytes after the repeats");

    // A 20 MiB status message: cut to 1 KiB, so every `cairn status` stays small.
    calm.beside_repeated("status flood", "mis", || {
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
        let start = Instant::now();
        let status = d.ok(&["status"])?;
        eprintln!(
            "hostile status flood: cairn status is {} bytes, took {:?}",
            status.len(),
            start.elapsed()
        );
        assert!(
            status.len() < 8 << 10,
            "cairn status is {} bytes",
            status.len()
        );
        assert!(d.hits("mis", "status-bytes")? >= 1);
        Ok(())
    })?;

    // A 1 GiB sparse file: refused before it is read.
    calm.beside_repeated("pull flood", "mis", || {
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
        assert_eq!(d.hits("mis", "memory")?, 1);
        Ok(())
    })?;

    // 104 MiB of stored state: the event fails at the first value over the budget, and
    // nothing of it is kept.
    calm.beside_repeated("state flood", "mis", || {
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
        assert!(d.hits("mis", "state-bytes")? >= 1);
        Ok(())
    })?;
    // The failed events' state was discarded: only the counter is stored.
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

    // 512 MiB of action results in one run: refused at the budget, nothing of it kept.
    calm.beside("action results flood", || {
        let out = d.cli(&["run-action", "mis/0", "results-flood", "--wait", "60"])?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.len() < 4 << 10, "run-action printed {} bytes", stdout.len());
        assert!(
            stdout.contains(
                "results-flood: cannot set action results: they would take 8.0 MiB, over the budget of 1 MiB per event (log-bytes) after 0"
            ),
            "{stdout}"
        );
        Ok(())
    })?;
    let records = std::fs::read_dir(d.dir.join("actions"))?
        .map(|e| Ok(e?.metadata()?.len()))
        .collect::<Result<Vec<u64>>>()?;
    assert!(
        records.iter().all(|&n| n < 64 << 10),
        "action records of {records:?} bytes"
    );

    let (rss_after, peak) = d.rss_mib()?;
    eprintln!(
        "hostile floods: daemon RSS {rss_before} MiB before, {rss_after} MiB after, peak {peak} MiB"
    );
    assert!(peak < rss_before + 300, "daemon peak {peak} MiB");
    Ok(())
}

#[test]
fn escape_sequences_and_newlines_are_shown_escaped_on_one_line() -> Result<()> {
    let d = Daemon::start("hostile-escape", &[])?;
    let mut calm = Calm::deploy(&d)?;
    d.deploy_misbehave("mis", &[])?;
    calm.beside_repeated("terminal escapes", "mis", || {
        run_mode(&d, "mis", "escape", "forged", Duration::from_secs(30))?;
        Ok(())
    })?;
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
fn pebble_post(socket: &Path, path: &str, body: &str) -> Result<(String, String)> {
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
    let d = Daemon::start("hostile-layer-calls", &[])?;
    let mut calm = Calm::deploy(&d)?;
    d.deploy_misbehave("mis", &["execs=4"])?;
    calm.beside_repeated("layer flood", "mis", || {
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
        // The same budget holds for the tenant's workload posting to its own socket.
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
        let l = d.limits("mis")?;
        assert_eq!(l["hits"]["layers"], 1, "{l}");
        assert_eq!(l["hits"]["layer-bytes"], 2, "{l}");
        assert_eq!(l["hits"]["services"], 1, "{l}");
        assert_eq!(l["hits"]["check-period"], 1, "{l}");
        Ok(())
    })?;

    calm.beside_repeated("exec flood", "mis", || {
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
        assert_eq!(d.hits("mis", "execs")?, 1);
        Ok(())
    })?;
    d.ok(&["status"])?;
    Ok(())
}

/// Posts distinct custom notices to `socket` (as the tenant's workload can) until `stop`,
/// a few hundred a second; how many were accepted.
fn post_notices(socket: &Path, stop: &AtomicBool) -> Result<u64> {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let body =
            format!("{{\"action\":\"add\",\"type\":\"custom\",\"key\":\"example.com/flood-{n}\"}}");
        let (status, reply) = pebble_post(socket, "/v1/notices", &body)?;
        if !status.starts_with("HTTP/1.1 200") {
            bail!("notice refused: {status} {reply}");
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(n)
}

#[test]
fn a_charm_deferring_every_event_and_a_flood_of_notices_stay_within_the_queue_budgets() -> Result<()>
{
    let d = Daemon::start("hostile-queue", &["--limit", "deferred=3"])?;
    let mut calm = Calm::deploy(&d)?;
    d.deploy_misbehave("mis", &["queue=3"])?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = None;
    calm.beside("deferring charm and notice flood", || {
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
        // Its workload posts notices as fast as it likes: each a distinct event, deferred.
        let socket = d.dir.join("units/mis-0/containers/work/.pebble.socket");
        let flag = stop.clone();
        flood = Some(std::thread::spawn(move || post_notices(&socket, &flag)));
        // Under way once both budgets have refused something.
        eventually(Duration::from_secs(30), || {
            (d.hits("mis", "queue").ok()? >= 1 && d.hits("mis", "deferred").ok()? >= 1)
                .then_some(())
        })
        .with_context(|| format!("no queue and deferred hits: {:?}", d.limits("mis").ok()))?;
        Ok(())
    })?;
    stop.store(true, Ordering::Relaxed);
    let posted = match flood.take().map(std::thread::JoinHandle::join) {
        Some(Ok(r)) => r?,
        _ => bail!("the notice flood did not run"),
    };
    let record: Value =
        serde_json::from_slice(&std::fs::read(d.dir.join("units/mis-0/unit.json"))?)?;
    let deferred = record["deferred"].as_array().context("deferred")?.len();
    let queued = record["queue"].as_array().context("queue")?.len();
    eprintln!(
        "hostile notice flood: {posted} notices posted; {deferred} deferred and {queued} queued kept; hits {}",
        d.limits("mis")?["hits"]
    );
    assert!(deferred <= 3, "{record}");
    // The queue budget (3), plus lifecycle and config events, which are never refused.
    assert!(queued <= 5, "{record}");
    let record_len = std::fs::metadata(d.dir.join("units/mis-0/unit.json"))?.len();
    assert!(record_len < 64 << 10, "unit record is {record_len} bytes");
    let history = d.ok(&["events", "mis/0"])?;
    assert!(
        history.contains("dropped: over the budget of 3 deferred events"),
        "{history}"
    );
    assert!(
        d.log().contains(
            "cannot queue work-pebble-custom-notice on mis/0: 3 events are waiting, the app's budget (queue=3)"
        ),
        "no refused notice in the daemon's log"
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
    d.ok(&["status"])?;
    Ok(())
}
