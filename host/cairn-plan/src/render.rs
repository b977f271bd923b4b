//! Rendering layers and plans as YAML exactly as Pebble does with `yaml.v3`: fields in
//! Go struct order, empty fields omitted (except a log target's `type`, `location` and
//! `services`), map keys in `yaml.v3`'s natural order, defaults never shown.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::time::Duration;

use crate::duration::format_duration;
use crate::layer::format_float_g;
use crate::types::*;
use crate::yaml::emit::{Emitter, Out, ScalarStyle};
use crate::yaml::resolve::resolve_tag;

impl Plan {
    /// Renders the plan as `pebble plan` and `GET /v1/plan?format=yaml` print it.
    pub fn to_yaml(&self) -> String {
        let mut top = Fields::default();
        top.map("services", &self.services, |s| service_out(s));
        top.map("checks", &self.checks, |c| check_out(c));
        top.map("log-targets", &self.log_targets, log_target_out);
        top.map("workloads", &self.workloads, workload_out);
        if self.pairing.mode != PairingMode::Unset {
            top.push(
                "pairing",
                Out::map(vec![(
                    string_out("mode"),
                    string_out(self.pairing.mode.as_str()),
                )]),
            );
        }
        Emitter::document(&Out::map(top.0))
    }
}

impl Layer {
    /// Renders the layer as Pebble marshals one; parsing the text gives the layer back.
    /// Unlike Pebble (which never prints layers), empty extension sections are left out,
    /// and a multi-line string starting with a line break keeps it (`yaml.v3` v3.0.1 drops it).
    pub fn to_yaml(&self) -> String {
        let mut top = Fields::default();
        top.string("summary", &self.summary);
        top.string("description", &self.description);
        top.map("services", &self.services, |s| service_out(s));
        top.map("checks", &self.checks, |c| check_out(c));
        top.map("log-targets", &self.log_targets, log_target_out);
        if self.pairing.mode != PairingMode::Unset {
            top.push(
                "pairing",
                Out::map(vec![(
                    string_out("mode"),
                    string_out(self.pairing.mode.as_str()),
                )]),
            );
        }
        top.map("workloads", &self.workloads, workload_out);
        Emitter::document_lossless(&Out::map(top.0))
    }
}

/// A string scalar styled as `yaml.v3` marshals a Go string.
pub(crate) fn string_out(s: &str) -> Out {
    let style = if s.contains('\n') {
        ScalarStyle::Literal
    } else if resolve_tag(s) == "!!str" && !is_base60_float(s) && !is_old_bool(s) {
        ScalarStyle::Plain
    } else {
        ScalarStyle::Double
    };
    Out::scalar(s, style)
}

fn is_old_bool(s: &str) -> bool {
    matches!(
        s,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "on"
            | "On"
            | "ON"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "off"
            | "Off"
            | "OFF"
    )
}

/// YAML 1.1 base-60 floats (`1:30`), which `yaml.v3` quotes for older parsers.
fn is_base60_float(s: &str) -> bool {
    use std::sync::LazyLock;
    static BASE60: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
            .expect("valid regex")
    });
    let Some(&c) = s.as_bytes().first() else {
        return false;
    };
    (c == b'+' || c == b'-' || c.is_ascii_digit()) && s.contains(':') && BASE60.is_match(s)
}

