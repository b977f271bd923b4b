//! The process groups a container's services and exec commands run in, recorded on disk
//! so that a supervisor killed with SIGKILL can, when it comes back, terminate what it left
//! running.
//!
//! Every service runs in its own process group whose id is the leader's pid. A record holds
//! the group id, the leader's start time (field 22 of `/proc/<pid>/stat`) and, in the
//! file's header, the boot id, so that a pid reused by an unrelated process after a reboot
//! or a wrap-around is never taken for ours.
//!
//! Owned by construction: the record of a group is written by its leader itself, between
//! fork and exec (a pre-exec hook appends its line with one `writev`), so no user code runs
//! unrecorded; and the leader gets SIGKILL from the kernel when the supervisor process dies
//! (`PR_SET_PDEATHSIG`, see `reaper::spawn`). A supervisor killed at any moment of a start
//! thus leaves either no process (never exec'd or killed by the kernel) or a recorded group.
//!
//! The file, `.cairn-groups.json`, is a journal of JSON lines: a header
//! `{"boot_id":…}`, start records `{"pgid":…,"start_time":…,"service":…,
//! "kill_delay_ms":…}` and `{"gone":pgid}` when a group has no member left. Lines are only
//! appended (no fsync: the file only has to survive the death of this process, not of the
//! machine, after which the groups are gone anyway and the boot id no longer matches); the
//! supervisor rewrites it (temp, rename) when the dead lines outnumber the live ones, and
//! removes it when no group is left. Reading it back, a torn last line or a garbage line
//! loses only itself and is logged; a file without a readable header is logged, moved aside
//! as `.cairn-groups.json.corrupt-<time>` and its records are not trusted (the pids could be
//! another boot's). The whole-file JSON object of earlier versions is still read.
//!
//! Where the host lets the supervisor make cgroups, every process of the container also
//! joins the container's cgroup before exec (`cgroup.rs`), and whatever is still in it
//! after the records were acted on (an unreadable record, a daemon that left its process
//! group) is terminated too.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
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
    #[serde(default = "yes")]
    pub leader_alive: bool,
}

fn yes() -> bool {
    true
}

/// The whole-file format of earlier versions.
#[derive(Debug, Default, Deserialize)]
struct LegacyFile {
    boot_id: String,
    /// By process group id.
    groups: BTreeMap<i32, GroupRecord>,
}

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Header {
        boot_id: String,
    },
    Start {
        pgid: i32,
        #[serde(flatten)]
        record: GroupRecord,
    },
    Gone {
        gone: i32,
    },
}

/// Lines of the journal beyond which, when most are dead, it is rewritten.
const COMPACT_AFTER: usize = 64;

/// The live record set of one container, kept in memory and journalled to disk.
pub(crate) struct Groups {
    path: Option<PathBuf>,
    /// Whether the journal exists with its header (it is opened for each append rather
    /// than kept open: one descriptor less per container).
    journal: bool,
    boot_id: String,
    groups: BTreeMap<i32, GroupRecord>,
    /// Lines in the journal.
    lines: usize,
}

/// `/proc`, for children to read their own start time in (whatever their root): one
/// descriptor for the whole process.
fn proc_dir() -> Option<&'static OwnedFd> {
    static PROC: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    PROC.get_or_init(|| {
        nix::fcntl::open(
            "/proc",
            nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ok()
    })
    .as_ref()
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// State, process group and start time from the text of `/proc/<pid>/stat`, without
/// allocating (a child between fork and exec parses its own).
fn parse_stat(stat: &[u8]) -> Option<(u8, i32, u64)> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = stat.get(close + 2..)?;
    let (mut state, mut pgrp, mut start) = (0u8, None, None);
    // rest's field 0 is the stat's field 3 (state); pgrp is field 5, starttime field 22.
    for (i, field) in rest.split(|b| *b == b' ').enumerate() {
        match i {
            0 => state = *field.first()?,
            2 => pgrp = Some(parse_num(field)? as i32),
            19 => {
                start = Some(parse_num(field)?);
                break;
            }
            _ => {}
        }
    }
    Some((state, pgrp?, start?))
}

fn parse_num(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0'))
    })
}

/// Start time and process group of `pid`, from `/proc/<pid>/stat`; None for a missing or
/// zombie process.
pub(crate) fn proc_stat(pid: i32) -> Option<(u64, i32)> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let (state, pgrp, start) = parse_stat(&stat)?;
    (state != b'Z').then_some((start, pgrp))
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

