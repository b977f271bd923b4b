//! One supervisor per container directory: a POSIX record lock (`F_SETLK`) on
//! `.cairn-supervisor.lock` in it, held while the supervisor lives.
//!
//! A record lock, like the daemon's `cairn.lock` and unlike `flock`, belongs to the process
//! and is not inherited by the children it forks, so a killed supervisor's last children
//! cannot keep the next one out. Record locks do not conflict within one process, and
//! closing any descriptor of the file drops the process's lock: the directories this
//! process holds are also kept in a set (by device and inode), consulted before the file is
//! opened, so a second open in the same process is refused too and never touches the lock.
//! A supervisor is released when the last of its tasks lets go of it, a moment after its
//! owner dropped it: an open in the same process waits up to [`WAIT_IN_PROCESS`] for that.
//!
//! A host whose own lock already covers its containers' directories (the daemon's lock on
//! its state directory) opens them without the file: the set alone, no descriptor per
//! container. [`held_elsewhere`] is how a standalone supervisor sees such a host.

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// File name of the lock in a container directory.
pub const LOCK_FILE: &str = ".cairn-supervisor.lock";

/// How long an open waits for a supervisor of the same directory in this process to be
/// released.
pub const WAIT_IN_PROCESS: Duration = Duration::from_secs(2);

/// The lock files this process holds, by (device, inode), and the signal of a release.
type Held = (Mutex<HashSet<(u64, u64)>>, Condvar);

/// The process's [`Held`].
fn held() -> &'static Held {
    static HELD: OnceLock<Held> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

/// A container directory locked for one supervisor; unlocked when dropped.
pub(crate) struct DirLock {
    /// The open lock file (None once closed).
    file: Option<std::fs::File>,
    id: (u64, u64),
}

impl DirLock {
    /// Locks the container directory `dir` (with its lock file when `file`); the error says
    /// who holds it.
    pub(crate) fn take(dir: &Path, file: bool) -> Result<Self, String> {
        let path = dir.join(LOCK_FILE);
        let (held, released) = held();
        let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
        let m =
            std::fs::metadata(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        let id = (m.dev(), m.ino());
        // Checked before opening: closing a descriptor of the file would drop our lock.
        let deadline = Instant::now() + WAIT_IN_PROCESS;
        while held.contains(&id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "{} is in use by another supervisor of this process",
                    dir.display()
                ));
            }
            held = released
                .wait_timeout(held, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let file = if file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            if let Some(pid) =
                lock_or_holder(&file).map_err(|e| format!("cannot lock {}: {e}", path.display()))?
            {
                return Err(format!(
                    "{} is in use by another supervisor (pid {pid})",
                    dir.display()
                ));
            }
            Some(file)
        } else {
            None
        };
        held.insert(id);
        Ok(DirLock { file, id })
    }
}

/// A record lock of `kind` (`F_WRLCK`, `F_RDLCK`) over the whole of a file.
fn whole_file(kind: nix::libc::c_int) -> nix::libc::flock {
    nix::libc::flock {
        l_type: kind as _,
        l_whence: nix::libc::SEEK_SET as _,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Write-locks all of `file`: `None` once locked, else the pid of the process holding it.
fn lock_or_holder(file: &std::fs::File) -> Result<Option<i32>, nix::Error> {
    let mut whole_file = whole_file(nix::libc::F_WRLCK);
    match nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETLK(&whole_file)) {
        Ok(_) => Ok(None),
        Err(e) => {
            nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_GETLK(&mut whole_file))?;
            if i32::from(whole_file.l_type) == nix::libc::F_UNLCK {
                return Err(e);
            }
            Ok(Some(whole_file.l_pid))
        }
    }
}

/// Whether another process holds a record lock on `file` (a daemon's `cairn.lock`, say),
/// and its pid; the file is only looked at.
pub fn held_elsewhere(file: &Path) -> Option<i32> {
    let f = std::fs::File::open(file).ok()?;
    let mut whole_file = whole_file(nix::libc::F_RDLCK);
    nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETLK(&mut whole_file)).ok()?;
    (i32::from(whole_file.l_type) != nix::libc::F_UNLCK).then_some(whole_file.l_pid)
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let (held, released) = held();
        let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
        // Closed (releasing the record lock) before another open in this process can
        // take the directory and lock the file again, which this close would undo.
        drop(self.file.take());
        held.remove(&self.id);
        released.notify_all();
    }
}
