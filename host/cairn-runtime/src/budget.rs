//! A tenant's budget: what one application may make the host hold and run, set by the
//! operator (defaults from `cairn run --limit`, per-app overrides from `cairn deploy
//! --limit` and `cairn config --limits`, kept in the app record).
//!
//! [`Budget`] is the values, by the keys the operator writes (`log-bytes=1MiB`). Where each
//! is enforced:
//! - `memory`, `deadline`: the event's store and epoch deadline (bounded by the engine's
//!   own maxima, `cairn run --memory-limit-mib` and `--event-deadline`); `pull` refuses a
//!   file bigger than `memory` before reading it.
//! - `log-bytes`, `status-bytes`, `state-bytes`, `relation-bytes`: per event, by
//!   [`EventSpend`], which the bindings call (log excess dropped with one marker line; an
//!   action's results over `log-bytes` refused; status messages cut; stored state over
//!   budget fails the event; relation data written past `relation-bytes` is refused and
//!   fails the event).
//! - `layer-bytes`, `layers`, `services`, `checks`, `check-period`, `log-targets`, `execs`: by each
//!   container's supervisor ([`cairn_supervisor::ContainerLimits`]), so the Pebble API a
//!   workload can reach is bound too.
//! - `queue`, `deferred`: by the unit's actor.
//! - `workload-memory`, `workload-cpu`, `workload-pids`: carried to the containers
//!   ([`WorkloadLimits`]) for their cgroups.
//! - `host-cpu`: the app's [`cairn_supervisor::CpuShare`], which its containers' Pebble API
//!   requests and process starts are charged to (work over it waits).
//!
//! Every hit is counted in the application's [`LimitHits`] under the key's name.
//! Text a tenant controls (status messages, log lines, handler errors) is made single-line
//! and shown with control characters escaped ([`escape_control`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_supervisor::{ContainerLimits, LimitHits};
use serde::{Deserialize, Serialize};

use crate::types::WorkloadStatus;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;

/// The limits of a workload's processes, applied through its container's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadLimits {
    /// `memory.max` in bytes (`None`: unlimited).
    pub memory: Option<u64>,
    /// CPU quota in thousandths of a CPU (`cpu.max` = quota/period; `None`: unlimited).
    pub cpu_millis: Option<u64>,
    /// `pids.max` (`None`: unlimited).
    pub pids: Option<u64>,
}

/// What one application may use; see the module's documentation for where each is enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Wasm linear memory of one event, in bytes (`memory`).
    pub memory: u64,
    /// Wall-clock deadline of one event (`deadline`).
    pub deadline: Duration,
    /// Bytes of log (log calls and guest output) kept per event (`log-bytes`).
    pub log_bytes: u64,
    /// Bytes of a status message (`status-bytes`); also caps a handler's error text.
    pub status_bytes: u64,
    /// Bytes of stored state, keys and values together (`state-bytes`).
    pub state_bytes: u64,
    /// Bytes of relation data (keys and values set) one event may write (`relation-bytes`).
    pub relation_bytes: u64,
    /// Bytes of a container's API-added layers together (`layer-bytes`).
    pub layer_bytes: u64,
    /// Layers per container (`layers`).
    pub layers: u64,
    /// Services per container (`services`).
    pub services: u64,
    /// Checks per container (`checks`).
    pub checks: u64,
    /// Shortest check period (`check-period`).
    pub check_period: Duration,
    /// Log forwarding targets per container (`log-targets`): each is a task and a
    /// connection the host keeps on the tenant's behalf.
    pub log_targets: u64,
    /// Execs running at once per container (`execs`).
    pub execs: u64,
    /// Events waiting in a unit's queue (`queue`).
    pub queue: u64,
    /// Deferred events a unit keeps (`deferred`).
    pub deferred: u64,
    /// Workload memory, CPU and pids (`workload-memory`, `workload-cpu`, `workload-pids`).
    pub workload: WorkloadLimits,
    /// The host's CPU spent on the app's behalf, in thousandths of a CPU (`host-cpu`;
    /// `None`: unbounded).
    pub host_cpu: Option<u64>,
}

impl Default for Budget {
    /// The defaults: room for every example charm, far from what hurt a co-tenant.
    fn default() -> Self {
        Budget {
            memory: 64 * MIB,
            deadline: Duration::from_secs(60),
            log_bytes: MIB,
            status_bytes: KIB,
            state_bytes: MIB,
            relation_bytes: MIB,
            layer_bytes: MIB,
            layers: 100,
            services: 100,
            checks: 20,
            check_period: Duration::from_millis(100),
            log_targets: 4,
            execs: 16,
            queue: 256,
            deferred: 32,
            workload: WorkloadLimits::default(),
            host_cpu: Some(100),
        }
    }
}

