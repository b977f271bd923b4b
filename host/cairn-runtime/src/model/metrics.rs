//! Per-tenant counters an operator scrapes: events delivered, failures by cause, budget
//! limits hit, dispatch time and guest memory per application, rendered in the OpenMetrics
//! text format (`cairn metrics`, or `GET /metrics` on `cairn run --metrics-listen`).
//!
//! Counters live in one [`AppMetrics`] per application, shared by its units' actors and
//! updated without a lock on the hot path (atomics; the maps of causes and limits are
//! small and touched only on a failure or a refusal). Workload figures (memory, CPU of the
//! containers' cgroups) are read when the page is rendered, not counted here.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::wasm::Failure;

/// Every application's counters, by application name.
#[derive(Default)]
pub struct Metrics {
    apps: Mutex<BTreeMap<String, Arc<AppMetrics>>>,
}

/// The counters of one application (all its units).
#[derive(Default)]
pub struct AppMetrics {
    events: AtomicU64,
    dispatch_micros: AtomicU64,
    wasm_memory_peak: AtomicU64,
    failures: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// The counters of `app`, created on first use (kept across its redeploys until
    /// [`Metrics::forget`]).
    pub fn app(&self, app: &str) -> Arc<AppMetrics> {
        self.apps
            .lock()
            .unwrap()
            .entry(app.to_owned())
            .or_default()
            .clone()
    }

    /// Drops the counters of a removed application.
    pub fn forget(&self, app: &str) {
        self.apps.lock().unwrap().remove(app);
    }

    /// Every application's counters, in name order.
    pub fn snapshot(&self) -> Vec<(String, Arc<AppMetrics>)> {
        let apps = self.apps.lock().unwrap();
        apps.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

impl AppMetrics {
    /// Counts one delivered event: its wall time, the guest memory it reached and, when it
    /// failed, why.
    pub fn record_event(
        &self,
        duration: std::time::Duration,
        memory_peak: u64,
        failure: Option<&Failure>,
    ) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.dispatch_micros
            .fetch_add(duration.as_micros() as u64, Ordering::Relaxed);
        self.wasm_memory_peak
            .fetch_max(memory_peak, Ordering::Relaxed);
        if let Some(f) = failure {
            *self.failures.lock().unwrap().entry(cause(f)).or_default() += 1;
        }
    }

    /// Events delivered so far.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Failed events so far, by cause.
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        self.failures.lock().unwrap().clone()
    }
}

/// The label value naming why an event failed.
pub fn cause(f: &Failure) -> &'static str {
    match f {
        Failure::Handler(_) => "handler",
        Failure::Deadline(_) => "deadline",
        Failure::MemoryLimit(_) => "memory-limit",
        Failure::Trap { .. } => "trap",
        Failure::Guest(_) => "guest",
        Failure::Budget(_) => "budget",
        Failure::Interrupted => "interrupted",
        Failure::Commit(_) => "commit",
    }
}

/// What one container's processes use, read from its cgroup when the page is rendered.
#[derive(Clone, Debug, Default)]
pub struct WorkloadUsage {
    /// The application.
    pub app: String,
    /// The unit, `app/N`.
    pub unit: String,
    /// The container's name.
    pub container: String,
    /// The cgroup's figures (each `None` where the host does not account it).
    pub usage: cairn_supervisor::WorkloadUsage,
}

/// Writes one metric family: `# HELP`, `# TYPE`, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let suffix = if kind == "counter" { "_total" } else { "" };
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{suffix}{{{labels}}} {value}");
    }
}

