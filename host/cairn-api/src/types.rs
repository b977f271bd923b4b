//! Pebble's JSON shapes of the API's results and request bodies, shared by the server
//! (which renders the supervisor's domain types into them, and decodes requests into the
//! domain's plain values) and the client (which does the reverse). The supervisor's types
//! are typed states; these are the protocol.

use std::collections::BTreeMap;

use cairn_plan::{CheckLevel, CheckStartup, ServiceStartup};
use cairn_supervisor::timefmt::rfc3339;
use cairn_supervisor::{ChangeStatus, CheckStatus};
use serde::{Deserialize, Serialize};

/// Task progress as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// A label for the units (always empty here).
    pub label: String,
    /// Units done.
    pub done: u32,
    /// Units in all.
    pub total: u32,
}

/// A task as `GET /v1/changes/{id}` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TaskInfo {
    /// The task's id.
    pub id: String,
    /// What the task does (`start`, `exec`, …).
    pub kind: String,
    /// One line saying what it does.
    pub summary: String,
    /// Pebble's status name (`Do`, `Doing`, `Done`, …).
    pub status: String,
    /// Recent log lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// How far it got.
    pub progress: Progress,
    /// When it was created, RFC 3339.
    pub spawn_time: String,
    /// When it became ready, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_time: Option<String>,
    /// Task data (an exec's `exit-code`).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A change as `GET /v1/changes` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ChangeInfo {
    /// The change's id.
    pub id: String,
    /// What the change does (`start`, `replan`, `exec`, …).
    pub kind: String,
    /// One line saying what it does.
    pub summary: String,
    /// Pebble's status name.
    pub status: String,
    /// Its tasks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskInfo>,
    /// Whether nothing more will happen to it.
    pub ready: bool,
    /// Pebble's error text when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<String>,
    /// When it was created, RFC 3339.
    pub spawn_time: String,
    /// When it became ready, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_time: Option<String>,
    /// Change data.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl TaskInfo {
    /// The status as the supervisor's type (`None` for a name Pebble does not use).
    pub fn status(&self) -> Option<ChangeStatus> {
        ChangeStatus::from_name(&self.status)
    }
}

impl ChangeInfo {
    /// The status as the supervisor's type (`None` for a name Pebble does not use).
    pub fn status(&self) -> Option<ChangeStatus> {
        ChangeStatus::from_name(&self.status)
    }
}

impl CheckInfo {
    /// The status as the supervisor's type (`None` for a name Pebble does not use).
    pub fn status(&self) -> Option<CheckStatus> {
        CheckStatus::from_name(&self.status)
    }
}

impl From<&cairn_supervisor::TaskInfo> for TaskInfo {
    fn from(t: &cairn_supervisor::TaskInfo) -> Self {
        TaskInfo {
            id: t.id.clone(),
            kind: t.kind.clone(),
            summary: t.summary.clone(),
            status: t.status.as_str().to_string(),
            log: t.log.clone(),
            progress: Progress {
                label: String::new(),
                done: t.done,
                total: t.total,
            },
            spawn_time: rfc3339(t.spawn_time),
            ready_time: t.ready_time.map(rfc3339),
            data: t.data.clone(),
        }
    }
}

impl From<&cairn_supervisor::ChangeInfo> for ChangeInfo {
    fn from(c: &cairn_supervisor::ChangeInfo) -> Self {
        ChangeInfo {
            id: c.id.clone(),
            kind: c.kind.clone(),
            summary: c.summary.clone(),
            status: c.status.as_str().to_string(),
            tasks: c.tasks.iter().map(TaskInfo::from).collect(),
            ready: c.ready,
            err: c.err.clone(),
            spawn_time: rfc3339(c.spawn_time),
            ready_time: c.ready_time.map(rfc3339),
            // Pebble shows a change's `api-data` only, which none of its changes set; the
            // supervisor's own (`service-names`, `check-name`) stay inside, as Pebble's do.
            data: serde_json::Map::new(),
        }
    }
}

/// One service as `GET /v1/services` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceInfo {
    /// The service's name.
    pub name: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `active`, `inactive`, `backoff` or `error`.
    pub current: String,
    /// When `current` last changed, RFC 3339; absent for never-started services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_since: Option<String>,
}

