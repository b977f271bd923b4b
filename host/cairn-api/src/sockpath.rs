//! Unix socket paths of any length.
//!
//! A `sockaddr_un` holds at most 107 bytes of path, so a socket deep in a state directory
//! (`<state>/units/<64-char app>-0/containers/<c>/.pebble.socket`) cannot be bound or
//! connected to by its own name. [`SocketPath`] opens the socket's directory (`O_PATH`)
//! and names the socket through `/proc/self/fd/<dirfd>/<name>` instead: short, absolute,
//! resolved by the kernel in the call itself, so it needs no `chdir` and is safe with
//! threads. Paths short enough are used unchanged.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;

/// Longest path a `sockaddr_un` takes (108 bytes with the terminating NUL).
pub const SUN_PATH_MAX: usize = 107;

/// A name to bind or connect to for a socket path, with the directory descriptor that
/// keeps it valid; use [`SocketPath::path`] while this lives.
#[derive(Debug)]
pub struct SocketPath {
    path: PathBuf,
    _dir: Option<OwnedFd>,
}

impl SocketPath {
    /// A usable name for `socket`: itself when it fits a `sockaddr_un`, else its name under
    /// `/proc/self/fd/<descriptor of its directory>`.
    pub fn new(socket: &Path) -> io::Result<SocketPath> {
        if socket.as_os_str().len() <= SUN_PATH_MAX {
            return Ok(SocketPath {
                path: socket.to_path_buf(),
                _dir: None,
            });
        }
        let (Some(parent), Some(name)) = (socket.parent(), socket.file_name()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket path has no file name",
            ));
        };
        let parent: &Path = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let dir = open(
            parent,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let mut short = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        short.extend_from_slice(name.as_bytes());
        if short.len() > SUN_PATH_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "socket file name must be shorter than {} bytes",
                    SUN_PATH_MAX - (short.len() - name.len())
                ),
            ));
        }
        Ok(SocketPath {
            path: PathBuf::from(OsStr::from_bytes(&short)),
            _dir: Some(dir),
        })
    }

    /// The name to hand to `bind` or `connect`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_paths_are_used_unchanged_and_long_ones_go_through_the_directory() {
        let p = Path::new("/tmp/x/.pebble.socket");
        assert_eq!(SocketPath::new(p).unwrap().path(), p);
        let dir = cairn_testutil::TempDir::new("sockpath");
        let deep = dir.path().join("d".repeat(150));
        std::fs::create_dir(&deep).unwrap();
        let long = deep.join(".pebble.socket");
        let s = SocketPath::new(&long).unwrap();
        let short = s.path().to_str().unwrap();
        assert!(
            short.starts_with("/proc/self/fd/") && short.ends_with("/.pebble.socket"),
            "{short}"
        );
        let listener = std::os::unix::net::UnixListener::bind(s.path()).unwrap();
        assert!(long.exists(), "the socket was not created at its real path");
        let _c = std::os::unix::net::UnixStream::connect(SocketPath::new(&long).unwrap().path())
            .unwrap();
        listener.accept().unwrap();
    }
}
