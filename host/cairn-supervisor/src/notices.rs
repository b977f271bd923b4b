//! Pebble's notices (`state/notices.go`): `custom` notices that clients record,
//! `change-update` notices recorded on every change status transition, and `warning`s.
//!
//! A notice is unique by (user, type, key). Each new occurrence bumps `occurrences`,
//! `last-occurred` and `last-data`; it is a *repeat* (bumping `last-repeated` and waking
//! waiters) unless it comes within `repeat-after` of the last repeat. Notices expire 7 days
//! after their last occurrence and at most 1000 are kept.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Notices expire this long after their last occurrence (Pebble's default `expire-after`).
pub const EXPIRE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);
/// At most this many notices are kept; the least recently repeated go first.
pub const MAX_NOTICES: usize = 1000;
/// Warnings repeat at most daily.
pub const WARNING_REPEAT_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Longest custom notice key.
pub const MAX_KEY_LEN: usize = 256;
/// Largest custom notice data, as JSON.
pub const MAX_DATA_SIZE: usize = 4 * 1024;

/// The kinds of notice Pebble knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeType {
    /// Recorded by a client (`POST /v1/notices`, `pebble notify`).
    Custom,
    /// Recorded on every change status transition.
    ChangeUpdate,
    /// A warning of the daemon's.
    Warning,
}

impl NoticeType {
    /// Pebble's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeType::Custom => "custom",
            NoticeType::ChangeUpdate => "change-update",
            NoticeType::Warning => "warning",
        }
    }

    /// The type named `t`, if Pebble knows it.
    pub fn from_name(t: &str) -> Option<Self> {
        match t {
            "custom" => Some(NoticeType::Custom),
            "change-update" => Some(NoticeType::ChangeUpdate),
            "warning" => Some(NoticeType::Warning),
            _ => None,
        }
    }
}

/// A notice as the supervisor keeps it (persisted, and rendered by `GET /v1/notices`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Notice {
    /// Increasing integer, as a string.
    pub id: String,
    /// Owner's uid; `None` for public notices.
    pub user_id: Option<u32>,
    /// What kind of notice it is.
    #[serde(rename = "type")]
    pub type_: NoticeType,
    /// The key, unique per user and type.
    pub key: String,
    /// When it first occurred.
    #[serde(with = "time::serde::rfc3339")]
    pub first_occurred: OffsetDateTime,
    /// When it last occurred.
    #[serde(with = "time::serde::rfc3339")]
    pub last_occurred: OffsetDateTime,
    /// When it last occurred outside `repeat-after`.
    #[serde(with = "time::serde::rfc3339")]
    pub last_repeated: OffsetDateTime,
    /// How many times it occurred.
    pub occurrences: u64,
    /// Data of the last occurrence.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub last_data: BTreeMap<String, String>,
    /// Go duration; empty when 0.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub repeat_after: String,
    /// Go duration.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expire_after: String,
}

/// What a notices query selects (all fields optional, as `GET /v1/notices`).
#[derive(Clone, Debug, Default)]
pub struct NoticeFilter {
    /// Only public notices and this user's; `None` means every user's.
    pub user_id: Option<u32>,
    /// Only these types.
    pub types: Vec<NoticeType>,
    /// Only these keys.
    pub keys: Vec<String>,
    /// Only notices repeated strictly after this time.
    pub after: Option<OffsetDateTime>,
}

impl NoticeFilter {
    fn matches(&self, n: &Notice) -> bool {
        if let Some(uid) = self.user_id
            && n.user_id.is_some_and(|owner| owner != uid)
        {
            return false;
        }
        if !self.types.is_empty() && !self.types.contains(&n.type_) {
            return false;
        }
        if !self.keys.is_empty() && !self.keys.contains(&n.key) {
            return false;
        }
        if let Some(after) = self.after
            && n.last_repeated <= after
        {
            return false;
        }
        true
    }
}

