//! Round trips through the real daemon: CLI process → daemon → reply, and
//! control request → event delivered into the charm → visible in history.
//!
//! - `cairn status` as a process, beside the floor of any process here (`/bin/true`, run
//!   the same way) and beside the same command run by the host's binary (`cairn-host`, which
//!   links wasmtime: what `cairn` cost before the client was split from it), alternating;
//! - `cairn config --wait` (returns when the unit handled it) as a process, and what it
//!   costs above the event's own dispatch time (from the unit's history);
//! - `cairn config` without waiting, then polled on the control socket until visible.
//!
//! `cargo bench -p cairn --bench roundtrip` prints medians and p99s.

use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::{CAIRN, Daemon};

const CAIRN_HOST: &str = env!("CARGO_BIN_EXE_cairn-host");

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    run(CAIRN, dir, args)
}

fn run(program: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The unit's history straight from the control socket (no process spawn), so polling
/// does not dominate the measurement.
fn history(dir: &std::path::Path) -> Vec<serde_json::Value> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(dir.join("cairn.sock")).unwrap();
    s.write_all(b"{\"op\":\"events\",\"unit\":\"mis/0\",\"n\":null}\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["ok"].as_array().cloned().unwrap_or_default()
}

fn history_len(dir: &std::path::Path) -> usize {
    history(dir).len()
}

fn stats(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "{label}: median {:.2} ms, p99 {:.2} ms over {} runs",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        v.len()
    );
}

fn median_ms(v: &[Duration]) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() {
    let base = std::env::temp_dir().join(format!("cairn-bench-rt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let t0 = Instant::now();
    // The daemon finds the test charm's component where the test programs are built.
    let daemon = Daemon::start(&base, "rt", &[]);
    println!("cairn run → control socket answering: {:?}", t0.elapsed());
    let dir = daemon.dir.clone();
    let charm = std::path::Path::new(cairn_test_programs::PROGRAMS_DIR).join("misbehave");
    let t = Instant::now();
    cli(
        &dir,
        &["deploy", &charm.display().to_string(), "--name", "mis"],
    );
    println!("first deploy (incl. compile): {:?}", t.elapsed());
    while history_len(&dir) < 4 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let (mut floor, mut status, mut status_host) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..300 {
        let t = Instant::now();
        let ok = Command::new("/bin/true").status().unwrap();
        assert!(ok.success());
        floor.push(t.elapsed());
        let t = Instant::now();
        cli(&dir, &["status", "--format", "json"]);
        status.push(t.elapsed());
        let t = Instant::now();
        run(CAIRN_HOST, &dir, &["status", "--format", "json"]);
        status_host.push(t.elapsed());
    }
    let floor_ms = median_ms(&floor);
    stats("process floor (`/bin/true`)", floor);
    let lean = median_ms(&status);
    stats("CLI `cairn status` process round trip", status);
    stats(
        "the same through `cairn-host` (links the runtime)",
        status_host,
    );
    println!(
        "  `cairn status` above the process floor: {:.2} ms",
        lean - floor_ms
    );
    let (mut waited, mut above) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let t = Instant::now();
        cli(
            &dir,
            &["config", "mis", &format!("label=wait-{i}"), "--wait"],
        );
        let took = t.elapsed();
        let last = history(&dir).pop().unwrap();
        assert_eq!(last["event"], "config-changed", "{last}");
        let event = Duration::from_micros(last["duration_us"].as_u64().unwrap());
        waited.push(took);
        above.push(took.saturating_sub(event));
    }
    stats(
        "CLI `cairn config --wait` process (returns once config-changed is handled)",
        waited,
    );
    stats("  of which above the event's own dispatch time", above);
    let mut trips = Vec::new();
    for i in 0..100 {
        let before = history_len(&dir);
        let t = Instant::now();
        cli(&dir, &["config", "mis", &format!("label=run-{i}")]);
        while history_len(&dir) <= before {}
        trips.push(t.elapsed());
    }
    stats(
        "CLI config → daemon → config-changed handled → visible in `cairn events`",
        trips,
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(&base);
}
