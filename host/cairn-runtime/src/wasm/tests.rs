//! The sandbox through `Runtime::dispatch`, without a daemon: the event deadline (in wasm,
//! in WASI's clocks and stdin, in host calls), interruption, the memory limit, and a guest
//! kept to its own containers. The guest is the `misbehave` test program; containers are real
//! supervisors on temporary directories.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_supervisor::{Supervisor, SupervisorOptions};

use super::{Charm, ContainerBackend, Failure, Interrupt, Runtime, RuntimeConfig, UnitContext};
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
        containers: containers.into_iter().map(|(n, s)| (n, s.into())).collect(),
        config: BTreeMap::from([("mode".to_string(), ConfigValue::String(mode.into()))]),
        leader: true,
        ..UnitContext::new("t/0", "t", "m")
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_guest_fails_its_event_at_the_deadline() {
    let deadline = Duration::from_millis(300);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let d = rt
        .dispatch(&charm, ctx("loop", BTreeMap::new()), &Event::ConfigChanged)
        .await;
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
    let next = rt
        .dispatch(&charm, ctx("ok", BTreeMap::new()), &Event::ConfigChanged)
        .await;
    assert_eq!(next.outcome, Ok(crate::types::Outcome::Handled));
}

/// Dispatches `mode`'s config-changed under a 300 ms deadline and checks that it failed
/// at the deadline, not before and not long after.
async fn fails_at_the_deadline(mode: &str) {
    let deadline = Duration::from_millis(300);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let d = rt
        .dispatch(&charm, ctx(mode, BTreeMap::new()), &Event::ConfigChanged)
        .await;
    assert_eq!(d.outcome, Err(Failure::Deadline(deadline)), "{mode}");
    assert!(
        d.duration >= deadline && d.duration < deadline + Duration::from_secs(2),
        "{mode}: {:?}",
        d.duration
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_sleeping_on_the_wasi_clock_fails_its_event_at_the_deadline() {
    // `sleep` is std::thread::sleep(60 s): a poll of a monotonic-clock pollable.
    fails_at_the_deadline("sleep").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_waiting_on_stdin_fails_its_event_at_the_deadline() {
    // The guest's stdin is closed; `stdin` reads it until something comes.
    fails_at_the_deadline("stdin").await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spinning_guest_gives_its_thread_back_at_every_tick() {
    // On a single-threaded runtime, a timer of the host still fires while a guest spins.
    let deadline = Duration::from_secs(2);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let ticks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let d = rt
        .dispatch(&charm, ctx("loop", BTreeMap::new()), &Event::ConfigChanged)
        .await;
    counter.abort();
    assert_eq!(d.outcome, Err(Failure::Deadline(deadline)));
    let n = ticks.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n >= 10, "the host's timer ran {n} times in 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_ends_a_sleeping_or_spinning_event_at_once() {
    let (rt, charm) = misbehave(|c| c.event_deadline = Duration::from_secs(60));
    for mode in ["sleep", "loop"] {
        let interrupt = Interrupt::new();
        let later = interrupt.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            later.interrupt();
        });
        let d = rt
            .dispatch_with(
                &charm,
                ctx(mode, BTreeMap::new()),
                &Event::ConfigChanged,
                Duration::from_secs(60),
                &interrupt,
            )
            .await;
        assert_eq!(d.outcome, Err(Failure::Interrupted), "{mode}");
        assert_eq!(
            d.outcome.unwrap_err().to_string(),
            "event interrupted: unit is being removed"
        );
        assert!(
            d.duration < Duration::from_secs(2),
            "{mode}: {:?}",
            d.duration
        );
    }
    // An interrupt given before the event starts ends it before the guest runs.
    let given = Interrupt::new();
    given.interrupt();
    let d = rt
        .dispatch_with(
            &charm,
            ctx("ok", BTreeMap::new()),
            &Event::ConfigChanged,
            Duration::from_secs(60),
            &given,
        )
        .await;
    assert_eq!(d.outcome, Err(Failure::Interrupted));
    assert!(d.ctx.stored.is_empty(), "{:?}", d.ctx.stored);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_gets_a_fresh_instance_whose_memory_starts_as_the_component_says() {
    // Pooled slots are reset by hand up to what is kept resident, and by the kernel past
    // it: either way the guest's static counter is back to zero, on the same slot or not,
    // after a grown memory too.
    let (rt, charm) = misbehave(|_| {});
    for round in 0..20 {
        let mode = if round % 5 == 4 { "alloc" } else { "remember" };
        let d = rt
            .dispatch(&charm, ctx(mode, BTreeMap::new()), &Event::ConfigChanged)
            .await;
        if mode == "alloc" {
            continue;
        }
        assert_eq!(
            d.outcome,
            Ok(crate::types::Outcome::Handled),
            "round {round}"
        );
        assert_eq!(
            d.ctx.unit_status,
            WorkloadStatus::Active("remembered 1".into()),
            "round {round}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_memory_past_the_limit_fails_the_event_as_a_memory_limit() {
    let limit = 16 << 20;
    let (rt, charm) = misbehave(|c| c.memory_limit = limit);
    let start = Instant::now();
    let d = rt
        .dispatch(&charm, ctx("alloc", BTreeMap::new()), &Event::ConfigChanged)
        .await;
    assert_eq!(d.outcome, Err(Failure::MemoryLimit(limit)));
    assert_eq!(
        d.outcome.unwrap_err().to_string(),
        "memory limit of 16 MiB exceeded"
    );
    // Refused at the limit, long before the event's deadline.
    assert!(start.elapsed() < Duration::from_secs(10));
    // A trap of another kind is not taken for the memory limit.
    let d = rt
        .dispatch(&charm, ctx("trap", BTreeMap::new()), &Event::ConfigChanged)
        .await;
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
    let d = rt.dispatch(&charm, ctx("ok", containers), &hang()).await;
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
    let d = rt.dispatch(&charm, ctx("ok", containers), &hang()).await;
    match &d.outcome {
        Err(Failure::Handler(msg))
            if msg.contains("cannot connect to container \"work\": not a container of t/0") => {}
        other => panic!("opening another unit's container gave {other:?}"),
    }
    other.stop_all().await;
}

/// `ctx` with the app's `budget` changed by `tune`, and its hits.
fn budget_ctx(
    mode: &str,
    tune: impl FnOnce(&mut crate::Budget),
) -> (UnitContext, Arc<cairn_supervisor::LimitHits>) {
    let mut c = ctx(mode, BTreeMap::new());
    tune(&mut c.budget);
    (c.clone(), c.hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_keeps_the_event_budget_and_says_how_much_was_dropped() {
    let (rt, charm) = misbehave(|_| {});
    let (c, hits) = budget_ctx("log-flood", |b| b.log_bytes = 1 << 20);
    let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    let kept: usize = d.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept < (1 << 20) + 64 * 1024, "{kept} bytes kept");
    let last = &d.logs.last().unwrap().message;
    assert!(
        last.ends_with(
            "t/0: 1023.9 MiB of log dropped: over the budget of 1 MiB per event (log-bytes)"
        ),
        "{last}"
    );
    assert!(
        d.logs.iter().all(|l| !l.message.contains(['\n', '\x1b'])),
        "a raw newline or escape was kept"
    );
    assert_eq!(hits.snapshot()["log-bytes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_state_over_budget_fails_the_event_and_is_not_kept() {
    let (rt, charm) = misbehave(|_| {});
    let (c, hits) = budget_ctx("state-flood", |b| b.state_bytes = 4 << 20);
    let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
    match &d.outcome {
        Err(Failure::Budget(m)) => assert_eq!(
            m,
            "cannot set stored state \"flood-3\": it would take 4.0 MiB, over the budget of 4 MiB (state-bytes)"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(d.ctx.stored.len(), 3, "only what fitted was staged");
    assert_eq!(hits.snapshot()["state-bytes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_messages_are_capped_and_escaped() {
    let (rt, charm) = misbehave(|_| {});
    let (c, hits) = budget_ctx("status-flood", |b| b.status_bytes = 1024);
    let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    let msg = d.ctx.unit_status.message().to_string();
    assert!(msg.len() <= 1024 && msg.ends_with('…'), "{}", msg.len());
    assert_eq!(hits.snapshot()["status-bytes"], 1);

    let d = rt
        .dispatch(
            &charm,
            ctx("escape", BTreeMap::new()),
            &Event::ConfigChanged,
        )
        .await;
    assert_eq!(
        d.ctx.unit_status,
        WorkloadStatus::Active(
            "ok\\nother/0      error   0       forged\\u{1b}]0;pwned\\u{7}\\r".into()
        )
    );
    // The log call and the printed line are one escaped line each.
    let forged: Vec<_> = d
        .logs
        .iter()
        .filter(|l| l.message.contains("forged"))
        .collect();
    assert_eq!(forged.len(), 2, "{:?}", d.logs);
    assert!(
        forged
            .iter()
            .all(|l| !l.message.contains(['\n', '\x1b', '\r']))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_budget_lowers_the_engine_memory_and_deadline() {
    let (rt, charm) = misbehave(|_| {});
    let (c, hits) = budget_ctx("alloc", |b| b.memory = 8 << 20);
    let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
    assert_eq!(d.outcome, Err(Failure::MemoryLimit(8 << 20)));
    let (c, _) = budget_ctx("loop", |b| b.deadline = Duration::from_millis(200));
    let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
    assert_eq!(
        d.outcome,
        Err(Failure::Deadline(Duration::from_millis(200)))
    );
    assert_eq!(hits.snapshot()["memory"], 1);
}

/// A supervisor on `dir/<name>` served over Pebble's API on its socket, as `cairn pebble
/// run` serves one: the container as the client backend reaches it.
async fn served(
    dir: &TempDir,
    name: &str,
) -> (Supervisor, cairn_api::ServerHandle, std::path::PathBuf) {
    let sup = container(dir, name);
    let socket = dir.path().join(format!("{name}.socket"));
    let handle = cairn_api::serve(cairn_api::ApiServer::new(sup.clone(), None), &socket, None)
        .await
        .unwrap();
    (sup, handle, socket)
}

/// Unit `t/0` in `mode` with container `work` served by `backend`, under `tune`d budget.
fn backend_ctx(
    mode: &str,
    backend: ContainerBackend,
    tune: impl FnOnce(&mut crate::Budget),
) -> (UnitContext, Arc<cairn_supervisor::LimitHits>) {
    let mut c = ctx(mode, BTreeMap::new());
    c.containers.insert("work".into(), backend);
    tune(&mut c.budget);
    (c.clone(), c.hits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pebble_client_backend_keeps_the_hosts_exec_budget() {
    let dir = TempDir::new("client-execs");
    let (sup, server, socket) = served(&dir, "work").await;
    let (rt, charm) = misbehave(|_| {});
    let backend = ContainerBackend::pebble_socket(&socket);
    for _ in 0..2 {
        // The server has no exec budget of its own: the refusal is the host's, with the
        // embedded supervisor's words; the slots come back when the event's commands go.
        let (c, hits) = backend_ctx("exec-flood", backend.clone(), |b| b.execs = 3);
        let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
        assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
        assert_eq!(
            d.ctx.unit_status,
            WorkloadStatus::Active(
                "exec-flood: started 3; 429 cannot call exec: 3 commands are running, the \
                 container's budget of concurrent execs"
                    .into()
            )
        );
        assert_eq!(hits.snapshot()["execs"], 1);
    }
    server.stop();
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_through_the_pebble_client_is_refused_as_the_embedded_one_over_the_memory_budget() {
    let dir = TempDir::new("client-pull");
    let (sup, server, socket) = served(&dir, "work").await;
    let (rt, charm) = misbehave(|_| {});
    let mut statuses = Vec::new();
    for backend in [
        ContainerBackend::pebble_socket(&socket),
        ContainerBackend::Embedded(sup.clone()),
    ] {
        let (c, hits) = backend_ctx("pull-flood", backend, |b| b.memory = 16 << 20);
        let d = rt.dispatch(&charm, c, &Event::ConfigChanged).await;
        assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
        assert_eq!(hits.snapshot()["memory"], 1);
        statuses.push(d.ctx.unit_status);
    }
    assert_eq!(
        statuses[0],
        WorkloadStatus::Active(
            "pull-flood: cannot pull /tmp/cairn-pull-flood-t-0: file is 1 GiB, over the \
             charm's memory budget of 16 MiB"
                .into()
        )
    );
    assert_eq!(statuses[0], statuses[1]);
    server.stop();
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_through_the_pebble_client_ends_at_the_deadline_and_kills_the_command() {
    let dir = TempDir::new("client-deadline");
    let (sup, server, socket) = served(&dir, "work").await;
    let deadline = Duration::from_millis(500);
    let (rt, charm) = misbehave(|c| c.event_deadline = deadline);
    let (c, _) = backend_ctx("ok", ContainerBackend::pebble_socket(&socket), |_| {});
    let start = Instant::now();
    let d = rt.dispatch(&charm, c, &hang()).await;
    let took = start.elapsed();
    match &d.outcome {
        Err(Failure::Deadline(_)) => {}
        Err(Failure::Handler(msg)) if msg.contains("the event's deadline passed") => {}
        other => panic!("hang gave {other:?}"),
    }
    assert!(
        took >= deadline && took < deadline + Duration::from_secs(5),
        "{took:?}"
    );
    // The command the event left is killed through its control websocket.
    let ended = cairn_testutil::eventually_async(Duration::from_secs(10), || async {
        let execs = sup.changes(cairn_supervisor::ChangeSelect::All, None);
        execs
            .iter()
            .all(|c| c.kind != "exec" || c.ready)
            .then_some(())
    })
    .await;
    assert!(ended.is_some(), "the exec change did not end");
    server.stop();
    sup.stop_all().await;
}

/// Unit `t/0` (leader or not) in relation 7 of endpoint `db` with `db/0`, whose bag asks
/// "hi"; the app's bag already holds one key.
fn related(mode: &str, leader: bool) -> UnitContext {
    use crate::types::{RelationSnapshot, Relations};
    let mut c = ctx(mode, BTreeMap::new());
    c.leader = leader;
    let bag = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    c.relations = Relations {
        relations: BTreeMap::from([(
            7,
            RelationSnapshot {
                id: 7,
                endpoint: "db".into(),
                interface: "pgsql".into(),
                remote_app: "db".into(),
                remote_units: vec!["db/0".into()],
                local_app: bag(&[("old", "kept")]),
                remote_unit_data: BTreeMap::from([("db/0".into(), bag(&[("ask", "hi")]))]),
                ..RelationSnapshot::default()
            },
        )]),
        written: Default::default(),
    };
    c
}

fn changed_by_db0() -> Event {
    Event::RelationChanged(crate::types::RelationEvent {
        relation_id: 7,
        endpoint: "db".into(),
        remote_app: "db".into(),
        remote_unit: Some("db/0".into()),
        departing_unit: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relation_guest_reads_the_remote_bag_and_writes_its_own_and_as_leader_its_apps() {
    use crate::types::OwnBag;
    let (rt, charm) = misbehave(|_| {});
    assert_eq!(charm.contract(), "0.2.0");
    let d = rt
        .dispatch(&charm, related("ok", true), &changed_by_db0())
        .await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    let rel = &d.ctx.relations.relations[&7];
    assert_eq!(rel.local_unit["answer"], "hi from t/0");
    assert_eq!(rel.local_unit["app-write"], "ok");
    // The leader reads its app's bag, its own write of this event included.
    assert_eq!(rel.local_unit["app-read"], "2 keys");
    assert_eq!(rel.local_app["leader"], "t/0");
    assert_eq!(rel.local_app["old"], "kept");
    assert_eq!(
        d.ctx.relations.written,
        [(7, OwnBag::Unit), (7, OwnBag::App)].into()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reads_or_writes_its_apps_relation_bag() {
    use crate::types::OwnBag;
    let (rt, charm) = misbehave(|_| {});
    let d = rt
        .dispatch(&charm, related("ok", false), &changed_by_db0())
        .await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    let rel = &d.ctx.relations.relations[&7];
    assert_eq!(rel.local_unit["answer"], "hi from t/0");
    assert_eq!(
        rel.local_unit["app-write"],
        "cannot write relation settings"
    );
    assert_eq!(rel.local_unit["app-read"], "permission denied");
    assert_eq!(rel.local_app.len(), 1, "{:?}", rel.local_app);
    assert_eq!(d.ctx.relations.written, [(7, OwnBag::Unit)].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_writes_of_a_failed_event_are_dropped() {
    let (rt, charm) = misbehave(|_| {});
    let lent = related("error", true);
    let before = lent.relations.clone();
    let d = rt.dispatch(&charm, lent, &changed_by_db0()).await;
    assert!(
        matches!(d.outcome, Err(Failure::Handler(_))),
        "{:?}",
        d.outcome
    );
    assert_eq!(d.ctx.relations, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relation_data_over_the_events_budget_fails_the_event() {
    let (rt, charm) = misbehave(|_| {});
    let mut lent = related("relation-flood", true);
    lent.budget.relation_bytes = 1024;
    let hits = lent.hits.clone();
    let d = rt.dispatch(&charm, lent, &changed_by_db0()).await;
    let Err(Failure::Budget(text)) = &d.outcome else {
        panic!("{:?}", d.outcome);
    };
    assert!(
        text.starts_with("cannot write relation settings: they would take ")
            && text.ends_with("over the budget of 1 KiB (relation-bytes)"),
        "{text}"
    );
    assert_eq!(hits.snapshot()["relation-bytes"], 1);
    assert!(d.ctx.relations.written.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charm_built_against_contract_0_1_runs_on_this_host() {
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let charm = rt
        .load(&cairn_test_programs::read(
            cairn_test_programs::CONTRACT_V01_WASM,
        ))
        .unwrap();
    assert_eq!(charm.contract(), "0.1.0");
    assert!(!charm.has_relations());
    let dir = TempDir::new("contract-v01");
    let mut c = ctx(
        "ok",
        BTreeMap::from([("work".into(), container(&dir, "work"))]),
    );
    c.config = BTreeMap::from([("greeting".into(), ConfigValue::String("hey".into()))]);

    let d = rt.dispatch(&charm, c.clone(), &Event::Install).await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    assert_eq!(
        d.ctx.unit_status,
        WorkloadStatus::Maintenance("installed by a 0.1 charm".into())
    );
    assert_eq!(d.ctx.stored["installed"], b"yes");

    let d = rt.dispatch(&charm, c.clone(), &Event::ConfigChanged).await;
    assert_eq!(
        d.ctx.unit_status,
        WorkloadStatus::Active("0.1 says hey".into())
    );

    let ready = Event::PebbleReady {
        container: "work".into(),
    };
    let d = rt.dispatch(&charm, c.clone(), &ready).await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    assert_eq!(
        d.ctx.unit_status,
        WorkloadStatus::Active("pushed hey".into())
    );

    // A relation event is not for a 0.1 charm: handled without running it.
    let d = rt.dispatch(&charm, c, &changed_by_db0()).await;
    assert_eq!(d.outcome, Ok(crate::types::Outcome::Handled));
    assert_eq!(d.duration, Duration::ZERO);
    assert_eq!(d.ctx.unit_status, WorkloadStatus::Unknown);
}
