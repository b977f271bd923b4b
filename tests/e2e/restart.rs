//! Host restart: unit state, layers and pending events come back.

use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;

use crate::common::*;

#[test]
fn restart_restores_units_layers_and_services() -> Result<()> {
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
    let found = eventually(Duration::from_secs(5), || {
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
fn pending_events_survive_kill_9() -> Result<()> {
    let mut d = Daemon::start("kill9", &["--event-deadline", "60s"])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "handled 1", Duration::from_secs(15))?;
    // The unit gets stuck in a looping event with another event queued behind it.
    d.ok(&["config", "mis", "mode=loop"])?;
    eventually(Duration::from_secs(10), || {
        d.unit("mis/0").ok().filter(|u| u["queued"] == 1)
    })
    .must("loop event in progress")?;
    std::thread::sleep(Duration::from_millis(200));
    d.ok(&["config", "mis", "mode=ok"])?;
    let u = d.unit("mis/0")?;
    assert_eq!(u["queued"], 2, "{u}");
    d.stop_with(Signal::SIGKILL);

    d.spawn()?;
    // The config-changed cut short is delivered again and sees the latest config (mode
    // ok): the one queued behind it was not written on its own (the app's record holds the
    // config generation, and the unit found behind it is given one config-changed, which
    // coalesces with the one waiting, as Juju's does); then pebble-ready.
    d.wait_status("mis/0", "active", "handled 2", Duration::from_secs(15))?;
    let events = d.events("mis/0")?;
    let tail: Vec<&str> = events
        .iter()
        .rev()
        .take(2)
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(tail, ["work-pebble-ready", "config-changed"], "{events:?}");
    // Nothing else is left to run.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(d.unit("mis/0")?["queued"], 0);
    assert_eq!(d.events("mis/0")?.len(), events.len());
    Ok(())
}

#[test]
fn after_kill_9_and_restart_no_process_from_before_survives() -> Result<()> {
    let mut d = Daemon::start("kill9procs", &[])?;
    let port = d.deploy_web(&[])?;
    eventually(Duration::from_secs(5), || http_get(port).ok()).must("workload answers")?;
    let dir = d.dir.display().to_string();
    // An exec in flight too: its command must not outlive the host's restart either.
    let mut exec = ChildGuard {
        child: std::process::Command::new(CAIRN)
            .arg("--dir")
            .arg(&d.dir)
            // The background sleep is not the exec's own process: it outlives the host
            // (which takes the processes it started with it) until the host comes back.
            .args([
                "--container",
                "web/0",
                "exec",
                "--",
                "sh",
                "-c",
                "sleep 1005 & exec sleep 1006",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
        needle: dir.clone(),
    };
    let sleeping = eventually(Duration::from_secs(10), || {
        processes_with(&dir)
            .into_iter()
            .find(|(pid, _)| {
                std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c == "sleep\x001005\x00")
            })
            .map(|(pid, _)| pid)
    })
    .must("the exec's command runs")?;
    let before: Vec<i32> = processes_with(&dir).into_iter().map(|(p, _)| p).collect();
    assert!(before.contains(&sleeping));

    d.stop_with(Signal::SIGKILL);
    let _ = exec.child.wait();
    // The services' and execs' own processes die with the host (the kernel sends them
    // SIGKILL when it goes); whatever they started that is left over is terminated when the
    // host comes back, and the charm starts the workload anew.
    let orphans: Vec<i32> = processes_with(&dir).into_iter().map(|(p, _)| p).collect();
    assert!(
        orphans.contains(&sleeping) && orphans.iter().all(|p| before.contains(p)),
        "{orphans:?} (the background sleep {sleeping} must be among them) not in {before:?}"
    );
    d.spawn()?;
    let gone = eventually(Duration::from_secs(10), || {
        let now: Vec<i32> = processes_with(&dir).into_iter().map(|(p, _)| p).collect();
        before.iter().all(|p| !now.contains(p)).then_some(())
    });
    assert!(
        gone.is_some(),
        "processes from before survived: {before:?}\n{}",
        d.log()
    );
    d.wait_status("web/0", "active", "", Duration::from_secs(10))?;
    eventually(Duration::from_secs(10), || http_get(port).ok()).must("workload back")?;
    assert!(d.log().contains("left by a previous run"), "{}", d.log());

    // The supervisor also records a warning, which `warnings` lists until `okay`.
    let config = d.dir.join("cli-config");
    let pebble = |args: &[&str]| -> Result<std::process::Output> {
        Ok(std::process::Command::new(CAIRN)
            .arg("--dir")
            .arg(&d.dir)
            .args(["--container", "web/0"])
            .args(args)
            .env("XDG_CONFIG_HOME", &config)
            .output()?)
    };
    let out = pebble(&["warnings"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("last-occurrence:"), "{text}");
    // The exec whose background process was left is named (the service's own process
    // went with the host, leaving nothing).
    let warning = text.lines().nth(2).unwrap_or_default().trim().to_string();
    assert!(
        warning.starts_with("processes of ")
            && warning.contains("exec ")
            && warning.ends_with(" left running by a previous run were terminated"),
        "{text}"
    );
    assert!(pebble(&["okay"])?.status.success());
    let out = pebble(&["warnings"])?;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "No further warnings.\n"
    );
    let out = pebble(&["warnings", "--all"])?;
    assert!(String::from_utf8_lossy(&out.stdout).contains("left running"));
    assert!(config.join("pebble/cli.json").is_file());
    Ok(())
}

#[test]
fn shutdown_action_restarts_the_container_and_fires_pebble_ready() -> Result<()> {
    let d = Daemon::start("shutdownaction", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    let ready = |d: &Daemon| -> Result<usize> {
        Ok(d.events("mis/0")?
            .iter()
            .filter(|e| e["event"] == "work-pebble-ready")
            .count())
    };
    let before = ready(&d)?;
    let layer = d.dir.join("shutdown.yaml");
    std::fs::write(
        &layer,
        "services:\n  doomed:\n    override: replace\n    command: sh -c 'sleep 1.3; exit 4'\n    on-failure: shutdown\n  bystander:\n    override: replace\n    command: sleep 1000\n",
    )?;
    let pebble = |args: &[&str]| -> Result<String> {
        let mut all = vec!["--container", "mis/0"];
        all.extend_from_slice(args);
        d.ok(&all)
    };
    pebble(&["add", "doomed", layer.to_str().unwrap()])?;
    pebble(&["start", "doomed", "bystander"])?;
    let bystander = eventually(Duration::from_secs(5), || {
        processes_with(&d.dir.display().to_string())
            .into_iter()
            .find(|(pid, _)| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\x001000"))
            })
    })
    .must("bystander running")?
    .0;
    // doomed exits with 4: its on-failure shutdown takes the container down (bystander
    // stopped), the host brings it back, and the charm sees pebble-ready again.
    let again = eventually(Duration::from_secs(15), || {
        (ready(&d).ok()? > before).then_some(())
    });
    assert!(again.is_some(), "no new pebble-ready:\n{}", d.log());
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(bystander), None).is_err(),
        "bystander survived the container shutdown"
    );
    let services = pebble(&["services"])?;
    assert!(
        services.contains("bystander  disabled  inactive"),
        "{services}"
    );
    assert!(
        d.log().contains("shut down by a service exit action"),
        "{}",
        d.log()
    );
    d.wait_status("mis/0", "active", "", Duration::from_secs(10))?;
    Ok(())
}
