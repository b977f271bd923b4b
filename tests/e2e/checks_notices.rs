//! Health checks and notices delivered to charms as events.

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::common::*;

/// `GET <path>` on a unit container's API socket: (status code, body).
fn api_get(socket: &std::path::Path, path: &str) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket)?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    Ok((code, body))
}

fn events_named(d: &Daemon, unit: &str, name: &str) -> Result<usize> {
    Ok(d.events(unit)?
        .iter()
        .filter(|e| e["event"] == name)
        .count())
}

#[test]
fn stalled_workload_fails_its_check_and_the_charm_sees_it() -> Result<()> {
    let d = Daemon::start("checkfail", &[])?;
    let port = d.deploy_web(&["check-period=200ms"])?;
    d.wait_status("web/0", "active", "serving", Duration::from_secs(10))?;
    let socket = d.dir.join("units/web-0/containers/web/.pebble.socket");
    let healthy = eventually(Duration::from_secs(5), || {
        api_get(&socket, "/v1/health?level=ready")
            .ok()
            .filter(|(c, _)| *c == 200)
    });
    assert!(healthy.is_some(), "not healthy at first");
    let (_, checks) = api_get(&socket, "/v1/checks")?;
    let v: serde_json::Value = serde_json::from_str(&checks)?;
    let up = &v["result"][0];
    assert_eq!(
        (
            &up["name"],
            &up["level"],
            &up["startup"],
            &up["status"],
            &up["threshold"]
        ),
        (
            &"up".into(),
            &"ready".into(),
            &"enabled".into(),
            &"up".into(),
            &3.into()
        ),
        "{checks}"
    );

    // Stall the server: connections open but nothing answers, so the check times out.
    let (pid, _) = eventually(Duration::from_secs(5), || {
        processes_with(&d.dir.display().to_string())
            .into_iter()
            .find(|(_, env)| env_value(env, "PORT").as_deref() == Some(&port.to_string()))
    })
    .must("web server process")?;
    // A slow start on a busy machine may already have failed the check once: the stall is
    // what must add exactly one failure and one recovery.
    let failed_before = events_named(&d, "web/0", "web-pebble-check-failed")?;
    let recovered_before = events_named(&d, "web/0", "web-pebble-check-recovered")?;
    kill(Pid::from_raw(pid), Signal::SIGSTOP)?;
    let stalled = std::time::Instant::now();
    let failed = d.wait_status(
        "web/0",
        "maintenance",
        "check \"up\" failing",
        Duration::from_secs(10),
    );
    let (code, body) = api_get(&socket, "/v1/health?level=ready")?;
    let took = stalled.elapsed();
    kill(Pid::from_raw(pid), Signal::SIGCONT)?;
    failed?;
    assert_eq!(
        (code, body.as_str()),
        (
            502,
            r#"{"type":"sync","status-code":502,"status":"Bad Gateway","result":{"healthy":false}}"#
        )
    );
    // period × threshold + one period, plus the event's own delivery.
    assert!(
        took < Duration::from_millis(200 * 4 + 1500),
        "took {took:?}"
    );
    assert_eq!(
        events_named(&d, "web/0", "web-pebble-check-failed")?,
        failed_before + 1
    );
    let out = d.cli(&["--container", "web/0", "health", "--level", "ready"])?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "unhealthy\n");

    // Resumed, it recovers: the charm goes back to active and health to 200.
    d.wait_status("web/0", "active", "serving", Duration::from_secs(10))?;
    assert_eq!(
        events_named(&d, "web/0", "web-pebble-check-recovered")?,
        recovered_before + 1
    );
    let (code, _) = api_get(&socket, "/v1/health?level=ready")?;
    assert_eq!(code, 200);
    let checks = d.ok(&["--container", "web/0", "checks"])?;
    assert!(
        checks.starts_with(
            "Check  Level  Startup  Status  Successes  Failures  Change\nup     ready  enabled  up "
        ),
        "{checks}"
    );
    Ok(())
}

#[test]
fn a_workload_notice_repeated_within_repeat_after_is_one_event() -> Result<()> {
    let d = Daemon::start("customnotice", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    // A workload that records the same notice twice, finding its socket through
    // PEBBLE_SOCKET as a real workload would.
    let layer = d.dir.join("notify.yaml");
    std::fs::write(
        &layer,
        format!(
            "services:\n  backup:\n    override: replace\n    command: sh -c '{c} notify --repeat-after 1h example.com/backup/done path=/x && {c} notify --repeat-after 1h example.com/backup/done path=/x && exec sleep 1000'\n",
            c = CAIRN
        ),
    )?;
    d.ok(&[
        "--container",
        "mis/0",
        "add",
        "backup",
        layer.to_str().unwrap(),
    ])?;
    d.ok(&["--container", "mis/0", "start", "backup"])?;
    let socket = d.dir.join("units/mis-0/containers/work/.pebble.socket");
    let notice = eventually(Duration::from_secs(10), || {
        let (_, body) = api_get(
            &socket,
            "/v1/notices?types=custom&keys=example.com/backup/done",
        )
        .ok()?;
        body.contains(r#""occurrences":2"#).then_some(body)
    })
    .must("notice with two occurrences")?;
    assert!(notice.contains(r#""last-data":{"path":"/x"}"#), "{notice}");
    assert!(notice.contains(r#""repeat-after":"1h0m0s""#), "{notice}");
    let delivered = eventually(Duration::from_secs(10), || {
        let n = events_named(&d, "mis/0", "work-pebble-custom-notice").ok()?;
        (n >= 1).then_some(n)
    });
    assert_eq!(delivered, Some(1));
    // And no second event comes for the repeat within repeat-after.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(events_named(&d, "mis/0", "work-pebble-custom-notice")?, 1);
    let out = d.ok(&[
        "--container",
        "mis/0",
        "notice",
        "custom",
        "example.com/backup/done",
    ])?;
    assert!(out.contains("occurrences: 2"), "{out}");
    Ok(())
}

#[test]
fn backup_workload_reports_archives_to_its_charm_by_notice() -> Result<()> {
    let d = Daemon::start("backupcharm", &[])?;
    let source = d.dir.join("data");
    std::fs::create_dir_all(&source)?;
    std::fs::write(source.join("file.txt"), "precious\n")?;
    let target = d.dir.join("archives");
    d.ok(&[
        "deploy",
        &example("backup"),
        "--config",
        &format!("source={}", source.display()),
        "--config",
        &format!("target-dir={}", target.display()),
        "--config",
        "interval=1",
    ])?;
    // Two archives, two notices, two events: the charm shows the second.
    d.wait_status(
        "backup/0",
        "active",
        "backup 2 done: ",
        Duration::from_secs(20),
    )?;
    let u = d.unit("backup/0")?;
    let msg = u["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let path = msg
        .split(": ")
        .nth(1)
        .and_then(|r| r.split(" (").next())
        .must("archive path in the status")?;
    assert!(std::path::Path::new(path).is_file(), "{msg}");
    assert!(path.starts_with(&target.display().to_string()), "{msg}");
    assert!(events_named(&d, "backup/0", "backup-pebble-custom-notice")? >= 2);
    let notices = d.ok(&[
        "--container",
        "backup/0",
        "notice",
        "custom",
        "example.com/backup/done",
    ])?;
    assert!(notices.contains("path: "), "{notices}");
    Ok(())
}
