//! Set-up tasks for working on the Cairn workspace, so that the README's commands work on a
//! fresh machine.
//!
//! Guests (charms) are built for [`GUEST_TARGET`], whose standard library rustup installs
//! only on request; where automatic installs are off (`RUSTUP_AUTO_INSTALL=0`) a plain
//! `cargo build --target wasm32-wasip2` stops with "can't find crate for `std`". So:
//!
//! - `cargo build-charms` (an alias in `.cargo/config.toml`) runs this crate's binary,
//!   which calls [`ensure_target`] and then builds [`EXAMPLE_CHARMS`];
//! - `tests/build.rs`, which builds the guests for `cargo test`, calls [`ensure_target`]
//!   too (this crate is its build-dependency).
//!
//! [`ensure_target`] installs the target with `rustup target add` when it is missing, and
//! otherwise fails with one line saying what to run.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target guests are compiled for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The example charms' packages (`examples/*`), the ones `cargo build-charms` builds.
pub const EXAMPLE_CHARMS: &[&str] = &["pause-charm", "web-charm", "backup-charm", "db-charm"];

/// What [`ensure_target`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSetup {
    /// The target's standard library was already installed.
    Present,
    /// It was missing and `rustup target add` installed it.
    Installed,
}

/// Why the toolchain cannot build for a target. Each message is one line that says what
/// to run.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `rustc` itself could not be run.
    #[error("cannot run {rustc}: {source}; install the Rust toolchain (https://rustup.rs)")]
    Rustc {
        /// The rustc that was tried.
        rustc: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// `rustc` does not know the target at all (a toolchain older than the pinned one).
    #[error(
        "cannot build for {target}: {rustc} does not know it ({reason}); use the toolchain rust-toolchain.toml pins"
    )]
    UnknownTarget {
        /// The target asked for.
        target: String,
        /// The rustc that was asked.
        rustc: String,
        /// rustc's first line of complaint.
        reason: String,
    },
    /// The target's standard library is missing and rustup could not be run to add it.
    #[error(
        "cannot build for {target}: its standard library is not installed ({libdir}) and rustup is not available; install the {target} target for this toolchain"
    )]
    NoRustup {
        /// The target asked for.
        target: String,
        /// Where its standard library should be.
        libdir: String,
    },
    /// `rustup target add` ran and failed (offline, for example).
    #[error(
        "cannot build for {target}: its standard library is not installed and `rustup target add {target}` failed ({reason}); run it yourself (it needs the network), then retry"
    )]
    InstallFailed {
        /// The target asked for.
        target: String,
        /// rustup's own error line.
        reason: String,
    },
}

/// Makes sure `rustc` can build for `target`: when the target's standard library is not
/// in the toolchain's sysroot, installs it with `rustup target add` (for the toolchain
/// rustup chose for this workspace: `RUSTUP_TOOLCHAIN`, which rustup sets for the
/// processes it starts, or `rust-toolchain.toml`). It says so on stderr first; rustup's
/// own output is kept back, and only its error line is reported, inside the one-line error.
pub fn ensure_target(rustc: &OsStr, target: &str) -> Result<TargetSetup, SetupError> {
    let libdir = target_libdir(rustc, target)?;
    if has_std(&libdir) {
        return Ok(TargetSetup::Present);
    }
    eprintln!("the {target} target is not installed: running `rustup target add {target}`");
    let added = Command::new("rustup")
        .args(["target", "add", target])
        .stdin(Stdio::null())
        .output();
    match added {
        Err(_) => Err(SetupError::NoRustup {
            target: target.into(),
            libdir: libdir.display().to_string(),
        }),
        Ok(out) if out.status.success() && has_std(&libdir) => Ok(TargetSetup::Installed),
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let reason = stderr
                .lines()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or("no error given")
                .trim()
                .to_string();
            Err(SetupError::InstallFailed {
                target: target.into(),
                reason,
            })
        }
    }
}

/// Where `rustc` looks for `target`'s libraries (printed even when nothing is there).
fn target_libdir(rustc: &OsStr, target: &str) -> Result<PathBuf, SetupError> {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .map_err(|source| SetupError::Rustc {
            rustc: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(SetupError::UnknownTarget {
            target: target.into(),
            rustc: rustc.to_string_lossy().into_owned(),
            reason: stderr.lines().next().unwrap_or("").trim().to_string(),
        });
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The target `rustc` builds for by default (`host:` in `rustc -vV`).
pub fn host_target(rustc: &OsStr) -> Result<String, SetupError> {
    let out = Command::new(rustc)
        .arg("-vV")
        .output()
        .map_err(|source| SetupError::Rustc {
            rustc: rustc.to_string_lossy().into_owned(),
            source,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .ok_or_else(|| SetupError::Rustc {
            rustc: rustc.to_string_lossy().into_owned(),
            source: std::io::Error::other("no host in `rustc -vV`"),
        })
}

/// The flags that link a Linux GNU target's binary statically (glibc's `libc.a`, as a
/// static PIE): a dispatcher that starts on every base a `.charm` may declare, whatever
/// glibc the base has. `None` for a target that cannot be linked so here.
pub fn static_rustflags(target: &str) -> Option<&'static str> {
    (target.ends_with("-linux-gnu") || target.ends_with("-linux-musl"))
        .then_some("-C target-feature=+crt-static")
}

/// Whether `libdir` holds a compiled standard library.
fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libstd-") && name.ends_with(".rlib")
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_target_is_present() {
        let host = std::process::Command::new("rustc")
            .arg("-vV")
            .output()
            .unwrap();
        let host = String::from_utf8(host.stdout).unwrap();
        let host = host
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .unwrap()
            .to_string();
        assert_eq!(
            ensure_target(OsStr::new("rustc"), &host).unwrap(),
            TargetSetup::Present
        );
    }

    #[test]
    fn an_unknown_target_is_one_line_naming_the_pinned_toolchain() {
        let err = ensure_target(OsStr::new("rustc"), "no-such-target").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("cannot build for no-such-target: ") && !msg.contains('\n'),
            "{msg}"
        );
        assert!(
            msg.ends_with("use the toolchain rust-toolchain.toml pins"),
            "{msg}"
        );
    }

    #[test]
    fn static_flags_are_only_for_linux_gnu_and_musl() {
        assert!(static_rustflags("x86_64-unknown-linux-gnu").is_some());
        assert!(static_rustflags("aarch64-unknown-linux-musl").is_some());
        assert_eq!(static_rustflags("aarch64-apple-darwin"), None);
        assert!(!host_target(OsStr::new("rustc")).unwrap().is_empty());
    }

    #[test]
    fn a_missing_rustc_says_to_install_rust() {
        let err = ensure_target(OsStr::new("/nonexistent/rustc"), GUEST_TARGET).unwrap_err();
        assert!(matches!(err, SetupError::Rustc { .. }), "{err}");
    }
}
