//! Isolated containers on real processes and a real root directory ("a path
//! outside what the container may touch … gets Pebble's error, and nothing is written").
//! The supervisor enters mount namespaces, so these need root (as CI runs them); elsewhere
//! they say they were skipped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::{Endpoint, ExecArgs, Stdin};
use crate::files::{self, Ownership, WriteItem};
use crate::{ServicesAction, Supervisor, SupervisorOptions};

/// An isolated supervisor: its container directory and its root inside it.
/// With `strict`, the container also gets its user, pid and network namespaces (the same
/// tests run in both modes).
fn isolated(name: &str, strict: bool) -> (Supervisor, PathBuf, PathBuf) {
    let d = super::temp_dir(if strict { "strict" } else { "iso" }, name);
    let root = d.join("root");
    (Supervisor::open(options(&d, strict)).unwrap(), d, root)
}

/// Options of the isolated (or strict) container at `dir`, its root at `dir/root`.
fn options(dir: &Path, strict: bool) -> SupervisorOptions {
    let mut o = SupervisorOptions::new(dir);
    o.root = Some(dir.join("root"));
    if strict {
        o.strict = Some(super::strict::options(
            dir,
            crate::namespaces::NetMode::None,
        ));
    }
    o
}

/// Runs `cmd` in the container; returns its exit code and merged output.
pub(super) async fn exec(s: &Supervisor, cmd: &[&str]) -> (i64, String) {
    let started = s
        .exec(ExecArgs {
            command: cmd.iter().map(|c| c.to_string()).collect(),
            ..ExecArgs::default()
        })
        .unwrap();
    collect(s, started).await
}

