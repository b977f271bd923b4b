//! Pebble's metrics in the OpenMetrics text format of `GET /v1/metrics`.

use std::fmt::Write;

/// Kind of a metric.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// Writes one metric as Pebble's writer does: HELP, TYPE, the sample, a blank line.
pub(crate) fn write(
    out: &mut String,
    name: &str,
    kind: Kind,
    help: &str,
    label: (&str, &str),
    value: u64,
) {
    let kind = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
    };
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{}={:?}}} {value}\n\n",
        label.0, label.1
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_like_pebble() {
        let mut s = String::new();
        super::write(
            &mut s,
            "pebble_service_active",
            super::Kind::Gauge,
            "Whether the service is currently active (1) or not (0)",
            ("service", "svc1"),
            1,
        );
        assert_eq!(
            s,
            "# HELP pebble_service_active Whether the service is currently active (1) or not (0)\n# TYPE pebble_service_active gauge\npebble_service_active{service=\"svc1\"} 1\n\n"
        );
    }
}
