//! Attacks by a charm's workloads and container definitions: each beside the calm co-tenant
//! where one is running. The hostile tenant is a `misbehave` app named `hog`; its workload
//! attacks from inside its container `work` (an exec, as a local process would, talking to
//! its own Pebble socket) or through services it adds there.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;

use super::*;
use crate::metrics::sample;

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

/// Deploys the hostile tenant `hog` (misbehave in `ok` mode) with budget `limits`.
fn deploy_hog(d: &Daemon, limits: &[&str]) -> Result<()> {
    let prog = program("misbehave");
    let mut args = vec!["deploy", prog.as_str(), "--name", "hog"];
    for l in limits {
        args.extend(["--limit", l]);
    }
    d.ok(&args)?;
    d.wait_status("hog/0", "active", "handled 1", Duration::from_secs(30))?;
    Ok(())
}

/// The directory of container `work` of unit `unit` (`hog/0`).
fn work_dir(d: &Daemon, unit: &str) -> PathBuf {
    d.dir
        .join("units")
        .join(unit.replace('/', "-"))
        .join("containers/work")
}

/// Whether `pid` is `ancestor` or one of its descendants.
fn descends_from(mut pid: i32, ancestor: i32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The parent is the second field after the command's closing parenthesis.
        let parent = stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        match parent {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Live processes of `unit`'s containers of daemon `d` (its workloads carry
/// `JUJU_UNIT_NAME=<unit>` in every tenancy; other tests' daemons have units of the same
/// name, so a process must also name `d`'s directory in its environment, have its root
/// there, or descend from `d`'s process).
fn workload_pids(d: &Daemon, unit: &str) -> Vec<i32> {
    let needle = format!("JUJU_UNIT_NAME={unit}");
    let dir = d.dir.display().to_string();
    let daemon = d.pid().map(|p| p as i32);
    let ours = |pid: i32, env: &[String]| {
        env.iter().any(|v| v.contains(&dir))
            || std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|r| r.starts_with(&d.dir))
            || daemon.is_some_and(|daemon| descends_from(pid, daemon))
    };
    processes_with(&needle)
        .into_iter()
        .filter(|(pid, env)| env.contains(&needle) && ours(*pid, env))
        .map(|(pid, _)| pid)
        .collect()
}

/// The command line of `pid`, arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let joined: Vec<u8> = raw
        .iter()
        .map(|b| if *b == 0 { b' ' } else { *b })
        .collect();
    String::from_utf8_lossy(&joined).trim_end().to_string()
}

/// Runs `python3 -c script arg` in `unit`'s container as an exec (a local workload),
/// without waiting, its output going to `arg` with the extension `.out`; killed, with
/// everything of the daemon's directory, when dropped.
fn python_in(d: &Daemon, unit: &str, script: &str, arg: &Path) -> Result<ChildGuard> {
    let out = std::fs::File::create(arg.with_extension("out"))?;
    let child = std::process::Command::new(CAIRN)
        .arg("--dir")
        .arg(&d.dir)
        .args(["--container", unit, "exec", "--", "python3", "-c"])
        .arg(script)
        .arg(arg)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()?;
    Ok(ChildGuard {
        child,
        needle: d.dir.display().to_string(),
    })
}

