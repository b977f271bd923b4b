//! Parsing one layer: YAML decoding with Pebble's section rules, then Pebble's per-layer
//! validation (`Layer.Validate`), in Pebble's order so the first error reported is the same.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::command::{split_bracketed, split_command};
use crate::duration::parse_duration;
use crate::error::{PlanError, format_err};
use crate::quote::quote;
use crate::types::*;
use crate::yaml::decode::{Decoder, Fail};
use crate::yaml::parse::{Doc, Kind, parse};
use crate::yaml::{resolve, section_lines};

const SERVICE_FIELDS: &[&str] = &[
    "summary",
    "description",
    "startup",
    "override",
    "command",
    "after",
    "before",
    "requires",
    "workload",
    "environment",
    "user-id",
    "user",
    "group-id",
    "group",
    "working-dir",
    "on-success",
    "on-failure",
    "on-check-failure",
    "backoff-delay",
    "backoff-factor",
    "backoff-limit",
    "kill-delay",
];
const CHECK_FIELDS: &[&str] = &[
    "override",
    "level",
    "startup",
    "period",
    "timeout",
    "threshold",
    "http",
    "tcp",
    "exec",
];
const HTTP_FIELDS: &[&str] = &["url", "headers"];
const TCP_FIELDS: &[&str] = &["port", "host"];
const EXEC_FIELDS: &[&str] = &[
    "command",
    "service-context",
    "environment",
    "user-id",
    "user",
    "group-id",
    "group",
    "working-dir",
];
const LOG_TARGET_FIELDS: &[&str] = &["type", "location", "services", "override", "labels"];
const WORKLOAD_FIELDS: &[&str] = &[
    "override",
    "environment",
    "user-id",
    "user",
    "group-id",
    "group",
];

/// A service as decoded, with its enumerated fields still as written.
#[derive(Default)]
struct RawService {
    service: Service,
    startup: String,
    override_: String,
    on_success: String,
    on_failure: String,
    on_check_failure: BTreeMap<String, String>,
}

#[derive(Default)]
struct RawCheck {
    check: Check,
    override_: String,
    level: String,
    startup: String,
}

#[derive(Default)]
struct RawLogTarget {
    target: LogTarget,
    type_: String,
    override_: String,
}

#[derive(Default)]
struct RawWorkload {
    workload: Workload,
    override_: String,
}

/// A layer as decoded; `None` entries were written as null.
#[derive(Default)]
struct RawLayer {
    summary: String,
    description: String,
    services: BTreeMap<String, Option<RawService>>,
    checks: BTreeMap<String, Option<RawCheck>>,
    log_targets: BTreeMap<String, Option<RawLogTarget>>,
    workloads: BTreeMap<String, Option<RawWorkload>>,
    pairing_mode: String,
}

/// Parses a layer given to add-layer (`POST /v1/layers`, a charm's `add-layer`) with the
/// messages Pebble's API gives: an empty label is [`PlanError::LabelRequired`], and a
/// layer that does not parse is [`PlanError::LayerYaml`] (`cannot parse layer YAML: ...`),
/// except for `override` problems ([`PlanError::Override`]), which Pebble only finds when
/// combining and so reports without the prefix.
pub fn parse_added_layer(label: &str, data: &[u8]) -> Result<Layer, PlanError> {
    if label.is_empty() {
        return Err(PlanError::LabelRequired);
    }
    parse_layer(0, label, data).map_err(|e| match e {
        PlanError::Override(_) => e,
        other => PlanError::LayerYaml(Box::new(other)),
    })
}

