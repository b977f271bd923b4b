//! Times as Pebble's CLI prints them: `timeutil.Human` ("today at 15:04 UTC") in the local
//! zone, RFC 3339 with `--abs-time`, and the zone suffixes of Go's layouts.

use std::sync::OnceLock;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

static LOCAL_OFFSET: OnceLock<UtcOffset> = OnceLock::new();

/// Reads the local UTC offset; call while the process is still single-threaded (the only
/// time the offset can be read soundly), before the async runtime starts.
pub fn init_local_offset() {
    let off = UtcOffset::current_local_offset().unwrap_or(UtcOffset::UTC);
    let _ = LOCAL_OFFSET.set(off);
}

/// The offset read by [`init_local_offset`]; UTC when it was not called (as in tests).
fn local_offset() -> UtcOffset {
    *LOCAL_OFFSET.get().unwrap_or(&UtcOffset::UTC)
}

/// Parses an RFC 3339 time as the API sends it.
pub fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Go's `Z07:00` (`iso`) or a `MST`-like zone name (`UTC`, else the numeric offset).
pub fn zone_suffix(off: UtcOffset, iso: bool) -> String {
    if off.is_utc() {
        return if iso { "Z".into() } else { "UTC".into() };
    }
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    if iso {
        format!("{sign}{:02}:{:02}", h.abs(), m.abs())
    } else {
        format!("{sign}{:02}{:02}", h.abs(), m.abs())
    }
}

/// Pebble's `fmtTime`: RFC 3339 with `--abs-time`, else `timeutil.Human` in local time.
pub fn fmt_time(s: &str, abs: bool) -> String {
    let Some(t) = parse_time(s) else {
        return s.to_string();
    };
    let t = t.to_offset(local_offset());
    if abs {
        return t
            .replace_nanosecond(0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| s.to_string());
    }
    human(t, OffsetDateTime::now_utc().to_offset(local_offset()))
}

/// `timeutil.Human`: relative days up to 60, then the date.
fn human(then: OffsetDateTime, now: OffsetDateTime) -> String {
    let d = (then.date() - now.date()).whole_days();
    let hm = format!(
        "{:02}:{:02} {}",
        then.hour(),
        then.minute(),
        zone_suffix(then.offset(), false)
    );
    match d {
        -60..=-2 => format!("{} days ago, at {hm}", -d),
        -1 => format!("yesterday at {hm}"),
        0 => format!("today at {hm}"),
        1 => format!("tomorrow at {hm}"),
        2..=60 => format!("in {d} days, at {hm}"),
        _ => format!(
            "{:04}-{:02}-{:02}",
            then.year(),
            u8::from(then.month()),
            then.day()
        ),
    }
}

/// A log line's time: RFC 3339 cut to milliseconds, in the zone it was sent in, with Go's
/// `Z07:00`.
pub fn log_time(s: &str) -> String {
    parse_time(s)
        .map(|t| {
            let millis = time::format_description::parse_borrowed::<2>(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]",
            )
            .ok()
            .and_then(|f| t.format(&f).ok())
            .unwrap_or_default();
            format!("{millis}{}", zone_suffix(t.offset(), true))
        })
        .unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn human_times_like_timeutil() {
        let now = datetime!(2026-11-22 12:00 UTC);
        assert_eq!(
            human(datetime!(2026-11-22 07:47 UTC), now),
            "today at 07:47 UTC"
        );
        assert_eq!(
            human(datetime!(2026-11-21 23:59 UTC), now),
            "yesterday at 23:59 UTC"
        );
        assert_eq!(
            human(datetime!(2026-11-19 08:00 UTC), now),
            "3 days ago, at 08:00 UTC"
        );
        assert_eq!(
            human(
                datetime!(2026-11-25 08:00 +01:00),
                now.to_offset(time::macros::offset!(+1))
            ),
            "in 3 days, at 08:00 +0100"
        );
        assert_eq!(human(datetime!(2026-01-02 08:00 UTC), now), "2026-01-02");
    }

    #[test]
    fn log_times_are_cut_to_milliseconds() {
        assert_eq!(
            log_time("2026-11-22T10:11:12.345678901Z"),
            "2026-11-22T10:11:12.345Z"
        );
        assert_eq!(log_time("not a time"), "not a time");
    }
}
