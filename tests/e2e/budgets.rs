//! A tenant's budget as the operator sets it, against the real daemon: defaults from
//! `cairn run`, overrides per app at deploy and with `cairn config --limits`, checked
//! against the host's maxima, shown by `cairn limits` and kept across a restart. What each
//! limit does to an attack through the charm's host calls is `hostile::host_calls`'s.

use anyhow::{Result, bail};

use crate::common::*;

#[test]
fn limits_are_set_per_app_checked_against_the_host_and_survive_a_restart() -> Result<()> {
    let mut d = Daemon::start("budget-config", &["--limit", "log-bytes=2MiB"])?;
    d.deploy_misbehave("mis", &["execs=3"])?;
    let l = d.limits("mis")?;
    assert_eq!(l["limits"]["log-bytes"], "2MiB", "{l}");
    assert_eq!(l["limits"]["execs"], "3", "{l}");
    assert_eq!(l["overridden"], serde_json::json!(["execs"]), "{l}");

    let out = d.cli(&["config", "mis", "--limits", "memory=1GiB"])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("limit memory=1GiB is over the host's maximum of 64MiB"),
        "{err}"
    );
    let out = d.cli(&[
        "deploy",
        &program("misbehave"),
        "--name",
        "x",
        "--limit",
        "nope=1",
    ])?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown limit \"nope\""));

    d.ok(&[
        "config",
        "mis",
        "--limits",
        "execs=default",
        "--limits",
        "services=7",
    ])?;
    d.stop_with(nix::sys::signal::Signal::SIGTERM);
    d.spawn()?;
    let l = d.limits("mis")?;
    assert_eq!(l["limits"]["execs"], "16", "{l}");
    assert_eq!(l["limits"]["services"], "7", "{l}");
    let table = d.ok(&["limits", "mis"])?;
    assert!(
        table
            .lines()
            .any(|r| r.split_whitespace().collect::<Vec<_>>() == ["services", "7", "app", "0"]),
        "{table}"
    );
    if d.cli(&["status"])?.status.success() {
        Ok(())
    } else {
        bail!("daemon unhealthy")
    }
}
