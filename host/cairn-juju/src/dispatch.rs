//! One Juju dispatch, from the environment to the exit code.
//!
//! As ops' `_Manager`: deferred events are re-emitted first (oldest first), then the
//! hook's event; an event the WIT world has no variant for only re-emits the deferred
//! ones. Stored state and the deferred list are committed (one atomic write) only if every
//! handler succeeded; the unit's and application's status are written back then, once
//! each, if a handler set them; an action's results with one `action-set`. A failing
//! handler leaves nothing changed and exits 1, as an uncaught exception ends an ops charm
//! (only its `action-log` messages, sent as they were logged, have reached Juju).
//!
//! Start-up is kept lean: no multi-threaded runtime (one current-thread tokio runtime),
//! no logging framework, the component deserialized from the precompiled cache in
//! `<charm dir>/.cairn/` (stat-stamped, so not even hashed), and hook tools spawned only
//! when the charm needs what they answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cairn_charm::CharmMeta;
use cairn_runtime::types::{CheckInfo, LogLine, Notice, OwnBag};
use cairn_runtime::{
    ActionReport, Budget, ContainerBackend, Event, Failure, LazyFacts, Outcome, Runtime,
    RuntimeConfig, UnitContext,
};

use crate::JujuError;
use crate::env::{Hook, JujuContext};
use crate::state::UnitState;
use crate::tools::{self, HookTools, LogSink};

/// Where the precompiled component is cached, in the charm directory.
pub const CACHE_DIR: &str = ".cairn";

/// What the dispatcher needs besides Juju's environment.
#[derive(Clone, Debug)]
pub struct Options {
    /// The charm's component (relative paths are taken from the charm directory).
    pub component: PathBuf,
    /// The root under which the containers' Pebble sockets are
    /// (`<root>/charm/containers/<name>/pebble.socket`; `/` under Juju).
    pub root: PathBuf,
    /// When set (the binary's `CAIRN_DISPATCH_TIMES`), the time of each phase since this
    /// instant is printed on stderr, to see where a dispatch spends its time.
    pub timed_from: Option<Instant>,
}

/// Prints phase times on stderr when asked ([`Options::timed_from`]).
struct Phases(Option<Instant>);