/// How a key's value is written.
#[derive(Clone, Copy)]
enum Kind {
    Bytes,
    Count,
    Duration,
    /// Bytes, or `unlimited`.
    OptBytes,
    /// A count, or `unlimited`.
    OptCount,
    /// CPUs (`0.5`, `500m`), or `unlimited`.
    OptCpu,
}

/// Every key, its kind and what it limits (the help text and `cairn limits` list them).
pub const KEYS: &[(&str, &str)] = &[
    (
        "memory",
        "wasm memory of one event (bytes; at most the host's maximum)",
    ),
    (
        "deadline",
        "deadline of one event (duration; at most the host's maximum)",
    ),
    ("log-bytes", "log bytes kept per event (bytes)"),
    ("status-bytes", "longest status message (bytes)"),
    ("state-bytes", "stored state, keys and values (bytes)"),
    (
        "relation-bytes",
        "relation data written per event, keys and values (bytes)",
    ),
    ("layer-bytes", "a container's added layers together (bytes)"),
    ("layers", "layers per container"),
    ("services", "services per container"),
    ("checks", "checks per container"),
    ("check-period", "shortest check period (duration)"),
    ("log-targets", "log forwarding targets per container"),
    ("execs", "concurrent execs per container"),
    ("queue", "events waiting per unit"),
    ("deferred", "deferred events kept per unit"),
    (
        "workload-memory",
        "memory of a container's processes (bytes or unlimited)",
    ),
    (
        "workload-cpu",
        "CPUs of a container's processes (0.5, 500m or unlimited)",
    ),
    (
        "workload-pids",
        "processes of a container (count or unlimited)",
    ),
    (
        "host-cpu",
        "the host's CPU for the app's Pebble API requests and process starts (0.5, 500m or unlimited)",
    ),
];

fn kind(key: &str) -> Option<Kind> {
    Some(match key {
        "memory" | "log-bytes" | "status-bytes" | "state-bytes" | "relation-bytes"
        | "layer-bytes" => Kind::Bytes,
        "layers" | "services" | "checks" | "log-targets" | "execs" | "queue" | "deferred" => {
            Kind::Count
        }
        "deadline" | "check-period" => Kind::Duration,
        "workload-memory" => Kind::OptBytes,
        "workload-pids" => Kind::OptCount,
        "workload-cpu" | "host-cpu" => Kind::OptCpu,
        _ => return None,
    })
}

/// A parsed value of a key.
enum Value {
    Num(Option<u64>),
    Dur(Duration),
}

/// Parses `1048576`, `512KiB`, `1MiB`, `2GiB` (`K`, `M`, `G` are binary units too).
fn parse_bytes(v: &str) -> Option<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "K" | "k" | "KiB" | "KB" => KIB,
        "M" | "MiB" | "MB" => MIB,
        "G" | "GiB" | "GB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Bytes as the operator would write them back.
fn format_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", MIB), ("KiB", KIB)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    n.to_string()
}

fn parse_value(key: &str, v: &str) -> Result<Value, String> {
    let bad = |what: &str| format!("invalid value {v:?} for limit {key:?}: expected {what}");
    let unlimited = v == "unlimited";
    Ok(match kind(key).ok_or_else(|| unknown(key))? {
        Kind::Bytes => Value::Num(Some(
            parse_bytes(v).ok_or_else(|| bad("bytes such as 1048576, 512KiB or 1MiB"))?,
        )),
        Kind::Count => Value::Num(Some(v.parse().map_err(|_| bad("a whole number"))?)),
        Kind::Duration => Value::Dur(
            cairn_plan::parse_duration(v).map_err(|_| bad("a duration such as 500ms or 30s"))?,
        ),
        Kind::OptBytes if unlimited => Value::Num(None),
        Kind::OptBytes => Value::Num(Some(
            parse_bytes(v).ok_or_else(|| bad("bytes such as 512MiB, or unlimited"))?,
        )),
        Kind::OptCount if unlimited => Value::Num(None),
        Kind::OptCount => Value::Num(Some(
            v.parse().map_err(|_| bad("a whole number, or unlimited"))?,
        )),
        Kind::OptCpu if unlimited => Value::Num(None),
        Kind::OptCpu => {
            let millis = match v.strip_suffix('m') {
                Some(m) => m.parse::<u64>().ok(),
                None => v
                    .parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite() && *c >= 0.0 && *c < 1e6)
                    .map(|c| (c * 1000.0).round() as u64),
            };
            Value::Num(Some(
                millis
                    .filter(|m| *m > 0)
                    .ok_or_else(|| bad("CPUs such as 0.5 or 500m, or unlimited"))?,
            ))
        }
    })
}

