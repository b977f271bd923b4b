//! Strict tenancy: the user, pid and (optionally) network namespaces of an isolated
//! container, on top of the mount namespace of `sandbox.rs`.
//!
//! Each strict container gets, lazily at its first process:
//! - a **user namespace** mapping container ids `0..RANGE_SIZE` onto a host range of its own
//!   ([`IdMap`], allocated and persisted by an [`IdAllocator`]), so its root is an
//!   unprivileged host uid that owns nothing outside the container's root;
//! - a **pid namespace** whose pid 1 is a tiny init (it only reaps orphans), forked by the
//!   spawner thread with `PR_SET_PDEATHSIG`. Services, execs and exec checks are forked into
//!   it by the same thread (`setns(CLONE_NEWPID)` on that thread sets only its
//!   `pid_for_children`, which is allowed in a multithreaded process, and is set back right
//!   after the fork), so they are still the supervisor's own children: Pebble's signals,
//!   process groups and exit codes are unchanged, and no service is ever pid 1. When the
//!   init dies the kernel kills everything in the namespace: dropping the container's
//!   namespaces SIGKILLs the init;
//! - with [`NetMode::None`], a **network namespace** with only a loopback interface; and
//!   always IPC and UTS namespaces (System V IPC and the host name of its own).
//!
//! The namespaces are made by a short-lived helper process (user and network: a process
//! that unshares them and waits while the supervisor writes its id maps) and by the init
//! (pid); their descriptors are kept, and each child joins them between fork and exec
//! (`ChildSetup`): IPC, UTS and network first, then the mounts (as host root), then the user
//! namespace, the container credentials, the capability bounding set, a minimal capability
//! set and `no_new_privs`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

/// Number of ids in a container's range (uids and gids alike).
pub const RANGE_SIZE: u32 = 65536;
/// The default first host id of the containers' ranges: far above the ranges
/// `/etc/subuid` usually hands out (from 100000) and the system's own users.
pub const DEFAULT_ID_BASE: u32 = 0x4000_0000;
/// The id an unmapped host id shows as inside a container (the kernel's overflow id).
pub const OVERFLOW_ID: u32 = 65534;

/// Whether tenants are kept apart from each other and from the host (`cairn run
/// --tenancy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tenancy {
    /// Containers as configured (shared or isolated), workloads trusted.
    #[default]
    Shared,
    /// Every container isolated, in user, pid (and optionally network) namespaces of its
    /// own, with a minimal environment and capability set.
    Strict,
}

/// Which processes a strict container's workloads may reach over the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NetMode {
    /// The host's network namespace: the workload can listen and connect as a host process.
    #[default]
    Host,
    /// A network namespace of its own with only loopback: nothing on the host's network,
    /// not even its loopback services, is reachable.
    None,
}

/// How a strict container is set up: what the operator chose for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrictOptions {
    /// The container's host id range.
    pub ids: IdMap,
    /// Its network.
    pub net: NetMode,
}

/// A container's id range: container id `n` is host id `base + n`, for `n < count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// The host id of the container's root.
    pub base: u32,
    /// How many ids are mapped.
    pub count: u32,
}

impl IdMap {
    /// The host id of container id `id`, if it is mapped.
    pub fn to_host(&self, id: u32) -> Option<u32> {
        (id < self.count).then(|| self.base + id)
    }

    /// The container id of host id `host` ([`OVERFLOW_ID`] when it is not mapped, as the
    /// kernel shows it inside).
    pub fn to_container(&self, host: u32) -> u32 {
        match host.checked_sub(self.base) {
            Some(n) if n < self.count => n,
            _ => OVERFLOW_ID,
        }
    }

    /// Host ids of container credentials, or an error naming the one outside the range.
    pub fn creds_to_host(&self, (uid, gid): (u32, u32)) -> Result<(u32, u32), String> {
        match (self.to_host(uid), self.to_host(gid)) {
            (Some(u), Some(g)) => Ok((u, g)),
            _ => Err(format!(
                "user ID {uid} or group ID {gid} is outside the container's {} ids",
                self.count
            )),
        }
    }
}

