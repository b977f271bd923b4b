//! Changes and tasks: every long operation is a change made of tasks, as in Pebble.
//!
//! The [`ChangeBook`] holds them, derives a change's status from its tasks with Pebble's
//! priority order, formats task logs and change errors with Pebble's texts, and is what the
//! supervisor persists. Waiters are woken through a version counter bumped on every update.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::timefmt;

/// A change's or task's status, with Pebble's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeStatus {
    /// Not decided: a change's status is then derived from its tasks.
    Default,
    /// Waiting to run.
    Do,
    /// Running.
    Doing,
    /// Finished successfully.
    Done,
    /// Asked to stop.
    Abort,
    /// Undo pending.
    Undo,
    /// Undoing.
    Undoing,
    /// Undone.
    Undone,
    /// Will not run (an earlier task in its lane failed, or it was aborted before starting).
    Hold,
    /// Failed.
    Error,
    /// Waiting on something external.
    Wait,
}

impl ChangeStatus {
    /// Pebble's name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeStatus::Default => "Default",
            ChangeStatus::Do => "Do",
            ChangeStatus::Doing => "Doing",
            ChangeStatus::Done => "Done",
            ChangeStatus::Abort => "Abort",
            ChangeStatus::Undo => "Undo",
            ChangeStatus::Undoing => "Undoing",
            ChangeStatus::Undone => "Undone",
            ChangeStatus::Hold => "Hold",
            ChangeStatus::Error => "Error",
            ChangeStatus::Wait => "Wait",
        }
    }

    /// The status Pebble names `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        STATUS_ORDER
            .iter()
            .chain(&[ChangeStatus::Default])
            .copied()
            .find(|s| s.as_str() == name)
    }

    /// Whether nothing more will happen to a change or task in this status.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            ChangeStatus::Done | ChangeStatus::Undone | ChangeStatus::Hold | ChangeStatus::Error
        )
    }
}

/// Pebble's priority when deriving a change's status from its tasks' statuses.
const STATUS_ORDER: [ChangeStatus; 10] = [
    ChangeStatus::Abort,
    ChangeStatus::Undoing,
    ChangeStatus::Undo,
    ChangeStatus::Doing,
    ChangeStatus::Do,
    ChangeStatus::Wait,
    ChangeStatus::Error,
    ChangeStatus::Undone,
    ChangeStatus::Done,
    ChangeStatus::Hold,
];

/// A task as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Task {
    pub id: u64,
    pub change: u64,
    pub kind: String,
    pub summary: String,
    pub status: ChangeStatus,
    pub log: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub spawn_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_time: Option<OffsetDateTime>,
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A change as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Change {
    pub id: u64,
    pub kind: String,
    pub summary: String,
    pub status: ChangeStatus,
    pub tasks: Vec<u64>,
    #[serde(with = "time::serde::rfc3339")]
    pub spawn_time: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub ready_time: Option<OffsetDateTime>,
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A task as the supervisor reports it (`GET /v1/changes/{id}` renders it).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// The task's id.
    pub id: String,
    /// What the task does (`start`, `stop`, `exec`, `perform-check`, …).
    pub kind: String,
    /// Pebble's one-line summary.
    pub summary: String,
    /// Where the task is.
    pub status: ChangeStatus,
    /// The most recent log lines (`<time> INFO|ERROR <message>`).
    pub log: Vec<String>,
    /// Units of work done (1 once ready).
    pub done: u32,
    /// Units of work in all.
    pub total: u32,
    /// When it was created.
    pub spawn_time: OffsetDateTime,
    /// When it became ready.
    pub ready_time: Option<OffsetDateTime>,
    /// Task data (an exec's `exit-code`).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// A change as the supervisor reports it (`GET /v1/changes` renders it).
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeInfo {
    /// The change's id.
    pub id: String,
    /// What the change does (`start`, `replan`, `exec`, …).
    pub kind: String,
    /// Pebble's one-line summary.
    pub summary: String,
    /// Derived from its tasks with Pebble's priority order.
    pub status: ChangeStatus,
    /// Its tasks in order.
    pub tasks: Vec<TaskInfo>,
    /// Whether nothing more will happen to it.
    pub ready: bool,
    /// Pebble's error text when it failed.
    pub err: Option<String>,
    /// When it was created.
    pub spawn_time: OffsetDateTime,
    /// When it became ready.
    pub ready_time: Option<OffsetDateTime>,
    /// Change data (`service-names`, `check-name`).
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// Which changes a listing wants (`select=` of `GET /v1/changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ChangeSelect {
    /// Changes not yet ready (the default).
    #[default]
    InProgress,
    /// Changes that are ready.
    Ready,
    /// All changes.
    All,
}

/// All changes and tasks of one supervisor; serialisable for persistence.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ChangeBook {
    last_change_id: u64,
    last_task_id: u64,
    // Boxed: a map's node has room for eleven values, and a unit's container usually has
    // one or two changes; eleven inline changes would be kilobytes per container.
    changes: BTreeMap<u64, Box<Change>>,
    tasks: BTreeMap<u64, Box<Task>>,
    /// The status each change last recorded a `change-update` notice for.
    #[serde(skip)]
    noticed: BTreeMap<u64, ChangeStatus>,
    /// `change-update` notices to record: change id and notice data.
    #[serde(skip)]
    pending_notices: Vec<(u64, BTreeMap<String, String>)>,
}

