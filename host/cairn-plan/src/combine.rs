//! Combining layers: later layers win; `replace` swaps a whole definition, `merge`
//! overrides the fields a layer sets, appends lists and merges maps (Pebble's `CombineLayers`).

use crate::error::{PlanError, format_err};
use crate::quote::quote;
use crate::types::*;
use std::sync::Arc;

/// Combines `layers` (lowest order first) into one layer, applying check defaults.
/// The inputs should already be valid layers; the result still needs plan validation.
pub fn combine_layers(layers: &[Layer]) -> Result<Layer, PlanError> {
    let mut combined = Layer::default();
    for layer in layers {
        for (name, workload) in &layer.workloads {
            match workload.override_ {
                Override::Merge => match combined.workloads.get_mut(name) {
                    Some(old) => old.merge(workload),
                    None => {
                        combined.workloads.insert(name.clone(), workload.clone());
                    }
                },
                Override::Replace => {
                    combined.workloads.insert(name.clone(), workload.clone());
                }
                Override::Unknown => {
                    return Err(format_err(format!(
                        r#"workload {}: must define an "override" policy"#,
                        quote(name)
                    )));
                }
            }
        }
        if layer.pairing.mode != PairingMode::Unset {
            combined.pairing.mode = layer.pairing.mode;
        }
    }
    let Some(last) = layers.last() else {
        return Ok(combined);
    };
    combined.summary = last.summary.clone();
    combined.description = last.description.clone();
    for layer in layers {
        for (name, service) in &layer.services {
            match service.override_ {
                Override::Merge => match combined.services.get_mut(name) {
                    Some(old) => Arc::make_mut(old).merge(service),
                    None => {
                        combined.services.insert(name.clone(), service.clone());
                    }
                },
                Override::Replace => {
                    combined.services.insert(name.clone(), service.clone());
                }
                Override::Unknown => return Err(missing_override(&layer.label, "service", name)),
            }
        }
        for (name, check) in &layer.checks {
            match check.override_ {
                Override::Merge => match combined.checks.get_mut(name) {
                    Some(old) => Arc::make_mut(old).merge(check),
                    None => {
                        combined.checks.insert(name.clone(), check.clone());
                    }
                },
                Override::Replace => {
                    combined.checks.insert(name.clone(), check.clone());
                }
                Override::Unknown => return Err(missing_override(&layer.label, "check", name)),
            }
        }
        for (name, target) in &layer.log_targets {
            match target.override_ {
                Override::Merge => match combined.log_targets.get_mut(name) {
                    Some(old) => old.merge(target),
                    None => {
                        combined.log_targets.insert(name.clone(), target.clone());
                    }
                },
                Override::Replace => {
                    combined.log_targets.insert(name.clone(), target.clone());
                }
                Override::Unknown => {
                    return Err(missing_override(&layer.label, "log target", name));
                }
            }
        }
    }
    for check in combined.checks.values_mut() {
        // A timeout longer than the period is capped to it; an unset one stays unset
        // (its effective value is computed on use) so defaults never appear in the plan.
        // (Shared with the layer that defined it until one of these changes it.)
        if let Some(timeout) = check.timeout
            && timeout > check.effective_period()
        {
            let period = check.effective_period();
            Arc::make_mut(check).timeout = Some(period);
        }
        if check.threshold.is_none() {
            Arc::make_mut(check).threshold = Some(DEFAULT_CHECK_THRESHOLD);
        }
    }
    Ok(combined)
}

fn missing_override(label: &str, kind: &str, name: &str) -> PlanError {
    PlanError::Override(format!(
        r#"layer {} must define "override" for {kind} {}"#,
        quote(label),
        quote(name)
    ))
}

/// The message Pebble gives when combining a definition whose `override` is not merge/replace.
pub(crate) fn invalid_override(label: &str, kind: &str, name: &str) -> PlanError {
    PlanError::Override(format!(
        r#"layer {} has invalid "override" value for {kind} {}"#,
        quote(label),
        quote(name)
    ))
}

fn set_string(target: &mut String, value: &str) {
    if !value.is_empty() {
        *target = value.to_string();
    }
}

