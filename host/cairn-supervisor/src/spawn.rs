//! Starts child processes without copying the supervisor's address space.
//!
//! `std::process::Command` forks as soon as a command has a pre-exec hook, and every
//! workload process here has several (its cgroups, its group record, `PR_SET_PDEATHSIG`,
//! the container's namespaces and mounts). A fork of the daemon copies its page tables and
//! write-protects every page it has, so until the child execs, each write by any of the
//! daemon's threads (other tenants' events, the API) is a copy-on-write fault. With a
//! 200 MiB daemon that was ~19 ms per start, and another thread's memory writes 27× slower
//! throughout a flood of starts.
//!
//! [`Command`] keeps the shape of std's (the same builder methods and `pre_exec` hooks) but
//! starts the child as glibc's `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)` on a
//! stack of its own. The child shares the daemon's memory until it execs, while the thread
//! that started it waits, so everything the child does must be async-signal-safe *and*
//! leave the parent's memory as it found it: system calls on data prepared beforehand, no
//! allocation, no locks. Credentials are changed with raw system calls ([`sys`]): glibc's
//! `setuid` family would signal every thread of the process it believes it is.
//!
//! A child that changes its credentials makes the kernel reset the dumpable flag of the
//! memory it shares, the supervisor's: after the first such start the supervisor is not
//! dumpable (no core dump, `/proc/<pid>` root's). That same flag keeps a tenant from
//! reading the child's memory, the supervisor's, between its switch and its exec; do not
//! set it back.
//!
//! The steps in the child follow std's order: standard streams, group and user, working
//! directory, process group, signal dispositions and mask, then the hooks, then `execve`.
//! An error in any of them is handed back through the shared memory and the child exits
//! with 127 (and is reaped here) before the caller hears of it.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::libc;

/// A hook run in the child before exec; see [`Command::pre_exec`].
type Hook = Box<dyn FnMut() -> std::io::Result<()> + Send + Sync>;

/// Where one of the child's standard streams goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The supervisor's own.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// This descriptor (duplicated onto the stream in the child).
    Fd(OwnedFd),
}

impl Stdio {
    /// The stream reads from or writes to `/dev/null`.
    pub fn null() -> Self {
        Stdio::Null
    }
}

impl From<OwnedFd> for Stdio {
    fn from(fd: OwnedFd) -> Self {
        Stdio::Fd(fd)
    }
}

/// A command to start: std's builder, started without a fork (see the module's overview).
pub struct Command {
    program: OsString,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env_clear: bool,
    env: BTreeMap<OsString, Option<OsString>>,
    cwd: Option<PathBuf>,
    uid: Option<u32>,
    gid: Option<u32>,
    pgroup: Option<i32>,
    stdio: [Stdio; 3],
    hooks: Vec<Hook>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("hooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

impl Command {
    /// A command running `program` (looked up in `PATH` when it has no `/`).
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Command {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            uid: None,
            gid: None,
            pgroup: None,
            stdio: Default::default(),
            hooks: Vec::new(),
        }
    }

    /// Sets `argv[0]` (the program's name as it sees it) apart from the program run.
    pub fn arg0(&mut self, name: impl AsRef<OsStr>) -> &mut Self {
        self.arg0 = Some(name.as_ref().to_owned());
        self
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets one environment variable.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        self.env
            .insert(key.as_ref().to_owned(), Some(value.as_ref().to_owned()));
        self
    }

    /// Sets environment variables.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Starts from an empty environment instead of the supervisor's.
    pub fn env_clear(&mut self) -> &mut Self {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// The child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// The user the child switches to (its supplementary groups dropped when it can).
    pub fn uid(&mut self, uid: u32) -> &mut Self {
        self.uid = Some(uid);
        self
    }

    /// The group the child switches to.
    pub fn gid(&mut self, gid: u32) -> &mut Self {
        self.gid = Some(gid);
        self
    }

    /// The process group the child joins (`0`: one of its own, led by the child).
    pub fn process_group(&mut self, pgroup: i32) -> &mut Self {
        self.pgroup = Some(pgroup);
        self
    }

    /// The child's standard input.
    pub fn stdin(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[0] = s.into();
        self
    }

    /// The child's standard output.
    pub fn stdout(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[1] = s.into();
        self
    }

    /// The child's standard error.
    pub fn stderr(&mut self, s: impl Into<Stdio>) -> &mut Self {
        self.stdio[2] = s.into();
        self
    }

    /// Adds a hook the child runs after its other settings, just before exec; hooks run
    /// in the order they were added, and an error from one is the start's error.
    ///
    /// # Safety
    /// The hook runs in a child that shares the supervisor's memory while another thread
    /// of the supervisor may run: it may make system calls on data prepared before the
    /// start, and nothing else (no allocation, no lock, no write to captured state that
    /// the supervisor reads, no glibc function that signals the process's threads), and
    /// must not panic (the child runs on the spawning thread's thread-locals: a panic
    /// there would leave that thread of the supervisor marked as panicking).
    pub unsafe fn pre_exec<F>(&mut self, f: F) -> &mut Self
    where
        F: FnMut() -> std::io::Result<()> + Send + Sync + 'static,
    {
        self.hooks.push(Box::new(f));
        self
    }

    /// The environment the child gets, `NAME=value` each.
    fn envp(&self) -> std::io::Result<Vec<CString>> {
        let mut vars: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (k, v) in &self.env {
            match v {
                Some(v) => vars.insert(k.clone(), v.clone()),
                None => vars.remove(k),
            };
        }
        vars.into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring(kv)
            })
            .collect()
    }

