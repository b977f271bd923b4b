//! Pebble's command manager (`cmdstate`): one-off commands run in a container.
//!
//! [`Supervisor::exec`](crate::Supervisor::exec) resolves the environment and working
//! directory as Pebble does (the supervisor's environment, then the service context and
//! overrides; HOME and USER looked up for the target user; default PATH and LANG), creates
//! an `exec` change with one task and returns. The command starts once its I/O is
//! connected ([`Supervisor::exec_connect`](crate::Supervisor::exec_connect) for `stdio`
//! and, with `split-stderr`, `stderr`; `control` is optional), at most 5 s later. Output
//! and input flow through bounded channels that the API bridges to websockets. The task
//! records the exit code (128 + the signal for a killed command) in its `exit-code` data;
//! a timeout kills the command and fails the task with Pebble's "timed out" text.

use crate::spawn::Stdio;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::sync::{mpsc, oneshot};

use crate::users;

/// How long the I/O may take to connect.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Output chunk size.
const CHUNK: usize = 32 * 1024;

/// What to run, as `POST /v1/exec` asks it (service context already merged).
#[derive(Clone, Debug, Default)]
pub struct ExecArgs {
    /// The command and its arguments; the first is looked up on PATH.
    pub command: Vec<String>,
    /// Environment overrides on top of the supervisor's environment.
    pub environment: BTreeMap<String, String>,
    /// Working directory; default HOME, else `/`.
    pub working_dir: String,
    /// Kill the command after this long.
    pub timeout: Option<Duration>,
    /// Run as this user.
    pub user_id: Option<u32>,
    /// Run as this group.
    pub group_id: Option<u32>,
    /// Run in a pseudo-terminal (stdout and stderr merged).
    pub terminal: bool,
    /// Forward stdin to the terminal (needs `terminal`).
    pub interactive: bool,
    /// Keep stderr apart from stdout.
    pub split_stderr: bool,
    /// Initial terminal size.
    pub width: u16,
    /// Initial terminal size.
    pub height: u16,
}

/// What the API reports about a started exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecStarted {
    /// The `exec` change.
    pub change_id: String,
    /// Its task (websockets are addressed by it).
    pub task_id: String,
    /// The environment the command gets.
    pub environment: BTreeMap<String, String>,
    /// The directory it runs in.
    pub working_dir: String,
}

/// Input to the command.
#[derive(Debug)]
pub enum Stdin {
    /// Bytes to write.
    Data(Bytes),
    /// End of input (the pipe is closed).
    End,
}

/// A control message (`control` websocket).
#[derive(Debug)]
pub enum Control {
    /// Resize the terminal.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// Send a signal (by name, such as `SIGINT`) to the command.
    Signal(String),
    /// The control connection broke: kill the command.
    Kill,
}

/// One connected endpoint of an exec.
pub enum Endpoint {
    /// `stdio`: input to the command and its output (merged output without
    /// `split-stderr`; the terminal's output in terminal mode).
    Stdio {
        /// Input to the command.
        stdin: mpsc::Sender<Stdin>,
        /// The command's output.
        stdout: mpsc::Receiver<Bytes>,
    },
    /// `stderr`, with `split-stderr`.
    Stderr(mpsc::Receiver<Bytes>),
    /// `control`.
    Control(mpsc::Sender<Control>),
}

/// The API-facing ends of an exec, handed out once each.
pub(crate) struct Pending {
    pub(crate) stdio: Option<(mpsc::Sender<Stdin>, mpsc::Receiver<Bytes>)>,
    pub(crate) stderr: Option<mpsc::Receiver<Bytes>>,
    pub(crate) control: Option<mpsc::Sender<Control>>,
    pub(crate) split: bool,
    pub(crate) connected: Option<oneshot::Sender<()>>,
}

/// The process-facing ends, for the runner.
pub(crate) struct Ends {
    pub(crate) stdin: mpsc::Receiver<Stdin>,
    pub(crate) stdout: mpsc::Sender<Bytes>,
    pub(crate) stderr: Option<mpsc::Sender<Bytes>>,
    pub(crate) control: mpsc::Receiver<Control>,
    pub(crate) connected: oneshot::Receiver<()>,
    /// Notified when the supervisor stops: the command is killed.
    pub(crate) kill: std::sync::Arc<tokio::sync::Notify>,
}