/// Parses and validates one layer's YAML, as Pebble's `ParseLayer` does.
pub fn parse_layer(order: u32, label: &str, data: &[u8]) -> Result<Layer, PlanError> {
    let parse_failed =
        |message: String| format_err(format!("cannot parse layer {}: {message}", quote(label)));
    let doc = parse(data).map_err(parse_failed)?;
    let mut sections = Vec::new();
    if let Some(root) = doc.root {
        let mut decoder = Decoder::new(&doc);
        let entries = decoder
            .entries(root, "map[string]yaml.Node")
            .map_err(parse_failed)?;
        decoder.finish().map_err(parse_failed)?;
        sections = entries.unwrap_or_default();
    }

    let mut raw = RawLayer::default();
    for (field, _, node) in sections {
        // Line numbers only matter to an error message, and finding them re-renders the
        // section: a section that decodes is decoded once, without them; one that fails is
        // decoded again with them, for Pebble's message.
        let decoded = decode_section(&doc, label, &field, node, &mut raw, Vec::new());
        if decoded.is_err() {
            let lines = section_lines(&doc, node);
            decode_section(&doc, label, &field, node, &mut raw, lines)?;
        }
        decoded?;
    }

    validate_layer(label, &raw)?;
    Ok(convert(order, label, raw))
}

/// Decodes one top-level section of a layer into `raw`, reporting errors at `lines` (the
/// section's own rendering; empty: the nodes' lines in the document).
fn decode_section(
    doc: &Doc,
    label: &str,
    field: &str,
    node: usize,
    raw: &mut RawLayer,
    lines: Vec<usize>,
) -> Result<(), PlanError> {
    let mut decoder = Decoder::new(doc).with_lines(lines);
    let section_failed = |message: Fail| {
        format_err(format!(
            "cannot parse layer {} section {}: {message}",
            quote(label),
            quote(field)
        ))
    };
    match field {
        "summary" | "description" => {
            let value = decoder.string(node, "string").map_err(section_failed)?;
            decoder.finish().map_err(section_failed)?;
            let target = if field == "summary" {
                &mut raw.summary
            } else {
                &mut raw.description
            };
            if let Some(value) = value {
                *target = value;
            }
        }
        "services" => {
            raw.services = decode_services(&mut decoder, node).map_err(section_failed)?;
            decoder.finish().map_err(section_failed)?;
        }
        "checks" => {
            raw.checks = decode_checks(&mut decoder, node).map_err(section_failed)?;
            decoder.finish().map_err(section_failed)?;
        }
        "log-targets" => {
            raw.log_targets = decode_log_targets(&mut decoder, node).map_err(section_failed)?;
            decoder.finish().map_err(section_failed)?;
        }
        "workloads" => {
            let failed = |message: Fail| {
                format_err(format!(
                    r#"cannot parse the "workloads" section: {message}"#
                ))
            };
            raw.workloads = decode_workloads(&mut decoder, node).map_err(failed)?;
            decoder.finish().map_err(failed)?;
        }
        "pairing" => {
            // Pebble only decodes a pairing section that has content.
            let n = &doc.nodes[node];
            if matches!(n.kind, Kind::Mapping | Kind::Sequence) && !n.children.is_empty() {
                let failed = |message: Fail| {
                    format_err(format!("cannot parse the pairing section: {message}"))
                };
                let fields = decoder
                    .fields(node, "pairingstate.pairingConfig", &["mode"])
                    .map_err(failed)?;
                for (_, value) in fields.unwrap_or_default() {
                    if let Some(mode) =
                        decoder.string(value, "pairingstate.Mode").map_err(failed)?
                    {
                        raw.pairing_mode = mode;
                    }
                }
                decoder.finish().map_err(failed)?;
            }
        }
        _ => {
            return Err(format_err(format!(
                "cannot parse layer {}: unknown section {}",
                quote(label),
                quote(field)
            )));
        }
    }
    Ok(())
}

fn decode_duration(d: &mut Decoder, id: usize) -> Result<Option<Duration>, Fail> {
    match d.custom_scalar(id, "duration must be a YAML string")? {
        None => Ok(None),
        Some(text) => parse_duration(&text)
            .map(Some)
            .map_err(|_| format!("invalid duration {}", quote(&text))),
    }
}

