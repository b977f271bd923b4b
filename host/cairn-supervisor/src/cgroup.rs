//! A cgroup (v2) per container, where the host lets the supervisor make one: every service
//! and exec command joins it between fork and exec, so whatever they start (even a daemon
//! that leaves the process group with `setsid`) is found again by the next supervisor of
//! the container, whatever happened to the group records.
//!
//! The cgroup is `cairn-<hash of the container directory>` beneath the supervisor's own
//! cgroup in the cgroup2 hierarchy (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` in a
//! hybrid layout), created when the first child starts and removed when the last group is
//! gone. No controller is enabled: it only tracks. Where there is no cgroup2 mount or it is
//! not writable, children stay where they are and the group records alone are used.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cgroup of one container, with its `cgroup.procs` open for children to join through.
pub(crate) struct Cgroup {
    dir: PathBuf,
    procs: OwnedFd,
}

/// FNV-1a: a hash that stays the same across builds and versions, so that a new supervisor
/// finds its predecessor's cgroup.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where the cgroup of the container at `container_dir` lives, if cgroup2 is mounted.
fn path_of(container_dir: &Path) -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // "<id> <parent> <dev> <root> <mount point> <options> [optional…] - <fstype> …"
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split(' ').next()? == "cgroup2")
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let dir = std::fs::canonicalize(container_dir).unwrap_or_else(|_| container_dir.into());
    let name = format!("cairn-{:016x}", fnv1a(dir.as_os_str().as_encoded_bytes()));
    Some(mount.join(own.trim_start_matches('/')).join(name))
}

/// What the container's cgroup accounts now: `memory.current` (with the memory
/// controller) and `cpu.stat`'s `usage_usec` (every cgroup2 group has it).
pub(crate) fn usage(container_dir: &Path) -> crate::ResourceUsage {
    let Some(dir) = path_of(container_dir) else {
        return crate::ResourceUsage::default();
    };
    let memory_bytes = std::fs::read_to_string(dir.join("memory.current"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let cpu_micros = std::fs::read_to_string(dir.join("cpu.stat"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())
        });
    crate::ResourceUsage {
        memory_bytes,
        cpu_micros,
    }
}

/// Pids listed in `<dir>/cgroup.procs`.
fn pids_in(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Sends `sig` to every process in the cgroup at `dir`; how many there were.
fn signal_all(dir: &Path, sig: nix::sys::signal::Signal) -> usize {
    let pids = pids_in(dir);
    for pid in &pids {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
    }
    pids.len()
}

/// Waits up to `limit` for the cgroup at `dir` to empty; whether it did.
fn wait_empty(dir: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    loop {
        if pids_in(dir).is_empty() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Cgroup {
    /// The container's cgroup, created if needed; None where the host has no writable
    /// cgroup2 (the reason is logged at debug level).
    pub(crate) fn create(container_dir: &Path) -> Option<Self> {
        let dir = path_of(container_dir)?;
        if let Err(e) = std::fs::create_dir(&dir)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            tracing::debug!("No cgroup for the container ({}): {e}", dir.display());
            return None;
        }
        let procs = nix::fcntl::open(
            &dir.join("cgroup.procs"),
            nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        );
        match procs {
            Ok(procs) => Some(Cgroup { dir, procs }),
            Err(e) => {
                tracing::debug!("No cgroup for the container ({}): {e}", dir.display());
                None
            }
        }
    }

    /// Makes the child of `cmd` join the cgroup between fork and exec. It may have switched
    /// users by then: the kernel checks the rights of whoever opened `cgroup.procs` (the
    /// supervisor; Linux 5.16 and the stable kernels it was backported to). A child that
    /// cannot join runs anyway, tracked by its group record.
    pub(crate) fn enter_in_child(&self, cmd: &mut std::process::Command) {
        let procs = self.procs.as_raw_fd();
        // SAFETY: one write(2) of a static buffer: async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                nix::libc::write(procs, c"0".as_ptr().cast(), 1);
                Ok(())
            });
        }
    }

    /// SIGKILLs everything in the cgroup and removes it once the killed processes left it
    /// (they do when reaped; waited for up to a second, then off the caller's thread).
    pub(crate) fn kill_and_remove(self) {
        let start = Instant::now();
        let mut cg = self;
        loop {
            signal_all(&cg.dir, nix::sys::signal::Signal::SIGKILL);
            cg = match cg.try_remove() {
                None => return,
                Some(cg) => cg,
            };
            if start.elapsed() >= Duration::from_secs(1) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let Cgroup { dir, procs } = cg;
        drop(procs);
        let _ = std::thread::Builder::new()
            .name("cairn-cgroup-rm".into())
            .spawn(move || {
                for _ in 0..100 {
                    std::thread::sleep(Duration::from_millis(50));
                    if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                        return;
                    }
                }
            });
    }

    /// Removes the cgroup if it is empty (a later child creates it again); if processes
    /// are still in it (one that left its process group outlives the groups), it is given
    /// back, to be killed with the rest when the supervisor goes.
    pub(crate) fn try_remove(self) -> Option<Self> {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => None,
            Err(_) if !self.dir.exists() => None,
            Err(_) => Some(self),
        }
    }
}

/// Terminates the processes a previous supervisor of the container left in its cgroup
/// (those its group records did not account for: an unreadable record, a daemon that left
/// its process group): SIGTERM, SIGKILL after `kill_delay`. Returns how many there were.
pub(crate) fn terminate_left(container_dir: &Path, kill_delay: Duration) -> usize {
    let Some(dir) = path_of(container_dir) else {
        return 0;
    };
    if !dir.is_dir() {
        return 0;
    }
    let n = signal_all(&dir, nix::sys::signal::Signal::SIGTERM);
    if n > 0 {
        tracing::warn!(
            "Terminating {n} processes left in the container's cgroup {} by a previous run",
            dir.display()
        );
        if !wait_empty(&dir, kill_delay) {
            let deadline = Instant::now() + Duration::from_secs(5);
            while signal_all(&dir, nix::sys::signal::Signal::SIGKILL) > 0
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    // Killed processes leave the cgroup once reaped (by their new parent): a moment.
    let start = Instant::now();
    while std::fs::remove_dir(&dir).is_err()
        && dir.exists()
        && start.elapsed() < Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    n
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hash_is_stable() {
        assert_eq!(super::fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
