//! Density: what idle units cost the host, at 100, 1,000 and 10,000 of them.
//!
//! One `cairn run` daemon in the default mode (shared containers) gets apps of the `pause`
//! example, one unit each with one `sleep` service, deployed four at a time through the
//! control socket. At each checkpoint (`CAIRN_BENCH_DENSITY`, default `100,1000,10000`),
//! once every unit is active with its service running and nothing queued, and the burst's
//! event threads have ended, it reports the daemon's RSS (the workloads are processes of
//! their own and not in it), anonymous memory, threads and descriptors, and the deploy
//! rate. Then it watches one update-status period (`--update-status-interval`,
//! `CAIRN_BENCH_UPDATE_STATUS`, default `60s`) and counts the units whose update-status
//! was handled within it, and the most threads seen meanwhile.
//!
//! Each unit holds two descriptors (its service's log pipe and its container's API socket;
//! Pebble has the same two): 10,000 units need more than the usual hard limit of open
//! files. The bench raises its own hard limit where it may (root with `CAP_SYS_RESOURCE`;
//! the daemon inherits it and raises its soft limit to it); otherwise the checkpoints stop
//! where the hard limit allows, saying so.
//!
//! `cargo bench -p cairn --bench density` (10,000 units take about ten minutes).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use serde_json::json;

mod common;
use common::{Daemon, memory_kib, mib, threads_and_fds};

/// Descriptors per unit, and what the daemon needs besides.
const FDS_PER_UNIT: u64 = 2;
const FDS_BESIDES: u64 = 256;

/// `cairn_tenant_events_total` of every app, by name.
fn events(d: &Daemon) -> std::collections::HashMap<String, u64> {
    let page = d.control(&json!({"op": "metrics"}));
    page.as_str()
        .unwrap_or("")
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("cairn_tenant_events_total{app=\"")?;
            let (app, n) = rest.split_once("\"} ")?;
            Some((app.to_string(), n.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Anonymous memory (KiB) of `pid`.
fn anonymous_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The checkpoints the descriptor limit allows, raising the hard limit first where the
/// process may.
fn allowed(mut checkpoints: Vec<usize>) -> Vec<usize> {
    let need = checkpoints.iter().max().copied().unwrap_or(0) as u64 * FDS_PER_UNIT + FDS_BESIDES;
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if hard < need && setrlimit(Resource::RLIMIT_NOFILE, soft.max(need), need).is_err() {
        let fit = ((hard.saturating_sub(FDS_BESIDES)) / FDS_PER_UNIT) as usize;
        // The largest checkpoint that fits stands in for those that do not.
        if checkpoints.iter().any(|&n| n > fit) && !checkpoints.contains(&fit) {
            checkpoints.push(fit);
        }
        println!(
            "the hard limit of open files is {hard} and cannot be raised (that needs CAP_SYS_RESOURCE): checkpoints above {fit} units skipped"
        );
        checkpoints.retain(|&n| n <= fit);
    }
    checkpoints
}

fn main() {
    let checkpoints: Vec<usize> = std::env::var("CAIRN_BENCH_DENSITY")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let checkpoints = allowed(checkpoints);
    let interval = std::env::var("CAIRN_BENCH_UPDATE_STATUS").unwrap_or_else(|_| "60s".into());
    let period = Duration::from_secs_f64(
        interval
            .trim_end_matches('s')
            .parse::<f64>()
            .expect("CAIRN_BENCH_UPDATE_STATUS: seconds, such as 60s"),
    );
    let base = std::env::temp_dir().join(format!("cairn-bench-density-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let pause = Path::new(cairn_test_programs::EXAMPLES_DIR).join("pause");

    let d = Daemon::start(&base, "density", &["--update-status-interval", &interval]);
    let pid = d.pid();
    let (rss0, _, _) = memory_kib(pid);
    let anon0 = anonymous_kib(pid);
    let (threads0, fds0) = threads_and_fds(pid);
    println!("idle `pause` units (one service each), default mode, update-status every {interval}");
    println!(
        "empty daemon: RSS {:.1} MiB, anonymous {:.1} MiB, {threads0} threads, {fds0} descriptors",
        mib(rss0),
        mib(anon0)
    );
    println!(
        "{:>6} {:>10} {:>9} {:>9} {:>10} {:>8} {:>7} {:>8} {:>10} {:>14} {:>9}",
        "units",
        "deploy ms",
        "RSS MiB",
        "KiB/unit",
        "anon MiB",
        "KiB/unit",
        "threads",
        "fds/unit",
        "ready s",
        "update-status",
        "max thr."
    );
    let mut deployed = 0;
    for &n in &checkpoints {
        let start = Instant::now();
        d.deploy_many(&pause, "p", deployed, n);
        let per_deploy = start.elapsed().as_secs_f64() * 1e3 / (n - deployed).max(1) as f64;
        deployed = n;
        loop {
            let idle = d.idle_units();
            if idle == n {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(3600),
                "only {idle} of {n} units became idle: see {}",
                base.join("density.log").display()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        let ready = start.elapsed();
        // The burst's event threads end after 10 s without work.
        std::thread::sleep(Duration::from_secs(12));
        let (rss, _, _) = memory_kib(pid);
        let anon = anonymous_kib(pid);
        let (threads, fds) = threads_and_fds(pid);

        // One update-status period: every unit handles one.
        let before = events(&d);
        let watch = Instant::now();
        let mut max_threads = threads;
        while watch.elapsed() < period + Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(500));
            max_threads = max_threads.max(threads_and_fds(pid).0);
        }
        let after = events(&d);
        let ticked = after
            .iter()
            .filter(|(app, n)| before.get(*app).is_some_and(|b| *n > b))
            .count();
        println!(
            "{n:>6} {per_deploy:>10.1} {:>9.1} {:>9.1} {:>10.1} {:>8.1} {threads:>7} {:>8.2} {:>10.1} {:>14} {max_threads:>9}",
            mib(rss),
            rss.saturating_sub(rss0) as f64 / n as f64,
            mib(anon),
            anon.saturating_sub(anon0) as f64 / n as f64,
            fds.saturating_sub(fds0) as f64 / n as f64,
            ready.as_secs_f64(),
            format!("{ticked}/{n}"),
        );
    }
    let t = Instant::now();
    drop(d);
    println!(
        "daemon stopped (every service ended) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&base);
}
