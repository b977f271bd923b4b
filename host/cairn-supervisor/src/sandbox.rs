//! Isolated containers (design §6): a container whose `/` is a directory of its own.
//!
//! Services, exec commands and exec checks of an isolated container run in a mount
//! namespace whose root is the container's root directory, with the host's system
//! directories (`/usr`, and `/bin`, `/sbin`, `/lib*` where they are not links into it)
//! bound read-only, a fresh `/proc`, a small `/dev` (null, zero, full, random, urandom,
//! tty) and writable `/tmp`. The child enters it between fork and exec
//! ([`Root::confine`]): `unshare(CLONE_NEWNS)`, the bind mounts, `pivot_root`, `chdir`, then the
//! user switch. The command is the process the supervisor started: its signals, exit code
//! and process group are exactly those of a shared container (a wrapper such as bubblewrap
//! would leave a monitor process in between that does not forward signals).
//!
//! The files API sees the same tree from the host side ([`Root::resolve`]): paths resolve
//! inside the root as the kernel's `openat2(RESOLVE_IN_ROOT)` does, so `..` and symlinks
//! (absolute or relative) can never leave it; the read-only system directories read from
//! the host beneath themselves only (`RESOLVE_BENEATH`: a link out of `/usr` is `permission
//! denied`) and refuse writes with `read-only file system`, as do `/proc` and `/dev`.
//!
//! What this is not: a boundary against a workload that runs as root. The container has
//! no user or pid namespace, so such a process keeps root's capabilities and sees the
//! host's processes in `/proc` (and through `/proc/<pid>/root`, the filesystems of those
//! of its own uid). Run untrusted workloads as a `user:` of their own, not root.

use crate::spawn::Command;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// System directories bound read-only from the host (when they are real directories there;
/// a host link such as `/bin -> usr/bin` is copied into the root as the same link).
const SYSTEM_DIRS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];
/// Device nodes bound into the container's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const AT_RECURSIVE: libc::c_uint = 0x8000;

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
    /// System directories bound read-only: their name under `/` and a descriptor of the
    /// host's directory (the same for every container: see [`host_dir`]).
    binds: Vec<(String, &'static OwnedFd)>,
    /// System names that are links on the host (`bin -> usr/bin`): (name, target).
    links: Vec<(String, String)>,
    /// Strict tenancy: the container's id range and namespaces.
    strict: Option<crate::namespaces::Strict>,
}

/// A descriptor of the host's system directory `/<name>`, opened once for the whole
/// process: every container resolves through the same one (a descriptor per container and
/// directory added up with a thousand containers).
fn host_dir(name: &str) -> std::io::Result<&'static OwnedFd> {
    static DIRS: Mutex<Vec<(String, &'static OwnedFd)>> = Mutex::new(Vec::new());
    let mut dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, fd)) = dirs.iter().find(|(n, _)| n == name) {
        return Ok(fd);
    }
    let fd = nix::fcntl::open(
        &Path::new("/").join(name),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(os_err)?;
    // Kept for the process's life: at most one per name of `SYSTEM_DIRS`.
    let fd: &'static OwnedFd = Box::leak(Box::new(fd));
    dirs.push((name.to_string(), fd));
    Ok(fd)
}

/// Names under `/` that are mount points inside the container (`/proc`, `/dev`): the files
/// API treats them as read-only, so nothing it writes hides under a mount.
const RESERVED: &[&str] = &["proc", "dev"];

/// Where a container path leads on the host.
pub(crate) struct Resolved {
    /// `/proc/self/fd/<dir>/<name>` (the final element not followed) or `/proc/self/fd/<fd>`
    /// (followed).
    path: PathBuf,
    /// The descriptor the path goes through, kept open while the path is used.
    _fd: OwnedFd,
    /// A system directory (bound read-only) or a mount point: writes are refused.
    read_only: bool,
}

impl Resolved {
    /// The host path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes must be refused.
    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }
}

/// `path.Clean` of an absolute path, as a list of its elements (`..` at `/` stays at `/`).
pub(crate) fn clean(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk_onto(&mut out, path);
    out
}

/// Applies the elements of `path` to the element list `out` (`..` drops one, at `/` none).
fn walk_onto(out: &mut Vec<String>, path: &Path) {
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
}

fn cstr(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds a NUL"))
}

