//! The state file under concurrent writers, corruption, write failures and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::{ErrorKind, STATE_FILE, ServicesAction, Supervisor, SupervisorOptions};

fn dir(name: &str) -> std::path::PathBuf {
    super::temp_dir("persist", name)
}

fn layer(i: usize) -> String {
    format!("services:\n  s{i}:\n    override: replace\n    command: sleep 1{i:03}\n")
}

/// Names of the files in `d` starting with `prefix`.
fn files_starting(d: &std::path::Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_never_leave_an_empty_or_torn_state_file_nor_lose_a_layer() {
    let d = dir("concurrent");
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let path = d.join(STATE_FILE);
    let stop = Arc::new(AtomicBool::new(false));
    let bad = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    // A reader polling the file as an operator's tool (or a restart) would.
    let reader = {
        let (stop, bad, reads, path) = (stop.clone(), bad.clone(), reads.clone(), path.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(data) = std::fs::read(&path) {
                    reads.fetch_add(1, Ordering::Relaxed);
                    if serde_json::from_slice::<serde_json::Value>(&data).is_err() {
                        bad.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    const LAYERS: usize = 48;
    let mut writers = Vec::new();
    for w in 0..4 {
        let sup = sup.clone();
        writers.push(tokio::task::spawn_blocking(move || {
            for i in (w..LAYERS).step_by(4) {
                sup.add_layer(&format!("l{i}"), layer(i).as_bytes(), false, false)?;
                sup.notify(
                    Some(0),
                    &format!("example.com/n{i}"),
                    Default::default(),
                    None,
                )?;
            }
            Ok::<_, crate::SupervisorError>(())
        }));
    }
    // Changes persisted by the background saver at the same time.
    let starter = {
        let sup = sup.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                let _ = sup.services_action(ServicesAction::Replan, &[]);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    for w in writers {
        w.await.unwrap().expect("an acknowledged write failed");
    }
    starter.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let reads = reads.load(Ordering::Relaxed);
    eprintln!("{reads} reads of the state file during the writes");
    assert!(reads > 0);
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "unreadable state file in {reads} reads"
    );
    // Every acknowledged layer is on disk: no older snapshot landed after a newer one.
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(state["layers"].as_array().unwrap().len(), LAYERS);
    assert!(files_starting(&d, "..pebble.state.tmp").is_empty());
    sup.stop_all().await;
    drop(sup);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert_eq!(again.layers().len(), LAYERS);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_state_file_is_moved_aside_and_the_container_starts() {
    for (name, content) in [
        ("empty", &b""[..]),
        (
            "truncated",
            &b"{\"layers\":[{\"order\":1,\"label\":\"x\""[..],
        ),
        ("garbage", &b"\x00\x01not json at all"[..]),
    ] {
        let d = dir(&format!("unreadable-{name}"));
        std::fs::create_dir_all(d.join("layers")).unwrap();
        std::fs::write(
            d.join("layers/001-base.yaml"),
            "services:\n  base:\n    override: replace\n    command: sleep 1000\n",
        )
        .unwrap();
        std::fs::write(d.join(STATE_FILE), content).unwrap();
        let sup = Supervisor::open(SupervisorOptions::new(&d))
            .unwrap_or_else(|e| panic!("{name}: the container does not start: {e}"));
        assert!(sup.plan().services.contains_key("base"), "{name}");
        let aside = files_starting(&d, ".pebble.state.corrupt-");
        assert_eq!(aside.len(), 1, "{name}: {aside:?}");
        assert_eq!(std::fs::read(d.join(&aside[0])).unwrap(), content, "{name}");
        // And the container goes on persisting.
        sup.add_layer("more", layer(1).as_bytes(), false, false)
            .unwrap();
        drop(sup);
        let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
        assert!(again.plan().services.contains_key("s1"), "{name}");
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_supervisor_opening_its_directory_removes_temps_left_by_a_crash() {
    let d = dir("stale");
    std::fs::create_dir_all(&d).unwrap();
    for f in [
        // As earlier versions named them, and as this one does.
        "..pebble.state.tmp4242",
        ".cairn-groups.tmp4242",
        "..pebble.state.tmp-4242-7",
        "..cairn-groups.json.tmp-4242-8",
    ] {
        std::fs::write(d.join(f), b"").unwrap();
    }
    let _sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let left: Vec<String> = files_starting(&d, ".")
        .into_iter()
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(&d);
}

/// What a failed state write must look like to the client and to the next start.
fn assert_refused_and_rolled_back(sup: &Supervisor, d: &std::path::Path, why: &str) {
    let e = sup
        .add_layer("lost", layer(2).as_bytes(), false, false)
        .expect_err("a layer that cannot be persisted was acknowledged");
    assert_eq!(e.kind(), ErrorKind::Internal);
    let text = e.to_string();
    assert!(text.starts_with("cannot persist state: "), "{text}");
    assert!(text.contains(why), "{text}");
    assert!(!sup.plan().services.contains_key("s2"), "not rolled back");
    assert_eq!(sup.layers().len(), 1);
    let e = sup
        .notify(Some(0), "example.com/lost", Default::default(), None)
        .expect_err("a notice that cannot be persisted was acknowledged");
    assert_eq!(e.kind(), ErrorKind::Internal);
    let filter = crate::NoticeFilter::default();
    assert!(
        sup.notices(&filter)
            .iter()
            .all(|n| n.key != "example.com/lost"),
        "notice not rolled back"
    );
    let _ = d;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_that_cannot_be_persisted_is_an_error_and_is_rolled_back() {
    let d = dir("unwritable");
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer("kept", layer(1).as_bytes(), false, false)
        .unwrap();
    // The names of the state file and the notices' taken by directories: every rename onto
    // them fails (EISDIR), for root as for anyone.
    std::fs::remove_file(d.join(STATE_FILE)).unwrap();
    let _ = std::fs::remove_file(d.join(crate::NOTICES_FILE));
    for f in [STATE_FILE, crate::NOTICES_FILE] {
        std::fs::create_dir_all(d.join(f).join("x")).unwrap();
    }
    assert_refused_and_rolled_back(&sup, &d, "directory");
    assert!(files_starting(&d, "..pebble.state.tmp").is_empty());
    assert!(files_starting(&d, "..pebble.notices.tmp").is_empty());
    // Once writable again, what was acknowledged is what comes back.
    std::fs::remove_dir_all(d.join(STATE_FILE)).unwrap();
    std::fs::remove_dir_all(d.join(crate::NOTICES_FILE)).unwrap();
    sup.add_layer("after", layer(3).as_bytes(), false, false)
        .unwrap();
    drop(sup);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    let plan = again.plan();
    assert!(plan.services.contains_key("s1") && plan.services.contains_key("s3"));
    assert!(!plan.services.contains_key("s2"));
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_layer_added_on_a_full_disk_is_an_error_and_is_rolled_back() {
    if !super::is_root("a_layer_added_on_a_full_disk_is_an_error_and_is_rolled_back") {
        return;
    }
    let d = dir("full");
    std::fs::create_dir_all(&d).unwrap();
    // A tiny filesystem of our own to fill.
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&d)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _unmount = Unmount(d.clone());
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer("kept", layer(1).as_bytes(), false, false)
        .unwrap();
    // Fill the disk.
    let filler = d.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        while f.write_all(&[0u8; 4096]).is_ok() {}
    }
    assert_refused_and_rolled_back(&sup, &d, "No space left on device");
    // The state file was left whole.
    let data = std::fs::read(d.join(STATE_FILE)).unwrap();
    serde_json::from_slice::<serde_json::Value>(&data).unwrap();
    std::fs::remove_file(&filler).unwrap();
    drop(sup);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert!(again.plan().services.contains_key("s1"));
    assert!(!again.plan().services.contains_key("s2"));
}

#[test]
fn waiting_on_a_change_while_the_runtime_shuts_down_is_an_error_not_a_panic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = dir("shutdown");
    let (sup, id) = rt.block_on(async {
        let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
        sup.add_layer(
            "l",
            b"services:\n  svc:\n    override: replace\n    command: sleep 1031\n",
            false,
            false,
        )
        .unwrap();
        // Pending for the okay delay (1 s).
        let id = sup
            .services_action(ServicesAction::Start, &["svc".to_string()])
            .unwrap();
        (sup, id)
    });
    // A charm's hook waits from a blocking thread, as the wasm host does.
    let handle = rt.handle().clone();
    let waiter = {
        let sup = sup.clone();
        std::thread::spawn(move || {
            handle.block_on(sup.wait_change(&id, Some(Duration::from_secs(30))))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    rt.shutdown_timeout(Duration::from_millis(100));
    let result = waiter.join().expect("wait_change panicked");
    assert!(result.is_err(), "{result:?}");
    drop(sup);
    let _ = std::fs::remove_dir_all(&d);
}

/// The number of changes in the change history file in `d`, if it is there.
fn changes_on_disk(d: &std::path::Path) -> Option<usize> {
    let data = std::fs::read(d.join(crate::CHANGES_FILE)).ok()?;
    let book: serde_json::Value = serde_json::from_slice(&data).ok()?;
    book["changes"].as_object().map(|m| m.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_history_is_written_apart_from_what_is_acknowledged_and_survives_a_restart() {
    let d = dir("history");
    let sup = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    sup.add_layer("l1", layer(1).as_bytes(), false, false)
        .unwrap();
    for _ in 0..20 {
        sup.services_action(ServicesAction::Replan, &[]).unwrap();
    }
    let n = sup.changes(crate::ChangeSelect::All, None).len();
    assert!(n >= 20, "{n} changes");
    // The background saver writes the history.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while changes_on_disk(&d) != Some(n) {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            changes_on_disk(&d)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A layer is acknowledged once the state file holds it; that file holds no change.
    sup.add_layer("l2", layer(2).as_bytes(), false, false)
        .unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join(STATE_FILE)).unwrap()).unwrap();
    assert!(
        state.get("changes").is_none() && state.get("notices").is_none(),
        "{state}"
    );
    assert_eq!(state["layers"].as_array().map(Vec::len), Some(2), "{state}");
    drop(sup);
    let again = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert!(again.plan().services.contains_key("s2"));
    assert_eq!(again.changes(crate::ChangeSelect::All, None).len(), n);
    drop(again);
    // A state file an earlier version wrote, the history in it, is read whole.
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(d.join(f)).unwrap()).unwrap()
    };
    let mut old = read(STATE_FILE);
    old["changes"] = read(crate::CHANGES_FILE);
    old["notices"] = read(crate::NOTICES_FILE);
    let notices = old["notices"]["notices"].as_array().map_or(0, Vec::len);
    assert!(notices >= n, "{notices} notices for {n} changes");
    std::fs::write(d.join(STATE_FILE), old.to_string()).unwrap();
    std::fs::remove_file(d.join(crate::CHANGES_FILE)).unwrap();
    std::fs::remove_file(d.join(crate::NOTICES_FILE)).unwrap();
    let old = Supervisor::open(SupervisorOptions::new(&d)).unwrap();
    assert_eq!(old.changes(crate::ChangeSelect::All, None).len(), n);
    assert_eq!(old.notices(&Default::default()).len(), notices);
}
