//! Workload containers, driven like `ops.Container`.

use std::fmt;

use crate::error::{ApiError, Error, Result};
use crate::host;
use crate::layer::{LayerSource, Plan};

pub use crate::layer::Startup as ServiceStartup;

/// A service's status, as in Pebble's `GET /v1/services`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceStatus {
    /// Running.
    Active,
    /// Not running.
    Inactive,
    /// Exited and waiting to be restarted.
    Backoff,
    /// Exited and not restarted.
    Error,
}

impl ServiceStatus {
    /// The status as Pebble spells it: `active`, `inactive`, `backoff`, `error`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceStatus::Active => "active",
            ServiceStatus::Inactive => "inactive",
            ServiceStatus::Backoff => "backoff",
            ServiceStatus::Error => "error",
        }
    }
}

impl fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One service as the container reports it (`ops.pebble.ServiceInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// `enabled` or `disabled`.
    pub startup: ServiceStartup,
    /// Its current status.
    pub current: ServiceStatus,
    /// RFC 3339 time the status last changed.
    pub current_since: Option<String>,
}

impl ServiceInfo {
    /// Whether the service is running.
    pub fn is_running(&self) -> bool {
        self.current == ServiceStatus::Active
    }
}

/// Mode and owner of pushed files and made directories; defaults: 0644 files, 0755
/// directories, the supervisor's user, no parent directories created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// Create missing parent directories (`make_dirs` / `make_parents` in ops).
    pub make_parents: bool,
    /// Permission bits, such as `0o600`.
    pub permissions: Option<u32>,
    /// Owner uid.
    pub user_id: Option<u32>,
    /// Owner name.
    pub user: Option<String>,
    /// Group gid.
    pub group_id: Option<u32>,
    /// Group name.
    pub group: Option<String>,
}

impl FileOptions {
    /// Creating missing parent directories.
    pub fn make_parents() -> Self {
        FileOptions {
            make_parents: true,
            ..FileOptions::default()
        }
    }

    /// With these permission bits.
    pub fn permissions(mut self, mode: u32) -> Self {
        self.permissions = Some(mode);
        self
    }
}

/// One entry of [`Container::list_files`] (`ops.pebble.FileInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Full path.
    pub path: String,
    /// Base name.
    pub name: String,
    /// `file`, `directory`, `symlink`, `socket`, `named-pipe`, `device` or `unknown`.
    pub kind: String,
    /// Size of a regular file.
    pub size: Option<u64>,
    /// Permission bits.
    pub permissions: u32,
    /// RFC 3339 modification time.
    pub last_modified: String,
    /// Owner uid.
    pub user_id: Option<u32>,
    /// Owner name.
    pub user: Option<String>,
    /// Group gid.
    pub group_id: Option<u32>,
    /// Group name.
    pub group: Option<String>,
}

/// How to run a command ([`Container::exec_with`]); defaults: the supervisor's environment,
/// HOME as working directory, no timeout, stderr kept apart from stdout (as ops'
/// `Container.exec`, whose `combine_stderr` is false by default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Environment overrides.
    pub environment: Vec<(String, String)>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Kill the command after this long.
    pub timeout: Option<std::time::Duration>,
    /// Run as this user.
    pub user: Option<String>,
    /// Run as this group.
    pub group: Option<String>,
    /// Inherit this service's environment, user, group and working dir.
    pub service_context: Option<String>,
    /// Send stderr into stdout, as one stream (ops' `combine_stderr=True`); then
    /// [`Process::read_stderr`] and [`ExecOutput::stderr`] stay empty.
    pub combine_stderr: bool,
}

/// A finished command's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (empty with `combine_stderr`).
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Standard output as text (lossy UTF-8).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A running command (`ops.pebble.ExecProcess`).
pub struct Process {
    command: Vec<String>,
    handle: host::ProcessHandle,
}

impl Process {
    /// Writes to the command's stdin.
    pub fn write_stdin(&self, data: impl AsRef<[u8]>) -> Result<()> {
        self.handle.write_stdin(data.as_ref())
    }

    /// Sends a signal (`"SIGTERM"` or `"TERM"`) to the command.
    pub fn send_signal(&self, signal: &str) -> Result<()> {
        self.handle.send_signal(signal)
    }

    /// Reads the next chunk of stdout (stderr merged in with `combine_stderr`), at most
    /// `max` bytes, waiting until some arrive; `None` once the command closed it.
    pub fn read_stdout(&self, max: usize) -> Result<Option<Vec<u8>>> {
        self.handle.read_stdout(clamp_read(max))
    }

    /// Reads the next chunk of stderr (nothing with `combine_stderr`), as
    /// [`Process::read_stdout`].
    pub fn read_stderr(&self, max: usize) -> Result<Option<Vec<u8>>> {
        self.handle.read_stderr(clamp_read(max))
    }