fn decode_float(d: &mut Decoder, id: usize) -> Result<Option<f64>, Fail> {
    match d.custom_scalar(id, "value must be a YAML number")? {
        None => Ok(None),
        Some(text) => resolve::go_parse_float(&text)
            .map(Some)
            .ok_or_else(|| format!("invalid floating-point number {}", quote(&text))),
    }
}

fn set_string(
    d: &mut Decoder,
    id: usize,
    type_name: &str,
    target: &mut String,
) -> Result<(), Fail> {
    if let Some(value) = d.string(id, type_name)? {
        *target = value;
    }
    Ok(())
}

fn set_list(d: &mut Decoder, id: usize, target: &mut Vec<String>) -> Result<(), Fail> {
    if let Some(value) = d.string_list(id)? {
        *target = value;
    }
    Ok(())
}

fn set_map(
    d: &mut Decoder,
    id: usize,
    type_name: &str,
    target: &mut BTreeMap<String, String>,
) -> Result<(), Fail> {
    if let Some(value) = d.string_map(id, type_name)? {
        *target = value;
    }
    Ok(())
}

/// Decodes an optional integer field (`*int` in Pebble): null clears it.
fn set_id(d: &mut Decoder, id: usize, target: &mut Option<u32>) -> Result<(), Fail> {
    if d.doc.short_tag(id) == "!!null" {
        *target = None;
    } else if let Some(value) = d.uint32(id, "int")? {
        *target = Some(value);
    }
    Ok(())
}

/// Decodes a `map[string]*T` section: null entries are kept as `None`.
fn decode_entries<T>(
    d: &mut Decoder,
    id: usize,
    map_type: &str,
    mut decode: impl FnMut(&mut Decoder, usize) -> Result<Option<T>, Fail>,
) -> Result<BTreeMap<String, Option<T>>, Fail> {
    let mut out = BTreeMap::new();
    for (name, _, value) in d.entries(id, map_type)?.unwrap_or_default() {
        if d.doc.short_tag(value) == "!!null" {
            out.insert(name, None);
        } else if let Some(item) = decode(d, value)? {
            out.insert(name, Some(item));
        }
    }
    Ok(out)
}

fn decode_services(
    d: &mut Decoder,
    id: usize,
) -> Result<BTreeMap<String, Option<RawService>>, Fail> {
    decode_entries(d, id, "map[string]*plan.Service", |d, id| {
        let Some(fields) = d.fields(id, "plan.Service", SERVICE_FIELDS)? else {
            return Ok(None);
        };
        let mut raw = RawService::default();
        let s = &mut raw.service;
        for (field, v) in fields {
            match field.as_str() {
                "summary" => set_string(d, v, "string", &mut s.summary)?,
                "description" => set_string(d, v, "string", &mut s.description)?,
                "startup" => set_string(d, v, "plan.ServiceStartup", &mut raw.startup)?,
                "override" => set_string(d, v, "plan.Override", &mut raw.override_)?,
                "command" => set_string(d, v, "string", &mut s.command)?,
                "after" => set_list(d, v, &mut s.after)?,
                "before" => set_list(d, v, &mut s.before)?,
                "requires" => set_list(d, v, &mut s.requires)?,
                "workload" => set_string(d, v, "string", &mut s.workload)?,
                "environment" => set_map(d, v, "map[string]string", &mut s.environment)?,
                "user-id" => set_id(d, v, &mut s.user_id)?,
                "user" => set_string(d, v, "string", &mut s.user)?,
                "group-id" => set_id(d, v, &mut s.group_id)?,
                "group" => set_string(d, v, "string", &mut s.group)?,
                "working-dir" => set_string(d, v, "string", &mut s.working_dir)?,
                "on-success" => set_string(d, v, "plan.ServiceAction", &mut raw.on_success)?,
                "on-failure" => set_string(d, v, "plan.ServiceAction", &mut raw.on_failure)?,
                "on-check-failure" => set_map(
                    d,
                    v,
                    "map[string]plan.ServiceAction",
                    &mut raw.on_check_failure,
                )?,
                "backoff-delay" => s.backoff_delay = decode_duration(d, v)?.or(s.backoff_delay),
                "backoff-factor" => s.backoff_factor = decode_float(d, v)?.or(s.backoff_factor),
                "backoff-limit" => s.backoff_limit = decode_duration(d, v)?.or(s.backoff_limit),
                "kill-delay" => s.kill_delay = decode_duration(d, v)?.or(s.kill_delay),
                _ => {}
            }
        }
        Ok(Some(raw))
    })
}

