//! Checks on real sockets and processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
use crate::{ChangeStatus, CheckStatus};
use crate::{ServicesAction, Supervisor, SupervisorOptions};
use cairn_plan::CheckLevel;

fn dir(name: &str) -> std::path::PathBuf {
    super::temp_dir("chk", name)
}

/// A tiny HTTP server answering every request with the status in `status` and a body.
async fn http_server(status: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let code = status.load(Ordering::SeqCst);
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let body = "line1\nline2\nline3\nline4\nline5\nline6\nline7\n";
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn check(sup: &Supervisor, name: &str) -> crate::CheckInfo {
    sup.checks(None, &[name.to_string()]).remove(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn http_check_goes_down_at_threshold_and_recovers() {
    let status = Arc::new(AtomicU16::new(200));
    let port = http_server(status.clone()).await;
    let sup = Supervisor::open(SupervisorOptions::new(dir("http"))).unwrap();
    sup.add_layer(
        "checks",
        format!(
            "checks:\n  web:\n    override: replace\n    level: ready\n    period: 100ms\n    threshold: 2\n    http:\n      url: http://127.0.0.1:{port}/health\n"
        )
        .as_bytes(),
        false,
        false,
    )
    .unwrap();
    let first = check(&sup, "web");
    assert_eq!(first.status, CheckStatus::Up);
    assert_eq!(first.level, CheckLevel::Ready);
    let perform_id = first.change_id.clone();
    let chg = sup.change(&perform_id).unwrap();
    assert_eq!(chg.kind, "perform-check");
    assert_eq!(chg.summary, "Perform HTTP check \"web\"");
    assert_eq!(chg.status, ChangeStatus::Doing);
    assert_eq!(chg.data["check-name"], "web");
    wait_until("a success", Duration::from_secs(5), || {
        check(&sup, "web").successes >= 2
    })
    .await;
    assert!(sup.healthy(Some(CheckLevel::Ready), &[]));

    status.store(500, Ordering::SeqCst);
    wait_until("down", Duration::from_secs(5), || {
        check(&sup, "web").status == CheckStatus::Down
    })
    .await;
    let down = check(&sup, "web");
    assert_eq!((down.failures, down.threshold), (2, 2));
    assert_eq!(down.prev_change_id, perform_id);
    assert!(!sup.healthy(Some(CheckLevel::Ready), &[]));
    assert!(!sup.healthy(None, &[]));
    assert!(
        sup.healthy(Some(CheckLevel::Alive), &[]),
        "a ready check does not make alive fail"
    );
    let failed = sup.change(&perform_id).unwrap();
    assert_eq!(failed.status, ChangeStatus::Error);
    assert_eq!(
        failed.err.as_deref(),
        Some(
            "cannot perform the following tasks:\n- Perform HTTP check \"web\" (non-2xx status code 500; line1\nline2\nline3\nline4\nline5\n(...))\n- Perform HTTP check \"web\" (non-2xx status code 500; line1\nline2\nline3\nline4\nline5\n(...))"
        )
    );
    let recover = sup.change(&down.change_id).unwrap();
    assert_eq!(recover.kind, "recover-check");
    assert_eq!(recover.summary, "Recover HTTP check \"web\"");

    status.store(200, Ordering::SeqCst);
    wait_until("up again", Duration::from_secs(5), || {
        check(&sup, "web").status == CheckStatus::Up
    })
    .await;
    let up = check(&sup, "web");
    assert_eq!(up.prev_change_id, down.change_id);
    // The recover change ends just after the perform change that follows it has started.
    wait_until("the recover change done", Duration::from_secs(5), || {
        sup.change(&down.change_id).unwrap().status == ChangeStatus::Done
    })
    .await;
    assert!(sup.healthy(Some(CheckLevel::Ready), &[]));

    let metrics = sup.metrics();
    assert!(
        metrics.contains("pebble_check_up{check=\"web\"} 1\n"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "# TYPE pebble_check_failure_count counter\npebble_check_failure_count{check=\"web\"} "
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_and_tcp_failures_carry_pebble_details() {
    let sup = Supervisor::open(SupervisorOptions::new(dir("exec"))).unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    sup.add_layer(
        "checks",
        format!(
            "checks:\n  ex:\n    override: replace\n    period: 50ms\n    threshold: 10\n    exec:\n      command: sh -c 'for i in 1 2 3 4 5 6; do echo out$i; done; echo \"$CHK\" >&2; exit 3'\n      environment:\n        CHK: from-env\n  port:\n    override: replace\n    period: 50ms\n    threshold: 10\n    tcp:\n      port: {closed}\n      host: 127.0.0.1\n  slow:\n    override: replace\n    period: 1s\n    timeout: 100ms\n    startup: disabled\n    exec:\n      command: sleep 5\n"
        )
        .as_bytes(),
        false,
        false,
    )
    .unwrap();
    wait_until("failures", Duration::from_secs(5), || {
        check(&sup, "ex").failures >= 1 && check(&sup, "port").failures >= 1
    })
    .await;
    let ex = sup.change(&check(&sup, "ex").change_id).unwrap();
    let log = &ex.tasks[0].log[0];
    assert!(
        log.ends_with(" ERROR exit status 3; out3\nout4\nout5\nout6\nfrom-env"),
        "{log}"
    );
    let tcp = sup.change(&check(&sup, "port").change_id).unwrap();
    let log = &tcp.tasks[0].log[0];
    assert!(
        log.ends_with(&format!(
            " ERROR dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )),
        "{log}"
    );
    // A disabled check is inactive until started; refresh runs it once and reports the error.
    assert_eq!(check(&sup, "slow").status, CheckStatus::Inactive);
    let t = Instant::now();
    let (info, err) = sup.refresh_check("slow").await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(info.status, CheckStatus::Inactive);
    assert_eq!(err.as_deref(), Some("check timed out after 100ms"));
    assert_eq!(sup.start_checks(&["slow".into()]).unwrap(), ["slow"]);
    assert_eq!(
        sup.start_checks(&["slow".into()]).unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(check(&sup, "slow").status, CheckStatus::Up);
    let slow_change = check(&sup, "slow").change_id;
    assert_eq!(
        sup.stop_checks(&["slow".into(), "ex".into()]).unwrap(),
        ["ex", "slow"]
    );
    assert_eq!(check(&sup, "slow").status, CheckStatus::Inactive);
    // Done, as Pebble's: the stopped check's handler returns cleanly.
    wait_until("done", Duration::from_secs(2), || {
        sup.change(&slow_change).unwrap().status == ChangeStatus::Done
    })
    .await;
    assert_eq!(
        sup.start_checks(&["nope".into(), "aaa".into()])
            .unwrap_err()
            .to_string(),
        "cannot start checks: cannot find checks in plan: aaa, nope"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_change_restarts_only_changed_checks() {
    let sup = Supervisor::open(SupervisorOptions::new(dir("replan"))).unwrap();
    sup.add_layer(
        "checks",
        b"checks:\n  a:\n    override: replace\n    period: 1s\n    exec:\n      command: 'true'\n  b:\n    override: replace\n    period: 1s\n    exec:\n      command: 'true'\n",
        false,
        false,
    )
    .unwrap();
    let (a, b) = (check(&sup, "a").change_id, check(&sup, "b").change_id);
    sup.add_layer(
        "more",
        b"checks:\n  a:\n    override: merge\n    period: 2s\n",
        false,
        false,
    )
    .unwrap();
    assert_ne!(
        check(&sup, "a").change_id,
        a,
        "changed check kept its change"
    );
    assert_eq!(
        check(&sup, "b").change_id,
        b,
        "unchanged check was restarted"
    );
    wait_until("old change done", Duration::from_secs(2), || {
        sup.change(&a).unwrap().status == ChangeStatus::Done
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn on_check_failure_restarts_the_service() {
    let sup = Supervisor::open(SupervisorOptions::new(dir("onfail"))).unwrap();
    let flag = dir("onfail-flag");
    std::fs::create_dir_all(&flag).unwrap();
    let flag = flag.join("ok");
    std::fs::write(&flag, "").unwrap();
    sup.add_layer(
        "base",
        format!(
            "services:\n  svc:\n    override: replace\n    command: sleep 1000\n    on-check-failure:\n      probe: restart\n    backoff-delay: 50ms\nchecks:\n  probe:\n    override: replace\n    period: 50ms\n    threshold: 1\n    exec:\n      command: test -e {}\n",
            flag.display()
        )
        .as_bytes(),
        false,
        false,
    )
    .unwrap();
    sup.run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await
        .unwrap();
    let pid = sup.service_pid("svc").unwrap();
    std::fs::remove_file(&flag).unwrap();
    wait_until("a new process", Duration::from_secs(10), || {
        sup.service_pid("svc").is_some_and(|p| p != pid)
    })
    .await;
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err());
    let metrics = sup.metrics();
    assert!(
        metrics.contains("pebble_service_start_count{service=\"svc\"} 2\n"),
        "{metrics}"
    );
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn aborting_a_check_change_kills_its_running_exec_command() {
    let cmd = ["sleep", "600.0419"];
    let sup = running_exec_check("abort-check", &cmd).await;
    let change = check(&sup, "slow").change_id;
    let info = sup.abort_change(&change).unwrap();
    assert!(
        [ChangeStatus::Abort, ChangeStatus::Done].contains(&info.tasks[0].status),
        "{info:?}"
    );
    let gone = super::within(crate::services::KILL_DELAY_DEFAULT, || {
        super::pids_running(&cmd).is_empty()
    });
    assert!(gone.await, "the check's command outlived the abort");
    let info = sup
        .wait_change(&change, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(info.ready, "{info:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_whose_perform_change_failed_shows_the_failure_that_hit_the_threshold() {
    // What the runtime does for a check-failed event: on the change-update notice of a
    // perform-check change in Error, read the check's info. It must count the failure
    // that hit the threshold (the supervisor logged "failure 2/2 ... threshold 2 hit").
    // Several checks fail at once, so that a read racing the update would be seen.
    let sup = Supervisor::open(SupervisorOptions::new(dir("threshold-info"))).unwrap();
    let mut layer = String::from("checks:\n");
    for i in 0..12 {
        layer.push_str(&format!(
            "  chk{i}:\n    override: replace\n    period: 200ms\n    threshold: 2\n    exec:\n      command: 'false'\n"
        ));
    }
    sup.add_layer("checks", layer.as_bytes(), false, false)
        .unwrap();
    let mut after = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    let mut seen = std::collections::BTreeSet::new();
    let start = Instant::now();
    while seen.len() < 12 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "failed perform-checks seen: {seen:?}"
        );
        let filter = crate::NoticeFilter {
            user_id: None,
            types: vec![crate::notices::NoticeType::ChangeUpdate],
            keys: Vec::new(),
            after: Some(after),
        };
        for n in sup.wait_notices(&filter, Duration::from_secs(1)).await {
            after = after.max(n.last_repeated);
            let failed = n.last_data.get("kind").map(String::as_str) == Some("perform-check")
                && sup
                    .change(&n.key)
                    .is_ok_and(|c| c.status == ChangeStatus::Error);
            if !failed {
                continue;
            }
            let name = n.last_data["check-name"].clone();
            let info = check(&sup, &name);
            assert_eq!(
                (info.status, info.failures, info.threshold),
                (CheckStatus::Down, 2, 2),
                "{name}"
            );
            seen.insert(name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_supervisor_stops_its_running_checks() {
    let cmd = ["sleep", "600.0423"];
    let sup = running_exec_check("drop-checks", &cmd).await;
    drop(sup);
    let gone = super::within(Duration::from_secs(5), || {
        super::pids_running(&cmd).is_empty()
    });
    assert!(gone.await, "a check outlived its supervisor");
}

/// A supervisor whose `slow` exec check (every 100 ms, 60 s timeout) is running `cmd`.
async fn running_exec_check(name: &str, cmd: &[&str]) -> Supervisor {
    let layer = format!(
        "checks:\n  slow:\n    override: replace\n    period: 100ms\n    timeout: 60s\n    exec:\n      command: {}\n",
        cmd.join(" ")
    );
    let d = dir(name);
    std::fs::create_dir_all(d.join("layers")).unwrap();
    std::fs::write(d.join("layers/001-base.yaml"), layer).unwrap();
    let sup = Supervisor::open(SupervisorOptions::new(d)).unwrap();
    let running = super::within(Duration::from_secs(5), || {
        !super::pids_running(cmd).is_empty()
    });
    assert!(running.await, "the check's command never started");
    sup
}
