//! Whole-process time of one Juju-style dispatch (process start → event handled → exit),
//! Cairn's `cairn-dispatch` side by side with the same handler written with Python `ops`
//! (pinned, as the ops-compat tests pin it), with the same fake hook tools
//! (`tests/juju/fake-hook-tool.sh`), in two scenarios:
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
//! `cargo bench -p cairn --bench juju_dispatch` prints medians, p90s, the ratio and the peak
//! RSS of each (`CAIRN_BENCH_RUNS` sets the runs per variant, default 40).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const DISPATCH: &str = env!("CARGO_BIN_EXE_cairn-dispatch");
const HOOK_TOOL: &str = include_str!("../../../tests/juju/fake-hook-tool.sh");
const OPS_VERSION: &str = "3.9.0";
const TOOLS: &[&str] = &[
    "config-get",
    "is-leader",
    "status-get",
    "status-set",
    "action-get",
    "action-set",
    "action-log",
    "action-fail",
    "juju-log",
    "application-version-set",
];

/// One run's wall time and the child's peak RSS (KiB), from `wait4`.
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also gives its rusage"
)]
fn run_once(cmd: &mut Command) -> (Duration, i64) {
    let start = Instant::now();
    let child = cmd.spawn().expect("cannot start dispatch");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child by pid, with valid pointers to locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "dispatch failed: status {status}"
    );
    (took, usage.ru_maxrss)
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