/// Hands out distinct host id ranges, one per key (a container directory), and remembers
/// them in a file, so a container keeps its range (and its files their owners) across
/// restarts of the host.
pub struct IdAllocator {
    path: PathBuf,
    base: u32,
    lock: Mutex<()>,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct RangesFile {
    /// Key → first host id.
    ranges: BTreeMap<String, u32>,
}

impl IdAllocator {
    /// An allocator persisted in `path` whose new ranges start at host id `base` or above.
    pub fn new(path: impl Into<PathBuf>, base: u32) -> Self {
        IdAllocator {
            path: path.into(),
            base,
            lock: Mutex::new(()),
        }
    }

    fn read(&self) -> std::io::Result<RangesFile> {
        match std::fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("cannot parse {}: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RangesFile::default()),
            Err(e) => Err(e),
        }
    }

    /// The range of `key`: the one it had, else the lowest free one at or above the base
    /// (persisted before it is returned).
    pub fn allocate(&self, key: &str) -> std::io::Result<IdMap> {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = self.read()?;
        if let Some(&base) = file.ranges.get(key) {
            return Ok(IdMap {
                base,
                count: RANGE_SIZE,
            });
        }
        let taken = |b: u64| {
            file.ranges.values().any(|&o| {
                let o = u64::from(o);
                b < o + u64::from(RANGE_SIZE) && o < b + u64::from(RANGE_SIZE)
            })
        };
        let mut b = u64::from(self.base);
        while taken(b) {
            b += u64::from(RANGE_SIZE);
        }
        if b + u64::from(RANGE_SIZE) > u64::from(u32::MAX) {
            return Err(std::io::Error::other(
                "no host id range left for the container",
            ));
        }
        file.ranges.insert(key.to_string(), b as u32);
        let data = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
        crate::persist::atomic_write(&self.path, &data)?;
        Ok(IdMap {
            base: b as u32,
            count: RANGE_SIZE,
        })
    }

    /// Forgets `key`'s range (its container was removed), so it can be handed out again.
    pub fn release(&self, key: &str) -> std::io::Result<()> {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = self.read()?;
        if file.ranges.remove(key).is_some() {
            let data = serde_json::to_vec_pretty(&file).map_err(std::io::Error::other)?;
            crate::persist::atomic_write(&self.path, &data)?;
        }
        Ok(())
    }
}

/// argv[0] of an init exec'd from the host's binary (see [`run_init_if_asked`]).
const INIT_ARGV0: &str = "cairn-ns-init";
/// argv[1] of the init template (see [`Template`]).
const TEMPLATE_ARG: &str = "--template";

/// Whether this program runs [`run_init_if_asked`] first thing: then the init is the
/// program itself exec'd afresh (a few hundred KiB), rather than a fork of the supervisor
/// that would keep a copy-on-write snapshot of its whole memory alive.
static INIT_EXEC: OnceLock<CString> = OnceLock::new();

/// For a binary's `main`, before anything else: when the process was started as a
/// container's init, runs it (never returns); otherwise notes that this binary can be
/// started so, and returns.
pub fn run_init_if_asked() {
    let mut args = std::env::args_os();
    if args.next().as_deref() == Some(std::ffi::OsStr::new(INIT_ARGV0)) {
        if args.next().as_deref() == Some(std::ffi::OsStr::new(TEMPLATE_ARG)) {
            // SAFETY: single-threaded at this point (main's first call); template_loop
            // makes plain system calls only.
            unsafe { template_loop() }
        }
        // SAFETY: single-threaded at this point (main's first call); init_loop makes
        // plain system calls only.
        unsafe { init_loop() }
    }
    let _ = INIT_EXEC.set(c"/proc/self/exe".to_owned());
}

/// The init's life: block every signal, then reap whatever the kernel re-parents to it.
/// Only async-signal-safe calls (it may run in a forked child of a multithreaded process).
///
/// # Safety
/// Must run in a process of its own (it never returns).
unsafe fn init_loop() -> ! {
    // SAFETY: plain system calls on stack memory.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let mut chld: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut chld);
        libc::sigaddset(&mut chld, libc::SIGCHLD);
        let timeout = libc::timespec {
            tv_sec: 5,
            tv_nsec: 0,
        };
        loop {
            while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            libc::sigtimedwait(&chld, std::ptr::null_mut(), &timeout);
        }
    }
}