fn unknown(key: &str) -> String {
    let keys: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
    format!("unknown limit {key:?} (limits: {})", keys.join(", "))
}

impl Budget {
    /// Sets one key from the operator's text.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let v = parse_value(key, value)?;
        let num = |v: &Value| match v {
            Value::Num(n) => *n,
            Value::Dur(_) => None,
        };
        match (key, &v) {
            ("deadline", Value::Dur(d)) | ("check-period", Value::Dur(d)) => {
                if key == "deadline" && d.is_zero() {
                    return Err(format!(
                        "invalid value {value:?} for limit \"deadline\": it must not be zero"
                    ));
                }
                if key == "deadline" {
                    self.deadline = *d
                } else {
                    self.check_period = *d
                }
            }
            ("workload-memory", _) => self.workload.memory = num(&v),
            ("workload-cpu", _) => self.workload.cpu_millis = num(&v),
            ("workload-pids", _) => self.workload.pids = num(&v),
            ("host-cpu", _) => self.host_cpu = num(&v),
            (_, Value::Num(Some(n))) => {
                let n = *n;
                match key {
                    "memory" => self.memory = n,
                    "log-bytes" => self.log_bytes = n,
                    "status-bytes" => self.status_bytes = n,
                    "state-bytes" => self.state_bytes = n,
                    "relation-bytes" => self.relation_bytes = n,
                    "layer-bytes" => self.layer_bytes = n,
                    "layers" => self.layers = n,
                    "services" => self.services = n,
                    "checks" => self.checks = n,
                    "log-targets" => self.log_targets = n,
                    "execs" => self.execs = n,
                    "queue" => self.queue = n,
                    "deferred" => self.deferred = n,
                    _ => return Err(unknown(key)),
                }
            }
            _ => return Err(unknown(key)),
        }
        Ok(())
    }

    /// The budget with `overrides` (`key` → text) applied on top.
    pub fn with_overrides(&self, overrides: &BTreeMap<String, String>) -> Result<Budget, String> {
        let mut b = self.clone();
        for (k, v) in overrides {
            b.set(k, v)?;
        }
        Ok(b)
    }

    /// Refuses values over the engine's maxima (the host's `--memory-limit-mib` and
    /// `--event-deadline`).
    pub fn check_maxima(&self, memory: u64, deadline: Duration) -> Result<(), String> {
        if self.memory > memory {
            return Err(format!(
                "limit memory={} is over the host's maximum of {}",
                format_bytes(self.memory),
                format_bytes(memory)
            ));
        }
        if self.deadline > deadline {
            return Err(format!(
                "limit deadline={} is over the host's maximum of {}",
                cairn_plan::format_duration(self.deadline),
                cairn_plan::format_duration(deadline)
            ));
        }
        Ok(())
    }

    /// Every key with its value as the operator would write it.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let opt = |n: Option<u64>, f: fn(u64) -> String| n.map_or("unlimited".into(), f);
        KEYS.iter()
            .map(|(k, _)| {
                let v = match *k {
                    "memory" => format_bytes(self.memory),
                    "deadline" => cairn_plan::format_duration(self.deadline),
                    "log-bytes" => format_bytes(self.log_bytes),
                    "status-bytes" => format_bytes(self.status_bytes),
                    "state-bytes" => format_bytes(self.state_bytes),
                    "relation-bytes" => format_bytes(self.relation_bytes),
                    "layer-bytes" => format_bytes(self.layer_bytes),
                    "layers" => self.layers.to_string(),
                    "services" => self.services.to_string(),
                    "checks" => self.checks.to_string(),
                    "check-period" => cairn_plan::format_duration(self.check_period),
                    "log-targets" => self.log_targets.to_string(),
                    "execs" => self.execs.to_string(),
                    "queue" => self.queue.to_string(),
                    "deferred" => self.deferred.to_string(),
                    "workload-memory" => opt(self.workload.memory, format_bytes),
                    "workload-cpu" => opt(self.workload.cpu_millis, |m| format!("{m}m")),
                    "workload-pids" => opt(self.workload.pids, |n| n.to_string()),
                    "host-cpu" => opt(self.host_cpu, |m| format!("{m}m")),
                    _ => unreachable!("every key is listed"),
                };
                (k.to_string(), v)
            })
            .collect()
    }

    /// What each container's supervisor enforces.
    pub fn container_limits(&self) -> ContainerLimits {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        ContainerLimits {
            layer_bytes: self.layer_bytes,
            layers: n(self.layers),
            services: n(self.services),
            checks: n(self.checks),
            check_period_min: self.check_period,
            log_targets: n(self.log_targets),
            execs: n(self.execs),
        }
    }
}

