//! Limits on every input, against the real daemon: a local user flooding a unit's socket, a
//! daemon out of descriptors, the control socket's owner check and bounds, a long unit
//! socket path, and a big layer while other requests go on.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::common::*;

/// Whether the process runs (exists and is not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

/// The CPU the daemon uses over `window`.
fn cpu_over(pid: u32, window: Duration) -> Result<Duration> {
    let before = cpu_time(pid)?;
    std::thread::sleep(window);
    Ok(cpu_time(pid)?.saturating_sub(before))
}

/// The first unit container socket under the state directory.
fn unit_socket(dir: &Path) -> Result<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&path, out);
            } else if e.file_name() == ".pebble.socket" {
                out.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&dir.join("units"), &mut found);
    found.into_iter().next().context("no unit socket")
}

/// Runs `cairn status` until `stop`, counting calls and failures (with the last error).
fn status_loop(
    d: &Daemon,
    stop: &AtomicBool,
    calls: &AtomicUsize,
) -> std::result::Result<(), String> {
    while !stop.load(Ordering::Relaxed) {
        let out = d.cli(&["status"]).map_err(|e| e.to_string())?;
        calls.fetch_add(1, Ordering::Relaxed);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// uid 65534 holds 300 idle connections to a unit socket, then makes 10,000 connection
/// attempts, and tries the control socket; prints what it got and holds its connections
/// until its stdin closes.
const FLOOD: &str = r#"
import os, socket, sys, json
os.setgroups([]); os.setgid(65534); os.setuid(65534)
unit, control = sys.argv[1], sys.argv[2]
held, errors, attempts = [], 0, 0
for i in range(300):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(unit); held.append(s)
    except OSError:
        errors += 1
for i in range(10000):
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(unit)
        s.sendall(b"GET /v1/services HTTP/1.1\r\nHost: x\r\n\r\n"); s.close(); attempts += 1
    except OSError:
        errors += 1
try:
    c = socket.socket(socket.AF_UNIX); c.connect(control)
    c.sendall(b'{"op":"status"}\n'); control_reply = c.recv(4096).decode()
except OSError as e:
    control_reply = "refused: " + e.strerror
print(json.dumps({"held": len(held), "attempts": attempts, "errors": errors, "control": control_reply}), flush=True)
sys.stdin.read()
"#;

#[test]
fn an_unprivileged_connection_flood_cannot_stop_status_or_workloads() -> Result<()> {
    require_root!("connecting as another user");
    let d = Daemon::start_with_nofile("flood", &[], Some(256))?;
    let port = d.deploy_web(&[])?;
    let pid = d.pid().must("daemon pid")?;
    let socket = unit_socket(&d.dir)?;
    open_path_to(&d.dir, &socket)?;
    let stop = AtomicBool::new(false);
    let calls = AtomicUsize::new(0);
    let (report, status) = std::thread::scope(|s| -> Result<_> {
        let status = s.spawn(|| status_loop(&d, &stop, &calls));
        let mut flood = Command::new("python3")
            .arg("-c")
            .arg(FLOOD)
            .arg(&socket)
            .arg(d.dir.join("cairn.sock"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(flood.stdout.take().must("stdout")?).read_line(&mut line)?;
        // The flood's connections are still held: the daemon must idle, serve, keep going.
        let cpu = cpu_over(pid, Duration::from_secs(2));
        let web = http_get(port);
        stop.store(true, Ordering::Relaxed);
        drop(flood.stdin.take());
        let _ = flood.wait();
        let status = status
            .join()
            .map_err(|_| anyhow::anyhow!("status loop panicked"))?;
        Ok(((line, cpu?, web), status))
    })?;
    let (line, cpu, web) = report;
    let got: serde_json::Value =
        serde_json::from_str(&line).with_context(|| format!("flood said {line:?}"))?;
    assert!(running(pid), "the daemon exited: {}", d.log());
    assert_eq!(status, Ok(()), "cairn status failed during the flood");
    assert!(calls.load(Ordering::Relaxed) > 0, "status never ran");
    assert!(web.is_ok(), "the workload stopped answering: {web:?}");
    assert!(
        cpu < Duration::from_millis(500),
        "daemon busy: {cpu:?} in 2 s"
    );
    assert!(
        got["control"]
            .as_str()
            .is_some_and(|c| c.starts_with("refused") || c.contains("access denied")),
        "another user used the control socket: {got}"
    );
    assert!(
        got["attempts"].as_u64().unwrap_or(0) > 0,
        "no attempt went through: {got}"
    );
    d.ok(&["status"])?;
    Ok(())
}

#[test]
fn exhausted_descriptors_pause_accepting_without_spinning_or_exiting() -> Result<()> {
    require_root!("a daemon with few descriptors next to the suite's");
    let d = Daemon::start_with_nofile("emfile", &[], Some(256))?;
    let port = d.deploy_web(&[])?;
    let pid = d.pid().must("daemon pid")?;
    // Root may hold as many control connections as it likes: 300 take every descriptor.
    let mut held = Vec::new();
    for _ in 0..300 {
        held.push(
            UnixStream::connect(d.dir.join("cairn.sock"))
                .with_context(|| format!("the daemon stopped accepting: {}", d.log()))?,
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    let cpu = cpu_over(pid, Duration::from_secs(2))?;
    assert!(running(pid), "the daemon exited: {}", d.log());
    assert!(fds >= 250, "descriptors not exhausted ({fds} open)");
    assert!(
        cpu < Duration::from_millis(500),
        "daemon spins: {cpu:?} in 2 s"
    );
    assert!(http_get(port).is_ok(), "the workload stopped");
    drop(held);
    eventually(Duration::from_secs(15), || {
        d.cli(&["status"]).ok().filter(|o| o.status.success())
    })
    .must("cairn status works again")?;
    Ok(())
}

#[test]
fn the_control_socket_is_private_and_bounds_its_request() -> Result<()> {
    let d = Daemon::start("control-bounds", &[])?;
    let sock = d.dir.join("cairn.sock");
    let mode = std::fs::metadata(&sock)?.permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "control socket mode {mode:o}");
    let ask = |data: &[u8]| -> Result<String> {
        let mut c = UnixStream::connect(&sock)?;
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        let _ = c.write_all(data);
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut out = String::new();
        c.read_to_string(&mut out)?;
        Ok(out)
    };
    let long = ask(&vec![b'x'; 2 << 20])?;
    assert!(long.contains("longer than"), "{long:.200}");
    assert!(long.len() < 512, "reply of {} bytes", long.len());
    // One that sends nothing is answered and closed, not kept.
    let mut idle = UnixStream::connect(&sock)?;
    idle.set_read_timeout(Some(Duration::from_secs(30)))?;
    let start = Instant::now();
    let mut out = String::new();
    idle.read_to_string(&mut out)?;
    assert!(out.contains("timed out"), "{out}");
    assert!(start.elapsed() < Duration::from_secs(25));
    d.ok(&["status"])?;
    Ok(())
}

#[test]
fn a_64_character_app_name_deploys_and_its_pebble_answers() -> Result<()> {
    let d = Daemon::start("long-name", &[])?;
    let name = format!("web-{}", "a".repeat(60));
    let port = free_port();
    d.ok(&[
        "deploy",
        &example("web"),
        "--name",
        &name,
        "--config",
        &format!("port={port}"),
    ])?;
    let unit = format!("{name}/0");
    d.wait_status(&unit, "active", "", Duration::from_secs(20))?;
    let socket = unit_socket(&d.dir)?;
    assert!(socket.as_os_str().len() > 107, "{}", socket.display());
    let out = d.ok(&["--container", &unit, "services"])?;
    assert!(out.contains("active"), "{out}");
    Ok(())
}

#[test]
fn a_50000_service_layer_is_added_while_other_requests_go_on() -> Result<()> {
    let dir = TempDir::new("e2e-big-layer");
    let mut child = ChildGuard {
        child: Command::new(CAIRN)
            .args(["pebble", "run", "--create-dirs"])
            .env("PEBBLE", dir.path())
            .env_remove("PEBBLE_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
        needle: dir.display().to_string(),
    };
    let socket = dir.join(".pebble.socket");
    eventually(Duration::from_secs(10), || socket.exists().then_some(())).must("socket")?;
    let mut yaml = String::from("services:\n");
    for i in 0..50_000 {
        yaml.push_str(&format!(
            "  s{i}:\n    override: replace\n    command: sleep 1000\n"
        ));
    }
    let rt = tokio::runtime::Runtime::new()?;
    let (added, slowest, gets) = rt.block_on(async {
        let adder = cairn_api::Client::unix(&socket);
        let add = tokio::spawn(async move {
            let start = Instant::now();
            let r = tokio::time::timeout(
                Duration::from_secs(90),
                adder.add_layer("big", &yaml, false, false),
            )
            .await;
            (r, start.elapsed())
        });
        let reader = cairn_api::Client::unix(&socket);
        let (mut slowest, mut gets) = (Duration::ZERO, 0);
        while !add.is_finished() {
            let t = Instant::now();
            let _ = tokio::time::timeout(Duration::from_secs(60), reader.services(&[])).await;
            slowest = slowest.max(t.elapsed());
            gets += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (add.await, slowest, gets)
    });
    let (result, took) = added?;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("cannot add the layer: {e}"),
        Err(_) => bail!("adding a 50,000-service layer took over 90 s"),
    }
    eprintln!("50,000-service layer added in {took:?}; {gets} GETs meanwhile, slowest {slowest:?}");
    // Generous: a debug build on a loaded machine; before, every other request waited for
    // the whole add (minutes).
    assert!(
        slowest < Duration::from_secs(15),
        "a GET waited {slowest:?} during the add"
    );
    let _ = child.child.kill();
    let _ = child.child.wait();
    Ok(())
}
