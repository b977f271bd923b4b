//! The supervisor's error type, and the kinds callers branch on (never the message text).

use cairn_plan::PlanError;

/// Errors of supervisor operations; `Display` is Pebble's API text.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// The request is malformed or refused.
    #[error("{0}")]
    BadRequest(String),
    /// `autostart` with no `startup: enabled` services.
    #[error("no default services")]
    NoDefaultServices,
    /// A change, task, check or other object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Waiting timed out.
    #[error("{0}")]
    Timeout(String),
    /// The supervisor could not do what was asked.
    #[error("{0}")]
    Internal(String),
    /// A layer or plan operation was rejected.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The request would take the container over its budget (`limit` names it, as counted
    /// in [`crate::LimitHits`]).
    #[error("{message}")]
    OverBudget {
        /// The limit's name (`layer-bytes`, `services`, …).
        limit: &'static str,
        /// Pebble-style `cannot <verb>: ...` text.
        message: String,
    },
    /// The container is running as much as its budget allows: the same request may succeed
    /// later (`limit` names the budget).
    #[error("{message}")]
    Busy {
        /// The limit's name (`execs`).
        limit: &'static str,
        /// Pebble-style `cannot <verb>: ...` text.
        message: String,
    },
    /// The container's state could not be read or written.
    #[error("cannot {action}: {source}")]
    Io {
        /// What was being done (`read state`).
        action: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// What kind of failure a [`SupervisorError`] is: what the API's status code and error kind
/// (and the WIT binding's error) are derived from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something invalid (Pebble's 400).
    BadRequest,
    /// `autostart` found no default services (400, kind `no-default-services`).
    NoDefaultServices,
    /// The object does not exist (404).
    NotFound,
    /// A wait timed out (504).
    Timeout,
    /// The supervisor failed (500).
    Internal,
    /// Over the container's budget (400).
    OverBudget,
    /// At the container's budget of things running at once (429).
    Busy,
}

impl SupervisorError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SupervisorError::BadRequest(_) => ErrorKind::BadRequest,
            SupervisorError::NoDefaultServices => ErrorKind::NoDefaultServices,
            SupervisorError::NotFound(_) => ErrorKind::NotFound,
            SupervisorError::Timeout(_) => ErrorKind::Timeout,
            SupervisorError::Internal(_) | SupervisorError::Io { .. } => ErrorKind::Internal,
            SupervisorError::OverBudget { .. } => ErrorKind::OverBudget,
            SupervisorError::Busy { .. } => ErrorKind::Busy,
            SupervisorError::Plan(e) if e.is_client_error() => ErrorKind::BadRequest,
            SupervisorError::Plan(_) => ErrorKind::Internal,
        }
    }

    /// The name of the budget a refusal was over, for counting hits.
    pub fn limit(&self) -> Option<&'static str> {
        match self {
            SupervisorError::OverBudget { limit, .. } | SupervisorError::Busy { limit, .. } => {
                Some(limit)
            }
            _ => None,
        }
    }
}