fn decode_checks(d: &mut Decoder, id: usize) -> Result<BTreeMap<String, Option<RawCheck>>, Fail> {
    decode_entries(d, id, "map[string]*plan.Check", |d, id| {
        let Some(fields) = d.fields(id, "plan.Check", CHECK_FIELDS)? else {
            return Ok(None);
        };
        let mut raw = RawCheck::default();
        for (field, v) in fields {
            let c = &mut raw.check;
            match field.as_str() {
                "override" => set_string(d, v, "plan.Override", &mut raw.override_)?,
                "level" => set_string(d, v, "plan.CheckLevel", &mut raw.level)?,
                "startup" => set_string(d, v, "plan.CheckStartup", &mut raw.startup)?,
                "period" => c.period = decode_duration(d, v)?.or(c.period),
                "timeout" => c.timeout = decode_duration(d, v)?.or(c.timeout),
                "threshold" => {
                    if let Some(t) = d.uint32(v, "int")? {
                        // 0 is Pebble's "unset".
                        c.threshold = (t != 0).then_some(t);
                    }
                }
                "http" => c.http = decode_sub(d, v, c.http.take(), decode_http)?,
                "tcp" => c.tcp = decode_sub(d, v, c.tcp.take(), decode_tcp)?,
                "exec" => c.exec = decode_sub(d, v, c.exec.take(), decode_exec)?,
                _ => {}
            }
        }
        Ok(Some(raw))
    })
}

/// Decodes an optional sub-object (`*HTTPCheck` etc.): null clears it, a type error keeps it.
fn decode_sub<T: Default>(
    d: &mut Decoder,
    id: usize,
    current: Option<T>,
    decode: fn(&mut Decoder, usize, &mut T) -> Result<(), Fail>,
) -> Result<Option<T>, Fail> {
    if d.doc.short_tag(id) == "!!null" {
        return Ok(None);
    }
    let mut value = current.unwrap_or_default();
    decode(d, id, &mut value)?;
    Ok(Some(value))
}

fn decode_http(d: &mut Decoder, id: usize, h: &mut HttpCheck) -> Result<(), Fail> {
    let Some(fields) = d.fields(id, "plan.HTTPCheck", HTTP_FIELDS)? else {
        return Ok(());
    };
    for (field, v) in fields {
        match field.as_str() {
            "url" => set_string(d, v, "string", &mut h.url)?,
            "headers" => set_map(d, v, "map[string]string", &mut h.headers)?,
            _ => {}
        }
    }
    Ok(())
}

fn decode_tcp(d: &mut Decoder, id: usize, t: &mut TcpCheck) -> Result<(), Fail> {
    let Some(fields) = d.fields(id, "plan.TCPCheck", TCP_FIELDS)? else {
        return Ok(());
    };
    for (field, v) in fields {
        match field.as_str() {
            "port" => {
                if let Some(port) = d.uint32(v, "int")? {
                    t.port = port;
                }
            }
            "host" => set_string(d, v, "string", &mut t.host)?,
            _ => {}
        }
    }
    Ok(())
}