/// Creates the channels of one exec; `kill` ends it from the supervisor's side.
pub(crate) fn channels(split: bool, kill: std::sync::Arc<tokio::sync::Notify>) -> (Pending, Ends) {
    let (stdin_tx, stdin_rx) = mpsc::channel(16);
    let (out_tx, out_rx) = mpsc::channel(16);
    let (err_tx, err_rx) = if split {
        let (t, r) = mpsc::channel(16);
        (Some(t), Some(r))
    } else {
        (None, None)
    };
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let (conn_tx, conn_rx) = oneshot::channel();
    (
        Pending {
            stdio: Some((stdin_tx, out_rx)),
            stderr: err_rx,
            control: Some(ctl_tx),
            split,
            connected: Some(conn_tx),
        },
        Ends {
            stdin: stdin_rx,
            stdout: out_tx,
            stderr: err_tx,
            control: ctl_rx,
            connected: conn_rx,
            kill,
        },
    )
}

/// Why an exec's I/O endpoint could not be handed out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ConnectError {
    /// The exec has no endpoint of that name (no `stderr` unless split).
    NotFound,
    /// The endpoint was already handed out.
    AlreadyConnected,
}

impl Pending {
    /// Hands out endpoint `id` once; fires `connected` when the I/O is complete.
    pub(crate) fn connect(&mut self, id: &str) -> Result<Endpoint, ConnectError> {
        let taken = ConnectError::AlreadyConnected;
        let ep = match id {
            "stdio" => {
                let (stdin, stdout) = self.stdio.take().ok_or(taken)?;
                Endpoint::Stdio { stdin, stdout }
            }
            "stderr" if self.split => Endpoint::Stderr(self.stderr.take().ok_or(taken)?),
            "control" => Endpoint::Control(self.control.take().ok_or(taken)?),
            _ => return Err(ConnectError::NotFound),
        };
        if self.stdio.is_none()
            && (!self.split || self.stderr.is_none())
            && let Some(c) = self.connected.take()
        {
            let _ = c.send(());
        }
        Ok(ep)
    }
}

/// Pebble's environment and working directory for an exec.
pub(crate) fn resolve(
    args: &ExecArgs,
    base: &[(String, String)],
    root: Option<&crate::sandbox::Root>,
) -> Result<(BTreeMap<String, String>, String), String> {
    if args.interactive && !args.terminal {
        return Err("cannot use interactive mode without a terminal".into());
    }
    // `base` holds the inherited environment too (the host's, or a strict container's
    // minimal one, whose processes run as its root by default).
    let mut env: BTreeMap<String, String> = base.iter().cloned().collect();
    let me = match root.and_then(|r| r.ids()) {
        Some(_) => 0,
        None => nix::unistd::getuid().as_raw(),
    };
    if args.user_id.is_some_and(|u| u != me) {
        env.remove("HOME");
        env.remove("USER");
    }
    env.extend(args.environment.clone());
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    if env.get("HOME").is_none_or(|h| h.is_empty()) || env.get("USER").is_none_or(|u| u.is_empty())
    {
        let uid = args.user_id.unwrap_or(me);
        if let Some((home, user)) = users::home_and_name(uid) {
            if env.get("HOME").is_none_or(|h| h.is_empty()) {
                env.insert("HOME".into(), home);
            }
            if env.get("USER").is_none_or(|u| u.is_empty()) {
                env.insert("USER".into(), user);
            }
        }
    }
    env.entry("LANG".into()).or_insert_with(|| "C.UTF-8".into());
    let (dir, what) = if args.working_dir.is_empty() {
        match env.get("HOME").filter(|h| !h.is_empty()) {
            None => return Ok((env, "/".into())),
            Some(h) => (h.clone(), "home directory"),
        }
    } else {
        (args.working_dir.clone(), "working directory")
    };
    match crate::sandbox::metadata(root, std::path::Path::new(&dir)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("{what} {dir:?} does not exist"))
        }
        Err(e) => Err(format!("cannot stat {what} {dir:?}: {e}")),
        Ok(m) if !m.is_dir() => Err(format!("{what} {dir:?} not a directory")),
        Ok(_) => Ok((env, dir)),
    }
}

