//! Every process of a container in its cgroup: limits (memory, pids, CPU) hold, and
//! whatever the container started, daemons that left their process group included, is
//! killed with it; each cgroup version's code is run on its own where the host has it.
//! And one supervisor per container directory.

use std::time::{Duration, Instant};

use super::procs::cgroups_available;
use super::{pids_running, within};
use crate::cgroup::{Cgroup, CpuMax, Layout, WorkloadLimits};
use crate::exec::{Endpoint, ExecArgs, Stdin};
use crate::{ServicesAction, Supervisor, SupervisorOptions};

fn dir(name: &str) -> std::path::PathBuf {
    super::temp_dir("cgroups", name)
}

fn open(name: &str, limits: WorkloadLimits, layer: &str) -> Supervisor {
    let sup = Supervisor::open(SupervisorOptions {
        workload: limits,
        ..SupervisorOptions::new(dir(name))
    })
    .unwrap();
    sup.add_layer("l", layer.as_bytes(), false, false).unwrap();
    sup
}

fn service(command: &str) -> String {
    format!("services:\n  svc:\n    override: replace\n    command: {command}\n")
}

async fn start(sup: &Supervisor) {
    sup.run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await
        .unwrap();
}

fn log_lines(sup: &Supervisor) -> Vec<String> {
    sup.logs(&[], None).into_iter().map(|e| e.message).collect()
}