fn stats(name: &str, mut times: Vec<Duration>, rss: i64) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    println!(
        "{name:<34} median {:>8.2} ms   p90 {:>8.2} ms   min {:>8.2} ms   peak RSS {:>6.1} MiB",
        median.as_secs_f64() * 1e3,
        p90.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
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

/// A Pebble started as Juju starts a workload container's; killed (with its services) on
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
        // SAFETY: kill(2) of our own child's process group (its services included).
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
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

fn main() {
    let runs: usize = std::env::var("CAIRN_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::temp_dir().join(format!("cairn-bench-juju-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    let model = dir.join("model");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&model).unwrap();
    let script = bin.join("hook-tool");
    std::fs::write(&script, HOOK_TOOL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for t in TOOLS {
        std::os::unix::fs::symlink(&script, bin.join(t)).unwrap();
    }
    std::fs::write(model.join("config.json"), r#"{"mode": "ok", "label": ""}"#).unwrap();

    // The Cairn charm as `cairn pack` lays it out, with a `dispatch` script.
    let cairn_dir = dir.join("cairn-charm");
    std::fs::create_dir_all(cairn_dir.join("bin")).unwrap();
    std::fs::copy(
        repo.join("tests/programs/misbehave/charmcraft.yaml"),
        cairn_dir.join("charmcraft.yaml"),
    )
    .unwrap();
    std::fs::copy(
        cairn_test_programs::MISBEHAVE_WASM,
        cairn_dir.join("charm.wasm"),
    )
    .unwrap();
    std::fs::copy(DISPATCH, cairn_dir.join("bin/cairn-dispatch")).unwrap();
    std::fs::write(cairn_dir.join("dispatch"), cairn_juju_dispatch_script()).unwrap();
    std::fs::set_permissions(
        cairn_dir.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let ops_dir = dir.join("ops-charm");
    copy_dir(&repo.join("tests/juju/ops-charm"), &ops_dir);
    let python = ops_python();

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let command = |charm: &Path, program: &Path| {
        let mut c = Command::new(program);
        c.current_dir(charm)
            .env_clear()
            .env("PATH", &path)
            .env("FAKE_JUJU", &model)
            .env("OPS_PYTHON", &python)
            .env("JUJU_DISPATCH_PATH", "hooks/config-changed")
            .env("JUJU_UNIT_NAME", "misbehave/0")
            .env("JUJU_MODEL_NAME", "bench")
            .env("JUJU_MODEL_UUID", "00000000-0000-4000-8000-000000000000")
            .env("JUJU_CHARM_DIR", charm)
            .env("JUJU_VERSION", "3.6.4");
        c
    };
    // Scenario `web`: add-layer + replan against real Pebble.
    let web_cairn = dir.join("web-cairn");
    std::fs::create_dir_all(web_cairn.join("bin")).unwrap();
    std::fs::copy(
        repo.join("examples/web/charmcraft.yaml"),
        web_cairn.join("charmcraft.yaml"),
    )
    .unwrap();
    std::fs::copy(cairn_test_programs::WEB_WASM, web_cairn.join("charm.wasm")).unwrap();
    std::fs::copy(DISPATCH, web_cairn.join("bin/cairn-dispatch")).unwrap();
    std::fs::write(web_cairn.join("dispatch"), cairn_juju_dispatch_script()).unwrap();
    std::fs::set_permissions(
        web_cairn.join("dispatch"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let web_ops = dir.join("web-ops");
    copy_dir(&repo.join("tests/juju/ops-web"), &web_ops);
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
            let variants = [
                (
                    "cairn web (./dispatch script)",
                    web_cairn.clone(),
                    web_cairn.join("dispatch"),
                    cairn_port,
                ),
                (
                    "cairn web (cairn-dispatch directly)",
                    web_cairn.clone(),
                    web_cairn.join("bin/cairn-dispatch"),
                    cairn_port,
                ),
                (
                    "ops 3.9.0 web (./dispatch script)",
                    web_ops.clone(),
                    web_ops.join("dispatch"),
                    ops_port,
                ),
            ];
            println!(
                "juju dispatch of web's config-changed (config-get, add-layer + replan against real Pebble, stored state, juju-log, status-set), {runs} runs each"
            );
            let mut medians = Vec::new();
            for (name, charm, program, port) in &variants {
                let config = format!(r#"{{"port": {port}, "check-period": "10s"}}"#);
                std::fs::write(model.join("config.json"), config).unwrap();
                let mut cmd = || {
                    let mut c = command(charm, program);
                    c.env("CAIRN_JUJU_ROOT", &root);
                    c
                };
                medians.push(measure(
                    name,
                    runs,
                    &mut cmd,
                    &model,
                    "active serving on port",
                ));
            }
            let _ = std::fs::remove_file(&ops_socket);
            let _ = std::fs::remove_dir(ops_socket_dir);
            let _ = std::fs::remove_dir(Path::new("/charm/containers"));
            let _ = std::fs::remove_dir(Path::new("/charm"));
            ratios(&medians);
        }
    }

    // Scenario `no pebble`.
    std::fs::write(model.join("config.json"), r#"{"mode": "ok", "label": ""}"#).unwrap();
    let variants: [(&str, PathBuf, PathBuf); 3] = [
        (
            "cairn (./dispatch script)",
            cairn_dir.clone(),
            cairn_dir.join("dispatch"),
        ),
        (
            "cairn (cairn-dispatch directly)",
            cairn_dir.clone(),
            cairn_dir.join("bin/cairn-dispatch"),
        ),
        (
            "ops 3.9.0 (./dispatch script)",
            ops_dir.clone(),
            ops_dir.join("dispatch"),
        ),
    ];
    println!(
        "juju dispatch of config-changed without Pebble (config-get, stored state, status-set), {runs} runs each"
    );
    let mut medians = Vec::new();
    for (name, charm, program) in &variants {
        medians.push(measure(
            name,
            runs,
            &mut || command(charm, program),
            &model,
            "active handled",
        ));
    }
    ratios(&medians);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a variant: 3 warm-up runs (the first Cairn run compiles and caches the component;
/// the first web run starts the service), then `runs` measured; checks the status the
/// last run set.
fn measure(
    name: &str,
    runs: usize,
    cmd: &mut dyn FnMut() -> Command,
    model: &Path,
    status: &str,
) -> Duration {
    for _ in 0..3 {
        run_once(&mut cmd());
    }
    let _ = std::fs::remove_file(model.join("status"));
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let (t, r) = run_once(&mut cmd());
        times.push(t);
        rss = rss.max(r);
    }
    let set = std::fs::read_to_string(model.join("status")).unwrap_or_default();
    assert!(
        set.replace('\n', " ")
            .starts_with(&format!("active {}", status.trim_start_matches("active "))),
        "{name}: unexpected status {set:?}"
    );
    stats(name, times, rss)
}

/// Prints how much slower ops is than each Cairn variant.
fn ratios(medians: &[Duration]) {
    println!(
        "ops / cairn (script): {:.1}x   ops / cairn (direct): {:.1}x",
        medians[2].as_secs_f64() / medians[0].as_secs_f64(),
        medians[2].as_secs_f64() / medians[1].as_secs_f64()
    );
}

/// The `dispatch` script `cairn pack` writes.
fn cairn_juju_dispatch_script() -> &'static str {
    cairn_juju::pack::DISPATCH_SCRIPT
}
