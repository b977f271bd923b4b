//! Conversions between the WIT world's records and the host's own types: events,
//! statuses, config values, check and notice records, the typed plan, file options, and
//! supervisor errors as the guest sees them.

use std::collections::BTreeMap;

use cairn_plan::CheckLevel;
use cairn_supervisor::{CheckStatus, SupervisorError};

use super::v02::cairn::charm0_2_0::types as v02wit;
use super::{pebble, wit};
use crate::types::{self, ConfigValue, Event, LogLevel, Outcome, WorkloadStatus};

/// An event as a 0.1 guest's `handle` receives it; `None` for relation events, which 0.1
/// has no form for (a 0.1 charm is never given one).
pub(crate) fn to_wit_event(e: &Event) -> Option<wit::Event> {
    Some(match e {
        Event::Install => wit::Event::Install,
        Event::Start => wit::Event::Start,
        Event::Stop => wit::Event::Stop,
        Event::Remove => wit::Event::Remove,
        Event::ConfigChanged => wit::Event::ConfigChanged,
        Event::UpgradeCharm => wit::Event::UpgradeCharm,
        Event::UpdateStatus => wit::Event::UpdateStatus,
        Event::LeaderElected => wit::Event::LeaderElected,
        Event::PebbleReady { container } => wit::Event::PebbleReady(container.clone()),
        Event::PebbleCheckFailed { container, info } => {
            wit::Event::PebbleCheckFailed(wit::CheckEvent {
                container: container.clone(),
                info: check_info(info),
            })
        }
        Event::PebbleCheckRecovered { container, info } => {
            wit::Event::PebbleCheckRecovered(wit::CheckEvent {
                container: container.clone(),
                info: check_info(info),
            })
        }
        Event::PebbleCustomNotice { container, notice } => {
            wit::Event::PebbleCustomNotice(wit::NoticeEvent {
                container: container.clone(),
                notice: wit_notice(notice),
            })
        }
        Event::Action {
            id,
            name,
            params_json,
        } => wit::Event::Action(wit::ActionEvent {
            id: id.clone(),
            name: name.clone(),
            params_json: params_json.clone(),
        }),
        Event::RelationCreated(_)
        | Event::RelationJoined(_)
        | Event::RelationChanged(_)
        | Event::RelationDeparted(_)
        | Event::RelationBroken(_) => return None,
    })
}

/// An event as a 0.2 guest's `handle` receives it: 0.1's events case for case, and
/// relation events.
pub(crate) fn to_wit_event_v02(e: &Event) -> v02wit::Event {
    let rel = |r: &types::RelationEvent| v02wit::RelationEvent {
        relation_id: r.relation_id,
        endpoint: r.endpoint.clone(),
        remote_app: r.remote_app.clone(),
        remote_unit: r.remote_unit.clone(),
        departing_unit: r.departing_unit.clone(),
    };
    match e {
        Event::RelationCreated(r) => return v02wit::Event::RelationCreated(rel(r)),
        Event::RelationJoined(r) => return v02wit::Event::RelationJoined(rel(r)),
        Event::RelationChanged(r) => return v02wit::Event::RelationChanged(rel(r)),
        Event::RelationDeparted(r) => return v02wit::Event::RelationDeparted(rel(r)),
        Event::RelationBroken(r) => return v02wit::Event::RelationBroken(rel(r)),
        _ => {}
    }
    match to_wit_event(e).expect("every event but a relation's has a 0.1 form") {
        wit::Event::Install => v02wit::Event::Install,
        wit::Event::Start => v02wit::Event::Start,
        wit::Event::Stop => v02wit::Event::Stop,
        wit::Event::Remove => v02wit::Event::Remove,
        wit::Event::ConfigChanged => v02wit::Event::ConfigChanged,
        wit::Event::UpgradeCharm => v02wit::Event::UpgradeCharm,
        wit::Event::UpdateStatus => v02wit::Event::UpdateStatus,
        wit::Event::LeaderElected => v02wit::Event::LeaderElected,
        wit::Event::PebbleReady(c) => v02wit::Event::PebbleReady(c),
        wit::Event::PebbleCheckFailed(c) => v02wit::Event::PebbleCheckFailed(c),
        wit::Event::PebbleCheckRecovered(c) => v02wit::Event::PebbleCheckRecovered(c),
        wit::Event::PebbleCustomNotice(n) => v02wit::Event::PebbleCustomNotice(n),
        wit::Event::Action(a) => v02wit::Event::Action(a),
    }
}