/// A service's startup as the API names it (unset is reported as disabled, as Pebble does).
fn startup_name(startup: ServiceStartup) -> &'static str {
    match startup {
        ServiceStartup::Enabled => "enabled",
        ServiceStartup::Disabled | ServiceStartup::Unknown => "disabled",
    }
}

impl From<&cairn_supervisor::ServiceInfo> for ServiceInfo {
    fn from(s: &cairn_supervisor::ServiceInfo) -> Self {
        ServiceInfo {
            name: s.name.clone(),
            startup: startup_name(s.startup).into(),
            current: s.current.as_str().into(),
            current_since: s.current_since.map(rfc3339),
        }
    }
}

/// A supervisor's service serialized as [`ServiceInfo`] straight from where it is, with
/// nothing copied: what `GET /v1/services` answers with, a hundred services at a time.
pub struct ServiceView<'a>(pub &'a cairn_supervisor::ServiceInfo);

impl Serialize for ServiceView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let s = self.0;
        let mut out = serializer.serialize_struct("ServiceInfo", 4)?;
        out.serialize_field("name", &s.name)?;
        out.serialize_field("startup", startup_name(s.startup))?;
        out.serialize_field("current", s.current.as_str())?;
        match s.current_since {
            Some(t) => out.serialize_field("current-since", &Rfc3339(t))?,
            None => out.skip_field("current-since")?,
        }
        out.end()
    }
}

/// A time serialized as RFC 3339 (as [`rfc3339`] renders it) from a buffer on the stack.
struct Rfc3339(time::OffsetDateTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The longest RFC 3339 time: `-9999-12-31T23:59:59.999999999+23:59`.
        let mut buf = [0u8; 64];
        let mut w = &mut buf[..];
        self.0
            .format_into(&mut w, &time::format_description::well_known::Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        let len = 64 - w.len();
        serializer
            .serialize_str(std::str::from_utf8(&buf[..len]).map_err(serde::ser::Error::custom)?)
    }
}

/// A check as `GET /v1/checks` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CheckInfo {
    /// The check's name.
    pub name: String,
    /// `alive`, `ready` or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub level: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `up`, `down` or `inactive`.
    pub status: String,
    /// Successful runs in the current change.
    pub successes: u32,
    /// Consecutive failures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// Failures that make the check down.
    pub threshold: u32,
    /// The running change, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub change_id: String,
    /// The change before it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prev_change_id: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Pebble's name for a check level (empty when unset).
pub fn level_name(l: CheckLevel) -> &'static str {
    match l {
        CheckLevel::Unset => "",
        CheckLevel::Alive => "alive",
        CheckLevel::Ready => "ready",
    }
}

impl From<&cairn_supervisor::CheckInfo> for CheckInfo {
    fn from(c: &cairn_supervisor::CheckInfo) -> Self {
        CheckInfo {
            name: c.name.clone(),
            level: level_name(c.level).into(),
            startup: match c.startup {
                CheckStartup::Disabled => "disabled",
                CheckStartup::Enabled | CheckStartup::Unknown => "enabled",
            }
            .into(),
            status: c.status.as_str().into(),
            successes: c.successes,
            failures: c.failures,
            threshold: c.threshold,
            change_id: c.change_id.clone(),
            prev_change_id: c.prev_change_id.clone(),
        }
    }
}

/// A notice as `GET /v1/notices` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Notice {
    /// Increasing integer, as a string.
    pub id: String,
    /// Owner's uid; `None` for public notices.
    pub user_id: Option<u32>,
    /// `custom`, `change-update` or `warning`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The key, unique per user and type.
    pub key: String,
    /// When it first occurred.
    #[serde(with = "time::serde::rfc3339")]
    pub first_occurred: time::OffsetDateTime,
    /// When it last occurred.
    #[serde(with = "time::serde::rfc3339")]
    pub last_occurred: time::OffsetDateTime,
    /// When it last occurred outside `repeat-after`.
    #[serde(with = "time::serde::rfc3339")]
    pub last_repeated: time::OffsetDateTime,
    /// How many times it occurred.
    pub occurrences: u64,
    /// Data of the last occurrence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_data: BTreeMap<String, String>,
    /// Go duration; absent when 0.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repeat_after: String,
    /// Go duration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expire_after: String,
}