/// Ready changes older than this are pruned (Pebble's `pruneWait`, 7 days).
const PRUNE_WAIT: time::Duration = time::Duration::days(7);
/// Ready changes beyond this many are pruned, oldest first (Pebble keeps 1000).
const MAX_READY_CHANGES: usize = 1000;
/// Task logs keep this many most recent lines (Pebble keeps 10).
const MAX_TASK_LOG: usize = 10;

impl ChangeBook {
    /// Records a new change with its tasks (kind, summary) and returns its id and task ids.
    pub fn new_change(
        &mut self,
        kind: &str,
        summary: &str,
        tasks: &[(String, String)],
    ) -> (u64, Vec<u64>) {
        let now = OffsetDateTime::now_utc();
        self.last_change_id += 1;
        let id = self.last_change_id;
        let mut ids = Vec::new();
        for (tkind, tsummary) in tasks {
            self.last_task_id += 1;
            let tid = self.last_task_id;
            self.tasks.insert(
                tid,
                Box::new(Task {
                    id: tid,
                    change: id,
                    kind: tkind.clone(),
                    summary: tsummary.clone(),
                    status: ChangeStatus::Do,
                    log: Vec::new(),
                    spawn_time: now,
                    ready_time: None,
                    data: Default::default(),
                }),
            );
            ids.push(tid);
        }
        self.changes.insert(
            id,
            Box::new(Change {
                id,
                kind: kind.to_string(),
                summary: summary.to_string(),
                status: if tasks.is_empty() {
                    ChangeStatus::Done
                } else {
                    ChangeStatus::Default
                },
                tasks: ids.clone(),
                spawn_time: now,
                ready_time: if tasks.is_empty() { Some(now) } else { None },
                data: Default::default(),
            }),
        );
        if tasks.is_empty() {
            // Pebble records a change's spawn, then (a change with nothing to do is set
            // Done at once) its move to Done: two occurrences.
            self.push_notice(id);
        }
        self.observe(id);
        self.prune();
        (id, ids)
    }

    /// Records a `change-update` notice when a change's status moved, as Pebble's
    /// `notifyStatusChange` (Doing→Do and Undoing→Undo flips are skipped).
    fn observe(&mut self, id: u64) {
        let new = self.change_status(id);
        let old = self
            .noticed
            .get(&id)
            .copied()
            .unwrap_or(ChangeStatus::Default);
        let skip = old == new
            || (old == ChangeStatus::Doing && new == ChangeStatus::Do)
            || (old == ChangeStatus::Undoing && new == ChangeStatus::Undo);
        if skip {
            return;
        }
        self.noticed.insert(id, new);
        self.push_notice(id);
    }

    /// Queues a `change-update` notice occurrence for change `id`.
    fn push_notice(&mut self, id: u64) {
        let Some(c) = self.changes.get(&id) else {
            return;
        };
        let mut data: BTreeMap<String, String> = [("kind".to_string(), c.kind.clone())].into();
        if let Some(name) = c.data.get("check-name").and_then(|v| v.as_str()) {
            data.insert("check-name".into(), name.to_string());
        }
        self.pending_notices.push((id, data));
    }

    /// The `change-update` notices recorded since the last call.
    pub fn take_notices(&mut self) -> Vec<(u64, BTreeMap<String, String>)> {
        std::mem::take(&mut self.pending_notices)
    }