impl Phases {
    /// Notes that `phase` has ended.
    fn mark(&self, phase: &str) {
        if let Some(start) = self.0 {
            eprintln!(
                "cairn-dispatch: {:>8.3} ms {phase}",
                start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}

/// What became of a dispatch.
#[derive(Debug, PartialEq)]
pub struct Report {
    /// The process's exit code: 0, or 1 when a handler failed.
    pub exit_code: u8,
    /// Why, when a handler failed.
    pub error: Option<String>,
}

/// The socket of a container's Pebble, as Juju mounts it in the charm container.
pub fn pebble_socket(root: &Path, container: &str) -> PathBuf {
    root.join("charm/containers")
        .join(container)
        .join("pebble.socket")
}

/// The charm's containers as the runtime serves them: each by the runtime's Pebble client
/// backend on [`pebble_socket`]`(root, name)`, connected at the charm's first call (a
/// container whose Pebble is not up answers `can-connect` false and calls with a
/// `connection` error, as ops' `ConnectionError`).
fn containers(meta: &CharmMeta, root: &Path) -> BTreeMap<String, ContainerBackend> {
    meta.containers
        .keys()
        .map(|name| {
            (
                name.clone(),
                ContainerBackend::pebble_socket(pebble_socket(root, name)),
            )
        })
        .collect()
}

/// Reads the charm's metadata: `charmcraft.yaml` when the charm directory has one (as
/// `cairn pack` lays it out), else `metadata.yaml` with `config.yaml` and `actions.yaml`
/// (charmcraft's generated files).
pub fn read_meta(charm_dir: &Path) -> Result<CharmMeta, JujuError> {
    let read = |name: &str| -> Result<Option<String>, JujuError> {
        let p = charm_dir.join(name);
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JujuError::Charm(format!(
                "cannot read {}: {e}",
                p.display()
            ))),
        }
    };
    let bad = |e: cairn_charm::CharmError| JujuError::Charm(format!("cannot read charm: {e}"));
    if let Some(text) = read("charmcraft.yaml")? {
        return CharmMeta::parse(&text).map_err(bad);
    }
    let Some(metadata) = read("metadata.yaml")? else {
        return Err(JujuError::Charm(format!(
            "cannot read charm: neither charmcraft.yaml nor metadata.yaml in {}",
            charm_dir.display()
        )));
    };
    let mut doc: serde_yaml::Mapping = serde_yaml::from_str(&metadata)
        .map_err(|e| JujuError::Charm(format!("cannot parse metadata.yaml: {e}")))?;
    for (file, key) in [("config.yaml", "config"), ("actions.yaml", "actions")] {
        if let Some(text) = read(file)? {
            let v: serde_yaml::Value = serde_yaml::from_str(&text)
                .map_err(|e| JujuError::Charm(format!("cannot parse {file}: {e}")))?;
            doc.insert(key.into(), v);
        }
    }
    let text = serde_yaml::to_string(&doc).unwrap_or_default();
    CharmMeta::parse(&text).map_err(bad)
}

/// Runs one dispatch for the process environment.
pub fn run_from_env(options: &Options) -> Result<Report, JujuError> {
    let ctx = JujuContext::from_vars(|k| std::env::var(k).ok())?;
    run(&ctx, options)
}

/// Runs one dispatch.
pub fn run(ctx: &JujuContext, options: &Options) -> Result<Report, JujuError> {
    let charm_dir = match &ctx.charm_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir()
            .map_err(|e| JujuError::Charm(format!("cannot find the charm directory: {e}")))?,
    };
    let phases = Phases(options.timed_from);
    phases.mark("environment read");
    let hook = ctx.hook()?;
    let mut log = LogSink::default();
    if let Hook::Restricted(_) = hook {
        return Ok(Report {
            exit_code: 0,
            error: None,
        });
    }
    let state = UnitState::load(&charm_dir)?;
    if let Hook::Unhandled(name) = &hook
        && state.deferred.is_empty()
    {
        log.log("DEBUG", &format!("Event {name} not handled by the charm."));
        log.finish()?;
        return Ok(Report {
            exit_code: 0,
            error: None,
        });
    }
    let meta = read_meta(&charm_dir)?;
    phases.mark("state and metadata read");
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(charm_dir.join(CACHE_DIR)),
        max_instances: 1,
        pooling: false,
        ..RuntimeConfig::default()
    })?;
    phases.mark("engine and linker built");
    let component = charm_dir.join(&options.component);
    let charm = runtime.load_file(&component)?;
    phases.mark("component loaded");
    let budget = Budget::default();
    let deferred_cap = budget.deferred;
    let unit = UnitContext {
        unit_name: ctx.unit_name.clone(),
        app_name: ctx.app_name().to_string(),
        model_name: ctx.model_name.clone(),
        containers: containers(&meta, &options.root),
        config: BTreeMap::new(),
        unit_status: Default::default(),
        app_status: Default::default(),
        leader: false,
        stored: state.stored.clone(),
        relations: Default::default(),
        action: None,
        budget,
        hits: Default::default(),
        facts: Some(LazyFacts::new(Arc::new(
            HookTools::new(meta.config.clone()).with_endpoints(
                meta.endpoints()
                    .map(|(name, _, spec)| (name.to_string(), spec.interface.clone()))
                    .collect(),
            ),
        ))),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| JujuError::Charm(format!("cannot start the event loop: {e}")))?;
    let prefix = format!("{}: ", ctx.unit_name);
    let outcome = rt.block_on(async {
        let event = resolve(&hook, &options.root).await?;
        phases.mark("event resolved");
        let mut unit = unit;
        let mut still_deferred = Vec::new();
        // Deferred events first, as ops' `framework.reemit()`.
        for ev in &state.deferred {
            unit.action = None;
            let d = runtime.dispatch(&charm, unit, ev).await;
            forward_logs(&mut log, &d.logs, &prefix);
            unit = d.ctx;
            match d.outcome {
                Ok(Outcome::Deferred) => still_deferred.push(ev.clone()),
                Ok(Outcome::Handled) => {}
                Err(f) => return Ok(Err(failed(ev, &f))),
            }
        }
        if let Some(ev) = &event {
            let is_action = matches!(ev, Event::Action { .. });
            unit.action = is_action.then(ActionReport::default);
            let d = runtime.dispatch(&charm, unit, ev).await;
            forward_logs(&mut log, &d.logs, &prefix);
            unit = d.ctx;
            match d.outcome {
                Ok(Outcome::Deferred) if is_action => {
                    return Ok(Err(format!(
                        "cannot handle {}: cannot defer action events",
                        ev.name()
                    )));
                }
                Ok(Outcome::Deferred) => {
                    if !still_deferred.contains(ev) {
                        still_deferred.push(ev.clone());
                    }
                    while still_deferred.len() as u64 > deferred_cap {
                        let dropped = still_deferred.remove(0);
                        log.log(
                            "WARNING",
                            &format!(
                                "deferred {} dropped: over the budget of {deferred_cap} deferred events",
                                dropped.name()
                            ),
                        );
                    }
                }
                Ok(Outcome::Handled) => {}
                Err(f) => return Ok(Err(failed(ev, &f))),
            }
        }
        Ok::<_, JujuError>(Ok((unit, still_deferred)))
    });
    phases.mark("handlers ran");
    let (unit, deferred) = match outcome? {
        Ok(done) => done,
        Err(message) => {
            log.log("ERROR", &format!("Uncaught error in charm code: {message}"));
            let _ = log.finish();
            eprintln!("{message}");
            return Ok(Report {
                exit_code: 1,
                error: Some(message),
            });
        }
    };
    let new_state = UnitState {
        stored: unit.stored,
        deferred,
    };
    if new_state != state {
        new_state.save(&charm_dir)?;
        phases.mark("state saved");
    }
    if let Some(f) = &unit.facts {
        if f.unit_status_set {
            tools::status_set(&unit.unit_status, false)?;
        }
        if f.app_status_set {
            tools::status_set(&unit.app_status, true)?;
        }
        // The bags the charm wrote, as changed since read.
        for (id, bag) in &unit.relations.written {
            let Some(rel) = unit.relations.relations.get(id) else {
                continue;
            };
            let after = match bag {
                OwnBag::Unit => &rel.local_unit,
                OwnBag::App => &rel.local_app,
            };
            let before = f
                .relation_originals
                .get(&(*id, *bag))
                .cloned()
                .unwrap_or_default();
            tools::relation_set(*id, *bag == OwnBag::App, &before, after)?;
        }
    }
    // `action-log` messages went out as the charm logged them (`HookTools::action_log`).
    if let Some(action) = &unit.action {
        if !action.results.is_empty() {
            tools::action_set(&action.results)?;
        }
        if let Some(message) = &action.failed {
            tools::action_fail(message)?;
        }
    }
    phases.mark("statuses and results sent");
    log.finish()?;
    phases.mark("logs sent");
    Ok(Report {
        exit_code: 0,
        error: None,
    })
}

