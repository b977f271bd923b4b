//! The real Python `ops.pebble.Client`, unchanged, drives `cairn pebble run` (issue 3).
//!
//! The test makes a virtualenv under the target directory and installs `ops` from PyPI into
//! it (once), then runs `tests/ops/ops_compat.py` against the server's socket.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::common::*;

/// A virtualenv with `ops` installed, shared by the test runs of this target directory.
fn ops_python() -> Result<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ops-installed");
    if ready.exists() {
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
    run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "ops"]))?;
    std::fs::write(&ready, b"")?;
    Ok(python)
}

#[test]
fn issue3_python_ops_client_drives_cairn_pebble_run() -> Result<()> {
    let python = ops_python().context("cannot set up a virtualenv with ops")?;
    let dir = test_dir("ops");
    let pebble_dir = dir.join("pebble");
    let socket = pebble_dir.join(".pebble.socket");
    let mut server = Command::new(CAIRN)
        .args(["pebble", "run", "--create-dirs"])
        .env("PEBBLE", &pebble_dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("pebble.log"))?)
        .spawn()?;
    let up = wait_for(Duration::from_secs(10), || socket.exists().then_some(()));
    let script = Path::new(cairn_test_programs::EXAMPLES_DIR).join("../tests/ops/ops_compat.py");
    let out = up.map(|_| Command::new(&python).arg(&script).arg(&socket).output());
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(server.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let status = server.wait()?;
    let log = std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default();
    let out = out.context(format!("server socket never appeared: {log}"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "ops script failed:\n{stdout}\n{}\nserver log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    assert!(status.success(), "pebble run exited with {status:?}");
    assert_eq!(processes_with(&pebble_dir.display().to_string()), vec![]);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
