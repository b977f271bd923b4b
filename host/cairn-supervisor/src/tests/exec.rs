//! Exec on real processes, through the channels the API bridges to websockets.

use std::time::Duration;

use bytes::Bytes;

use super::{pids_running, within};
use crate::exec::{Control, Endpoint, ExecArgs, Stdin};
#[allow(unused_imports)]
use crate::{ChangeStatus, CheckStatus};
use crate::{Supervisor, SupervisorOptions};

fn sup(name: &str) -> Supervisor {
    let mut o = SupervisorOptions::new(super::temp_dir("exec", name));
    o.env
        .push(("PEBBLE_SOCKET".into(), "/x/.pebble.socket".into()));
    Supervisor::open(o).unwrap()
}

fn args(cmd: &[&str]) -> ExecArgs {
    ExecArgs {
        command: cmd.iter().map(|s| s.to_string()).collect(),
        ..ExecArgs::default()
    }
}

/// Connects stdio, feeds `input` then end, collects output until the stream ends.
async fn run_io(s: &Supervisor, task: &str, input: &[u8]) -> Vec<u8> {
    let Endpoint::Stdio { stdin, mut stdout } = s.exec_connect(task, "stdio").unwrap() else {
        panic!("not stdio");
    };
    if !input.is_empty() {
        stdin
            .send(Stdin::Data(Bytes::copy_from_slice(input)))
            .await
            .unwrap();
    }
    let _ = stdin.send(Stdin::End).await;
    let mut out = Vec::new();
    while let Some(b) = stdout.recv().await {
        out.extend_from_slice(&b);
    }
    out
}

