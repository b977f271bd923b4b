//! `cargo build-charms [cargo build options]` (an alias for `cargo run -p cairn-xtask --
//! build-charms`): makes sure the wasm32-wasip2 target is installed, then builds the
//! example charms as components into `target/wasm32-wasip2/release/`.
//!
//! `cargo build-dispatcher [cargo build options]`: builds the static `cairn-dispatch` that
//! `cairn pack --dispatcher` ships in a `.charm`, into `target/<host>/release/`.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, ExitCode};

use cairn_xtask::{EXAMPLE_CHARMS, GUEST_TARGET, ensure_target, host_target, static_rustflags};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    match args.next().as_deref().and_then(|a| a.to_str()) {
        Some("build-charms") => build_charms(args.collect()),
        Some("build-dispatcher") => build_dispatcher(args.collect()),
        _ => {
            eprintln!(
                "usage: cargo build-charms [cargo build options]\n       cargo build-dispatcher [cargo build options]"
            );
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
    run(&mut cmd)
}

/// Builds `cairn-dispatch` for the host's own target, statically linked
/// ([`static_rustflags`]). The target is named explicitly so that the flags reach only the
/// target's crates, not build scripts or procedural macros (which cannot be static).
fn build_dispatcher(extra: Vec<OsString>) -> ExitCode {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let host = match host_target(&rustc) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(flags) = static_rustflags(&host) else {
        eprintln!("error: cannot build a static dispatcher on {host}: only Linux targets link so");
        return ExitCode::FAILURE;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut rustflags = std::env::var("RUSTFLAGS").unwrap_or_default();
    if !rustflags.is_empty() {
        rustflags.push(' ');
    }
    rustflags.push_str(flags);
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .env("RUSTFLAGS", rustflags)
        .args(["build", "--release", "--target", &host])
        .args(["-p", "cairn", "--bin", "cairn-dispatch"])
        .args(extra);
    let code = run(&mut cmd);
    if code == ExitCode::SUCCESS {
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let built = target_dir.join(&host).join("release/cairn-dispatch");
        eprintln!("static dispatcher: {}", built.display());
    }
    code
}

/// Runs `cargo`, passing its failure on.
fn run(cmd: &mut Command) -> ExitCode {
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: cannot run cargo: {e}");
            ExitCode::FAILURE
        }
    }
}