fn set_option<T: Copy>(target: &mut Option<T>, value: Option<T>) {
    if value.is_some() {
        *target = value;
    }
}

fn merge_map<V: Clone>(
    target: &mut std::collections::BTreeMap<String, V>,
    other: &std::collections::BTreeMap<String, V>,
) {
    for (k, v) in other {
        target.insert(k.clone(), v.clone());
    }
}

impl Service {
    /// Applies a `merge` definition from a later layer on top of this one.
    pub fn merge(&mut self, other: &Service) {
        set_string(&mut self.summary, &other.summary);
        set_string(&mut self.description, &other.description);
        if other.startup != ServiceStartup::Unknown {
            self.startup = other.startup;
        }
        set_string(&mut self.command, &other.command);
        set_option(&mut self.kill_delay, other.kill_delay);
        set_option(&mut self.user_id, other.user_id);
        set_string(&mut self.user, &other.user);
        set_option(&mut self.group_id, other.group_id);
        set_string(&mut self.group, &other.group);
        set_string(&mut self.working_dir, &other.working_dir);
        self.after.extend(other.after.iter().cloned());
        self.before.extend(other.before.iter().cloned());
        self.requires.extend(other.requires.iter().cloned());
        set_string(&mut self.workload, &other.workload);
        merge_map(&mut self.environment, &other.environment);
        if other.on_success != ServiceAction::Unset {
            self.on_success = other.on_success;
        }
        if other.on_failure != ServiceAction::Unset {
            self.on_failure = other.on_failure;
        }
        merge_map(&mut self.on_check_failure, &other.on_check_failure);
        set_option(&mut self.backoff_delay, other.backoff_delay);
        set_option(&mut self.backoff_factor, other.backoff_factor);
        set_option(&mut self.backoff_limit, other.backoff_limit);
    }
}

impl Check {
    /// Applies a `merge` definition from a later layer on top of this one (sub-objects merge field-wise).
    pub fn merge(&mut self, other: &Check) {
        if other.level != CheckLevel::Unset {
            self.level = other.level;
        }
        if other.startup != CheckStartup::Unknown {
            self.startup = other.startup;
        }
        set_option(&mut self.period, other.period);
        set_option(&mut self.timeout, other.timeout);
        set_option(&mut self.threshold, other.threshold);
        if let Some(http) = &other.http {
            let mine = self.http.get_or_insert_with(HttpCheck::default);
            set_string(&mut mine.url, &http.url);
            merge_map(&mut mine.headers, &http.headers);
        }
        if let Some(tcp) = &other.tcp {
            let mine = self.tcp.get_or_insert_with(TcpCheck::default);
            if tcp.port != 0 {
                mine.port = tcp.port;
            }
            set_string(&mut mine.host, &tcp.host);
        }
        if let Some(exec) = &other.exec {
            let mine = self.exec.get_or_insert_with(ExecCheck::default);
            set_string(&mut mine.command, &exec.command);
            set_string(&mut mine.service_context, &exec.service_context);
            merge_map(&mut mine.environment, &exec.environment);
            set_option(&mut mine.user_id, exec.user_id);
            set_string(&mut mine.user, &exec.user);
            set_option(&mut mine.group_id, exec.group_id);
            set_string(&mut mine.group, &exec.group);
            set_string(&mut mine.working_dir, &exec.working_dir);
        }
    }
}

impl LogTarget {
    /// Applies a `merge` definition from a later layer on top of this one (`services` appends).
    pub fn merge(&mut self, other: &LogTarget) {
        if other.type_ != LogTargetType::Unset {
            self.type_ = other.type_;
        }
        set_string(&mut self.location, &other.location);
        self.services.extend(other.services.iter().cloned());
        merge_map(&mut self.labels, &other.labels);
    }
}

impl Workload {
    /// Applies a `merge` definition from a later layer on top of this one.
    pub fn merge(&mut self, other: &Workload) {
        merge_map(&mut self.environment, &other.environment);
        set_option(&mut self.user_id, other.user_id);
        set_string(&mut self.user, &other.user);
        set_option(&mut self.group_id, other.group_id);
        set_string(&mut self.group, &other.group);
    }
}
