//! Whole-process time of one Juju-style dispatch (process start → event handled → exit),
//! Cairn's `cairn-dispatch` side by side with the same handler written with Python `ops`
//! (pinned, as the ops-compat tests pin it), with the same fake hook tools
//! (`cairn_testutil::juju`: one `sh` script that starts nothing else), in two scenarios:
//! - `web`: the web example's `config-changed` (`config-get`, `add-layer` + `replan` against
//!   real Pebble, stored state, `juju-log`, one `status-set`) against `tests/juju/ops-web`,
//!   each with a Pebble of its own (`pebble run --hold --create-dirs`, as Juju starts it;
//!   the steady state: the layer is unchanged, so the replan starts nothing). ops reaches
//!   Pebble only at `/charm/containers/web/pebble.socket`, so the benchmark links its
//!   Pebble's socket there (it needs to be able to create `/charm`; else it skips this
//!   scenario and says so), and Cairn's under a root of its own (`CAIRN_JUJU_ROOT`).
//!   Real Pebble is `CAIRN_REFERENCE_PEBBLE`, else `../shared/tools/pebble`.
//! - `no pebble`: the `misbehave` test charm's `config-changed` in `ok` mode (`config-get`,
//!   stored state, one `status-set`) against `tests/juju/ops-charm`.
//!
//! After the `web` scenario, the same Pebble calls alone (`pebble_floor`): the floor that
//! real Pebble itself sets for any dispatch of that event.
//!
//! The variants of a scenario take turns, run by run, so that a shared machine's load
//! weighs on all of them alike. Each prints the median, p90 and min wall time, the median
//! CPU time (user + system of the dispatch and the hook tools it ran, from `wait4`) and
//! the peak RSS; then how many times slower ops is.
//!
//! `cargo bench -p cairn --bench juju_dispatch`. `CAIRN_BENCH_RUNS` sets the runs per
//! variant (default 40). The charm directories, the fake model and the Pebble state
//! directories are put in `CAIRN_BENCH_DIR`, else `/dev/shm` when it exists (so that other
//! programs' disk writes on the machine do not stall the fake tools' and Pebble's writes),
//! else the temporary directory. `CAIRN_BENCH_DISPATCHER` adds a variant running another
//! build of `cairn-dispatch` (e.g. the static one that `cargo build-dispatcher` builds
//! for `cairn pack` to ship).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DISPATCH: &str = env!("CARGO_BIN_EXE_cairn-dispatch");
const OPS_VERSION: &str = "3.9.0";

/// One run: wall time, CPU time (user + system, the child and what it waited for) and
/// peak RSS (KiB), from `wait4`.
struct Run {
    wall: Duration,
    cpu: Duration,
    rss: i64,
}

#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_once(cmd: &mut Command) -> Run {
    let start = Instant::now();
    let child = cmd.spawn().expect("cannot start dispatch");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child by pid, with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "dispatch failed: status {status}"
    );
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Run {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        rss: usage.ru_maxrss,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// A virtualenv with `ops` installed, shared with the ops-compat tests.
fn ops_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ops-venv");
    let python = venv.join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            &format!("import ops; assert ops.__version__ == '{OPS_VERSION}'"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet"])
                .arg(format!("ops=={OPS_VERSION}"))
                .status()
                .unwrap()
                .success(),
            "cannot install ops {OPS_VERSION}"
        );
    }
    python
}

/// Prints a variant's figures; returns its median wall time.
fn stats(name: &str, runs: &[Run]) -> Duration {
    let mut wall: Vec<Duration> = runs.iter().map(|r| r.wall).collect();
    let mut cpu: Vec<Duration> = runs.iter().map(|r| r.cpu).collect();
    wall.sort();
    cpu.sort();
    let rss = runs.iter().map(|r| r.rss).max().unwrap_or(0);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let median = wall[wall.len() / 2];
    println!(
        "{name:<40} median {:>7.2} ms  p90 {:>7.2} ms  min {:>7.2} ms  cpu {:>6.2} ms  peak RSS {:>5.1} MiB",
        ms(median),
        ms(wall[wall.len() * 9 / 10]),
        ms(wall[0]),
        ms(cpu[cpu.len() / 2]),
        rss as f64 / 1024.0
    );
    median
}

/// Real Pebble, if this machine has it.
fn reference_pebble() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_REFERENCE_PEBBLE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/pebble");
    shared.is_file().then_some(shared)
}

/// A Pebble started as Juju starts a workload container's; stopped with its services on
/// drop.
struct Pebble(std::process::Child, PathBuf);