impl From<&cairn_supervisor::Notice> for Notice {
    fn from(n: &cairn_supervisor::Notice) -> Self {
        Notice {
            id: n.id.clone(),
            user_id: n.user_id,
            type_: n.type_.as_str().into(),
            key: n.key.clone(),
            first_occurred: n.first_occurred,
            last_occurred: n.last_occurred,
            last_repeated: n.last_repeated,
            occurrences: n.occurrences,
            last_data: n.last_data.clone(),
            repeat_after: n.repeat_after.clone(),
            expire_after: n.expire_after.clone(),
        }
    }
}

/// One entry of a listing, as `GET /v1/files?action=list` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileInfo {
    /// Full path.
    pub path: String,
    /// Base name.
    pub name: String,
    /// `file`, `directory`, `symlink`, `socket`, `named-pipe`, `device` or `unknown`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Size in bytes, for regular files only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Three octal digits, such as `644`.
    pub permissions: String,
    /// RFC 3339 modification time.
    pub last_modified: String,
    /// Owner's uid.
    pub user_id: Option<u32>,
    /// Owner's name (empty when unknown).
    pub user: String,
    /// Group's gid.
    pub group_id: Option<u32>,
    /// Group's name (empty when unknown).
    pub group: String,
}

impl From<&cairn_supervisor::files::FileInfo> for FileInfo {
    fn from(f: &cairn_supervisor::files::FileInfo) -> Self {
        FileInfo {
            path: f.path.clone(),
            name: f.name.clone(),
            type_: f.type_.as_str().into(),
            size: f.size,
            permissions: format!("{:03o}", f.permissions),
            last_modified: rfc3339(f.last_modified),
            user_id: f.user_id,
            user: f.user.clone(),
            group_id: f.group_id,
            group: f.group.clone(),
        }
    }
}

/// One path's error in a files response: its Go-style message and Pebble's kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileError {
    /// Go-style message, such as `stat /x: no such file or directory`.
    pub message: String,
    /// `not-found`, `permission-denied` or `generic-file-error`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

impl From<&cairn_supervisor::files::FileError> for FileError {
    fn from(e: &cairn_supervisor::files::FileError) -> Self {
        FileError {
            message: e.message.clone(),
            kind: e.kind.as_str().into(),
        }
    }
}

/// One path's outcome in a files response (`make-dirs`, `remove`, `write`, `read`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileResult {
    /// The path the request named.
    pub path: String,
    /// Why it failed; absent on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FileError>,
}

impl FileResult {
    /// The outcome for `path`: success, or the supervisor's error rendered.
    pub fn new(path: &str, err: Option<&cairn_supervisor::files::FileError>) -> Self {
        FileResult {
            path: path.to_string(),
            error: err.map(FileError::from),
        }
    }
}

/// Mode and owner of a files `write` or `make-dirs` item, as the request JSON spells them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Ownership {
    /// Three octal digits; empty for the default.
    #[serde(default)]
    pub permissions: String,
    /// Owner uid.
    #[serde(default)]
    pub user_id: Option<u32>,
    /// Owner name.
    #[serde(default)]
    pub user: String,
    /// Group gid.
    #[serde(default)]
    pub group_id: Option<u32>,
    /// Group name.
    #[serde(default)]
    pub group: String,
}

impl From<Ownership> for cairn_supervisor::files::Ownership {
    fn from(o: Ownership) -> Self {
        cairn_supervisor::files::Ownership {
            permissions: o.permissions,
            user_id: o.user_id,
            user: o.user,
            group_id: o.group_id,
            group: o.group,
        }
    }
}

impl From<&cairn_supervisor::files::Ownership> for Ownership {
    fn from(o: &cairn_supervisor::files::Ownership) -> Self {
        Ownership {
            permissions: o.permissions.clone(),
            user_id: o.user_id,
            user: o.user.clone(),
            group_id: o.group_id,
            group: o.group.clone(),
        }
    }
}

