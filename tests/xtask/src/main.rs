//! `cargo build-charms [cargo build options]` (an alias for `cargo run -p cairn-xtask --
//! build-charms`): makes sure the wasm32-wasip2 target is installed, then builds the
//! example charms as components into `target/wasm32-wasip2/release/`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

use cairn_xtask::{EXAMPLE_CHARMS, GUEST_TARGET, ensure_target};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next().as_deref().and_then(|a| a.to_str()) {
        Some("build-charms") => build_charms(args.collect()),
        _ => {
            eprintln!("usage: cargo build-charms [cargo build options]");
            ExitCode::from(2)
        }
    }
}

/// Ensures the guest target, then runs `cargo build --release --target wasm32-wasip2` for
/// the example charms (plus `extra` options) from the workspace root.
fn build_charms(extra: Vec<OsString>) -> ExitCode {
    // `cargo run` does not tell its program which rustc it uses; `rustc` on PATH is the
    // one it would pick (rustup's proxy, told the toolchain by RUSTUP_TOOLCHAIN).
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if let Err(e) = ensure_target(&rustc, GUEST_TARGET) {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--target", GUEST_TARGET]);
    for pkg in EXAMPLE_CHARMS {
        cmd.args(["-p", pkg]);
    }
    cmd.args(extra);
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}
