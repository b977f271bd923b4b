//! Reaps the supervisor's child processes and hands each exit status to whoever started it.
//!
//! One reaper per host process, on its own thread with a small tokio runtime listening for
//! `SIGCHLD`, so it outlives any single caller's runtime. Pids started through [`spawn`]
//! are waited for and their exit codes delivered. Spawning holds the registry lock until the
//! pid is recorded, so an exit can never be reaped before it is registered.
//!
//! A daemon that owns its process tree calls [`become_subreaper`]: the process becomes a
//! child subreaper (orphaned grandchildren of services are re-parented to it, as to Pebble)
//! and every other exited child is reaped too, so no zombie is left. Without it, children
//! the reaper did not start (a test's `Command::output`) are left to their owners.
//!
//! Children are started by one spawner thread that lives as long as the process ([`spawn`],
//! without a fork: `spawn::Command`),
//! each with `PR_SET_PDEATHSIG` = SIGKILL, so that none outlives a supervisor process that
//! dies before it could stop or record them.

use crate::spawn::{Child, Command};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// Exit code a process reports: its status, or 128 + signal number when a signal killed it.
pub type ExitCode = i32;

/// Whether children the reaper did not start are reaped too.
static REAP_ALL: AtomicBool = AtomicBool::new(false);

/// Makes this process a child subreaper and reaps every exited child from now on.
pub fn become_subreaper() -> std::io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(std::io::Error::from)?;
    REAP_ALL.store(true, Ordering::Relaxed);
    registry();
    Ok(())
}

struct Registry {
    waiting: Mutex<HashMap<i32, oneshot::Sender<ExitCode>>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        std::thread::Builder::new()
            .name("cairn-reaper".into())
            .spawn(reaper_thread)
            .expect("cannot start reaper thread");
        Registry {
            waiting: Mutex::new(HashMap::new()),
        }
    })
}

fn reaper_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("cannot build reaper runtime");
    rt.block_on(async {
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
            .expect("cannot listen for SIGCHLD");
        loop {
            reap_registered();
            // A missed or coalesced signal is caught by the periodic sweep.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), sigchld.recv()).await;
        }
    });
}

fn reap_registered() {
    let reg = registry();
    let mut waiting = reg.waiting.lock().unwrap_or_else(|e| e.into_inner());
    let mut done = Vec::new();
    for &pid in waiting.keys() {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => done.push((pid, code)),
            Ok(WaitStatus::Signaled(_, sig, _)) => done.push((pid, 128 + sig as i32)),
            Ok(_) => {}
            Err(nix::errno::Errno::ECHILD) => done.push((pid, -1)),
            Err(_) => {}
        }
    }
    for (pid, code) in done {
        if let Some(tx) = waiting.remove(&pid) {
            let _ = tx.send(code);
        }
    }
    if REAP_ALL.load(Ordering::Relaxed) {
        reap_orphans(&waiting);
    }
}

/// Reaps exited children nobody registered (orphans re-parented to a subreaper). Peeks
/// first with `WNOWAIT`, so a registered child's status is never consumed here.
fn reap_orphans(waiting: &HashMap<i32, oneshot::Sender<ExitCode>>) {
    use nix::sys::wait::{Id, waitid};
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(status) => match status.pid() {
                Some(p) => p,
                None => return,
            },
            Err(_) => return,
        };
        if waiting.contains_key(&pid.as_raw()) {
            // Registered: handled on the next pass with its exit code.
            return;
        }
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
    }
}

/// A spawn to run on the spawner thread.
type Job = Box<dyn FnOnce() + Send>;

/// The spawner thread's queue. Every child is started by this one thread, which lives as
/// long as the process: `PR_SET_PDEATHSIG` fires when the thread that started a child
/// exits, so starting one on a runtime's worker or blocking-pool thread (which exit when idle
/// or at shutdown) would kill children that should live on.
fn spawner() -> &'static std::sync::mpsc::Sender<Job> {
    static SPAWNER: OnceLock<std::sync::mpsc::Sender<Job>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cairn-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("cannot start spawner thread");
        tx
    })
}

/// Starts `cmd` and registers its pid, returning the child and a receiver for its exit
/// code. The child gets SIGKILL from the kernel if this process dies before it is stopped
/// (`PR_SET_PDEATHSIG`, set last before exec, so after any user switch, which would clear
/// it), and never runs its command if this process died before that was set: a crash of the
/// supervisor cannot leave a process it started behind unrecorded.
pub fn spawn(cmd: Command) -> std::io::Result<(Child, oneshot::Receiver<ExitCode>)> {
    spawn_in(cmd, None, None)
}

