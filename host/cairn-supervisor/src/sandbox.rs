//! Isolated containers (design §6): a container whose `/` is a directory of its own.
//!
//! Services, exec commands and exec checks of an isolated container run in a mount
//! namespace whose root is the container's root directory, with the host's system
//! directories (`/usr`, and `/bin`, `/sbin`, `/lib*` where they are not links into it)
//! bound read-only, a fresh `/proc`, a small `/dev` (null, zero, full, random, urandom,
//! tty) and writable `/tmp`. The child enters it between fork and exec
//! ([`Root::confine`]): `unshare(CLONE_NEWNS)`, the bind mounts, `chroot`, `chdir`, then the
//! user switch. The command is the process the supervisor started: its signals, exit code
//! and process group are exactly those of a shared container (a wrapper such as bubblewrap
//! would leave a monitor process in between that does not forward signals).
//!
//! The files API sees the same tree from the host side ([`Root::resolve`]): paths resolve
//! inside the root as the kernel's `openat2(RESOLVE_IN_ROOT)` does, so `..` and symlinks
//! (absolute or relative) can never leave it; the read-only system directories read from
//! the host and refuse writes with `read-only file system`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// System directories bound read-only from the host (when they are real directories there;
/// a host link such as `/bin -> usr/bin` is copied into the root as the same link).
const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Device nodes bound into the container's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// The root directory of an isolated container, shared by its supervisor's managers.
#[derive(Clone, Debug)]
pub struct Root {
    inner: Arc<RootInner>,
}

#[derive(Debug)]
struct RootInner {
    /// The root on the host.
    dir: PathBuf,
    /// An open descriptor of it, for `openat2`.
    fd: OwnedFd,
    /// System directories bound read-only: (name under `/`, host directory).
    binds: Vec<String>,
    /// System names that are links on the host (`bin -> usr/bin`): (name, target).
    links: Vec<(String, String)>,
}

/// Where a container path leads on the host.
pub(crate) enum Resolved {
    /// Inside the root: the host path to use and the descriptor that keeps it valid.
    InRoot {
        /// `/proc/self/fd/<dir>/<name>` (the final element not followed) or
        /// `/proc/self/fd/<fd>` (followed).
        path: PathBuf,
        /// The descriptor the path goes through.
        _fd: OwnedFd,
    },
    /// In a read-only system directory: the host's own path.
    System(PathBuf),
}

impl Resolved {
    /// The host path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Resolved::InRoot { path, .. } => path,
            Resolved::System(p) => p,
        }
    }

    /// Whether writes must be refused.
    pub(crate) fn read_only(&self) -> bool {
        matches!(self, Resolved::System(_))
    }
}

/// `path.Clean` of an absolute path, as a list of its elements (`..` at `/` stays at `/`).
fn clean(path: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL"))
}

