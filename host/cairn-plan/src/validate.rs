//! Validation of the combined plan (Pebble's `Plan.Validate` plus the workloads
//! extension's plan checks). Per-layer validation happens while parsing (`layer.rs`).

use crate::combine::combine_layers;
use crate::error::{PlanError, format_err};
use crate::quote::quote;
use crate::types::{Layer, LogTargetType, Plan};

impl Plan {
    /// Combines `layers` (lowest order first) and validates the result as Pebble does
    /// when loading layers or adding one.
    pub fn from_layers(layers: &[Layer]) -> Result<Plan, PlanError> {
        let combined = combine_layers(layers)?;
        let plan = Plan {
            services: combined.services,
            checks: combined.checks,
            log_targets: combined.log_targets,
            workloads: combined.workloads,
            pairing: combined.pairing,
        };
        plan.validate()?;
        Ok(plan)
    }

    /// Checks the rules that only hold for the combined plan: commands, check types,
    /// log target types, locations and services, ordering cycles and workload references.
    pub fn validate(&self) -> Result<(), PlanError> {
        for (name, service) in &self.services {
            if service.command.is_empty() {
                return Err(format_err(format!(
                    r#"plan must define "command" for service {}"#,
                    quote(name)
                )));
            }
        }

        for (name, check) in &self.checks {
            let mut types = 0;
            if let Some(http) = &check.http {
                if http.url.is_empty() {
                    return Err(format_err(format!(
                        r#"plan must set "url" for http check {}"#,
                        quote(name)
                    )));
                }
                types += 1;
            }
            if let Some(tcp) = &check.tcp {
                if tcp.port == 0 {
                    return Err(format_err(format!(
                        r#"plan must set "port" for tcp check {}"#,
                        quote(name)
                    )));
                }
                types += 1;
            }
            if let Some(exec) = &check.exec {
                if exec.command.is_empty() {
                    return Err(format_err(format!(
                        r#"plan must set "command" for exec check {}"#,
                        quote(name)
                    )));
                }
                if !exec.service_context.is_empty()
                    && !self.services.contains_key(&exec.service_context)
                {
                    return Err(format_err(format!(
                        "plan check {} service context specifies non-existent service {}",
                        quote(name),
                        quote(&exec.service_context)
                    )));
                }
                types += 1;
            }
            if types != 1 {
                return Err(format_err(format!(
                    r#"plan must specify one of "http", "tcp", or "exec" for check {}"#,
                    quote(name)
                )));
            }
        }

        for (name, target) in &self.log_targets {
            if target.type_ == LogTargetType::Unset {
                return Err(format_err(format!(
                    r#"plan must define "type" ("loki", "opentelemetry" or "syslog") for log target {}"#,
                    quote(name)
                )));
            }
            for service in &target.services {
                let service = service.strip_prefix('-').unwrap_or(service);
                if service != "all" && !self.services.contains_key(service) {
                    return Err(format_err(format!(
                        "log target {} specifies unknown service {}",
                        quote(&target.name),
                        quote(service)
                    )));
                }
            }
            if target.location.is_empty() {
                return Err(format_err(format!(
                    r#"plan must define "location" for log target {}"#,
                    quote(name)
                )));
            }
        }

        self.check_cycles()?;

        for (name, service) in &self.services {
            if service.workload.is_empty() {
                continue;
            }
            if !self.workloads.contains_key(&service.workload) {
                return Err(format_err(format!(
                    "workload {}: not defined for service {}",
                    quote(&service.workload),
                    quote(name)
                )));
            }
            if service.user_id.is_some() || !service.user.is_empty() {
                return Err(format_err(format!(
                    "plan service {} cannot have user information and a workload at the same time",
                    quote(name)
                )));
            }
            if service.group_id.is_some() || !service.group.is_empty() {
                return Err(format_err(format!(
                    "plan service {} cannot have group information and a workload at the same time",
                    quote(name)
                )));
            }
        }
        Ok(())
    }
}