/// The init template's life: on each byte read from its stdin, clone an init into a new
/// pid namespace as a child of the template's parent (`CLONE_PARENT`: the supervisor, whose
/// reaper waits for it), and write its pid (or minus the errno) to stdout as 4 bytes; exit
/// at end of input.
///
/// # Safety
/// Must run in a single-threaded process of its own, started by [`Template::start`].
unsafe fn template_loop() -> ! {
    // SAFETY: plain system calls on stack memory; the clone's child (a copy of this
    // single-threaded process) makes plain system calls only.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_NAME, c"cairn-ns-tmpl".as_ptr());
        loop {
            let mut b = 0u8;
            if libc::read(0, (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(0);
            }
            let flags = (libc::CLONE_PARENT | libc::CLONE_NEWPID | libc::SIGCHLD) as libc::c_ulong;
            // A fork (no new stack) whose child is the supervisor's, in a pid namespace of
            // its own. The other arguments are unused without their flags.
            let pid = libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize);
            if pid == 0 {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                // The supervisor holds the writing end of stdin while it lives: a hang-up
                // means it died before the death signal was armed.
                let mut poll = libc::pollfd {
                    fd: 0,
                    events: 0,
                    revents: 0,
                };
                if libc::poll(&mut poll, 1, 0) != 0 && poll.revents & libc::POLLHUP != 0 {
                    libc::_exit(1);
                }
                libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                libc::prctl(libc::PR_SET_NAME, c"cairn-ns-init".as_ptr());
                init_loop();
            }
            let reply: i32 = if pid < 0 {
                -*libc::__errno_location()
            } else {
                pid as i32
            };
            if libc::write(1, (&reply as *const i32).cast(), 4) != 4 {
                libc::_exit(1);
            }
        }
    }
}

/// A process kept to clone strict containers' inits from: the host's binary exec'd once
/// as `cairn-ns-init --template`. An init exec'd afresh dirties ~1 MiB of its own (the
/// binary's relocations), which 1,000 containers multiplied to a GiB; clones of the
/// template share those pages copy-on-write, and nobody writes them, so each init costs
/// little more than its page tables and a stack page. The template is a child of the
/// supervisor (with `PR_SET_PDEATHSIG`), so are the inits it clones.
struct Template {
    /// A pidfd of the template, to kill it when it is given up.
    pidfd: OwnedFd,
    /// Its stdin: one byte asks for an init.
    request: OwnedFd,
    /// Its stdout: the pid of each init, 4 bytes.
    reply: OwnedFd,
}

impl Template {
    /// The template, started at first use (on the spawner thread, in the host's pid
    /// namespace); None when this binary cannot be started as one.
    fn get(slot: &mut Option<Template>) -> std::io::Result<&Template> {
        if slot.is_none() {
            *slot = Some(Template::start()?);
        }
        Ok(slot.as_ref().expect("just set"))
    }

    fn start() -> std::io::Result<Template> {
        let exe = INIT_EXEC
            .get()
            .ok_or_else(|| std::io::Error::other("this binary cannot start an init template"))?;
        let argv0 = CString::new(INIT_ARGV0).expect("no NUL");
        let arg = CString::new(TEMPLATE_ARG).expect("no NUL");
        let (req_r, req_w) = pipe()?;
        let (rep_r, rep_w) = pipe()?;
        // SAFETY: the child makes async-signal-safe system calls only, then execs.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child of fork: plain system calls on descriptors it holds.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                libc::dup2(req_r.as_raw_fd(), 0);
                libc::dup2(rep_w.as_raw_fd(), 1);
                libc::syscall(libc::SYS_close_range, 2u32, u32::MAX, 0u32);
                // A supervisor gone before the death signal was armed closed its end of
                // stdin: the template reads EOF and exits.
                let argv = [argv0.as_ptr(), arg.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
                libc::_exit(127);
            }
        }
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pidfd_open of our own child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: kill of our own child (unreaped: nothing waits for unregistered
            // children but the daemon's sweep, which only reaps exited ones).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(e);
        }
        Ok(Template {
            // SAFETY: a new descriptor we own.
            pidfd: unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            request: req_w,
            reply: rep_r,
        })
    }

    /// Asks for one init; its pid.
    fn clone_init(&self) -> std::io::Result<i32> {
        if nix::unistd::write(&self.request, b"x")? != 1 {
            return Err(std::io::Error::other("the init template took no request"));
        }
        let mut poll = libc::pollfd {
            fd: self.reply.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll of one descriptor we hold, on stack memory.
        match unsafe { libc::poll(&mut poll, 1, 2000) } {
            n if n < 0 => return Err(std::io::Error::last_os_error()),
            0 => return Err(std::io::Error::other("the init template did not answer")),
            _ => {}
        }
        let mut b = [0u8; 4];
        if nix::unistd::read(&self.reply, &mut b)? != 4 {
            return Err(std::io::Error::other("the init template is gone"));
        }
        match i32::from_ne_bytes(b) {
            pid if pid > 0 => Ok(pid),
            errno => Err(std::io::Error::from_raw_os_error(-errno)),
        }
    }
}