fn os_err(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

/// `openat2` from `dir` with `resolve`; a link leading out of a system directory
/// (`EXDEV`) is refused as `permission denied`.
fn open_in(
    dir: &OwnedFd,
    rel: &Path,
    flags: OFlag,
    resolve: ResolveFlag,
) -> std::io::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(dir, rel, how).map_err(|e| match e {
        nix::Error::EXDEV => std::io::Error::from_raw_os_error(libc::EACCES),
        e => os_err(e),
    })
}

/// Makes the entry `name` of `dir` a directory with `mode`, replacing whatever else the
/// container left there (a link, a file); never follows a link.
fn ensure_dir(dir: &OwnedFd, name: &str, mode: u32) -> std::io::Result<()> {
    use nix::sys::stat::{SFlag, fstatat};
    use nix::unistd::{UnlinkatFlags, unlinkat};
    let follow = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    match fstatat(dir, name, follow) {
        Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {}
        Ok(_) => {
            unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).map_err(os_err)?;
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(os_err)?;
        }
        Err(nix::Error::ENOENT) => {
            nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(mode)).map_err(os_err)?;
        }
        Err(e) => return Err(os_err(e)),
    }
    let d = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(os_err)?;
    nix::sys::stat::fchmod(&d, Mode::from_bits_truncate(mode)).map_err(os_err)
}

/// Makes the entry `name` of `dir` the link `target`, replacing whatever else is there.
fn ensure_link(dir: &OwnedFd, name: &str, target: &Path) -> std::io::Result<()> {
    use nix::unistd::{UnlinkatFlags, unlinkat};
    if nix::fcntl::readlinkat(dir, name).is_ok_and(|t| Path::new(&t) == target) {
        return Ok(());
    }
    match unlinkat(dir, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::Error::ENOENT) => {}
        // A directory in its place: the container made one; it must go.
        Err(nix::Error::EISDIR) => {
            let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", dir.as_raw_fd()));
            std::fs::remove_dir_all(path)?;
        }
        Err(e) => return Err(os_err(e)),
    }
    nix::unistd::symlinkat(target, dir, name).map_err(os_err)
}

impl Root {
    /// Prepares `dir` as a container root (creating it and the mount points it needs,
    /// through descriptors, so links the container left are never followed) and opens it.
    pub fn prepare(dir: impl Into<PathBuf>) -> std::io::Result<Root> {
        Root::prepare_with(dir, None)
    }

    /// [`Root::prepare`] for a strict container (`namespaces.rs`): its root, `/tmp` and
    /// `/root` are owned by the container's root (the first id of its range), and its
    /// processes run in its user, pid and network namespaces.
    pub fn prepare_strict(
        dir: impl Into<PathBuf>,
        opts: crate::namespaces::StrictOptions,
    ) -> std::io::Result<Root> {
        Root::prepare_with(dir, Some(opts))
    }

