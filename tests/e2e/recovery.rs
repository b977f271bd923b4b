//! Recovery: the daemon starts on a state directory an interrupted or damaged run left,
//! finishes or undoes what was interrupted, and puts in error only what a bad record
//! describes. A `kill -9` at the interesting moment is reproduced by killing the daemon and
//! leaving its records as they are at that moment.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use nix::sys::signal::Signal;

use crate::common::*;

/// Deploys the pause example (one running service) and waits for its service.
fn deploy_pause(d: &Daemon) -> Result<Vec<i32>> {
    d.ok(&["deploy", &example("pause")])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(15))?;
    let unit = unit_dir(d, "pause-0");
    eventually(Duration::from_secs(10), || {
        let pids = pids_of(&unit);
        (!pids.is_empty()).then_some(pids)
    })
    .must("the pause service runs")
}

fn unit_dir(d: &Daemon, unit: &str) -> String {
    d.dir.join("units").join(unit).display().to_string()
}

/// Processes started for a unit (their environment names its directory).
fn pids_of(unit_dir: &str) -> Vec<i32> {
    processes_with(unit_dir)
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Waits until none of `pids` is alive.
fn all_gone(pids: &[i32]) -> bool {
    eventually(Duration::from_secs(15), || {
        pids.iter()
            .all(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), None).is_err())
            .then_some(())
    })
    .is_some()
}

/// Rewrites an app record as a crash (or an older version) could have left it.
fn edit_app_record(d: &Daemon, app: &str, f: impl FnOnce(&mut serde_json::Value)) -> Result<()> {
    let path = d.dir.join("apps").join(format!("{app}.json"));
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v)?)?;
    Ok(())
}

/// A charm directory: `charmcraft.yaml` as given and the misbehave component.
fn charm_with(d: &Daemon, name: &str, meta: &str) -> Result<PathBuf> {
    let dir = d.dir.join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("charmcraft.yaml"), meta)?;
    std::fs::copy(cairn_test_programs::MISBEHAVE_WASM, dir.join("charm.wasm"))?;
    Ok(dir)
}