/// The failure text of an event.
fn failed(ev: &Event, f: &Failure) -> String {
    format!("cannot handle {}: {f}", ev.name())
}

/// Sends a dispatch's log lines to `juju-log` (without the unit-name prefix the host's
/// log needs: Juju adds its own).
fn forward_logs(log: &mut LogSink, lines: &[LogLine], prefix: &str) {
    for l in lines {
        let message = l.message.strip_prefix(prefix).unwrap_or(&l.message);
        log.log(tools::level_name(l.level), message);
    }
}

/// The WIT event of a hook (`None` for a hook the WIT world has no event for): an action's
/// parameters from `action-get`, a notice's and a check's details from the container's
/// Pebble (when it cannot be asked, what Juju's environment says).
async fn resolve(hook: &Hook, root: &Path) -> Result<Option<Event>, JujuError> {
    Ok(Some(match hook {
        Hook::Event(e) => e.clone(),
        Hook::Action { name, id } => Event::Action {
            id: id.clone(),
            name: name.clone(),
            params_json: tools::action_get()?,
        },
        Hook::CustomNotice {
            container,
            id,
            notice_type,
            key,
        } => {
            let client = cairn_api::Client::unix(pebble_socket(root, container));
            let notice = match client.notice(id).await {
                Ok(n) => Notice::from(&n),
                Err(_) => Notice {
                    id: id.clone(),
                    user_id: None,
                    r#type: notice_type.clone(),
                    key: key.clone(),
                    first_occurred: String::new(),
                    last_occurred: String::new(),
                    last_repeated: String::new(),
                    occurrences: 1,
                    last_data: BTreeMap::new(),
                    repeat_after_ms: None,
                    expire_after_ms: None,
                },
            };
            Event::PebbleCustomNotice {
                container: container.clone(),
                notice,
            }
        }
        Hook::Check {
            container,
            check,
            failed,
        } => {
            let client = cairn_api::Client::unix(pebble_socket(root, container));
            let info = match client.checks("", std::slice::from_ref(check)).await {
                Ok(list) if !list.is_empty() => check_of(&list[0]),
                _ => CheckInfo {
                    name: check.clone(),
                    level: cairn_plan::CheckLevel::Unset,
                    status: if *failed {
                        cairn_supervisor::CheckStatus::Down
                    } else {
                        cairn_supervisor::CheckStatus::Up
                    },
                    successes: 0,
                    failures: 0,
                    threshold: 0,
                    change_id: None,
                },
            };
            let container = container.clone();
            if *failed {
                Event::PebbleCheckFailed { container, info }
            } else {
                Event::PebbleCheckRecovered { container, info }
            }
        }
        Hook::Unhandled(_) | Hook::Restricted(_) => return Ok(None),
    }))
}

/// A check as Pebble's API gives it, in the runtime's form.
fn check_of(c: &cairn_api::types::CheckInfo) -> CheckInfo {
    use cairn_plan::CheckLevel;
    use cairn_supervisor::CheckStatus;
    CheckInfo {
        name: c.name.clone(),
        level: match c.level.as_str() {
            "alive" => CheckLevel::Alive,
            "ready" => CheckLevel::Ready,
            _ => CheckLevel::Unset,
        },
        status: match c.status.as_str() {
            "up" => CheckStatus::Up,
            "down" => CheckStatus::Down,
            _ => CheckStatus::Inactive,
        },
        successes: c.successes,
        failures: c.failures,
        threshold: c.threshold,
        change_id: Some(c.change_id.clone()).filter(|s| !s.is_empty()),
    }
}
