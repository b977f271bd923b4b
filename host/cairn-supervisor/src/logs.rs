//! Per-service output kept in a bounded ring, formatted the way Pebble keeps it.
//!
//! Every line is stored with its time; the ring holds at most [`MAX_LOG_BYTES`] of
//! formatted text and drops the oldest lines first, so a service printing as fast as it can
//! never grows memory. Followers subscribe to new lines.

use std::collections::VecDeque;
use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::sync::broadcast;

/// Pebble's per-service log limit (`maxLogBytes`).
pub const MAX_LOG_BYTES: usize = 100 * 1024;
/// A partial line longer than this is cut and stored as a line of its own.
const MAX_LINE_BYTES: usize = 64 * 1024;

/// One line of service output (`GET /v1/logs` renders it).
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// When the line was read.
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
}

/// A bounded ring of one service's output lines.
///
/// Messages live back to back in one byte buffer, with a 16-byte index entry per line
/// (time and length); the service name is stored once. The accounted size is Pebble's
/// formatted size, and the memory actually held is of the same order (no per-line
/// allocations), so a flood of one-character lines cannot multiply it.
pub struct LogBuffer {
    service: String,
    inner: Mutex<Ring>,
    /// Created on the first follower: services nobody follows pay nothing for it.
    tx: Mutex<Option<broadcast::Sender<LogEntry>>>,
}

struct Ring {
    /// Message bytes of the held lines, oldest first.
    data: VecDeque<u8>,
    /// Per line: unix time in nanoseconds and message length.
    index: VecDeque<(i64, u32)>,
    /// Formatted bytes held (what Pebble's ring would hold).
    bytes: usize,
}

impl LogBuffer {
    /// An empty ring for `service`.
    pub fn new(service: &str) -> Self {
        LogBuffer {
            service: service.to_string(),
            inner: Mutex::new(Ring {
                data: VecDeque::new(),
                index: VecDeque::new(),
                bytes: 0,
            }),
            tx: Mutex::new(None),
        }
    }

    /// Formatted size of a line: timestamp (24), brackets and spaces (4), newline (1).
    fn cost(&self, message_len: usize) -> usize {
        29 + self.service.len() + message_len
    }

    fn entry(&self, nanos: i64, message: String) -> LogEntry {
        LogEntry {
            time: OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            service: self.service.clone(),
            message,
        }
    }

    /// Appends a line, evicting the oldest lines beyond [`MAX_LOG_BYTES`].
    pub fn push(&self, message: String) {
        let now = OffsetDateTime::now_utc();
        let nanos = now.unix_timestamp_nanos() as i64;
        {
            let mut ring = self.inner.lock().unwrap();
            ring.bytes += self.cost(message.len());
            ring.data.extend(message.as_bytes());
            ring.index.push_back((nanos, message.len() as u32));
            while ring.bytes > MAX_LOG_BYTES {
                let Some((_, len)) = ring.index.pop_front() else {
                    break;
                };
                ring.data.drain(..len as usize);
                ring.bytes -= self.cost(len as usize);
            }
        }
        let tx = self.tx.lock().unwrap();
        if let Some(tx) = tx.as_ref().filter(|tx| tx.receiver_count() > 0) {
            let _ = tx.send(LogEntry {
                time: now,
                service: self.service.clone(),
                message,
            });
        }
    }

    /// The last `n` lines (all of them for `None`).
    pub fn last(&self, n: Option<usize>) -> Vec<LogEntry> {
        let ring = self.inner.lock().unwrap();
        let skip = n.map_or(0, |n| ring.index.len().saturating_sub(n));
        let mut offset: usize = ring.index.iter().take(skip).map(|(_, l)| *l as usize).sum();
        ring.index
            .iter()
            .skip(skip)
            .map(|(nanos, len)| {
                let bytes: Vec<u8> = ring
                    .data
                    .range(offset..offset + *len as usize)
                    .copied()
                    .collect();
                offset += *len as usize;
                self.entry(*nanos, String::from_utf8_lossy(&bytes).into_owned())
            })
            .collect()
    }

    /// Bytes of formatted text held now (never above [`MAX_LOG_BYTES`]).
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap().bytes
    }

    /// Bytes of memory the ring's buffers hold now (capacity included).
    pub fn allocated(&self) -> usize {
        let ring = self.inner.lock().unwrap();
        ring.data.capacity() + ring.index.capacity() * std::mem::size_of::<(i64, u32)>()
    }

    /// New lines from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LogEntry> {
        self.tx
            .lock()
            .unwrap()
            .get_or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
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
        assert_eq!(last[0].service, "svc");
    }

    #[test]
    fn tiny_lines_cannot_multiply_memory() {
        let buf = LogBuffer::new("svc");
        for _ in 0..1_000_000 {
            buf.push("y".into());
        }
        assert!(buf.bytes() <= MAX_LOG_BYTES);
        // 100 KiB of formatted lines of "y": about 3000 lines of 1 byte plus 12-16 bytes of
        // index each, in buffers that at most double while growing.
        assert!(buf.allocated() <= 2 * MAX_LOG_BYTES, "{}", buf.allocated());
        let all = buf.last(None);
        assert_eq!(all.len(), MAX_LOG_BYTES / (29 + "svc".len() + 1));
        assert!(all.iter().all(|e| e.message == "y"));
    }

    #[test]
    fn followers_see_new_lines_in_order() {
        let buf = LogBuffer::new("svc");
        buf.push("before".into());
        let mut rx = buf.subscribe();
        buf.push("one".into());
        buf.push("two".into());
        assert_eq!(rx.try_recv().unwrap().message, "one");
        assert_eq!(rx.try_recv().unwrap().message, "two");
        assert!(rx.try_recv().is_err());
        // Times survive the round trip through the index.
        let last = buf.last(Some(2));
        assert!(last[0].time <= last[1].time);
        assert!(last[1].time > OffsetDateTime::UNIX_EPOCH);
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
