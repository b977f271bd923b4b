//! Helpers: a real `cairn run` daemon on a private state directory, the real CLI, and
//! process inspection through /proc. Temporary directories, polling and root gating come
//! from `cairn-testutil`, re-exported here.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
pub use cairn_testutil::{TempDir, eventually, require_root};
use serde_json::Value;

/// The `cairn` binary under test.
pub const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

/// A daemon on its own state directory; killed (SIGTERM, then SIGKILL) and cleaned on drop.
pub struct Daemon {
    /// The state directory (`--dir`), removed after the daemon and its processes are gone.
    pub dir: TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    /// `RLIMIT_NOFILE` (soft and hard) to start the daemon with, if not inherited.
    pub nofile: Option<u64>,
}

impl Daemon {
    /// Starts `cairn run` on a new directory for test `name` with extra `run` flags.
    pub fn start(name: &str, extra: &[&str]) -> Result<Daemon> {
        Daemon::start_with_nofile(name, extra, None)
    }

    /// [`Daemon::start`] with the daemon's descriptor limit set to `nofile`.
    pub fn start_with_nofile(name: &str, extra: &[&str], nofile: Option<u64>) -> Result<Daemon> {
        let mut d = Daemon {
            dir: TempDir::new(&format!("e2e-{name}")),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            nofile,
        };
        d.spawn()?;
        Ok(d)
    }

