//! Actions: `cairn run-action` through the daemon into the charm and back.

use std::time::Duration;

use anyhow::Result;

use crate::common::*;

#[test]
fn run_action_prints_results_failures_and_refuses_bad_params() -> Result<()> {
    let d = Daemon::start("actions", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;

    // Results and log come back from the charm; defaults are applied.
    let out = d.ok(&[
        "run-action",
        "mis/0",
        "echo",
        "message=hi",
        "times=3",
        "--wait",
    ])?;
    assert!(out.contains("status: completed\n"), "{out}");
    assert!(
        out.contains("results:\n  echo: \"hihihi\"\n  times: \"3\"\n"),
        "{out}"
    );
    assert!(out.contains(" echoing 3 time(s)\n"), "{out}");
    let out = d.ok(&[
        "run-action",
        "mis/0",
        "echo",
        "message=x",
        "--wait",
        "--format",
        "json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["params"], serde_json::json!({"message": "x", "times": 1}));
    assert_eq!(v["results"]["echo"], "x");

    // A failing action shows its message and exits 1; the unit is not in error.
    let out = d.cli(&["run-action", "mis/0", "fail", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("status: failed\nmessage: \"asked to fail\"\n"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("action ")
            && String::from_utf8_lossy(&out.stderr).contains(" failed: asked to fail"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["run-action", "mis/0", "crash", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status: failed\n"), "{stdout}");
    assert!(stdout.contains("misbehave: crash requested"), "{stdout}");
    d.wait_status("mis/0", "active", "", Duration::from_secs(5))?;

    // Bad parameters are refused before the charm runs: no new event.
    let before = d.events("mis/0")?.len();
    for (args, msg) in [
        (
            vec!["times=lots", "message=x"],
            "invalid parameters for action \"echo\": times: expected integer, got \"lots\"",
        ),
        (
            vec![],
            "invalid parameters for action \"echo\": missing required parameter \"message\"",
        ),
        (
            vec!["message=x", "colour=red"],
            "invalid parameters for action \"echo\": unknown parameter \"colour\"",
        ),
    ] {
        let mut all = vec!["run-action", "mis/0", "echo"];
        all.extend(args);
        let out = d.cli(&all)?;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("error: {msg}")
        );
    }
    let out = d.cli(&["run-action", "mis/0", "nope"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("action \"nope\" not defined"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.events("mis/0")?.len(), before);

    // Without --wait it is queued; show-action finds it finished later.
    let out = d.ok(&["run-action", "mis/0", "echo", "message=later"])?;
    let id = out.split_whitespace().nth(1).must("action id")?.to_string();
    let shown = eventually(Duration::from_secs(10), || {
        let s = d.ok(&["show-action", &id]).ok()?;
        s.contains("status: completed").then_some(s)
    })
    .must("action completed")?;
    assert!(shown.contains("echo: \"later\""), "{shown}");
    let out = d.cli(&["show-action", "999"])?;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: action \"999\" not found"
    );
    Ok(())
}

/// The value of `key: "value"` in `run-action`/`show-action` output.
fn result_value(out: &str, key: &str) -> Option<String> {
    out.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{key}: "))
            .map(|v| v.trim_matches('"').to_string())
    })
}

/// Turns on db/0's scheduled backups (every second) and waits until the charm shows one
/// (it hears of it by a custom notice); returns the status message.
fn scheduled_backup_shown(d: &Daemon) -> Result<String> {
    d.ok(&["config", "db", "backup-interval=1"])?;
    d.wait_status(
        "db/0",
        "active",
        "scheduled backup ",
        Duration::from_secs(15),
    )?;
    Ok(d.unit("db/0")?["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[test]
fn db_backup_action_dumps_with_exec_pulls_and_reports() -> Result<()> {
    let d = Daemon::start("db", &[])?;
    let data = d.dir.join("db-data");
    let port = free_port();
    let (ex, port_setting, data_setting) = (
        example("db"),
        format!("port={port}"),
        format!("data-dir={}", data.display()),
    );
    d.ok(&[
        "deploy",
        &ex,
        "--config",
        &port_setting,
        "--config",
        &data_setting,
    ])?;
    d.wait_status("db/0", "active", "serving on", Duration::from_secs(15))?;
    // The charm pushed its program; the workload serves keys.
    assert!(data.join("dbd.py").is_file());
    let up = eventually(Duration::from_secs(10), || {
        http(port, "PUT", "/keys/greeting", "it's alive").ok()
    })
    .must("db answers")?;
    assert_eq!(up.0, "HTTP/1.0 200 OK");
    for i in 0..50 {
        http(port, "PUT", &format!("/keys/k{i:02}"), &"x".repeat(i))?;
    }

    // The action runs the dump with exec, pulls it and reports it.
    let out = d.ok(&["run-action", "db/0", "backup", "name=nightly", "--wait"])?;
    assert!(out.contains("status: completed\n"), "{out}");
    let path = data.join("backups/nightly.sql");
    assert_eq!(
        result_value(&out, "path").as_deref(),
        Some(path.to_str().unwrap()),
        "{out}"
    );
    let dump = std::fs::read(&path)?;
    assert_eq!(
        result_value(&out, "size"),
        Some(dump.len().to_string()),
        "{out}"
    );
    assert_eq!(result_value(&out, "rows").as_deref(), Some("51"), "{out}");
    assert_eq!(result_value(&out, "sha256").map(|s| s.len()), Some(64));
    let text = String::from_utf8(dump)?;
    assert!(text.contains("VALUES('greeting','it''s alive');"), "{text}");
    assert!(out.contains("dumping "), "{out}");

    // Compressed, with the default name from the action id.
    let out = d.ok(&["run-action", "db/0", "backup", "compress=true", "--wait"])?;
    assert!(out.contains("compressed: \"true\""), "{out}");
    let gz = result_value(&out, "path").must("path")?;
    assert!(gz.ends_with(".sql.gz") && gz.contains("/backup-"), "{gz}");
    assert_eq!(
        std::fs::read(&gz)?.len().to_string(),
        result_value(&out, "size").must("size")?
    );

    // The dump command fails: the action fails with its message, the unit stays active.
    let out = d.cli(&["run-action", "db/0", "backup", "table=nope", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status: failed\n"), "{stdout}");
    assert!(
        stdout.contains("message: \"dump failed (exit code 2): cannot dump ")
            && stdout.contains("no such table: nope\""),
        "{stdout}"
    );
    d.wait_status("db/0", "active", "serving on", Duration::from_secs(5))?;

    // A parameter of the wrong type is refused before the charm runs.
    let before = d.events("db/0")?.len();
    let out = d.cli(&["run-action", "db/0", "backup", "compress=maybe", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: invalid parameters for action \"backup\": compress: expected boolean, got \"maybe\""
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.events("db/0")?.len(), before);

    // Scheduled backups: the workload dumps every second and records a notice, which
    // the charm shows.
    let msg = scheduled_backup_shown(&d)?;
    let scheduled = msg
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .must("scheduled path")?;
    assert!(
        std::path::Path::new(scheduled).is_file(),
        "{msg}: {scheduled} missing"
    );
    let events = event_lines(&d.events("db/0")?);
    assert!(
        events
            .iter()
            .any(|e| e == "db-pebble-custom-notice handled"),
        "{events:?}"
    );
    Ok(())
}

#[test]
fn db_in_isolated_containers_keeps_everything_in_the_root() -> Result<()> {
    require_root!("--containers isolated mounts the container's root in a namespace");
    let d = Daemon::start("db-iso", &["--containers", "isolated"])?;
    let port = free_port();
    let (ex, port_setting) = (example("db"), format!("port={port}"));
    d.ok(&["deploy", &ex, "--config", &port_setting])?;
    d.wait_status("db/0", "active", "serving on", Duration::from_secs(15))?;
    let root = d.dir.join("units/db-0/containers/db/root");
    // The charm's push landed in the root, and the service runs from there.
    assert!(root.join("tmp/cairn-db/dbd.py").is_file());
    eventually(Duration::from_secs(10), || {
        http(port, "PUT", "/keys/where", "inside").ok()
    })
    .must("db answers")?;

    // The action's exec, dump and pull all happen inside the root.
    let out = d.ok(&["run-action", "db/0", "backup", "name=iso", "--wait"])?;
    assert!(out.contains("status: completed\n"), "{out}");
    assert_eq!(
        result_value(&out, "path").as_deref(),
        Some("/tmp/cairn-db/backups/iso.sql")
    );
    let dump = std::fs::read_to_string(root.join("tmp/cairn-db/backups/iso.sql"))?;
    assert!(dump.contains("VALUES('where','inside');"), "{dump}");
    assert_eq!(result_value(&out, "size"), Some(dump.len().to_string()));
    assert!(!std::path::Path::new("/tmp/cairn-db/backups/iso.sql").exists());

    // Pebble's CLI sees the container's own tree; exec runs in it.
    let ls = d.ok(&["--container", "db/0", "ls", "/tmp/cairn-db"])?;
    assert!(ls.contains("dbd.py") && ls.contains("db.sqlite"), "{ls}");
    let out = d.cli(&["--container", "db/0", "exec", "cat", "/etc/hostname"])?;
    assert_ne!(out.status.code(), Some(0));
    let out = d.cli(&["--container", "db/0", "push", "/etc/hostname", "/usr/x"])?;
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only file system"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The workload reaches its Pebble through the socket in its root: scheduled backups
    // come back as notices.
    scheduled_backup_shown(&d)?;
    Ok(())
}
