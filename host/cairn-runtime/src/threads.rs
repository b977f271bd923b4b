//! Event threads: every event's future is driven on a pooled OS thread of its own, and a
//! thread whose event has burnt more than [`DEMOTE_AFTER`] of CPU is moved to the
//! `SCHED_IDLE` policy for the rest of that event.
//!
//! Why a thread per running event: the guest's computing then competes with other units'
//! events under the OS scheduler, not for the runtime's few worker threads. Why demotion:
//! on a shared machine, a guest that spins (or floods cheap host calls) until its deadline
//! took half of a 2-core host and slowed a calm neighbour's config-changed 1.9×. As a
//! `SCHED_IDLE` thread it runs only when no other thread wants the CPU, and a waking thread
//! preempts it at once (nice 15 only shrank its share: a neighbour waking behind it still
//! waited for its slice, 1.6×); its deadline still ends it. A well-behaved event needs far
//! less than [`DEMOTE_AFTER`] and never notices.
//!
//! A demoted thread is put back to the normal policy before it takes the next event; where
//! the process may not do that (no `CAP_SYS_NICE` and a low `RLIMIT_NICE`), the thread ends
//! instead of returning to the pool, so no later event inherits the penalty.
//! Idle threads end after [`IDLE`].

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use cairn_supervisor::share::thread_cpu;
use nix::libc;

/// CPU an event may use at full priority (a calm event of the examples uses < 1 ms).
pub const DEMOTE_AFTER: Duration = Duration::from_millis(5);
/// How long an idle event thread waits for work before it ends (as long as tokio keeps a
/// blocking thread: 1,000 units deployed at once left 540 threads behind them).
const IDLE: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// The idle threads (a number of each, for leaving the list, and its job sender), most
/// recently idle last (it is the warmest).
static IDLE_THREADS: Mutex<Vec<(u64, SyncSender<Job>)>> = Mutex::new(Vec::new());
/// The number of the next event thread.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// On an event thread running an event: its CPU clock when the event began and
    /// whether it was demoted.
    static EVENT: Cell<Option<(Duration, bool)>> = const { Cell::new(None) };
}

/// Sets the calling thread's scheduling policy (Linux: pid 0 is the calling thread), its
/// nice value kept.
fn set_policy(policy: libc::c_int) -> bool {
    // Zeroed (priority 0): musl's sched_param has fields glibc's lacks.
    // SAFETY: an all-zero sched_param is valid; the call affects only the calling thread.
    unsafe {
        let param: libc::sched_param = std::mem::zeroed();
        libc::sched_setscheduler(0, policy, &param) == 0
    }
}

/// The calling thread's scheduling policy.
fn policy() -> libc::c_int {
    // SAFETY: no pointers; reads the calling thread's policy.
    unsafe { libc::sched_getscheduler(0) }
}

/// Called by the running event now and then (the engine's epoch callback): demotes the
/// thread once the event's CPU passed [`DEMOTE_AFTER`]. Cheap (one clock read) and a no-op
/// off event threads.
pub fn charge() {
    EVENT.with(|e| {
        if let Some((start, false)) = e.get()
            && thread_cpu().saturating_sub(start) > DEMOTE_AFTER
        {
            let demoted = set_policy(libc::SCHED_IDLE);
            tracing::debug!(demoted, "event past {DEMOTE_AFTER:?} of CPU");
            e.set(Some((start, true)));
        }
    });
}

/// Runs `job` on an event thread and returns its result; `None` if the thread died with it
/// (a panic in the job).
pub async fn run<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut job: Job = Box::new(move || {
        let _ = tx.send(job());
    });
    // Handed over under the pool's lock, which an idle thread also takes to leave the
    // pool: a thread still listed is still listening (and its channel, of one, is empty).
    let unsent = {
        let mut idle = IDLE_THREADS.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match idle.pop() {
                Some((_, thread)) => match thread.try_send(job) {
                    Ok(()) => break None,
                    Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => job = j,
                },
                None => break Some(job),
            }
        }
    };
    if let Some(job) = unsent
        && let Err(e) = spawn(job)
    {
        tracing::error!("cannot start an event thread: {e}");
        return None;
    }
    rx.await.ok()
}

/// Starts a new event thread with `first` as its first job.
fn spawn(first: Job) -> std::io::Result<()> {
    let (tx, rx) = sync_channel::<Job>(1);
    std::thread::Builder::new()
        .name("cairn-event".into())
        .spawn(move || event_thread(first, tx, rx, NEXT_THREAD.fetch_add(1, Ordering::Relaxed)))
        .map(drop)
}

fn event_thread(first: Job, me: SyncSender<Job>, jobs: Receiver<Job>, id: u64) {
    let home = policy();
    let mut job = first;
    loop {
        EVENT.with(|e| e.set(Some((thread_cpu(), false))));
        job();
        let demoted = EVENT.with(|e| e.replace(None)).is_some_and(|(_, d)| d);
        if demoted && !set_policy(home) {
            // Cannot be raised again: end rather than hand the next event a low priority.
            return;
        }
        IDLE_THREADS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, me.clone()));
        match jobs.recv_timeout(IDLE) {
            Ok(next) => job = next,
            Err(_) => {
                // Idle too long: leave the pool. A job handed over before this thread left
                // it (under the same lock) is already in the channel.
                let mut idle = IDLE_THREADS.lock().unwrap_or_else(|e| e.into_inner());
                idle.retain(|(other, _)| *other != id);
                drop(idle);
                if let Ok(next) = jobs.try_recv() {
                    job = next;
                    continue;
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spins on the calling thread for `cpu` of its CPU time, charging as an event would.
    fn spin(cpu: Duration) {
        let start = thread_cpu();
        while thread_cpu() - start < cpu {
            charge();
        }
    }

    #[tokio::test]
    async fn an_event_past_its_cpu_allowance_runs_idle_and_the_next_one_does_not() {
        let spun = run(|| {
            spin(DEMOTE_AFTER + Duration::from_millis(5));
            policy()
        })
        .await
        .unwrap();
        let calm = run(policy).await.unwrap();
        assert_eq!(spun, libc::SCHED_IDLE);
        assert_eq!(
            calm,
            libc::SCHED_OTHER,
            "the next event ran at the normal policy"
        );
    }

    #[tokio::test]
    async fn a_short_event_keeps_its_priority() {
        let during = run(|| {
            spin(Duration::from_millis(1));
            policy()
        })
        .await
        .unwrap();
        assert_eq!(during, libc::SCHED_OTHER);
    }

    #[tokio::test]
    async fn a_panicking_job_gives_none_and_the_pool_goes_on() {
        assert!(run(|| panic!("boom")).await.is_none());
        assert_eq!(run(|| 7).await, Some(7));
    }
}
