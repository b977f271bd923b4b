//! The real Python `ops.pebble.Client`, unchanged, drives `cairn pebble run` (issue 3).
//!
//! The test makes a virtualenv under the target directory and installs `ops` from PyPI into
//! it (once), then runs `tests/ops/ops_compat.py` against the server's socket.

use std::path::{Path, PathBuf};
use std::process::Command;
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
fn issue3_python_ops_client_drives_a_unit_container() -> Result<()> {
    let d = Daemon::start("opsunit", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    let socket: PathBuf = d.dir.join("units/mis-0/containers/work/.pebble.socket");
    run_ops_script(&socket, &d.log())?;
    // The charm's unit is untouched by what the client did to its container.
    d.wait_status("mis/0", "active", "", Duration::from_secs(5))?;
    Ok(())
}
