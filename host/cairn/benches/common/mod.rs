//! What the host's benchmarks share: a `cairn run` daemon driven over its control socket,
//! and the memory, threads and descriptors of a process.

#![allow(dead_code)] // each bench uses its own part

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A `cairn run` daemon on a state directory of its own; stopped and removed on drop.
pub struct Daemon {
    pub label: &'static str,
    pub dir: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts `cairn run` with `flags` in `<base>/<label>` and waits until it answers.
    pub fn start(base: &Path, label: &'static str, flags: &[&str]) -> Daemon {
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

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One request on the control socket: its `ok` value, or the error line.
    pub fn try_control(&self, request: &Value) -> Result<Value, String> {
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

    pub fn control(&self, request: &Value) -> Value {
        self.try_control(request)
            .unwrap_or_else(|e| panic!("{}: {request} failed: {e}", self.label))
    }

    /// Deploys the charm directory `charm` as `app` (through the control socket).
    pub fn deploy(&self, charm: &Path, app: &str) {
        self.control(&json!({
            "op": "deploy", "path": charm, "name": app, "config": [], "limits": [],
        }));
    }

    /// Every unit's status, as `cairn status --format json` shows it.
    pub fn all_units(&self) -> Vec<Value> {
        let st = self.control(&json!({"op": "status"}));
        st["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["units"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// The status of every unit: name → (message, queued events).
    pub fn units(&self) -> Vec<(String, String, u64)> {
        self.all_units()
            .into_iter()
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
    pub fn wait_shown(&self, unit: &str, message: &str, timeout: Duration) {
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
    pub fn dispatch_counters(&self, app: &str) -> (f64, f64) {
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

    /// How many units are idle: active, every service of theirs running, nothing queued.
    pub fn idle_units(&self) -> usize {
        self.all_units()
            .into_iter()
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
            .count()
    }

    /// Deploys `charm` as apps `<prefix><from>` … `<prefix><to - 1>`, four at a time (as
    /// several operators, or a script, would send them).
    pub fn deploy_many(&self, charm: &Path, prefix: &str, from: usize, to: usize) {
        let next = std::sync::atomic::AtomicUsize::new(from);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= to {
                            break;
                        }
                        self.deploy(charm, &format!("{prefix}{i}"));
                    }
                });
            }
        });
    }

    /// The Pebble socket of `unit`'s container `container` (the operator's, host side).
    pub fn pebble_socket(&self, unit: &str, container: &str) -> PathBuf {
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
/// Resident and proportional memory (KiB) of `pid`: VmRSS, VmHWM and Pss.
pub fn memory_kib(pid: u32) -> (u64, u64, u64) {
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
pub fn threads_and_fds(pid: u32) -> (u64, usize) {
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

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
