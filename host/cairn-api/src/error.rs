//! The one mapping from supervisor errors to Pebble's API errors (status code, reason
//! phrase, kind, message), used by the HTTP server and by the wasm runtime's bindings so
//! that a charm sees exactly what an HTTP client would.

use cairn_supervisor::{ErrorKind, SupervisorError};

use crate::envelope::reason;

/// A supervisor error as Pebble's API reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// HTTP reason phrase.
    pub status: &'static str,
    /// Pebble's error kind (empty when it has none).
    pub kind: &'static str,
    /// The message.
    pub message: String,
}

/// Pebble's status code and kind for each kind of supervisor error. Exhaustive: a new kind
/// must be given its code here.
pub fn code_and_kind(kind: ErrorKind) -> (u16, &'static str) {
    match kind {
        ErrorKind::BadRequest => (400, ""),
        ErrorKind::NoDefaultServices => (400, "no-default-services"),
        ErrorKind::NotFound => (404, ""),
        ErrorKind::Timeout => (504, ""),
        ErrorKind::Internal => (500, ""),
        // Over the tenant's budget: the request as sent can never succeed (400).
        ErrorKind::OverBudget => (400, ""),
        // At the budget of things running at once: it may succeed later (429, as any
        // rate-limited HTTP API; Pebble has no such limit, so no kind of its own).
        ErrorKind::Busy => (429, ""),
    }
}

impl From<&SupervisorError> for ApiError {
    fn from(e: &SupervisorError) -> Self {
        let (code, kind) = code_and_kind(e.kind());
        ApiError {
            code,
            status: reason(code),
            kind,
            message: e.to_string(),
        }
    }
}
