//! The cost of tenancy: dispatch and exec round trips with and without strict mode, side by
//! side, then the host's memory with many idle units in strict mode.
//!
//! One run starts a `cairn run` daemon per mode, each on a state directory of its own:
//! `shared` (the default: the host's filesystem), `isolated` (`--containers isolated`: a
//! root per container) and `strict` (`--tenancy strict`: isolated plus user, pid, IPC and
//! UTS namespaces, an unprivileged id range and a minimal capability set). The budgets are
//! the defaults in every mode. Each deploys the `misbehave` test charm, then, rounds
//! alternating between the modes so that the machine's drift hits them alike:
//! - **dispatch**: a config change sent on the control socket until the unit shows it
//!   handled with nothing queued (as the hostile suite's co-tenant measures it), and the
//!   per-event dispatch time from the daemon's metrics (`cairn_tenant_dispatch_seconds_total`
//!   over `cairn_tenant_events_total`);
//! - **exec**: `echo hi` through the unit's Pebble socket (`POST /v1/exec`, websockets, the
//!   command, its output and its change's exit code).
//!
//! Then a fresh strict daemon gets `CAIRN_BENCH_UNITS` (default 1000) apps of the `pause`
//! example (one service each, so each container has its namespaces and pid-namespace init)
//! and reports the daemon's memory, threads and descriptors before and after, and the
//! memory of the processes the units keep (Cairn's per-container inits apart from the
//! workloads).
//!
//! `cargo bench -p cairn --bench tenancy`; the isolated and strict parts need root (they
//! are skipped, saying so, without it). `CAIRN_BENCH_ROUNDS` sets the rounds per
//! measurement (default 200). `CAIRN_BENCH_HOST_CPU` is every daemon's `host-cpu` budget
//! (default `unlimited`: the rounds are back to back, which the default budget of `100m`
//! holds to about 20 execs a second, by design; set `100m` to see it).

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_api::{Client, ExecOptions};
use serde_json::json;

mod common;
use common::{CAIRN, Daemon, env_usize, memory_kib, mib, threads_and_fds};

fn quantiles(v: &[Duration]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (p(0.5), p(0.99))
}

/// Prints one measurement for every mode, and each mode's ratio to the baseline (isolated
/// when it ran, else shared).
fn side_by_side(what: &str, modes: &[&Daemon], samples: &[Vec<Duration>]) {
    println!("{what} ({} rounds each, alternating):", samples[0].len());
    let base = modes
        .iter()
        .position(|d| d.label == "isolated")
        .unwrap_or(0);
    let (bm, bp) = quantiles(&samples[base]);
    for (d, s) in modes.iter().zip(samples) {
        let (m, p) = quantiles(s);
        let ratio = if d.label == modes[base].label {
            String::new()
        } else {
            format!(
                "  ({}/{}: median {:.2}x, p99 {:.2}x)",
                d.label,
                modes[base].label,
                m / bm,
                p / bp
            )
        };
        println!("  {:<9} median {m:7.2} ms  p99 {p:7.2} ms{ratio}", d.label);
    }
}

/// One config change of `mis`, timed until the unit shows it handled.
fn dispatch_round(d: &Daemon, round: u64) -> Duration {
    let start = Instant::now();
    d.control(&json!({
        "op": "config", "app": "mis", "set": [["label", format!("round-{round}")]], "reset": [],
    }));
    // `handled 1` after deploy, one more per config change.
    d.wait_shown(
        "mis/0",
        &format!("handled {}", round + 2),
        Duration::from_secs(60),
    );
    start.elapsed()
}

/// One `echo hi` through the Pebble API, timed.
fn exec_round(rt: &tokio::runtime::Runtime, client: &Client) -> Duration {
    let opts = ExecOptions {
        command: vec!["echo".into(), "hi".into()],
        ..ExecOptions::default()
    };
    let start = Instant::now();
    let out = rt.block_on(client.exec(&opts, b"")).unwrap();
    let took = start.elapsed();
    assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"hi\n"[..]));
    took
}

/// Every live descendant of `root`, with whether it runs the `cairn-host` binary (a strict
/// container's init is `cairn-host` started afresh; the rest are workloads).
fn descendants(root: u32) -> Vec<(u32, bool)> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or("");
        let mut f = after.split_whitespace();
        let state = f.next().unwrap_or("Z");
        let ppid = f.next().and_then(|p| p.parse::<u32>().ok()).unwrap_or(0);
        if state != "Z" {
            parent.insert(pid, ppid);
        }
    }
    // Inits are started from the host's binary, beside `cairn`.
    let host = Path::new(CAIRN).with_file_name("cairn-host");
    let cairn = std::fs::canonicalize(&host).unwrap_or(host);
    parent
        .keys()
        .filter(|&&pid| {
            let mut p = pid;
            while let Some(&pp) = parent.get(&p) {
                if pp == root {
                    return true;
                }
                p = pp;
            }
            false
        })
        .map(|&pid| {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            (pid, exe == cairn)
        })
        .collect()
}

