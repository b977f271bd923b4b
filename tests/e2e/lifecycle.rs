//! Deploy, configure and remove real charms supervising real processes.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::common::*;

#[test]
fn web_deploys_active_serves_moves_and_leaves_nothing() -> Result<()> {
    let d = Daemon::start("web", &[])?;
    let port = free_port();
    let started = Instant::now();
    d.ok(&[
        "deploy",
        &example("web"),
        "--config",
        &format!("port={port}"),
    ])?;
    d.wait_status(
        "web/0",
        "active",
        &port.to_string(),
        Duration::from_secs(10),
    )?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "web/0 took {took:?} to become active"
    );
    let line =
        eventually(Duration::from_secs(5), || http_get(port).ok()).must("web workload answers")?;
    assert!(line.starts_with("HTTP/1.0 200"), "{line}");

    let port2 = free_port();
    d.ok(&["config", "web", &format!("port={port2}")])?;
    d.wait_status(
        "web/0",
        "active",
        &port2.to_string(),
        Duration::from_secs(10),
    )?;
    let line = eventually(Duration::from_secs(5), || http_get(port2).ok())
        .must("moved workload answers")?;
    assert!(line.starts_with("HTTP/1.0 200"), "{line}");
    assert!(http_get(port).is_err(), "old port still answers");

    let dir = d.dir.display().to_string();
    assert!(
        !processes_with(&dir).is_empty(),
        "no workload process found"
    );
    d.ok(&["remove", "web"])?;
    assert_eq!(processes_with(&dir), vec![], "processes left after remove");
    let st = d.status()?;
    assert_eq!(st["apps"], serde_json::json!([]));
    Ok(())
}

#[test]
fn invalid_port_blocks_with_reason_and_stops_service() -> Result<()> {
    let d = Daemon::start("webblock", &[])?;
    let port = d.deploy_web(&[])?;
    d.ok(&["config", "web", "port=70000"])?;
    d.wait_status("web/0", "blocked", "70000", Duration::from_secs(10))?;
    let u = d.unit("web/0")?;
    assert_eq!(
        u["containers"][0]["services"][0]["current"], "inactive",
        "{u}"
    );
    assert!(http_get(port).is_err());
    Ok(())
}

#[test]
fn config_change_restarts_service_with_new_environment() -> Result<()> {
    let d = Daemon::start("pause", &[])?;
    d.ok(&["deploy", &example("pause"), "--config", "message=first"])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(10))?;
    let dir = d.dir.display().to_string();
    let find = |msg: &str| {
        processes_with(&dir)
            .into_iter()
            .find(|(_, env)| env_value(env, "PAUSE_MESSAGE").as_deref() == Some(msg))
            .map(|(pid, _)| pid)
    };
    let old = eventually(Duration::from_secs(5), || find("first"))
        .must("service with PAUSE_MESSAGE=first")?;
    d.ok(&["config", "pause", "message=second"])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(10))?;
    let new = eventually(Duration::from_secs(5), || find("second"))
        .must("service with PAUSE_MESSAGE=second")?;
    assert_ne!(old, new, "service was not restarted");
    let environ = std::fs::read(format!("/proc/{new}/environ"))?;
    assert!(String::from_utf8_lossy(&environ).contains("PAUSE_MESSAGE=second"));
    assert!(find("first").is_none(), "old process {old} still runs");
    let events = event_lines(&d.events("pause/0")?);
    for want in [
        "install handled",
        "leader-elected handled",
        "config-changed handled",
        "start handled",
        "pause-pebble-ready handled",
    ] {
        assert!(
            events.iter().any(|e| e == want),
            "missing {want:?} in {events:?}"
        );
    }
    Ok(())
}

#[test]
fn cli_errors_are_one_clear_line() -> Result<()> {
    let d = Daemon::start("clierr", &[])?;
    for (args, want) in [
        (vec!["deploy", "/nonexistent/charm"], "cannot find charm"),
        (
            vec!["config", "nope", "a=b"],
            "application \"nope\" not found",
        ),
        (vec!["events", "nope/0"], "unit \"nope/0\" not found"),
        (vec!["remove", "nope"], "application \"nope\" not found"),
    ] {
        let out = d.cli(&args)?;
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{args:?}: {err}"
        );
    }
    d.ok(&["deploy", &example("pause")])?;
    let out = d.cli(&["config", "pause", "nope=1"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option \"nope\""));
    let out = d.cli(&["deploy", &example("pause")])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("application \"pause\" already exists"));
    Ok(())
}