/// `exec.LookPath`: the program as given if it holds a `/`, else the first executable
/// match on `path`; in an isolated container, looked up inside its `root`.
pub fn look_path(program: &str, path: &str, root: Option<&crate::sandbox::Root>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &std::path::Path| {
        crate::sandbox::metadata(root, p)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(std::path::Path::new(program)).then(|| program.to_string());
    }
    path.split(':')
        .map(|d| std::path::Path::new(if d.is_empty() { "." } else { d }).join(program))
        .find(|p| executable(p))
        .map(|p| p.display().to_string())
}

/// A pseudo-terminal whose two descriptors are close-on-exec from the start (openpty's are
/// not: a process another thread forks meanwhile, another container's service say, would
/// inherit the terminal).
fn open_pty(size: Option<&nix::pty::Winsize>) -> nix::Result<nix::pty::OpenptyResult> {
    use nix::fcntl::OFlag;
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let name = nix::pty::ptsname_r(&master)?;
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let master = OwnedFd::from(master);
    if let Some(ws) = size {
        // SAFETY: TIOCSWINSZ with a valid winsize on an open pty master.
        unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, ws) };
    }
    Ok(nix::pty::OpenptyResult { master, slave })
}

/// A close-on-exec pipe (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())
}

/// How a run ended: the exit code (or -1) and the task error, if any.
pub(crate) struct Finished {
    pub(crate) exit_code: i32,
    pub(crate) error: Option<String>,
}

/// Starts the command (leading a process group of its own) recording its group, so that a
/// supervisor opened after a crash terminates it (`ServiceManager::spawn_recorded`).
pub(crate) type Spawn<'a> = &'a (
        dyn Fn(
    crate::spawn::Command,
) -> std::io::Result<(
    crate::spawn::Child,
    tokio::sync::oneshot::Receiver<crate::reaper::ExitCode>,
)> + Send
            + Sync
    );

/// A pipe end or pty master driven by the runtime's reactor: `O_NONBLOCK`, woken by epoll,
/// so a pending read or write holds no thread (a blocking read on tokio's blocking pool
/// would hold one per stream for the command's whole life, and enough commands would
/// starve every other tenant's file calls and events of that shared pool).
struct NonBlocking(tokio::io::unix::AsyncFd<OwnedFd>);

impl NonBlocking {
    /// Makes `fd` non-blocking and registers it for `interest`.
    fn new(fd: OwnedFd, interest: tokio::io::Interest) -> std::io::Result<Self> {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GETFL)?);
        fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an `OwnedFd` is an open descriptor, owned by the `AsyncFd` until it is
        // dropped, and its raw value never changes.
        let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, interest) }?;
        Ok(NonBlocking(fd))
    }

    /// Reads what is there (waiting until something is): 0 at the end of a pipe; a pty
    /// master reads `EIO` once the terminal's last writer is gone.
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|fd| retry_eintr(|| nix::unistd::read(fd.get_ref(), buf))) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `buf`, waiting while the pipe or terminal is full; `EPIPE` (or `EIO`)
    /// once the reading side is gone.
    async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            let mut ready = self.0.writable().await?;
            match ready.try_io(|fd| retry_eintr(|| nix::unistd::write(fd.get_ref(), buf))) {
                Ok(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(Ok(n)) => buf = &buf[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }
}

/// Runs a system call again while a signal interrupts it.
fn retry_eintr<T>(mut call: impl FnMut() -> nix::Result<T>) -> std::io::Result<T> {
    loop {
        match call() {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map_err(std::io::Error::from),
        }
    }
}

/// Copies a readable fd (pipe or pty master) into a channel until EOF, `EIO` or the
/// channel closing, on the reactor: no thread waits for the command's output.
async fn pump_out(fd: NonBlocking, tx: mpsc::Sender<Bytes>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match fd.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
            // A pty master reads EIO once the terminal's last writer is gone.
            Err(_) => return,
        }
    }
}