/// [`spawn`] into the pid namespace of a strict container (`namespaces.rs`) when given,
/// the spawner's CPU for the start charged to `share` when given.
pub(crate) fn spawn_in(
    mut cmd: Command,
    ns: Option<std::sync::Arc<crate::namespaces::Namespaces>>,
    share: Option<std::sync::Arc<crate::share::CpuShare>>,
) -> std::io::Result<(Child, oneshot::Receiver<ExitCode>)> {
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: prctl and getppid are async-signal-safe and touch only the child's own state.
    unsafe {
        cmd.pre_exec(move || {
            if nix::libc::prctl(
                nix::libc::PR_SET_PDEATHSIG,
                nix::libc::SIGKILL as nix::libc::c_ulong,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died before the signal was armed: the child was re-parented.
            // (A parent outside the child's pid namespace reads as 0.)
            let ppid = nix::libc::getppid();
            if ppid != parent && ppid != 0 {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let reg = registry();
        let mut waiting = reg.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let spawned =
            crate::share::charged(share.as_deref(), crate::share::START_TOLL, || match &ns {
                Some(ns) => {
                    crate::namespaces::fork_in_pid_ns(ns.pid_ns(), || cmd.spawn()).and_then(|r| r)
                }
                None => cmd.spawn(),
            });
        let result = spawned.map(|child| {
            let (exit_tx, exit_rx) = oneshot::channel();
            waiting.insert(child.id() as i32, exit_tx);
            (child, exit_rx)
        });
        drop(waiting);
        // The command (and the child's ends of its pipes) is closed before the caller hears.
        drop(cmd);
        let _ = tx.send(result);
    });
    let gone = || std::io::Error::other("the spawner thread is gone");
    spawner().send(job).map_err(|_| gone())?;
    off_worker(|| rx.recv()).map_err(|_| gone())?
}

/// Runs `f`, which blocks (waiting for the spawner thread), without holding up the tokio
/// worker it may be called on: the runtime hands the worker's other tasks to another thread
/// meanwhile. A start takes a millisecond or more (more while the child moves into
/// its cgroups), and services, execs and exec checks are started from async tasks: on a
/// worker, one tenant's exec flood held up every other task of the daemon, the operator's
/// `cairn status` and the other tenants' events included.
pub(crate) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs `f` on the spawner thread with the registry locked, for forks that must happen
/// there (a strict container's init); `f` registers a pid it forked with the function it is
/// given, which returns the receiver of that pid's exit code.
pub(crate) fn on_spawner<T: Send + 'static>(
    f: impl FnOnce(&mut dyn FnMut(i32) -> oneshot::Receiver<ExitCode>) -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let job: Job = Box::new(move || {
        let reg = registry();
        let mut waiting = reg.waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut register = |pid: i32| {
            let (exit_tx, exit_rx) = oneshot::channel();
            waiting.insert(pid, exit_tx);
            exit_rx
        };
        let _ = tx.send(f(&mut register));
    });
    let gone = || std::io::Error::other("the spawner thread is gone");
    spawner().send(job).map_err(|_| gone())?;
    off_worker(|| rx.recv()).map_err(|_| gone())
}

#[cfg(test)]
mod tests {
    use crate::spawn::Command;
    use std::time::{Duration, Instant};

    /// A spawn waits for its child to exec; one that takes long (here a child sleeping
    /// before exec) leaves the runtime's only worker free for other tasks meanwhile.
    #[test]
    fn a_slow_spawn_does_not_hold_up_the_runtime_worker() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let spawning = tokio::spawn(async {
                let mut cmd = Command::new("true");
                // SAFETY: nanosleep is async-signal-safe.
                unsafe {
                    cmd.pre_exec(|| {
                        std::thread::sleep(Duration::from_millis(500));
                        Ok(())
                    });
                }
                let (_child, exit) = super::spawn(cmd).unwrap();
                let _ = exit.await;
            });
            // Well inside the spawn (this thread is not the worker; the runtime's timer may
            // be waiting for the worker too).
            std::thread::sleep(Duration::from_millis(100));
            let start = Instant::now();
            tokio::spawn(async {}).await.unwrap();
            let waited = start.elapsed();
            spawning.await.unwrap();
            assert!(
                waited < Duration::from_millis(250),
                "another task waited {waited:?} for the worker"
            );
        });
    }

    /// A child started from a thread that then exits keeps running: only the death of the
    /// whole supervisor process kills it.
    #[test]
    fn a_child_outlives_the_thread_that_asked_for_it() {
        let (child, _exit) = std::thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("1011");
            super::spawn(cmd).unwrap()
        })
        .join()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let pid = child.id() as i32;
        assert!(
            crate::groups::proc_stat(pid).is_some(),
            "child died with its thread"
        );
        let _ = child.kill();
    }
}
