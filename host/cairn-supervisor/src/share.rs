//! A tenant's share of the host's own CPU: what the host spends on its behalf on threads
//! every tenant shares.
//!
//! Charged, by the CPU clock of the thread doing the work: the Pebble API's handling of a
//! container's connections, accepting them included (a workload can flood its own socket
//! with refused layers, notices, services); blocking work done for the tenant (a layer
//! parsed, a plan rendered, a charm's file call); the start of every process its containers
//! start, with a [`FORK_TOLL`]; and its durable writes, with a [`WRITE_TOLL`] each instead
//! of their wall time (which a busy disk sets). Unpaid, a flood of refused layers through
//! the socket slowed a calm neighbour's events 1.8× and a charm starting execs in a loop
//! 2.9×. A [`CpuShare`] is a bucket that refills at the share's rate up to a burst; work
//! that finds it in debt waits until the debt is paid off. A well-behaved tenant, using far
//! less than its share, never waits.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::LimitHits;

/// What starting a process costs the host beyond the spawner thread's own CPU, charged
/// with it: the child's work before it joins its container's cgroup (its namespaces and
/// mounts, the cgroup moves, the exec) is the host's. The child shares the daemon's memory
/// until it execs (`spawn`), so the other threads pay nothing for it; starting `/bin/true`
/// from a 200 MiB daemon takes ~0.9 ms end to end (`cargo bench --bench spawn`).
pub const START_TOLL: Duration = Duration::from_millis(1);

/// What a durable write (a state file or record, written, fsynced and renamed) costs the
/// host beyond the writer's CPU, charged with it: the disk's time is every tenant's, but
/// its wall time is not charged, or a well-behaved tenant would pay for a busy disk.
pub const WRITE_TOLL: Duration = Duration::from_millis(1);

/// The CPU a tenant's work may take in one go before its share's rate applies.
const BURST: Duration = Duration::from_millis(25);

/// One tenant's share of the host's CPU (shared by its containers and their sockets).
#[derive(Debug)]
pub struct CpuShare {
    /// Thousandths of a CPU; 0 for no bound.
    millicores: AtomicI64,
    bucket: Mutex<Bucket>,
    /// Held by the one waiter sleeping off the debt; the others queue on it in order (a
    /// timer each, all firing together, cost a flood of 500 waiting requests more CPU than
    /// their work).
    gate: tokio::sync::Mutex<()>,
    /// Where waits are counted (`host-cpu`).
    hits: Option<Arc<LimitHits>>,
}

#[derive(Debug)]
struct Bucket {
    /// CPU time left, in nanoseconds; negative when in debt.
    balance: i128,
    updated: Instant,
}

impl CpuShare {
    /// A share of `millicores` thousandths of a CPU (`None`: unbounded), counting waits in
    /// `hits`.
    pub fn new(millicores: Option<u64>, hits: Option<Arc<LimitHits>>) -> Arc<Self> {
        Arc::new(CpuShare {
            millicores: AtomicI64::new(clamp_millicores(millicores)),
            bucket: Mutex::new(Bucket {
                balance: BURST.as_nanos() as i128,
                updated: Instant::now(),
            }),
            gate: tokio::sync::Mutex::new(()),
            hits,
        })
    }

    /// Changes the share's rate (the operator changed the tenant's budget).
    pub fn set_millicores(&self, millicores: Option<u64>) {
        self.millicores
            .store(clamp_millicores(millicores), Ordering::Relaxed);
    }

    fn rate(&self) -> i128 {
        i128::from(self.millicores.load(Ordering::Relaxed))
    }

    /// The balance now, after the refill since the last look.
    fn refill(&self, b: &mut Bucket) -> i128 {
        let now = Instant::now();
        let earned = now.duration_since(b.updated).as_nanos() as i128 * self.rate() / 1000;
        b.balance = (b.balance + earned).min(BURST.as_nanos() as i128);
        b.updated = now;
        b.balance
    }

    /// Charges `cpu` to the share.
    pub fn charge(&self, cpu: Duration) {
        if self.rate() == 0 {
            return;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut b);
        b.balance -= cpu.as_nanos() as i128;
    }