/// One file of a files `write` request's metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WriteItem {
    /// Absolute path.
    pub path: String,
    /// Create missing parent directories.
    #[serde(default)]
    pub make_dirs: bool,
    /// Mode and owner.
    #[serde(flatten)]
    pub ownership: Ownership,
}

impl From<WriteItem> for cairn_supervisor::files::WriteItem {
    fn from(w: WriteItem) -> Self {
        cairn_supervisor::files::WriteItem {
            path: w.path,
            make_dirs: w.make_dirs,
            ownership: w.ownership.into(),
        }
    }
}

impl From<&cairn_supervisor::files::WriteItem> for WriteItem {
    fn from(w: &cairn_supervisor::files::WriteItem) -> Self {
        WriteItem {
            path: w.path.clone(),
            make_dirs: w.make_dirs,
            ownership: (&w.ownership).into(),
        }
    }
}

/// Renders a list of domain values as their wire shapes.
pub fn wire<'a, D: 'a, W: From<&'a D>>(items: &'a [D]) -> Vec<W> {
    items.iter().map(W::from).collect()
}

#[cfg(test)]
mod tests {
    use cairn_supervisor::files::{self, FileErrorKind};

    use super::*;

    #[test]
    fn a_service_view_serializes_as_the_service_info_it_stands_for() {
        let since = time::macros::datetime!(2026-12-03 16:30:01.123456789 +01:00);
        for (startup, current, current_since) in [
            (
                ServiceStartup::Enabled,
                cairn_supervisor::ServiceStatus::Active,
                Some(since),
            ),
            (
                ServiceStartup::Unknown,
                cairn_supervisor::ServiceStatus::Inactive,
                None,
            ),
            (
                ServiceStartup::Disabled,
                cairn_supervisor::ServiceStatus::Backoff,
                Some(since.replace_nanosecond(0).unwrap()),
            ),
        ] {
            let s = cairn_supervisor::ServiceInfo {
                name: "a\"b".into(),
                startup,
                current,
                current_since,
            };
            assert_eq!(
                serde_json::to_string(&ServiceView(&s)).unwrap(),
                serde_json::to_string(&ServiceInfo::from(&s)).unwrap()
            );
        }
    }

    #[test]
    fn write_item_decodes_pebbles_request_json_into_the_domain_value() {
        let raw = r#"{"path":"/a/b","make-dirs":true,"permissions":"600","user-id":5,"group":"g"}"#;
        let item: files::WriteItem = serde_json::from_str::<WriteItem>(raw).unwrap().into();
        assert_eq!(
            item,
            files::WriteItem {
                path: "/a/b".into(),
                make_dirs: true,
                ownership: files::Ownership {
                    permissions: "600".into(),
                    user_id: Some(5),
                    group: "g".into(),
                    ..files::Ownership::default()
                },
            }
        );
        assert_eq!(
            serde_json::to_string(&WriteItem::from(&item)).unwrap(),
            r#"{"path":"/a/b","make-dirs":true,"permissions":"600","user-id":5,"user":"","group-id":null,"group":"g"}"#
        );
        let e = serde_json::from_str::<WriteItem>(r#""x""#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid type: string \"x\", expected struct WriteItem at line 1 column 3"
        );
        let e = serde_json::from_str::<WriteItem>("{}").unwrap_err();
        assert_eq!(e.to_string(), "missing field `path` at line 1 column 2");
    }

    #[test]
    fn file_results_render_pebbles_kind_names_and_omit_success_errors() {
        let err = files::FileError {
            kind: FileErrorKind::PermissionDenied,
            message: "open /x: permission denied".into(),
        };
        assert_eq!(
            serde_json::to_string(&FileResult::new("/x", Some(&err))).unwrap(),
            r#"{"path":"/x","error":{"message":"open /x: permission denied","kind":"permission-denied"}}"#
        );
        assert_eq!(
            serde_json::to_string(&FileResult::new("/y", None)).unwrap(),
            r#"{"path":"/y"}"#
        );
        let generic = FileError::from(&files::FileError::generic("bad"));
        assert_eq!(generic.kind, "generic-file-error");
    }
}