    /// Sets a change's data key.
    pub fn set_change_data(&mut self, id: u64, key: &str, value: serde_json::Value) {
        if let Some(c) = self.changes.get_mut(&id) {
            c.data.insert(key.to_string(), value);
        }
    }

    /// Sets a task's data key.
    pub fn set_task_data(&mut self, id: u64, key: &str, value: serde_json::Value) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.data.insert(key.to_string(), value);
        }
    }

    /// A task's data key.
    pub fn task_data(&self, id: u64, key: &str) -> Option<&serde_json::Value> {
        self.tasks.get(&id).and_then(|t| t.data.get(key))
    }

    /// Moves a task to `status`, stamping its ready time, and the change's when it becomes ready.
    pub fn set_task_status(&mut self, id: u64, status: ChangeStatus) {
        let now = OffsetDateTime::now_utc();
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        task.status = status;
        if status.is_ready() && task.ready_time.is_none() {
            task.ready_time = Some(now);
        }
        let change_id = task.change;
        let st = self.change_status(change_id);
        if let Some(c) = self.changes.get_mut(&change_id)
            && st.is_ready()
            && c.ready_time.is_none()
        {
            c.ready_time = Some(now);
        }
        self.observe(change_id);
    }

    /// A task's kind.
    pub fn task_kind(&self, id: u64) -> Option<String> {
        self.tasks.get(&id).map(|t| t.kind.clone())
    }

    /// A task's status.
    pub fn task_status(&self, id: u64) -> Option<ChangeStatus> {
        self.tasks.get(&id).map(|t| t.status)
    }

    /// Appends an INFO line to a task's log.
    pub fn task_log(&mut self, id: u64, msg: &str) {
        self.add_log(id, "INFO", msg);
    }

    /// Appends an ERROR line to a task's log.
    pub fn task_error(&mut self, id: u64, msg: &str) {
        self.add_log(id, "ERROR", msg);
    }

    fn add_log(&mut self, id: u64, level: &str, msg: &str) {
        if let Some(t) = self.tasks.get_mut(&id) {
            if t.log.len() >= MAX_TASK_LOG {
                let drop = t.log.len() + 1 - MAX_TASK_LOG;
                t.log.drain(..drop);
            }
            let now = timefmt::rfc3339_secs(OffsetDateTime::now_utc());
            t.log.push(format!("{now} {level} {msg}"));
        }
    }

    /// A change's status, derived from its tasks unless set explicitly.
    pub fn change_status(&self, id: u64) -> ChangeStatus {
        let Some(c) = self.changes.get(&id) else {
            return ChangeStatus::Default;
        };
        if c.status != ChangeStatus::Default {
            return c.status;
        }
        if c.tasks.is_empty() {
            return ChangeStatus::Hold;
        }
        let statuses: Vec<ChangeStatus> = c
            .tasks
            .iter()
            .filter_map(|t| self.task_status(*t))
            .collect();
        STATUS_ORDER
            .iter()
            .copied()
            .find(|s| statuses.contains(s))
            .unwrap_or(ChangeStatus::Hold)
    }

    /// Pebble's change error: each failed task's summary with its logged errors.
    pub fn change_err(&self, id: u64) -> Option<String> {
        if self.change_status(id) != ChangeStatus::Error {
            return None;
        }
        let c = self.changes.get(&id)?;
        let mut out = String::from("cannot perform the following tasks:");
        let mut any = false;
        for t in c.tasks.iter().filter_map(|t| self.tasks.get(t)) {
            if t.status != ChangeStatus::Error {
                continue;
            }
            for line in &t.log {
                if let Some(i) = line.find(" ERROR ") {
                    out.push_str(&format!("\n- {} ({})", t.summary, &line[i + 7..]));
                    any = true;
                }
            }
        }
        Some(if any {
            out
        } else {
            format!(
                "internal inconsistency: change {:?} in ErrorStatus with no task errors logged",
                c.kind
            )
        })
    }

    /// Whether a change exists.
    pub fn contains(&self, id: u64) -> bool {
        self.changes.contains_key(&id)
    }

    /// The change's task ids.
    pub fn change_tasks(&self, id: u64) -> Vec<u64> {
        self.changes
            .get(&id)
            .map(|c| c.tasks.clone())
            .unwrap_or_default()
    }

    /// A change as the API shows it.
    pub fn change_info(&self, id: u64) -> Option<ChangeInfo> {
        let c = self.changes.get(&id)?;
        let status = self.change_status(id);
        let tasks = c
            .tasks
            .iter()
            .filter_map(|t| self.tasks.get(t))
            .map(|t| TaskInfo {
                id: t.id.to_string(),
                kind: t.kind.clone(),
                summary: t.summary.clone(),
                status: t.status,
                log: t.log.clone(),
                // As Pebble's tasks without progress of their own: 0 of 1 until it runs.
                done: u32::from(t.status != ChangeStatus::Do),
                total: 1,
                spawn_time: t.spawn_time,
                ready_time: t.ready_time,
                data: t.data.clone(),
            })
            .collect();
        Some(ChangeInfo {
            id: c.id.to_string(),
            kind: c.kind.clone(),
            summary: c.summary.clone(),
            status,
            tasks,
            ready: status.is_ready(),
            err: self.change_err(id),
            spawn_time: c.spawn_time,
            ready_time: c.ready_time,
            data: c.data.clone(),
        })
    }

    /// Changes matching `select`, optionally only those naming `service` in `service-names`.
    pub fn changes(&self, select: ChangeSelect, service: Option<&str>) -> Vec<ChangeInfo> {
        self.changes
            .keys()
            .filter(|id| {
                let ready = self.change_status(**id).is_ready();
                match select {
                    ChangeSelect::All => true,
                    ChangeSelect::Ready => ready,
                    ChangeSelect::InProgress => !ready,
                }
            })
            .filter(|id| match service {
                None => true,
                Some(svc) => self.changes[id]
                    .data
                    .get("service-names")
                    .and_then(|v| v.as_array())
                    .is_some_and(|names| names.iter().any(|n| n.as_str() == Some(svc))),
            })
            .filter_map(|id| self.change_info(*id))
            .collect()
    }

    /// After a restart: tasks that were running or waiting cannot resume, so they end.
    pub fn interrupt_unfinished(&mut self) {
        let ids: Vec<u64> = self
            .tasks
            .values()
            .filter(|t| !t.status.is_ready())
            .map(|t| t.id)
            .collect();
        for id in ids {
            let was_running = self.tasks[&id].status == ChangeStatus::Doing;
            let kind = self.tasks[&id].kind.as_str();
            if kind == "perform-check" || kind == "recover-check" {
                // As Pebble aborts check changes it cannot resume: the new supervisor starts
                // its checks anew.
                self.set_task_status(id, ChangeStatus::Undone);
            } else if was_running {
                self.task_error(id, "task interrupted: daemon restarted");
                self.set_task_status(id, ChangeStatus::Error);
            } else {
                self.set_task_status(id, ChangeStatus::Hold);
            }
        }
    }

    fn prune(&mut self) {
        self.prune_at(OffsetDateTime::now_utc());
    }

    /// Pebble's pruning of ready changes: those ready for longer than [`PRUNE_WAIT`] go, and
    /// beyond [`MAX_READY_CHANGES`] the oldest go first. Changes not ready stay.
    fn prune_at(&mut self, now: OffsetDateTime) {
        let mut ready: Vec<(OffsetDateTime, u64)> = self
            .changes
            .values()
            .filter(|c| self.change_status(c.id).is_ready())
            .map(|c| (c.ready_time.unwrap_or(c.spawn_time), c.id))
            .collect();
        ready.sort();
        let mut count = ready.len();
        for (ready_time, id) in ready {
            if ready_time >= now - PRUNE_WAIT && count <= MAX_READY_CHANGES {
                break;
            }
            if let Some(c) = self.changes.remove(&id) {
                for t in c.tasks {
                    self.tasks.remove(&t);
                }
            }
            self.noticed.remove(&id);
            count -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(tasks: usize) -> (ChangeBook, u64, Vec<u64>) {
        let mut b = ChangeBook::default();
        let specs: Vec<_> = (0..tasks)
            .map(|i| ("start".to_string(), format!("Start service \"s{i}\"")))
            .collect();
        let (id, tids) = b.new_change("start", "Start service \"s0\"", &specs);
        (b, id, tids)
    }

    #[test]
    fn status_derives_with_pebble_priority() {
        let (mut b, id, t) = book_with(3);
        assert_eq!(b.change_status(id), ChangeStatus::Do);
        b.set_task_status(t[0], ChangeStatus::Doing);
        assert_eq!(b.change_status(id), ChangeStatus::Doing);
        b.set_task_status(t[0], ChangeStatus::Error);
        assert_eq!(b.change_status(id), ChangeStatus::Do);
        b.set_task_status(t[1], ChangeStatus::Done);
        b.set_task_status(t[2], ChangeStatus::Hold);
        assert_eq!(b.change_status(id), ChangeStatus::Error);
        assert!(b.change_info(id).unwrap().ready);
    }

    #[test]
    fn change_err_lists_failed_tasks() {
        let (mut b, id, t) = book_with(2);
        b.task_log(t[0], "Most recent service output:\n    boom");
        b.task_error(
            t[0],
            "service start attempt: exited quickly with code 1, will restart",
        );
        b.set_task_status(t[0], ChangeStatus::Error);
        b.set_task_status(t[1], ChangeStatus::Hold);
        assert_eq!(
            b.change_err(id).unwrap(),
            "cannot perform the following tasks:\n- Start service \"s0\" (service start attempt: exited quickly with code 1, will restart)"
        );
    }

    #[test]
    fn empty_change_is_done() {
        let mut b = ChangeBook::default();
        let (id, _) = b.new_change("replan", "Replan - no services", &[]);
        let info = b.change_info(id).unwrap();
        assert_eq!(info.status, ChangeStatus::Done);
        assert!(info.ready);
    }

    #[test]
    fn task_log_keeps_last_ten() {
        let (mut b, _, t) = book_with(1);
        for i in 0..15 {
            b.task_log(t[0], &format!("m{i}"));
        }
        let log = &b.tasks[&t[0]].log;
        assert_eq!(log.len(), 10);
        assert!(log[0].ends_with(" INFO m5"));
    }

    #[test]
    fn status_transitions_record_change_update_notices() {
        let (mut b, id, t) = book_with(1);
        b.set_task_status(t[0], ChangeStatus::Doing);
        b.set_task_status(t[0], ChangeStatus::Done);
        let seen: Vec<String> = b
            .take_notices()
            .into_iter()
            .map(|(cid, data)| {
                assert_eq!(cid, id);
                assert_eq!(data["kind"], "start");
                b.change_status(cid).as_str().to_string()
            })
            .collect();
        // Do (new), Doing, Done: three notices.
        assert_eq!(seen.len(), 3);
        assert!(b.take_notices().is_empty());
    }

    fn task() -> [(String, String); 1] {
        [("start".to_string(), "Start service \"s\"".to_string())]
    }

    #[test]
    fn pruning_drops_old_and_excess_ready_changes_only() {
        let mut b = ChangeBook::default();
        let (old, old_tasks) = b.new_change("start", "old", &task());
        b.set_task_status(old_tasks[0], ChangeStatus::Done);
        let (pending, _) = b.new_change("start", "pending", &task());
        let (fresh, fresh_tasks) = b.new_change("start", "fresh", &task());
        b.set_task_status(fresh_tasks[0], ChangeStatus::Done);
        let eight_days = OffsetDateTime::now_utc() + time::Duration::days(8);
        b.changes.get_mut(&fresh).unwrap().ready_time = Some(eight_days - time::Duration::hours(1));
        b.prune_at(eight_days);
        assert!(!b.contains(old), "a change ready for 8 days stays");
        assert!(!b.tasks.contains_key(&old_tasks[0]));
        assert!(b.contains(pending), "a change not ready was pruned");
        assert!(b.contains(fresh), "a recent change was pruned");

        // Beyond the limit, the oldest ready changes go first.
        for i in 0..MAX_READY_CHANGES + 5 {
            let (_, t) = b.new_change("start", &format!("c{i}"), &task());
            b.set_task_status(t[0], ChangeStatus::Done);
        }
        b.prune();
        let ready = b.changes(ChangeSelect::Ready, None);
        assert_eq!(ready.len(), MAX_READY_CHANGES);
        assert!(b.contains(pending));
        let summaries: Vec<&str> = ready.iter().map(|c| c.summary.as_str()).collect();
        // `fresh` (ready "in 8 days") is the newest; c0..c5 were the oldest.
        assert!(summaries.contains(&"fresh"));
        assert!(!summaries.contains(&"c0") && !summaries.contains(&"c5"));
        assert!(summaries.contains(&"c6"));
    }
}
