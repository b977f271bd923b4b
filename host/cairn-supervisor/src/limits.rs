//! What one container may make its supervisor hold and run: the part of a tenant's budget
//! that also arrives over Pebble's HTTP API (a workload can POST to its own socket), so it
//! is enforced here, where both the API and the charm's bindings end up.
//!
//! [`ContainerLimits`] bounds the API-added layers (their total YAML, their number), the
//! plan they make (services, checks, the shortest check period, log targets) and the execs running at
//! once. A refused request is a [`SupervisorError::OverBudget`] with Pebble's
//! `cannot <verb>: ...` wording, and is counted in the container's [`LimitHits`] under the
//! limit's name (`layer-bytes`, `layers`, `services`, `checks`, `check-period`,
//! `log-targets`, `execs`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cairn_plan::Layers;

use crate::SupervisorError;

/// The limits of one container; the default is unlimited (a standalone `pebble run`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLimits {
    /// Most bytes of YAML the API-added layers take together (as the state file keeps
    /// them), and so the largest layer one request may add.
    pub layer_bytes: u64,
    /// Most layers (the layers directory's included).
    pub layers: usize,
    /// Most services in the plan.
    pub services: usize,
    /// Most checks in the plan.
    pub checks: usize,
    /// Shortest `period` a check of the plan may have.
    pub check_period_min: Duration,
    /// Most log targets in the plan (each is a task and a connection of the host's).
    pub log_targets: usize,
    /// Most execs running (or waiting for their I/O) at once.
    pub execs: usize,
}

impl Default for ContainerLimits {
    fn default() -> Self {
        ContainerLimits::UNLIMITED
    }
}

impl ContainerLimits {
    /// No limit at all: Pebble's own behaviour.
    pub const UNLIMITED: ContainerLimits = ContainerLimits {
        layer_bytes: u64::MAX,
        layers: usize::MAX,
        services: usize::MAX,
        checks: usize::MAX,
        check_period_min: Duration::ZERO,
        log_targets: usize::MAX,
        execs: usize::MAX,
    };

    /// `add-layer` on layers kept outside a supervisor (a declared container in tests), as
    /// [`Supervisor::add_layer`](crate::Supervisor::add_layer) does it under these limits:
    /// the request's size, the layer's parsing and combining, then the layers after the
    /// add; on error `layers` is unchanged.
    pub fn add_layer_to(
        &self,
        layers: &mut Layers,
        label: &str,
        yaml: &[u8],
        combine: bool,
        inner: bool,
    ) -> Result<(), SupervisorError> {
        self.check_layer_request(yaml.len())?;
        let layer = cairn_plan::parse_added_layer(label, yaml)
            .map_err(|e| SupervisorError::BadRequest(e.to_string()))?;
        *layers = self.after_add(layers, layer, combine, inner)?;
        Ok(())
    }

    /// `layers` with a parsed layer added (combined or appended), checked against these
    /// limits.
    pub(crate) fn after_add(
        &self,
        layers: &Layers,
        layer: cairn_plan::Layer,
        combine: bool,
        inner: bool,
    ) -> Result<Layers, SupervisorError> {
        let mut after = layers.clone();
        after
            .add(layer, combine, inner)
            .map_err(|e| SupervisorError::BadRequest(e.to_string()))?;
        self.check_layers(&after, || crate::state::persisted_bytes(&after))?;
        Ok(after)
    }

    /// Refuses a layer request whose YAML alone is over the layers' budget, before parsing it.
    pub(crate) fn check_layer_request(&self, len: usize) -> Result<(), SupervisorError> {
        if len as u64 > self.layer_bytes {
            return Err(over(
                "layer-bytes",
                format!(
                    "cannot add layer: layer is {}, over the container's budget of {} of layers",
                    bytes(len as u64),
                    bytes(self.layer_bytes)
                ),
            ));
        }
        Ok(())
    }