fn decode_exec(d: &mut Decoder, id: usize, e: &mut ExecCheck) -> Result<(), Fail> {
    let Some(fields) = d.fields(id, "plan.ExecCheck", EXEC_FIELDS)? else {
        return Ok(());
    };
    for (field, v) in fields {
        match field.as_str() {
            "command" => set_string(d, v, "string", &mut e.command)?,
            "service-context" => set_string(d, v, "string", &mut e.service_context)?,
            "environment" => set_map(d, v, "map[string]string", &mut e.environment)?,
            "user-id" => set_id(d, v, &mut e.user_id)?,
            "user" => set_string(d, v, "string", &mut e.user)?,
            "group-id" => set_id(d, v, &mut e.group_id)?,
            "group" => set_string(d, v, "string", &mut e.group)?,
            "working-dir" => set_string(d, v, "string", &mut e.working_dir)?,
            _ => {}
        }
    }
    Ok(())
}

fn decode_log_targets(
    d: &mut Decoder,
    id: usize,
) -> Result<BTreeMap<String, Option<RawLogTarget>>, Fail> {
    decode_entries(d, id, "map[string]*plan.LogTarget", |d, id| {
        let Some(fields) = d.fields(id, "plan.LogTarget", LOG_TARGET_FIELDS)? else {
            return Ok(None);
        };
        let mut raw = RawLogTarget::default();
        for (field, v) in fields {
            let t = &mut raw.target;
            match field.as_str() {
                "type" => set_string(d, v, "plan.LogTargetType", &mut raw.type_)?,
                "location" => set_string(d, v, "string", &mut t.location)?,
                "services" => set_list(d, v, &mut t.services)?,
                "override" => set_string(d, v, "plan.Override", &mut raw.override_)?,
                "labels" => set_map(d, v, "map[string]string", &mut t.labels)?,
                _ => {}
            }
        }
        Ok(Some(raw))
    })
}

fn decode_workloads(
    d: &mut Decoder,
    id: usize,
) -> Result<BTreeMap<String, Option<RawWorkload>>, Fail> {
    // The section is a struct whose only content is an inline map of workloads.
    if d.doc.short_tag(id) == "!!null" {
        return Ok(BTreeMap::new());
    }
    decode_entries(d, id, "workloads.WorkloadsSection", |d, id| {
        let Some(fields) = d.fields(id, "workloads.Workload", WORKLOAD_FIELDS)? else {
            return Ok(None);
        };
        let mut raw = RawWorkload::default();
        for (field, v) in fields {
            let w = &mut raw.workload;
            match field.as_str() {
                "override" => set_string(d, v, "plan.Override", &mut raw.override_)?,
                "environment" => set_map(d, v, "map[string]string", &mut w.environment)?,
                "user-id" => set_id(d, v, &mut w.user_id)?,
                "user" => set_string(d, v, "string", &mut w.user)?,
                "group-id" => set_id(d, v, &mut w.group_id)?,
                "group" => set_string(d, v, "string", &mut w.group)?,
                _ => {}
            }
        }
        Ok(Some(raw))
    })
}

fn valid_action(action: &str, extra: ServiceAction) -> bool {
    match ServiceAction::from_name(action) {
        Some(
            ServiceAction::Unset
            | ServiceAction::Restart
            | ServiceAction::Shutdown
            | ServiceAction::Ignore,
        ) => true,
        Some(other) => other == extra,
        None => false,
    }
}