    /// Stdout as a [`std::io::Read`], so output can be streamed into a parser or a push
    /// without holding all of it (ops' `ExecProcess.stdout`).
    pub fn stdout(&self) -> ProcessOutput<'_> {
        ProcessOutput {
            process: self,
            stderr: false,
            pending: Vec::new(),
        }
    }

    /// Stderr as a [`std::io::Read`] (empty with `combine_stderr`).
    pub fn stderr(&self) -> ProcessOutput<'_> {
        ProcessOutput {
            process: self,
            stderr: true,
            pending: Vec::new(),
        }
    }

    /// Closes stdin and waits for the command; output not read yet is discarded. A
    /// non-zero exit is an [`Error::Exec`] with the code (as ops' `ExecProcess.wait`).
    pub fn wait(self) -> Result<()> {
        let exit_code = self.handle.wait()?;
        if exit_code != 0 {
            return Err(Error::Exec(crate::error::ExecError {
                command: self.command,
                exit_code,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }));
        }
        Ok(())
    }

    /// Closes stdin, waits for the command and returns its output (what was not read with
    /// [`Process::read_stdout`] yet); a non-zero exit is an [`Error::Exec`] carrying the code
    /// and output (as ops' `ExecError`).
    pub fn wait_output(self) -> Result<ExecOutput> {
        let out = self.handle.wait_output()?;
        if out.exit_code != 0 {
            return Err(Error::Exec(crate::error::ExecError {
                command: self.command,
                exit_code: out.exit_code,
                stdout: out.stdout,
                stderr: out.stderr,
            }));
        }
        Ok(out)
    }
}

fn clamp_read(max: usize) -> u32 {
    max.clamp(1, u32::MAX as usize) as u32
}

/// One output stream of a [`Process`] read as a [`std::io::Read`].
pub struct ProcessOutput<'a> {
    process: &'a Process,
    stderr: bool,
    pending: Vec<u8>,
}

impl std::io::Read for ProcessOutput<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pending.is_empty() {
            let next = if self.stderr {
                self.process.read_stderr(buf.len())
            } else {
                self.process.read_stdout(buf.len())
            };
            match next.map_err(std::io::Error::other)? {
                Some(chunk) => self.pending = chunk,
                None => return Ok(0),
            }
        }
        let n = self.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// Which notices [`Container::get_notices`] returns; empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeFilter {
    /// Only these types (`custom`, `change-update`, `warning`).
    pub types: Vec<String>,
    /// Only these keys.
    pub keys: Vec<String>,
    /// Only notices repeated after this RFC 3339 time.
    pub after: Option<String>,
}

impl NoticeFilter {
    /// Custom notices with `key`.
    pub fn custom(key: impl Into<String>) -> Self {
        NoticeFilter {
            types: vec!["custom".into()],
            keys: vec![key.into()],
            after: None,
        }
    }
}

/// One of this unit's workload containers (`ops.Container`).
///
/// Operations that change services (`replan`, `start`, `stop`, `restart`, `autostart`)
/// wait for their Pebble change to finish, as ops does.
pub struct Container {
    name: String,
    handle: host::ContainerHandle,
}

impl fmt::Debug for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .finish()
    }
}