    /// (Re)starts the daemon process on the same directory and waits until it answers.
    pub fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))?;
        let mut cmd = Command::new(CAIRN);
        if let Some(n) = self.nofile {
            use std::os::unix::process::CommandExt;
            let limit = move || {
                nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, n, n)
                    .map_err(std::io::Error::from)
            };
            // SAFETY: setrlimit is async-signal-safe and allocates nothing.
            unsafe { cmd.pre_exec(limit) };
        }
        let child = cmd
            .arg("--dir")
            .arg(&self.dir)
            .arg("run")
            .args(&self.extra)
            .env("CARGO_TARGET_DIR", cairn_test_programs::GUEST_TARGET_DIR)
            // One compile cache for the whole suite, as a fleet of hosts would share one.
            .env(
                "CAIRN_CACHE_DIR",
                std::path::Path::new(cairn_test_programs::GUEST_TARGET_DIR).join("cairn-cache"),
            )
            .env("CAIRN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        // A daemon that exits (refuses to start) is reported at once, not after the timeout.
        let up = eventually(Duration::from_secs(30), || {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                return Some(Err(status));
            }
            self.cli(&["status"])
                .is_ok_and(|o| o.status.success())
                .then_some(Ok(()))
        });
        match up {
            Some(Ok(())) => Ok(()),
            Some(Err(status)) => {
                self.child = None;
                bail!("daemon exited ({status}) before answering: {}", self.log())
            }
            None => bail!("daemon did not come up: {}", self.log()),
        }
    }

    /// Stops the daemon with `signal` and waits for it to exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), signal);
            let _ = c.wait();
        }
    }

    /// The daemon's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Result<Output> {
        Ok(Command::new(CAIRN)
            .arg("--dir")
            .arg(&self.dir)
            .args(args)
            .output()?)
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.cli(args)?;
        if !out.status.success() {
            bail!(
                "cairn {args:?} failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Deploys the web example on a free port (plus `extra` config settings) and waits until
    /// it is active; returns the port.
    pub fn deploy_web(&self, extra: &[&str]) -> Result<u16> {
        let port = free_port();
        let port_setting = format!("port={port}");
        let ex = example("web");
        let mut args = vec!["deploy", ex.as_str(), "--config", &port_setting];
        for e in extra {
            args.extend(["--config", e]);
        }
        self.ok(&args)?;
        self.wait_status("web/0", "active", "", Duration::from_secs(10))?;
        Ok(port)
    }

    /// `cairn status --format json`.
    pub fn status(&self) -> Result<Value> {
        Ok(serde_json::from_str(
            &self.ok(&["status", "--format", "json"])?,
        )?)
    }

    /// A unit's entry in the status report.
    pub fn unit(&self, unit: &str) -> Result<Value> {
        let st = self.status()?;
        for app in st["apps"].as_array().into_iter().flatten() {
            for u in app["units"].as_array().into_iter().flatten() {
                if u["name"] == unit {
                    return Ok(u.clone());
                }
            }
        }
        bail!("no unit {unit} in {st}")
    }

    /// `cairn events <unit> --format json`.
    pub fn events(&self, unit: &str) -> Result<Vec<Value>> {
        Ok(serde_json::from_str(
            &self.ok(&["events", unit, "--format", "json"])?,
        )?)
    }

    /// `cairn limits <app> --format json`: the app's budget and how often each limit was hit.
    pub fn limits(&self, app: &str) -> Result<Value> {
        Ok(serde_json::from_str(
            &self.ok(&["limits", app, "--format", "json"])?,
        )?)
    }

    /// How often `limit` of `app` was hit.
    pub fn hits(&self, app: &str, limit: &str) -> Result<u64> {
        Ok(self.limits(app)?["hits"][limit].as_u64().unwrap_or(0))
    }

    /// The daemon's resident memory now and at its peak, in MiB.
    pub fn rss_mib(&self) -> Result<(u64, u64)> {
        let pid = self.pid().context("daemon pid")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|kib| kib / 1024)
                .with_context(|| format!("no {name}"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Deploys the `misbehave` test charm as `app` with budget overrides `limits`
    /// (`key=value`) and waits until it has handled its first event.
    pub fn deploy_misbehave(&self, app: &str, limits: &[&str]) -> Result<()> {
        let prog = program("misbehave");
        let mut args = vec!["deploy", prog.as_str(), "--name", app];
        for l in limits {
            args.extend(["--limit", l]);
        }
        self.ok(&args)?;
        self.wait_status(
            &format!("{app}/0"),
            "active",
            "handled 1",
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    /// Waits until `unit` has status `want` with nothing queued and a message containing
    /// `msg`; returns how long it took.
    pub fn wait_status(
        &self,
        unit: &str,
        want: &str,
        msg: &str,
        timeout: Duration,
    ) -> Result<Duration> {
        let start = Instant::now();
        let mut last = None;
        let reached = eventually(timeout, || {
            last = self.unit(unit).ok();
            let u = last.as_ref()?;
            (u["status"]["status"] == want
                && u["queued"] == 0
                && u["status"]["message"].as_str().unwrap_or("").contains(msg))
            .then(|| start.elapsed())
        });
        reached.with_context(|| {
            format!(
                "{unit} not {want} ({msg}) after {timeout:?}: {last:?}\n{}",
                self.log()
            )
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_with(nix::sys::signal::Signal::SIGTERM);
        for (pid, _) in processes_with(&self.dir.display().to_string()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // `dir` (a TempDir) is removed next, as the fields drop.
    }
}

/// Processes whose environment mentions `needle` (services get `PEBBLE=<container dir>`),
/// with their environments.
pub fn processes_with(needle: &str) -> Vec<(i32, Vec<String>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        let vars: Vec<String> = env
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        if vars.iter().any(|v| v.contains(needle)) && !is_zombie(pid) {
            out.push((pid, vars));
        }
    }
    out
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; returns the status line and the body.
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// First line of an HTTP/1.0 GET of `/` on 127.0.0.1:`port`.
pub fn http_get(port: u16) -> Result<String> {
    Ok(http(port, "GET", "/", "")?.0)
}

/// The example charm directory `name`.
pub fn example(name: &str) -> String {
    Path::new(cairn_test_programs::EXAMPLES_DIR)
        .join(name)
        .display()
        .to_string()
}

/// The test program charm directory `name`.
pub fn program(name: &str) -> String {
    Path::new(cairn_test_programs::PROGRAMS_DIR)
        .join(name)
        .display()
        .to_string()
}

/// The value of `var` in a process environment listing.
pub fn env_value(vars: &[String], var: &str) -> Option<String> {
    vars.iter()
        .find_map(|v| v.strip_prefix(&format!("{var}=")).map(str::to_string))
}

/// The names of the events `unit` was given, in order.
pub fn event_names(d: &Daemon, unit: &str) -> Result<Vec<String>> {
    Ok(d.events(unit)?
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect())
}

/// History entries as `"<event> <outcome>"` lines, for assertions.
pub fn event_lines(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap_or("?"),
                e["outcome"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// Context helper for Option.
pub trait Must<T> {
    fn must(self, what: &str) -> Result<T>;
}

impl<T> Must<T> for Option<T> {
    fn must(self, what: &str) -> Result<T> {
        self.context(what.to_string())
    }
}

/// A child process killed (SIGKILL) on drop together with every process whose environment
/// mentions `needle`, so that a failing test leaves nothing running.
pub struct ChildGuard {
    pub child: Child,
    pub needle: String,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for (pid, _) in processes_with(&self.needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?.unwrap_or(100) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// Lets other users reach `socket`: every directory from `top` down to it searchable.
pub fn open_path_to(top: &Path, socket: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut p = socket.parent();
    while let Some(d) = p {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        if d == top {
            break;
        }
        p = d.parent();
    }
    Ok(())
}
