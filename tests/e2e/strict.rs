//! `cairn run --tenancy strict`: the db example works as in an isolated container, its
//! files and sockets belong to its own root, its environment is minimal, and removal takes
//! every process it started. What a hostile root workload tries (host files through
//! `/proc/<pid>/root`, the control socket, a neighbour's processes and logs, memory) is
//! in `hostile::workloads`, beside a calm co-tenant.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use anyhow::Result;

use crate::common::*;

/// Runs `script` with `sh -c` in db/0's container through Pebble's CLI; (exit code, stdout).
fn sh(d: &Daemon, script: &str) -> Result<(Option<i32>, String)> {
    let out = d.cli(&["--container", "db/0", "exec", "sh", "-c", script])?;
    Ok((
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

#[test]
fn a_strict_container_runs_its_workload_as_its_own_root_and_leaves_nothing_behind() -> Result<()> {
    require_root!("--tenancy strict makes user, pid and mount namespaces");
    let d = Daemon::start("strict", &["--tenancy", "strict"])?;
    let port = free_port();
    let (ex, port_setting) = (example("db"), format!("port={port}"));
    d.ok(&["deploy", &ex, "--config", &port_setting])?;
    d.wait_status("db/0", "active", "serving on", Duration::from_secs(20))?;
    eventually(Duration::from_secs(10), || {
        http(port, "PUT", "/keys/where", "inside").ok()
    })
    .must("db answers")?;

    // The workload works as before: the action's exec, dump and pull, and its own Pebble
    // (scheduled backups come back as notices through the socket in its root).
    let out = d.ok(&["run-action", "db/0", "backup", "name=strict", "--wait"])?;
    assert!(out.contains("status: completed\n"), "{out}");
    d.ok(&["config", "db", "backup-interval=1"])?;
    d.wait_status(
        "db/0",
        "active",
        "scheduled backup ",
        Duration::from_secs(15),
    )?;

    // Files are owned by the container's root, an unprivileged host id; inside it is 0.
    let root = d.dir.join("units/db-0/containers/db/root");
    let host_uid = std::fs::metadata(root.join("tmp/cairn-db/dbd.py"))?.uid();
    assert!(
        host_uid >= 65536,
        "pushed file owned by host uid {host_uid}"
    );
    let (code, out) = sh(&d, "id -u; stat -c %u /tmp/cairn-db/dbd.py")?;
    assert_eq!((code, out.as_str()), (Some(0), "0\n0\n"));
    // The sockets: the host side is the operator's only; the one in the root its root's.
    let mode = |p: &std::path::Path| -> Result<(u32, u32)> {
        let m = std::fs::metadata(p)?;
        Ok((m.permissions().mode() & 0o777, m.uid()))
    };
    let cdir = d.dir.join("units/db-0/containers/db");
    assert_eq!(mode(&cdir.join(".pebble.socket"))?, (0o600, 0));
    assert_eq!(
        mode(&root.join("charm/container/pebble.socket"))?,
        (0o600, host_uid)
    );

    // Nothing of the daemon's environment.
    let (_, env) = sh(&d, "env | cut -d= -f1 | sort | tr '\\n' ' '")?;
    assert!(
        !env.contains("CAIRN") && env.contains("PEBBLE_SOCKET"),
        "{env}"
    );

    // Removal takes every process of the container, those that left their group too.
    sh(&d, "setsid sleep 8642 >/dev/null 2>&1 &")?;
    eventually(Duration::from_secs(5), || {
        (!running("sleep 8642").is_empty()).then_some(())
    })
    .must("the setsid process runs")?;
    d.ok(&["remove", "db"])?;
    eventually(Duration::from_secs(10), || {
        running("sleep 8642").is_empty().then_some(())
    })
    .must("the setsid process is gone with its container")?;
    Ok(())
}

/// Live processes whose command line (arguments joined by spaces) contains `needle`.
fn running(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c: Vec<u8> = c.iter().map(|b| if *b == 0 { b' ' } else { *b }).collect();
                String::from_utf8_lossy(&c).contains(needle)
            })
        })
        .collect()
}