    /// The path run: `program` itself when it names a path, else the first executable
    /// file of that name in the child's `PATH` (the supervisor's when the command does not
    /// set one), as `execvp` searches.
    fn resolve(&self) -> std::io::Result<PathBuf> {
        let program = Path::new(&self.program);
        if self.program.as_bytes().contains(&b'/') {
            return Ok(program.to_owned());
        }
        let path = match self.env.get(OsStr::new("PATH")) {
            Some(p) => p.clone(),
            None if self.env_clear => None,
            None => std::env::var_os("PATH"),
        }
        .unwrap_or_else(|| OsString::from("/bin:/usr/bin"));
        use std::os::unix::fs::PermissionsExt;
        std::env::split_paths(&path)
            .map(|dir| dir.join(program))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOENT))
    }

    /// Starts the child, returning once it has exec'd (or with the error of the step that
    /// failed, the child reaped). Its exit is for the caller to wait for.
    pub fn spawn(&mut self) -> std::io::Result<Child> {
        let program = cstring(self.resolve()?.into_os_string().into_vec())?;
        let mut argv_c = vec![cstring(
            self.arg0
                .clone()
                .unwrap_or_else(|| self.program.clone())
                .into_vec(),
        )?];
        for a in &self.args {
            argv_c.push(cstring(a.as_bytes().to_vec())?);
        }
        let envp_c = self.envp()?;
        let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = envp_c.iter().map(|c| c.as_ptr()).collect();
        envp.push(std::ptr::null());
        let cwd = match &self.cwd {
            Some(d) => Some(cstring(d.as_os_str().as_bytes().to_vec())?),
            None => None,
        };
        let mut null: Option<OwnedFd> = None;
        // Copies above the standard streams of descriptors that are one (a daemon started
        // with its own closed): the child's first dup2 would replace them otherwise.
        let mut lifted: Vec<OwnedFd> = Vec::new();
        let mut fds = [-1 as RawFd; 3];
        for (i, s) in self.stdio.iter().enumerate() {
            let fd = match s {
                Stdio::Inherit => continue,
                Stdio::Fd(fd) => fd.as_raw_fd(),
                Stdio::Null => {
                    if null.is_none() {
                        null = Some(
                            std::fs::OpenOptions::new()
                                .read(true)
                                .write(true)
                                .open("/dev/null")?
                                .into(),
                        );
                    }
                    null.as_ref().map_or(-1, |f| f.as_raw_fd())
                }
            };
            fds[i] = if (0..=2).contains(&fd) {
                let copy = nix::fcntl::fcntl(
                    // SAFETY: `fd` is held open by this command until the spawn returns.
                    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                    nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3),
                )?;
                // SAFETY: a descriptor fcntl just made, owned by nothing else.
                lifted.push(unsafe { std::os::fd::FromRawFd::from_raw_fd(copy) });
                copy
            } else {
                fd
            };
        }
        let mut plan = ChildPlan {
            program: program.as_ptr(),
            argv: argv.as_ptr(),
            envp: envp.as_ptr(),
            cwd: cwd.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            fds,
            uid: self.uid,
            gid: self.gid,
            pgroup: self.pgroup,
            hooks: &mut self.hooks,
            errno: 0,
        };
        let stack = stack()?;
        let stack_guard = stack.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: every signal is blocked around the clone, so that no handler of the
        // supervisor's runs in the child, which resets them before it unblocks any; the
        // child runs `child_main` on a stack of its own that nothing else uses until it
        // has exec'd or exited (CLONE_VFORK holds this thread until then, and the lock
        // other spawning threads); `plan` and what it points to outlive the child's use.
        let (pid, clone_errno) = unsafe {
            // glibc's own signals included, which its sigprocmask leaves out.
            let old = ksig::set_mask(!0);
            let pid = libc::clone(
                child_main,
                stack_guard.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                (&mut plan as *mut ChildPlan).cast(),
            );
            let clone_errno = *libc::__errno_location();
            ksig::set_mask(old);
            (pid, clone_errno)
        };
        drop(stack_guard);
        drop(lifted);
        if pid < 0 {
            return Err(std::io::Error::from_raw_os_error(clone_errno));
        }
        // SAFETY: a read of a local; the child's write of it happened before this thread
        // resumed.
        let errno = unsafe { std::ptr::read_volatile(&plan.errno) };
        if errno != 0 {
            loop {
                // SAFETY: reaps the child this thread started and that has exited.
                let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                if r >= 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
            return Err(std::io::Error::from_raw_os_error(errno));
        }
        Ok(Child { pid })
    }
}