/// A notice as the WIT `notice` record.
pub(super) fn wit_notice(notice: &types::Notice) -> wit::Notice {
    wit::Notice {
        id: notice.id.clone(),
        user_id: notice.user_id,
        type_: notice.r#type.clone(),
        key: notice.key.clone(),
        first_occurred: notice.first_occurred.clone(),
        last_occurred: notice.last_occurred.clone(),
        last_repeated: notice.last_repeated.clone(),
        occurrences: notice.occurrences,
        last_data: notice.last_data.clone().into_iter().collect(),
        repeat_after_ms: notice.repeat_after_ms,
        expire_after_ms: notice.expire_after_ms,
    }
}

/// A check's state as the WIT `check-info` record.
pub(super) fn check_info(i: &types::CheckInfo) -> wit::CheckInfo {
    wit::CheckInfo {
        name: i.name.clone(),
        level: match i.level {
            CheckLevel::Alive => wit::CheckLevel::Alive,
            CheckLevel::Ready => wit::CheckLevel::Ready,
            CheckLevel::Unset => wit::CheckLevel::Unset,
        },
        status: match i.status {
            CheckStatus::Up => wit::CheckStatus::Up,
            CheckStatus::Down => wit::CheckStatus::Down,
            CheckStatus::Inactive => wit::CheckStatus::Inactive,
        },
        successes: i.successes,
        failures: i.failures,
        threshold: i.threshold,
        change_id: i.change_id.clone(),
    }
}

/// What the guest's `handle` returned, as the host's [`Outcome`].
pub(crate) fn from_wit_outcome(o: wit::Outcome) -> Outcome {
    match o {
        wit::Outcome::Handled => Outcome::Handled,
        wit::Outcome::Deferred => Outcome::Deferred,
    }
}

/// An outcome as a guest would return it (what an instantiation-only check stands in for).
pub(crate) fn to_wit_outcome(o: Outcome) -> wit::Outcome {
    match o {
        Outcome::Handled => wit::Outcome::Handled,
        Outcome::Deferred => wit::Outcome::Deferred,
    }
}

/// A status as the guest reads it (`error` is the host's own and reads as `blocked`).
pub(super) fn to_wit_status(s: &WorkloadStatus) -> wit::Status {
    match s {
        WorkloadStatus::Unknown => wit::Status::Unknown,
        WorkloadStatus::Active(m) => wit::Status::Active(m.clone()),
        WorkloadStatus::Blocked(m) => wit::Status::Blocked(m.clone()),
        WorkloadStatus::Maintenance(m) => wit::Status::Maintenance(m.clone()),
        WorkloadStatus::Waiting(m) => wit::Status::Waiting(m.clone()),
        WorkloadStatus::Error(m) => wit::Status::Blocked(m.clone()),
    }
}

/// A status the guest set.
pub(super) fn from_wit_status(s: wit::Status) -> WorkloadStatus {
    match s {
        wit::Status::Unknown => WorkloadStatus::Unknown,
        wit::Status::Active(m) => WorkloadStatus::Active(m),
        wit::Status::Blocked(m) => WorkloadStatus::Blocked(m),
        wit::Status::Maintenance(m) => WorkloadStatus::Maintenance(m),
        wit::Status::Waiting(m) => WorkloadStatus::Waiting(m),
    }
}

/// A config value as the guest reads it.
pub(super) fn to_wit_config(v: &ConfigValue) -> wit::ConfigValue {
    match v {
        ConfigValue::Bool(b) => wit::ConfigValue::Boolean(*b),
        ConfigValue::Int(i) => wit::ConfigValue::Int(*i),
        ConfigValue::Float(f) => wit::ConfigValue::Float(*f),
        ConfigValue::String(s) => wit::ConfigValue::String(s.clone()),
    }
}

/// A files error as the WIT `path-error` (Pebble's kind and message kept).
pub(super) fn path_error(e: cairn_supervisor::files::FileError) -> pebble::Error {
    pebble::Error::Path(pebble::PathError {
        kind: e.kind.as_str().into(),
        message: e.message,
    })
}

/// The permissions and owner a push or make-dir asks for.
pub(super) fn ownership(o: &pebble::FileOptions) -> cairn_supervisor::files::Ownership {
    cairn_supervisor::files::Ownership {
        permissions: o
            .permissions
            .map(|p| format!("{p:03o}"))
            .unwrap_or_default(),
        user_id: o.user_id,
        user: o.user.clone().unwrap_or_default(),
        group_id: o.group_id,
        group: o.group.clone().unwrap_or_default(),
    }
}