/// Appends `{"pgid":<own pid>,"start_time":<own start time>` and `tail` to the journal
/// `journal` as one write. Runs in a child between fork and exec: async-signal-safe system
/// calls on the stack only.
fn child_record(journal: RawFd, proc_dir: RawFd, tail: &[u8]) {
    use nix::libc;
    // SAFETY: plain system calls on buffers owned by this frame.
    unsafe {
        let pid = libc::getpid();
        let mut stat = [0u8; 1024];
        let fd = libc::openat(
            proc_dir,
            c"self/stat".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return;
        }
        let n = libc::read(fd, stat.as_mut_ptr().cast(), stat.len());
        libc::close(fd);
        if n <= 0 {
            return;
        }
        let Some((_, _, start)) = parse_stat(&stat[..n as usize]) else {
            return;
        };
        // The pid as the host sees it (the stat of the host's /proc), not getpid(): in a
        // strict container's pid namespace that is the pid inside.
        let host_pid = stat
            .iter()
            .position(|b| *b == b' ')
            .and_then(|end| parse_num(&stat[..end]));
        let pid = host_pid.map_or(pid as u64, |p| p);
        let mut head = [0u8; 80];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            head[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(b"{\"pgid\":");
        put(digits(pid, &mut [0u8; 20]));
        put(b",\"start_time\":");
        put(digits(start, &mut [0u8; 20]));
        let iov = [
            libc::iovec {
                iov_base: head.as_mut_ptr().cast(),
                iov_len: len,
            },
            libc::iovec {
                iov_base: tail.as_ptr() as *mut libc::c_void,
                iov_len: tail.len(),
            },
        ];
        libc::writev(journal, iov.as_ptr(), 2);
    }
}

/// The decimal digits of `n`, written at the end of `buf`.
fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

impl Groups {
    /// Records kept at `<dir>/.cairn-groups.json`, or only in memory for `None`.
    pub(crate) fn new(dir: Option<&Path>) -> Self {
        Groups {
            path: dir.map(|d| d.join(GROUPS_FILE)),
            journal: false,
            boot_id: boot_id(),
            groups: BTreeMap::new(),
            lines: 0,
        }
    }

    /// The journal open for appending, created with its header on first use (and again
    /// if it went away).
    fn journal(&mut self) -> Option<std::fs::File> {
        let path = self.path.clone()?;
        if self.journal {
            match std::fs::OpenOptions::new().append(true).open(&path) {
                Ok(f) => return Some(f),
                Err(e) => tracing::warn!("Cannot open {}: {e}", path.display()),
            }
        }
        self.rewrite(path.clone());
        if !self.journal {
            return None;
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .inspect_err(|e| tracing::warn!("Cannot record service process groups: {e}"))
            .ok()
    }

    /// Rewrites the journal from the live records (temp, rename).
    fn rewrite(&mut self, path: PathBuf) {
        self.journal = false;
        let mut data = line(&Line::Header {
            boot_id: self.boot_id.clone(),
        });
        for (pgid, r) in &self.groups {
            data.extend(line(&Line::Start {
                pgid: *pgid,
                record: r.clone(),
            }));
        }
        match crate::persist::atomic_write_unsynced(&path, &data) {
            Ok(()) => {
                self.journal = true;
                self.lines = 1 + self.groups.len();
            }
            Err(e) => tracing::warn!("Cannot record service process groups: {e}"),
        }
    }

    /// Appends one line to the journal.
    fn append(&mut self, l: &Line) {
        use std::io::Write;
        if self.path.is_none() {
            return;
        }
        let data = line(l);
        let written = match self.journal() {
            Some(mut f) => f.write_all(&data),
            None => return,
        };
        match written {
            Ok(()) => self.lines += 1,
            Err(e) => tracing::warn!("Cannot record service process groups: {e}"),
        }
    }

    /// Makes the leader started by `cmd` (in a process group of its own) append its own
    /// record to the journal between fork and exec, before it can run any of its command's
    /// code. Hold this `Groups` until the spawn returned, so that the journal is not
    /// rewritten meanwhile.
    pub(crate) fn record_in_child(
        &mut self,
        cmd: &mut crate::spawn::Command,
        service: &str,
        kill_delay: Duration,
    ) {
        let Some(proc_dir) = proc_dir().map(|f| f.as_raw_fd()) else {
            return;
        };
        // Held by the hook until the command is dropped, after its spawn.
        let Some(journal) = self.journal() else {
            return;
        };
        let tail = format!(
            ",\"service\":{},\"kill_delay_ms\":{}}}\n",
            serde_json::Value::from(service),
            kill_delay.as_millis()
        )
        .into_bytes();
        self.lines += 1;
        // SAFETY: child_record makes async-signal-safe system calls only.
        unsafe {
            cmd.pre_exec(move || {
                child_record(journal.as_raw_fd(), proc_dir, &tail);
                Ok(())
            });
        }
    }

    /// Records a new group led by `pid` (again, when its leader recorded it already: the
    /// record of a leader that could not write its own).
    pub(crate) fn started(&mut self, pid: i32, service: &str, kill_delay: Duration) {
        let Some((start_time, _)) = proc_stat(pid) else {
            return;
        };
        let record = GroupRecord {
            service: service.to_string(),
            start_time,
            kill_delay_ms: kill_delay.as_millis() as u64,
            leader_alive: true,
        };
        self.groups.insert(pid, record.clone());
        self.append(&Line::Start { pgid: pid, record });
    }

    /// The leader of group `pid` exited: the record stays while other members live.
    pub(crate) fn leader_exited(&mut self, pid: i32) {
        if let Some(r) = self.groups.get_mut(&pid) {
            r.leader_alive = false;
        }
        // Groups with no member left are forgotten (signal 0 probes without sending).
        let gone: Vec<i32> = self
            .groups
            .iter()
            .filter(|(pgid, r)| !r.leader_alive && killpg(Pid::from_raw(**pgid), None).is_err())
            .map(|(pgid, _)| *pgid)
            .collect();
        for pgid in gone {
            self.groups.remove(&pgid);
            self.append(&Line::Gone { gone: pgid });
        }
        self.compact();
    }

    /// Sends SIGKILL to every recorded group (the supervisor is going away without a stop).
    pub(crate) fn kill_all(&mut self) {
        for pgid in self.groups.keys() {
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
        }
        self.groups.clear();
        self.compact();
    }

    /// Removes the journal when no group is left, rewrites it when most lines are dead.
    fn compact(&mut self) {
        let Some(path) = self.path.clone() else {
            return;
        };
        if self.groups.is_empty() {
            self.journal = false;
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("Cannot remove {}: {e}", path.display());
            }
            self.lines = 0;
        } else if self.lines > COMPACT_AFTER && self.lines > 4 * (self.groups.len() + 1) {
            self.rewrite(path);
        }
    }
}

/// A journal line's bytes.
fn line(l: &Line) -> Vec<u8> {
    let mut v = serde_json::to_vec(l).unwrap_or_default();
    v.push(b'\n');
    v
}

/// The records of a journal (or of a whole-file record of earlier versions): the boot id
/// of its header (None without a readable one), the live records, and the number of lines
/// that could not be read.
fn read_records(data: &[u8]) -> (Option<String>, BTreeMap<i32, GroupRecord>, usize) {
    if let Ok(legacy) = serde_json::from_slice::<LegacyFile>(data) {
        return (Some(legacy.boot_id), legacy.groups, 0);
    }
    let (mut boot, mut groups, mut bad) = (None, BTreeMap::new(), 0);
    for raw in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Line>(raw) {
            Ok(Line::Header { boot_id }) if boot.is_none() => boot = Some(boot_id),
            Ok(Line::Header { .. }) => bad += 1,
            Ok(Line::Start { pgid, record }) => {
                groups.insert(pgid, record);
            }
            Ok(Line::Gone { gone }) => {
                groups.remove(&gone);
            }
            Err(_) => bad += 1,
        }
    }
    (boot, groups, bad)
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

/// Terminates what a previous supervisor of the container at `dir` left running (it was
/// killed): the groups it recorded in this boot, SIGTERM then SIGKILL after the service's
/// kill-delay; then anything still in the container's cgroup (an unreadable record, a
/// process that left its group). Returns the services whose processes were found.
pub fn terminate_recorded(dir: &Path) -> Vec<String> {
    let mut services = terminate_from_records(dir);
    let left = crate::cgroup::terminate_left(dir, crate::services::KILL_DELAY_DEFAULT);
    if left > 0 {
        services.push(format!("{left} unrecorded processes"));
    }
    services
}

/// The groups part of [`terminate_recorded`].
fn terminate_from_records(dir: &Path) -> Vec<String> {
    let path = dir.join(GROUPS_FILE);
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::error!(
                "Cannot read the process groups left by a previous run from {}: {e}",
                path.display()
            );
            crate::state::move_aside(&path);
            return Vec::new();
        }
    };
    let (boot, groups, bad) = read_records(&data);
    let Some(boot) = boot else {
        tracing::error!(
            "Cannot read the process groups left by a previous run: {} has no header; its {} records are not trusted",
            path.display(),
            groups.len()
        );
        crate::state::move_aside(&path);
        return Vec::new();
    };
    if bad > 0 {
        tracing::error!(
            "Skipped {bad} unreadable lines of {} (a torn or corrupt record); the other records are used",
            path.display()
        );
    }
    if boot != boot_id() {
        let _ = std::fs::remove_file(&path);
        return Vec::new();
    }
    let file = LegacyFile {
        boot_id: boot,
        groups,
    };
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
    // Removed only now: a supervisor killed while terminating finds them again.
    let _ = std::fs::remove_file(&path);
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
