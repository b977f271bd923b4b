//! The application model as an operator drives it: several units per application,
//! leadership moving when the leader leaves, `resolve` for a unit in error, and
//! `config --wait` for scripts.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::common::*;

/// The unit names of `app` in `cairn status`, each with whether it leads.
fn units_of(d: &Daemon, app: &str) -> Result<Vec<(String, bool)>> {
    let st = d.status()?;
    Ok(st["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["name"] == app)
        .flat_map(|a| a["units"].as_array().cloned().unwrap_or_default())
        .map(|u| {
            (
                u["name"].as_str().unwrap_or("").to_string(),
                u["leader"] == true,
            )
        })
        .collect())
}

/// The last `n` events of `unit`, newest first, as `"event" "outcome"`.
fn last_outcomes(d: &Daemon, unit: &str, n: usize) -> Result<Vec<String>> {
    Ok(d.events(unit)?
        .iter()
        .rev()
        .take(n)
        .map(|e| format!("{} {}", e["event"], e["outcome"]))
        .collect())
}

#[test]
fn units_come_and_go_and_the_leadership_moves_to_a_unit_left() -> Result<()> {
    let d = Daemon::start("units", &[])?;
    let prog = program("misbehave");
    d.ok(&["deploy", &prog, "--name", "m", "-n", "3"])?;
    for u in ["m/0", "m/1", "m/2"] {
        d.wait_status(u, "active", "handled 1", Duration::from_secs(30))?;
    }
    let table = d.ok(&["status"])?;
    assert!(table.contains("m/0*") && !table.contains("m/1*"), "{table}");
    assert!(event_names(&d, "m/0")?.contains(&"leader-elected".into()));
    assert!(!event_names(&d, "m/1")?.contains(&"leader-elected".into()));
    // Each unit has its own container and Pebble socket.
    for i in 0..3 {
        let socket = d
            .dir
            .join(format!("units/m-{i}/containers/work/.pebble.socket"));
        assert!(socket.exists(), "{}", socket.display());
        d.ok(&["--container", &format!("m/{i}"), "plan"])?;
    }

    assert_eq!(d.ok(&["remove-unit", "m/0"])?, "Removed m/0\n");
    d.wait_status("m/1", "active", "", Duration::from_secs(30))?;
    assert_eq!(
        units_of(&d, "m")?,
        [("m/1".to_string(), true), ("m/2".to_string(), false)]
    );
    assert_eq!(event_names(&d, "m/1")?.last().unwrap(), "leader-elected");
    assert!(!d.dir.join("units/m-0").exists());

    assert_eq!(
        d.ok(&["add-unit", "m", "-n", "2"])?,
        "Added m/3\nAdded m/4\n"
    );
    d.wait_status("m/4", "active", "handled 1", Duration::from_secs(30))?;
    assert_eq!(units_of(&d, "m")?.len(), 4);
    let out = d.cli(&["remove-unit", "m/0"])?;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: unit \"m/0\" not found"
    );
    Ok(())
}

#[test]
fn resolve_retries_or_drops_the_failing_event_and_config_wait_says_when_the_charm_ran() -> Result<()>
{
    // No automatic retry within the test: only `resolve` (or a new event) retries.
    let d = Daemon::start("resolve", &["--retry-delay", "1h"])?;
    d.deploy_misbehave("m", &[])?;
    let refused = d.cli(&["resolve", "m/0"])?;
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr).trim(),
        "error: unit \"m/0\" is not in an error state"
    );
    // `--wait` returns once the charm ran config-changed for the new config.
    d.ok(&["config", "m", "label=first", "--wait"])?;
    let last = d.events("m/0")?.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "config-changed");
    assert_eq!(last["outcome"], "handled");

    // A fault outside the charm: the gate file is missing.
    let gate = d.dir.join("gate");
    let gate_setting = format!("label={}", gate.display());
    let failed = d.cli(&["config", "m", "mode=gate", &gate_setting, "--wait"])?;
    assert!(!failed.status.success());
    let why = format!(
        "hook failed: \"config-changed\": misbehave: {} is missing",
        gate.display()
    );
    assert_eq!(
        String::from_utf8_lossy(&failed.stderr).trim(),
        format!("error: unit m/0 is in error: {why}")
    );
    let u = d.unit("m/0")?;
    assert_eq!(u["status"]["status"], "error");
    assert_eq!(u["status"]["message"], why.as_str());
    // An action waits behind the failing event.
    let queued = d.ok(&[
        "run-action",
        "m/0",
        "echo",
        "message=hi",
        "--format",
        "json",
    ])?;
    let id = serde_json::from_str::<serde_json::Value>(&queued)?["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // A new event retries the failing one at once (it fails again): let that retry end
    // before the fault is fixed, so that only `resolve` can find it fixed.
    let failures = || -> Result<usize> {
        Ok(d.events("m/0")?
            .iter()
            .filter(|e| {
                e["outcome"]
                    .as_str()
                    .is_some_and(|o| o.ends_with("is missing"))
            })
            .count())
    };
    eventually(Duration::from_secs(30), || {
        (failures().ok()? >= 2).then_some(())
    })
    .context("the action's arrival did not retry the failing event")?;
    std::fs::write(&gate, "open")?;
    d.ok(&["resolve", "m/0"])?;
    d.wait_status("m/0", "active", "", Duration::from_secs(30))?;
    let shown = d.ok(&["show-action", &id, "--format", "json"])?;
    assert!(shown.contains("\"completed\""), "{shown}");
    assert_eq!(
        last_outcomes(&d, "m/0", 2)?,
        [
            "\"echo-action\" \"handled\"",
            "\"config-changed\" \"handled\""
        ]
    );

    // `--no-retry` drops the failing event; what waits behind it still runs.
    let missing = d.dir.join("never");
    d.cli(&[
        "config",
        "m",
        &format!("label={}", missing.display()),
        "--wait",
    ])?;
    d.ok(&["run-action", "m/0", "echo", "message=after"])?;
    d.ok(&["resolve", "m/0", "--no-retry"])?;
    d.wait_status("m/0", "active", "", Duration::from_secs(30))?;
    assert_eq!(
        last_outcomes(&d, "m/0", 2)?,
        [
            "\"echo-action\" \"handled\"",
            "\"config-changed\" \"skipped: resolved with --no-retry\""
        ]
    );
    Ok(())
}