/// Runs `cmd` as an exec of `sup` to its end; its output.
async fn exec(sup: &Supervisor, cmd: &str) -> String {
    let started = sup
        .exec(ExecArgs {
            command: vec!["sh".into(), "-c".into(), cmd.into()],
            ..ExecArgs::default()
        })
        .unwrap();
    let Endpoint::Stdio { stdin, mut stdout } =
        sup.exec_connect(&started.task_id, "stdio").unwrap()
    else {
        panic!("not stdio");
    };
    let _ = stdin.send(Stdin::End).await;
    let mut out = Vec::new();
    while let Some(b) = stdout.recv().await {
        out.extend_from_slice(&b);
    }
    sup.wait_change(&started.change_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// SIGKILLs what a failed test left.
fn kill_all(pids: &[i32]) {
    for pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_beyond_its_memory_limit_is_oom_killed_inside_its_cgroup() {
    let test = "a_service_beyond_its_memory_limit_is_oom_killed_inside_its_cgroup";
    if !cgroups_available(test) || !crate::cgroup::unenforceable(&memory_limit()).is_empty() {
        eprintln!("skipped {test}: no memory controller available to cairn here");
        return;
    }
    // `tail` keeps a line in memory: /dev/zero has none, so it grows until killed.
    let sup = open(
        "oom",
        memory_limit(),
        &service("sh -c 'head -c 268435456 /dev/zero | tail; echo status $?; exec sleep 1081'"),
    );
    start(&sup).await;
    let said = || log_lines(&sup).iter().any(|l| l.starts_with("status "));
    assert!(
        within(Duration::from_secs(20), said).await,
        "{:?}",
        log_lines(&sup)
    );
    // The hog was SIGKILLed by the kernel; the service (and this process) lives on.
    assert_eq!(
        log_lines(&sup).last().map(String::as_str),
        Some("status 137")
    );
    let usage = sup.workload_usage().unwrap();
    assert!(usage.oom_kills.unwrap() >= 1, "{usage:?}");
    assert!(
        usage.memory_peak_bytes.unwrap() <= 32 << 20,
        "peak beyond the limit: {usage:?}"
    );
    assert!(sup.service_pid("svc").is_some());
    sup.stop_all().await;
}

fn memory_limit() -> WorkloadLimits {
    WorkloadLimits {
        memory_max: Some(32 << 20),
        ..WorkloadLimits::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pids_limit_refuses_the_forks_beyond_it() {
    let test = "the_pids_limit_refuses_the_forks_beyond_it";
    let limits = WorkloadLimits {
        pids_max: Some(4),
        ..WorkloadLimits::default()
    };
    if !cgroups_available(test) || !crate::cgroup::unenforceable(&limits).is_empty() {
        eprintln!("skipped {test}: no pids controller available to cairn here");
        return;
    }
    let sup = open("pids", limits, &service("sleep 1082"));
    let out = exec(
        &sup,
        "for i in 1 2 3 4 5 6; do sleep 1083 & done; echo all forked",
    )
    .await;
    let sleeps = pids_running(&["sleep", "1083"]);
    kill_all(&sleeps);
    // The exec's shell and three sleeps make four tasks: the fourth sleep is refused.
    assert!(sleeps.len() <= 3, "{} sleeps started: {out}", sleeps.len());
    assert!(out.to_lowercase().contains("fork"), "{out}");
    assert!(!out.contains("all forked"), "{out}");
    let usage = sup.workload_usage().unwrap();
    assert!(usage.forks_refused.unwrap() >= 1, "{usage:?}");
    sup.stop_all().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn daemons_of_an_exec_and_of_a_service_that_left_their_groups_die_with_the_container() {
    if !cgroups_available(
        "daemons_of_an_exec_and_of_a_service_that_left_their_groups_die_with_the_container",
    ) {
        return;
    }
    let sup = open(
        "setsid",
        WorkloadLimits::default(),
        &service("sh -c 'setsid sleep 1084 & exec sleep 1085'"),
    );
    start(&sup).await;
    let out = exec(
        &sup,
        "setsid sleep 1086 </dev/null >/dev/null 2>&1 & echo started",
    )
    .await;
    assert_eq!(out, "started\n");
    let daemons = || {
        let mut v = pids_running(&["sleep", "1084"]);
        v.extend(pids_running(&["sleep", "1086"]));
        v
    };
    assert!(within(Duration::from_secs(2), || daemons().len() == 2).await);
    // Stopping the service alone is Pebble's: its process group goes, its daemon stays.
    sup.run_services_action(ServicesAction::Stop, &["svc".to_string()])
        .await
        .unwrap();
    assert!(pids_running(&["sleep", "1085"]).is_empty());
    assert_eq!(daemons().len(), 2, "a daemon did not outlive its group");
    // Shutting the container down takes everything it started.
    let start = Instant::now();
    sup.stop_all().await;
    let left = daemons();
    kill_all(&left);
    assert!(left.is_empty(), "daemons outlived the container: {left:?}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_supervisor_takes_every_process_of_its_container() {
    if !cgroups_available("a_dropped_supervisor_takes_every_process_of_its_container") {
        return;
    }
    let sup = open(
        "dropped",
        WorkloadLimits::default(),
        &service("sh -c 'setsid sleep 1087 & exec sleep 1088'"),
    );
    start(&sup).await;
    let daemon = || pids_running(&["sleep", "1087"]);
    assert!(within(Duration::from_secs(2), || daemon().len() == 1).await);
    drop(sup);
    let gone = within(Duration::from_secs(3), || daemon().is_empty()).await;
    let left = daemon();
    kill_all(&left);
    assert!(
        gone,
        "a daemon of the service outlived its supervisor: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_checks_run_in_the_container_cgroup() {
    if !cgroups_available("exec_checks_run_in_the_container_cgroup") {
        return;
    }
    let d = dir("check");
    let mark = d.join("check-cgroup");
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let layer = format!(
        "checks:\n  c:\n    override: replace\n    period: 100ms\n    exec:\n      command: sh -c 'cat /proc/self/cgroup > {}'\n",
        mark.display()
    );
    sup.add_layer("l", layer.as_bytes(), false, false).unwrap();
    // The check's shell opens the file before `cat` writes it: wait for a whole line.
    let written = || std::fs::read_to_string(&mark).is_ok_and(|s| s.ends_with('\n'));
    assert!(within(Duration::from_secs(5), written).await);
    let cgroups = std::fs::read_to_string(&mark).unwrap();
    let (name, _) = crate::cgroup::name_of(&d);
    assert!(
        cgroups.contains(&format!("/cairn-workloads/{name}\n")),
        "{cgroups}"
    );
    sup.stop_all().await;
}

/// Starts `sh -c command` in `cg` (as the supervisor does, through the spawner) in a
/// process group of its own.
fn spawn_in(
    cg: &Cgroup,
    command: &str,
) -> (crate::spawn::Child, tokio::sync::oneshot::Receiver<i32>) {
    let mut cmd = crate::spawn::Command::new("sh");
    cmd.args(["-c", command])
        .process_group(0)
        .stdout(crate::spawn::Stdio::null())
        .stderr(crate::spawn::Stdio::null());
    cg.enter_in_child(&mut cmd);
    crate::reaper::spawn(cmd).unwrap()
}

/// A cgroup made for test `name` on `layout` (only v1 or only v2 of this host's), or None
/// with the reason the test is skipped.
fn cgroup_on(v2: bool, name: &str, limits: &WorkloadLimits) -> Option<Cgroup> {
    let layout = Layout::host().only(v2);
    let version = if v2 { "cgroup v2" } else { "cgroup v1" };
    if layout.is_empty() {
        eprintln!("skipped {name}: no writable {version} hierarchy on this host");
        return None;
    }
    let d = dir(name);
    std::fs::create_dir_all(&d).unwrap();
    let mut cg = Cgroup::create(&layout, &d, &WorkloadLimits::default())?;
    if let Err(e) = cg.set_limits(limits) {
        eprintln!("skipped {name}: {version} here cannot: {e}");
        return None;
    }
    Some(cg)
}

/// Every process in `cg` (daemons that left their group included) is killed by its kill.
async fn kill_takes_every_process(v2: bool, name: &str, tag: &str) {
    let Some(cg) = cgroup_on(v2, name, &WorkloadLimits::default()) else {
        return;
    };
    let (_child, exit) = spawn_in(
        &cg,
        &format!("setsid sleep {tag}1 & setsid sleep {tag}1 & exec sleep {tag}2"),
    );
    assert!(within(Duration::from_secs(2), || cg.pids().len() == 3).await);
    assert!(cg.kill(), "processes survive");
    assert!(cg.pids().is_empty());
    assert_eq!(exit.await.unwrap(), 128 + 9);
    let left = pids_running(&["sleep", &format!("{tag}1")]);
    kill_all(&left);
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v1_freezer_kills_every_process_of_a_container() {
    kill_takes_every_process(
        false,
        "the_v1_freezer_kills_every_process_of_a_container",
        "109",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cgroup2_kill_ends_every_process_of_a_container() {
    kill_takes_every_process(
        true,
        "cgroup2_kill_ends_every_process_of_a_container",
        "110",
    )
    .await;
}

/// A process allocating past `cg`'s memory limit is OOM-killed (the test process lives).
async fn memory_limit_holds(v2: bool, name: &str) {
    let Some(cg) = cgroup_on(v2, name, &memory_limit()) else {
        return;
    };
    let (_child, exit) = spawn_in(&cg, "head -c 268435456 /dev/zero | tail");
    let code = tokio::time::timeout(Duration::from_secs(20), exit)
        .await
        .unwrap()
        .unwrap();
    // The pipeline's status is tail's: SIGKILLed by the OOM killer.
    assert_eq!(code, 137);
    let usage = cg.usage();
    assert!(usage.oom_kills.unwrap() >= 1, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v1_memory_limit_oom_kills_inside_the_cgroup() {
    memory_limit_holds(false, "the_v1_memory_limit_oom_kills_inside_the_cgroup").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v2_memory_limit_oom_kills_inside_the_cgroup() {
    memory_limit_holds(true, "the_v2_memory_limit_oom_kills_inside_the_cgroup").await;
}

/// A fork beyond `cg`'s pids limit fails.
async fn pids_limit_holds(v2: bool, name: &str) {
    let limits = WorkloadLimits {
        pids_max: Some(2),
        ..WorkloadLimits::default()
    };
    let Some(cg) = cgroup_on(v2, name, &limits) else {
        return;
    };
    // The shell and one sleep fit; the second sleep is refused (and the shell fails).
    let (_child, exit) = spawn_in(&cg, "sleep 5 & sleep 0; exit 0");
    let code = tokio::time::timeout(Duration::from_secs(20), exit)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(code, 0, "the fork beyond the limit was not refused");
    assert!(cg.usage().forks_refused.unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v1_pids_limit_refuses_forks() {
    pids_limit_holds(false, "the_v1_pids_limit_refuses_forks").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_v2_pids_limit_refuses_forks() {
    pids_limit_holds(true, "the_v2_pids_limit_refuses_forks").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cpu_quota_bounds_the_cpu_time_of_a_busy_loop() {
    let name = "a_cpu_quota_bounds_the_cpu_time_of_a_busy_loop";
    if !cgroups_available(name) {
        return;
    }
    // 10% of a CPU.
    let limits = WorkloadLimits {
        cpu_max: Some(CpuMax::millicores(100)),
        ..WorkloadLimits::default()
    };
    if !crate::cgroup::unenforceable(&limits).is_empty() {
        eprintln!("skipped {name}: no cpu controller available to cairn here");
        return;
    }
    let d = dir(name);
    std::fs::create_dir_all(&d).unwrap();
    let cg = Cgroup::create(Layout::host(), &d, &limits).unwrap();
    let (_child, _exit) = spawn_in(&cg, "while :; do :; done");
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = Duration::from_micros(cg.usage().cpu_usec.unwrap());
    let elapsed = start.elapsed();
    cg.kill();
    // 10% of the time it ran, and a period of slack.
    assert!(
        used <= elapsed / 10 + Duration::from_millis(150),
        "{used:?} of CPU in {elapsed:?}"
    );
    assert!(used > Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_limits_of_running_workloads_change_in_place() {
    let name = "the_limits_of_running_workloads_change_in_place";
    let limits = WorkloadLimits {
        memory_max: Some(64 << 20),
        pids_max: Some(100),
        cpu_max: Some(CpuMax::millicores(500)),
    };
    if !cgroups_available(name) || !crate::cgroup::unenforceable(&limits).is_empty() {
        eprintln!("skipped {name}: the memory, pids and cpu controllers are not all available");
        return;
    }
    let sup = open(name, limits, &service("sleep 1089"));
    assert_eq!(sup.workload_limits(), limits);
    let tighter = WorkloadLimits {
        pids_max: Some(1),
        ..limits
    };
    sup.set_workload_limits(tighter).unwrap();
    assert_eq!(sup.workload_limits(), tighter);
    // One task is the most: the exec's shell cannot fork.
    let out = exec(&sup, "sleep 0; echo forked").await;
    assert!(
        out.to_lowercase().contains("fork") && !out.contains("forked"),
        "{out}"
    );
    sup.set_workload_limits(WorkloadLimits::default()).unwrap();
    assert_eq!(exec(&sup, "sleep 0 && echo forked").await, "forked\n");
    sup.stop_all().await;
}

/// The environment variable that makes the helper hold a container, naming it.
const HOLDER_DIR: &str = "CAIRN_TEST_HOLDING_SUPERVISOR_DIR";

/// Not a test: a supervisor process holding the container of the test below.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper process of a_container_directory_opens_in_one_supervisor_at_a_time"]
async fn holding_supervisor_helper() {
    let Ok(d) = std::env::var(HOLDER_DIR) else {
        return;
    };
    let _sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    println!("open");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_directory_opens_in_one_supervisor_at_a_time() {
    use std::io::BufRead;
    let d = dir("locked");
    // In this process: refused while the first is open, fine once it is dropped.
    let first = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let refused = Supervisor::open(SupervisorOptions::new(&d)).err().unwrap();
    assert!(
        refused
            .to_string()
            .starts_with(&format!("cannot open container: {} is in use", d.display())),
        "{refused}"
    );
    // The refused open did not release the first one's lock.
    drop(first);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    drop(again);
    // In another process.
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "tests::cgroups::holding_supervisor_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(HOLDER_DIR, &d)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(holder.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("open")));
    let refused = Supervisor::open(SupervisorOptions::new(&d)).err();
    let _ = holder.kill();
    let _ = holder.wait();
    let refused = refused.expect("opened a container another process holds");
    assert!(
        refused.to_string().contains(&format!(
            "is in use by another supervisor (pid {})",
            holder.id()
        )),
        "{refused}"
    );
    // Its death released it.
    Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let _ = std::fs::remove_dir_all(&d);
}