/// `yaml.v3`'s map key order: natural order, where runs of digits compare as numbers.
pub(crate) fn key_order(a: &str, b: &str) -> Ordering {
    if key_less(a, b) {
        Ordering::Less
    } else if key_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let is_digit = |c: char| c.is_numeric();
    let digit_value = |c: char| i64::from(c.to_digit(10).unwrap_or(0));
    let mut digits = false;
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            digits = is_digit(ar[i]);
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return if digits { al } else { bl };
        }
        let mut an: i64 = 0;
        let mut bn: i64 = 0;
        if ar[i] == '0' || br[i] == '0' {
            for j in (0..i).rev() {
                if !is_digit(ar[j]) {
                    break;
                }
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && is_digit(ar[ai]) {
            an = an.wrapping_mul(10).wrapping_add(digit_value(ar[ai]));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && is_digit(br[bi]) {
            bn = bn.wrapping_mul(10).wrapping_add(digit_value(br[bi]));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

/// Builds a mapping's entries in field order, skipping empty (omitempty) fields.
#[derive(Default)]
struct Fields(Vec<(Out, Out)>);

impl Fields {
    fn push(&mut self, key: &str, value: Out) {
        self.0.push((string_out(key), value));
    }

    fn string(&mut self, key: &str, value: &str) {
        if !value.is_empty() {
            self.push(key, string_out(value));
        }
    }

    fn list(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            self.push(
                key,
                Out::seq(values.iter().map(|v| string_out(v)).collect()),
            );
        }
    }

    fn map<V>(&mut self, key: &str, values: &BTreeMap<String, V>, render: impl Fn(&V) -> Out) {
        if !values.is_empty() {
            self.push(key, sorted_map(values, render));
        }
    }

    fn int(&mut self, key: &str, value: Option<u32>) {
        if let Some(v) = value {
            self.push(key, Out::scalar(v.to_string(), ScalarStyle::Plain));
        }
    }

    fn duration(&mut self, key: &str, value: Option<Duration>) {
        if let Some(d) = value {
            self.push(key, string_out(&format_duration(d)));
        }
    }
}

fn sorted_map<V>(values: &BTreeMap<String, V>, render: impl Fn(&V) -> Out) -> Out {
    let mut keys: Vec<&String> = values.keys().collect();
    keys.sort_by(|a, b| key_order(a, b));
    Out::map(
        keys.into_iter()
            .map(|k| (string_out(k), render(&values[k])))
            .collect(),
    )
}

fn float_out(value: f64) -> Out {
    let text = match format_float_g(value).as_str() {
        "+Inf" => ".inf".to_string(),
        "-Inf" => "-.inf".to_string(),
        "NaN" => ".nan".to_string(),
        other => other.to_string(),
    };
    Out::scalar(text, ScalarStyle::Plain)
}

fn service_out(s: &Service) -> Out {
    let mut f = Fields::default();
    f.string("summary", &s.summary);
    f.string("description", &s.description);
    f.string("startup", s.startup.as_str());
    f.string("override", s.override_.as_str());
    f.string("command", &s.command);
    f.list("after", &s.after);
    f.list("before", &s.before);
    f.list("requires", &s.requires);
    f.string("workload", &s.workload);
    f.map("environment", &s.environment, |v| string_out(v));
    f.int("user-id", s.user_id);
    f.string("user", &s.user);
    f.int("group-id", s.group_id);
    f.string("group", &s.group);
    f.string("working-dir", &s.working_dir);
    f.string("on-success", s.on_success.as_str());
    f.string("on-failure", s.on_failure.as_str());
    f.map("on-check-failure", &s.on_check_failure, |v| {
        string_out(v.as_str())
    });
    f.duration("backoff-delay", s.backoff_delay);
    if let Some(factor) = s.backoff_factor {
        f.push("backoff-factor", float_out(factor));
    }
    f.duration("backoff-limit", s.backoff_limit);
    f.duration("kill-delay", s.kill_delay);
    Out::map(f.0)
}

fn check_out(c: &Check) -> Out {
    let mut f = Fields::default();
    f.string("override", c.override_.as_str());
    f.string("level", c.level.as_str());
    f.string("startup", c.startup.as_str());
    f.duration("period", c.period);
    f.duration("timeout", c.timeout);
    f.int("threshold", c.threshold);
    if let Some(http) = &c.http {
        let mut h = Fields::default();
        h.string("url", &http.url);
        h.map("headers", &http.headers, |v| string_out(v));
        f.push("http", Out::map(h.0));
    }
    if let Some(tcp) = &c.tcp {
        let mut t = Fields::default();
        t.int("port", (tcp.port != 0).then_some(tcp.port));
        t.string("host", &tcp.host);
        f.push("tcp", Out::map(t.0));
    }
    if let Some(exec) = &c.exec {
        let mut e = Fields::default();
        e.string("command", &exec.command);
        e.string("service-context", &exec.service_context);
        e.map("environment", &exec.environment, |v| string_out(v));
        e.int("user-id", exec.user_id);
        e.string("user", &exec.user);
        e.int("group-id", exec.group_id);
        e.string("group", &exec.group);
        e.string("working-dir", &exec.working_dir);
        f.push("exec", Out::map(e.0));
    }
    Out::map(f.0)
}

fn log_target_out(t: &LogTarget) -> Out {
    let mut f = Fields::default();
    f.push("type", string_out(t.type_.as_str()));
    f.push("location", string_out(&t.location));
    f.push(
        "services",
        Out::seq(t.services.iter().map(|s| string_out(s)).collect()),
    );
    f.string("override", t.override_.as_str());
    f.map("labels", &t.labels, |v| string_out(v));
    Out::map(f.0)
}

fn workload_out(w: &Workload) -> Out {
    let mut f = Fields::default();
    f.string("override", w.override_.as_str());
    f.map("environment", &w.environment, |v| string_out(v));
    f.int("user-id", w.user_id);
    f.string("user", &w.user);
    f.int("group-id", w.group_id);
    f.string("group", &w.group);
    Out::map(f.0)
}