/// A charm directory at `dir` with `charm`'s `charmcraft.yaml` and `wasm` as its component.
fn charm_with(dir: &std::path::Path, charm: &str, wasm: &[u8]) -> Result<String> {
    std::fs::create_dir_all(dir)?;
    std::fs::copy(
        std::path::Path::new(&example(charm)).join("charmcraft.yaml"),
        dir.join("charmcraft.yaml"),
    )?;
    std::fs::write(dir.join("charm.wasm"), wasm)?;
    Ok(dir.display().to_string())
}

/// The pid of `web/0`'s HTTP server on `port`.
fn server_pid(port: u16) -> Option<i32> {
    let needle = format!("http.server {port}");
    processes_with("JUJU_UNIT_NAME=web/0")
        .into_iter()
        .map(|(pid, _)| pid)
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .contains(&needle)
                })
                .unwrap_or(false)
        })
}

#[test]
fn a_refresh_swaps_the_component_while_the_workload_answers_every_request() -> Result<()> {
    let d = Daemon::start("refresh", &[])?;
    let port = d.deploy_web(&[])?;
    let pid = server_pid(port).context("the web server's process")?;
    // Requests as fast as they come back, all through the refresh.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let requests = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match http_get(port) {
                    Ok(line) if line.contains("200") => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        })
    };
    // A rebuilt component: the same code with one more custom section, so another
    // component to the host (another hash), as a rebuild with a new version stamp is.
    let mut rebuilt = std::fs::read(cairn_test_programs::WEB_WASM)?;
    let name = b"cairn-test-build";
    let payload = b"2";
    rebuilt.push(0);
    rebuilt.push((1 + name.len() + payload.len()) as u8);
    rebuilt.push(name.len() as u8);
    rebuilt.extend_from_slice(name);
    rebuilt.extend_from_slice(payload);
    let new = charm_with(&d.dir.join("web-rebuilt"), "web", &rebuilt)?;
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        d.ok(&["refresh", "web", "--path", &new])?,
        "Refreshed web\n"
    );
    let names = eventually(Duration::from_secs(30), || {
        let names = event_names(&d, "web/0").ok()?;
        names
            .ends_with(&["upgrade-charm".into(), "config-changed".into()])
            .then_some(names)
    })
    .with_context(|| {
        format!(
            "no upgrade-charm then config-changed: {:?}",
            event_names(&d, "web/0")
        )
    })?;
    d.wait_status(
        "web/0",
        "active",
        &format!("serving on port {port}"),
        Duration::from_secs(30),
    )?;
    // Stored state survived: the new charm read the port the old one saved.
    let log = std::fs::read_to_string(d.dir.join("units/web-0/unit.log"))?;
    assert!(
        log.contains(&format!("upgraded while serving on port {port}")),
        "{log}"
    );
    // A component that cannot be loaded is refused; the old one keeps serving.
    let too_big = std::fs::read(cairn_test_programs::TOO_BIG_TO_LOAD_WASM)?;
    let bad = charm_with(&d.dir.join("web-too-big"), "web", &too_big)?;
    let refused = d.cli(&["refresh", "web", "--path", &bad])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.starts_with("error: cannot refresh \"web\": "),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = requests.join().expect("the request loop");
    eprintln!(
        "refresh: {ok} requests answered during the refreshes, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert!(ok > 20, "only {ok} requests");
    // The workload was never restarted.
    assert_eq!(server_pid(port), Some(pid));
    assert_eq!(names.iter().filter(|n| *n == "upgrade-charm").count(), 1);
    Ok(())
}