fn app_names(d: &Daemon) -> Result<Vec<String>> {
    Ok(d.status()?["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| a["name"].as_str().unwrap_or_default().to_string())
        .collect())
}

#[test]
fn the_daemon_starts_when_a_unit_record_is_missing_and_only_that_unit_is_in_error() -> Result<()> {
    let mut d = Daemon::start("lostunit", &[])?;
    let port = d.deploy_web(&[])?;
    let before = deploy_pause(&d)?;
    d.stop_with(Signal::SIGKILL);
    std::fs::remove_file(d.dir.join("units/pause-0/unit.json"))?;

    d.spawn()?;
    let u = d.unit("pause/0")?;
    assert_eq!(u["status"]["status"], "error", "{u}");
    let reason = u["status"]["message"].as_str().unwrap_or_default();
    assert!(reason.contains("unit.json"), "{u}");
    let text = d.ok(&["status"])?;
    assert!(text.contains("unit.json"), "{text}");
    // What it left running is stopped; the rest runs.
    assert!(all_gone(&before), "processes of the unit in error survive");
    d.wait_status("web/0", "active", "", Duration::from_secs(10))?;
    eventually(Duration::from_secs(10), || http_get(port).ok()).must("web answers")?;
    // The operator clears it with remove.
    d.ok(&["remove", "pause"])?;
    assert!(!Path::new(&unit_dir(&d, "pause-0")).exists());
    assert_eq!(app_names(&d)?, ["web"]);
    Ok(())
}

#[test]
fn the_daemon_starts_when_an_app_record_is_garbage_or_its_charm_is_gone() -> Result<()> {
    let mut d = Daemon::start("badapp", &[])?;
    let port = d.deploy_web(&[])?;
    deploy_pause(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    d.stop_with(Signal::SIGKILL);
    std::fs::write(d.dir.join("apps/pause.json"), b"{\"name\": \"pau")?;
    edit_app_record(&d, "mis", |v| v["charm_hash"] = "0123abcd".into())?;

    d.spawn()?;
    let st = d.status()?;
    let app = |n: &str| {
        st["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(app("pause")["status"]["status"], "error", "{st}");
    assert!(
        app("pause")["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("pause.json"),
        "{st}"
    );
    assert_eq!(app("mis")["status"]["status"], "error", "{st}");
    assert!(
        app("mis")["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("0123abcd.wasm"),
        "{st}"
    );
    d.wait_status("web/0", "active", "", Duration::from_secs(10))?;
    eventually(Duration::from_secs(10), || http_get(port).ok()).must("web answers")?;
    Ok(())
}

#[test]
fn a_deploy_killed_before_its_app_record_leaves_no_app_and_no_process() -> Result<()> {
    let mut d = Daemon::start("halfdeploy", &[])?;
    let before = deploy_pause(&d)?;
    // What a kill before the deploy's commit point leaves: the unit, no app record.
    d.stop_with(Signal::SIGKILL);
    std::fs::remove_file(d.dir.join("apps/pause.json"))?;

    d.spawn()?;
    assert!(
        all_gone(&before),
        "the unfinished deploy's service survives"
    );
    assert!(!Path::new(&unit_dir(&d, "pause-0")).exists());
    assert_eq!(app_names(&d)?, Vec::<String>::new());
    // The name is free: deploying again works.
    deploy_pause(&d)?;
    Ok(())
}

#[test]
fn a_kill_during_remove_finishes_the_removal_on_restart() -> Result<()> {
    let mut d = Daemon::start("halfremove", &[])?;
    let before = deploy_pause(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    // What a kill just after remove began leaves: the app marked, its unit untouched.
    d.stop_with(Signal::SIGKILL);
    edit_app_record(&d, "pause", |v| v["removing"] = true.into())?;

    d.spawn()?;
    assert_eq!(app_names(&d)?, ["mis"]);
    assert!(all_gone(&before), "the removed app's service survives");
    assert!(!Path::new(&unit_dir(&d, "pause-0")).exists());
    assert!(!d.dir.join("apps/pause.json").exists());
    // Nothing is stuck: the other app still takes events.
    d.ok(&["config", "mis", "label=after"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    Ok(())
}

#[test]
fn a_remove_that_replied_ok_leaves_no_unit_directory_and_no_process() -> Result<()> {
    let d = Daemon::start("removeok", &[])?;
    let before = deploy_pause(&d)?;
    d.ok(&["remove", "pause"])?;
    assert!(
        pids_of(&unit_dir(&d, "pause-0")).is_empty(),
        "services run after remove replied"
    );
    for p in &before {
        assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p), None).is_err());
    }
    assert!(!Path::new(&unit_dir(&d, "pause-0")).exists());
    assert!(!d.dir.join("apps/pause.json").exists());
    Ok(())
}

#[test]
fn a_deploy_of_the_same_name_while_a_remove_runs_is_refused_or_survives_it() -> Result<()> {
    let d = Daemon::start("removerace", &[])?;
    deploy_pause(&d)?;
    let remover = std::process::Command::new(CAIRN)
        .arg("--dir")
        .arg(&d.dir)
        .args(["remove", "pause"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let mut remover = ChildGuard {
        child: remover,
        needle: d.dir.display().to_string(),
    };
    let mut deployed = false;
    loop {
        let done = remover.child.try_wait()?.is_some();
        if d.cli(&["deploy", &example("pause")])?.status.success() {
            deployed = true;
            break;
        }
        if done {
            break;
        }
    }
    let status = remover.child.wait()?;
    assert!(status.success(), "{}", d.log());
    if deployed {
        // The new app must not lose its unit to the old app's removal.
        d.wait_status("pause/0", "active", "", Duration::from_secs(15))?;
        assert!(d.dir.join("units/pause-0/unit.json").exists());
        assert!(d.dir.join("apps/pause.json").exists());
    } else {
        assert!(app_names(&d)?.is_empty());
    }
    Ok(())
}

const FLOAT_META: &str = "name: floaty\ncontainers:\n  work:\n    resource: r\nconfig:\n  options:\n    mode:\n      type: string\n      default: ok\n    ratio:\n      type: float\n      default: 0.5\n";

#[test]
fn float_settings_that_cannot_round_trip_are_refused_and_old_nulls_load() -> Result<()> {
    let mut d = Daemon::start("nanconfig", &[])?;
    let charm = charm_with(&d, "floaty", FLOAT_META)?;
    d.ok(&["deploy", charm.to_str().unwrap()])?;
    d.wait_status("floaty/0", "active", "", Duration::from_secs(15))?;
    for bad in ["nan", "inf", "-inf"] {
        let out = d.cli(&["config", "floaty", &format!("ratio={bad}")])?;
        assert!(!out.status.success(), "ratio={bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("option \"ratio\" expected float, got \"{bad}\"")),
            "{err}"
        );
    }
    d.stop_with(Signal::SIGKILL);
    d.spawn()?;
    assert!(d.ok(&["config", "floaty"])?.contains("0.5"));
    // A null an older version stored reads as unset.
    d.stop_with(Signal::SIGKILL);
    edit_app_record(&d, "floaty", |v| {
        v["settings"] = serde_json::json!({"ratio": null})
    })?;
    d.spawn()?;
    assert!(d.ok(&["config", "floaty"])?.contains("0.5"));
    d.wait_status("floaty/0", "active", "", Duration::from_secs(15))?;
    Ok(())
}

#[test]
fn container_names_that_would_leave_the_state_directory_are_refused() -> Result<()> {
    let d = Daemon::start("containername", &[])?;
    for (i, bad) in ["../../../escaped", "/tmp/cairn-escaped-abs"]
        .iter()
        .enumerate()
    {
        let meta = format!("name: evil\ncontainers:\n  {bad:?}:\n    resource: r\n");
        let charm = charm_with(&d, &format!("evil{i}"), &meta)?;
        let out = d.cli(&["deploy", charm.to_str().unwrap()])?;
        assert!(!out.status.success(), "{bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("invalid container name {bad:?}")),
            "{err}"
        );
    }
    assert!(!d.dir.join("escaped").exists());
    assert!(!Path::new("/tmp/cairn-escaped-abs").exists());
    assert_eq!(std::fs::read_dir(d.dir.join("units"))?.count(), 0);
    Ok(())
}