/// The JSON a workload script last wrote to `path` (written whole, then renamed).
fn report(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The last report at `path` and the tail of what the script printed (for a failure).
fn report_and_output(path: &Path) -> String {
    let out = std::fs::read_to_string(path.with_extension("out")).unwrap_or_default();
    let tail: String = out
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("report {:?}, output {tail:?}", report(path))
}

/// `sample` of the OpenMetrics page for one of `hog/0`'s container figures.
fn hog_figure(d: &Daemon, family: &str) -> Result<Option<f64>> {
    let page = d.ok(&["metrics"])?;
    Ok(sample(
        &page,
        &format!("{family}{{app=\"hog\",unit=\"hog/0\",container=\"work\"}}"),
    ))
}

/// How often `limit` of `hog` was hit.
fn hog_hits(d: &Daemon, limit: &str) -> Result<u64> {
    let l: Value = serde_json::from_str(&d.ok(&["limits", "hog", "--format", "json"])?)?;
    Ok(l["hits"][limit].as_u64().unwrap_or(0))
}

/// The most threads and descriptors a process had, sampled every 20 ms on a thread of its
/// own until [`Peaks::finish`].
struct Peaks {
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<(usize, usize)>>,
}

/// Threads and open descriptors of `pid` now.
fn threads_and_fds(pid: u32) -> Result<(usize, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no Threads in status")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok((threads, fds))
}

impl Peaks {
    fn of(pid: u32) -> Peaks {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let sampler = std::thread::spawn(move || {
            let mut peak = (0, 0);
            while !stopping.load(Ordering::Relaxed) {
                if let Ok((t, f)) = threads_and_fds(pid) {
                    peak = (peak.0.max(t), peak.1.max(f));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        Peaks {
            stop,
            sampler: Some(sampler),
        }
    }

    /// The peaks (threads, descriptors) since [`Peaks::of`].
    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.sampler
            .take()
            .and_then(|s| s.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Peaks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A workload's HTTP on its own Pebble socket (`PEBBLE_SOCKET`, reached by a relative name:
/// the path may be longer than `sun_path`), for the scripts below: `call` makes one
/// request on a connection of its own and returns the status code and the JSON reply,
/// `upgrade` opens a websocket, `save` writes a report for the test (whole, then renamed).
const PEBBLE_PY: &str = r#"
import json, os, socket, sys, threading, time
PATH = os.environ["PEBBLE_SOCKET"]
os.chdir(os.path.dirname(PATH))
NAME = os.path.basename(PATH)

def connect():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(NAME)
    return s

def call(method, target, body=None):
    s = connect()
    try:
        data = json.dumps(body).encode() if body is not None else b""
        s.sendall(("%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                   % (method, target, len(data))).encode() + data)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    finally:
        s.close()
    head, _, rest = reply.partition(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    try:
        return code, json.loads(rest[rest.index(b"{"):rest.rindex(b"}") + 1])
    except ValueError:
        return code, {}

def upgrade(target):
    s = connect()
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: Y2Fpcm4taG9zdGlsZS10ZXN0\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % target).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed during the handshake")
        head += chunk
    if head.split(b" ", 2)[1] != b"101":
        raise OSError(head.split(b"\r\n", 1)[0].decode())
    return s

def save(path, value):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f)
    os.rename(path + ".tmp", path)
"#;

/// 515 threads post an exec of `sleep 600` at once; those accepted connect its websockets
/// (the command starts) and hold it, the others try again after a random pause of up to a
/// second (about 500 requests a second together). The report: how
/// many threads had their first answer, the first answers and all answers by status,
/// and one message per status.
const EXEC_FLOOD: &str = r#"
import random
N = 515
lock = threading.Lock()
first, total, messages = {}, {}, {}
answered = [0]
held = []
go = threading.Barrier(N)

def one():
    try:
        code, reply = call("POST", "/v1/exec", {"command": ["sleep", "600"]})
    except OSError as e:
        return "failed", str(e)
    if code != 202:
        return str(code), reply.get("result", {}).get("message", "")
    task = reply["result"]["task-id"]
    try:
        held.append([upgrade("/v1/tasks/%s/websocket/%s" % (task, w)) for w in ("control", "stdio")])
    except OSError as e:
        return "202 unconnected", str(e)
    return "202", ""

def note(counts, code, message):
    counts[code] = counts.get(code, 0) + 1
    messages.setdefault(code, message)

def flood():
    go.wait()
    code, message = one()
    with lock:
        note(first, code, message)
        note(total, code, message)
        answered[0] += 1
    while code != "202":
        time.sleep(random.random())
        code, message = one()
        with lock:
            note(total, code, message)
    time.sleep(100000)

for _ in range(N):
    threading.Thread(target=flood, daemon=True).start()
while True:
    with lock:
        snapshot = {"answered": answered[0], "first": dict(first), "total": dict(total),
                    "messages": dict(messages)}
    save(sys.argv[1], snapshot)
    time.sleep(0.2)
"#;

#[test]
fn five_hundred_concurrent_execs_through_the_pebble_socket_are_held_to_the_exec_budget()
-> Result<()> {
    let d = Daemon::start("hostile-execs", &[])?;
    let mut calm = Calm::deploy(&d)?;
    // The flood's own computing is the workload's, within its CPU budget; what the daemon
    // does for it is charged to the tenant's host-cpu share.
    deploy_hog(&d, &["workload-cpu=200m"])?;
    let pid = d.pid().must("daemon pid")?;
    let before = threads_and_fds(pid)?;
    let peaks = Peaks::of(pid);
    let path = d.dir.join("execs.json");
    let flood = RefCell::new(None);
    let first = RefCell::new(Value::Null);
    let cpu = RefCell::new(None);
    calm.beside("515 execs", || {
        *flood.borrow_mut() = Some(python_in(
            &d,
            "hog/0",
            &format!("{PEBBLE_PY}{EXEC_FLOOD}"),
            &path,
        )?);
        // Under way once (nearly) every thread has had its first answer (the refused ones
        // go on; the host-cpu share holds the socket's accept loop, so the last few may
        // still be waiting for theirs).
        *first.borrow_mut() = eventually(Duration::from_secs(90), || {
            report(&path).filter(|r| r["answered"].as_u64() >= Some(500))
        })
        .with_context(|| {
            format!(
                "the flood never had its answers: {}",
                report_and_output(&path)
            )
        })?;
        *cpu.borrow_mut() = Some((Instant::now(), cpu_time(pid)?));
        Ok(())
    })?;
    let (since, cpu_before) = cpu.into_inner().must("the daemon's CPU")?;
    let (cpu, window) = (cpu_time(pid)? - cpu_before, since.elapsed());
    let during = threads_and_fds(pid)?;
    let (peak_threads, peak_fds) = peaks.finish();
    let last = report(&path).must("the flood's report")?;
    let first = first.into_inner();
    eprintln!(
        "hostile 515 execs: first answers {}, all answers {}; daemon threads {} before, {} during \
         (peak {peak_threads}), descriptors {} before, {} during (peak {peak_fds}); daemon CPU \
         {cpu:?} in the {window:?} measured during",
        first["first"], last["total"], before.0, during.0, before.1, during.1
    );
    // The budget of 16 execs at once, one of them the flood's own: the rest were told to
    // come back later, with the budget's text, or (past the socket's 512 connections, more
    // of them open while the tenant's host-cpu share holds its requests) refused before a
    // request was read: a 503, or a reset where the client had already sent its request.
    // Nothing failed inside the daemon.
    let counts = |v: &Value, code: &str| v[code].as_u64().unwrap_or(0);
    // Accepted and connected: running at once within the budget. An exec accepted but not
    // connected in time (its client's requests held by the share) times out, as in Pebble,
    // and gives its slot back, so that another may be accepted after it.
    let connected = counts(&first["first"], "202");
    let unconnected = counts(&first["first"], "202 unconnected");
    let accepted = connected + unconnected;
    assert!((1..=15).contains(&connected), "{first}");
    let refused = ["429", "503", "failed"]
        .iter()
        .map(|c| counts(&first["first"], c))
        .sum::<u64>();
    assert!(
        refused + accepted >= 500 - (515 - first["answered"].as_u64().unwrap_or(0)),
        "{first}"
    );
    if let Some(failed) = first["messages"]["failed"].as_str() {
        assert!(
            [
                "reset by peer",
                "Connection refused",
                "Broken pipe",
                "timed out"
            ]
            .iter()
            .any(|m| failed.contains(m)),
            "a flood request failed otherwise than by a refused connection: {first}"
        );
    }
    for code in first["first"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        assert!(
            ["202", "202 unconnected", "429", "503", "failed"].contains(&code.as_str()),
            "{code}: {first}"
        );
    }
    assert!(last["total"]["500"].is_null(), "{last}");
    assert_eq!(
        last["messages"]["429"],
        "cannot call exec: 16 commands are running, the container's budget of concurrent execs",
        "{last}"
    );
    // Held by the exec budget and by the tenant's host-cpu share (which holds its requests,
    // so that fewer of them reach the exec budget at all).
    let (exec_hits, share_hits) = (hog_hits(&d, "execs")?, hog_hits(&d, "host-cpu")?);
    eprintln!(
        "hostile 515 execs: {exec_hits} refused by the exec budget, {share_hits} held by host-cpu"
    );
    assert!(exec_hits >= 1 && exec_hits + share_hits >= 50);
    // Threads and descriptors stay bounded by the budget and the socket's connection
    // limit, not by the number of requests.
    assert!(
        peak_threads <= before.0 + 64,
        "daemon threads {} → peak {peak_threads}",
        before.0
    );
    assert!(
        peak_fds <= before.1 + 512 + 16 * 8,
        "daemon descriptors {} → peak {peak_fds}",
        before.1
    );
    // The flooding process killed, the commands it held die with their control
    // connections (as Pebble's) and the slots come back.
    let hog = |what: &str| {
        workload_pids(&d, "hog/0")
            .into_iter()
            .filter(|p| cmdline(*p).contains(what))
            .collect::<Vec<_>>()
    };
    // Every exec accepted and connected so far runs, and no more than the budget allows
    // (once the tenant's host-CPU share has paid for its fork: the flood's requests took
    // that share, so the last ones may start a moment late).
    let connected_so_far = || {
        report(&path)
            .and_then(|r| r["total"]["202"].as_u64())
            .unwrap_or(0) as usize
    };
    eventually(Duration::from_secs(30), || {
        let running = hog("sleep 600").len();
        (running == connected_so_far() && running <= 15).then_some(())
    })
    .with_context(|| {
        format!(
            "{} running of {} accepted and connected execs",
            hog("sleep 600").len(),
            connected_so_far()
        )
    })?;
    for p in hog("python3 -c") {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        )?;
    }
    let again = Instant::now();
    eventually(Duration::from_secs(15), || {
        d.cli(&["--container", "hog/0", "exec", "true"])
            .ok()
            .filter(|o| o.status.success())
    })
    .with_context(|| format!("no exec slot came back: {}", d.log()))?;
    let slot = again.elapsed();
    eventually(Duration::from_secs(5), || {
        hog("sleep 600").is_empty().then_some(())
    })
    .must("the held commands die with their connections")?;
    eprintln!(
        "hostile 515 execs: an exec ran again {slot:?} after the flooding process was killed, \
         its commands gone in {:?}",
        again.elapsed()
    );
    drop(flood);
    Ok(())
}

#[test]
fn fifty_setsid_grandchildren_of_an_exec_die_with_their_unit() -> Result<()> {
    let d = Daemon::start("hostile-setsid", &[])?;
    let mut calm = Calm::deploy(&d)?;
    deploy_hog(&d, &[])?;
    let sleepers = || {
        workload_pids(&d, "hog/0")
            .into_iter()
            .filter(|p| cmdline(*p) == "sleep 1091")
            .collect::<Vec<_>>()
    };
    calm.beside("50 setsid grandchildren", || {
        let out = d.ok(&[
            "--container",
            "hog/0",
            "exec",
            "sh",
            "-c",
            "for i in $(seq 50); do setsid sleep 1091 </dev/null >/dev/null 2>&1 & done; echo started",
        ])?;
        assert_eq!(out, "started\n");
        eventually(Duration::from_secs(10), || {
            (sleepers().len() == 50).then_some(())
        })
        .with_context(|| format!("{} of 50 sleepers run", sleepers().len()))?;
        Ok(())
    })?;
    // Each left the exec's process group and session: it leads a session of its own.
    for pid in sleepers() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .context("bad stat")?
            .1
            .split_whitespace()
            .collect();
        assert_eq!(
            f[3],
            pid.to_string(),
            "{pid} is not a session leader: {stat}"
        );
    }
    let start = Instant::now();
    d.ok(&["remove", "hog"])?;
    let returned = start.elapsed();
    let gone = eventually(Duration::from_secs(10), || {
        sleepers().is_empty().then(|| start.elapsed())
    });
    let left = sleepers();
    for pid in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let gone = gone.with_context(|| format!("{} sleepers outlived their unit", left.len()))?;
    eprintln!(
        "hostile 50 setsid grandchildren: remove returned in {returned:?}, all gone in {gone:?}"
    );
    assert!(gone < Duration::from_secs(5), "{gone:?}");
    Ok(())
}

/// A workload adds, through its own Pebble socket, what its budget refuses: 400 services
/// in 8 layers of 50, 1,000 checks at 1 ms in one layer, and a single check at 1 ms; then
/// it goes on posting the refused ones as fast as it can. The report: the first round's
/// answers (`status message` each), the refusals and calls since, and the slowest call.
const LAYER_FLOOD: &str = r#"
def add(label, yaml):
    start = time.monotonic()
    try:
        code, reply = call("POST", "/v1/layers", {"action": "add", "combine": True, "label": label,
                                                "format": "yaml", "layer": yaml})
    except OSError as e:
        print("failed call %s after %.1f s: %s" % (label, time.monotonic() - start, e), flush=True)
        return "failed %s" % e, time.monotonic() - start
    took = time.monotonic() - start
    if took > 2:
        print("slow call %s: %.1f s, %d" % (label, took, code), flush=True)
    return "%d %s" % (code, reply.get("result", {}).get("message", "") if code != 200 else "ok"), took

services = ["services:\n" + "".join("  s%d-%d:\n    override: replace\n    command: sleep 1092\n" % (k, i)
                                    for i in range(50)) for k in range(8)]
checks = "checks:\n" + "".join("  c%d:\n    override: replace\n    period: 1ms\n    exec:\n      command: 'true'\n" % i
                               for i in range(1000))
fast = "checks:\n  fast:\n    override: replace\n    period: 1ms\n    exec:\n      command: 'true'\n"
attempts = [("services-%d" % k, y) for k, y in enumerate(services)] + [("checks", checks), ("fast", fast)]
first, slowest = [], 0.0
for label, yaml in attempts:
    got, took = add(label, yaml)
    first.append(got)
    slowest = max(slowest, took)
refused = [(l, y) for (l, y), got in zip(attempts, first) if not got.startswith("200")]
calls, refusals = 0, 0
save(sys.argv[1], {"first": first, "calls": calls, "refusals": refusals, "slowest": slowest})
last = time.monotonic()
while True:
    for label, yaml in refused:
        got, took = add(label, yaml)
        calls += 1
        refusals += got.startswith("400 ")
        slowest = max(slowest, took)
    if time.monotonic() - last > 0.2:
        save(sys.argv[1], {"first": first, "calls": calls, "refusals": refusals, "slowest": slowest})
        last = time.monotonic()
"#;

#[test]
fn services_and_checks_pushed_through_the_pebble_socket_are_refused_by_the_budget() -> Result<()> {
    let d = Daemon::start("hostile-layers", &[])?;
    let mut calm = Calm::deploy(&d)?;
    // The flood's own computing is the workload's, within its CPU budget; what the daemon
    // does for it is charged to the tenant's host-cpu share.
    deploy_hog(&d, &["workload-cpu=200m"])?;
    let path = d.dir.join("layers.json");
    let flood = RefCell::new(None);
    calm.beside("services and checks flood", || {
        *flood.borrow_mut() = Some(python_in(
            &d,
            "hog/0",
            &format!("{PEBBLE_PY}{LAYER_FLOOD}"),
            &path,
        )?);
        // Under way once the first round is answered and the refused ones are being
        // posted again.
        eventually(Duration::from_secs(60), || {
            report(&path).filter(|r| r["calls"].as_u64() > Some(0))
        })
        .with_context(|| {
            // Whether the script still runs, and what the daemon said meanwhile.
            let state = flood
                .borrow_mut()
                .as_mut()
                .map(|g| format!("{:?}", g.child.try_wait()));
            let log = d.log();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            format!(
                "the flood never started: {}; the exec client: {state:?}; daemon log tail: {tail}",
                report_and_output(&path)
            )
        })?;
        Ok(())
    })?;
    let last = report(&path).must("the flood's report")?;
    drop(flood);
    eprintln!(
        "hostile services and checks flood: {} calls refused of {} since the first round, \
         slowest call {:.3} s",
        last["refusals"], last["calls"], last["slowest"]
    );
    let first: Vec<&str> = last["first"]
        .as_array()
        .must("first answers")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let over = "400 cannot add layer: the plan would have 150 services, over the container's budget of 100";
    let mut want = vec!["200 ok", "200 ok"];
    want.extend([over; 6]);
    want.push(
        "400 cannot add layer: the plan would have 1000 checks, over the container's budget of 20",
    );
    want.push("400 cannot add layer: check \"fast\" has period 1ms, shorter than the container's minimum of 100ms");
    assert_eq!(first, want);
    assert_eq!(last["refusals"], last["calls"], "{last}");
    assert!(last["slowest"].as_f64().unwrap_or(f64::MAX) < 5.0, "{last}");
    // The plan holds the 100 services the budget allows, none started, and no check.
    let plan = d.ok(&["--container", "hog/0", "plan"])?;
    assert_eq!(plan.matches("command: sleep 1092").count(), 100, "{plan}");
    assert!(!plan.contains("checks:"), "{plan}");
    assert!(
        workload_pids(&d, "hog/0")
            .iter()
            .all(|p| cmdline(*p) != "sleep 1092")
    );
    assert!(hog_hits(&d, "services")? >= 6);
    assert!(hog_hits(&d, "checks")? >= 1);
    assert!(hog_hits(&d, "check-period")? >= 1);
    Ok(())
}

/// Adds a layer with `services` (YAML under `services:`) to `unit`'s container as a
/// workload would (Pebble's CLI on its socket), and starts them without waiting.
fn add_services(d: &Daemon, unit: &str, label: &str, services: &str, names: &[&str]) -> Result<()> {
    let file = d.dir.join(format!("{label}.yaml"));
    std::fs::write(&file, format!("services:\n{services}"))?;
    d.ok(&[
        "--container",
        unit,
        "add",
        label,
        &file.display().to_string(),
    ])?;
    let mut args = vec!["--container", unit, "start", "--no-wait"];
    args.extend(names);
    d.ok(&args)?;
    Ok(())
}

/// A service that holds 1 GiB: past any small memory budget.
const GIB_SERVICE: &str = "  memhog:\n    override: replace\n    command: python3 -c \"b = bytearray(1 << 30); import time; time.sleep(600)\"\n";

/// Waits until the OOM killer has ended one of `hog/0`'s processes; the kills counted.
fn wait_oom_kill(d: &Daemon) -> Result<f64> {
    eventually(Duration::from_secs(30), || {
        hog_figure(d, "cairn_tenant_workload_oom_kills_total")
            .ok()
            .flatten()
            .filter(|k| *k >= 1.0)
    })
    .with_context(|| format!("no OOM kill in hog's container: {:?}", d.ok(&["metrics"])))
}

/// The daemon's resident memory, in MiB.
fn daemon_rss_mib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib / 1024)
        .context("no VmRSS")
}

#[test]
fn a_service_holding_a_gibibyte_is_oom_killed_inside_its_cgroup() -> Result<()> {
    let d = Daemon::start("hostile-memory", &[])?;
    let mut calm = Calm::deploy(&d)?;
    deploy_hog(&d, &["workload-memory=256MiB"])?;
    let pid = d.pid().must("daemon pid")?;
    let rss_before = daemon_rss_mib(pid)?;
    calm.beside("1 GiB service", || {
        add_services(&d, "hog/0", "memhog", GIB_SERVICE, &["memhog"])?;
        // Under way once the kernel has killed it the first time (it is restarted, and
        // killed again, for as long as the test runs).
        wait_oom_kill(&d)?;
        Ok(())
    })?;
    // Restarted by its service manager, it is killed again: the budget holds each time.
    let kills = eventually(Duration::from_secs(20), || {
        hog_figure(&d, "cairn_tenant_workload_oom_kills_total")
            .ok()
            .flatten()
            .filter(|k| *k >= 2.0)
    })
    .must("a second OOM kill")?;
    let peak = hog_figure(&d, "cairn_tenant_workload_memory_peak_bytes")?.must("memory peak")?;
    let rss_after = daemon_rss_mib(pid)?;
    eprintln!(
        "hostile 1 GiB service: {kills} OOM kills, container peak {:.0} MiB, daemon RSS {rss_before} → {rss_after} MiB",
        peak / f64::from(1 << 20)
    );
    assert!(
        peak <= f64::from(256 << 20),
        "the container reached {peak} bytes"
    );
    assert!(
        rss_after < rss_before + 64,
        "daemon RSS {rss_before} → {rss_after} MiB"
    );
    assert!(
        d.pid()
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
    );
    Ok(())
}

#[test]
fn shell_loops_burning_cpu_are_throttled_to_the_cpu_budget() -> Result<()> {
    let d = Daemon::start("hostile-cpu", &[])?;
    let mut calm = Calm::deploy(&d)?;
    deploy_hog(&d, &["workload-cpu=200m"])?;
    let loops: String = (0..4)
        .map(|i| {
            format!("  spin{i}:\n    override: replace\n    command: sh -c 'while :; do :; done'\n")
        })
        .collect();
    let spinners = || {
        workload_pids(&d, "hog/0")
            .into_iter()
            .filter(|p| cmdline(*p).contains("while :"))
            .collect::<Vec<_>>()
    };
    let used =
        |pids: &[i32]| -> Duration { pids.iter().filter_map(|p| cpu_time(*p as u32).ok()).sum() };
    let window = RefCell::new(None);
    calm.beside("4 CPU loops", || {
        add_services(
            &d,
            "hog/0",
            "spin",
            &loops,
            &["spin0", "spin1", "spin2", "spin3"],
        )?;
        let pids = eventually(Duration::from_secs(10), || {
            Some(spinners()).filter(|p| p.len() == 4)
        })
        .must("the four loops run")?;
        // Past the start-up, measured from here.
        std::thread::sleep(Duration::from_millis(300));
        *window.borrow_mut() = Some((Instant::now(), used(&pids), pids));
        Ok(())
    })?;
    let (start, before, pids) = window.into_inner().must("the loops' window")?;
    // At least two seconds, so that the 100 ms periods' rounding stays small.
    if let Some(rest) = Duration::from_secs(2).checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
    let cpu = used(&pids) - before;
    let elapsed = start.elapsed();
    let share = cpu.as_secs_f64() / elapsed.as_secs_f64();
    let cgroup = hog_figure(&d, "cairn_tenant_workload_cpu_seconds_total")?;
    eprintln!(
        "hostile 4 CPU loops: {cpu:?} of CPU in {elapsed:?} ({share:.3} of a CPU; the budget 0.2); \
         the container's cgroup counts {cgroup:?} s in all"
    );
    assert!(share <= 0.2 * 1.25, "{share:.3} of a CPU");
    assert!(cpu > Duration::ZERO);
    Ok(())
}

/// From inside a strict container (as its root): every process's root and the daemon's
/// root lead to no host file and no control socket, and `/proc` shows the container's own
/// processes only. Prints `LEAK ...` for anything reached, then the number of processes
/// seen and the command line of every other one.
const STRICT_PROBE: &str = r#"
import glob, os, socket, sys
secret, control, daemon = sys.argv[1], sys.argv[2], sys.argv[3]
roots = ["", "/proc/%s/root" % daemon] + [p + "/root" for p in glob.glob("/proc/[0-9]*")]
for r in roots:
    try:
        with open(r + secret) as f:
            print("LEAK read", r, f.read())
    except OSError:
        pass
    try:
        s = socket.socket(socket.AF_UNIX)
        s.connect(r + control)
        print("LEAK control", r)
    except OSError:
        pass
pids = glob.glob("/proc/[0-9]*")
print(len(pids))
for p in pids:
    if p == "/proc/%d" % os.getpid():
        continue
    try:
        print(open(p + "/cmdline").read().replace("\0", " "))
    except OSError:
        pass
"#;

/// Connects to each socket given (changing into its directory: the path may be longer
/// than `sun_path`) and asks for its logs; prints `LEAK <path>` or `refused <errno>`.
const SOCKET_PROBE: &str = r#"
import os, socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        os.chdir(os.path.dirname(p))
        s.connect(os.path.basename(p))
        s.sendall(b"GET /v1/logs HTTP/1.0\r\n\r\n")
        print("LEAK", p, s.recv(100))
    except OSError as e:
        print("refused", e.errno)
"#;

#[test]
fn a_strict_root_workload_reaches_neither_the_host_nor_its_neighbour_and_ooms_alone() -> Result<()>
{
    require_root!("--tenancy strict makes user, pid and mount namespaces");
    let d = Daemon::start("hostile-strict", &["--tenancy", "strict"])?;
    let mut calm = Calm::deploy(&d)?;
    // The neighbour's own workload, a service the hostile tenant will look for.
    add_services(
        &d,
        "calm/0",
        "idle",
        "  idle:\n    override: replace\n    command: sleep 1093\n",
        &["idle"],
    )?;
    let idle = eventually(Duration::from_secs(10), || {
        workload_pids(&d, "calm/0")
            .into_iter()
            .find(|p| cmdline(*p) == "sleep 1093")
    })
    .must("calm's service")?;
    deploy_hog(&d, &["workload-memory=128MiB"])?;
    let daemon = d.pid().must("daemon pid")?;
    let secret = d.dir.join("secret");
    std::fs::write(&secret, "host only")?;
    let control = d.dir.join("cairn.sock");
    let probes = RefCell::new(None);
    calm.beside("strict root workload", || {
        // Host files and the control socket, through every /proc/<pid>/root it can see.
        let out = d.cli(&[
            "--container",
            "hog/0",
            "exec",
            "python3",
            "-c",
            STRICT_PROBE,
            &secret.display().to_string(),
            &control.display().to_string(),
            &daemon.to_string(),
        ])?;
        let seen = String::from_utf8_lossy(&out.stdout).into_owned();
        // The neighbour's process: invisible, and a signal to its host pid reaches nothing;
        // killing everything it can see ends only its own processes.
        let kill = d.cli(&[
            "--container",
            "hog/0",
            "exec",
            "sh",
            "-c",
            &format!("kill -KILL {idle} 2>/dev/null || echo refused; kill -KILL -1"),
        ])?;
        let kill = String::from_utf8_lossy(&kill.stdout).into_owned();
        // Its memory: a service past the budget.
        add_services(&d, "hog/0", "memhog", GIB_SERVICE, &["memhog"])?;
        wait_oom_kill(&d)?;
        *probes.borrow_mut() = Some((seen, kill));
        Ok(())
    })?;
    let (seen, kill) = probes.into_inner().must("the probes ran")?;
    eprintln!(
        "hostile strict root workload: sees {} processes, {:?} to the neighbour's",
        seen.lines().next().unwrap_or("?"),
        kill.trim()
    );
    assert!(!seen.contains("LEAK"), "{seen}");
    let mut lines = seen.lines();
    let count: usize = lines.next().unwrap_or("").parse().context(seen.clone())?;
    assert!(count <= 8, "the container sees {count} processes: {seen}");
    assert!(!seen.contains("sleep 1093"), "{seen}");
    assert!(kill.starts_with("refused"), "{kill}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        Path::new(&format!("/proc/{idle}")).exists(),
        "calm's service was killed"
    );

    // The neighbour's logs through its Pebble sockets, as another uid: the hostile
    // container's root (an unprivileged host uid) or any local user. The directories on
    // the way are opened up, so only the sockets' own modes stand in the way.
    let calm_dir = work_dir(&d, "calm/0");
    let sockets = [
        calm_dir.join(".pebble.socket"),
        calm_dir.join("root/charm/container/pebble.socket"),
    ];
    for s in &sockets {
        open_path_to(&d.dir, s)?;
    }
    let hog_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(work_dir(&d, "hog/0").join("root/charm/container/pebble.socket"))?.uid()
    };
    for uid in [hog_root, 65534] {
        use std::os::unix::process::CommandExt;
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(SOCKET_PROBE)
            .args(&sockets)
            .uid(uid)
            .gid(uid)
            .output()?;
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(said, "refused 13\nrefused 13\n", "as uid {uid}: {said}");
    }

    // Out of memory inside its own cgroup: the peak held, the daemon and neighbour fine.
    let peak = hog_figure(&d, "cairn_tenant_workload_memory_peak_bytes")?.must("memory peak")?;
    assert!(
        peak <= f64::from(128 << 20),
        "the container reached {peak} bytes"
    );
    assert!(Path::new(&format!("/proc/{daemon}")).exists());
    assert!(Path::new(&format!("/proc/{idle}")).exists());
    Ok(())
}

/// A workload's script: raise its descriptor limit, open up to 20,000 connections to its
/// own Pebble socket for at most 5 s (or until it has no descriptor left), report how many
/// it holds, and keep them.
const SOCKET_FLOOD: &str = r#"
import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
spare = os.open("/dev/null", os.O_RDONLY)  # for the report
held = []
end = time.monotonic() + 5
for _ in range(20000):
    if time.monotonic() > end:
        break
    try:
        s = socket.socket(socket.AF_UNIX)
    except OSError:
        break  # out of descriptors: it holds all it can
    s.settimeout(0.05)
    try:
        s.connect(NAME)
        held.append(s)
    except OSError:
        s.close()
os.close(spare)
save(sys.argv[1], len(held))
time.sleep(600)
"#;

#[test]
fn a_workload_holding_thousands_of_connections_to_its_socket_cannot_take_the_daemon_down()
-> Result<()> {
    let d = Daemon::start("hostile-sockets", &[])?;
    let mut calm = Calm::deploy(&d)?;
    deploy_hog(&d, &[])?;
    let flood = RefCell::new(None);
    calm.beside("socket flood", || {
        let path = d.dir.join("held");
        *flood.borrow_mut() = Some(python_in(
            &d,
            "hog/0",
            &format!("{PEBBLE_PY}{SOCKET_FLOOD}"),
            &path,
        )?);
        // Under way once the script says how many connections it holds.
        let held =
            eventually(Duration::from_secs(30), || report(&path)?.as_u64()).with_context(|| {
                let out = std::fs::read_to_string(path.with_extension("out"));
                format!("the workload never reported its connections: {out:?}")
            })?;
        eprintln!("hostile socket flood: the workload holds {held} connections");
        assert!(held < 20000, "every connection was accepted: {held}");
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
