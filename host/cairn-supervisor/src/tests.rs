//! Supervisor behaviour on real processes.

use std::time::{Duration, Instant};

use crate::{ChangeSelect, ServiceStatus, Supervisor, SupervisorError, SupervisorOptions};

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("cairn-sup-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(name: &str, layer: &str) -> Supervisor {
    let mut opts = SupervisorOptions::new(dir(name));
    opts.env.push(("CAIRN_TEST_MARK".into(), name.into()));
    let sup = Supervisor::open(opts).unwrap();
    sup.add_layer("base", layer.as_bytes(), false, false)
        .unwrap();
    sup
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn start_that_exits_quickly_fails_with_pebble_text_and_last_output() {
    let sup = open(
        "quick",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'echo boom; exit 3'\n    on-failure: ignore\n",
    );
    let info = sup.run_action("start", &names(&["svc"])).await.unwrap();
    assert_eq!(info.status, "Error");
    assert_eq!(
        info.err.as_deref(),
        Some(
            "cannot perform the following tasks:\n- Start service \"svc\" (service start attempt: exited quickly with code 3, will ignore)"
        )
    );
    let log = info.tasks[0].log.join("\n");
    assert!(
        log.contains("Most recent service output:\n    boom"),
        "{log}"
    );
    assert_eq!(sup.services(&[])[0].current, ServiceStatus::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn start_waits_the_okay_delay_then_stop_terminates() {
    let sup = open(
        "okay",
        "services:\n  svc:\n    override: replace\n    command: sleep 1000\n",
    );
    let t = Instant::now();
    let info = sup.run_action("start", &names(&["svc"])).await.unwrap();
    assert_eq!(info.status, "Done", "{info:?}");
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "started before the okay delay"
    );
    assert_eq!(info.summary, "Start service \"svc\"");
    let pid = sup.service_pid("svc").unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let s = &sup.services(&[])[0];
    assert_eq!(
        (s.current, s.startup.as_str()),
        (ServiceStatus::Active, "disabled")
    );
    assert!(s.current_since.is_some());

    let info = sup.run_action("stop", &names(&["svc"])).await.unwrap();
    assert_eq!(info.status, "Done");
    assert_eq!(sup.services(&[])[0].current, ServiceStatus::Inactive);
    assert!(sup.service_pid("svc").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_sends_sigkill_after_kill_delay_to_a_term_ignoring_group() {
    let sup = open(
        "kill",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'trap \"\" TERM; while true; do sleep 0.1; done'\n    kill-delay: 400ms\n",
    );
    sup.run_action("start", &names(&["svc"])).await.unwrap();
    let pid = sup.service_pid("svc").unwrap();
    let t = Instant::now();
    let info = sup.run_action("stop", &names(&["svc"])).await.unwrap();
    let took = t.elapsed();
    assert_eq!(info.status, "Done", "{info:?}");
    assert!(
        took >= Duration::from_millis(400),
        "stopped after {took:?}, before kill-delay"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");
    let gone = !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"));
    assert!(gone, "process {pid} survived");
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_and_working_dir_reach_the_process() {
    let sup = open(
        "env",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'echo \"$FOO $(pwd)\"; exec sleep 1000'\n    environment:\n      FOO: bar\n    working-dir: /tmp\n",
    );
    sup.run_action("start", &names(&["svc"])).await.unwrap();
    let pid = sup.service_pid("svc").unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("FOO=bar"), "{environ}");
    assert!(environ.contains("CAIRN_TEST_MARK=env"), "{environ}");
    let logs = sup.logs(&[], None);
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].message, "bar /tmp");
    assert_eq!(logs[0].service, "svc");
    assert!(
        logs[0].format().ends_with("Z [svc] bar /tmp"),
        "{}",
        logs[0].format()
    );
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replan_restarts_only_changed_services_and_starts_enabled_ones() {
    let sup = open(
        "replan",
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n  b:\n    override: replace\n    command: sleep 1001\n    startup: enabled\n",
    );
    let info = sup.run_action("replan", &[]).await.unwrap();
    assert_eq!(info.summary, "Replan service \"a\" and 1 more");
    let (a, b) = (sup.service_pid("a").unwrap(), sup.service_pid("b").unwrap());
    sup.add_layer(
        "base",
        b"services:\n  b:\n    override: merge\n    environment:\n      X: y\n",
        true,
        false,
    )
    .unwrap();
    let info = sup.run_action("replan", &[]).await.unwrap();
    assert_eq!(info.status, "Done", "{info:?}");
    assert_eq!(
        sup.service_pid("a"),
        Some(a),
        "unchanged service was restarted"
    );
    assert_ne!(
        sup.service_pid("b"),
        Some(b),
        "changed service was not restarted"
    );
    let already: Vec<&String> = info.tasks.iter().flat_map(|t| &t.log).collect();
    assert!(
        already
            .iter()
            .any(|l| l.ends_with("INFO Service \"a\" already started.")),
        "{already:?}"
    );
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replan_with_nothing_to_do_is_a_done_change() {
    let sup = open(
        "noop",
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    );
    let id = sup.services_action("replan", &[]).unwrap();
    let info = sup.change(&id).unwrap();
    assert_eq!(
        (info.summary.as_str(), info.status.as_str(), info.ready),
        ("Replan - no services", "Done", true)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn service_actions_refuse_bad_requests_with_pebble_texts() {
    let sup = open(
        "bad",
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    );
    let err = |r: Result<String, SupervisorError>| r.unwrap_err().to_string();
    assert_eq!(
        err(sup.services_action("start", &names(&["nope"]))),
        "cannot start services: service \"nope\" does not exist"
    );
    assert_eq!(
        err(sup.services_action("start", &[])),
        "must specify services for start action"
    );
    assert_eq!(
        err(sup.services_action("replan", &names(&["a"]))),
        "replan accepts no service names"
    );
    assert_eq!(
        err(sup.services_action("autostart", &[])),
        "no default services"
    );
    assert_eq!(
        err(sup.services_action("frob", &names(&["a"]))),
        "invalid action \"frob\""
    );
    assert!(sup.changes(ChangeSelect::All, None).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_layer_is_rejected_whole_and_changes_nothing() {
    let sup = open(
        "badlayer",
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    );
    let before = sup.plan().to_yaml();
    let e = sup
        .add_layer("more", b"services:\n  b:\n    command: x\n", false, false)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "layer \"more\" must define \"override\" for service \"b\""
    );
    let e = sup
        .add_layer("x", b"services: [", false, false)
        .unwrap_err();
    assert!(
        e.to_string().starts_with("cannot parse layer YAML: "),
        "{e}"
    );
    let e = sup
        .add_layer("base", b"services: {}\n", false, false)
        .unwrap_err();
    assert_eq!(e.to_string(), "layer \"base\" already exists");
    assert_eq!(sup.plan().to_yaml(), before);
    assert_eq!(sup.layers().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn layers_and_changes_survive_reopening_the_container() {
    let name = "reopen";
    let sup = open(
        name,
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    );
    sup.run_action("start", &names(&["a"])).await.unwrap();
    sup.stop_all().await;
    let d = sup.dir().to_path_buf();
    drop(sup);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert!(again.plan().services.contains_key("a"));
    let changes = again.changes(ChangeSelect::All, None);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert_eq!(changes[0].kind, "start");
    assert_eq!(again.changes(ChangeSelect::All, Some("a")).len(), 2);
    assert!(again.changes(ChangeSelect::All, Some("zz")).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_looping_service_backs_off() {
    let sup = open(
        "backoff",
        "services:\n  a:\n    override: replace\n    command: sh -c 'sleep 1.2; exit 1'\n    backoff-delay: 100ms\n",
    );
    let info = sup.run_action("start", &names(&["a"])).await.unwrap();
    assert_eq!(info.status, "Done");
    let mut saw_backoff = false;
    for _ in 0..100 {
        if sup.services(&[])[0].current == ServiceStatus::Backoff {
            saw_backoff = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(saw_backoff, "service never went into backoff");
    sup.stop_all().await;
    assert_eq!(sup.services(&[])[0].current, ServiceStatus::Inactive);
}

/// Zombie children of this process.
fn zombie_children() -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
                s.lines().any(|l| l == format!("PPid:\t{me}"))
                    && s.lines().any(|l| l.starts_with("State:\tZ"))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn issue4_abandoned_grandchildren_leave_no_zombie() {
    crate::reaper::become_subreaper().unwrap();
    let sup = open(
        "orphans",
        "services:\n  svc:\n    override: replace\n    command: sh -c '(sleep 0.2 &); (sleep 0.3 &); exec sleep 1000'\n",
    );
    sup.run_action("start", &names(&["svc"])).await.unwrap();
    // The grandchildren were re-parented to this process (the subreaper) and have exited.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut zombies = zombie_children();
    for _ in 0..20 {
        if zombies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        zombies = zombie_children();
    }
    assert_eq!(zombies, Vec::<i32>::new(), "zombies left behind");
    sup.stop_all().await;
}