impl Root {
    /// Prepares `dir` as a container root (creating it and the mount points it needs) and
    /// opens it.
    pub fn prepare(dir: impl Into<PathBuf>) -> std::io::Result<Root> {
        use std::os::unix::fs::PermissionsExt;
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut binds = Vec::new();
        let mut links = Vec::new();
        for name in SYSTEM_DIRS {
            let host = Path::new("/").join(name);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            let inside = dir.join(name);
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host)?;
                match std::fs::read_link(&inside) {
                    Ok(t) if t == target => {}
                    _ => {
                        let _ = std::fs::remove_file(&inside);
                        std::os::unix::fs::symlink(&target, &inside)?;
                    }
                }
                links.push((name.to_string(), target.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                std::fs::create_dir_all(&inside)?;
                binds.push(name.to_string());
            }
        }
        for (name, mode) in [
            ("proc", 0o555),
            ("dev", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
        ] {
            let p = dir.join(name);
            if !p.is_dir() {
                std::fs::create_dir_all(&p)?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
            }
        }
        let fd = nix::fcntl::open(
            &dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)?;
        Ok(Root {
            inner: Arc::new(RootInner {
                dir,
                fd,
                binds,
                links,
            }),
        })
    }

    /// The root on the host.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The system directory a cleaned path starts in, if any, following the host's
    /// system links (`/bin/sh` is `/usr/bin/sh` on a merged-/usr host).
    fn system_path(&self, elems: &[String]) -> Option<PathBuf> {
        let first = elems.first()?;
        if self.inner.binds.iter().any(|b| b == first) {
            return Some(elems.iter().fold(PathBuf::from("/"), |p, e| p.join(e)));
        }
        let (_, target) = self.inner.links.iter().find(|(n, _)| n == first)?;
        let mut rest: Vec<String> = clean(&Path::new("/").join(target));
        rest.extend(elems[1..].iter().cloned());
        let first = rest.first()?;
        self.inner
            .binds
            .iter()
            .any(|b| b == first)
            .then(|| rest.iter().fold(PathBuf::from("/"), |p, e| p.join(e)))
    }

    /// Where the container path `path` (absolute) leads on the host. With `follow`, a
    /// final symlink is followed (inside the root); without, the path names the entry
    /// itself, through a descriptor of its parent.
    pub(crate) fn resolve(&self, path: &Path, follow: bool) -> std::io::Result<Resolved> {
        let elems = clean(path);
        if let Some(system) = self.system_path(&elems) {
            return Ok(Resolved::System(system));
        }
        let how = |flags: OFlag| {
            OpenHow::new()
                .flags(flags | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS)
        };
        let rel = |e: &[String]| {
            if e.is_empty() {
                PathBuf::from(".")
            } else {
                e.iter().collect()
            }
        };
        if follow || elems.is_empty() {
            let fd = nix::fcntl::openat2(&self.inner.fd, &rel(&elems), how(OFlag::O_PATH))
                .map_err(std::io::Error::from)?;
            return Ok(Resolved::InRoot {
                path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                _fd: fd,
            });
        }
        let (name, parent) = elems.split_last().expect("not empty");
        let fd = nix::fcntl::openat2(
            &self.inner.fd,
            &rel(parent),
            how(OFlag::O_PATH | OFlag::O_DIRECTORY),
        )
        .map_err(std::io::Error::from)?;
        Ok(Resolved::InRoot {
            path: PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd())),
            _fd: fd,
        })
    }

    /// A host path good for lookups only (is this program there?), not for writes: the
    /// lexical mapping of `path` into the root.
    pub fn lookup_path(&self, path: &Path) -> PathBuf {
        let elems = clean(path);
        self.system_path(&elems)
            .unwrap_or_else(|| elems.iter().fold(self.inner.dir.clone(), |p, e| p.join(e)))
    }

    /// Makes `cmd` start inside the container: between fork and exec the child enters a
    /// mount namespace of its own rooted at the container root, changes to `working_dir`
    /// (in the container) and switches to `creds` (uid, gid) when given. Replaces
    /// `Command::current_dir`, `uid` and `gid`, which would act on the host.
    pub fn confine(
        &self,
        cmd: &mut Command,
        working_dir: &str,
        creds: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let root = &self.inner.dir;
        let root_c = cstr(root)?;
        let mut binds = Vec::new();
        for b in &self.inner.binds {
            binds.push((cstr(&Path::new("/").join(b))?, cstr(&root.join(b))?));
        }
        let proc_c = cstr(&root.join("proc"))?;
        let dev_c = cstr(&root.join("dev"))?;
        let mut devices = Vec::new();
        for d in DEVICES {
            devices.push((
                cstr(&Path::new("/dev").join(d))?,
                cstr(&root.join("dev").join(d))?,
            ));
        }
        let mut dev_links = Vec::new();
        for (name, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            dev_links.push((
                cstr(Path::new(target))?,
                cstr(&root.join("dev").join(name))?,
            ));
        }
        let wd = cstr(Path::new(if working_dir.is_empty() {
            "/"
        } else {
            working_dir
        }))?;
        let proc_fs = c"proc";
        let tmpfs = c"tmpfs";
        let dev_opts = c"mode=755,size=64k";
        // SAFETY: only async-signal-safe system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let none: *const libc::c_char = std::ptr::null();
                let check = |r: libc::c_int| {
                    if r < 0 {
                        Err(std::io::Error::last_os_error())
                    } else {
                        Ok(())
                    }
                };
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (src, dst) in &binds {
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    check(libc::mount(
                        none,
                        dst.as_ptr(),
                        none,
                        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID,
                        std::ptr::null(),
                    ))?;
                }
                check(libc::mount(
                    proc_fs.as_ptr(),
                    proc_c.as_ptr(),
                    proc_fs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                ))?;
                check(libc::mount(
                    tmpfs.as_ptr(),
                    dev_c.as_ptr(),
                    tmpfs.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NOEXEC,
                    dev_opts.as_ptr().cast(),
                ))?;
                for (src, dst) in &devices {
                    let fd = libc::open(
                        dst.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o666,
                    );
                    check(fd)?;
                    libc::close(fd);
                    check(libc::mount(
                        src.as_ptr(),
                        dst.as_ptr(),
                        none,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ))?;
                }
                for (target, link) in &dev_links {
                    check(libc::symlink(target.as_ptr(), link.as_ptr()))?;
                }
                check(libc::chroot(root_c.as_ptr()))?;
                check(libc::chdir(wd.as_ptr()))?;
                if let Some((uid, gid)) = creds {
                    check(libc::setgroups(0, std::ptr::null()))?;
                    check(libc::setgid(gid))?;
                    check(libc::setuid(uid))?;
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// Sets where and as whom `cmd` runs: in the container `root` when there is one (see
/// [`Root::confine`]), else on the host in `working_dir` (when not empty) as `creds` (when
/// they differ from the supervisor's own).
pub(crate) fn place(
    cmd: &mut Command,
    root: Option<&Root>,
    working_dir: &str,
    creds: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let switch = creds.filter(|(u, g)| !crate::users::is_current(*u, *g));
    match root {
        Some(r) => r.confine(cmd, working_dir, switch),
        None => {
            if !working_dir.is_empty() {
                cmd.current_dir(working_dir);
            }
            if let Some((uid, gid)) = switch {
                cmd.uid(uid).gid(gid);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_keeps_dotdot_at_the_root() {
        assert_eq!(clean(Path::new("/../../etc/./x/../y")), ["etc", "y"]);
        assert!(clean(Path::new("/..")).is_empty());
    }
}