/// A started child: its pid. Its exit is the reaper's to collect (`reaper::spawn`).
#[derive(Debug)]
pub struct Child {
    pid: i32,
}

impl Child {
    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `SIGKILL` to the child.
    pub fn kill(&self) -> std::io::Result<()> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(std::io::Error::from)
    }
}

/// What the child needs, prepared by the parent: pointers into memory that stays put until
/// the child has exec'd.
struct ChildPlan {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    fds: [RawFd; 3],
    uid: Option<u32>,
    gid: Option<u32>,
    pgroup: Option<i32>,
    hooks: *mut Vec<Hook>,
    /// Set by the child when a step failed.
    errno: i32,
}

/// The child's side: never returns (execs, or records the error and exits with 127).
extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `ChildPlan`, alive and untouched while this runs.
    let plan = unsafe { &mut *arg.cast::<ChildPlan>() };
    // SAFETY: this is the child `child_steps` is for.
    let errno = match unsafe { child_steps(plan) } {
        Ok(()) => libc::EINVAL,
        Err(e) => e.raw_os_error().filter(|&e| e != 0).unwrap_or(libc::EINVAL),
    };
    // SAFETY: a volatile write the parent reads once this child is gone.
    unsafe {
        std::ptr::write_volatile(&mut plan.errno, errno);
        libc::_exit(127)
    }
}

/// The child's steps, in std's order; returns only on failure.
///
/// # Safety
/// Only in the child of [`Command::spawn`], with the plan it prepared.
unsafe fn child_steps(plan: &mut ChildPlan) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: system calls on the child's own state and on memory the parent prepared;
    // the hooks' callers vouched for them (`pre_exec`).
    unsafe {
        for (target, &fd) in plan.fds.iter().enumerate() {
            if fd < 0 {
                continue;
            }
            if fd == target as RawFd {
                check(libc::fcntl(fd, libc::F_SETFD, 0))?;
            } else {
                check(libc::dup2(fd, target as RawFd))?;
            }
        }
        if let Some(gid) = plan.gid {
            check(sys::setresgid(gid, gid, gid))?;
        }
        if let Some(uid) = plan.uid {
            // Dropping root's supplementary groups; without the right to, they are kept.
            let r = sys::setgroups_none();
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
                return Err(std::io::Error::last_os_error());
            }
            check(sys::setresuid(uid, uid, uid))?;
        }
        if !plan.cwd.is_null() {
            check(libc::chdir(plan.cwd))?;
        }
        if let Some(pg) = plan.pgroup {
            check(libc::setpgid(0, pg))?;
        }
        // Handlers are the supervisor's code: the defaults instead, as glibc's posix_spawn
        // does (its own two signals ignored). SIGPIPE, which Rust ignores, is reset too, as
        // std does.
        for sig in 1..=ksig::SIGNALS {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            if ksig::GLIBC_INTERNAL.contains(&sig) {
                ksig::set_handler(sig, libc::SIG_IGN);
                continue;
            }
            let old = ksig::handler(sig);
            if old != libc::SIG_DFL && (old != libc::SIG_IGN || sig == libc::SIGPIPE) {
                ksig::set_handler(sig, libc::SIG_DFL);
            }
        }
        ksig::set_mask(0);
        for hook in (*plan.hooks).iter_mut() {
            hook()?;
        }
        libc::execve(plan.program, plan.argv, plan.envp);
        Err(std::io::Error::last_os_error())
    }
}

