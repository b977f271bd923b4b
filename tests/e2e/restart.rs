//! Host restart: unit state, layers and pending events come back (issue 2).

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;

use crate::common::*;

#[test]
fn issue2_restart_restores_units_layers_and_services() -> Result<()> {
    let mut d = Daemon::start("restart", &[])?;
    d.ok(&["deploy", &example("pause"), "--config", "message=kept"])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(10))?;
    let before = d.events("pause/0")?.len();
    let dir = d.dir.display().to_string();
    assert!(!processes_with(&dir).is_empty());

    d.stop_with(Signal::SIGTERM);
    assert_eq!(
        processes_with(&dir),
        vec![],
        "services survived a clean host stop"
    );
    d.spawn()?;
    // Layers are back before any event runs: the plan still has the service.
    let u = d.unit("pause/0")?;
    assert_eq!(u["containers"][0]["services"][0]["name"], "pause", "{u}");
    d.wait_status("pause/0", "active", "", Duration::from_secs(10))?;
    let found = wait_for(Duration::from_secs(5), || {
        processes_with(&dir)
            .into_iter()
            .find(|(_, env)| env_value(env, "PAUSE_MESSAGE").as_deref() == Some("kept"))
    });
    assert!(found.is_some(), "service not running again after restart");
    let events = d.events("pause/0")?;
    assert!(
        events.len() > before,
        "history lost or no new events: {events:?}"
    );
    assert_eq!(events.last().unwrap()["event"], "pause-pebble-ready");
    Ok(())
}

#[test]
fn issue2_pending_events_survive_kill_9() -> Result<()> {
    let mut d = Daemon::start("kill9", &["--event-deadline", "60s"])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(15))?;
    // The unit gets stuck in a looping event with another event queued behind it.
    d.ok(&["config", "mis", "mode=loop"])?;
    wait_for(Duration::from_secs(10), || {
        d.unit("mis/0").ok().filter(|u| u["queued"] == 1)
    })
    .must("loop event in progress")?;
    std::thread::sleep(Duration::from_millis(200));
    d.ok(&["config", "mis", "mode=ok"])?;
    let u = d.unit("mis/0")?;
    assert_eq!(u["queued"], 2, "{u}");
    d.stop_with(Signal::SIGKILL);

    d.spawn()?;
    // Both config-changed events are delivered again (mode is now ok), then pebble-ready.
    d.wait_status("mis/0", "active", "handled 3", Duration::from_secs(15))?;
    let events = d.events("mis/0")?;
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(3)
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        tail,
        ["work-pebble-ready", "config-changed", "config-changed"],
        "{events:?}"
    );
    Ok(())
}
