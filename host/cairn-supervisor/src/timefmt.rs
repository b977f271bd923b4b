//! Time formats Pebble uses on the wire and in logs.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 with as many fractional digits as needed (Go's `time.RFC3339Nano` in UTC).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339 to the second, as task log lines start.
pub fn rfc3339_secs(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

/// Millisecond UTC time as service log lines start (`2006-01-02T15:04:05.000Z`).
pub fn log_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}
