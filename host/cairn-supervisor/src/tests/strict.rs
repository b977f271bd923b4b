//! Strict containers (user, pid and network namespaces) against what a hostile root
//! workload tries: the host's files through `/proc/<pid>/root`, a root-only socket of the
//! host, another container's processes, the host's environment and network. Each attack is
//! checked to work from the host (or a shared container) first, so the test can fail.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use super::sandbox::{collect, exec, write};
use crate::exec::ExecArgs;
use crate::files::{self, Ownership};
use crate::namespaces::{IdAllocator, NetMode, StrictOptions};
use crate::{ServicesAction, Supervisor, SupervisorOptions};

/// Strict options for the container at `dir`, its range from one allocator per test
/// process (so that containers of concurrent tests never share ids).
pub(super) fn options(dir: &Path, net: NetMode) -> StrictOptions {
    static IDS: OnceLock<IdAllocator> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        let d = super::temp_dir("strict", "id-ranges");
        std::fs::create_dir_all(&d).unwrap();
        IdAllocator::new(d.join("ids.json"), crate::namespaces::DEFAULT_ID_BASE)
    });
    StrictOptions {
        ids: ids.allocate(&dir.display().to_string()).unwrap(),
        net,
    }
}

fn strict(name: &str, net: NetMode) -> (Supervisor, std::path::PathBuf) {
    let d = super::temp_dir("strict", name);
    let mut o = SupervisorOptions::new(&d);
    o.root = Some(d.join("root"));
    o.strict = Some(options(&d, net));
    (Supervisor::open(o).unwrap(), d)
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_root_cannot_read_host_files_through_proc_root() {
    if !super::is_root("strict_root_cannot_read_host_files_through_proc_root") {
        return;
    }
    let (s, dir) = strict("procroot", NetMode::Host);
    let secret = dir.join("secret");
    std::fs::write(&secret, "host only").unwrap();
    let me = std::process::id();
    // From the host, the path works (what a root workload without namespaces did).
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{me}/root{}", secret.display())).unwrap(),
        "host only"
    );
    let script = format!(
        "id -u; for p in /proc/[0-9]*; do cat $p/root{0} 2>/dev/null && echo LEAK $p; done; \
         cat /proc/{me}/root{0} 2>/dev/null && echo LEAK daemon; \
         echo pwned > /proc/1/root/tmp/cairn-strict-pwned-{me} 2>/dev/null && echo LEAK write; \
         ls /proc | grep -c '^[0-9]'",
        secret.display()
    );
    let (code, out) = exec(&s, &["sh", "-c", &script]).await;
    assert!(!out.contains("LEAK"), "{out}");
    assert!(!Path::new(&format!("/tmp/cairn-strict-pwned-{me}")).exists());
    let lines: Vec<&str> = out.lines().collect();
    // Runs as the container's root; sees only its own few processes (init, sh, ls, grep).
    assert_eq!((code, lines[0]), (0, "0"), "{out}");
    let seen: usize = lines.last().unwrap().parse().unwrap();
    assert!(seen <= 5, "saw {seen} processes: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_root_cannot_connect_to_a_root_only_host_socket() {
    if !super::is_root("strict_root_cannot_connect_to_a_root_only_host_socket") {
        return;
    }
    let (s, dir) = strict("socket", NetMode::Host);
    // A socket like the daemon's control socket: root's, mode 0600, outside the root.
    let path = dir.join("control.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let me = std::process::id();
    let probe = format!(
        "import socket, glob\n\
         paths = ['{0}', '/proc/{me}/root{0}', '/proc/{me}/cwd/{1}'] + [p + '/root{0}' for p in glob.glob('/proc/[0-9]*')]\n\
         for p in paths:\n\
         \x20   try:\n\
         \x20       c = socket.socket(socket.AF_UNIX); c.connect(p); print('LEAK', p)\n\
         \x20   except OSError as e:\n\
         \x20       pass\n\
         print('done')\n",
        path.display(),
        path.strip_prefix(std::env::current_dir().unwrap_or_default())
            .unwrap_or(&path)
            .display()
    );
    let (code, out) = exec(&s, &["/usr/bin/python3", "-c", &probe]).await;
    assert_eq!((code, out.as_str()), (0, "done\n"));
    // The host reaches it (so the probe above could have).
    std::os::unix::net::UnixStream::connect(&path).unwrap();
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_containers_cannot_see_or_signal_each_other() {
    if !super::is_root("strict_containers_cannot_see_or_signal_each_other") {
        return;
    }
    let (a, adir) = strict("see-a", NetMode::None);
    let (b, bdir) = strict("see-b", NetMode::None);
    let layer = "services:\n  victim:\n    override: replace\n    command: sleep 4321\n    startup: enabled\n";
    b.add_layer("base", layer.as_bytes(), false, false).unwrap();
    b.run_services_action(ServicesAction::Autostart, &[])
        .await
        .unwrap();
    let victim = b.service_pid("victim").unwrap();
    // The leader recorded its group by its host pid (not its pid inside, 2).
    let journal = std::fs::read_to_string(bdir.join(crate::groups::GROUPS_FILE)).unwrap();
    let starts: Vec<&str> = journal.lines().filter(|l| l.contains("pgid")).collect();
    assert!(!starts.is_empty(), "{journal}");
    for line in starts {
        assert!(line.contains(&format!("\"pgid\":{victim},")), "{journal}");
    }
    // Inside b, the service is not pid 1 (the init is), and b sees it.
    let (_, inside_b) = exec(&b, &["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).await;
    assert!(inside_b.contains("sleep 4321"), "{inside_b}");
    let (_, pid1) = exec(&b, &["cat", "/proc/1/cmdline"]).await;
    assert!(!pid1.contains("sleep"), "the service is pid 1: {pid1}");
    // a sees none of b's processes, and cannot signal them by any pid.
    let script = format!(
        "cat /proc/[0-9]*/cmdline | tr '\\0' ' ' | grep -c 'sleep 432[1]'; \
         kill -TERM {victim} 2>&1 || echo refused; \
         for p in 1 2 3 4 5 6 7 8; do kill -0 $p 2>/dev/null && echo live $p; done; \
         kill -KILL 1 2>&1; echo after"
    );
    let (_, out) = exec(&a, &["sh", "-c", &script]).await;
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("refused"), "{out}");
    assert!(out.contains("after"), "{out}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        crate::groups::proc_stat(victim).is_some(),
        "b's service was killed from a"
    );
    assert_eq!(b.services(&[])[0].current, crate::ServiceStatus::Active);
    // The host (operator) can signal it, as before.
    b.run_services_action(ServicesAction::Stop, &["victim".to_string()])
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&adir);
    let _ = std::fs::remove_dir_all(&bdir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_keeps_pebble_exit_codes_and_signals() {
    if !super::is_root("strict_keeps_pebble_exit_codes_and_signals") {
        return;
    }
    let (s, dir) = strict("codes", NetMode::None);
    assert_eq!(exec(&s, &["sh", "-c", "exit 3"]).await.0, 3);
    assert_eq!(exec(&s, &["sh", "-c", "kill -TERM $$"]).await.0, 143);
    let (code, out) = exec(&s, &["sh", "-c", "echo $$"]).await;
    assert_eq!(code, 0);
    assert!(out.trim().parse::<i32>().unwrap() > 1, "{out}");
    // An exec's background process, orphaned, is reaped by the container's init: no zombie.
    let (code, _) = exec(&s, &["sh", "-c", "(sleep 0.2 &) ; exit 0"]).await;
    assert_eq!(code, 0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, states) = exec(
        &s,
        &[
            "sh",
            "-c",
            "cat /proc/[0-9]*/stat | awk '{print $3}' | sort | uniq -c",
        ],
    )
    .await;
    assert!(!states.contains(" Z"), "{states}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_files_and_exec_use_container_ids() {
    if !super::is_root("strict_files_and_exec_use_container_ids") {
        return;
    }
    let (s, dir) = strict("ids", NetMode::None);
    let ids = s.root().unwrap().ids().unwrap();
    write(&s, "/srv/app/conf", "x", true).unwrap();
    use std::os::unix::fs::MetadataExt;
    let host = std::fs::metadata(dir.join("root/srv/app/conf")).unwrap();
    assert_eq!((host.uid(), host.gid()), (ids.base, ids.base));
    let listed = files::list(s.root(), "/srv/app/conf", "", false).unwrap();
    assert_eq!((listed[0].user_id, listed[0].group_id), (Some(0), Some(0)));
    let own = Ownership {
        user_id: Some(1000),
        group_id: Some(1000),
        ..Ownership::default()
    };
    files::make_dir(s.root(), "/home/u", true, &own).unwrap();
    let host = std::fs::metadata(dir.join("root/home/u")).unwrap();
    assert_eq!(host.uid(), ids.base + 1000);
    // An id outside the range is refused.
    let far = Ownership {
        user_id: Some(70000),
        group_id: Some(70000),
        ..Ownership::default()
    };
    assert!(files::make_dir(s.root(), "/far", false, &far).is_err());
    // Inside, the same files have the same owners.
    let (code, out) = exec(&s, &["stat", "-c", "%u:%g", "/srv/app/conf", "/home/u"]).await;
    assert_eq!((code, out.as_str()), (0, "0:0\n1000:1000\n"));
    // exec's user-id is a container id; a non-root user keeps no capability.
    let started = s
        .exec(ExecArgs {
            command: vec![
                "sh".into(),
                "-c".into(),
                "id -u; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; touch /srv/app/conf 2>&1 || echo denied".into(),
            ],
            user_id: Some(1000),
            group_id: Some(1000),
            working_dir: "/".into(),
            ..ExecArgs::default()
        })
        .unwrap();
    let (code, out) = collect(&s, started).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.starts_with("1000\nCapEff:\t0000000000000000\n"),
        "{out}"
    );
    assert!(out.contains("CapBnd:\t00000000000004fb"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("denied"),
        "{out}"
    );
    // Root keeps only the minimal set.
    let (_, out) = exec(&s, &["grep", "CapEff", "/proc/self/status"]).await;
    assert_eq!(out, "CapEff:\t00000000000004fb\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_workloads_get_a_minimal_environment_and_no_network() {
    if !super::is_root("strict_workloads_get_a_minimal_environment_and_no_network") {
        return;
    }
    let (s, dir) = strict("env", NetMode::None);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (code, out) = exec(&s, &["env"]).await;
    assert_eq!(code, 0);
    let mut names: Vec<&str> = out.lines().filter_map(|l| l.split('=').next()).collect();
    names.sort();
    assert_eq!(names, ["HOME", "LANG", "PATH", "USER"], "{out}");
    let probe = format!(
        "import socket\ntry:\n  socket.create_connection(('127.0.0.1', {port}), 2); print('LEAK')\nexcept OSError:\n  print('refused')\n"
    );
    let (_, out) = exec(&s, &["/usr/bin/python3", "-c", &probe]).await;
    assert_eq!(out, "refused\n");
    // Its network, IPC, UTS, pid and user namespaces are none of the host's.
    let kinds = ["net", "ipc", "uts", "pid", "user"];
    let script: Vec<String> = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect();
    let (_, out) = exec(&s, &["sh", "-c", &script.join("; ")]).await;
    let inside: Vec<&str> = out.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out}");
    for (k, seen) in kinds.iter().zip(inside) {
        let host = std::fs::read_link(format!("/proc/self/ns/{k}")).unwrap();
        assert_ne!(host.to_str().unwrap(), seen, "{k}");
    }
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_container_processes_die_with_its_namespaces() {
    if !super::is_root("strict_container_processes_die_with_its_namespaces") {
        return;
    }
    let (s, dir) = strict("die", NetMode::None);
    // A process that left its group and session: found only through the namespace.
    let (code, _) = exec(&s, &["sh", "-c", "setsid sleep 9753 > /dev/null 2>&1 &"]).await;
    assert_eq!(code, 0);
    assert!(
        super::within(Duration::from_secs(5), || !super::pids_running(&[
            "sleep", "9753"
        ])
        .is_empty())
        .await
    );
    drop(s);
    assert!(
        super::within(Duration::from_secs(5), || super::pids_running(&[
            "sleep", "9753"
        ])
        .is_empty())
        .await,
        "the setsid process outlived its container"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
