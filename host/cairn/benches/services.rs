//! 100 services on the real supervisor (`cairn pebble run`, driven over its API): wall time
//! of autostart, of a replan with nothing to do, of a replan restarting all of them, of a
//! stop of all of them, and the resident memory of the supervisor process.
//!
//! `cargo bench -p cairn --bench services` prints the figures.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_api::Client;
use cairn_supervisor::ServiceStatus;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const N: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn start_server(dir: &Path, layer: &str) -> Child {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("layers")).unwrap();
    if !layer.is_empty() {
        std::fs::write(dir.join("layers/001-base.yaml"), layer).unwrap();
    }
    let child = Command::new(CAIRN)
        .args(["pebble", "run", "--hold"])
        .env("PEBBLE", dir)
        .env_remove("PEBBLE_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = dir.join(".pebble.socket");
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

fn stop_server(mut child: Child) -> Duration {
    let t = Instant::now();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    t.elapsed()
}

async fn all_active(client: &Client) -> bool {
    let s = client.services(&[]).await.unwrap();
    s.len() == N
        && s.iter()
            .all(|s| s.current == ServiceStatus::Active.as_str())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let base = std::env::temp_dir().join(format!("cairn-bench-svc-{}", std::process::id()));

    // Baseline: the supervisor with an empty plan.
    let empty = start_server(&base.join("empty"), "");
    std::thread::sleep(Duration::from_millis(200));
    let idle_rss = rss_kib(empty.id());
    stop_server(empty);

    let mut layer = String::from("services:\n");
    for i in 0..N {
        layer.push_str(&format!(
            "  svc{i:03}:\n    override: replace\n    command: sleep 100000\n    startup: enabled\n"
        ));
    }
    let dir = base.join("hundred");
    let server = start_server(&dir, &layer);
    let client = Client::unix(dir.join(".pebble.socket"));

    // Autostart: every service started (each waits Pebble's 1 s okay delay; they share no
    // lane, so the okay delays overlap).
    let t = Instant::now();
    client.run_action("autostart", &[]).await.unwrap();
    let autostart = t.elapsed();
    assert!(all_active(&client).await);
    let rss = rss_kib(server.id());

    // Replan with nothing changed.
    let mut noop = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        client.run_action("replan", &[]).await.unwrap();
        noop.push(t.elapsed());
    }
    noop.sort();

    // Replan after every service's config changed: stop and start all 100.
    let mut merge = String::from("services:\n");
    for i in 0..N {
        merge.push_str(&format!(
            "  svc{i:03}:\n    override: merge\n    environment:\n      GEN: \"2\"\n"
        ));
    }
    client
        .add_layer("gen2", &merge, false, false)
        .await
        .unwrap();
    let t = Instant::now();
    client.run_action("replan", &[]).await.unwrap();
    let restart_all = t.elapsed();
    assert!(all_active(&client).await);
    let rss_after = rss_kib(server.id());

    let stop = stop_server(server);
    let _ = std::fs::remove_dir_all(&base);

    println!("{N} services, cairn pebble run over its API:");
    println!(
        "  autostart (start all):            {:.0} ms",
        ms(autostart)
    );
    println!(
        "  replan, nothing to do:            median {:.2} ms, max {:.2} ms",
        ms(noop[noop.len() / 2]),
        ms(*noop.last().unwrap())
    );
    println!(
        "  replan, all changed (restart):    {:.0} ms",
        ms(restart_all)
    );
    println!("  SIGTERM to exit (stop all):       {:.0} ms", ms(stop));
    println!(
        "  supervisor RSS: {:.1} MiB idle, {:.1} MiB with {N} running, {:.1} MiB after restarting them",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
}
