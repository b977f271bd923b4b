//! The real Python `ops.pebble.Client`, unchanged, drives `cairn pebble run`.
//!
//! The test makes a virtualenv under the target directory and installs `ops` [`OPS_VERSION`]
//! from PyPI into it (once per version: this needs the network the first time), then runs
//! `tests/ops/ops_compat.py` against the server's socket.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::common::*;

/// The `ops` release the tests run against, pinned so that a new release on PyPI cannot
/// change what passes; raise it deliberately (and run `cargo test -p cairn --test e2e -- ops`).
const OPS_VERSION: &str = "3.9.0";

/// A virtualenv with `ops` [`OPS_VERSION`] installed, shared by the test runs of this target
/// directory.
fn ops_python() -> Result<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-venv");
    let python = venv.join("bin/python");
    // Holds the version installed, so that changing the pin installs again.
    let ready = venv.join(".ops-installed");
    if std::fs::read_to_string(&ready).is_ok_and(|v| v == OPS_VERSION) {
        return Ok(python);
    }
    let run = |cmd: &mut Command| -> Result<()> {
        let out = cmd.output()?;
        if !out.status.success() {
            bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .arg(format!("ops=={OPS_VERSION}")))?;
    std::fs::write(&ready, OPS_VERSION)?;
    Ok(python)
}

/// Runs the ops script against `socket`; fails the test with its output on failure.
fn run_ops_script(socket: &Path, context: &str) -> Result<()> {
    let python = ops_python().context("cannot set up a virtualenv with ops")?;
    let script = Path::new(cairn_test_programs::EXAMPLES_DIR).join("../tests/ops/ops_compat.py");
    let out = Command::new(&python).arg(&script).arg(socket).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("all steps passed") {
        bail!(
            "ops script failed:\n{stdout}\n{}\n{context}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[test]
fn python_ops_client_drives_a_unit_container() -> Result<()> {
    let d = Daemon::start("opsunit", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    let socket: PathBuf = d.dir.join("units/mis-0/containers/work/.pebble.socket");
    run_ops_script(&socket, &d.log())?;
    // The charm's unit is untouched by what the client did to its container.
    d.wait_status("mis/0", "active", "", Duration::from_secs(5))?;
    Ok(())
}

/// `pebble run --create-dirs` on a fresh `$PEBBLE` (through `program`: the `cairn` binary,
/// or a `pebble` symlink to it), optionally with extra flags.
fn pebble_run(dir: &Path, program: &str, extra: &[&str]) -> Result<std::process::Child> {
    let mut cmd = Command::new(program);
    if program == CAIRN {
        cmd.arg("pebble");
    }
    Ok(cmd
        .args(["run", "--create-dirs"])
        .args(extra)
        .env("PEBBLE", dir.join("pebble"))
        .env_remove("PEBBLE_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("pebble.log"))?)
        .spawn()?)
}

fn stop(child: &mut std::process::Child) -> Result<std::process::ExitStatus> {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    Ok(child.wait()?)
}

/// A `pebble` symlink to the binary under test, so `pebble run` goes through argv[0].
fn pebble_symlink(dir: &Path) -> Result<PathBuf> {
    let link = dir.join("pebble-bin").join("pebble");
    std::fs::create_dir_all(link.parent().unwrap())?;
    std::os::unix::fs::symlink(CAIRN, &link)?;
    Ok(link)
}

#[test]
fn python_ops_client_drives_cairn_pebble_run() -> Result<()> {
    let dir = TempDir::new("e2e-opspebble");
    let link = pebble_symlink(&dir)?;
    let mut server = pebble_run(&dir, link.to_str().unwrap(), &[])?;
    let socket = dir.join("pebble/.pebble.socket");
    let up = eventually(Duration::from_secs(10), || socket.exists().then_some(()));
    let log = || std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default();
    let result = match up {
        Some(()) => run_ops_script(&socket, &log()),
        None => Err(anyhow::anyhow!("server socket never appeared: {}", log())),
    };
    let status = stop(&mut server)?;
    result?;
    assert!(
        status.success(),
        "pebble run exited with {status:?}: {}",
        log()
    );
    assert_eq!(processes_with(&dir.display().to_string()), vec![]);
    Ok(())
}

#[test]
fn pebble_run_autostarts_serves_http_health_and_stops_cleanly() -> Result<()> {
    let dir = TempDir::new("e2e-pebblerun");
    let layers = dir.join("pebble/layers");
    std::fs::create_dir_all(&layers)?;
    std::fs::write(
        layers.join("001-base.yaml"),
        "services:\n  svc:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n",
    )?;
    let port = free_port();
    let mut server = pebble_run(&dir, CAIRN, &["--http", &format!("127.0.0.1:{port}")])?;
    let pebble_dir = dir.join("pebble").display().to_string();
    let server_pid = server.id() as i32;
    let running = eventually(Duration::from_secs(10), || {
        let p: Vec<_> = processes_with(&pebble_dir)
            .into_iter()
            .filter(|(pid, _)| *pid != server_pid)
            .collect();
        (!p.is_empty()).then_some(p)
    });
    let health = eventually(Duration::from_secs(5), || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /v1/health HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    });
    let services = {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        s.write_all(b"GET /v1/services HTTP/1.0\r\nHost: x\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        out
    };
    let status = stop(&mut server)?;
    let log = std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default();
    assert!(running.is_some(), "default service did not start: {log}");
    let health = health.must("health over TCP")?;
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(
        health.ends_with(
            r#"{"type":"sync","status-code":200,"status":"OK","result":{"healthy":true}}"#
        ),
        "{health}"
    );
    // Only open endpoints answer over plain HTTP.
    assert!(services.contains("\"status-code\":401"), "{services}");
    assert!(status.success(), "exit {status:?}: {log}");
    assert_eq!(
        processes_with(&pebble_dir),
        vec![],
        "services survived pebble run"
    );
    Ok(())
}

#[test]
fn pebble_run_without_its_directory_is_one_clear_error() -> Result<()> {
    let dir = TempDir::new("e2e-pebblenodir");
    let out = Command::new(CAIRN)
        .args(["pebble", "run"])
        .env("PEBBLE", dir.join("missing"))
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot find pebble directory") && err.contains("--create-dirs"),
        "{err}"
    );
    Ok(())
}
