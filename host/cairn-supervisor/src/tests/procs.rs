//! Processes are owned by construction: a supervisor killed at any moment of a start leaves
//! nothing running that the next one does not find, and the record of process groups
//! survives torn and garbage lines.

use std::os::unix::process::CommandExt;
use std::time::Duration;

use crate::groups::{GROUPS_FILE, Groups, proc_stat};
use crate::{ServicesAction, Supervisor, SupervisorOptions};

fn dir(name: &str) -> std::path::PathBuf {
    super::temp_dir("procs", name)
}

/// The environment variable that makes the helper run, naming its container directory.
const HELPER_DIR: &str = "CAIRN_TEST_KILLED_SUPERVISOR_DIR";
/// The command of the helper's service, if not the default.
const HELPER_COMMAND: &str = "CAIRN_TEST_KILLED_SUPERVISOR_COMMAND";
/// Milliseconds after a spawn returns at which the helper process SIGKILLs itself.
const DIE_AFTER_SPAWN: &str = "CAIRN_TEST_DIE_AFTER_SPAWN_MS";

/// Called by the supervisor right after a child was spawned, before the spawn's caller does
/// anything else: in the helper process, waits the given time (the child runs meanwhile)
/// and then dies with SIGKILL, as a daemon killed at that moment.
pub(crate) fn die_after_spawn_if_asked() {
    if let Some(ms) = std::env::var(DIE_AFTER_SPAWN)
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
        let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Not a test: the supervisor process the test below kills (run in a child process of the
/// test binary, which does nothing without its environment).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper process of a_supervisor_killed_right_after_a_spawn_leaves_nothing_running"]
async fn killed_supervisor_helper() {
    let Ok(d) = std::env::var(HELPER_DIR) else {
        return;
    };
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let command = std::env::var(HELPER_COMMAND)
        .unwrap_or_else(|_| "sh -c 'sleep 1041 & exec sleep 1042'".into());
    let layer = format!("services:\n  svc:\n    override: replace\n    command: {command}\n");
    sup.add_layer("l", layer.as_bytes(), false, false).unwrap();
    let _ = sup
        .run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await;
    unreachable!("the helper should have been killed after the spawn");
}

fn stragglers() -> Vec<i32> {
    let mut v = super::pids_running(&["sleep", "1041"]);
    v.extend(super::pids_running(&["sleep", "1042"]));
    v.extend(super::pids_running(&[
        "sh",
        "-c",
        "sleep 1041 & exec sleep 1042",
    ]));
    v
}

/// Runs the helper supervisor process on container `d` until it kills itself `die_after_ms`
/// after the spawn of its service returned (with 150 ms, its grandchild is forked by then).
fn run_killed_helper(d: &std::path::Path, die_after_ms: u64) {
    run_killed_helper_with(d, die_after_ms, None);
}

/// [`run_killed_helper`] with the service running `command`.
fn run_killed_helper_with(d: &std::path::Path, die_after_ms: u64, command: Option<&str>) {
    let mut helper = std::process::Command::new(std::env::current_exe().unwrap());
    if let Some(c) = command {
        helper.env(HELPER_COMMAND, c);
    }
    let status = helper
        .args([
            "tests::procs::killed_supervisor_helper",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(HELPER_DIR, d)
        .env(DIE_AFTER_SPAWN, die_after_ms.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the helper was not killed: {status:?}"
    );
}

/// Opens the next supervisor of `d` and checks that nothing of the killed one survives.
async fn reopen_finds_nothing_left(d: &std::path::Path) {
    let sup = Supervisor::open(SupervisorOptions::new(d)).unwrap();
    let left = if super::within(Duration::from_secs(2), || stragglers().is_empty()).await {
        Vec::new()
    } else {
        stragglers()
    };
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "processes of the killed supervisor survive: {left:?}"
    );
    drop(sup);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_killed_right_after_a_spawn_leaves_nothing_running() {
    for ms in [0, 1, 5, 20, 150] {
        let d = dir(&format!("killed-{ms}"));
        std::fs::create_dir_all(&d).unwrap();
        run_killed_helper(&d, ms);
        reopen_finds_nothing_left(&d).await;
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_groups_record_still_stops_what_the_killed_supervisor_left() {
    let d = dir("killed-garbage");
    std::fs::create_dir_all(&d).unwrap();
    // Found through the container's cgroup: where the host has no writable cgroup, only
    // the record can tell.
    if !cgroups_available("an_unreadable_groups_record_still_stops_what_the_killed_supervisor_left")
    {
        return;
    }
    run_killed_helper(&d, 150);
    std::fs::write(d.join(GROUPS_FILE), b"\x00\x00 garbage").unwrap();
    reopen_finds_nothing_left(&d).await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_left_by_a_killed_supervisor_is_killed_through_the_cgroup() {
    if !cgroups_available("a_daemon_left_by_a_killed_supervisor_is_killed_through_the_cgroup") {
        return;
    }
    let d = dir("killed-setsid");
    std::fs::create_dir_all(&d).unwrap();
    run_killed_helper_with(&d, 150, Some("sh -c 'setsid sleep 1047 & exec sleep 1048'"));
    let daemon = || super::pids_running(&["sleep", "1047"]);
    assert_eq!(daemon().len(), 1, "the daemon did not start");
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    // Terminated before the open returned.
    let left = daemon();
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "the killed supervisor's daemon survives: {left:?}"
    );
    assert!(super::pids_running(&["sleep", "1048"]).is_empty());
    drop(sup);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_is_recorded_before_its_command_runs() {
    let d = dir("before");
    let journal = d.join(GROUPS_FILE);
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let layer = format!(
        "services:\n  svc:\n    override: replace\n    command: sh -c 'grep -q \"\\\"pgid\\\":$$,\" {} && echo recorded || echo missing; exec sleep 1043'\n",
        journal.display()
    );
    sup.add_layer("l", layer.as_bytes(), false, false).unwrap();
    sup.run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await
        .unwrap();
    let said: Vec<String> = sup.logs(&[], None).into_iter().map(|e| e.message).collect();
    assert_eq!(said, ["recorded"]);
    sup.stop_all().await;
    let _ = std::fs::remove_dir_all(&d);
}

/// A group leader with a TERM-ignoring grandchild, as a killed supervisor leaves them.
async fn leftover_group() -> (std::process::Child, i32, i32) {
    let child = std::process::Command::new("sh")
        .args([
            "-c",
            "sh -c 'trap \"\" TERM; exec sleep 1044' & exec sleep 1045",
        ])
        .process_group(0)
        .spawn()
        .unwrap();
    let leader = child.id() as i32;
    let members = super::wait_for_members(leader, 2).await;
    let grandchild = members.into_iter().find(|p| *p != leader).unwrap();
    (child, leader, grandchild)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_or_garbage_line_of_the_groups_record_loses_only_itself() {
    let d = dir("torn");
    std::fs::create_dir_all(&d).unwrap();
    let (mut child, leader, grandchild) = leftover_group().await;
    {
        let mut g = Groups::new(Some(&d));
        g.started(leader, "svc", Duration::from_millis(100));
        std::mem::forget(g);
    }
    let path = d.join(GROUPS_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    let (header, records) = text.split_once('\n').unwrap();
    // A garbage line in the middle, a record torn by a crash at the end.
    std::fs::write(
        &path,
        format!("{header}\n\u{0}\u{0}garbage\n{records}{{\"pgid\":12,\"start_ti"),
    )
    .unwrap();
    let _sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let _ = child.wait();
    assert!(proc_stat(leader).is_none(), "leader survived");
    assert!(proc_stat(grandchild).is_none(), "grandchild survived");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_groups_record_of_an_earlier_version_is_still_read() {
    let d = dir("legacy");
    std::fs::create_dir_all(&d).unwrap();
    let (mut child, leader, grandchild) = leftover_group().await;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let (start, _) = proc_stat(leader).unwrap();
    std::fs::write(
        d.join(GROUPS_FILE),
        format!(
            "{{\"boot_id\":\"{}\",\"groups\":{{\"{leader}\":{{\"service\":\"svc\",\"start_time\":{start},\"kill_delay_ms\":100,\"leader_alive\":true}}}}}}",
            boot.trim()
        ),
    )
    .unwrap();
    let _sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let _ = child.wait();
    assert!(proc_stat(leader).is_none(), "leader survived");
    assert!(proc_stat(grandchild).is_none(), "grandchild survived");
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_groups_record_is_kept_aside_not_silently_dropped() {
    let d = dir("garbage");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(GROUPS_FILE), b"\x00\x00{\"pgid\":1").unwrap();
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let aside: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".cairn-groups.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    // The container runs and records anew.
    sup.add_layer(
        "l",
        b"services:\n  svc:\n    override: replace\n    command: sleep 1046\n",
        false,
        false,
    )
    .unwrap();
    sup.run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await
        .unwrap();
    let text = std::fs::read_to_string(d.join(GROUPS_FILE)).unwrap();
    let pid = sup.service_pid("svc").unwrap();
    assert!(text.contains(&format!("\"pgid\":{pid},")), "{text}");
    sup.stop_all().await;
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_left_its_group_still_goes_with_its_supervisor() {
    let d = dir("setsid");
    std::fs::create_dir_all(&d).unwrap();
    if !cgroups_available("a_process_that_left_its_group_still_goes_with_its_supervisor") {
        return;
    }
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer(
        "l",
        b"services:\n  svc:\n    override: replace\n    command: sh -c 'setsid sleep 1061 & exec sleep 1062'\n",
        false,
        false,
    )
    .unwrap();
    sup.run_services_action(ServicesAction::Start, &["svc".to_string()])
        .await
        .unwrap();
    let escaped = || super::pids_running(&["sleep", "1061"]);
    assert!(super::within(Duration::from_secs(2), || !escaped().is_empty()).await);
    drop(sup);
    // Killed when the supervisor's last reference goes (its tasks let go a moment later).
    super::within(Duration::from_secs(3), || escaped().is_empty()).await;
    let left = escaped();
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        left.is_empty(),
        "a daemon of the service outlived it: {left:?}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

/// Whether container cgroups can be made here; says why `test` is skipped if not.
pub(crate) fn cgroups_available(test: &str) -> bool {
    let available = !crate::cgroup::Layout::host().is_empty();
    if !available {
        eprintln!(
            "skipped {test}: needs a writable cgroup hierarchy (v1 or v2) to put containers in"
        );
    }
    available
}
