//! Removal interrupts: a unit whose event sleeps in a WASI call, spins in wasm or waits in
//! a host call on a command, with events queued behind it, is removed within 2 s (its
//! deadline is 30 s) and leaves no process: not its services, not the command.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::common::*;

/// The most `cairn remove` may take for a unit stuck in its event.
const REMOVAL_BOUND: Duration = Duration::from_secs(2);

/// Deploys misbehave as `mis` with two services running in its container (added through
/// the container's Pebble); returns the needle that finds the unit's processes (their
/// `PEBBLE` names the container directory).
fn deploy_with_services(d: &Daemon) -> Result<String> {
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(30))?;
    let layer = d.dir.join("services.yaml");
    std::fs::write(
        &layer,
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n  \
         b:\n    override: replace\n    command: sh -c 'while true; do sleep 0.1; done'\n    \
         startup: enabled\n",
    )?;
    d.ok(&[
        "--container",
        "mis/0/work",
        "add",
        "svc",
        &layer.display().to_string(),
    ])?;
    d.ok(&["--container", "mis/0/work", "replan"])?;
    let needle = d.dir.join("units").join("mis-0").display().to_string();
    if processes_with(&needle).len() < 2 {
        bail!(
            "the unit's services are not running: {:?}",
            processes_with(&needle)
        );
    }
    Ok(needle)
}

/// Queues `n` more events behind the running one (a config change, then actions: equal
/// config-changed events waiting together are coalesced) and checks they wait.
fn queue_more(d: &Daemon, n: usize) -> Result<()> {
    d.ok(&["config", "mis", "label=queued"])?;
    for i in 1..n {
        d.ok(&[
            "run-action",
            "mis/0",
            "echo",
            &format!("message=queued-{i}"),
        ])?;
    }
    let queued = d.unit("mis/0")?["queued"].as_u64().unwrap_or(0);
    if queued < n as u64 {
        bail!("only {queued} events queued");
    }
    Ok(())
}

/// Removes `mis`, requiring it to end within [`REMOVAL_BOUND`] and to leave no process
/// found by `needle` and no unit in the status.
fn remove_promptly(d: &Daemon, needle: &str) -> Result<()> {
    let start = Instant::now();
    d.ok(&["remove", "mis"])?;
    let took = start.elapsed();
    assert!(took < REMOVAL_BOUND, "remove took {took:?}\n{}", d.log());
    let left = processes_with(needle);
    assert!(left.is_empty(), "processes left: {left:?}");
    let status = d.status()?;
    assert!(
        status["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|a| a["name"] != "mis"),
        "{status}"
    );
    Ok(())
}

/// Sets `mode`, waits until its config-changed has been running a while, queues more
/// events, then removes the app.
fn removal_interrupts_mode(name: &str, mode: &str) -> Result<()> {
    let d = Daemon::start(name, &["--event-deadline", "30s"])?;
    let needle = deploy_with_services(&d)?;
    d.ok(&["config", "mis", &format!("mode={mode}")])?;
    // Well inside the event: nothing ends it but its 30 s deadline.
    std::thread::sleep(Duration::from_millis(700));
    queue_more(&d, 3)?;
    remove_promptly(&d, &needle)
}

#[test]
fn removing_a_unit_sleeping_in_a_wasi_call_returns_at_once_and_leaves_no_process() -> Result<()> {
    removal_interrupts_mode("interrupt-sleep", "sleep")
}

#[test]
fn removing_a_unit_spinning_in_wasm_returns_at_once_and_leaves_no_process() -> Result<()> {
    removal_interrupts_mode("interrupt-loop", "loop")
}

#[test]
fn removing_a_unit_waiting_on_a_command_kills_the_command() -> Result<()> {
    let d = Daemon::start("interrupt-exec", &["--event-deadline", "30s"])?;
    let needle = deploy_with_services(&d)?;
    // `hang` execs `sleep 600` in the container and waits for it.
    d.ok(&["run-action", "mis/0", "hang"])?;
    let running = eventually(Duration::from_secs(10), || {
        processes_with(&needle).into_iter().find(|(pid, _)| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.ends_with(b"sleep\x00600\x00"))
        })
    });
    running.must("the action's `sleep 600`")?;
    queue_more(&d, 3)?;
    remove_promptly(&d, &needle)
}