impl Drop for Template {
    fn drop(&mut self) {
        // SAFETY: pidfd_send_signal on our own pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }
}

/// The init template, used on the spawner thread only.
static TEMPLATE: Mutex<Option<Template>> = Mutex::new(None);

/// An init cloned from the template: its pid and a pidfd. Errors when there is no
/// template (a test binary that does not start as one) or it failed; the template is then
/// given up, to be started again at the next init.
fn init_from_template() -> std::io::Result<(i32, OwnedFd)> {
    let mut slot = TEMPLATE.lock().unwrap_or_else(|e| e.into_inner());
    let cloned = Template::get(&mut slot).and_then(Template::clone_init);
    let pid = match cloned {
        Ok(pid) => pid,
        Err(e) => {
            *slot = None;
            return Err(e);
        }
    };
    // SAFETY: pidfd_open of our own child (the template's clone has the supervisor for
    // parent), which cannot be reaped before it is registered.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: kill of our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        return Err(e);
    }
    // SAFETY: a new descriptor we own.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// The process's own pid namespace, which the spawner thread returns to after a fork.
fn host_pid_ns() -> std::io::Result<&'static OwnedFd> {
    static NS: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(ns) = NS.get() {
        return Ok(ns);
    }
    let fd = open_ns(Path::new("/proc/self/ns/pid"))?;
    Ok(NS.get_or_init(|| fd))
}

fn open_ns(path: &Path) -> std::io::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(fd)
}

fn setns(fd: RawFd, kind: libc::c_int) -> std::io::Result<()> {
    // SAFETY: setns on a descriptor we hold; affects only the calling thread.
    if unsafe { libc::setns(fd, kind) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Runs `fork` (a fork on the calling thread, the spawner) so that its child is created in
/// the pid namespace `ns`, then puts the thread back: only its `pid_for_children` changes.
pub(crate) fn fork_in_pid_ns<T>(ns: &OwnedFd, fork: impl FnOnce() -> T) -> std::io::Result<T> {
    let host = host_pid_ns()?;
    setns(ns.as_raw_fd(), libc::CLONE_NEWPID)?;
    let out = fork();
    if let Err(e) = setns(host.as_raw_fd(), libc::CLONE_NEWPID) {
        // Every later child would be born in this container: nothing sane is left.
        panic!("cannot return the spawner thread to the host's pid namespace: {e}");
    }
    Ok(out)
}

/// The namespaces of one strict container, alive while this is held (the init is killed,
/// and with it every process left in the pid namespace, when it is dropped).
pub(crate) struct Namespaces {
    /// The init's pid (in the host's namespace).
    init: i32,
    /// A pidfd of the init, to signal it without a pid-reuse race, and to fork into its
    /// pid namespace through (`setns` takes a pidfd, Linux 5.8: no namespace descriptor
    /// of its own to hold).
    init_fd: OwnedFd,
    /// Its exit code, once reaped.
    exited: Mutex<oneshot::Receiver<crate::reaper::ExitCode>>,
    user: OwnedFd,
    /// IPC, UTS and (with [`NetMode::None`]) network: owned by the host's user namespace,
    /// joined before the user namespace.
    others: Vec<OwnedFd>,
    /// The container's id range.
    ids: IdMap,
}

impl std::fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaces")
            .field("init", &self.init)
            .field("ids", &self.ids)
            .finish()
    }
}

