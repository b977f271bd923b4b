//! The client backend's side of the bindings: Pebble's API answers (through
//! `cairn_api::Client`) turned into the same WIT records and errors the embedded
//! supervisor gives, and the few calls that take more than one request.
//!
//! Errors map as the embedded side's (`convert::api_error`, `convert::path_error`):
//! an error response is an `api` error with its code, reason, kind and message; a files
//! response's per-path error, and a listing's error with a path kind, a `path` error; a
//! change that ended in error a `change` error; a wait that timed out (504) a `timeout`;
//! an unreachable socket or a reply that is not the API's a `connection` error.

use std::time::Duration;

use cairn_api::ClientError;
use cairn_api::types as api;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{pebble, until_deadline, wit};
use crate::wasm::backend::PebbleClient;

/// A client error as the guest sees it: the API's error, as a custom backend's would be.
pub(super) fn client_error(e: ClientError) -> pebble::Error {
    use crate::wasm::ContainerError as E;
    super::convert::custom_error(match e {
        ClientError::Connection { .. } | ClientError::Protocol(_) => E::Connection(e.to_string()),
        ClientError::Api {
            code,
            kind,
            message,
        } => E::Api {
            code,
            kind,
            message,
        },
        ClientError::Path { kind, message } => E::Path { kind, message },
        ClientError::Change { change_id, err } => E::Change { change_id, err },
    })
}

/// The error of a listing (or a lookup built on one): an error response with one of the
/// files kinds is that path's error, as the embedded side reports it.
pub(super) fn list_error(e: ClientError) -> pebble::Error {
    match e {
        ClientError::Api { kind, message, .. }
            if matches!(
                kind.as_str(),
                "not-found" | "permission-denied" | "generic-file-error"
            ) =>
        {
            pebble::Error::Path(pebble::PathError { kind, message })
        }
        other => client_error(other),
    }
}