    fn prepare_with(
        dir: impl Into<PathBuf>,
        strict: Option<crate::namespaces::StrictOptions>,
    ) -> std::io::Result<Root> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let fd = nix::fcntl::open(
            &dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(os_err)?;
        // The root itself for the *at calls below (O_PATH cannot fchmod or mkdirat on all
        // kernels, so a readable descriptor).
        let rw = nix::fcntl::open(
            &dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(os_err)?;
        let mut binds = Vec::new();
        let mut links = Vec::new();
        for name in SYSTEM_DIRS {
            let host = Path::new("/").join(name);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&host)?;
                ensure_link(&rw, name, &target)?;
                links.push((name.to_string(), target.to_string_lossy().into_owned()));
            } else if meta.is_dir() {
                ensure_dir(&rw, name, 0o755)?;
                binds.push((name.to_string(), host_dir(name)?));
            }
        }
        for (name, mode) in [
            ("proc", 0o555),
            ("dev", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
        ] {
            ensure_dir(&rw, name, mode)?;
        }
        if let Some(o) = &strict {
            let owner = (
                Some(nix::unistd::Uid::from_raw(o.ids.base)),
                Some(nix::unistd::Gid::from_raw(o.ids.base)),
            );
            nix::unistd::fchown(&rw, owner.0, owner.1).map_err(os_err)?;
            for name in ["tmp", "root"] {
                nix::unistd::fchownat(
                    &rw,
                    name,
                    owner.0,
                    owner.1,
                    nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(os_err)?;
            }
        }
        Ok(Root {
            inner: Arc::new(RootInner {
                dir,
                fd,
                binds,
                links,
                strict: strict.map(crate::namespaces::Strict::new),
            }),
        })
    }

    /// The root on the host.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The strict container's id range (`None` unless strict): what the files API maps
    /// owners through.
    pub fn ids(&self) -> Option<crate::namespaces::IdMap> {
        self.inner.strict.as_ref().map(|s| s.opts.ids)
    }

    /// The strict container's namespaces, when strict.
    pub(crate) fn strict(&self) -> Option<&crate::namespaces::Strict> {
        self.inner.strict.as_ref()
    }

    /// The system directory a cleaned path starts in, following the host's system links
    /// (`/bin/sh` is `/usr/bin/sh` on a merged-/usr host): the bind's descriptor and the
    /// rest of the path.
    fn system_path(&self, elems: &[String]) -> Option<(&(String, &'static OwnedFd), Vec<String>)> {
        let first = elems.first()?;
        let find = |name: &str| self.inner.binds.iter().find(|(b, _)| b == name);
        if let Some(bind) = find(first) {
            return Some((bind, elems[1..].to_vec()));
        }
        let (_, target) = self.inner.links.iter().find(|(n, _)| n == first)?;
        let mut rest: Vec<String> = clean(&Path::new("/").join(target));
        rest.extend(elems[1..].iter().cloned());
        let bind = find(rest.first()?)?;
        Some((bind, rest[1..].to_vec()))
    }

    /// Where the container path `path` (absolute) leads on the host. With `follow`, a
    /// final symlink is followed; without, the path names the entry itself, through a
    /// descriptor of its parent. Paths resolve inside the root (`RESOLVE_IN_ROOT`), and
    /// inside a system directory without leaving it (`RESOLVE_BENEATH`: a link out of it
    /// is `permission denied`), so no path reaches the host outside the two.
    pub(crate) fn resolve(&self, path: &Path, follow: bool) -> std::io::Result<Resolved> {
        let elems = clean(path);
        let (base, elems, resolve, read_only) = match self.system_path(&elems) {
            Some(((_, fd), rest)) => (*fd, rest, ResolveFlag::RESOLVE_BENEATH, true),
            None => {
                let reserved = elems
                    .first()
                    .is_some_and(|e| RESERVED.contains(&e.as_str()));
                (
                    &self.inner.fd,
                    elems,
                    ResolveFlag::RESOLVE_IN_ROOT,
                    reserved,
                )
            }
        };
        let rel = |e: &[String]| {
            if e.is_empty() {
                PathBuf::from(".")
            } else {
                e.iter().collect()
            }
        };
        if follow || elems.is_empty() {
            let fd = open_in(base, &rel(&elems), OFlag::O_PATH, resolve)?;
            let read_only = read_only || self.under_mount_point(&fd);
            return Ok(Resolved {
                path: PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
                _fd: fd,
                read_only,
            });
        }
        let (name, parent) = elems.split_last().expect("not empty");
        let fd = open_in(
            base,
            &rel(parent),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            resolve,
        )?;
        // A name at the top that is a system link or mount point (`/lib64`, `/proc`).
        let top = parent.is_empty()
            && (RESERVED.contains(&name.as_str())
                || self.inner.links.iter().any(|(n, _)| n == name)
                || self.inner.binds.iter().any(|(b, _)| b == name));
        let read_only = read_only || top || self.under_mount_point(&fd);
        Ok(Resolved {
            path: PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd())),
            _fd: fd,
            read_only,
        })
    }

