//! Hostile tenants beside a well-behaved one: each attack a charm (or its workload) can make
//! on a shared host is run against a real daemon while a calm co-tenant keeps handling
//! config changes. For each, the attack must be contained within its budget, in bounded
//! time, and the co-tenant's config-changed latency is measured before and during it. With
//! `CAIRN_HOSTILE_RATIO` set (the acceptance figure is 1.5) the during/before ratio must
//! stay within it; run that alone on a quiet machine (`cargo test -p cairn --test e2e
//! hostile -- --test-threads 1`): beside the rest of the suite on 2 cores, the other tests'
//! load moves the ratio more than the attack does.
//!
//! Latency is measured from the request that changes `calm`'s config to the unit showing
//! the new count with nothing queued, talking to the control socket directly (a CLI process
//! per poll would measure process start-up, not the host); one figure is the median of a
//! few rounds. Each test prints its figures (`baseline`, `during`) for the record.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::common::*;

/// How many config changes one latency figure is the median of.
const ROUNDS: usize = 9;

/// One request on the daemon's control socket; its `ok` value.
fn control(d: &Daemon, request: &Value) -> Result<Value> {
    let mut s = UnixStream::connect(d.dir.join("cairn.sock"))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    writeln!(s, "{request}")?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    let mut reply: Value =
        serde_json::from_str(&line).with_context(|| format!("reply {line:?}"))?;
    match reply.get_mut("ok") {
        Some(v) => Ok(v.take()),
        None => bail!("control request {request} failed: {line}"),
    }
}

/// The slowdown of the calm tenant tolerated during an attack, when checked.
fn allowed_ratio() -> Option<f64> {
    std::env::var("CAIRN_HOSTILE_RATIO")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The well-behaved co-tenant: a `misbehave` app in `ok` mode, which counts the events it
/// handled in its status message.
struct Calm<'a> {
    d: &'a Daemon,
    rounds: u64,
}

impl<'a> Calm<'a> {
    /// Deploys `calm` and waits until it is active.
    fn deploy(d: &'a Daemon) -> Result<Self> {
        d.ok(&["deploy", &program("misbehave"), "--name", "calm"])?;
        d.wait_status("calm/0", "active", "handled 1", Duration::from_secs(30))?;
        Ok(Calm { d, rounds: 0 })
    }

