//! The sandbox through `Runtime::dispatch`, without a daemon: the event deadline, the
//! memory limit, host calls bounded by the deadline, and a guest kept to its own
//! containers. The guest is the `misbehave` test program; containers are real
//! supervisors on temporary directories.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_supervisor::{Supervisor, SupervisorOptions};

use super::{Charm, Dispatched, Failure, Runtime, RuntimeConfig, UnitContext};
use crate::types::{ConfigValue, Event, WorkloadStatus};

use cairn_testutil::TempDir;

/// A runtime with `tune` applied to small-pool defaults, and the misbehave charm on it.
fn misbehave(tune: impl FnOnce(&mut RuntimeConfig)) -> (Arc<Runtime>, Arc<Charm>) {
    let mut config = RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    };
    tune(&mut config);
    let rt = Runtime::new(config).unwrap();
    let wasm = cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM);
    let charm = rt.load(&wasm).unwrap();
    (Arc::new(rt), Arc::new(charm))
}

/// Unit `t/0` with the `mode` option set and the given containers.
fn ctx(mode: &str, containers: BTreeMap<String, Supervisor>) -> UnitContext {
    UnitContext {
        unit_name: "t/0".into(),
        app_name: "t".into(),
        model_name: "m".into(),
        containers,
        config: BTreeMap::from([("mode".to_string(), ConfigValue::String(mode.into()))]),
        unit_status: WorkloadStatus::Unknown,
        app_status: WorkloadStatus::Unknown,
        leader: true,
        stored: BTreeMap::new(),
        handle: tokio::runtime::Handle::try_current().ok(),
        action: None,
    }
}

/// Dispatches on a blocking thread of the current tokio runtime, as the unit actor does
/// (host calls wait on that runtime).
async fn dispatch_blocking(
    rt: &Arc<Runtime>,
    charm: &Arc<Charm>,
    ctx: UnitContext,
    event: Event,
) -> Dispatched {
    let (rt, charm) = (rt.clone(), charm.clone());
    tokio::task::spawn_blocking(move || rt.dispatch(&charm, ctx, &event))
        .await
        .unwrap()
}

/// The `hang` action: the guest execs `sleep 600` in container `work` and waits for it.
fn hang() -> Event {
    Event::Action {
        id: "1".into(),
        name: "hang".into(),
        params_json: "{}".into(),
    }
}

/// A real supervisor for a container of the test unit.
fn container(dir: &TempDir, name: &str) -> Supervisor {
    Supervisor::open(SupervisorOptions::new(dir.path().join(name))).unwrap()
}

#[test]
fn a_looping_guest_fails_its_event_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let d = rt.dispatch(&charm, ctx("loop", BTreeMap::new()), &Event::ConfigChanged);
    assert_eq!(d.outcome, Err(Failure::Deadline(deadline)));
    assert_eq!(
        d.outcome.unwrap_err().to_string(),
        "event deadline of 300ms exceeded"
    );
    assert!(
        d.duration >= deadline && d.duration < deadline + Duration::from_secs(5),
        "{:?}",
        d.duration
    );
    // The runtime is not worse for it: the next event runs.
    let next = rt.dispatch(&charm, ctx("ok", BTreeMap::new()), &Event::ConfigChanged);
    assert_eq!(next.outcome, Ok(crate::types::Outcome::Handled));
}

#[test]
fn growing_memory_past_the_limit_fails_the_event_as_a_memory_limit() {
    let limit = 16 << 20;
    let (rt, charm) = misbehave(|c| c.memory_limit = limit);
    let start = Instant::now();
    let d = rt.dispatch(&charm, ctx("alloc", BTreeMap::new()), &Event::ConfigChanged);
    assert_eq!(d.outcome, Err(Failure::MemoryLimit(limit)));
    assert_eq!(
        d.outcome.unwrap_err().to_string(),
        "memory limit of 16 MiB exceeded"
    );
    // Refused at the limit, long before the event's deadline.
    assert!(start.elapsed() < Duration::from_secs(10));
    // A trap of another kind is not taken for the memory limit.
    let d = rt.dispatch(&charm, ctx("trap", BTreeMap::new()), &Event::ConfigChanged);
    assert!(
        matches!(d.outcome, Err(Failure::Trap { .. })),
        "{:?}",
        d.outcome
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_call_that_outlives_the_deadline_ends_at_the_deadline() {
    let dir = TempDir::new("host-call");
    let work = container(&dir, "work");
    let deadline = Duration::from_millis(500);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let containers = BTreeMap::from([("work".to_string(), work.clone())]);
    let start = Instant::now();
    let d = dispatch_blocking(&rt, &charm, ctx("ok", containers), hang()).await;
    let took = start.elapsed();
    // The guest was blocked in `wait-output` on `sleep 600`: the wait ends at the deadline
    // and the event fails for it (whichever of the host call and the epoch noticed first).
    match &d.outcome {
        Err(Failure::Deadline(_)) => {}
        Err(Failure::Handler(msg)) if msg.contains("the event's deadline passed") => {}
        other => panic!("hang gave {other:?}"),
    }
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(5),
        "{took:?}"
    );
    work.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_cannot_open_a_container_that_is_not_its_own() {
    let dir = TempDir::new("not-own");
    let other = container(&dir, "other");
    let (rt, charm) = misbehave(|_| {});
    let containers = BTreeMap::from([("other".to_string(), other.clone())]);
    // `hang` asks for container `work`; the unit has only `other`.
    let d = dispatch_blocking(&rt, &charm, ctx("ok", containers), hang()).await;
    match &d.outcome {
        Err(Failure::Handler(msg))
            if msg.contains("cannot connect to container \"work\": not a container of t/0") => {}
        other => panic!("opening another unit's container gave {other:?}"),
    }
    other.stop_all().await;
}