/// Copies the channel into a writable fd until `End` (then the fd is closed), on the
/// reactor as `pump_out`.
async fn pump_in(
    fd: NonBlocking,
    mut rx: mpsc::Receiver<Stdin>,
    close_at_end: bool,
    eof_byte: Option<u8>,
) {
    while let Some(msg) = rx.recv().await {
        match msg {
            Stdin::Data(b) => {
                if fd.write_all(&b).await.is_err() {
                    return;
                }
            }
            Stdin::End => {
                if let Some(b) = eof_byte {
                    let _ = fd.write_all(&[b]).await;
                }
                if close_at_end {
                    return;
                }
            }
        }
    }
}

/// Registers a pump's descriptor with the reactor, or says why it cannot be.
fn reactor(fd: OwnedFd, interest: tokio::io::Interest) -> Result<NonBlocking, String> {
    NonBlocking::new(fd, interest).map_err(|e| format!("cannot set up command I/O: {e}"))
}

/// Runs the command once its I/O is connected; returns how it ended.
pub(crate) async fn run(
    args: ExecArgs,
    env: BTreeMap<String, String>,
    dir: String,
    task: u64,
    ends: Ends,
    root: Option<crate::sandbox::Root>,
    spawn: Spawn<'_>,
) -> Finished {
    let Ends {
        stdin,
        stdout,
        stderr,
        mut control,
        connected,
        kill,
    } = ends;
    let fail = |msg: String| Finished {
        exit_code: -1,
        error: Some(msg),
    };
    let connected = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, connected) => c,
        _ = kill.notified() => return fail("cannot run command: the supervisor is stopping".into()),
    };
    match connected {
        Ok(Ok(())) => {}
        _ => {
            return fail(format!(
                "exec {task}: timeout waiting for websocket connections: context deadline exceeded"
            ));
        }
    }
    let mut cmd = crate::spawn::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]).env_clear().envs(&env);
    let creds = args.user_id.zip(args.group_id);
    if let Err(e) = crate::sandbox::place(&mut cmd, root.as_ref(), &dir, creds) {
        return fail(format!("cannot run command: {e}"));
    }
    let interactive_tty = args.terminal && args.interactive;
    if args.terminal {
        // A terminal needs a session of its own to be the controlling one.
        // SAFETY: setsid and TIOCSCTTY are async-signal-safe calls on the child's own state.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if interactive_tty {
                    // stdin is the terminal: make it the controlling one.
                    if nix::libc::ioctl(0, nix::libc::TIOCSCTTY as _, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    } else {
        // A process group of its own, as a session would give. (The pre-exec hooks that
        // record the group and arm PR_SET_PDEATHSIG make std fork rather than posix_spawn:
        // owning the process by construction is worth the page-table copy.)
        cmd.process_group(0);
    }
    let mut master: Option<OwnedFd> = None;
    let mut pumps = Vec::new();
    let stdin_fd: OwnedFd;
    if args.terminal {
        let size = nix::pty::Winsize {
            ws_row: args.height,
            ws_col: args.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let size = (args.width > 0 && args.height > 0).then_some(size);
        let pty = match open_pty(size.as_ref()) {
            Ok(p) => p,
            Err(e) => return fail(format!("cannot open pty: {e}")),
        };
        let slave = pty.slave;
        let clone = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
        let (Ok(so), Ok(se)) = (clone(&slave), clone(&slave)) else {
            return fail("cannot set up pty".into());
        };
        cmd.stdout(so);
        if stderr.is_none() {
            cmd.stderr(se);
        }
        if args.interactive {
            let Ok(si) = clone(&slave) else {
                return fail("cannot set up pty".into());
            };
            cmd.stdin(si);
            let Ok(m_in) = pty.master.try_clone() else {
                return fail("cannot set up pty".into());
            };
            stdin_fd = m_in;
        } else {
            let (r, w) = match pipe() {
                Ok(p) => p,
                Err(e) => return fail(e),
            };
            cmd.stdin(Stdio::from(r));
            stdin_fd = w;
        }
        let Ok(m_out) = pty.master.try_clone() else {
            return fail("cannot set up pty".into());
        };
        match reactor(m_out, Interest::READABLE) {
            Ok(fd) => pumps.push(tokio::spawn(pump_out(fd, stdout))),
            Err(e) => return fail(e),
        }
        master = Some(pty.master);
        drop(slave);
    } else {
        let (r, w) = match pipe() {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        cmd.stdin(Stdio::from(r));
        stdin_fd = w;
        let (or, ow) = match pipe() {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        if stderr.is_none() {
            let Ok(ow2) = ow.try_clone() else {
                return fail("cannot set up pipes".into());
            };
            cmd.stderr(Stdio::from(ow2));
        }
        cmd.stdout(Stdio::from(ow));
        match reactor(or, Interest::READABLE) {
            Ok(fd) => pumps.push(tokio::spawn(pump_out(fd, stdout))),
            Err(e) => return fail(e),
        }
    }
    if let Some(tx) = stderr {
        let (er, ew) = match pipe() {
            Ok(p) => p,
            Err(e) => return fail(e),
        };
        cmd.stderr(Stdio::from(ew));
        match reactor(er, Interest::READABLE) {
            Ok(fd) => pumps.push(tokio::spawn(pump_out(fd, tx))),
            Err(e) => return fail(e),
        }
    }
    let stdin_fd = match reactor(stdin_fd, Interest::WRITABLE) {
        Ok(fd) => fd,
        Err(e) => return fail(e),
    };
    let (child, exit) = match spawn(cmd) {
        Ok(s) => s,
        Err(e) => {
            return fail(format!(
                "fork/exec {}: {}",
                args.command[0],
                crate::errno_text(&e)
            ));
        }
    };
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let interactive = args.interactive && args.terminal;
    let stdin_task = tokio::spawn(pump_in(
        stdin_fd,
        stdin,
        !interactive,
        interactive.then_some(4u8), // VEOF (^D) ends an interactive terminal's input
    ));
    let master_fd = master.as_ref().map(|m| m.as_raw_fd());
    let deadline = async {
        match args.timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    tokio::pin!(exit);
    let mut timed_out = false;
    let code = loop {
        tokio::select! {
            code = &mut exit => break code.unwrap_or(-1),
            _ = &mut deadline, if !timed_out => {
                timed_out = true;
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            }
            _ = kill.notified() => {
                let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            }
            msg = control.recv() => match msg {
                Some(Control::Signal(name)) => match name.parse::<nix::sys::signal::Signal>() {
                    Ok(sig) => {
                        tracing::info!("Exec {task}: forwarded signal {name} to PID {pid}");
                        let _ = nix::sys::signal::kill(pid, sig);
                    }
                    Err(_) => tracing::info!("Exec {task}: invalid signal name {name:?}"),
                },
                Some(Control::Resize { width, height }) => {
                    if let Some(fd) = master_fd {
                        let ws = nix::libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
                        // SAFETY: TIOCSWINSZ with a valid winsize on an open pty master.
                        unsafe { nix::libc::ioctl(fd, nix::libc::TIOCSWINSZ, &ws) };
                    }
                }
                Some(Control::Kill) => {
                    let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
                }
                None => {
                    // No control connection (or it went away cleanly): keep waiting.
                    control = mpsc::channel(1).1;
                }
            },
        }
    };
    stdin_task.abort();
    // Output is drained before the task ends (the change stays open until then). With a
    // terminal, the master reads EIO once the last writer is gone.
    drop(master);
    // A pipe a grandchild keeps open is given up after 5 s: the pump ends (its channel
    // closes, so readers see the end) even though the grandchild may write on.
    for mut p in pumps {
        if tokio::time::timeout(Duration::from_secs(5), &mut p)
            .await
            .is_err()
        {
            p.abort();
        }
    }
    if timed_out {
        let t = args.timeout.unwrap_or_default();
        return Finished {
            exit_code: -1,
            error: Some(format!(
                "timed out after {}: context deadline exceeded",
                cairn_plan::format_duration(t)
            )),
        };
    }
    // The reaper already reports 128 + signal for a command a signal killed.
    Finished {
        exit_code: code,
        error: None,
    }
}
