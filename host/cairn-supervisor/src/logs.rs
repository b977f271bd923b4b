//! Per-service output kept in a bounded ring, formatted the way Pebble keeps it.
//!
//! Every line is stored with its time and service name; the ring holds at most
//! [`MAX_LOG_BYTES`] of formatted text and drops the oldest lines first, so a service
//! printing as fast as it can never grows memory. Followers subscribe to new lines.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// Pebble's per-service log limit (`maxLogBytes`).
pub const MAX_LOG_BYTES: usize = 100 * 1024;
/// A partial line longer than this is cut and stored as a line of its own.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of service output, as `GET /v1/logs` returns it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LogEntry {
    /// When the line was read.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The service that printed it.
    pub service: String,
    /// The line, without its newline.
    pub message: String,
}

impl LogEntry {
    /// The line as Pebble writes it: `2021-05-13T03:16:51.001Z [svc] message`.
    pub fn format(&self) -> String {
        format!(
            "{} [{}] {}",
            crate::timefmt::log_time(self.time),
            self.service,
            self.message
        )
    }

    fn cost(&self) -> usize {
        // Timestamp (24) + brackets and spaces (4) + newline (1).
        29 + self.service.len() + self.message.len()
    }
}

/// A bounded ring of one service's output lines.
pub struct LogBuffer {
    service: String,
    inner: Mutex<Ring>,
    tx: broadcast::Sender<LogEntry>,
}

struct Ring {
    lines: VecDeque<LogEntry>,
    bytes: usize,
}

impl LogBuffer {
    /// An empty ring for `service`.
    pub fn new(service: &str) -> Self {
        let (tx, _) = broadcast::channel(1024);
        LogBuffer {
            service: service.to_string(),
            inner: Mutex::new(Ring {
                lines: VecDeque::new(),
                bytes: 0,
            }),
            tx,
        }
    }

    /// Appends a line, evicting the oldest lines beyond [`MAX_LOG_BYTES`].
    pub fn push(&self, message: String) {
        let entry = LogEntry {
            time: OffsetDateTime::now_utc(),
            service: self.service.clone(),
            message,
        };
        {
            let mut ring = self.inner.lock().unwrap();
            ring.bytes += entry.cost();
            ring.lines.push_back(entry.clone());
            while ring.bytes > MAX_LOG_BYTES {
                match ring.lines.pop_front() {
                    Some(old) => ring.bytes -= old.cost(),
                    None => break,
                }
            }
        }
        let _ = self.tx.send(entry);
    }

    /// The last `n` lines (all of them for `None`).
    pub fn last(&self, n: Option<usize>) -> Vec<LogEntry> {
        let ring = self.inner.lock().unwrap();
        let skip = n.map_or(0, |n| ring.lines.len().saturating_sub(n));
        ring.lines.iter().skip(skip).cloned().collect()
    }

    /// Bytes of formatted text held now (never above [`MAX_LOG_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap().bytes
    }

    /// New lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogEntry> {
        self.tx.subscribe()
    }

    /// The last `n` lines indented, timestamps stripped, with `(...)` when cut, as Pebble
    /// appends them to a failed start task.
    pub fn last_lines(&self, n: usize, indent: &str) -> String {
        let lines = self.last(Some(n + 1));
        let mut out: Vec<String> = lines
            .iter()
            .map(|l| format!("{indent}{}", l.message))
            .collect();
        if out.len() > n {
            out[0] = format!("{indent}(...)");
        }
        out.join("\n")
    }
}

/// Splits a byte stream into lines for a [`LogBuffer`], keeping a partial last line.
#[derive(Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub(crate) fn feed(&mut self, data: &[u8], out: &LogBuffer) {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..pos]);
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
            rest = &rest[pos + 1..];
        }
        self.partial.extend_from_slice(rest);
        if self.partial.len() >= MAX_LINE_BYTES {
            self.flush(out);
        }
    }

    pub(crate) fn flush(&mut self, out: &LogBuffer) {
        if !self.partial.is_empty() {
            out.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_stays_bounded_under_flood() {
        let buf = LogBuffer::new("svc");
        for i in 0..100_000 {
            buf.push(format!("line {i} {}", "x".repeat(50)));
        }
        assert!(buf.bytes() <= MAX_LOG_BYTES);
        assert!(buf.bytes() > MAX_LOG_BYTES - 200);
        let last = buf.last(Some(1));
        assert_eq!(last[0].message, format!("line 99999 {}", "x".repeat(50)));
    }

    #[test]
    fn splitter_keeps_partial_lines() {
        let buf = LogBuffer::new("svc");
        let mut sp = LineSplitter::default();
        sp.feed(b"hel", &buf);
        sp.feed(b"lo\nwor", &buf);
        assert_eq!(buf.last(None).len(), 1);
        sp.feed(b"ld\n", &buf);
        sp.flush(&buf);
        let msgs: Vec<_> = buf.last(None).into_iter().map(|e| e.message).collect();
        assert_eq!(msgs, ["hello", "world"]);
    }

    #[test]
    fn last_lines_marks_cut_output() {
        let buf = LogBuffer::new("svc");
        for i in 0..5 {
            buf.push(format!("l{i}"));
        }
        // As Pebble's LastLines: n+1 lines are read and the first becomes "(...)".
        assert_eq!(
            buf.last_lines(3, "    "),
            "    (...)\n    l2\n    l3\n    l4"
        );
        assert_eq!(buf.last_lines(10, "  "), "  l0\n  l1\n  l2\n  l3\n  l4");
    }
}
