//! The supervisor's tests, on real processes, sockets and files, one module per area, with
//! the helpers they share.

mod cgroups;
mod checks;
mod exec;
mod limits;
mod persistence;
pub(crate) mod procs;
mod sandbox;
mod services;
mod strict;

use std::path::PathBuf;
use std::time::Duration;

use crate::groups;

/// A fresh (emptied) temporary directory for test `name` of module `area`.
pub(crate) fn temp_dir(area: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-{area}-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Waits up to `timeout` for `f` to hold; whether it did.
pub(crate) async fn within(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// Pids of live processes running `cmd` (its program by base name, then its arguments).
pub(crate) fn pids_running(cmd: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = cmd[1..]
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let matches = |c: Vec<u8>| {
        let Some(end) = c.iter().position(|b| *b == 0) else {
            return false;
        };
        let argv0 = String::from_utf8_lossy(&c[..end]).to_string();
        argv0.rsplit('/').next() == Some(cmd[0]) && c[end + 1..] == want[..]
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // A zombie has exited already.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z')
                && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(matches)
        })
        .collect()
}

/// Waits until process group `pgid` has `n` live members; returns them.
pub(crate) async fn wait_for_members(pgid: i32, n: usize) -> Vec<i32> {
    for _ in 0..200 {
        let m = groups::member_pids(pgid);
        if m.len() >= n {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process group {pgid} never had {n} members");
}

/// Whether this process may do what root may (mount namespaces, switching users); tests
/// that need it say so when they skip.
pub(crate) fn is_root(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!(
            "skipped {test}: needs root (mount namespaces and user switches); CI runs it as root"
        );
    }
    root
}