impl Namespaces {
    /// The pid namespace children are forked into (the init's pidfd, which `setns`
    /// takes for it).
    pub(crate) fn pid_ns(&self) -> &OwnedFd {
        &self.init_fd
    }

    fn alive(&self) -> bool {
        let mut rx = self.exited.lock().unwrap_or_else(|e| e.into_inner());
        matches!(rx.try_recv(), Err(oneshot::error::TryRecvError::Empty))
    }

    /// SIGKILLs the init: the kernel kills every process of the namespace with it.
    pub(crate) fn kill_all(&self) {
        // SAFETY: pidfd_send_signal on our own pidfd.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.init_fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
        }
    }

    /// Creates the namespaces (on the spawner thread).
    fn create(opts: StrictOptions) -> std::io::Result<Namespaces> {
        crate::reaper::on_spawner(move |register| {
            let (user, others) = make_user_ns(opts)?;
            let (init, init_fd) = make_init()?;
            let exited = register(init);
            Ok(Namespaces {
                init,
                init_fd,
                exited: Mutex::new(exited),
                user,
                others,
                ids: opts.ids,
            })
        })?
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Brings `lo` up in the calling process's network namespace. Async-signal-safe.
///
/// # Safety
/// Plain system calls on stack memory.
unsafe fn loopback_up() -> bool {
    // SAFETY: socket/ioctl on a zeroed ifreq of our own.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return false;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let ok = libc::ioctl(s, libc::SIOCGIFFLAGS as _, &mut req) == 0 && {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS as _, &req) == 0
        };
        libc::close(s);
        ok
    }
}

/// Makes the user namespace (and the network namespace when asked) through a helper
/// process: it unshares them and waits while this process writes its id maps, then the
/// namespaces live on through the descriptors returned.
fn make_user_ns(opts: StrictOptions) -> std::io::Result<(OwnedFd, Vec<OwnedFd>)> {
    let (go_r, go_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let net = opts.net == NetMode::None;
    // SAFETY: the child makes async-signal-safe system calls only, then _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child of fork, plain system calls on descriptors it holds.
        unsafe {
            libc::dup2(go_r.as_raw_fd(), 0);
            libc::dup2(ready_w.as_raw_fd(), 1);
            libc::syscall(libc::SYS_close_range, 2u32, u32::MAX, 0u32);
            // IPC and UTS always (System V IPC objects and the host name are the
            // container's own), owned like the network by the host's user namespace.
            let mut ok = libc::unshare(libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) == 0;
            if net {
                ok = ok && libc::unshare(libc::CLONE_NEWNET) == 0 && loopback_up();
            }
            ok = ok && libc::unshare(libc::CLONE_NEWUSER) == 0;
            if ok {
                libc::write(1, b"x".as_ptr().cast(), 1);
                let mut b = 0u8;
                libc::read(0, (&mut b as *mut u8).cast(), 1);
            }
            libc::_exit(if ok { 0 } else { 1 });
        }
    }
    drop(go_r);
    drop(ready_w);
    let reap = || {
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    let mut b = [0u8; 1];
    let n = nix::unistd::read(&ready_r, &mut b);
    if n != Ok(1) {
        drop(go_w);
        reap();
        return Err(std::io::Error::other(
            "cannot create the container's user namespace",
        ));
    }
    let result = (|| {
        let map = format!("0 {} {}\n", opts.ids.base, opts.ids.count);
        std::fs::write(format!("/proc/{pid}/uid_map"), &map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), &map)?;
        let user = open_ns(Path::new(&format!("/proc/{pid}/ns/user")))?;
        let mut others = Vec::new();
        let kinds: &[&str] = if net {
            &["ipc", "uts", "net"]
        } else {
            &["ipc", "uts"]
        };
        for kind in kinds {
            others.push(open_ns(Path::new(&format!("/proc/{pid}/ns/{kind}")))?);
        }
        Ok((user, others))
    })();
    drop(go_w);
    reap();
    result
}

