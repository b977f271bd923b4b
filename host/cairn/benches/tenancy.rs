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

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_api::{Client, ExecOptions};
use serde_json::{Value, json};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A `cairn run` daemon on a state directory of its own; stopped and removed on drop.
struct Daemon {
    label: &'static str,
    dir: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cairn run` with `flags` in `<base>/<label>` and waits until it answers.
    fn start(base: &Path, label: &'static str, flags: &[&str]) -> Daemon {
        let dir = base.join(label);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(base.join(format!("{label}.log"))).unwrap();
        let child = Command::new(CAIRN)
            .arg("--dir")
            .arg(&dir)
            .arg("run")
            .args(flags)
            .arg("--limit")
            .arg(format!(
                "host-cpu={}",
                std::env::var("CAIRN_BENCH_HOST_CPU").unwrap_or_else(|_| "unlimited".into())
            ))
            .env("CARGO_TARGET_DIR", cairn_test_programs::GUEST_TARGET_DIR)
            .env(
                "CAIRN_CACHE_DIR",
                Path::new(cairn_test_programs::GUEST_TARGET_DIR).join("cairn-cache"),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Daemon { label, dir, child };
        let start = Instant::now();
        while d.try_control(&json!({"op": "status"})).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the {label} daemon did not come up"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        d
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One request on the control socket: its `ok` value, or the error line.
    fn try_control(&self, request: &Value) -> Result<Value, String> {
        let mut s = UnixStream::connect(self.dir.join("cairn.sock")).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        writeln!(s, "{request}").map_err(|e| e.to_string())?;
        let mut line = String::new();
        BufReader::new(s)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let mut reply: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        match reply.get_mut("ok") {
            Some(v) => Ok(v.take()),
            None => Err(line),
        }
    }

    fn control(&self, request: &Value) -> Value {
        self.try_control(request)
            .unwrap_or_else(|e| panic!("{}: {request} failed: {e}", self.label))
    }

    /// Deploys the charm directory `charm` as `app` (through the control socket).
    fn deploy(&self, charm: &Path, app: &str) {
        self.control(&json!({
            "op": "deploy", "path": charm, "name": app, "config": [], "limits": [],
        }));
    }

    /// The status of every unit: name → (message, queued events).
    fn units(&self) -> Vec<(String, String, u64)> {
        let st = self.control(&json!({"op": "status"}));
        st["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["units"].as_array().cloned().unwrap_or_default())
            .map(|u| {
                (
                    u["name"].as_str().unwrap_or("").to_string(),
                    u["status"]["message"].as_str().unwrap_or("").to_string(),
                    u["queued"].as_u64().unwrap_or(u64::MAX),
                )
            })
            .collect()
    }

    /// Waits until `unit` shows `message` with nothing queued.
    fn wait_shown(&self, unit: &str, message: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self
                .units()
                .iter()
                .any(|(n, m, q)| n == unit && m == message && *q == 0)
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{}: {unit} never showed {message:?}: {:?}",
                self.label,
                self.units()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `cairn_tenant_dispatch_seconds_total` and `cairn_tenant_events_total` of `app`.
    fn dispatch_counters(&self, app: &str) -> (f64, f64) {
        let page = self.control(&json!({"op": "metrics"}));
        let value = |name: &str| {
            let prefix = format!("{name}{{app=\"{app}\"}} ");
            page.as_str()
                .unwrap_or("")
                .lines()
                .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (
            value("cairn_tenant_dispatch_seconds_total"),
            value("cairn_tenant_events_total"),
        )
    }

    /// The Pebble socket of `unit`'s container `container` (the operator's, host side).
    fn pebble_socket(&self, unit: &str, container: &str) -> PathBuf {
        self.dir
            .join("units")
            .join(unit.replace('/', "-"))
            .join("containers")
            .join(container)
            .join(".pebble.socket")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Median and 99th percentile, in milliseconds.
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

/// Resident and proportional memory (KiB) of `pid`: VmRSS, VmHWM and Pss.
fn memory_kib(pid: u32) -> (u64, u64, u64) {
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    (
        field(&status, "VmRSS:"),
        field(&status, "VmHWM:"),
        field(&rollup, "Pss:"),
    )
}

/// Threads and open descriptors of `pid`.
fn threads_and_fds(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (threads, fds)
}

/// Every live descendant of `root`, with whether it runs the `cairn` binary (a strict
/// container's init is `cairn` started afresh; the rest are workloads).
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
    let cairn = std::fs::canonicalize(CAIRN).unwrap_or_else(|_| CAIRN.into());
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

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
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
    // A few deploys at once, as several operators (or a script) would send them.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= units {
                        break;
                    }
                    d.deploy(&pause, &format!("idle{i}"));
                }
            });
        }
    });
    let deployed = start.elapsed();
    // Idle: every unit active, its service running, nothing queued.
    loop {
        let st = d.control(&json!({"op": "status"}));
        let active = st["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["units"].as_array().cloned().unwrap_or_default())
            .filter(|u| {
                u["queued"] == 0
                    && u["status"]["status"] == "active"
                    && u["containers"].as_array().into_iter().flatten().all(|c| {
                        c["services"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| s["current"] == "active")
                    })
            })
            .count();
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
