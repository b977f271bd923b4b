//! Supervisor behaviour on real processes.

use std::time::{Duration, Instant};

use crate::{
    ChangeSelect, ServiceStatus, ServicesAction, Supervisor, SupervisorError, SupervisorOptions,
};
#[allow(unused_imports)]
use crate::{ChangeStatus, CheckStatus};

fn dir(name: &str) -> std::path::PathBuf {
    super::temp_dir("sup", name)
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
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Error);
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
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done, "{info:?}");
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

    let info = sup
        .run_services_action(ServicesAction::Stop, &names(&["svc"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done);
    assert_eq!(sup.services(&[])[0].current, ServiceStatus::Inactive);
    assert!(sup.service_pid("svc").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_sends_sigkill_after_kill_delay_to_a_term_ignoring_group() {
    let sup = open(
        "kill",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'trap \"\" TERM; while true; do sleep 0.1; done'\n    kill-delay: 400ms\n",
    );
    sup.run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    let pid = sup.service_pid("svc").unwrap();
    let t = Instant::now();
    let info = sup
        .run_services_action(ServicesAction::Stop, &names(&["svc"]))
        .await
        .unwrap();
    let took = t.elapsed();
    assert_eq!(info.status, ChangeStatus::Done, "{info:?}");
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
    sup.run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
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
    let info = sup
        .run_services_action(ServicesAction::Replan, &[])
        .await
        .unwrap();
    assert_eq!(info.summary, "Replan service \"a\" and 1 more");
    let (a, b) = (sup.service_pid("a").unwrap(), sup.service_pid("b").unwrap());
    sup.add_layer(
        "base",
        b"services:\n  b:\n    override: merge\n    environment:\n      X: y\n",
        true,
        false,
    )
    .unwrap();
    let info = sup
        .run_services_action(ServicesAction::Replan, &[])
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done, "{info:?}");
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
async fn programs_are_found_on_the_supervisors_path_and_failures_read_as_pebbles() {
    // Texts as real Pebble 1.32.1 gives them for the same layer (Go's exec.Command).
    let sup = open(
        "lookup",
        "services:\n  a:\n    override: replace\n    command: nosuchcmd-xyz\n  b:\n    override: replace\n    command: /nonexistent/prog\n  c:\n    override: replace\n    command: sleep 300\n    working-dir: /nonexistent-dir\n  d:\n    override: replace\n    command: sleep 300\n    environment:\n      PATH: /nonexistent\n  e:\n    override: replace\n    command: rel/prog\n",
    );
    let sleep = crate::exec::look_path("sleep", &std::env::var("PATH").unwrap(), None).unwrap();
    for (svc, why) in [
        (
            "a",
            "exec: \"nosuchcmd-xyz\": executable file not found in $PATH".to_string(),
        ),
        (
            "b",
            "fork/exec /nonexistent/prog: no such file or directory".into(),
        ),
        ("c", format!("fork/exec {sleep}: no such file or directory")),
        ("e", "fork/exec rel/prog: no such file or directory".into()),
    ] {
        let info = sup
            .run_services_action(ServicesAction::Start, &names(&[svc]))
            .await
            .unwrap();
        assert_eq!(
            info.err.as_deref(),
            Some(
                format!(
                    "cannot perform the following tasks:\n- Start service {svc:?} (cannot start service: {why})"
                )
                .as_str()
            )
        );
    }
    // The service's own PATH is its environment, not where its program is looked up.
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["d"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done, "{:?}", info.err);
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn replan_with_nothing_to_do_is_a_done_change() {
    let sup = open(
        "noop",
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    );
    let id = sup.services_action(ServicesAction::Replan, &[]).unwrap();
    let info = sup.change(&id).unwrap();
    assert_eq!(
        (info.summary.as_str(), info.status, info.ready),
        ("Replan - no services", ChangeStatus::Done, true)
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
        err(sup.services_action(ServicesAction::Start, &names(&["nope"]))),
        "cannot start services: service \"nope\" does not exist"
    );
    assert_eq!(
        err(sup.services_action(ServicesAction::Start, &[])),
        "must specify services for start action"
    );
    assert_eq!(
        err(sup.services_action(ServicesAction::Replan, &names(&["a"]))),
        "replan accepts no service names"
    );
    assert_eq!(
        err(sup.services_action(ServicesAction::Autostart, &[])),
        "no default services"
    );
    assert_eq!(
        err("frob".parse::<ServicesAction>().map(|_| String::new())),
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
    sup.run_services_action(ServicesAction::Start, &names(&["a"]))
        .await
        .unwrap();
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
async fn layers_not_kept_live_in_memory_only_and_the_layers_directory_comes_back() {
    let d = dir("unkept");
    std::fs::create_dir_all(d.join("layers")).unwrap();
    std::fs::write(
        d.join("layers/001-base.yaml"),
        "services:\n  a:\n    override: replace\n    command: sleep 1000\n",
    )
    .unwrap();
    let opts = || SupervisorOptions {
        keep_layers: false,
        ..SupervisorOptions::new(&d)
    };
    let sup = Supervisor::open(opts()).unwrap();
    sup.add_layer(
        "api",
        b"services:\n  b:\n    override: replace\n    command: sleep 1000\n",
        false,
        false,
    )
    .unwrap();
    assert!(sup.plan().services.contains_key("b"));
    // Whatever else writes the state file (changes, notices) carries no layer.
    sup.inner.save().unwrap();
    let state = std::fs::read_to_string(d.join(crate::STATE_FILE)).unwrap();
    assert!(!state.contains("sleep"), "{state}");
    drop(sup);
    let again = Supervisor::open(opts()).unwrap();
    let plan = again.plan();
    assert!(plan.services.contains_key("a") && !plan.services.contains_key("b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_looping_service_backs_off() {
    let sup = open(
        "backoff",
        "services:\n  a:\n    override: replace\n    command: sh -c 'sleep 1.2; exit 1'\n    backoff-delay: 100ms\n",
    );
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["a"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done);
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
async fn abandoned_grandchildren_leave_no_zombie() {
    crate::reaper::become_subreaper().unwrap();
    let sup = open(
        "orphans",
        "services:\n  svc:\n    override: replace\n    command: sh -c '(sleep 0.2 &); (sleep 0.3 &); exec sleep 1000'\n",
    );
    sup.run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
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

/// Lines of a file the test's services append to.
fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// A service that notes its start and its SIGTERM in `log`.
fn noting_service(name: &str, log: &std::path::Path, extra: &str) -> String {
    format!(
        "  {name}:\n    override: replace\n    command: sh -c 'echo start {name} >> {log}; trap \"echo stop {name} >> {log}; exit 0\" TERM; while true; do sleep 0.05; done'\n{extra}",
        log = log.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn requires_and_after_order_start_and_stop() {
    let d = dir("order");
    std::fs::create_dir_all(&d).unwrap();
    let log = d.join("order.log");
    // Declared in reverse so that name order cannot explain the result.
    let layer = format!(
        "services:\n{}{}{}{}",
        noting_service("c", &log, "    requires: [b]\n    after: [b]\n"),
        noting_service("b", &log, "    requires: [a]\n    after: [a]\n"),
        noting_service("a", &log, ""),
        noting_service("z", &log, "    before: [a]\n"),
    );
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer("base", layer.as_bytes(), false, false)
        .unwrap();

    // Starting c pulls in what it requires, in `after` order.
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["c"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done, "{info:?}");
    assert_eq!(lines(&log), ["start a", "start b", "start c"]);
    let summaries: Vec<_> = info.tasks.iter().map(|t| t.summary.as_str()).collect();
    assert_eq!(
        summaries,
        [
            "Start service \"a\"",
            "Start service \"b\"",
            "Start service \"c\""
        ]
    );
    // z is only ordered (before a), not required: it was not pulled in.
    assert!(!lines(&log).contains(&"start z".to_string()));

    // Stopping a pulls in its dependents, stopped first.
    std::fs::write(&log, "").unwrap();
    let info = sup
        .run_services_action(ServicesAction::Stop, &names(&["a"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done, "{info:?}");
    assert_eq!(lines(&log), ["stop c", "stop b", "stop a"]);
    for s in sup.services(&names(&["a", "b", "c"])) {
        assert_eq!(s.current, ServiceStatus::Inactive, "{}", s.name);
    }

    // Naming both z and a orders them by before/after; Pebble puts services linked only by
    // before/after in separate lanes, which start together, so the order of their start
    // tasks in the change is what `before` decides.
    std::fs::write(&log, "").unwrap();
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["a", "z"]))
        .await
        .unwrap();
    let summaries: Vec<_> = info.tasks.iter().map(|t| t.summary.as_str()).collect();
    assert_eq!(summaries, ["Start service \"z\"", "Start service \"a\""]);
    sup.stop_all().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_service_does_not_block_unrelated_lanes() {
    let sup = open(
        "lanes",
        "services:\n  bad:\n    override: replace\n    command: sh -c 'exit 2'\n    on-failure: ignore\n  after-bad:\n    override: replace\n    command: sleep 1000\n    requires: [bad]\n    after: [bad]\n  good:\n    override: replace\n    command: sleep 1000\n",
    );
    let started = Instant::now();
    let id = sup
        .services_action(ServicesAction::Start, &names(&["after-bad", "good"]))
        .unwrap();
    let info = sup.wait_change(&id, None).await.unwrap();
    assert_eq!(info.status, ChangeStatus::Error);
    // Lanes run in parallel: the whole change takes one okay delay, not two.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    let status = |n: &str| sup.services(&names(&[n]))[0].current;
    assert_eq!(status("good"), ServiceStatus::Active);
    assert_eq!(status("after-bad"), ServiceStatus::Inactive);
    assert_eq!(status("bad"), ServiceStatus::Error);
    let by_summary = |s: &str| {
        info.tasks
            .iter()
            .find(|t| t.summary == format!("Start service \"{s}\""))
            .map(|t| t.status)
            .unwrap()
    };
    assert_eq!(by_summary("good"), ChangeStatus::Done);
    assert_eq!(by_summary("bad"), ChangeStatus::Error);
    assert_eq!(by_summary("after-bad"), ChangeStatus::Hold);
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_loop_backs_off_doubling_with_jitter_up_to_the_limit() {
    let d = dir("backoffseq");
    std::fs::create_dir_all(&d).unwrap();
    let starts = d.join("starts");
    let layer = format!(
        "services:\n  loop:\n    override: replace\n    command: sh -c 'date +%s.%N >> {}; exit 1'\n    backoff-delay: 500ms\n    backoff-factor: 2\n    backoff-limit: 2s\n",
        starts.display()
    );
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer("base", layer.as_bytes(), false, false)
        .unwrap();
    let id = sup
        .services_action(ServicesAction::Start, &names(&["loop"]))
        .unwrap();
    let info = sup.wait_change(&id, None).await.unwrap();
    // The start attempt fails ("exited quickly") and the restart action still applies.
    assert_eq!(info.status, ChangeStatus::Error);
    assert_eq!(
        info.err.as_deref(),
        Some(
            "cannot perform the following tasks:\n- Start service \"loop\" (service start attempt: exited quickly with code 1, will restart)"
        )
    );
    let got = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if lines(&starts).len() >= 6 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(got.is_ok(), "only {} starts", lines(&starts).len());
    sup.stop_all().await;
    let times: Vec<f64> = lines(&starts).iter().map(|l| l.parse().unwrap()).collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, expected) in gaps.iter().zip([0.5, 1.0, 2.0, 2.0, 2.0]) {
        // The delay plus 0-10 % jitter, plus the time to fork a shell and run date.
        assert!(
            *gap >= expected && *gap <= expected * 1.1 + 0.15,
            "gaps {gaps:?}: {gap} is not {expected} s + 0-10 %"
        );
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_failure_ignore_leaves_the_service_in_error() {
    let sup = open(
        "ignore",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'sleep 1.2; exit 7'\n    on-failure: ignore\n",
    );
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    assert_eq!(info.status, ChangeStatus::Done);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = &sup.services(&[])[0];
    assert_eq!(s.current, ServiceStatus::Error);
    assert_eq!(sup.service_pid("svc"), None);
    // It stays there: no restart.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sup.services(&[])[0].current, ServiceStatus::Error);
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_action_asks_and_restart_brings_the_container_back() {
    let sup = open(
        "shutdown",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'sleep 1.2; exit 3'\n    on-failure: shutdown\n  other:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n",
    );
    let mut requests = sup.shutdown_requests();
    sup.run_services_action(ServicesAction::Start, &names(&["svc", "other"]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), requests.changed())
        .await
        .expect("no shutdown request")
        .unwrap();
    assert_eq!(
        *requests.borrow_and_update(),
        Some(crate::ShutdownRequest::Failure)
    );
    let other = sup.service_pid("other").unwrap();
    sup.restart().await.unwrap();
    // Everything stopped and forgotten; the plan is still there; nothing auto-started.
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(other), None).is_err());
    assert!(
        sup.services(&[])
            .iter()
            .all(|s| s.current == ServiceStatus::Inactive)
    );
    assert_eq!(sup.plan().services.len(), 2);
    assert_eq!(*requests.borrow_and_update(), None);
    sup.run_services_action(ServicesAction::Replan, &[])
        .await
        .unwrap();
    assert_eq!(
        sup.services(&names(&["other"]))[0].current,
        ServiceStatus::Active
    );
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_runs_as_its_user_with_home_and_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let sup = open(
        "user",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'echo \"$HOME $USER $(id -u) $(id -g)\"; exec sleep 1000'\n    user: nobody\n",
    );
    sup.run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    let pid = sup.service_pid("svc").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid_line}"
    );
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let logs = sup.logs(&[], None);
    assert_eq!(
        logs[0].message,
        format!(
            "{} nobody 65534 {}",
            nobody.dir.display(),
            nobody.gid.as_raw()
        )
    );
    sup.stop_all().await;

    // user-id and user must agree, with Pebble's message.
    let bad = sup.add_layer(
        "bad",
        b"services:\n  svc:\n    override: merge\n    user-id: 0\n",
        false,
        false,
    );
    assert!(bad.is_ok());
    let info = sup
        .run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    assert_eq!(
        info.err.as_deref(),
        Some(
            "cannot perform the following tasks:\n- Start service \"svc\" (user \"nobody\" UID (65534) does not match user-id (0))"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_stays_in_the_ring_and_blocks_nothing() {
    let sup = open(
        "flood",
        "services:\n  flood:\n    override: replace\n    command: sh -c 'exec yes flooding-the-supervisor-with-lines'\n  calm:\n    override: replace\n    command: sh -c 'echo calm; exec sleep 1000'\n",
    );
    sup.run_services_action(ServicesAction::Start, &names(&["flood"]))
        .await
        .unwrap();
    let buffer = sup.log_buffers(&names(&["flood"]))[0].clone();
    // While the flood runs, the supervisor answers and starts other services promptly.
    for _ in 0..20 {
        let t = Instant::now();
        let _ = sup.services(&[]);
        assert!(t.elapsed() < Duration::from_millis(200));
        assert!(
            buffer.bytes() <= crate::logs::MAX_LOG_BYTES,
            "{}",
            buffer.bytes()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = Instant::now();
    sup.run_services_action(ServicesAction::Start, &names(&["calm"]))
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert!(buffer.bytes() > crate::logs::MAX_LOG_BYTES / 2);
    assert!(buffer.bytes() <= crate::logs::MAX_LOG_BYTES);
    assert!(
        buffer.allocated() <= 2 * crate::logs::MAX_LOG_BYTES,
        "{}",
        buffer.allocated()
    );
    let tail = sup.logs(&names(&["flood"]), Some(3));
    assert_eq!(tail.len(), 3);
    assert!(
        tail.iter()
            .all(|e| e.message == "flooding-the-supervisor-with-lines")
    );
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn services_left_by_a_killed_supervisor_are_terminated_on_reopen() {
    use std::os::unix::process::CommandExt;
    let d = dir("leftover");
    std::fs::create_dir_all(&d).unwrap();
    // What a supervisor killed with SIGKILL leaves: a recorded service group (leader and a
    // grandchild, one ignoring SIGTERM) that nobody stops.
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "sh -c 'trap \"\" TERM; exec sleep 1001' & exec sleep 1002",
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let leader = child.id() as i32;
    let members = super::wait_for_members(leader, 2).await;
    let grandchild = members.into_iter().find(|p| *p != leader).unwrap();
    {
        let mut g = crate::groups::Groups::new(Some(&d));
        g.started(leader, "svc", Duration::from_millis(300));
        std::mem::forget(g);
    }
    // A record of a group whose pid now belongs to someone else is left alone.
    let alive = |pid: i32| crate::groups::proc_stat(pid).is_some();
    let t = Instant::now();
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let _ = child.wait();
    assert!(!alive(leader), "leader survived");
    assert!(!alive(grandchild), "TERM-ignoring grandchild survived");
    // SIGTERM, then SIGKILL after the recorded kill-delay.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(!d.join(crate::groups::GROUPS_FILE).exists());
    drop(sup);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_supervisor_takes_its_processes_along() {
    let sup = open(
        "dropped",
        "services:\n  svc:\n    override: replace\n    command: sh -c 'sleep 1003 & exec sleep 1004'\n",
    );
    sup.run_services_action(ServicesAction::Start, &names(&["svc"]))
        .await
        .unwrap();
    let leader = sup.service_pid("svc").unwrap();
    let members = super::wait_for_members(leader, 2).await;
    drop(sup);
    tokio::time::sleep(Duration::from_millis(100)).await;
    for pid in members {
        assert!(crate::groups::proc_stat(pid).is_none(), "{pid} survived");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_pid_in_the_records_is_not_killed() {
    let d = dir("reused");
    std::fs::create_dir_all(&d).unwrap();
    use std::os::unix::process::CommandExt;
    // A group leader, so that only the start-time guard keeps it alive.
    let mut bystander = std::process::Command::new("sleep")
        .arg("1005")
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = bystander.id() as i32;
    // A record claiming this pid led one of our groups, started at another time.
    {
        let mut g = crate::groups::Groups::new(Some(&d));
        g.started(pid, "svc", Duration::from_millis(100));
        std::mem::forget(g);
    }
    let path = d.join(crate::groups::GROUPS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let (start, _) = crate::groups::proc_stat(pid).unwrap();
    std::fs::write(
        &path,
        text.replace(&format!("\"start_time\":{start}"), "\"start_time\":2"),
    )
    .unwrap();
    let _sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert!(
        crate::groups::proc_stat(pid).is_some(),
        "bystander was killed"
    );
    let _ = bystander.kill();
    let _ = bystander.wait();
    let _ = std::fs::remove_dir_all(&d);
}