/// Signal masks and dispositions as plain system calls: glibc's wrappers leave out the two
/// signals it uses itself (32 and 33), which a child sharing the supervisor's memory must
/// neither receive with the supervisor's handlers nor keep them for.
mod ksig {
    use nix::libc;

    /// Signals there are (1 to 64).
    pub(super) const SIGNALS: libc::c_int = 64;
    /// glibc's own: thread cancellation and `setxid` broadcast.
    pub(super) const GLIBC_INTERNAL: [libc::c_int; 2] = [32, 33];

    /// The kernel's `struct sigaction` (not glibc's).
    #[repr(C)]
    struct KSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }

    /// Sets the calling thread's signal mask; the mask it had.
    ///
    /// # Safety
    /// A system call on the calling thread's own state.
    pub(super) unsafe fn set_mask(mask: u64) -> u64 {
        let mut old: u64 = 0;
        // SAFETY: valid pointers to 8-byte masks, their size given.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigprocmask,
                libc::SIG_SETMASK,
                &mask as *const u64,
                &mut old as *mut u64,
                8usize,
            );
        }
        old
    }

    /// The handler of `sig` (`SIG_DFL` when it cannot be read).
    ///
    /// # Safety
    /// A system call on the calling process's own state.
    pub(super) unsafe fn handler(sig: libc::c_int) -> libc::sighandler_t {
        let mut old = KSigaction {
            handler: libc::SIG_DFL,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a valid pointer to a kernel sigaction, its mask's size given.
        let r = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<KSigaction>(),
                &mut old as *mut KSigaction,
                8usize,
            )
        };
        if r == 0 { old.handler } else { libc::SIG_DFL }
    }

    /// Sets the disposition of `sig` to `handler` (`SIG_DFL` or `SIG_IGN`).
    ///
    /// # Safety
    /// A system call on the calling process's own state.
    pub(super) unsafe fn set_handler(sig: libc::c_int, handler: libc::sighandler_t) {
        let new = KSigaction {
            handler,
            flags: 0,
            restorer: 0,
            mask: 0,
        };
        // SAFETY: a valid pointer to a kernel sigaction, its mask's size given.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &new as *const KSigaction,
                std::ptr::null_mut::<KSigaction>(),
                8usize,
            );
        }
    }
}

/// Credential changes as plain system calls, for children that share the supervisor's
/// memory: glibc's wrappers apply a change to every thread of the process they believe
/// they are in (by signalling the supervisor's threads from the child).
pub mod sys {
    use nix::libc;

    /// `setresuid(2)`.
    pub fn setresuid(r: u32, e: u32, s: u32) -> libc::c_int {
        // SAFETY: changes only the calling process's credentials.
        unsafe { libc::syscall(libc::SYS_setresuid, r, e, s) as libc::c_int }
    }

    /// `setresgid(2)`.
    pub fn setresgid(r: u32, e: u32, s: u32) -> libc::c_int {
        // SAFETY: changes only the calling process's credentials.
        unsafe { libc::syscall(libc::SYS_setresgid, r, e, s) as libc::c_int }
    }

    /// `setgroups(0, NULL)`: no supplementary groups.
    pub fn setgroups_none() -> libc::c_int {
        // SAFETY: changes only the calling process's credentials.
        unsafe {
            libc::syscall(libc::SYS_setgroups, 0usize, std::ptr::null::<libc::gid_t>())
                as libc::c_int
        }
    }
}