async fn exit_code(s: &Supervisor, change: &str) -> (i64, crate::ChangeInfo) {
    let info = s
        .wait_change(change, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let code = info.tasks[0].data["exit-code"].as_i64().unwrap();
    (code, info)
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streams_io_and_reports_exit_codes() {
    let s = sup("io");
    let started = s.exec(args(&["echo", "hi"])).unwrap();
    assert_eq!(
        s.change(&started.change_id).unwrap().summary,
        "Execute command \"echo\""
    );
    assert_eq!(started.environment["LANG"], "C.UTF-8");
    assert_eq!(started.environment["PEBBLE_SOCKET"], "/x/.pebble.socket");
    assert_eq!(run_io(&s, &started.task_id, b"").await, b"hi\n");
    let (code, info) = exit_code(&s, &started.change_id).await;
    assert_eq!((code, info.status), (0, ChangeStatus::Done));

    let started = s.exec(args(&["cat"])).unwrap();
    assert_eq!(run_io(&s, &started.task_id, b"piped in").await, b"piped in");

    let started = s
        .exec(args(&["sh", "-c", "echo out; echo err >&2; exit 42"]))
        .unwrap();
    let out = run_io(&s, &started.task_id, b"").await;
    assert_eq!(out, b"out\nerr\n");
    assert_eq!(exit_code(&s, &started.change_id).await.0, 42);

    let mut split = args(&["sh", "-c", "echo out; echo err >&2"]);
    split.split_stderr = true;
    let started = s.exec(split).unwrap();
    let Endpoint::Stderr(mut err) = s.exec_connect(&started.task_id, "stderr").unwrap() else {
        panic!()
    };
    let out = run_io(&s, &started.task_id, b"").await;
    let mut e = Vec::new();
    while let Some(b) = err.recv().await {
        e.extend_from_slice(&b);
    }
    assert_eq!(
        (out.as_slice(), e.as_slice()),
        (&b"out\n"[..], &b"err\n"[..])
    );

    // A second connection to the same endpoint is refused.
    let started = s.exec(args(&["true"])).unwrap();
    let _io = s.exec_connect(&started.task_id, "stdio").unwrap();
    assert_eq!(
        s.exec_connect(&started.task_id, "stdio")
            .err()
            .unwrap()
            .to_string(),
        "stdio websocket already connected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_signals_timeouts_and_errors() {
    let s = sup("sig");
    let started = s.exec(args(&["sleep", "10"])).unwrap();
    let Endpoint::Control(ctl) = s.exec_connect(&started.task_id, "control").unwrap() else {
        panic!()
    };
    let io = tokio::spawn({
        let s = s.clone();
        let t = started.task_id.clone();
        async move { run_io(&s, &t, b"").await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctl.send(Control::Signal("SIGTERM".into())).await.unwrap();
    io.await.unwrap();
    assert_eq!(exit_code(&s, &started.change_id).await.0, 128 + 15);

    let mut slow = args(&["sleep", "10"]);
    slow.timeout = Some(Duration::from_millis(300));
    let started = s.exec(slow).unwrap();
    run_io(&s, &started.task_id, b"").await;
    let (code, info) = exit_code(&s, &started.change_id).await;
    assert_eq!(code, -1);
    assert_eq!(
        info.err.as_deref(),
        Some(
            "cannot perform the following tasks:\n- Execute command \"sleep\" (timed out after 300ms: context deadline exceeded)"
        )
    );

    assert_eq!(
        s.exec(args(&["no-such-command-cairn"]))
            .unwrap_err()
            .to_string(),
        "cannot find executable \"no-such-command-cairn\""
    );
    let mut bad_dir = args(&["true"]);
    bad_dir.working_dir = "/nonexistent-cairn".into();
    assert_eq!(
        s.exec(bad_dir).unwrap_err().to_string(),
        "cannot call exec: working directory \"/nonexistent-cairn\" does not exist"
    );
    assert_eq!(
        s.exec_connect("9999", "stdio").err().unwrap().to_string(),
        "cannot find task \"9999\""
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_in_a_terminal() {
    let s = sup("tty");
    let mut a = args(&["sh", "-c", "test -t 1 && stty size"]);
    a.terminal = true;
    a.interactive = true;
    a.width = 100;
    a.height = 40;
    let started = s.exec(a).unwrap();
    let out = run_io(&s, &started.task_id, b"").await;
    assert_eq!(String::from_utf8_lossy(&out).trim(), "40 100");
    assert_eq!(exit_code(&s, &started.change_id).await.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_the_supervisor_kills_running_execs() {
    let s = sup("stopall");
    let started = s.exec(args(&["sleep", "600"])).unwrap();
    let Endpoint::Stdio { stdin: _stdin, .. } = s.exec_connect(&started.task_id, "stdio").unwrap()
    else {
        panic!("not stdio");
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    s.stop_all().await;
    let (code, _) = exit_code(&s, &started.change_id).await;
    assert_eq!(code, 137, "SIGKILLed");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_groups_are_recorded_for_recovery_after_a_crash() {
    let s = sup("groups");
    let groups = s.dir().join(crate::groups::GROUPS_FILE);
    let started = s.exec(args(&["sleep", "600"])).unwrap();
    let Endpoint::Stdio { stdin: _stdin, .. } = s.exec_connect(&started.task_id, "stdio").unwrap()
    else {
        panic!("not stdio");
    };
    let name = format!("exec {}", started.task_id);
    let recorded = |want: bool| async move {
        for _ in 0..100 {
            let text = std::fs::read_to_string(&groups).unwrap_or_default();
            if text.contains(&format!("\"{name}\"")) == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    };
    assert!(
        recorded.clone()(true).await,
        "the exec's group is not recorded"
    );
    s.stop_all().await;
    exit_code(&s, &started.change_id).await;
    assert!(recorded(false).await, "the ended exec is still recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn aborting_an_exec_change_kills_its_command_and_ends_the_change() {
    let s = sup("abort");
    let cmd = ["sleep", "600.0417"];
    let started = s.exec(args(&cmd)).unwrap();
    let Endpoint::Stdio {
        stdin,
        stdout: _out,
    } = s.exec_connect(&started.task_id, "stdio").unwrap()
    else {
        panic!("not stdio");
    };
    let _control = s.exec_connect(&started.task_id, "control").unwrap();
    assert!(
        within(Duration::from_secs(5), || !pids_running(&cmd).is_empty()).await,
        "the command never started"
    );
    let info = s.abort_change(&started.change_id).unwrap();
    assert_eq!(info.tasks[0].status, ChangeStatus::Abort);
    // Pebble ends the command at once; the kill-delay is the most a stop may take.
    assert!(
        within(crate::services::KILL_DELAY_DEFAULT, || pids_running(&cmd)
            .is_empty())
        .await,
        "the command outlived the abort"
    );
    let (code, info) = exit_code(&s, &started.change_id).await;
    assert_eq!(
        (code, info.status, info.ready),
        (137, ChangeStatus::Done, true)
    );
    drop(stdin);
}

/// Commands whose output and input stay open must not hold threads of tokio's blocking
/// pool, which every tenant's file calls and events share: with the pool cut to 4
/// threads, 40 long-running commands (pipes, split stderr and terminals, 100 open
/// streams) still leave it free for a file call, and another exec completes promptly.
#[test]
fn long_running_execs_hold_no_blocking_threads() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let cmd = ["sleep", "600.0613"];
    let s = rt.block_on(async { sup("pool") });
    let outcome = rt.block_on(async {
        let mut held = Vec::new();
        for i in 0..40 {
            let mut a = args(&cmd);
            match i % 4 {
                0 => a.split_stderr = true,
                1 => a.terminal = true,
                2 => {
                    a.terminal = true;
                    a.interactive = true;
                }
                _ => {}
            }
            let started = s.exec(a).unwrap();
            held.push(s.exec_connect(&started.task_id, "stdio").unwrap());
            if i % 4 == 0 {
                held.push(s.exec_connect(&started.task_id, "stderr").unwrap());
            }
        }
        if !within(Duration::from_secs(20), || pids_running(&cmd).len() == 40).await {
            return Err(format!(
                "the 40 commands never all ran ({} did)",
                pids_running(&cmd).len()
            ));
        }
        // Every stream's pump is waiting now; give any blocking reads time to take threads.
        tokio::time::sleep(Duration::from_millis(200)).await;

        let file = s.dir().join("probe");
        let call = tokio::time::timeout(Duration::from_secs(2), async {
            tokio::fs::write(&file, b"probe").await?;
            tokio::fs::read(&file).await
        });
        match call.await {
            Ok(Ok(b)) if b == b"probe" => {}
            Ok(other) => return Err(format!("the file call failed: {other:?}")),
            Err(_) => return Err("a file call waited for a blocking thread".into()),
        }

        let started = s.exec(args(&["echo", "hi"])).unwrap();
        let out = tokio::time::timeout(Duration::from_secs(2), run_io(&s, &started.task_id, b""));
        match out.await {
            Ok(out) if out == b"hi\n" => {}
            Ok(out) => return Err(format!("another exec printed {out:?}")),
            Err(_) => return Err("another exec did not complete".into()),
        }
        assert_eq!(exit_code(&s, &started.change_id).await.0, 0);

        s.stop_all().await;
        if !within(Duration::from_secs(5), || pids_running(&cmd).is_empty()).await {
            return Err("the commands outlived the supervisor's stop".into());
        }
        drop(held);
        Ok(())
    });
    // A failure leaves reads stuck on the pool: kill the commands so they end, and do not
    // wait for those threads.
    for pid in pids_running(&cmd) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    rt.block_on(async move { drop(s) });
    rt.shutdown_timeout(Duration::from_secs(1));
    outcome.unwrap();
}
