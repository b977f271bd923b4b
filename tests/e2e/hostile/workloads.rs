//! Attacks by a charm's workloads and container definitions: each beside the calm co-tenant
//! where one is running.

use std::time::Duration;

use anyhow::Result;

use super::*;

#[test]
fn a_container_name_that_leaves_the_units_directory_is_refused_at_deploy() -> Result<()> {
    let d = Daemon::start("hostile-names", &[])?;
    d.ok(&["deploy", &example("pause")])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(30))?;
    let before = std::fs::read_dir(d.dir.join("units"))?.count();
    for name in [
        "../../pause-0/containers/pause",
        "/tmp/anywhere",
        "..",
        "a/b",
        ".hidden",
    ] {
        let charm = TempDir::new("hostile-charm");
        std::fs::write(
            charm.join("charmcraft.yaml"),
            format!(
                "name: evil\ntype: charm\nsummary: s\ndescription: d\ncontainers:\n  {name:?}:\n    resource: r\n"
            ),
        )?;
        std::fs::copy(
            cairn_test_programs::MISBEHAVE_WASM,
            charm.join("charm.wasm"),
        )?;
        let out = d.cli(&["deploy", &charm.display().to_string()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name:?} deployed");
        assert!(
            stderr.contains(&format!("invalid container name {name:?}")),
            "{name:?}: {stderr}"
        );
    }
    // Nothing was created, and the neighbour's container is untouched.
    assert_eq!(std::fs::read_dir(d.dir.join("units"))?.count(), before);
    assert!(d.status()?["apps"].as_array().is_some_and(|a| a.len() == 1));
    d.wait_status("pause/0", "active", "", Duration::from_secs(5))?;
    Ok(())
}

/// A workload's script: raise its descriptor limit, open up to 20,000 connections to its
/// own Pebble socket (by a relative name: the path may be longer than `sun_path`) for at
/// most 5 s, write how many it holds to the file named by its argument, and keep them.
const SOCKET_FLOOD: &str = r#"
import os, resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
path = os.environ["PEBBLE_SOCKET"]
os.chdir(os.path.dirname(path))
held = []
end = time.monotonic() + 5
for _ in range(20000):
    if time.monotonic() > end:
        break
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.05)
    try:
        s.connect(os.path.basename(path))
        held.append(s)
    except OSError:
        s.close()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(len(held)))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"#;

#[test]
fn a_workload_holding_thousands_of_connections_to_its_socket_cannot_take_the_daemon_down()
-> Result<()> {
    let d = Daemon::start("hostile-sockets", &[])?;
    let mut calm = Calm::deploy(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "hog"])?;
    d.wait_status("hog/0", "active", "handled 1", Duration::from_secs(30))?;
    let flood = std::cell::RefCell::new(None);
    calm.beside("socket flood", || {
        let report = d.dir.join("held");
        let child = std::process::Command::new(CAIRN)
            .arg("--dir")
            .arg(&d.dir)
            .args(["--container", "hog/0", "exec", "--", "python3", "-c"])
            .arg(SOCKET_FLOOD)
            .arg(&report)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let guard = ChildGuard {
            child,
            needle: d.dir.display().to_string(),
        };
        // Under way once the script says how many connections it holds.
        let held: usize = eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&report).ok()?.parse().ok()
        })
        .must("the workload reports its connections")?;
        eprintln!("hostile socket flood: the workload holds {held} connections");
        assert!(held < 20000, "every connection was accepted: {held}");
        *flood.borrow_mut() = Some(guard);
        Ok(())
    })?;
    // The daemon lives and answers every operator command; the tenant's own API still
    // refuses politely rather than failing.
    for _ in 0..20 {
        d.ok(&["status"])?;
    }
    assert!(
        d.pid()
            .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    );
    drop(flood);
    Ok(())
}
