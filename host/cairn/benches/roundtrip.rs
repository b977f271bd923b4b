//! Round trips through the real daemon: CLI process → daemon → reply, and
//! control request → event delivered into the charm → visible in history.
//!
//! `cargo bench -p cairn --bench roundtrip` prints medians and p99s.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

fn cli(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(CAIRN)
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

/// Reads the unit's history length straight from the control socket (no process spawn),
/// so polling does not dominate the measurement.
fn history_len(dir: &std::path::Path) -> usize {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::os::unix::net::UnixStream::connect(dir.join("cairn.sock")).unwrap();
    s.write_all(b"{\"op\":\"events\",\"unit\":\"mis/0\",\"n\":null}\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    v["ok"].as_array().map(Vec::len).unwrap_or(0)
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

fn main() {
    let dir = std::env::temp_dir().join(format!("cairn-bench-rt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = Instant::now();
    let mut daemon = Command::new(CAIRN)
        .arg("--dir")
        .arg(&dir)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while Command::new(CAIRN)
        .arg("--dir")
        .arg(&dir)
        .arg("status")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "cairn run → control socket answering: {:?} (incl. one CLI process)",
        t0.elapsed()
    );
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
    let mut status = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        cli(&dir, &["status", "--format", "json"]);
        status.push(t.elapsed());
    }
    stats("CLI `cairn status` process round trip", status);
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
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