impl Pebble {
    fn start(bin: &Path, dir: &Path) -> Pebble {
        let child = Command::new(bin)
            .args(["run", "--hold", "--create-dirs"])
            .env("PEBBLE", dir)
            .env_remove("PEBBLE_SOCKET")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .expect("cannot start pebble");
        let socket = dir.join(".pebble.socket");
        let t = Instant::now();
        while !socket.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "pebble did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Pebble(child, socket)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        // Pebble puts each service in a process group of its own, so only its SIGTERM
        // handling (stop the services, then exit) ends them; SIGKILL if it has not exited
        // within 10 s.
        let pid = self.0.id() as i32;
        // SAFETY: kill(2) of our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Where the benchmark's files go (see the module's doc).
fn scratch_root() -> PathBuf {
    if let Some(d) = std::env::var_os("CAIRN_BENCH_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// A Cairn charm directory as `cairn pack` lays it out (metadata, component, dispatcher
/// and the `dispatch` script).
fn cairn_charm(dir: &Path, charmcraft: &Path, wasm: &str, dispatcher: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::copy(charmcraft, dir.join("charmcraft.yaml")).unwrap();
    std::fs::copy(wasm, dir.join("charm.wasm")).unwrap();
    std::fs::copy(dispatcher, dir.join("bin/cairn-dispatch")).unwrap();
    std::fs::write(dir.join("dispatch"), cairn_juju::pack::DISPATCH_SCRIPT).unwrap();
    std::fs::set_permissions(dir.join("dispatch"), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// One way of handling the event: its name, charm directory and program; the last of a
/// scenario's list is ops.
struct Variant {
    name: String,
    charm: PathBuf,
    program: PathBuf,
}

fn main() {
    let runs: usize = std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch_root().join(format!("cairn-bench-juju-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    cairn_testutil::juju::install_fake_hook_tools(&bin).unwrap();
    let other = std::env::var_os("CAIRN_BENCH_DISPATCHER")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from);
    // The Cairn variants of a charm: its `./dispatch` script and the dispatcher run
    // directly, and the other dispatcher's `./dispatch` when there is one.
    let cairn_variants = |label: &str, charmcraft: &Path, wasm: &str| {
        let main = dir.join(format!("{label}-cairn"));
        cairn_charm(&main, charmcraft, wasm, Path::new(DISPATCH));
        let mut v = vec![
            Variant {
                name: format!("cairn {label} (./dispatch script)"),
                charm: main.clone(),
                program: main.join("dispatch"),
            },
            Variant {
                name: format!("cairn {label} (cairn-dispatch directly)"),
                charm: main.clone(),
                program: main.join("bin/cairn-dispatch"),
            },
        ];
        if let Some(other) = &other {
            let alt = dir.join(format!("{label}-cairn-other"));
            cairn_charm(&alt, charmcraft, wasm, other);
            v.push(Variant {
                name: format!("cairn {label} (CAIRN_BENCH_DISPATCHER)"),
                charm: alt.clone(),
                program: alt.join("dispatch"),
            });
        }
        v
    };
    let python = ops_python();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    println!(
        "files under {}; load average before: {}",
        dir.display(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let command = |v: &Variant, unit: &str, root: Option<&Path>| {
        let mut c = Command::new(&v.program);
        c.current_dir(&v.charm)
            .env_clear()
            .env("PATH", &path)
            .env("FAKE_JUJU", &model)
            .env("OPS_PYTHON", &python)
            .env("JUJU_DISPATCH_PATH", "hooks/config-changed")
            .env("JUJU_UNIT_NAME", unit)
            .env("JUJU_MODEL_NAME", "bench")
            .env("JUJU_MODEL_UUID", "00000000-0000-4000-8000-000000000000")
            .env("JUJU_CHARM_DIR", &v.charm)
            .env("JUJU_VERSION", "3.6.4");
        if let Some(root) = root {
            c.env("CAIRN_JUJU_ROOT", root);
        }
        c
    };

    // Scenario `web`: add-layer + replan against real Pebble.
    let ops_socket_dir = Path::new("/charm/containers/web");
    let ops_socket = ops_socket_dir.join("pebble.socket");
    match reference_pebble() {
        None => println!("web scenario skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)"),
        Some(_) if ops_socket.exists() || std::fs::create_dir_all(ops_socket_dir).is_err() => {
            println!(
                "web scenario skipped: cannot link ops' socket at {} (exists or not writable)",
                ops_socket.display()
            )
        }
        Some(pebble) => {
            let mut variants = cairn_variants(
                "web",
                &repo.join("examples/web/charmcraft.yaml"),
                cairn_test_programs::WEB_WASM,
            );
            let web_ops = dir.join("web-ops");
            copy_dir(&repo.join("tests/juju/ops-web"), &web_ops);
            variants.push(Variant {
                name: format!("ops {OPS_VERSION} web (./dispatch script)"),
                charm: web_ops.clone(),
                program: web_ops.join("dispatch"),
            });
            // One Pebble (and port) for the Cairn variants, one for ops.
            let cairn_pebble = Pebble::start(&pebble, &dir.join("pebble-cairn"));
            let ops_pebble = Pebble::start(&pebble, &dir.join("pebble-ops"));
            let root = dir.join("root");
            std::fs::create_dir_all(root.join("charm/containers/web")).unwrap();
            std::os::unix::fs::symlink(
                &cairn_pebble.1,
                root.join("charm/containers/web/pebble.socket"),
            )
            .unwrap();
            std::os::unix::fs::symlink(&ops_pebble.1, &ops_socket).unwrap();
            let (cairn_port, ops_port) = (free_port(), free_port());
            let config = |port: u16| format!(r#"{{"port": {port}, "check-period": "10s"}}"#);
            println!(
                "juju dispatch of web's config-changed (config-get, add-layer + replan against real Pebble, stored state, juju-log, status-set), {runs} runs each"
            );
            let ops = variants.len() - 1;
            measure(
                &variants,
                runs,
                &mut |i| {
                    let port = if i == ops { ops_port } else { cairn_port };
                    std::fs::write(model.join("config.json"), config(port)).unwrap();
                    command(&variants[i], "web/0", Some(&root))
                },
                &model,
                "active serving on port",
            );
            pebble_floor(&cairn_pebble.1, runs);
            let _ = std::fs::remove_file(&ops_socket);
            let _ = std::fs::remove_dir(ops_socket_dir);
            let _ = std::fs::remove_dir(Path::new("/charm/containers"));
            let _ = std::fs::remove_dir(Path::new("/charm"));
        }
    }

    // Scenario `no pebble`.
    std::fs::write(model.join("config.json"), r#"{"mode": "ok", "label": ""}"#).unwrap();
    let mut variants = cairn_variants(
        "misbehave",
        &repo.join("tests/programs/misbehave/charmcraft.yaml"),
        cairn_test_programs::MISBEHAVE_WASM,
    );
    let ops_dir = dir.join("ops-charm");
    copy_dir(&repo.join("tests/juju/ops-charm"), &ops_dir);
    variants.push(Variant {
        name: format!("ops {OPS_VERSION} (./dispatch script)"),
        charm: ops_dir.clone(),
        program: ops_dir.join("dispatch"),
    });
    println!(
        "juju dispatch of config-changed without Pebble (config-get, stored state, status-set), {runs} runs each"
    );
    measure(
        &variants,
        runs,
        &mut |i| command(&variants[i], "misbehave/0", None),
        &model,
        "active handled",
    );
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The part of the web scenario that is real Pebble's own work, measured in this process
/// with Cairn's Rust client (no process start, no hook tool): the web charm's
/// `config-changed` calls in the steady state — add its layer again (the plan unchanged),
/// replan, and wait for the replan's change. No dispatch against this Pebble can be faster.
fn pebble_floor(socket: &Path, runs: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = cairn_api::client::Client::unix(socket);
    let mut times: Vec<Duration> = rt.block_on(async {
        let plan = client.plan().await.expect("cannot read the plan");
        let mut times = Vec::new();
        for _ in 0..runs + 3 {
            let start = Instant::now();
            client
                .add_layer("web", &plan, true, false)
                .await
                .expect("cannot add the layer");
            let change = client
                .services_action("replan", &[])
                .await
                .expect("cannot replan");
            client
                .wait_change(&change, Some(Duration::from_secs(10)))
                .await
                .expect("cannot wait for the replan");
            times.push(start.elapsed());
        }
        times.split_off(3)
    });
    times.sort();
    println!(
        "real Pebble alone (add-layer + replan + change wait, Rust client, in process): median {:>7.2} ms  min {:>7.2} ms",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}

/// Runs a scenario's variants in turns: 3 warm-up rounds (the first Cairn run compiles
/// and caches the component; the first web run starts the service), then `runs` measured
/// rounds, checking after each run the status it set; prints each variant's figures and
/// how many times slower the last (ops) is than each other.
fn measure(
    variants: &[Variant],
    runs: usize,
    cmd: &mut dyn FnMut(usize) -> Command,
    model: &Path,
    status: &str,
) {
    let mut results: Vec<Vec<Run>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..runs + 3 {
        for (i, v) in variants.iter().enumerate() {
            let _ = std::fs::remove_file(model.join("status"));
            let run = run_once(&mut cmd(i));
            let set = std::fs::read_to_string(model.join("status")).unwrap_or_default();
            assert!(
                set.replace('\n', " ").starts_with(status),
                "{}: unexpected status {set:?}",
                v.name
            );
            if round >= 3 {
                results[i].push(run);
            }
        }
    }
    let medians: Vec<Duration> = variants
        .iter()
        .zip(&results)
        .map(|(v, r)| stats(&v.name, r))
        .collect();
    let (ops, cairn) = medians.split_last().unwrap();
    let ratios: Vec<String> = variants
        .iter()
        .zip(cairn)
        .map(|(v, m)| {
            format!(
                "{}: {:.1}x",
                v.name.trim_start_matches("cairn "),
                ops.as_secs_f64() / m.as_secs_f64()
            )
        })
        .collect();
    println!("ops / cairn, median wall time: {}", ratios.join("   "));
}