    /// One config change, timed until the unit shows it handled.
    fn one(&mut self) -> Result<Duration> {
        self.rounds += 1;
        let want = format!("handled {}", self.rounds + 1);
        let label = format!("round-{}", self.rounds);
        let start = Instant::now();
        control(
            self.d,
            &json!({"op": "config", "app": "calm", "set": [["label", label]], "reset": []}),
        )?;
        let deadline = start + Duration::from_secs(60);
        loop {
            let st = control(self.d, &json!({"op": "status"}))?;
            let shown = st["apps"].as_array().into_iter().flatten().any(|a| {
                a["units"].as_array().into_iter().flatten().any(|u| {
                    u["name"] == "calm/0"
                        && u["queued"] == 0
                        && u["status"]["message"] == want.as_str()
                })
            });
            if shown {
                return Ok(start.elapsed());
            }
            if Instant::now() > deadline {
                bail!("calm/0 never showed {want:?}: {st}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The median latency of a few config changes.
    fn latency(&mut self) -> Result<Duration> {
        let mut all = (0..ROUNDS)
            .map(|_| self.one())
            .collect::<Result<Vec<_>>>()?;
        eprintln!(
            "  calm rounds: {:?}",
            all.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
        );
        all.sort();
        Ok(all[ROUNDS / 2])
    }

    /// Measures the baseline, runs `attack` (which starts the attack and returns once it
    /// is under way), measures again and checks the ratio (with `CAIRN_HOSTILE_RATIO`).
    fn beside(&mut self, what: &str, attack: impl FnOnce() -> Result<()>) -> Result<()> {
        let ratio = self.measure(what, attack)?;
        if let Some(allowed) = allowed_ratio()
            && ratio > allowed
        {
            bail!("{what}: the co-tenant's config-changed slowed by {ratio:.2} (> {allowed})");
        }
        Ok(())
    }

    /// [`Calm::beside`] without the check: the ratio, printed with both latencies.
    fn measure(&mut self, what: &str, attack: impl FnOnce() -> Result<()>) -> Result<f64> {
        let baseline = self.latency()?;
        attack()?;
        let during = self.latency()?;
        let ratio = during.as_secs_f64() / baseline.as_secs_f64();
        eprintln!(
            "hostile {what}: calm config-changed baseline {baseline:?}, during {during:?} (ratio {ratio:.2})"
        );
        Ok(ratio)
    }
}

/// Waits until `unit`'s last event failed with a message containing `want`.
fn wait_failure(d: &Daemon, unit: &str, want: &str, timeout: Duration) -> Result<String> {
    eventually(timeout, || {
        let events = d.events(unit).ok()?;
        events.iter().rev().find_map(|e| {
            let o = e["outcome"].as_str()?;
            (o.starts_with("error: ") && o.contains(want)).then(|| o.to_string())
        })
    })
    .with_context(|| {
        format!(
            "{unit} has no failure with {want:?}: {:?}",
            d.events(unit).ok()
        )
    })
}

#[test]
fn a_spinning_guest_is_cut_at_its_deadline_and_does_not_slow_its_neighbour() -> Result<()> {
    let d = Daemon::start(
        "hostile-spin",
        &["--event-deadline", "2s", "--retry-delay", "100ms"],
    )?;
    let mut calm = Calm::deploy(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "spin"])?;
    d.wait_status("spin/0", "active", "handled 1", Duration::from_secs(30))?;
    calm.beside("spin", || {
        d.ok(&["config", "spin", "mode=loop"])?;
        // Under way: the first spin has begun (it fails at its deadline and is retried,
        // spinning again, for as long as the test runs).
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    })?;
    let failure = wait_failure(&d, "spin/0", "deadline", Duration::from_secs(10))?;
    assert!(
        failure.contains("event deadline of 2s exceeded"),
        "{failure}"
    );
    Ok(())
}

#[test]
fn a_container_name_that_leaves_the_units_directory_is_refused_at_deploy() -> Result<()> {
    let d = Daemon::start("hostile-names", &[])?;
    d.ok(&["deploy", &example("pause")])?;
    d.wait_status("pause/0", "active", "", Duration::from_secs(30))?;
    let before = std::fs::read_dir(d.dir.join("units"))?.count();
    for name in [
        "../../pause-0/containers/pause",
        "/tmp/anywhere",
        "..",
        "a/b",
        ".hidden",
    ] {
        let charm = TempDir::new("hostile-charm");
        std::fs::write(
            charm.join("charmcraft.yaml"),
            format!(
                "name: evil\ntype: charm\nsummary: s\ndescription: d\ncontainers:\n  {name:?}:\n    resource: r\n"
            ),
        )?;
        std::fs::copy(
            cairn_test_programs::MISBEHAVE_WASM,
            charm.join("charm.wasm"),
        )?;
        let out = d.cli(&["deploy", &charm.display().to_string()])?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name:?} deployed");
        assert!(
            stderr.contains(&format!("invalid container name {name:?}")),
            "{name:?}: {stderr}"
        );
    }
    // Nothing was created, and the neighbour's container is untouched.
    assert_eq!(std::fs::read_dir(d.dir.join("units"))?.count(), before);
    assert!(d.status()?["apps"].as_array().is_some_and(|a| a.len() == 1));
    d.wait_status("pause/0", "active", "", Duration::from_secs(5))?;
    Ok(())
}

/// A workload's script: raise its descriptor limit, open up to 20,000 connections to its
/// own Pebble socket (by a relative name: the path may be longer than `sun_path`) for at
/// most 5 s, write how many it holds to the file named by its argument, and keep them.
const SOCKET_FLOOD: &str = r#"
import os, resource, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
path = os.environ["PEBBLE_SOCKET"]
os.chdir(os.path.dirname(path))
held = []
end = time.monotonic() + 5
for _ in range(20000):
    if time.monotonic() > end:
        break
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(0.05)
    try:
        s.connect(os.path.basename(path))
        held.append(s)
    except OSError:
        s.close()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(len(held)))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"#;

#[test]
fn a_workload_holding_thousands_of_connections_to_its_socket_cannot_take_the_daemon_down()
-> Result<()> {
    let d = Daemon::start("hostile-sockets", &[])?;
    let mut calm = Calm::deploy(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "hog"])?;
    d.wait_status("hog/0", "active", "handled 1", Duration::from_secs(30))?;
    let flood = std::cell::RefCell::new(None);
    calm.beside("socket flood", || {
        let report = d.dir.join("held");
        let child = std::process::Command::new(CAIRN)
            .arg("--dir")
            .arg(&d.dir)
            .args(["--container", "hog/0", "exec", "--", "python3", "-c"])
            .arg(SOCKET_FLOOD)
            .arg(&report)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let guard = ChildGuard {
            child,
            needle: d.dir.display().to_string(),
        };
        // Under way once the script says how many connections it holds.
        let held: usize = eventually(Duration::from_secs(30), || {
            std::fs::read_to_string(&report).ok()?.parse().ok()
        })
        .must("the workload reports its connections")?;
        eprintln!("hostile socket flood: the workload holds {held} connections");
        assert!(held < 20000, "every connection was accepted: {held}");
        *flood.borrow_mut() = Some(guard);
        Ok(())
    })?;
    // The daemon lives and answers every operator command; the tenant's own API still
    // refuses politely rather than failing.
    for _ in 0..20 {
        d.ok(&["status"])?;
    }
    assert!(
        d.pid()
            .is_some_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    );
    drop(flood);
    Ok(())
}
