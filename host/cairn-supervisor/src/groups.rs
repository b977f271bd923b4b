//! The process groups a container's services run in, recorded on disk so that a supervisor
//! killed with SIGKILL can, when it comes back, terminate what it left running.
//!
//! Every service runs in its own process group whose id is the leader's pid. The record
//! holds the group id, the leader's start time (field 22 of `/proc/<pid>/stat`) and the
//! boot id, so that a pid reused by an unrelated process after a reboot or a wrap-around is
//! never taken for ours. The file is replaced with write + rename (no fsync: it only has to
//! survive the death of this process, not of the machine, after which the groups are gone
//! anyway and the boot id no longer matches).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// File name of the records in the container directory.
pub const GROUPS_FILE: &str = ".cairn-groups.json";

/// One recorded process group.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GroupRecord {
    /// The service that started it.
    pub service: String,
    /// The leader's start time in clock ticks since boot.
    pub start_time: u64,
    /// How long the service may take to stop after SIGTERM.
    pub kill_delay_ms: u64,
    /// Whether the leader was still running when the record was last written.
    pub leader_alive: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct GroupsFile {
    boot_id: String,
    /// By process group id.
    groups: BTreeMap<i32, GroupRecord>,
}

/// The live record set of one container, kept in memory and mirrored to disk.
pub(crate) struct Groups {
    path: Option<PathBuf>,
    file: GroupsFile,
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Start time and process group of `pid`, from `/proc/<pid>/stat`; None for a missing or
/// zombie process.
pub(crate) fn proc_stat(pid: i32) -> Option<(u64, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // rest[0] is field 3 (state); pgrp is field 5, starttime field 22.
    if fields.first() == Some(&"Z") {
        return None;
    }
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, pgrp))
}

/// Live (non-zombie) members of process group `pgid`, with their start times.
fn members(pgid: i32) -> Vec<(i32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let (start, pgrp) = proc_stat(pid)?;
            (pgrp == pgid).then_some((pid, start))
        })
        .collect()
}

impl Groups {
    /// Records kept at `<dir>/.cairn-groups.json`, or only in memory for `None`.
    pub(crate) fn new(dir: Option<&Path>) -> Self {
        Groups {
            path: dir.map(|d| d.join(GROUPS_FILE)),
            file: GroupsFile {
                boot_id: boot_id(),
                groups: BTreeMap::new(),
            },
        }
    }

    /// Records a new group led by `pid`.
    pub(crate) fn started(&mut self, pid: i32, service: &str, kill_delay: Duration) {
        let Some((start_time, _)) = proc_stat(pid) else {
            return;
        };
        self.file.groups.insert(
            pid,
            GroupRecord {
                service: service.to_string(),
                start_time,
                kill_delay_ms: kill_delay.as_millis() as u64,
                leader_alive: true,
            },
        );
        self.save();
    }

    /// The leader of group `pid` exited: the record stays while other members live.
    pub(crate) fn leader_exited(&mut self, pid: i32) {
        if let Some(r) = self.file.groups.get_mut(&pid) {
            r.leader_alive = false;
        }
        // Groups with no member left are forgotten (signal 0 probes without sending).
        self.file
            .groups
            .retain(|pgid, r| r.leader_alive || killpg(Pid::from_raw(*pgid), None).is_ok());
        self.save();
    }

    /// Sends SIGKILL to every recorded group (the supervisor is going away without a stop).
    pub(crate) fn kill_all(&mut self) {
        for pgid in self.file.groups.keys() {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        self.file.groups.clear();
        self.save();
    }

    fn save(&self) {
        let Some(path) = &self.path else {
            return;
        };
        let result = serde_json::to_vec(&self.file)
            .map_err(std::io::Error::other)
            .and_then(|data| {
                let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                std::fs::write(&tmp, data)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(e) = result {
            tracing::warn!("Cannot record service process groups: {e}");
        }
    }
}

/// Which recorded groups are still ours: the leader alive with the recorded start time, or
/// gone while members started no earlier than it remain. A leader pid now held by another
/// process means the group died and the pid was reused: not ours.
fn ours(pgid: i32, r: &GroupRecord) -> Vec<i32> {
    match proc_stat(pgid) {
        Some((start, _)) if start != r.start_time => Vec::new(),
        _ => members(pgid)
            .into_iter()
            .filter(|(_, start)| *start >= r.start_time)
            .map(|(pid, _)| pid)
            .collect(),
    }
}

/// Terminates the groups recorded in `dir` by a previous supervisor of this boot that did
/// not stop them (it was killed): SIGTERM, then SIGKILL after the service's kill-delay.
/// Returns the services whose processes were found.
pub fn terminate_recorded(dir: &Path) -> Vec<String> {
    let path = dir.join(GROUPS_FILE);
    let Ok(data) = std::fs::read(&path) else {
        return Vec::new();
    };
    let _ = std::fs::remove_file(&path);
    let Ok(file) = serde_json::from_slice::<GroupsFile>(&data) else {
        return Vec::new();
    };
    if file.boot_id != boot_id() {
        return Vec::new();
    }
    let mut found: Vec<(i32, &GroupRecord, bool)> = Vec::new();
    for (pgid, r) in &file.groups {
        if !ours(*pgid, r).is_empty() {
            tracing::warn!(
                "Terminating processes of service {:?} left by a previous run (process group {pgid})",
                r.service
            );
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGTERM);
            found.push((*pgid, r, false));
        }
    }
    let mut services: Vec<String> = found.iter().map(|(_, r, _)| r.service.clone()).collect();
    services.sort();
    services.dedup();
    let give_up = found
        .iter()
        .map(|(_, r, _)| Duration::from_millis(r.kill_delay_ms))
        .max()
        .unwrap_or_default()
        + Duration::from_secs(5);
    let start = Instant::now();
    loop {
        found.retain(|(pgid, r, _)| !ours(*pgid, r).is_empty());
        if found.is_empty() {
            break;
        }
        let elapsed = start.elapsed();
        if elapsed > give_up {
            tracing::warn!("Processes left by a previous run survive SIGKILL");
            break;
        }
        for (pgid, r, killed) in found.iter_mut() {
            if !*killed && elapsed >= Duration::from_millis(r.kill_delay_ms) {
                let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
                *killed = true;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    services
}

/// Members of a process group, for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) fn member_pids(pgid: i32) -> Vec<i32> {
    members(pgid).into_iter().map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_own_start_and_group() {
        let me = std::process::id() as i32;
        let (start, pgrp) = proc_stat(me).unwrap();
        assert!(start > 0);
        assert_eq!(pgrp, nix::unistd::getpgrp().as_raw());
    }

    #[test]
    fn a_reused_leader_pid_is_not_ours() {
        let me = std::process::id() as i32;
        let (start, _) = proc_stat(me).unwrap();
        let r = GroupRecord {
            service: "x".into(),
            start_time: start + 1,
            kill_delay_ms: 0,
            leader_alive: true,
        };
        assert!(ours(me, &r).is_empty());
    }
}
