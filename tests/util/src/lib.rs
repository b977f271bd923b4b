//! Helpers shared by Cairn's tests, so that every crate cleans up, waits and skips the same
//! way: a [`TempDir`] removed on drop, [`eventually`] (and [`eventually_async`]) instead of
//! hand-written polling loops around `sleep`, and [`require_root!`] for tests that cannot
//! run without root; [`juju`] fakes Juju's hook tools for the Juju-style dispatch tests and
//! benchmark.
//!
//! It is a dev-dependency only. A crate's tests use it with, in its `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! cairn-testutil = { workspace = true }
//! ```
//!
//! and then:
//!
//! ```
//! use std::time::Duration;
//! use cairn_testutil::{TempDir, eventually, require_root};
//!
//! fn writes_a_file() -> std::io::Result<()> {
//!     let dir = TempDir::new("example"); // removed when `dir` is dropped, even on panic
//!     std::fs::write(dir.join("a"), "x")?;
//!     // Poll for a condition instead of sleeping for a guessed time.
//!     let found = eventually(Duration::from_secs(5), || dir.join("a").exists().then_some(()));
//!     assert!(found.is_some());
//!     Ok(())
//! }
//!
//! fn mounts_something() -> std::io::Result<()> {
//!     // Not root: prints "<test>: skipped: needs root (mount namespaces)" and returns Ok(()).
//!     require_root!("mount namespaces");
//!     Ok(())
//! }
//! # writes_a_file().unwrap();
//! # mounts_something().unwrap();
//! ```
//!
//! Set `CAIRN_KEEP_TEST_DIRS=1` to keep every test's directory for inspection: each kept
//! path is printed in its test's output, which libtest shows for the tests that failed.

pub mod juju;

use std::future::Future;
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The environment variable that keeps test directories after their test (see [`TempDir`]).
pub const KEEP_DIRS_VAR: &str = "CAIRN_KEEP_TEST_DIRS";

/// How often [`eventually`] and [`eventually_async`] poll.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A fresh, empty directory for one test, removed with everything in it when dropped
/// (also when the test fails), unless [`KEEP_DIRS_VAR`] is set. It dereferences to its
/// [`Path`].
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<temp dir>/cairn-<name>-<pid>-<n>`: `name` says which test it belongs to,
    /// the process id and a counter keep tests running in parallel apart. Panics if the
    /// directory cannot be created.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // Ends in a letter: a directory's path is then never a prefix of another's (a
        // test finding processes by the path in their environment must not find those of
        // `…-17` when it looks for `…-1`).
        let path = std::env::temp_dir().join(format!("cairn-{name}-{}-{n}d", std::process::id()));
        // A kept directory of an earlier run whose process had the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir { path }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// So that a `TempDir` goes straight into `Command::arg` and `Command::env`.
impl AsRef<std::ffi::OsStr> for TempDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.path.as_os_str()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_DIRS_VAR).is_some_and(|v| !v.is_empty()) {
            eprintln!(
                "kept test directory {} ({KEEP_DIRS_VAR})",
                self.path.display()
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Calls `f` until it returns `Some` (returned), every [`POLL_INTERVAL`], giving up with
/// `None` once `timeout` has passed. `f` is called at least once.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// [`eventually`] for async tests: awaits `f()` until it yields `Some`, sleeping on tokio's
/// timer between tries, so the runtime keeps driving what the test waits for.
pub async fn eventually_async<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Whether this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Reports a skipped test on stderr directly, past libtest's output capture, so that
/// `cargo test` shows it: `<test>: skipped: <why>`.
pub fn report_skip(why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("test");
    let _ = writeln!(std::io::stderr(), "{test}: skipped: {why}");
}

/// What a skipped test returns: `()` for a plain test, `Ok(())` for one returning a
/// `Result`. Used by [`require_root!`].
pub trait Skipped {
    /// The value of a test that was skipped.
    fn skipped() -> Self;
}

impl Skipped for () {
    fn skipped() -> Self {}
}

impl<E> Skipped for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

/// Skips the rest of the test unless it runs as root: prints
/// `<test>: skipped: needs root (<why>)` and returns `()` or `Ok(())` from the test (async
/// tests included). `why` says what needs root, e.g. `"mount namespaces"`.
#[macro_export]
macro_rules! require_root {
    ($why:expr) => {
        if !$crate::is_root() {
            $crate::report_skip(&::std::format!("needs root ({})", $why));
            return $crate::Skipped::skipped();
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_is_fresh_and_removed_on_drop() {
        let dir = TempDir::new("util-drop");
        let other = TempDir::new("util-drop");
        assert_ne!(dir.path(), other.path());
        assert!(dir.is_dir() && std::fs::read_dir(&dir).unwrap().next().is_none());
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/c"), "x").unwrap();
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists() || std::env::var_os(KEEP_DIRS_VAR).is_some());
    }

    #[test]
    fn a_temp_dir_is_removed_when_its_test_panics() {
        let dir = TempDir::new("util-panic");
        let path = dir.path().to_path_buf();
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _dir = dir;
            panic!("test failed");
        }));
        assert!(failed.is_err());
        assert!(!path.exists() || std::env::var_os(KEEP_DIRS_VAR).is_some());
    }

    #[test]
    fn eventually_returns_the_first_some_and_gives_up_after_the_timeout() {
        let mut calls = 0;
        let got = eventually(Duration::from_secs(5), || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(got, Some(3));
        let start = Instant::now();
        assert_eq!(eventually(Duration::from_millis(100), || None::<()>), None);
        assert!(start.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn eventually_async_awaits_the_condition() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send(7).unwrap();
        });
        let got = eventually_async(Duration::from_secs(5), || {
            let v = rx.try_recv().ok();
            async move { v }
        })
        .await;
        assert_eq!(got, Some(7));
    }

    fn gated() -> Result<(), &'static str> {
        require_root!("a test of the gate");
        Err("ran past the gate")
    }

    #[test]
    fn require_root_returns_early_only_when_not_root() {
        let want = if is_root() {
            Err("ran past the gate")
        } else {
            Ok(())
        };
        assert_eq!(gated(), want);
    }
}