/// Runs a services action and waits for its change as ops' `*_services` calls do (up to
/// `timeout`, and never past the event's `deadline`).
pub(super) async fn run_services(
    c: &PebbleClient,
    action: &str,
    names: &[String],
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> Result<(), pebble::Error> {
    let id = match c.api().services_action(action, names).await {
        Ok(id) => id,
        // As the embedded side: autostart with nothing to start is not an error.
        Err(ClientError::Api { kind, .. })
            if action == "autostart" && kind == "no-default-services" =>
        {
            return Ok(());
        }
        Err(e) => return Err(client_error(e)),
    };
    let info = until_deadline(deadline, "wait for the change", async {
        c.api()
            .wait_change(&id, Some(timeout))
            .await
            .map_err(client_error)
    })
    .await?;
    match info.err {
        Some(err) => Err(pebble::Error::Change(pebble::ChangeError {
            change_id: id,
            err,
        })),
        None => Ok(()),
    }
}

/// The plan the API renders as YAML, read back into the plan's types.
pub(super) fn parse_plan(yaml: &str) -> Result<cairn_plan::Plan, pebble::Error> {
    let layer = cairn_plan::parse_layer(0, "plan", yaml.as_bytes())
        .map_err(|e| pebble::Error::Connection(format!("cannot decode plan: {e}")))?;
    cairn_plan::Plan::from_layers(&[layer])
        .map_err(|e| pebble::Error::Connection(format!("cannot decode plan: {e}")))
}

/// A time of the API as the embedded side renders it (RFC 3339 in UTC, Go's nanosecond
/// form), whatever offset the server wrote.
fn utc(t: &str) -> String {
    match OffsetDateTime::parse(t, &Rfc3339) {
        Ok(t) => cairn_supervisor::timefmt::rfc3339(t.to_offset(time::UtcOffset::UTC)),
        Err(_) => t.to_string(),
    }
}

/// An `OffsetDateTime` in the embedded side's rendering.
fn utc_time(t: OffsetDateTime) -> String {
    cairn_supervisor::timefmt::rfc3339(t.to_offset(time::UtcOffset::UTC))
}

/// A service as `GET /v1/services` reports it, as the WIT record.
pub(super) fn service_info(s: api::ServiceInfo) -> pebble::ServiceInfo {
    pebble::ServiceInfo {
        name: s.name,
        startup: if s.startup == "enabled" {
            pebble::ServiceStartup::Enabled
        } else {
            pebble::ServiceStartup::Disabled
        },
        current: match s.current.as_str() {
            "active" => pebble::ServiceStatus::Active,
            "backoff" => pebble::ServiceStatus::Backoff,
            "error" => pebble::ServiceStatus::Error,
            _ => pebble::ServiceStatus::Inactive,
        },
        current_since: s.current_since.as_deref().map(utc),
    }
}

/// A check as `GET /v1/checks` reports it, as the WIT record.
pub(super) fn check_info(c: api::CheckInfo) -> wit::CheckInfo {
    wit::CheckInfo {
        level: match c.level.as_str() {
            "alive" => wit::CheckLevel::Alive,
            "ready" => wit::CheckLevel::Ready,
            _ => wit::CheckLevel::Unset,
        },
        status: match c.status.as_str() {
            "up" => wit::CheckStatus::Up,
            "down" => wit::CheckStatus::Down,
            _ => wit::CheckStatus::Inactive,
        },
        successes: c.successes,
        failures: c.failures,
        threshold: c.threshold,
        change_id: Some(c.change_id).filter(|s| !s.is_empty()),
        name: c.name,
    }
}

/// Milliseconds of a Go duration (`None` when absent or unreadable).
fn millis(d: &str) -> Option<u64> {
    (!d.is_empty())
        .then(|| cairn_plan::parse_duration(d).ok())
        .flatten()
        .map(|d| d.as_millis() as u64)
}

/// A notice as `GET /v1/notices` reports it, as the WIT record.
pub(super) fn notice(n: api::Notice) -> wit::Notice {
    wit::Notice {
        id: n.id,
        user_id: n.user_id,
        type_: n.type_,
        key: n.key,
        first_occurred: utc_time(n.first_occurred),
        last_occurred: utc_time(n.last_occurred),
        last_repeated: utc_time(n.last_repeated),
        occurrences: u32::try_from(n.occurrences).unwrap_or(u32::MAX),
        last_data: n.last_data.into_iter().collect(),
        repeat_after_ms: millis(&n.repeat_after),
        expire_after_ms: millis(&n.expire_after),
    }
}

/// The query of `GET /v1/notices` for a WIT filter (lists comma-joined, as Pebble reads
/// them).
pub(super) fn notices_query(f: &pebble::NoticeFilter) -> Vec<(&'static str, String)> {
    let mut q = Vec::new();
    if !f.types.is_empty() {
        q.push(("types", f.types.join(",")));
    }
    if !f.keys.is_empty() {
        q.push(("keys", f.keys.join(",")));
    }
    if let Some(after) = f.after.as_deref().filter(|a| !a.is_empty()) {
        q.push(("after", after.to_string()));
    }
    q
}

/// A listing's entry as the WIT record.
pub(super) fn file_info(f: api::FileInfo) -> pebble::FileInfo {
    pebble::FileInfo {
        path: f.path,
        name: f.name,
        type_: f.type_,
        size: f.size,
        permissions: u32::from_str_radix(&f.permissions, 8).unwrap_or(0),
        last_modified: utc(&f.last_modified),
        user_id: f.user_id,
        user: Some(f.user).filter(|u| !u.is_empty()),
        group_id: f.group_id,
        group: Some(f.group).filter(|g| !g.is_empty()),
    }
}

/// A sink for a pulled file that takes at most `limit` bytes: one more fails the write, so
/// no more than the budget (plus one chunk in flight) is ever held.
pub(super) struct CappedSink {
    /// What was received.
    pub(super) buf: Vec<u8>,
    limit: usize,
    /// Set when the file went past `limit`.
    pub(super) over: bool,
}

impl CappedSink {
    /// An empty sink keeping at most `limit` bytes.
    pub(super) fn new(limit: u64) -> Self {
        CappedSink {
            buf: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            over: false,
        }
    }
}

impl tokio::io::AsyncWrite for CappedSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.buf.len() + data.len() > self.limit {
            self.over = true;
            return std::task::Poll::Ready(Err(std::io::Error::other(
                "file is over the charm's memory budget",
            )));
        }
        self.buf.extend_from_slice(data);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
