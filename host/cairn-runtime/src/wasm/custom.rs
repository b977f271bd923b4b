//! Containers served by the embedder's own code: the [`ContainerApi`] trait, the third
//! kind of [`ContainerBackend`](super::ContainerBackend) beside the embedded supervisor
//! and the Pebble API client.
//!
//! The trait speaks Pebble's API in-process: its records are the API's JSON shapes
//! (`cairn_api::types`), the plan is `cairn-plan`'s, and its errors are the API's
//! (an error response with its code and kind, a per-path file error, a change that ended
//! in error). The bindings turn them into the same WIT records and errors the other two
//! backends give, apply the same budgets (a pull over the guest's memory limit is refused
//! whatever the backend returns) and keep the same rules (`autostart` with nothing to
//! start is not an error; a command's stderr joins its stdout unless split).
//!
//! Calls are synchronous and made on the event's task: an implementation answers from
//! memory (a declared state in `cairn-testing`, a recording double) and must not block.
//! A container that waits on the outside world is better served as a Pebble API socket
//! ([`ContainerBackend::pebble_socket`](super::ContainerBackend::pebble_socket)).

use cairn_api::types as api;
use cairn_supervisor::ServicesAction;
use cairn_supervisor::files::Ownership;

/// Why a call on a custom container failed, as Pebble's API would have said it (the
/// guest sees the `ops.pebble` exception family of each).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// The container cannot be reached (`ops.pebble.ConnectionError`).
    #[error("{0}")]
    Connection(String),
    /// The API refused the request (`ops.pebble.APIError`).
    #[error("{message}")]
    Api {
        /// HTTP status code, such as 400.
        code: u16,
        /// Pebble's error kind, empty when none (`no-default-services`, `not-found`, …).
        kind: String,
        /// Pebble's message.
        message: String,
    },
    /// A file operation failed on its path (`ops.pebble.PathError`).
    #[error("{message}")]
    Path {
        /// `not-found`, `permission-denied` or `generic-file-error`.
        kind: String,
        /// Pebble's (Go-style) message.
        message: String,
    },
    /// A change ended in error (`ops.pebble.ChangeError`).
    #[error("{err}")]
    Change {
        /// The change.
        change_id: String,
        /// Its error text.
        err: String,
    },
}

impl ContainerError {
    /// A 400 response with no kind: what Pebble answers to most refused requests.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ContainerError::Api {
            code: 400,
            kind: String::new(),
            message: message.into(),
        }
    }

    /// A 404 response with no kind (an unknown notice or change).
    pub fn not_found(message: impl Into<String>) -> Self {
        ContainerError::Api {
            code: 404,
            kind: String::new(),
            message: message.into(),
        }
    }

    /// A file error on a path (`kind` as in [`ContainerError::Path`]).
    pub fn path(kind: &str, message: impl Into<String>) -> Self {
        ContainerError::Path {
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

/// What `get-notices` asks for: Pebble's query (types and keys are alternatives; empty
/// means any), with `after` as the guest gave it (RFC 3339, or empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeQuery {
    /// Notice types, by Pebble's names.
    pub types: Vec<String>,
    /// Notice keys.
    pub keys: Vec<String>,
    /// Only notices repeated after this time (RFC 3339), when given.
    pub after: Option<String>,
}

/// How a command run in a custom container ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit code (0: success).
    pub exit_code: i32,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr (joined to stdout for the guest unless it split them).
    pub stderr: Vec<u8>,
}

/// A command a custom container accepted: it runs once, when the guest has given all its
/// stdin (it closed stdin, read output or waited).
pub trait Command: Send {
    /// Runs the command with the guest's stdin.
    fn run(self: Box<Self>, stdin: Vec<u8>) -> Result<ExecOutput, ContainerError>;
}

/// One container served in-process by the embedder's code, call for call as Pebble's API
/// serves it (see the module's overview for the rules the bindings add).
pub trait ContainerApi: Send + Sync + 'static {
    /// Whether the guest can reach the container (`can-connect`); when not, a real
    /// backend fails every call with a connection error, and so should this one.
    fn can_connect(&self) -> bool;
    /// `add-layer`: parse, combine and validate the layer, or refuse it whole.
    fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<(), ContainerError>;
    /// The combined plan (`get-plan`, `get-plan-yaml`).
    fn plan(&self) -> Result<cairn_plan::Plan, ContainerError>;
    /// `replan`, `autostart`, `start`, `stop`, `restart`, waited to their end.
    fn services_action(
        &self,
        action: ServicesAction,
        names: &[String],
    ) -> Result<(), ContainerError>;
    /// The plan's services (all when `names` is empty) with their state.
    fn services(&self, names: &[String]) -> Result<Vec<api::ServiceInfo>, ContainerError>;
    /// Sends `signal` (with its `SIG` prefix) to the named services.
    fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), ContainerError>;
    /// The plan's checks of `level` (any when `None`) among `names` (all when empty).
    fn checks(
        &self,
        level: Option<cairn_plan::CheckLevel>,
        names: &[String],
    ) -> Result<Vec<api::CheckInfo>, ContainerError>;
    /// Starts (`start`) or stops the named checks; the names of those that changed.
    fn checks_action(&self, start: bool, names: &[String]) -> Result<Vec<String>, ContainerError>;
    /// The notices the query matches.
    fn notices(&self, query: &NoticeQuery) -> Result<Vec<api::Notice>, ContainerError>;
    /// One notice by ID.
    fn notice(&self, id: &str) -> Result<api::Notice, ContainerError>;
    /// Writes a file (`push`), making its parents when `make_dirs`.
    fn push(
        &self,
        path: &str,
        data: &[u8],
        make_dirs: bool,
        owner: &Ownership,
    ) -> Result<(), ContainerError>;
    /// Reads a file (`pull`).
    fn pull(&self, path: &str) -> Result<Vec<u8>, ContainerError>;
    /// Lists a directory, or the path itself when `itself` (`list-files`, `exists`,
    /// `is-dir`); `pattern` is a glob on the names.
    fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<api::FileInfo>, ContainerError>;
    /// Makes a directory (`make-dir`).
    fn make_dir(
        &self,
        path: &str,
        make_parents: bool,
        owner: &Ownership,
    ) -> Result<(), ContainerError>;
    /// Removes a path (`remove-path`).
    fn remove_path(&self, path: &str, recursive: bool) -> Result<(), ContainerError>;
    /// Accepts a command to run (`exec`), or refuses it as Pebble would (no such
    /// executable, a bad service context).
    fn exec(&self, options: &cairn_api::ExecOptions) -> Result<Box<dyn Command>, ContainerError>;
}