/// Pebble's checks of a custom notice's key and data, with its messages.
pub fn validate_custom(key: &str, data: &BTreeMap<String, String>) -> Result<(), String> {
    if !valid_custom_key(key) {
        return Err(format!(
            "invalid key {key:?} (must be in \"example.com/path\" format)"
        ));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!("key must be {MAX_KEY_LEN} bytes or less"));
    }
    let size = serde_json::to_vec(data).map(|v| v.len()).unwrap_or(0);
    if size > MAX_DATA_SIZE {
        return Err(format!(
            "total size of data must be {MAX_DATA_SIZE} bytes or less"
        ));
    }
    Ok(())
}

/// Pebble's custom key rule: `example.com/path` (a domain with a dot, then `/`-separated
/// lowercase segments).
pub fn valid_custom_key(key: &str) -> bool {
    fn words(s: &str) -> bool {
        // [a-z0-9]+(-[a-z0-9]+)*
        !s.is_empty()
            && s.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    }
    let mut parts = key.split('/');
    let Some(domain) = parts.next() else {
        return false;
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let path: Vec<&str> = parts.collect();
    labels.len() >= 2
        && labels.iter().all(|l| words(l))
        && !path.is_empty()
        && path.iter().all(|p| words(p))
}

/// All notices of one container; serialisable for persistence.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NoticeBook {
    last_id: u64,
    notices: Vec<Notice>,
}

impl NoticeBook {
    /// Records an occurrence; returns the notice's id and whether it was new or repeated
    /// (which wakes waiters).
    pub fn add(
        &mut self,
        user_id: Option<u32>,
        type_: NoticeType,
        key: &str,
        data: BTreeMap<String, String>,
        repeat_after: Option<Duration>,
        now: OffsetDateTime,
    ) -> (String, bool) {
        self.expire(now);
        let repeat = repeat_after.unwrap_or_default();
        let found = self
            .notices
            .iter_mut()
            .find(|n| n.user_id == user_id && n.type_ == type_ && n.key == key);
        let (id, repeated) = match found {
            Some(n) => {
                n.occurrences += 1;
                let repeated = repeat.is_zero() || now > n.last_repeated + repeat;
                if repeated {
                    n.last_repeated = now;
                }
                n.last_occurred = now;
                n.last_data = data;
                n.repeat_after = go_duration(repeat);
                (n.id.clone(), repeated)
            }
            None => {
                self.last_id += 1;
                let id = self.last_id.to_string();
                self.notices.push(Notice {
                    id: id.clone(),
                    user_id,
                    type_,
                    key: key.to_string(),
                    first_occurred: now,
                    last_occurred: now,
                    last_repeated: now,
                    occurrences: 1,
                    last_data: data,
                    repeat_after: go_duration(repeat),
                    expire_after: cairn_plan::format_duration(EXPIRE_AFTER),
                });
                (id, true)
            }
        };
        self.prune();
        (id, repeated)
    }

    /// The notice of `user_id`, `type_` and `key` as it is now, to put back with
    /// [`NoticeBook::restore`].
    pub(crate) fn find(
        &self,
        user_id: Option<u32>,
        type_: NoticeType,
        key: &str,
    ) -> Option<Notice> {
        self.notices
            .iter()
            .find(|n| n.user_id == user_id && n.type_ == type_ && n.key == key)
            .cloned()
    }

    /// Puts the notice of `user_id`, `type_` and `key` back as `prior` had it (removes it
    /// when there was none): takes back an occurrence that could not be persisted.
    pub(crate) fn restore(
        &mut self,
        user_id: Option<u32>,
        type_: NoticeType,
        key: &str,
        prior: Option<Notice>,
    ) {
        let at = self
            .notices
            .iter()
            .position(|n| n.user_id == user_id && n.type_ == type_ && n.key == key);
        match (at, prior) {
            (Some(i), Some(p)) => self.notices[i] = p,
            (Some(i), None) => {
                self.notices.remove(i);
            }
            (None, Some(p)) => self.notices.push(p),
            (None, None) => {}
        }
    }

    /// Matching notices, oldest repeat first.
    pub fn list(&self, filter: &NoticeFilter, now: OffsetDateTime) -> Vec<Notice> {
        let mut out: Vec<Notice> = self
            .notices
            .iter()
            .filter(|n| !expired(n, now) && filter.matches(n))
            .cloned()
            .collect();
        out.sort_by_key(|n| (n.last_repeated, n.id.parse::<u64>().unwrap_or(0)));
        out
    }