/// The child's stack: one, reused (a start holds it until the child has exec'd), so that
/// no start maps or unmaps memory (an unmap interrupts every thread of the daemon).
struct Stack {
    base: *mut libc::c_void,
}

// SAFETY: the stack is plain memory, used by one child at a time under its mutex.
unsafe impl Send for Stack {}

/// The stack's size: the hooks make system calls on prepared data, with small frames.
const STACK_SIZE: usize = 256 * 1024;

impl Stack {
    /// The stack's top (it grows down), 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: within the mapping.
        unsafe { self.base.cast::<u8>().add(STACK_SIZE + page()).cast() }
    }
}

fn page() -> usize {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as usize
}

/// The shared stack, mapped on first use, with a guard page below it.
fn stack() -> std::io::Result<&'static Mutex<Stack>> {
    static STACK: std::sync::OnceLock<Mutex<Stack>> = std::sync::OnceLock::new();
    if let Some(s) = STACK.get() {
        return Ok(s);
    }
    let guard = page();
    // SAFETY: a fresh anonymous mapping; its lowest page made inaccessible.
    let base = unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            STACK_SIZE + guard,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mprotect(base, guard, libc::PROT_NONE) != 0 {
            let e = std::io::Error::last_os_error();
            libc::munmap(base, STACK_SIZE + guard);
            return Err(e);
        }
        base
    };
    let mut fresh = Some(Mutex::new(Stack { base }));
    let s = STACK.get_or_init(|| fresh.take().expect("initialised once"));
    if let Some(lost) = fresh {
        // Another thread mapped one first.
        let base = lost.into_inner().unwrap_or_else(|e| e.into_inner()).base;
        // SAFETY: the mapping made above, never used.
        unsafe { libc::munmap(base, STACK_SIZE + guard) };
    }
    Ok(s)
}

fn cstring(bytes: Vec<u8>) -> std::io::Result<CString> {
    CString::new(bytes).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn run(cmd: &mut Command) -> (i32, String) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        cmd.stdout(w);
        let child = cmd.spawn().unwrap();
        cmd.stdout(Stdio::Inherit);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        let mut status = 0;
        // SAFETY: waits for the child started here.
        unsafe { libc::waitpid(child.pid, &mut status, 0) };
        (libc::WEXITSTATUS(status), out)
    }

    #[test]
    fn a_child_gets_its_arguments_environment_directory_and_group() {
        let mut cmd = Command::new("sh");
        cmd.arg0("named")
            .args([
                "-c",
                "echo $(head -c 5 /proc/$$/cmdline) $0 $FOO $(pwd) $(ps -o pgid= -p $$) $$",
            ])
            .arg("one")
            .env_clear()
            .env("FOO", "bar")
            .env("PATH", "/usr/bin:/bin")
            .current_dir("/tmp")
            .process_group(0);
        let (code, out) = run(&mut cmd);
        assert_eq!(code, 0);
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[..4], ["named", "one", "bar", "/tmp"], "{out}");
        assert_eq!(words[4], words[5], "not the leader of its own group: {out}");
    }

    #[test]
    fn hooks_run_in_order_and_their_error_is_the_start_s() {
        let mut cmd = Command::new("true");
        // SAFETY: the hook only returns an error.
        unsafe {
            cmd.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EXDEV)));
        }
        let err = cmd.spawn().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EXDEV));
        let mut cmd = Command::new("/nonexistent/program");
        assert_eq!(cmd.spawn().unwrap_err().raw_os_error(), Some(libc::ENOENT));
        let mut cmd = Command::new("no-such-program-anywhere");
        assert_eq!(cmd.spawn().unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn a_child_starts_with_default_signal_handling() {
        // Rust ignores SIGPIPE in the supervisor; a child gets the default, and no
        // blocked signal.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "grep -E '^(SigIgn|SigBlk)' /proc/self/status"]);
        let (code, out) = run(&mut cmd);
        assert_eq!(code, 0);
        for line in out.lines() {
            let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
            assert_eq!(mask & (1 << (libc::SIGPIPE - 1)), 0, "{line}");
            if line.starts_with("SigBlk") {
                assert_eq!(mask, 0, "{line}");
            }
        }
    }
}