/// A supervisor error as the guest sees it: Pebble's API error (status code, kind and
/// message), or a timeout.
///
/// The one place that maps supervisor errors for guests; it mirrors the HTTP server's
/// mapping (`cairn-api`), which is to become the single shared mapping.
pub(super) fn api_error(e: SupervisorError) -> pebble::Error {
    if e.kind() == cairn_supervisor::ErrorKind::Timeout {
        return pebble::Error::Timeout(e.to_string());
    }
    // The same code, reason and kind an HTTP client of the container's API would get.
    let api = cairn_api::ApiError::from(&e);
    pebble::Error::Api(pebble::ApiError {
        code: api.code,
        status: api.status.into(),
        kind: api.kind.into(),
        message: api.message,
    })
}

/// A map as WIT's list of pairs.
fn pairs(m: &BTreeMap<String, String>) -> Vec<(String, String)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// An optional string from the plan's empty-means-unset form.
fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// A duration in Pebble's Go format.
fn duration(d: Option<std::time::Duration>) -> Option<String> {
    d.map(cairn_plan::format_duration)
}

/// A layer item's `override`.
fn override_kind(o: cairn_plan::Override) -> pebble::OverrideKind {
    match o {
        cairn_plan::Override::Unknown => pebble::OverrideKind::Unset,
        cairn_plan::Override::Merge => pebble::OverrideKind::Merge,
        cairn_plan::Override::Replace => pebble::OverrideKind::Replace,
    }
}

/// A service's `startup` (`None` when unset).
fn startup(s: cairn_plan::ServiceStartup) -> Option<pebble::ServiceStartup> {
    match s {
        cairn_plan::ServiceStartup::Unknown => None,
        cairn_plan::ServiceStartup::Enabled => Some(pebble::ServiceStartup::Enabled),
        cairn_plan::ServiceStartup::Disabled => Some(pebble::ServiceStartup::Disabled),
    }
}

/// A service's exit action (`None` when unset).
fn service_action(a: cairn_plan::ServiceAction) -> Option<pebble::ServiceAction> {
    use cairn_plan::ServiceAction as A;
    Some(match a {
        A::Unset => return None,
        A::Restart => pebble::ServiceAction::Restart,
        A::Shutdown => pebble::ServiceAction::Shutdown,
        A::FailureShutdown => pebble::ServiceAction::FailureShutdown,
        A::SuccessShutdown => pebble::ServiceAction::SuccessShutdown,
        A::Ignore => pebble::ServiceAction::Ignore,
    })
}

/// The combined plan as the WIT `plan` record.
pub(super) fn typed_plan(plan: &cairn_plan::Plan) -> pebble::Plan {
    let services = plan
        .services
        .values()
        .map(|s| pebble::ServicePlan {
            name: s.name.clone(),
            summary: s.summary.clone(),
            description: s.description.clone(),
            startup: startup(s.startup),
            override_: override_kind(s.override_),
            command: s.command.clone(),
            after: s.after.clone(),
            before: s.before.clone(),
            requires: s.requires.clone(),
            environment: pairs(&s.environment),
            user: non_empty(&s.user),
            user_id: s.user_id,
            group: non_empty(&s.group),
            group_id: s.group_id,
            working_dir: non_empty(&s.working_dir),
            on_success: service_action(s.on_success),
            on_failure: service_action(s.on_failure),
            on_check_failure: s
                .on_check_failure
                .iter()
                .filter_map(|(k, a)| Some((k.clone(), service_action(*a)?)))
                .collect(),
            backoff_delay: duration(s.backoff_delay),
            backoff_factor: s.backoff_factor,
            backoff_limit: duration(s.backoff_limit),
            kill_delay: duration(s.kill_delay),
        })
        .collect();
    let checks = plan
        .checks
        .values()
        .map(|c| pebble::CheckPlan {
            name: c.name.clone(),
            override_: override_kind(c.override_),
            level: match c.level {
                cairn_plan::CheckLevel::Unset => wit::CheckLevel::Unset,
                cairn_plan::CheckLevel::Alive => wit::CheckLevel::Alive,
                cairn_plan::CheckLevel::Ready => wit::CheckLevel::Ready,
            },
            startup: match c.startup {
                cairn_plan::CheckStartup::Unknown => None,
                cairn_plan::CheckStartup::Enabled => Some(pebble::ServiceStartup::Enabled),
                cairn_plan::CheckStartup::Disabled => Some(pebble::ServiceStartup::Disabled),
            },
            period: duration(c.period),
            timeout: duration(c.timeout),
            threshold: c.threshold,
            http: c.http.as_ref().map(|h| pebble::HttpCheck {
                url: h.url.clone(),
                headers: pairs(&h.headers),
            }),
            tcp: c.tcp.as_ref().map(|t| pebble::TcpCheck {
                port: u16::try_from(t.port).ok().filter(|p| *p != 0),
                host: non_empty(&t.host),
            }),
            exec: c.exec.as_ref().map(|e| pebble::ExecCheck {
                command: e.command.clone(),
                service_context: non_empty(&e.service_context),
                environment: pairs(&e.environment),
                user: non_empty(&e.user),
                user_id: e.user_id,
                group: non_empty(&e.group),
                group_id: e.group_id,
                working_dir: non_empty(&e.working_dir),
            }),
        })
        .collect();
    let log_targets = plan
        .log_targets
        .values()
        .map(|t| pebble::LogTargetPlan {
            name: t.name.clone(),
            override_: override_kind(t.override_),
            type_: match t.type_ {
                cairn_plan::LogTargetType::Unset => None,
                cairn_plan::LogTargetType::Loki => Some(pebble::LogTargetType::Loki),
                cairn_plan::LogTargetType::OpenTelemetry => {
                    Some(pebble::LogTargetType::Opentelemetry)
                }
                cairn_plan::LogTargetType::Syslog => Some(pebble::LogTargetType::Syslog),
            },
            location: t.location.clone(),
            services: t.services.clone(),
            labels: pairs(&t.labels),
        })
        .collect();
    pebble::Plan {
        services,
        checks,
        log_targets,
    }
}