    /// The notice with `id`, if it has not expired.
    pub fn get(&self, id: &str, now: OffsetDateTime) -> Option<Notice> {
        self.notices
            .iter()
            .find(|n| n.id == id && !expired(n, now))
            .cloned()
    }

    fn expire(&mut self, now: OffsetDateTime) {
        self.notices.retain(|n| !expired(n, now));
    }

    fn prune(&mut self) {
        if self.notices.len() > MAX_NOTICES {
            self.notices.sort_by_key(|n| n.last_repeated);
            let extra = self.notices.len() - MAX_NOTICES;
            self.notices.drain(..extra);
        }
    }
}

fn expired(n: &Notice, now: OffsetDateTime) -> bool {
    n.last_occurred + EXPIRE_AFTER < now
}

fn go_duration(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else {
        cairn_plan::format_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(k: &str, v: &str) -> BTreeMap<String, String> {
        [(k.to_string(), v.to_string())].into()
    }

    #[test]
    fn custom_keys_follow_pebbles_rule() {
        for ok in ["example.com/backup/done", "a.b/c", "my-app.io/x-1/y"] {
            assert!(valid_custom_key(ok), "{ok}");
        }
        for bad in [
            "example/x",
            "example.com",
            "example.com/",
            "Example.com/x",
            "a..b/c",
            "a.b/c/",
            "a.b/-c",
        ] {
            assert!(!valid_custom_key(bad), "{bad}");
        }
    }

    #[test]
    fn repeats_within_repeat_after_count_but_do_not_repeat() {
        let mut b = NoticeBook::default();
        let t0 = OffsetDateTime::now_utc();
        let hour = Some(Duration::from_secs(3600));
        let (id, new) = b.add(
            Some(0),
            NoticeType::Custom,
            "example.com/a",
            data("path", "/x"),
            hour,
            t0,
        );
        assert!(new);
        let t1 = t0 + Duration::from_secs(1);
        let (id2, repeated) = b.add(
            Some(0),
            NoticeType::Custom,
            "example.com/a",
            data("path", "/y"),
            hour,
            t1,
        );
        assert_eq!((id2.as_str(), repeated), (id.as_str(), false));
        let n = b.get(&id, t1).unwrap();
        assert_eq!(n.occurrences, 2);
        assert_eq!(n.last_repeated, t0);
        assert_eq!(n.last_occurred, t1);
        assert_eq!(n.last_data, data("path", "/y"));
        assert_eq!(n.repeat_after, "1h0m0s");
        // Another user's notice with the same key is another notice.
        let (other, _) = b.add(
            Some(7),
            NoticeType::Custom,
            "example.com/a",
            BTreeMap::new(),
            None,
            t1,
        );
        assert_ne!(other, id);
        let mine = b.list(
            &NoticeFilter {
                user_id: Some(0),
                ..Default::default()
            },
            t1,
        );
        assert_eq!(mine.len(), 1);
        // `after` is strict on last-repeated.
        let after = b.list(
            &NoticeFilter {
                after: Some(t0),
                ..Default::default()
            },
            t1,
        );
        assert_eq!(
            after.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
            [other]
        );
    }

    #[test]
    fn notices_expire_and_are_capped() {
        let mut b = NoticeBook::default();
        let t0 = OffsetDateTime::now_utc();
        b.add(None, NoticeType::Warning, "w", BTreeMap::new(), None, t0);
        assert!(
            b.list(
                &NoticeFilter::default(),
                t0 + EXPIRE_AFTER + Duration::from_secs(1)
            )
            .is_empty()
        );
        for i in 0..MAX_NOTICES + 10 {
            b.add(
                None,
                NoticeType::Custom,
                &format!("example.com/k{i}"),
                BTreeMap::new(),
                None,
                t0 + Duration::from_millis(i as u64),
            );
        }
        let all = b.list(&NoticeFilter::default(), t0 + Duration::from_secs(10));
        assert_eq!(all.len(), MAX_NOTICES);
        assert_eq!(all[0].key, "example.com/k10");
    }
}
