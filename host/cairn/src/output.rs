//! Human-readable tables for status, events and config.

use cairn_runtime::HistoryEntry;
use cairn_runtime::StatusReport;

use crate::table::render_trimmed as table;

/// `cairn status` as text: apps, units, then each unit's containers and services.
pub fn status_table(r: &StatusReport, relations: bool) -> String {
    let mut out = format!("Model  {}\n", r.model);
    if r.apps.is_empty() {
        out.push_str("\nNo applications deployed.\n");
        return out;
    }
    let mut apps = vec![vec![
        "App".into(),
        "Charm".into(),
        "Status".into(),
        "Message".into(),
    ]];
    let mut units = vec![vec![
        "Unit".into(),
        "Status".into(),
        "Queued".into(),
        "Message".into(),
    ]];
    let mut svcs = vec![vec![
        "Unit".into(),
        "Container".into(),
        "Service".into(),
        "Startup".into(),
        "Current".into(),
    ]];
    for a in &r.apps {
        apps.push(vec![
            a.name.clone(),
            a.charm.clone(),
            a.status.name().into(),
            a.status.message().into(),
        ]);
        for u in &a.units {
            let name = if u.leader {
                format!("{}*", u.name)
            } else {
                u.name.clone()
            };
            units.push(vec![
                name,
                u.status.name().into(),
                u.queued.to_string(),
                u.status.message().into(),
            ]);
            for c in &u.containers {
                if c.services.is_empty() {
                    svcs.push(vec![
                        u.name.clone(),
                        c.name.clone(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ]);
                }
                for s in &c.services {
                    svcs.push(vec![
                        u.name.clone(),
                        c.name.clone(),
                        s.name.clone(),
                        s.startup.clone(),
                        s.current.clone(),
                    ]);
                }
            }
        }
    }
    out.push('\n');
    out.push_str(&table(&apps));
    out.push('\n');
    out.push_str(&table(&units));
    if svcs.len() > 1 {
        out.push('\n');
        out.push_str(&table(&svcs));
    }
    if relations && !r.relations.is_empty() {
        // Juju's columns.
        let mut rows = vec![vec![
            "Integration provider".into(),
            "Requirer".into(),
            "Interface".into(),
            "Type".into(),
            "Message".into(),
        ]];
        for rel in &r.relations {
            rows.push(vec![
                rel.provider.clone(),
                rel.requirer.clone(),
                rel.interface.clone(),
                rel.kind.clone(),
                if rel.state == "joined" {
                    String::new()
                } else {
                    rel.state.clone()
                },
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// `cairn limits` as text: each limit, its value, whether the app overrides the host's
/// default, and its hits.
pub fn limits_table(l: &cairn_runtime::AppLimits) -> String {
    let mut rows = vec![vec![
        "Limit".into(),
        "Value".into(),
        "Source".into(),
        "Hits".into(),
    ]];
    for (k, v) in &l.limits {
        let source = if l.overridden.contains(k) {
            "app"
        } else {
            "default"
        };
        rows.push(vec![
            k.clone(),
            v.clone(),
            source.into(),
            l.hits.get(k).copied().unwrap_or(0).to_string(),
        ]);
    }
    table(&rows)
}

/// `cairn events` as text.
pub fn events_table(events: &[HistoryEntry]) -> String {
    let mut rows = vec![vec![
        "Time".into(),
        "Event".into(),
        "Duration".into(),
        "Outcome".into(),
    ]];
    for e in events {
        rows.push(vec![
            short_time(&e.time),
            e.event.clone(),
            format_us(e.duration_us),
            e.outcome.clone(),
        ]);
    }
    table(&rows)
}

/// RFC 3339 cut to milliseconds, for tables.
fn short_time(t: &str) -> String {
    match (t.find('.'), t.rfind(['Z', '+'])) {
        (Some(dot), Some(end)) if end > dot => {
            format!("{}{}", &t[..(dot + 4).min(end)], &t[end..])
        }
        _ => t.to_string(),
    }
}

fn format_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{us}µs")
    }
}

/// `cairn config <app>` as `key = value` lines.
pub fn print_config(v: &serde_json::Value) {
    if let Some(map) = v.as_object() {
        for (k, v) in map {
            let shown = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            println!("{k}={shown}");
        }
    }
}

/// An action run as YAML-like text: id, unit, action, status, message, results, log,
/// times.
pub fn action_text(rec: &cairn_runtime::ActionRecord) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let q = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let _ = writeln!(out, "id: {}", q(&rec.id));
    let _ = writeln!(out, "unit: {}", rec.unit);
    let _ = writeln!(out, "action: {}", rec.action);
    let _ = writeln!(out, "status: {}", rec.status);
    if !rec.message.is_empty() {
        let _ = writeln!(out, "message: {}", q(&rec.message));
    }
    if let Some(p) = rec.params.as_object().filter(|p| !p.is_empty()) {
        let _ = writeln!(out, "params:");
        for (k, v) in p {
            let _ = writeln!(out, "  {k}: {v}");
        }
    }
    if !rec.results.is_empty() {
        let _ = writeln!(out, "results:");
        for (k, v) in &rec.results {
            let _ = writeln!(out, "  {k}: {}", q(v));
        }
    }
    if !rec.log.is_empty() {
        let _ = writeln!(out, "log:");
        for (t, m) in &rec.log {
            let _ = writeln!(out, "- {t} {m}");
        }
    }
    let _ = writeln!(out, "enqueued: {}", rec.enqueued);
    if !rec.started.is_empty() {
        let _ = writeln!(out, "started: {}", rec.started);
    }
    if !rec.completed.is_empty() {
        let _ = writeln!(out, "completed: {}", rec.completed);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_cut_to_milliseconds() {
        assert_eq!(
            super::short_time("2026-11-22T13:52:21.690867358Z"),
            "2026-11-22T13:52:21.690Z"
        );
        assert_eq!(
            super::short_time("2026-11-22T13:52:21Z"),
            "2026-11-22T13:52:21Z"
        );
    }

    #[test]
    fn durations_are_readable() {
        assert_eq!(super::format_us(12), "12µs");
        assert_eq!(super::format_us(1500), "1.5ms");
        assert_eq!(super::format_us(2_500_000), "2.50s");
    }
}