fn main() {
    let rounds = env_usize("CAIRN_BENCH_ROUNDS", 200).max(2);
    let units = env_usize("CAIRN_BENCH_UNITS", 1000);
    let root = nix::unistd::geteuid().is_root();
    let base = std::env::temp_dir().join(format!("cairn-bench-tenancy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let misbehave = Path::new(cairn_test_programs::PROGRAMS_DIR).join("misbehave");
    let pause = Path::new(cairn_test_programs::EXAMPLES_DIR).join("pause");

    let mut modes = vec![Daemon::start(&base, "shared", &[])];
    if root {
        modes.push(Daemon::start(
            &base,
            "isolated",
            &["--containers", "isolated"],
        ));
        modes.push(Daemon::start(&base, "strict", &["--tenancy", "strict"]));
    } else {
        println!(
            "skipped isolated and strict modes and the idle units: they need root (mount, user and pid namespaces)"
        );
    }
    for d in &modes {
        d.deploy(&misbehave, "mis");
    }
    for d in &modes {
        d.wait_shown("mis/0", "handled 1", Duration::from_secs(120));
    }

    // Dispatch, alternating modes; the first rounds warm up and are not counted.
    let warm = 10;
    let mut dispatch: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut counters = Vec::new();
    for round in 0..(warm + rounds) as u64 {
        if round == warm as u64 {
            counters = modes.iter().map(|d| d.dispatch_counters("mis")).collect();
        }
        for (i, d) in modes.iter().enumerate() {
            let t = dispatch_round(d, round);
            if round >= warm as u64 {
                dispatch[i].push(t);
            }
        }
    }
    side_by_side(
        "config-changed round trip (control socket → handled, as the co-tenant measures it)",
        &modes.iter().collect::<Vec<_>>(),
        &dispatch,
    );
    let per_event: Vec<(f64, f64)> = modes
        .iter()
        .zip(&counters)
        .map(|(d, (s0, e0))| {
            let (s1, e1) = d.dispatch_counters("mis");
            ((s1 - s0) / (e1 - e0).max(1.0) * 1e3, e1 - e0)
        })
        .collect();
    println!("dispatch time per event, from the metrics (mean):");
    let base_ms = per_event[modes
        .iter()
        .position(|d| d.label == "isolated")
        .unwrap_or(0)]
    .0;
    for (d, (ms, n)) in modes.iter().zip(&per_event) {
        println!(
            "  {:<9} {ms:7.3} ms over {n} events ({:.2}x)",
            d.label,
            ms / base_ms
        );
    }

    // Exec, alternating modes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let clients: Vec<Client> = modes
        .iter()
        .map(|d| Client::unix(d.pebble_socket("mis/0", "work")))
        .collect();
    let mut exec: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    for round in 0..warm + rounds {
        for (i, c) in clients.iter().enumerate() {
            let t = exec_round(&rt, c);
            if round >= warm {
                exec[i].push(t);
            }
        }
    }
    side_by_side(
        "exec `echo hi` round trip through the unit's Pebble socket",
        &modes.iter().collect::<Vec<_>>(),
        &exec,
    );
    drop(clients);
    drop(modes);

    if !root || units == 0 {
        let _ = std::fs::remove_dir_all(&base);
        return;
    }

    // Idle units in strict mode, on a daemon of their own.
    let d = Daemon::start(&base, "idle", &["--tenancy", "strict"]);
    let (rss0, hwm0, pss0) = memory_kib(d.pid());
    let (threads0, fds0) = threads_and_fds(d.pid());
    let start = Instant::now();
    d.deploy_many(&pause, "idle", 0, units);
    let deployed = start.elapsed();
    // Idle: every unit active, its service running, nothing queued.
    loop {
        let active = d.idle_units();
        if active == units {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1800),
            "only {active} of {units} units became active: see {}",
            base.join("idle.log").display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let settled = start.elapsed();
    // Let allocations settle after the burst.
    std::thread::sleep(Duration::from_secs(5));
    let (rss1, hwm1, pss1) = memory_kib(d.pid());
    let (threads1, fds1) = threads_and_fds(d.pid());
    let procs = descendants(d.pid());
    let sum = |inits: bool| {
        procs
            .iter()
            .filter(|(_, is_init)| *is_init == inits)
            .map(|(pid, _)| memory_kib(*pid))
            .fold((0, 0u64, 0), |(n, r, p), (rss, _, pss)| {
                (n + 1, r + rss, p + pss)
            })
    };
    let (n_init, rss_init, pss_init) = sum(true);
    let (n_work, rss_work, pss_work) = sum(false);
    let n = units as f64;
    println!(
        "{units} idle units in strict mode (`pause`: one service each): deployed in {:.1} s, all active after {:.1} s",
        deployed.as_secs_f64(),
        settled.as_secs_f64()
    );
    println!(
        "  daemon: VmRSS {:.1} → {:.1} MiB (+{:.1} KiB per unit), VmHWM {:.1} → {:.1} MiB, Pss {:.1} → {:.1} MiB",
        mib(rss0),
        mib(rss1),
        rss1.saturating_sub(rss0) as f64 / n,
        mib(hwm0),
        mib(hwm1),
        mib(pss0),
        mib(pss1)
    );
    println!(
        "  daemon: threads {threads0} → {threads1}, descriptors {fds0} → {fds1} ({:.1} per unit)",
        fds1.saturating_sub(fds0) as f64 / n
    );
    println!(
        "  Cairn's per-container inits: {n_init} processes, RSS {:.1} MiB ({:.1} KiB each), Pss {:.1} MiB ({:.1} KiB each)",
        mib(rss_init),
        rss_init as f64 / n_init.max(1) as f64,
        mib(pss_init),
        pss_init as f64 / n_init.max(1) as f64
    );
    println!(
        "  workloads (the services themselves): {n_work} processes, RSS {:.1} MiB, Pss {:.1} MiB",
        mib(rss_work),
        mib(pss_work)
    );
    println!(
        "  host cost per idle strict unit (daemon growth + its init, Pss): {:.1} KiB",
        (pss1.saturating_sub(pss0) + pss_init) as f64 / n
    );
    let t = Instant::now();
    drop(d);
    println!(
        "  daemon stopped (every service and init ended) in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&base);
}