/// Pebble's `Layer.Validate`, then the checks Pebble makes only when combining (override
/// values) and the one Cairn adds because it cannot keep unknown values (service startup).
fn validate_layer(label: &str, raw: &RawLayer) -> Result<(), PlanError> {
    if label.starts_with("pebble-") {
        return Err(format_err(r#"cannot use reserved label prefix "pebble-""#));
    }
    for (name, service) in &raw.services {
        let q = quote(name);
        if name.is_empty() {
            return Err(format_err("cannot use empty string as service name"));
        }
        if name == "pebble" {
            return Err(format_err(format!("cannot use reserved service name {q}")));
        }
        if name.starts_with('-') {
            return Err(format_err(format!(
                r#"cannot use service name {q}: starting with "-" not allowed"#
            )));
        }
        let Some(service) = service else {
            return Err(format_err(format!(
                "service object cannot be null for service {q}"
            )));
        };
        if let Err(message) = split_bracketed(&service.service.command) {
            return Err(format_err(format!(
                "plan service {q} command invalid: cannot parse service {q} command: {message}"
            )));
        }
        if !valid_action(&service.on_success, ServiceAction::FailureShutdown) {
            return Err(format_err(format!(
                "plan service {q} on-success action {} invalid",
                quote(&service.on_success)
            )));
        }
        if !valid_action(&service.on_failure, ServiceAction::SuccessShutdown) {
            return Err(format_err(format!(
                "plan service {q} on-failure action {} invalid",
                quote(&service.on_failure)
            )));
        }
        for action in service.on_check_failure.values() {
            if !valid_action(action, ServiceAction::SuccessShutdown) {
                return Err(format_err(format!(
                    "plan service {q} on-check-failure action {} invalid",
                    quote(action)
                )));
            }
        }
        if let Some(factor) = service.service.backoff_factor
            && factor < 1.0
        {
            return Err(format_err(format!(
                "plan service {q} backoff-factor must be 1.0 or greater, not {}",
                format_float_g(factor)
            )));
        }
    }
    for (name, check) in &raw.checks {
        let q = quote(name);
        if name.is_empty() {
            return Err(format_err("cannot use empty string as check name"));
        }
        let Some(check) = check else {
            return Err(format_err(format!(
                "check object cannot be null for check {q}"
            )));
        };
        if CheckLevel::from_name(&check.level).is_none() {
            return Err(format_err(format!(
                r#"plan check {q} level must be "alive" or "ready""#
            )));
        }
        if CheckStartup::from_name(&check.startup).is_none() {
            return Err(format_err(format!(
                r#"plan check {q} startup must be "enabled" or "disabled""#
            )));
        }
        if check.check.period == Some(Duration::ZERO) {
            return Err(format_err(format!(
                "plan check {q} period must not be zero"
            )));
        }
        if check.check.timeout == Some(Duration::ZERO) {
            return Err(format_err(format!(
                "plan check {q} timeout must not be zero"
            )));
        }
        if let Some(exec) = &check.check.exec
            && let Err(message) = split_command(&exec.command)
        {
            return Err(format_err(format!(
                "plan check {q} command invalid: {message}"
            )));
        }
    }
    for (name, target) in &raw.log_targets {
        let q = quote(name);
        let Some(target) = target else {
            return Err(format_err(format!(
                "log target object cannot be null for log target {q}"
            )));
        };
        for label_name in target.target.labels.keys() {
            if label_name.starts_with("pebble_") {
                return Err(format_err(format!(
                    r#"log target {q}: label {} uses reserved prefix "pebble_""#,
                    quote(label_name)
                )));
            }
        }
        if LogTargetType::from_name(&target.type_).is_none() {
            return Err(format_err(format!(
                r#"log target {q} has unsupported type {}, must be "loki", "opentelemetry" or "syslog""#,
                quote(&target.type_)
            )));
        }
    }
    for (name, workload) in &raw.workloads {
        let q = quote(name);
        if workload.is_none() {
            return Err(format_err(format!(
                "workload {q}: cannot have a null value"
            )));
        }
        if name.is_empty() {
            return Err(format_err(format!(
                "workload {q}: cannot have an empty name"
            )));
        }
    }
    if PairingMode::from_name(&raw.pairing_mode).is_none() {
        return Err(format_err(format!(
            r#"invalid pairing mode {}: should be "disabled", "single" or "multiple""#,
            quote(&raw.pairing_mode)
        )));
    }

    // Pebble accepts these when parsing and rejects them when combining layers.
    for (name, workload) in &raw.workloads {
        if let Some(w) = workload
            && Override::from_name(&w.override_).is_none()
        {
            return Err(format_err(format!(
                r#"workload {}: has an invalid "override" policy: {}"#,
                quote(name),
                quote(&w.override_)
            )));
        }
    }
    let bad_override = |o: &str| Override::from_name(o).is_none();
    for (name, service) in &raw.services {
        if service.as_ref().is_some_and(|s| bad_override(&s.override_)) {
            return Err(crate::combine::invalid_override(label, "service", name));
        }
    }
    for (name, check) in &raw.checks {
        if check.as_ref().is_some_and(|c| bad_override(&c.override_)) {
            return Err(crate::combine::invalid_override(label, "check", name));
        }
    }
    for (name, target) in &raw.log_targets {
        if target.as_ref().is_some_and(|t| bad_override(&t.override_)) {
            return Err(crate::combine::invalid_override(label, "log target", name));
        }
    }
    // Pebble keeps any service startup text (and treats it as disabled); Cairn's type cannot.
    for (name, service) in &raw.services {
        if let Some(s) = service
            && ServiceStartup::from_name(&s.startup).is_none()
        {
            return Err(format_err(format!(
                r#"plan service {} startup must be "enabled" or "disabled""#,
                quote(name)
            )));
        }
    }
    Ok(())
}

/// Formats a float as Go's `%g` and `strconv.FormatFloat(v, 'g', -1, 64)` do: the shortest
/// digits that read back the same, in exponent form below 1e-4 and from 1e6 on.
pub(crate) fn format_float_g(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..6).contains(&exponent) {
        format!("{value}")
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// Builds the typed layer from a validated raw layer.
fn convert(order: u32, label: &str, raw: RawLayer) -> Layer {
    let mut layer = Layer {
        order,
        label: label.to_string(),
        summary: raw.summary,
        description: raw.description,
        pairing: Pairing {
            mode: PairingMode::from_name(&raw.pairing_mode).unwrap_or_default(),
        },
        ..Layer::default()
    };
    for (name, service) in raw.services.into_iter().filter_map(|(n, s)| Some((n, s?))) {
        let mut s = service.service;
        s.name = name.clone();
        s.startup = ServiceStartup::from_name(&service.startup).unwrap_or_default();
        s.override_ = Override::from_name(&service.override_).unwrap_or_default();
        s.on_success = ServiceAction::from_name(&service.on_success).unwrap_or_default();
        s.on_failure = ServiceAction::from_name(&service.on_failure).unwrap_or_default();
        s.on_check_failure = service
            .on_check_failure
            .into_iter()
            .map(|(k, v)| (k, ServiceAction::from_name(&v).unwrap_or_default()))
            .collect();
        layer.services.insert(name, Arc::new(s));
    }
    for (name, check) in raw.checks.into_iter().filter_map(|(n, c)| Some((n, c?))) {
        let mut c = check.check;
        c.name = name.clone();
        c.override_ = Override::from_name(&check.override_).unwrap_or_default();
        c.level = CheckLevel::from_name(&check.level).unwrap_or_default();
        c.startup = CheckStartup::from_name(&check.startup).unwrap_or_default();
        layer.checks.insert(name, Arc::new(c));
    }
    for (name, target) in raw
        .log_targets
        .into_iter()
        .filter_map(|(n, t)| Some((n, t?)))
    {
        let mut t = target.target;
        t.name = name.clone();
        t.type_ = LogTargetType::from_name(&target.type_).unwrap_or_default();
        t.override_ = Override::from_name(&target.override_).unwrap_or_default();
        layer.log_targets.insert(name, t);
    }
    for (name, workload) in raw.workloads.into_iter().filter_map(|(n, w)| Some((n, w?))) {
        let mut w = workload.workload;
        w.name = name.clone();
        w.override_ = Override::from_name(&workload.override_).unwrap_or_default();
        layer.workloads.insert(name, w);
    }
    layer
}