    /// Refuses layers (as they would be after an add) that break a limit: their number,
    /// the bytes of the API-added ones (`persisted_bytes`), the plan's services, checks and
    /// check periods.
    pub(crate) fn check_layers(
        &self,
        layers: &Layers,
        persisted_bytes: impl FnOnce() -> u64,
    ) -> Result<(), SupervisorError> {
        let n = layers.layers().len();
        if n > self.layers {
            return Err(over(
                "layers",
                format!(
                    "cannot add layer: the container would have {n} layers, over its budget of {}",
                    self.layers
                ),
            ));
        }
        let plan = layers.plan();
        if plan.services.len() > self.services {
            return Err(over(
                "services",
                format!(
                    "cannot add layer: the plan would have {} services, over the container's budget of {}",
                    plan.services.len(),
                    self.services
                ),
            ));
        }
        if plan.checks.len() > self.checks {
            return Err(over(
                "checks",
                format!(
                    "cannot add layer: the plan would have {} checks, over the container's budget of {}",
                    plan.checks.len(),
                    self.checks
                ),
            ));
        }
        if plan.log_targets.len() > self.log_targets {
            return Err(over(
                "log-targets",
                format!(
                    "cannot add layer: the plan would have {} log targets, over the container's budget of {}",
                    plan.log_targets.len(),
                    self.log_targets
                ),
            ));
        }
        if let Some((name, c)) = plan
            .checks
            .iter()
            .find(|(_, c)| c.effective_period() < self.check_period_min)
        {
            return Err(over(
                "check-period",
                format!(
                    "cannot add layer: check {name:?} has period {}, shorter than the container's minimum of {}",
                    cairn_plan::format_duration(c.effective_period()),
                    cairn_plan::format_duration(self.check_period_min)
                ),
            ));
        }
        if self.layer_bytes != u64::MAX {
            let total = persisted_bytes();
            if total > self.layer_bytes {
                return Err(over(
                    "layer-bytes",
                    format!(
                        "cannot add layer: the container's layers would take {}, over its budget of {}",
                        bytes(total),
                        bytes(self.layer_bytes)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses an exec when `running` execs already take the container's budget.
    pub(crate) fn check_exec(&self, running: usize) -> Result<(), SupervisorError> {
        if running >= self.execs {
            return Err(SupervisorError::Busy {
                limit: "execs",
                message: format!(
                    "cannot call exec: {running} commands are running, the container's budget of concurrent execs"
                ),
            });
        }
        Ok(())
    }
}

/// A refusal over the budget named `limit`.
fn over(limit: &'static str, message: String) -> SupervisorError {
    SupervisorError::OverBudget { limit, message }
}

/// Bytes as people read them (`512 B`, `1.5 KiB`, `64 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// How often each limit was hit, by the limit's name: what a tenant's metrics count. One is
/// shared by everything of an application (its units' events and containers).
#[derive(Debug, Default)]
pub struct LimitHits {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl LimitHits {
    /// Counts one hit of `limit`.
    pub fn hit(&self, limit: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        match counts.get_mut(limit) {
            Some(n) => *n += 1,
            None => {
                counts.insert(limit.to_string(), 1);
            }
        }
    }

    /// The counts so far, by limit name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(yaml: &str) -> Layers {
        let mut l = Layers::new(Vec::new()).unwrap();
        l.add_yaml("a", yaml.as_bytes(), false, false).unwrap();
        l
    }

    #[test]
    fn bytes_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1024), "1 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(64 << 20), "64 MiB");
        assert_eq!(bytes(50 << 30), "50 GiB");
    }

    #[test]
    fn unlimited_refuses_nothing() {
        let l = layers(
            "checks:\n  c:\n    override: replace\n    period: 1ms\n    tcp:\n      port: 1\n",
        );
        let u = ContainerLimits::UNLIMITED;
        u.check_layer_request(usize::MAX).unwrap();
        u.check_layers(&l, || u64::MAX).unwrap();
        u.check_exec(100_000).unwrap();
    }

    #[test]
    fn each_plan_limit_refuses_with_its_name() {
        let yaml = "services:\n  a:\n    override: replace\n    command: sleep 1\n  b:\n    override: replace\n    command: sleep 1\nchecks:\n  c:\n    override: replace\n    period: 50ms\n    tcp:\n      port: 1\n";
        let l = layers(yaml);
        let name = |limits: ContainerLimits| match limits.check_layers(&l, || 10) {
            Err(SupervisorError::OverBudget { limit, message }) => {
                assert!(message.starts_with("cannot add layer: "), "{message}");
                limit
            }
            other => panic!("{other:?}"),
        };
        let base = ContainerLimits::UNLIMITED;
        assert_eq!(
            name(ContainerLimits {
                layers: 0,
                ..base.clone()
            }),
            "layers"
        );
        assert_eq!(
            name(ContainerLimits {
                services: 1,
                ..base.clone()
            }),
            "services"
        );
        assert_eq!(
            name(ContainerLimits {
                checks: 0,
                ..base.clone()
            }),
            "checks"
        );
        assert_eq!(
            name(ContainerLimits {
                check_period_min: Duration::from_millis(100),
                ..base.clone()
            }),
            "check-period"
        );
        assert_eq!(
            name(ContainerLimits {
                layer_bytes: 9,
                ..base.clone()
            }),
            "layer-bytes"
        );
        ContainerLimits {
            layers: 1,
            services: 2,
            checks: 1,
            check_period_min: Duration::from_millis(50),
            log_targets: 0,
            layer_bytes: 10,
            execs: 0,
        }
        .check_layers(&l, || 10)
        .unwrap();
    }

    #[test]
    fn a_request_over_the_layer_bytes_is_refused_before_parsing_and_execs_are_busy() {
        let limits = ContainerLimits {
            layer_bytes: 1 << 20,
            execs: 2,
            ..ContainerLimits::UNLIMITED
        };
        limits.check_layer_request(1 << 20).unwrap();
        let e = limits.check_layer_request(50 << 20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot add layer: layer is 50 MiB, over the container's budget of 1 MiB of layers"
        );
        assert_eq!(e.kind(), crate::ErrorKind::OverBudget);
        limits.check_exec(1).unwrap();
        let e = limits.check_exec(2).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Busy);
        assert_eq!(e.limit(), Some("execs"));
    }

    #[test]
    fn hits_are_counted_by_name() {
        let h = LimitHits::default();
        h.hit("execs");
        h.hit("execs");
        h.hit("layers");
        assert_eq!(
            h.snapshot(),
            BTreeMap::from([("execs".into(), 2), ("layers".into(), 1)])
        );
    }
}