/// A charm's log level as the host's.
pub(super) fn from_wit_log_level(level: wit::LogLevel) -> LogLevel {
    match level {
        wit::LogLevel::Trace => LogLevel::Trace,
        wit::LogLevel::Debug => LogLevel::Debug,
        wit::LogLevel::Info => LogLevel::Info,
        wit::LogLevel::Warning => LogLevel::Warning,
        wit::LogLevel::Error => LogLevel::Error,
    }
}

/// A check level filter as the supervisor takes it (empty for all levels).
pub(super) fn check_level_filter(level: wit::CheckLevel) -> Option<CheckLevel> {
    match level {
        wit::CheckLevel::Unset => None,
        wit::CheckLevel::Alive => Some(CheckLevel::Alive),
        wit::CheckLevel::Ready => Some(CheckLevel::Ready),
    }
}

/// A service's state as the WIT `service-info` record.
pub(super) fn service_info(s: cairn_supervisor::ServiceInfo) -> pebble::ServiceInfo {
    pebble::ServiceInfo {
        name: s.name,
        startup: if s.startup == cairn_plan::ServiceStartup::Enabled {
            pebble::ServiceStartup::Enabled
        } else {
            pebble::ServiceStartup::Disabled
        },
        current: match s.current {
            cairn_supervisor::ServiceStatus::Active => pebble::ServiceStatus::Active,
            cairn_supervisor::ServiceStatus::Inactive => pebble::ServiceStatus::Inactive,
            cairn_supervisor::ServiceStatus::Backoff => pebble::ServiceStatus::Backoff,
            cairn_supervisor::ServiceStatus::Error => pebble::ServiceStatus::Error,
        },
        current_since: s.current_since.map(cairn_supervisor::timefmt::rfc3339),
    }
}

/// A file's details as the WIT `file-info` record.
pub(super) fn file_info(f: cairn_supervisor::files::FileInfo) -> pebble::FileInfo {
    pebble::FileInfo {
        path: f.path,
        name: f.name,
        type_: f.type_.as_str().to_string(),
        size: f.size,
        permissions: f.permissions,
        last_modified: cairn_supervisor::timefmt::rfc3339(f.last_modified),
        user_id: f.user_id,
        user: Some(f.user).filter(|u| !u.is_empty()),
        group_id: f.group_id,
        group: Some(f.group).filter(|g| !g.is_empty()),
    }
}

/// An API error (a custom container's, or a Pebble server's) as the guest sees it: a 504
/// is a wait that timed out.
pub(super) fn custom_error(e: crate::wasm::ContainerError) -> pebble::Error {
    use crate::wasm::ContainerError as E;
    match e {
        E::Connection(m) => pebble::Error::Connection(m),
        E::Api {
            code: 504, message, ..
        } => pebble::Error::Timeout(message),
        E::Api {
            code,
            kind,
            message,
        } => pebble::Error::Api(pebble::ApiError {
            code,
            status: cairn_api::envelope::reason(code).into(),
            kind,
            message,
        }),
        E::Path { kind, message } => pebble::Error::Path(pebble::PathError { kind, message }),
        E::Change { change_id, err } => {
            pebble::Error::Change(pebble::ChangeError { change_id, err })
        }
    }
}