/// Forks the init into a new pid namespace (on the spawner thread: `unshare(CLONE_NEWPID)`
/// sets the thread's `pid_for_children`, which is set back right after the fork). Returns
/// its pid and a pidfd (which also stands for its pid namespace).
fn make_init() -> std::io::Result<(i32, OwnedFd)> {
    let exe = INIT_EXEC.get().cloned();
    if exe.is_some() {
        match init_from_template() {
            Ok(init) => return Ok(init),
            Err(e) => tracing::warn!("Cannot clone a container init from the template: {e}"),
        }
    }
    let host = host_pid_ns()?;
    let argv0 = CString::new(INIT_ARGV0).expect("no NUL");
    let (go_r, go_w) = pipe()?;
    // SAFETY: unshare of the calling thread's pid_for_children only.
    if unsafe { libc::unshare(libc::CLONE_NEWPID) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the child makes async-signal-safe system calls only (or execs).
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: in the child of fork: plain system calls, then exec or the init loop.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            libc::dup2(go_r.as_raw_fd(), 0);
            libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32);
            // The supervisor closes its end once the death signal is armed: EOF without a
            // byte means it died before.
            let mut b = 0u8;
            if libc::read(0, (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(1);
            }
            libc::close(0);
            libc::prctl(libc::PR_SET_NAME, c"cairn-ns-init".as_ptr());
            if let Some(exe) = &exe {
                let argv = [argv0.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            init_loop();
        }
    }
    let fork_err = std::io::Error::last_os_error();
    if let Err(e) = setns(host.as_raw_fd(), libc::CLONE_NEWPID) {
        panic!("cannot return the spawner thread to the host's pid namespace: {e}");
    }
    if pid < 0 {
        return Err(fork_err);
    }
    drop(go_r);
    let opened = (|| {
        // SAFETY: pidfd_open of our own child, which cannot be reaped before it is registered.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a new descriptor we own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    })();
    match opened {
        Ok(pidfd) => {
            let _ = nix::unistd::write(&go_w, b"x");
            Ok((pid, pidfd))
        }
        Err(e) => {
            // SAFETY: kill of our own unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(e)
        }
    }
}

/// A strict container's settings and its namespaces (made at its first process, made
/// again if its init was killed).
#[derive(Debug)]
pub(crate) struct Strict {
    pub(crate) opts: StrictOptions,
    ns: Mutex<Option<Arc<Namespaces>>>,
}

impl Strict {
    pub(crate) fn new(opts: StrictOptions) -> Self {
        Strict {
            opts,
            ns: Mutex::new(None),
        }
    }

    /// The container's namespaces, created if needed.
    pub(crate) fn namespaces(&self) -> std::io::Result<Arc<Namespaces>> {
        let mut ns = self.ns.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = ns.as_ref().filter(|n| n.alive()) {
            return Ok(n.clone());
        }
        let n = Arc::new(Namespaces::create(self.opts)?);
        *ns = Some(n.clone());
        Ok(n)
    }

    /// Kills every process of the container (the init, and with it the namespace) and
    /// forgets the namespaces; the next process makes them anew.
    pub(crate) fn kill_all(&self) {
        if let Some(n) = self.ns.lock().unwrap_or_else(|e| e.into_inner()).take() {
            n.kill_all();
        }
    }

    /// The namespaces if they exist.
    pub(crate) fn current(&self) -> Option<Arc<Namespaces>> {
        self.ns.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Capabilities a strict container's root keeps (in its own user namespace only). Docker's
/// default set without `MKNOD`, `NET_RAW`, `SYS_CHROOT`, `AUDIT_WRITE`, `SETFCAP` and
/// `SETPCAP`: owning and changing its own files, dropping to another of its users,
/// signalling its own processes, binding low ports.
pub const ROOT_CAPS: &[u32] = &[
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    10, // CAP_NET_BIND_SERVICE
];

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// What a child of a strict container is given between fork and exec: descriptors of the
/// namespaces to join and its credentials (container ids).
pub(crate) struct ChildSetup {
    user: RawFd,
    /// IPC, UTS and maybe network namespaces.
    others: Vec<RawFd>,
    creds: (u32, u32),
    /// Keeps the descriptors open until the command is dropped.
    _ns: Arc<Namespaces>,
}

impl ChildSetup {
    /// The set-up of a child that runs as container credentials `creds`.
    pub(crate) fn new(ns: Arc<Namespaces>, creds: (u32, u32)) -> Result<Self, String> {
        ns.ids.creds_to_host(creds)?;
        Ok(ChildSetup {
            user: ns.user.as_raw_fd(),
            others: ns.others.iter().map(|f| f.as_raw_fd()).collect(),
            creds,
            _ns: ns,
        })
    }

    /// Joins the IPC, UTS and network namespaces (which need the host's root); before the
    /// mounts. Async-signal-safe.
    pub(crate) fn enter_others(&self) -> std::io::Result<()> {
        for fd in &self.others {
            setns(*fd, 0)?;
        }
        Ok(())
    }

    /// Joins the user namespace, takes the container credentials, keeps only
    /// [`ROOT_CAPS`] in the bounding set (and as root's capabilities; none for any other
    /// user) and sets `no_new_privs`: after the mounts and `pivot_root`, which need the
    /// host's root. Async-signal-safe.
    pub(crate) fn enter_user(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| {
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        let (uid, gid) = self.creds;
        // SAFETY: plain system calls on the child's own state and stack memory.
        unsafe {
            setns(self.user, libc::CLONE_NEWUSER)?;
            // Raw calls: the child shares the supervisor's memory (`spawn`).
            check(crate::spawn::sys::setgroups_none())?;
            check(crate::spawn::sys::setresgid(gid, gid, gid))?;
            // The uid was not the namespace's root before: capabilities survive the switch
            // whatever the target, and are set explicitly below.
            check(crate::spawn::sys::setresuid(uid, uid, uid))?;
            let mut keep: u64 = 0;
            for c in ROOT_CAPS {
                keep |= 1 << c;
            }
            for cap in 0..64 {
                if keep & (1 << cap) != 0 {
                    continue;
                }
                if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0 {
                    // Past the kernel's last capability.
                    if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                        break;
                    }
                    return Err(std::io::Error::last_os_error());
                }
            }
            check(libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ))?;
            let set = if uid == 0 { keep } else { 0 };
            let data = [
                CapData {
                    effective: set as u32,
                    permitted: set as u32,
                    inheritable: 0,
                },
                CapData {
                    effective: (set >> 32) as u32,
                    permitted: (set >> 32) as u32,
                    inheritable: 0,
                },
            ];
            let header = CapHeader {
                version: CAP_V3,
                pid: 0,
            };
            check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as libc::c_int)?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        }
        Ok(())
    }
}

/// The environment a strict container's processes start from instead of the host's: only
/// what Pebble itself sets (its exec's defaults).
pub(crate) fn minimal_env() -> Vec<(String, String)> {
    vec![(
        "PATH".into(),
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_distinct_kept_and_reused_after_release() {
        let t = crate::tests::temp_dir("ns", "ranges");
        std::fs::create_dir_all(&t).unwrap();
        let path = t.join("ids.json");
        let a = IdAllocator::new(&path, 100_000);
        let x = a.allocate("x").unwrap();
        let y = a.allocate("y").unwrap();
        assert_eq!(x.base, 100_000);
        assert_eq!(y.base, 100_000 + RANGE_SIZE);
        // Another allocator on the same file (a restarted host) gives the same ranges.
        let b = IdAllocator::new(&path, 100_000);
        assert_eq!(b.allocate("y").unwrap(), y);
        b.release("x").unwrap();
        assert_eq!(b.allocate("z").unwrap().base, 100_000);
        // A new base only moves new ranges.
        let c = IdAllocator::new(&path, 500_000);
        assert_eq!(c.allocate("y").unwrap(), y);
        assert_eq!(c.allocate("w").unwrap().base, 500_000);
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn ids_map_both_ways() {
        let m = IdMap {
            base: 1000,
            count: 10,
        };
        assert_eq!(m.to_host(0), Some(1000));
        assert_eq!(m.to_host(10), None);
        assert_eq!(m.to_container(1009), 9);
        assert_eq!(m.to_container(0), OVERFLOW_ID);
        assert!(m.creds_to_host((0, 12)).is_err());
    }
}