/// A label value escaped as OpenMetrics requires (backslash, quote, newline).
fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// The whole page in the OpenMetrics text format, ending with `# EOF`: the apps'
/// counters, their budget's refusals (by app, then limit name) and their containers' use.
pub fn render(
    apps: &[(String, Arc<AppMetrics>)],
    limit_hits: &BTreeMap<String, BTreeMap<String, u64>>,
    workloads: &[WorkloadUsage],
) -> String {
    let mut out = String::new();
    let app_label = |a: &str| format!("app=\"{}\"", escape(a));
    let per_app = |f: &dyn Fn(&AppMetrics) -> String| -> Vec<(String, String)> {
        apps.iter().map(|(a, m)| (app_label(a), f(m))).collect()
    };
    family(
        &mut out,
        "cairn_tenant_events",
        "counter",
        "Events delivered to the application's units.",
        &per_app(&|m| m.events().to_string()),
    );
    let mut failures = Vec::new();
    let mut limits = Vec::new();
    for (a, m) in apps {
        for (c, n) in m.failures() {
            failures.push((format!("{},cause=\"{c}\"", app_label(a)), n.to_string()));
        }
    }
    for (a, hits) in limit_hits {
        for (l, n) in hits {
            limits.push((
                format!("{},limit=\"{}\"", app_label(a), escape(l)),
                n.to_string(),
            ));
        }
    }
    family(
        &mut out,
        "cairn_tenant_event_failures",
        "counter",
        "Events that failed, by cause (handler, deadline, memory-limit, trap, budget, ...).",
        &failures,
    );
    family(
        &mut out,
        "cairn_tenant_limit_hits",
        "counter",
        "Requests refused or cut because they passed the tenant's budget, by limit.",
        &limits,
    );
    family(
        &mut out,
        "cairn_tenant_dispatch_seconds",
        "counter",
        "Wall time spent delivering the application's events.",
        &per_app(&|m| {
            format!(
                "{:.6}",
                m.dispatch_micros.load(Ordering::Relaxed) as f64 / 1e6
            )
        }),
    );
    family(
        &mut out,
        "cairn_tenant_wasm_memory_peak_bytes",
        "gauge",
        "Largest linear memory one of the application's events reached.",
        &per_app(&|m| m.wasm_memory_peak.load(Ordering::Relaxed).to_string()),
    );
    let container_labels = |w: &WorkloadUsage| {
        format!(
            "{},unit=\"{}\",container=\"{}\"",
            app_label(&w.app),
            escape(&w.unit),
            escape(&w.container)
        )
    };
    type Figure = fn(&cairn_supervisor::WorkloadUsage) -> Option<u64>;
    let gauges: [(&str, &str, &str, Figure); 5] = [
        (
            "cairn_tenant_workload_memory_bytes",
            "gauge",
            "Memory charged to the container's cgroup now.",
            |u| u.memory_bytes,
        ),
        (
            "cairn_tenant_workload_memory_peak_bytes",
            "gauge",
            "The most memory charged to the container's cgroup.",
            |u| u.memory_peak_bytes,
        ),
        (
            "cairn_tenant_workload_oom_kills",
            "counter",
            "Processes of the container the OOM killer ended (its memory budget).",
            |u| u.oom_kills,
        ),
        (
            "cairn_tenant_workload_tasks",
            "gauge",
            "Tasks alive in the container's cgroup.",
            |u| u.tasks,
        ),
        (
            "cairn_tenant_workload_forks_refused",
            "counter",
            "Forks refused by the container's pids budget.",
            |u| u.forks_refused,
        ),
    ];
    for (name, kind, help, get) in gauges {
        let samples: Vec<_> = workloads
            .iter()
            .filter_map(|w| Some((container_labels(w), get(&w.usage)?.to_string())))
            .collect();
        family(&mut out, name, kind, help, &samples);
    }
    let cpu: Vec<_> = workloads
        .iter()
        .filter_map(|w| {
            Some((
                container_labels(w),
                format!("{:.6}", w.usage.cpu_usec? as f64 / 1e6),
            ))
        })
        .collect();
    family(
        &mut out,
        "cairn_tenant_workload_cpu_seconds",
        "counter",
        "CPU time the container's processes used (from its cgroup).",
        &cpu,
    );
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_counters_per_tenant_in_openmetrics_text() {
        let m = Metrics::default();
        let web = m.app("web");
        web.record_event(Duration::from_millis(2), 1 << 20, None);
        web.record_event(
            Duration::from_millis(3),
            2 << 20,
            Some(&Failure::Deadline(Duration::from_secs(1))),
        );
        m.app("db").record_event(Duration::from_micros(10), 0, None);
        let hits = BTreeMap::from([(
            "web".to_string(),
            BTreeMap::from([("log-bytes".to_string(), 1)]),
        )]);
        let text = render(
            &m.snapshot(),
            &hits,
            &[WorkloadUsage {
                app: "web".into(),
                unit: "web/0".into(),
                container: "srv".into(),
                usage: cairn_supervisor::WorkloadUsage {
                    memory_bytes: Some(4096),
                    cpu_usec: Some(1_500_000),
                    oom_kills: Some(2),
                    ..Default::default()
                },
            }],
        );
        for line in [
            "# TYPE cairn_tenant_events counter",
            "cairn_tenant_events_total{app=\"db\"} 1",
            "cairn_tenant_events_total{app=\"web\"} 2",
            "cairn_tenant_event_failures_total{app=\"web\",cause=\"deadline\"} 1",
            "cairn_tenant_limit_hits_total{app=\"web\",limit=\"log-bytes\"} 1",
            "cairn_tenant_dispatch_seconds_total{app=\"web\"} 0.005000",
            "cairn_tenant_wasm_memory_peak_bytes{app=\"web\"} 2097152",
            "cairn_tenant_workload_memory_bytes{app=\"web\",unit=\"web/0\",container=\"srv\"} 4096",
            "cairn_tenant_workload_cpu_seconds_total{app=\"web\",unit=\"web/0\",container=\"srv\"} 1.500000",
            "cairn_tenant_workload_oom_kills_total{app=\"web\",unit=\"web/0\",container=\"srv\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        // A family is announced once, before its samples.
        assert_eq!(text.matches("# TYPE cairn_tenant_events ").count(), 1);
    }

    #[test]
    fn label_values_are_escaped() {
        let hits = BTreeMap::from([(
            "a".to_string(),
            BTreeMap::from([("odd\"name\\\n".to_string(), 1)]),
        )]);
        let text = render(&[], &hits, &[]);
        assert!(
            text.contains("limit=\"odd\\\"name\\\\\\n\""),
            "label not escaped: {text}"
        );
    }

    #[test]
    fn a_forgotten_app_leaves_the_page() {
        let m = Metrics::default();
        m.app("gone").record_event(Duration::ZERO, 0, None);
        m.forget("gone");
        assert_eq!(render(&m.snapshot(), &BTreeMap::new(), &[]), "# EOF\n");
    }
}