impl Container {
    /// Opens this unit's container `name` (a [`Error::Connection`] if the unit has none).
    pub fn get(name: &str) -> Result<Container> {
        Ok(Container {
            name: name.to_string(),
            handle: host::ContainerHandle::open(name)?,
        })
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the container's supervisor answers.
    pub fn can_connect(&self) -> bool {
        self.handle.can_connect()
    }

    /// Adds the layer under `label`; with `combine`, merges it into an existing layer of
    /// that label. `layer` is a [`Layer`](crate::layer::Layer) or YAML text.
    pub fn add_layer<L: LayerSource + ?Sized>(
        &self,
        label: &str,
        layer: &L,
        combine: bool,
    ) -> Result<()> {
        self.handle.add_layer(label, &layer.layer_yaml(), combine)
    }

    /// The combined plan of every layer, typed (`ops.pebble.Plan`).
    pub fn get_plan(&self) -> Result<Plan> {
        self.handle.get_plan()
    }

    /// The combined plan as the YAML text the supervisor renders (`GET /v1/plan`).
    pub fn get_plan_yaml(&self) -> Result<String> {
        self.handle.get_plan_yaml()
    }

    /// Checks (all when `names` is empty) at `level` (any level for `None`), sorted by name
    /// (`ops.Container.get_checks`).
    pub fn get_checks(
        &self,
        level: Option<crate::event::CheckLevel>,
        checks: &[&str],
    ) -> Result<Vec<crate::event::CheckInfo>> {
        self.handle.get_checks(level, &names(checks))
    }

    /// The check `name`; an [`Error::Api`] with code 404 if the plan has no such check.
    pub fn get_check(&self, name: &str) -> Result<crate::event::CheckInfo> {
        self.get_checks(None, &[name])?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::Api(ApiError {
                    code: 404,
                    status: "Not Found".into(),
                    kind: String::new(),
                    message: format!("check {name:?} not found"),
                })
            })
    }

    /// Starts the named checks; returns those that were not already running.
    pub fn start_checks(&self, checks: &[&str]) -> Result<Vec<String>> {
        self.handle.start_checks(&names(checks))
    }

    /// Stops the named checks; returns those that were running.
    pub fn stop_checks(&self, checks: &[&str]) -> Result<Vec<String>> {
        self.handle.stop_checks(&names(checks))
    }

    /// Notices matching `filter`, oldest repeat first (`ops.Container.get_notices`).
    pub fn get_notices(&self, filter: &NoticeFilter) -> Result<Vec<crate::event::Notice>> {
        self.handle.get_notices(filter)
    }

    /// The notice with `id`; an [`Error::Api`] with code 404 if there is none.
    pub fn get_notice(&self, id: &str) -> Result<crate::event::Notice> {
        self.handle.get_notice(id)
    }

    /// Starts `command` with default options (`ops.Container.exec`).
    pub fn exec(&self, command: &[&str]) -> Result<Process> {
        self.exec_with(command, &ExecOptions::default())
    }

    /// Starts `command` with `options`.
    pub fn exec_with(&self, command: &[&str], options: &ExecOptions) -> Result<Process> {
        let command = names(command);
        let handle = self.handle.exec(&command, options)?;
        Ok(Process { command, handle })
    }

    /// Writes `data` to `path` atomically with default mode and owner (`ops.Container.push`).
    pub fn push(&self, path: &str, data: impl AsRef<[u8]>) -> Result<()> {
        self.handle
            .push(path, data.as_ref(), &FileOptions::default())
    }

    /// Writes `data` to `path` with `options` (parent directories, mode, owner).
    pub fn push_with(
        &self,
        path: &str,
        data: impl AsRef<[u8]>,
        options: &FileOptions,
    ) -> Result<()> {
        self.handle.push(path, data.as_ref(), options)
    }

    /// Reads a regular file (`ops.Container.pull`); a [`Error::Path`] if it cannot.
    pub fn pull(&self, path: &str) -> Result<Vec<u8>> {
        self.handle.pull(path)
    }

    /// Reads a regular file as UTF-8 text.
    pub fn pull_string(&self, path: &str) -> Result<String> {
        String::from_utf8(self.pull(path)?).map_err(|e| Error::msg(format!("{path}: {e}")))
    }

    /// A directory's entries (or the path itself, for a file or with `itself`), keeping
    /// names that match the glob `pattern`.
    pub fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<FileInfo>> {
        self.handle.list_files(path, pattern, itself)
    }

    /// Creates a directory (`options.make_parents`: like `mkdir -p`).
    pub fn make_dir(&self, path: &str, options: &FileOptions) -> Result<()> {
        self.handle.make_dir(path, options)
    }

    /// Removes a file or an empty directory, or with `recursive` a whole tree.
    pub fn remove_path(&self, path: &str, recursive: bool) -> Result<()> {
        self.handle.remove_path(path, recursive)
    }

    /// Whether `path` exists in the container.
    pub fn exists(&self, path: &str) -> Result<bool> {
        self.handle.exists(path)
    }

    /// Whether `path` is a directory in the container.
    pub fn is_dir(&self, path: &str) -> Result<bool> {
        self.handle.is_dir(path)
    }

    /// Sends `signal` (`"SIGHUP"` or `"HUP"`) to the main process of each named service
    /// (`ops.Container.send_signal`); an [`Error::Api`] names services not running.
    pub fn send_signal(&self, signal: &str, services: &[&str]) -> Result<()> {
        self.handle.send_signal(signal, &names(services))
    }

    /// Restarts services whose configuration changed and starts `startup: enabled` ones.
    pub fn replan(&self) -> Result<()> {
        self.handle.replan()
    }

    /// Starts the `startup: enabled` services.
    pub fn autostart(&self) -> Result<()> {
        self.handle.autostart()
    }

    /// Starts the named services.
    pub fn start(&self, services: &[&str]) -> Result<()> {
        self.handle.start(&names(services))
    }

    /// Stops the named services.
    pub fn stop(&self, services: &[&str]) -> Result<()> {
        self.handle.stop(&names(services))
    }

    /// Restarts the named services (starting those that are stopped).
    pub fn restart(&self, services: &[&str]) -> Result<()> {
        self.handle.restart(&names(services))
    }

    /// The named services (all services when `services` is empty, as in `get_services(&[])`),
    /// sorted by name.
    pub fn get_services(&self, services: &[&str]) -> Result<Vec<ServiceInfo>> {
        self.handle.get_services(&names(services))
    }

    /// The service `name`; an [`Error::Api`] with code 404 if the plan has no such service.
    pub fn get_service(&self, name: &str) -> Result<ServiceInfo> {
        self.handle
            .get_services(&[name.to_string()])?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| {
                Error::Api(ApiError {
                    code: 404,
                    status: "Not Found".into(),
                    kind: String::new(),
                    message: format!("service {name:?} not found"),
                })
            })
    }
}

fn names(services: &[&str]) -> Vec<String> {
    services.iter().map(|s| s.to_string()).collect()
}
