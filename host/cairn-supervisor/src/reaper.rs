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

use std::collections::HashMap;
use std::process::{Child, Command};
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
    let mut waiting = reg.waiting.lock().unwrap();
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

/// Starts `cmd` and registers its pid, returning the child and a receiver for its exit code.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Child, oneshot::Receiver<ExitCode>)> {
    let reg = registry();
    let mut waiting = reg.waiting.lock().unwrap();
    let child = cmd.spawn()?;
    let (tx, rx) = oneshot::channel();
    waiting.insert(child.id() as i32, tx);
    Ok((child, rx))
}