/// Checks the operator's `key=value` overrides and returns them normalised (a value of
/// `default` removes the key's override).
pub fn normalize_overrides(
    current: &BTreeMap<String, String>,
    settings: &[(String, String)],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = current.clone();
    for (k, v) in settings {
        if v == "default" {
            kind(k).ok_or_else(|| unknown(k))?;
            out.remove(k);
            continue;
        }
        let mut probe = Budget::default();
        probe.set(k, v)?;
        out.insert(k.clone(), probe.to_map()[k].clone());
    }
    Ok(out)
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Budget {
    /// Keys missing take the defaults.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, String>::deserialize(d)?;
        Budget::default()
            .with_overrides(&map)
            .map_err(serde::de::Error::custom)
    }
}

/// Whether a terminal would act on `c`: C0 and C1 control characters, DEL and the
/// bidirectional formatting characters.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Appends `c` to `out` as [`escape_control`] shows it.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            use std::fmt::Write;
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Escapes what a terminal would act on: C0 and C1 control characters, DEL and the
/// bidirectional formatting characters, as `\n`, `\t`, `\r` or `\u{..}`; everything else
/// (backslashes included) stays as it is. The result is one line.
pub fn escape_control(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// The longest start of `s` whose escaped form ([`escape_control`]) takes at most `room`
/// bytes: its length in `s`, and that escaped form. Looks at no more of `s` than it
/// needs, so a huge text costs no more than `room` to cut.
fn escaped_start(s: &str, room: usize) -> (usize, Cow<'_, str>) {
    if s.len() <= room {
        let whole = escape_control(s);
        if whole.len() <= room {
            return (s.len(), whole);
        }
    }
    let mut out = String::new();
    for (i, c) in s.char_indices() {
        let before = out.len();
        push_escaped(&mut out, c);
        if out.len() > room {
            out.truncate(before);
            return (i, Cow::Owned(out));
        }
    }
    (s.len(), Cow::Owned(out))
}

/// `s` escaped and cut to at most `max` bytes (between characters, never inside an
/// escape, `…` marking the cut); whether it was cut.
pub fn cap_line(s: &str, max: u64) -> (String, bool) {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    let (end, escaped) = escaped_start(s, max);
    if end == s.len() {
        return (escaped.into_owned(), false);
    }
    let (_, kept) = escaped_start(s, max.saturating_sub('…'.len_utf8()));
    (format!("{kept}…"), true)
}

/// What a log line costs against `log-bytes` besides its escaped text and the unit's
/// name: its time (RFC 3339 to the nanosecond), level, separators and newline in
/// `unit.log`, at most this many bytes. So a flood of empty or escape-heavy lines is
/// bound as surely as one long line, and `unit.log` grows by at most `log-bytes` (and the
/// marker line) per event.
pub(crate) const LOG_LINE_OVERHEAD: u64 = 40;

/// What one event has spent of its budget; the bindings ask it before keeping what the
/// guest hands over.
pub(crate) struct EventSpend {
    budget: Budget,
    hits: Arc<LimitHits>,
    /// Log bytes kept so far.
    log_used: u64,
    /// Log bytes dropped so far (over `log-bytes`).
    log_dropped: u64,
    /// Bytes of stored state (keys and values) as the guest left it.
    state_total: u64,
    /// Bytes of relation data (keys and values) the event has written.
    relation_written: u64,
    /// Why the event must fail though its handler succeeded (stored state or relation data
    /// over budget).
    failure: Option<String>,
}

/// Bytes stored state takes against `state-bytes`: keys and values.
pub(crate) fn state_size(stored: &BTreeMap<String, Vec<u8>>) -> u64 {
    stored.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

impl EventSpend {
    /// An event's spend, starting from the stored state it is lent.
    pub(crate) fn new(
        budget: Budget,
        hits: Arc<LimitHits>,
        stored: &BTreeMap<String, Vec<u8>>,
    ) -> Self {
        EventSpend {
            budget,
            hits,
            log_used: 0,
            log_dropped: 0,
            state_total: state_size(stored),
            relation_written: 0,
            failure: None,
        }
    }

    /// The budget the event runs under.
    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Counts a hit of `limit`.
    pub(crate) fn hit(&self, limit: &str) {
        self.hits.hit(limit);
    }

    /// One log message as it is kept (escaped, one line, prefixed with `prefix`), or `None`
    /// when the event's `log-bytes` are spent. A line costs what it takes in `unit.log`:
    /// its escaped text, `prefix` and [`LOG_LINE_OVERHEAD`]; what does not fit is dropped
    /// (counted the same way, without escaping, for the marker).
    pub(crate) fn log(&mut self, prefix: &str, message: &str) -> Option<String> {
        let left = self.budget.log_bytes.saturating_sub(self.log_used);
        let fixed = LOG_LINE_OVERHEAD + prefix.len() as u64;
        // Once the budget is spent, a message is dropped without being looked at.
        let (end, text) = match left.checked_sub(fixed) {
            Some(room) => escaped_start(message, usize::try_from(room).unwrap_or(usize::MAX)),
            None => (0, Cow::Borrowed("")),
        };
        if left >= fixed && end == message.len() {
            self.log_used += fixed + text.len() as u64;
            return Some(format!("{prefix}{text}"));
        }
        if self.log_dropped == 0 {
            self.hit("log-bytes");
        }
        // The part that fits is kept, the rest dropped.
        self.log_dropped += (message.len() - end) as u64;
        if end == 0 {
            self.log_dropped += fixed;
            return None;
        }
        self.log_used += fixed + text.len() as u64;
        Some(format!("{prefix}{text}"))
    }

    /// The one line saying how much log the event dropped, if it dropped any.
    pub(crate) fn log_marker(&self, prefix: &str) -> Option<String> {
        (self.log_dropped > 0).then(|| {
            format!(
                "{prefix}{} of log dropped: over the budget of {} per event (log-bytes)",
                cairn_supervisor::format_bytes(self.log_dropped),
                cairn_supervisor::format_bytes(self.budget.log_bytes)
            )
        })
    }

    /// A status as kept: its message one line, escaped and at most `status-bytes`.
    pub(crate) fn status(&self, status: WorkloadStatus) -> WorkloadStatus {
        let cap = |m: String| {
            let (line, cut) = cap_line(&m, self.budget.status_bytes);
            if cut {
                self.hit("status-bytes");
            }
            line
        };
        match status {
            WorkloadStatus::Unknown => WorkloadStatus::Unknown,
            WorkloadStatus::Active(m) => WorkloadStatus::Active(cap(m)),
            WorkloadStatus::Blocked(m) => WorkloadStatus::Blocked(cap(m)),
            WorkloadStatus::Maintenance(m) => WorkloadStatus::Maintenance(cap(m)),
            WorkloadStatus::Waiting(m) => WorkloadStatus::Waiting(cap(m)),
            WorkloadStatus::Error(m) => WorkloadStatus::Error(cap(m)),
        }
    }

    /// A handler's error text as kept (one line, at most `status-bytes`).
    pub(crate) fn message(&self, text: &str) -> String {
        cap_line(text, self.budget.status_bytes).0
    }

    /// Sets `key` in `stored` unless that takes stored state over `state-bytes`; then the
    /// value is not kept and the event is marked to fail.
    pub(crate) fn state_set(
        &mut self,
        stored: &mut BTreeMap<String, Vec<u8>>,
        key: String,
        value: Vec<u8>,
    ) {
        let old = stored.get(&key).map_or(0, |v| (key.len() + v.len()) as u64);
        let total = self.state_total - old + (key.len() + value.len()) as u64;
        if total > self.budget.state_bytes {
            if self.failure.is_none() {
                self.hit("state-bytes");
                self.failure = Some(format!(
                    "cannot set stored state {:?}: it would take {}, over the budget of {} (state-bytes)",
                    cap_line(&key, 64).0,
                    cairn_supervisor::format_bytes(total),
                    cairn_supervisor::format_bytes(self.budget.state_bytes)
                ));
            }
            return;
        }
        self.state_total = total;
        stored.insert(key, value);
    }

    /// Merges `results` into an action run's `kept` results, unless that takes them (keys
    /// and values) over `log-bytes`: then nothing is merged and the guest gets the error.
    /// Like its log, an action's results are text for the operator, kept in its record.
    pub(crate) fn action_results(
        &self,
        kept: &mut BTreeMap<String, String>,
        results: Vec<(String, String)>,
    ) -> Result<(), String> {
        let size = |k: &str, v: &str| (k.len() + v.len()) as u64;
        let mut total: u64 = kept.iter().map(|(k, v)| size(k, v)).sum();
        for (k, v) in &results {
            total -= kept.get(k).map_or(0, |old| size(k, old));
            total += size(k, v);
        }
        if total > self.budget.log_bytes {
            self.hit("log-bytes");
            return Err(format!(
                "cannot set action results: they would take {}, over the budget of {} per event (log-bytes)",
                cairn_supervisor::format_bytes(total),
                cairn_supervisor::format_bytes(self.budget.log_bytes)
            ));
        }
        kept.extend(results);
        Ok(())
    }

    /// Counts `settings` (keys and values) against the event's `relation-bytes`: over it,
    /// nothing is written, the guest gets the error and the event is marked to fail.
    pub(crate) fn relation_write(&mut self, settings: &[(String, String)]) -> Result<(), String> {
        let size: u64 = settings
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        let total = self.relation_written + size;
        if total > self.budget.relation_bytes {
            let text = format!(
                "cannot write relation settings: they would take {} in this event, over the budget of {} (relation-bytes)",
                cairn_supervisor::format_bytes(total),
                cairn_supervisor::format_bytes(self.budget.relation_bytes)
            );
            if self.failure.is_none() {
                self.hit("relation-bytes");
                self.failure = Some(text.clone());
            }
            return Err(text);
        }
        self.relation_written = total;
        Ok(())
    }

    /// Removes `key` from `stored`.
    pub(crate) fn state_delete(&mut self, stored: &mut BTreeMap<String, Vec<u8>>, key: &str) {
        if let Some(v) = stored.remove(key) {
            self.state_total -= (key.len() + v.len()) as u64;
        }
    }

    /// Why the event fails whatever its handler returned (over its stored-state budget).
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// The largest file `pull` may read (the guest's memory could not hold more): refused
    /// with a clear error, counted under `memory`.
    pub(crate) fn check_pull(&self, path: &str, size: u64) -> Result<(), String> {
        if size > self.budget.memory {
            self.hit("memory");
            return Err(format!(
                "cannot pull {path}: file is {}, over the charm's memory budget of {}",
                cairn_supervisor::format_bytes(size),
                cairn_supervisor::format_bytes(self.budget.memory)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(budget: Budget) -> (EventSpend, Arc<LimitHits>) {
        let hits = Arc::new(LimitHits::default());
        (
            EventSpend::new(budget, hits.clone(), &BTreeMap::new()),
            hits,
        )
    }

    #[test]
    fn keys_parse_and_print_as_the_operator_writes_them() {
        let mut b = Budget::default();
        for (k, v) in [
            ("memory", "32MiB"),
            ("deadline", "10s"),
            ("log-bytes", "512KiB"),
            ("status-bytes", "200"),
            ("state-bytes", "2M"),
            ("layer-bytes", "1GiB"),
            ("layers", "5"),
            ("services", "6"),
            ("checks", "7"),
            ("check-period", "1s"),
            ("execs", "8"),
            ("queue", "9"),
            ("deferred", "10"),
            ("workload-memory", "256MiB"),
            ("workload-cpu", "0.5"),
            ("workload-pids", "100"),
            ("host-cpu", "0.25"),
        ] {
            b.set(k, v).unwrap();
        }
        let m = b.to_map();
        assert_eq!(m.len(), KEYS.len());
        assert_eq!(m["memory"], "32MiB");
        assert_eq!(m["state-bytes"], "2MiB");
        assert_eq!(m["status-bytes"], "200");
        assert_eq!(m["workload-cpu"], "500m");
        assert_eq!(m["host-cpu"], "250m");
        assert_eq!(m["check-period"], "1s");
        // The printed form reads back to the same budget (as the app record keeps it).
        assert_eq!(Budget::default().with_overrides(&m).unwrap(), b);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(serde_json::from_str::<Budget>(&json).unwrap(), b);
        b.set("workload-memory", "unlimited").unwrap();
        assert_eq!(b.workload.memory, None);
        b.set("host-cpu", "unlimited").unwrap();
        assert_eq!(b.host_cpu, None);
    }

    #[test]
    fn bad_keys_and_values_are_refused_with_what_is_expected() {
        let mut b = Budget::default();
        let e = b.set("logs", "1").unwrap_err();
        assert!(
            e.starts_with("unknown limit \"logs\" (limits: memory, deadline, "),
            "{e}"
        );
        assert_eq!(
            b.set("log-bytes", "lots").unwrap_err(),
            "invalid value \"lots\" for limit \"log-bytes\": expected bytes such as 1048576, 512KiB or 1MiB"
        );
        assert!(b.set("execs", "-1").is_err());
        assert!(b.set("execs", "unlimited").is_err());
        assert!(b.set("deadline", "0s").is_err());
        assert!(b.set("workload-cpu", "0").is_err());
        assert!(b.set("layer-bytes", "99999999999G").is_err());
        assert_eq!(b, Budget::default());
    }

    #[test]
    fn overrides_are_normalised_and_default_removes_one() {
        let cur = BTreeMap::from([("queue".to_string(), "5".to_string())]);
        let out = normalize_overrides(
            &cur,
            &[
                ("log-bytes".into(), "1048576".into()),
                ("queue".into(), "default".into()),
            ],
        )
        .unwrap();
        assert_eq!(out, BTreeMap::from([("log-bytes".into(), "1MiB".into())]));
        assert!(normalize_overrides(&cur, &[("nope".into(), "default".into())]).is_err());
    }

    #[test]
    fn maxima_bound_memory_and_deadline() {
        let mut b = Budget::default();
        b.check_maxima(64 * MIB, Duration::from_secs(60)).unwrap();
        b.set("memory", "128MiB").unwrap();
        assert_eq!(
            b.check_maxima(64 * MIB, Duration::from_secs(60))
                .unwrap_err(),
            "limit memory=128MiB is over the host's maximum of 64MiB"
        );
        b.set("memory", "1MiB").unwrap();
        b.set("deadline", "2m").unwrap();
        assert_eq!(
            b.check_maxima(64 * MIB, Duration::from_secs(60))
                .unwrap_err(),
            "limit deadline=2m0s is over the host's maximum of 1m0s"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert!(matches!(
            escape_control("plain \\ text é"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_control("a\nb\r\tc\x1b]0;title\x07\u{9b}\u{202e}"),
            "a\\nb\\r\\tc\\u{1b}]0;title\\u{7}\\u{9b}\\u{202e}"
        );
        assert_eq!(cap_line("ééé", 5), ("é…".to_string(), true));
        assert_eq!(cap_line("abc", 3), ("abc".to_string(), false));
    }

    #[test]
    fn log_over_budget_keeps_the_start_and_one_marker() {
        // Each line costs its escaped text, the prefix and the overhead (3 + 40 here).
        let (mut s, hits) = spend(Budget {
            log_bytes: 48 + 43 + 6,
            ..Budget::default()
        });
        assert_eq!(s.log("u: ", "12345").as_deref(), Some("u: 12345"));
        assert_eq!(s.log("u: ", "6789\nabc").as_deref(), Some("u: 6789\\n"));
        assert_eq!(s.log("u: ", "more"), None);
        assert_eq!(
            s.log_marker("u: ").as_deref(),
            Some("u: 50 B of log dropped: over the budget of 97 B per event (log-bytes)")
        );
        assert_eq!(hits.snapshot()["log-bytes"], 1);
    }

    #[test]
    fn action_results_over_the_log_budget_are_refused_and_not_kept() {
        let (s, hits) = spend(Budget {
            log_bytes: 10,
            ..Budget::default()
        });
        let mut kept = BTreeMap::new();
        let pair = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        s.action_results(&mut kept, pair("a", "1234")).unwrap();
        // Replacing a value counts only the new one.
        s.action_results(&mut kept, pair("a", "12345678")).unwrap();
        assert_eq!(
            s.action_results(&mut kept, pair("b", "12")).unwrap_err(),
            "cannot set action results: they would take 12 B, over the budget of 10 B per event (log-bytes)"
        );
        assert_eq!(kept, BTreeMap::from([("a".into(), "12345678".into())]));
        assert_eq!(hits.snapshot()["log-bytes"], 1);
    }

    #[test]
    fn empty_log_lines_are_bound_by_the_budget_as_long_ones() {
        let (mut s, hits) = spend(Budget {
            log_bytes: 1000,
            ..Budget::default()
        });
        let kept = (0..100_000).filter_map(|_| s.log("u: ", "")).count();
        assert_eq!(kept, 1000 / 43);
        assert_eq!(hits.snapshot()["log-bytes"], 1);
        let dropped = (100_000 - kept as u64) * 43;
        assert_eq!(
            s.log_marker("u: "),
            Some(format!(
                "u: {} of log dropped: over the budget of 1000 B per event (log-bytes)",
                cairn_supervisor::format_bytes(dropped)
            ))
        );
    }

    #[test]
    fn log_lines_count_their_escaped_length_and_are_never_cut_inside_an_escape() {
        let (mut s, _) = spend(Budget {
            log_bytes: 43 + 12,
            ..Budget::default()
        });
        // Each \x01 takes five bytes escaped: two fit in twelve.
        assert_eq!(
            s.log("u: ", "\x01\x01\x01").as_deref(),
            Some("u: \\u{1}\\u{1}")
        );
        assert_eq!(s.log("u: ", ""), None);
        assert_eq!(cap_line("a\x1bb", 6), ("a…".to_string(), true));
        assert_eq!(cap_line("a\x1bb", 8), ("a\\u{1b}b".to_string(), false));
        let (huge, cut) = cap_line(&"\x07".repeat(10 << 20), 1024);
        assert!(
            cut && huge.len() <= 1024 && huge.ends_with("\\u{7}…"),
            "{huge}"
        );
    }

    #[test]
    fn status_messages_are_one_line_and_capped() {
        let (s, hits) = spend(Budget {
            status_bytes: 8,
            ..Budget::default()
        });
        assert_eq!(
            s.status(WorkloadStatus::Active("ok\nerror".into())),
            WorkloadStatus::Active("ok\\ne…".into())
        );
        assert_eq!(
            s.status(WorkloadStatus::Blocked("short".into())),
            WorkloadStatus::Blocked("short".into())
        );
        assert_eq!(hits.snapshot()["status-bytes"], 1);
    }

    #[test]
    fn relation_writes_past_relation_bytes_are_refused_and_fail_the_event() {
        let (mut s, hits) = spend(Budget {
            relation_bytes: 10,
            ..Budget::default()
        });
        let kv = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(s.relation_write(&kv("k", "12345678")), Ok(()));
        assert_eq!(s.failure(), None);
        // Every write of the event counts, a rewrite of the same key included.
        let err = s.relation_write(&kv("k", "12")).unwrap_err();
        assert_eq!(
            err,
            "cannot write relation settings: they would take 12 B in this event, over the budget of 10 B (relation-bytes)"
        );
        assert_eq!(s.failure(), Some(err.as_str()));
        assert_eq!(hits.snapshot()["relation-bytes"], 1);
        let mut b = Budget::default();
        b.set("relation-bytes", "64KiB").unwrap();
        assert_eq!(b.relation_bytes, 64 << 10);
        assert_eq!(b.to_map()["relation-bytes"], "64KiB");
    }

    #[test]
    fn stored_state_over_budget_is_not_kept_and_fails_the_event() {
        let (mut s, hits) = spend(Budget {
            state_bytes: 10,
            ..Budget::default()
        });
        let mut stored = BTreeMap::new();
        s.state_set(&mut stored, "k".into(), vec![0; 9]);
        assert!(s.failure().is_none());
        // Replacing a value counts only the new one.
        s.state_set(&mut stored, "k".into(), vec![1; 9]);
        assert!(s.failure().is_none());
        s.state_set(&mut stored, "j".into(), vec![0; 1]);
        assert_eq!(
            s.failure(),
            Some(
                "cannot set stored state \"j\": it would take 12 B, over the budget of 10 B (state-bytes)"
            )
        );
        assert_eq!(stored.len(), 1);
        s.state_delete(&mut stored, "k");
        s.state_set(&mut stored, "j".into(), vec![0; 5]);
        assert_eq!(stored.len(), 1);
        assert_eq!(hits.snapshot()["state-bytes"], 1);
    }

    #[test]
    fn a_pull_bigger_than_the_memory_budget_is_refused() {
        let (s, hits) = spend(Budget {
            memory: MIB,
            ..Budget::default()
        });
        s.check_pull("/f", MIB).unwrap();
        assert_eq!(
            s.check_pull("/f", 1 << 30).unwrap_err(),
            "cannot pull /f: file is 1 GiB, over the charm's memory budget of 1 MiB"
        );
        assert_eq!(hits.snapshot()["memory"], 1);
    }
}
