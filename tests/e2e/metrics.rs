//! The operator's per-tenant metrics: `cairn metrics` and `GET /metrics` on
//! `--metrics-listen` count each application's events, failures by cause and guest memory.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::common::*;

/// The value of the sample `name` in an OpenMetrics page, if present.
pub(crate) fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_count_each_tenants_events_and_failures() -> Result<()> {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start(
        "metrics",
        &["--retry-delay", "10s", "--metrics-listen", &addr],
    )?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "calm"])?;
    d.wait_status("mis/0", "active", "handled", Duration::from_secs(20))?;
    d.wait_status("calm/0", "active", "handled", Duration::from_secs(20))?;
    d.ok(&["config", "mis", "mode=error"])?;
    eventually(Duration::from_secs(20), || {
        let u = d.unit("mis/0").ok()?;
        (u["status"]["status"] == "error").then_some(())
    })
    .must("mis/0 in error")?;

    let page = d.ok(&["metrics"])?;
    assert!(page.ends_with("# EOF\n"), "{page}");
    let mis_events = sample(&page, "cairn_tenant_events_total{app=\"mis\"}")
        .with_context(|| format!("no events of mis in:\n{page}"))?;
    // install, leader-elected, config-changed, start at least; then the failing one.
    assert!(mis_events >= 4.0, "{page}");
    assert_eq!(
        sample(
            &page,
            "cairn_tenant_event_failures_total{app=\"mis\",cause=\"handler\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert!(
        !page.contains("cairn_tenant_event_failures_total{app=\"calm\""),
        "the calm tenant has no failure: {page}"
    );
    let memory = sample(&page, "cairn_tenant_wasm_memory_peak_bytes{app=\"calm\"}")
        .context("no memory peak")?;
    assert!(memory >= 65536.0, "a guest has at least one page: {page}");

    // The same page over HTTP, for scrapers.
    let (status, body) = http(port, "GET", "/metrics", "")?;
    assert_eq!(status, "HTTP/1.0 200 OK", "{body}");
    assert!(
        body.contains("cairn_tenant_events_total{app=\"calm\"}"),
        "{body}"
    );
    assert_eq!(http(port, "GET", "/other", "")?.0, "HTTP/1.0 404 Not Found");

    // A removed tenant leaves the page.
    d.ok(&["remove", "mis"])?;
    let page = d.ok(&["metrics"])?;
    assert!(!page.contains("app=\"mis\""), "{page}");
    Ok(())
}