    /// Whether what `fd` resolved to (inside the root) lies under one of the root's mount
    /// points (`usr`, `proc`, …), reached through a link the container made: the host
    /// sees only the empty directory there, which the container never sees, so writes are
    /// refused rather than hidden under the mount.
    fn under_mount_point(&self, fd: &OwnedFd) -> bool {
        let Ok(real) = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) else {
            return true;
        };
        let Ok(rest) = real.strip_prefix(&self.inner.dir) else {
            return false;
        };
        let first = rest
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy());
        first.is_some_and(|f| {
            RESERVED.contains(&f.as_ref()) || self.inner.binds.iter().any(|(b, _)| *b == f)
        })
    }

    /// The metadata of `path` as a process in the container sees it, links followed the
    /// way its kernel would (into the system directories too, where the root alone has
    /// only mount points): for looking programs and directories up, never for writing.
    pub(crate) fn view_metadata(&self, path: &Path) -> std::io::Result<std::fs::Metadata> {
        let mut todo: std::collections::VecDeque<String> = clean(path).into();
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        let host = |cur: &[String]| -> PathBuf {
            match self.system_path(cur) {
                Some(((name, _), rest)) => rest
                    .iter()
                    .fold(Path::new("/").join(name), |p, e| p.join(e)),
                None => cur.iter().fold(self.inner.dir.clone(), |p, e| p.join(e)),
            }
        };
        while let Some(e) = todo.pop_front() {
            cur.push(e);
            let h = host(&cur);
            if !std::fs::symlink_metadata(&h)?.file_type().is_symlink() {
                continue;
            }
            hops += 1;
            if hops > 40 {
                return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
            }
            let target = std::fs::read_link(&h)?;
            cur.pop();
            let mut next: Vec<String> = if target.is_absolute() {
                Vec::new()
            } else {
                cur.clone()
            };
            walk_onto(&mut next, &target);
            for e in next.into_iter().rev() {
                todo.push_front(e);
            }
            cur.clear();
        }
        std::fs::metadata(host(&cur))
    }

    /// Moves the host file `from` (on the same filesystem) to the container path `to`,
    /// replacing what is there without following it: how the host puts a socket it bound
    /// outside into the root.
    pub fn move_in(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let dest = self.resolve(to, false)?;
        if dest.read_only() {
            return Err(std::io::Error::from_raw_os_error(libc::EROFS));
        }
        std::fs::rename(from, dest.path())
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
        // A strict container: its namespaces (made at its first process) and the container
        // credentials, root's by default.
        let strict = match &self.inner.strict {
            Some(st) => {
                let ns = st.namespaces()?;
                Some(
                    crate::namespaces::ChildSetup::new(ns, creds.unwrap_or((0, 0)))
                        .map_err(std::io::Error::other)?,
                )
            }
            None => None,
        };
        let root = &self.inner.dir;
        let root_c = cstr(root)?;
        let mut binds = Vec::new();
        for (b, _) in &self.inner.binds {
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
                if let Some(st) = &strict {
                    st.enter_others()?;
                }
                check(libc::unshare(libc::CLONE_NEWNS))?;
                check(libc::mount(
                    none,
                    c"/".as_ptr(),
                    none,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                // The root becomes a mount of its own, so that it can be pivoted to.
                check(libc::mount(
                    root_c.as_ptr(),
                    root_c.as_ptr(),
                    none,
                    libc::MS_BIND | libc::MS_REC,
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
                    // Read-only with every submount (mount_setattr, Linux 5.12); else the
                    // top mount only.
                    let attr = MountAttr {
                        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID,
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    let r = libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        dst.as_ptr(),
                        AT_RECURSIVE,
                        &attr as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    );
                    if r < 0 {
                        check(libc::mount(
                            none,
                            dst.as_ptr(),
                            none,
                            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_NOSUID,
                            std::ptr::null(),
                        ))?;
                    }
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
                // pivot_root, not chroot: the host's tree is detached from this namespace
                // altogether, so no chroot trick leads back to it.
                // Where pivot_root cannot work (the host itself runs in a chroot or from an
                // initramfs root), chroot is the fallback.
                check(libc::chdir(root_c.as_ptr()))?;
                if libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) == 0 {
                    check(libc::umount2(c".".as_ptr(), libc::MNT_DETACH))?;
                } else {
                    check(libc::chroot(c".".as_ptr()))?;
                }
                check(libc::chdir(wd.as_ptr()))?;
                if let Some(st) = &strict {
                    st.enter_user()?;
                } else if let Some((uid, gid)) = creds {
                    // Raw calls: the child shares the supervisor's memory (`spawn`).
                    check(crate::spawn::sys::setgroups_none())?;
                    check(crate::spawn::sys::setresgid(gid, gid, gid))?;
                    check(crate::spawn::sys::setresuid(uid, uid, uid))?;
                }
                Ok(())
            });
        }
        Ok(())
    }
}

/// The metadata of `path` as the container sees it (links followed inside the root), or as
/// the host does for a shared container.
pub(crate) fn metadata(root: Option<&Root>, path: &Path) -> std::io::Result<std::fs::Metadata> {
    match root {
        Some(r) => r.view_metadata(path),
        None => std::fs::metadata(path),
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
        // In a strict container the ids are the container's: always switched to.
        Some(r) if r.strict().is_some() => r.confine(cmd, working_dir, creds),
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