    /// How long a request must wait now for the debt to be paid off (zero: none).
    fn debt_wait(&self) -> Duration {
        if self.rate() == 0 {
            return Duration::ZERO;
        }
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let balance = self.refill(&mut b);
        if balance >= 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(u64::try_from(-balance * 1000 / self.rate()).unwrap_or(u64::MAX))
        }
    }

    /// Waits until the share is out of debt (counting one `host-cpu` hit if it had to).
    pub async fn wait(&self) {
        if self.debt_wait().is_zero() {
            return;
        }
        if let Some(h) = &self.hits {
            h.hit("host-cpu");
        }
        let _turn = self.gate.lock().await;
        loop {
            let wait = self.debt_wait();
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// A future whose polls are charged to a [`CpuShare`] (if any) by the thread's CPU clock:
/// what the API serves a connection in.
pub struct Charged<F> {
    inner: Pin<Box<F>>,
    share: Option<Arc<CpuShare>>,
}

impl<F> Charged<F> {
    /// `inner`, charged to `share`.
    pub fn new(inner: F, share: Option<Arc<CpuShare>>) -> Self {
        Charged {
            inner: Box::pin(inner),
            share,
        }
    }
}

impl<F: Future> Future for Charged<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        charged(this.share.as_deref(), Duration::ZERO, || {
            this.inner.as_mut().poll(cx)
        })
    }
}

/// Runs `work` on the calling thread and charges its CPU for it, plus `toll`, to `share`
/// (when there is one): the one measure of everything charged to a share.
pub fn charged<T>(share: Option<&CpuShare>, toll: Duration, work: impl FnOnce() -> T) -> T {
    let Some(share) = share else {
        return work();
    };
    let start = thread_cpu();
    let done = work();
    share.charge(thread_cpu().saturating_sub(start) + toll);
    done
}

/// Runs `work` on tokio's blocking pool with the thread's CPU for it charged to `share`
/// (work done for a tenant off the thread that serves it: a layer parsed, a plan rendered,
/// a file written).
pub async fn spawn_blocking_charged<T: Send + 'static>(
    share: Option<Arc<CpuShare>>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    tokio::task::spawn_blocking(move || charged(share.as_deref(), Duration::ZERO, work)).await
}

/// A rate of at least one thousandth of a CPU, or 0 for none.
fn clamp_millicores(millicores: Option<u64>) -> i64 {
    millicores.map_or(0, |m| i64::try_from(m.max(1)).unwrap_or(i64::MAX))
}

/// The calling thread's CPU time (what the work charged to a share is measured by).
pub fn thread_cpu() -> Duration {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to write to; the clock id is a constant.
    unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_share_in_debt_makes_the_next_request_wait_until_it_is_paid_off() {
        let hits = Arc::new(LimitHits::default());
        let share = CpuShare::new(Some(100), Some(hits.clone()));
        // Within the burst: no wait.
        share.charge(Duration::from_millis(25) - Duration::from_nanos(1));
        let t = Instant::now();
        share.wait().await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(hits.snapshot().get("host-cpu"), None);
        // 50 ms past the burst at a tenth of a CPU: half a second to pay off, 100 ms of it
        // already passed.
        share.charge(Duration::from_millis(50) + Duration::from_nanos(1));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(share.debt_wait(), Duration::from_millis(400));
        let t = Instant::now();
        share.wait().await;
        assert_eq!(t.elapsed(), Duration::from_millis(400));
        assert_eq!(hits.snapshot().get("host-cpu"), Some(&1));
    }

    #[tokio::test]
    async fn an_unbounded_share_never_waits() {
        let share = CpuShare::new(None, None);
        share.charge(Duration::from_secs(10));
        assert_eq!(share.debt_wait(), Duration::ZERO);
        share.set_millicores(Some(1000));
        share.charge(Duration::from_millis(300));
        assert!(share.debt_wait() > Duration::from_millis(150));
    }

    #[tokio::test]
    async fn a_charged_future_pays_for_the_cpu_it_burns() {
        let share = CpuShare::new(Some(1000), None);
        Charged::new(
            async {
                let start = thread_cpu();
                while thread_cpu() - start < Duration::from_millis(150) {}
            },
            Some(share.clone()),
        )
        .await;
        // 150 ms burnt against a 25 ms burst: about 125 ms of debt at one CPU.
        let wait = share.debt_wait();
        assert!(
            wait > Duration::from_millis(95) && wait < Duration::from_millis(135),
            "{wait:?}"
        );
    }
}