/// Connects a started exec, closes its stdin and collects its exit code and output.
pub(super) async fn collect(s: &Supervisor, started: crate::exec::ExecStarted) -> (i64, String) {
    let Endpoint::Stdio { stdin, mut stdout } = s.exec_connect(&started.task_id, "stdio").unwrap()
    else {
        panic!("not stdio");
    };
    let _ = stdin.send(Stdin::End).await;
    let mut out = Vec::new();
    while let Some(b) = stdout.recv().await {
        out.extend_from_slice(&b);
    }
    let info = s
        .wait_change(&started.change_id, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    let code = info.tasks[0].data["exit-code"].as_i64().unwrap();
    (code, String::from_utf8_lossy(&out).into_owned())
}

pub(super) fn write(s: &Supervisor, path: &str, data: &str, make_dirs: bool) -> Result<(), String> {
    let item = WriteItem {
        path: path.into(),
        make_dirs,
        ownership: Ownership::default(),
    };
    files::write(s.root(), &item, &mut data.as_bytes()).map_err(|e| e.message)
}

async fn isolated_exec_sees_the_root_as_slash_in(strict: bool) {
    if !super::is_root("isolated_exec_sees_the_root_as_slash") {
        return;
    }
    let (s, dir, root) = isolated("exec", strict);
    write(&s, "/etc/app.conf", "inside\n", true).unwrap();
    assert_eq!(
        std::fs::read(root.join("etc/app.conf")).unwrap(),
        b"inside\n"
    );
    assert_eq!(
        exec(&s, &["cat", "/etc/app.conf"]).await,
        (0, "inside\n".into())
    );
    // The host's files outside the root are out of reach.
    let secret = dir.join("secret");
    std::fs::write(&secret, "host only").unwrap();
    let (code, out) = exec(&s, &["cat", secret.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("No such file or directory"), "{out}");
    // System directories are there, read-only; /proc, /dev and /tmp work.
    let (code, out) = exec(&s, &["touch", "/usr/cairn-isolated-x"]).await;
    assert_ne!(code, 0);
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(!Path::new("/usr/cairn-isolated-x").exists());
    let (code, out) = exec(
        &s,
        &[
            "sh",
            "-c",
            "pwd; test -d /proc/self && echo proc; echo x > /dev/null && echo dev; echo t > /tmp/t && cat /tmp/t",
        ],
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "/root\nproc\ndev\nt\n"));
    assert_eq!(std::fs::read(root.join("tmp/t")).unwrap(), b"t\n");
    // The command is the process the supervisor started: its own signal death is 128+n.
    assert_eq!(exec(&s, &["sh", "-c", "kill -TERM $$"]).await.0, 143);
    // The user switch happens inside, after the mounts.
    let started = s
        .exec(ExecArgs {
            command: vec!["sh".into(), "-c".into(), "id -u; pwd".into()],
            user_id: Some(65534),
            group_id: Some(65534),
            working_dir: "/tmp".into(),
            ..ExecArgs::default()
        })
        .unwrap();
    assert_eq!(collect(&s, started).await, (0, "65534\n/tmp\n".into()));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn isolated_services_run_in_the_root_and_stop_as_in_pebble_in(strict: bool) {
    if !super::is_root("isolated_services_run_in_the_root_and_stop_as_in_pebble") {
        return;
    }
    let (s, dir, root) = isolated("svc", strict);
    let host_tmp = format!("/tmp/cairn-iso-svc-out-{}", std::process::id());
    let layer = format!(
        "services:\n  svc:\n    override: replace\n    command: sh -c 'echo up > {host_tmp}; trap \"echo bye > {host_tmp}.bye; exit 0\" TERM; while true; do sleep 0.1; done'\n    startup: enabled\n"
    );
    s.add_layer("base", layer.as_bytes(), false, false).unwrap();
    s.run_services_action(ServicesAction::Autostart, &[])
        .await
        .unwrap();
    let inside = root.join(host_tmp.trim_start_matches('/'));
    assert_eq!(std::fs::read(&inside).unwrap(), b"up\n");
    assert!(
        !Path::new(&host_tmp).exists(),
        "the service wrote on the host"
    );
    // SIGTERM reaches the service itself (no wrapper in between): its trap runs.
    s.run_services_action(ServicesAction::Stop, &["svc".to_string()])
        .await
        .unwrap();
    let bye = root.join(format!("{}.bye", host_tmp.trim_start_matches('/')));
    assert_eq!(std::fs::read(bye).unwrap(), b"bye\n");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn isolated_files_never_leave_the_root_in(strict: bool) {
    if !super::is_root("isolated_files_never_leave_the_root") {
        return;
    }
    let (s, dir, root) = isolated("files", strict);
    let secret = dir.join("secret");
    std::fs::write(&secret, "host only").unwrap();
    // An absolute link to a host file resolves inside the root: not found, nothing read.
    std::os::unix::fs::symlink(&secret, root.join("evil")).unwrap();
    let e = files::open_read(s.root(), "/evil").unwrap_err();
    assert_eq!(
        (e.kind.as_str(), e.message.as_str()),
        ("not-found", "stat /evil: no such file or directory")
    );
    // A link to / and climbing with .. stay in the root too.
    std::os::unix::fs::symlink("/", root.join("slash")).unwrap();
    std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
    let target = format!("/slash{}", secret.display());
    let e = write(&s, &target, "pwned", false).unwrap_err();
    assert_eq!(e, format!("open {target}: no such file or directory"));
    assert_eq!(std::fs::read(&secret).unwrap(), b"host only");
    write(&s, "/up/../../tmp/landed", "in", false).unwrap();
    assert_eq!(std::fs::read(root.join("tmp/landed")).unwrap(), b"in");
    write(&s, "/slash/tmp/landed2", "in", false).unwrap();
    assert!(root.join("tmp/landed2").is_file());
    // A link as the final element is replaced by a write, never followed.
    std::os::unix::fs::symlink(&secret, root.join("tmp/link")).unwrap();
    write(&s, "/tmp/link", "replaced", false).unwrap();
    assert_eq!(std::fs::read(&secret).unwrap(), b"host only");
    assert_eq!(std::fs::read(root.join("tmp/link")).unwrap(), b"replaced");
    // Removing through a link removes the link, inside the root.
    std::os::unix::fs::symlink(&secret, root.join("tmp/link2")).unwrap();
    files::remove(s.root(), "/tmp/link2", false).unwrap();
    assert!(secret.exists());
    // System directories read from the host and refuse writes, with nothing written.
    let listed = files::list(s.root(), "/usr/bin", "sh", false).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].path, "/usr/bin/sh");
    let e = write(&s, "/usr/cairn-isolated-y", "x", false).unwrap_err();
    assert_eq!(e, "open /usr/cairn-isolated-y: read-only file system");
    let e = files::make_dir(
        s.root(),
        "/usr/cairn-isolated-d",
        false,
        &Ownership::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.message,
        "mkdir /usr/cairn-isolated-d.mkdir-new: read-only file system"
    );
    assert!(!Path::new("/usr/cairn-isolated-y").exists());
    assert!(!Path::new("/usr/cairn-isolated-d").exists());
    // Relative and missing paths get Pebble's errors as in a shared container.
    let e = write(&s, "tmp/x", "x", false).unwrap_err();
    assert_eq!(e, "paths must be absolute, got \"tmp/x\"");
    let e = files::open_read(s.root(), "/nope").unwrap_err();
    assert_eq!(e.message, "stat /nope: no such file or directory");
    // Listing / shows the root's own entries.
    let names: Vec<String> = files::list(s.root(), "/", "", false)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert!(names.contains(&"evil".to_string()) && names.contains(&"usr".to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn isolated_files_stay_beneath_system_dirs_and_off_mount_points_in(strict: bool) {
    if !super::is_root("isolated_files_stay_beneath_system_dirs_and_off_mount_points") {
        return;
    }
    let (s, dir, root) = isolated("beneath", strict);
    // A link in the host's /usr that points out of it (as /usr/lib/ssl/private does):
    // inside the container it would lead into the root, so the files API refuses it.
    let link = PathBuf::from(format!("/usr/local/cairn-iso-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    struct Unlink(PathBuf);
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _guard = Unlink(link.clone());
    let through = format!("{}/hostname", link.display());
    let e = files::open_read(s.root(), &through).unwrap_err();
    assert_eq!(
        (e.kind.as_str(), e.message),
        (
            "permission-denied",
            format!("stat {through}: permission denied")
        )
    );
    let e = files::list(s.root(), &link.display().to_string(), "", false).unwrap_err();
    assert_eq!(e.kind, files::FileErrorKind::PermissionDenied);
    // /proc and /dev are mount points inside: nothing is written or removed there.
    let e = write(&s, "/proc/x", "x", false).unwrap_err();
    assert_eq!(e, "open /proc/x: read-only file system");
    let e = files::remove(s.root(), "/dev", true).unwrap_err();
    assert_eq!(e.message, "unlinkat /dev: read-only file system");
    assert!(root.join("dev").is_dir() && !root.join("proc/x").exists());
    // What the container left in place of the mount points and links is put right on the
    // next open, without following it.
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::remove_dir(root.join("tmp")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("tmp")).unwrap();
    drop(s);
    let s = Supervisor::open(options(&dir, strict)).unwrap();
    assert!(
        std::fs::symlink_metadata(root.join("tmp"))
            .unwrap()
            .is_dir()
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&outside).unwrap().permissions().mode() & 0o7777;
    assert_ne!(
        mode, 0o1777,
        "the host directory was chmodded through the link"
    );
    assert_eq!(
        exec(&s, &["sh", "-c", "echo ok > /tmp/ok && cat /tmp/ok"]).await,
        (0, "ok\n".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn exec_output_ends_when_a_grandchild_keeps_the_pipe_in(strict: bool) {
    let (s, dir, _root) = isolated("grandchild", strict);
    let t = std::time::Instant::now();
    let (code, out) = exec(&s, &["sh", "-c", "sleep 30 & echo started"]).await;
    assert_eq!((code, out.as_str()), (0, "started\n"));
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

async fn isolated_links_into_system_dirs_are_followed_as_inside_in(strict: bool) {
    if !super::is_root("isolated_links_into_system_dirs_are_followed_as_inside") {
        return;
    }
    let (s, dir, root) = isolated("links", strict);
    // A link the container made into /usr (as a virtualenv's bin/python is): exec finds the
    // program the way the container's kernel would.
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/sh", root.join("app/sh")).unwrap();
    assert_eq!(
        exec(&s, &["/app/sh", "-c", "echo through the link"]).await,
        (0, "through the link\n".into())
    );
    // Writes through a link into /usr, or onto a system name, are refused, not hidden
    // under the mount point.
    std::os::unix::fs::symlink("/usr", root.join("tmp/u")).unwrap();
    let e = write(&s, "/tmp/u/x", "x", false).unwrap_err();
    assert_eq!(e, "open /tmp/u/x: read-only file system");
    assert!(!root.join("usr/x").exists());
    let e = write(&s, "/bin", "x", false).unwrap_err();
    assert_eq!(e, "open /bin: read-only file system");
    assert!(std::fs::symlink_metadata(root.join("bin")).is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each test above as an isolated container, and as a strict one.
macro_rules! in_both_modes {
    ($($name:ident => $isolated:ident, $strict:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread")]
        async fn $isolated() {
            $name(false).await
        }
        #[tokio::test(flavor = "multi_thread")]
        async fn $strict() {
            $name(true).await
        }
    )*};
}

in_both_modes! {
    isolated_exec_sees_the_root_as_slash_in => isolated_exec_sees_the_root_as_slash, strict_exec_sees_the_root_as_slash;
    isolated_services_run_in_the_root_and_stop_as_in_pebble_in => isolated_services_run_in_the_root_and_stop_as_in_pebble, strict_services_run_in_the_root_and_stop_as_in_pebble;
    isolated_files_never_leave_the_root_in => isolated_files_never_leave_the_root, strict_files_never_leave_the_root;
    isolated_files_stay_beneath_system_dirs_and_off_mount_points_in => isolated_files_stay_beneath_system_dirs_and_off_mount_points, strict_files_stay_beneath_system_dirs_and_off_mount_points;
    exec_output_ends_when_a_grandchild_keeps_the_pipe_in => exec_output_ends_when_a_grandchild_keeps_the_pipe, strict_exec_output_ends_when_a_grandchild_keeps_the_pipe;
    isolated_links_into_system_dirs_are_followed_as_inside_in => isolated_links_into_system_dirs_are_followed_as_inside, strict_links_into_system_dirs_are_followed_as_inside;
}
