//! Building a charm crate into the component its tests run: a nested `cargo build` for
//! `wasm32-wasip2` in a target directory of its own (`<target>/cairn-testing`), so it never
//! waits on the lock of the `cargo test` that runs the tests, and is as fresh as the
//! sources every time (cargo does nothing when nothing changed).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// The guest target.
const GUEST_TARGET: &str = "wasm32-wasip2";

/// Variables of the outer cargo that must not leak into the nested build (flags for the
/// host target, the outer target directory, the jobserver).
const OUTER_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// The target directory of the running test (`CARGO_TARGET_DIR`, else the directory
/// above the test binary that cargo marked with `CACHEDIR.TAG`), or `None` outside cargo.
pub(crate) fn target_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(dir));
    }
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}

/// Builds the charm crate in `dir` (release, `wasm32-wasip2`) and returns its component.
pub(crate) fn build(dir: &Path) -> Result<PathBuf, Error> {
    let manifest = dir.join("Cargo.toml");
    let manifest = manifest
        .canonicalize()
        .map_err(|e| Error::Build(format!("cannot read {}: {e}", manifest.display())))?;
    let target = target_dir()
        .unwrap_or_else(|| dir.join("target"))
        .join("cairn-testing");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--lib", "--target", GUEST_TARGET])
        .args([
            "--message-format",
            "json-render-diagnostics",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target);
    for var in OUTER_VARS {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .map_err(|e| Error::Build(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let hint = if stderr.contains("target may not be installed") {
            format!(" (run `rustup target add {GUEST_TARGET}`)")
        } else {
            String::new()
        };
        return Err(Error::Build(format!(
            "cannot build {} for {GUEST_TARGET}{hint}:\n{}",
            manifest.display(),
            tail.join("\n")
        )));
    }
    // The artifact of this package's library: the one `.wasm` among its files.
    let manifest_text = manifest.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str() == Some(manifest_text.as_str()))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        .ok_or_else(|| {
            Error::Build(format!(
                "cannot find the component of {}: is its crate-type cdylib?",
                manifest.display()
            ))
        })
}
