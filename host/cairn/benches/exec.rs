//! Exec round trip and API latency of `cairn pebble run`, side by side with real Pebble
//! when this machine has it (`CAIRN_REFERENCE_PEBBLE`, else `../shared/tools/pebble` beside
//! the repository): `POST /v1/exec` of `echo hi` with its stdio and control websockets and
//! its change's exit code, and `GET /v1/services` on one kept-alive connection. The same
//! Rust client drives both servers; rounds alternate between them so that the machine's
//! noise falls on both.
//!
//! Under load: [`CONNS`] kept-alive connections asking `GET /v1/services` as fast as each
//! gets its answers, with 10 services and then with 100 (all running): each request's
//! latency and the requests per second, alternating between the servers.
//!
//! Then `POST /v1/layers` once each server has a history of [`HISTORY`] changes (replans):
//! the same layer added again, combined under one label, alternating between the servers.
//!
//! `cargo bench -p cairn --bench exec` prints each server's medians and p99s, and the ratio.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn_api::{Client, ExecOptions};
use hyper::Method;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
/// Alternating rounds per server.
const ROUNDS: usize = 5;
/// Exec round trips per round.
const EXECS: usize = 60;
/// `GET /v1/services` per round.
const GETS: usize = 400;

/// Real Pebble, if this machine has it.
fn reference_pebble() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_REFERENCE_PEBBLE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/pebble");
    shared.is_file().then_some(shared)
}

/// A server (`program args… run --create-dirs`) on a fresh `$PEBBLE`, with its client.
struct Server {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    client: Client,
    exec: Vec<Duration>,
    get: Vec<Duration>,
    layer: Vec<Duration>,
    /// Latencies under load and requests per second of each loaded round, by service count.
    loaded: [(Vec<Duration>, Vec<f64>); 2],
}

/// Concurrent connections of the loaded rounds.
const CONNS: usize = 16;
/// Requests per connection in one loaded round.
const LOADED_REQUESTS: usize = 250;
/// Alternating loaded rounds per server and service count.
const LOADED_ROUNDS: usize = 6;

/// A layer of `n` services from `first` on, started by replan.
fn services_layer(first: usize, n: usize) -> String {
    let mut layer = String::from("services:\n");
    for i in first..first + n {
        layer.push_str(&format!(
            "  s{i}:\n    override: replace\n    command: sleep 100{i}\n    startup: enabled\n"
        ));
    }
    layer
}

/// Changes each server has made before its add-layer is measured.
const HISTORY: usize = 1000;

/// Alternating add-layer rounds per server.
const LAYER_ROUNDS: usize = 200;

/// The layer added again and again (a service, as a charm's would be).
const LAYER: &str = "services:\n  web:\n    override: replace\n    command: sleep 1000\n";

impl Server {
    fn start(name: &'static str, program: &Path, args: &[&str]) -> Server {
        let dir =
            std::env::temp_dir().join(format!("cairn-bench-exec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(program)
            .args(args)
            .args(["run", "--create-dirs"])
            .env("PEBBLE", &dir)
            .env_remove("PEBBLE_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = dir.join(".pebble.socket");
        while !socket.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        Server {
            name,
            child,
            client: Client::unix(&socket),
            dir,
            exec: Vec::new(),
            get: Vec::new(),
            layer: Vec::new(),
            loaded: Default::default(),
        }
    }

    /// Adds `layer` and replans, waiting for the services to start.
    async fn start_services(&self, label: &str, layer: &str) {
        self.client
            .add_layer(label, layer, false, false)
            .await
            .unwrap();
        let id = self.client.services_action("replan", &[]).await.unwrap();
        let info = self
            .client
            .wait_change(&id, Some(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(info.status, "Done", "{}: replan {info:?}", self.name);
    }

    /// One loaded round of `GET /v1/services` on [`CONNS`] connections, `expect` services.
    async fn loaded_round(&mut self, slot: usize, expect: usize) {
        let socket = self.dir.join(".pebble.socket");
        let clients: Vec<_> = (0..CONNS).map(|_| Client::unix(&socket)).collect();
        for c in &clients {
            let (code, body) = c.raw(Method::GET, "/v1/services", None).await.unwrap();
            let names = body.windows(8).filter(|w| w == b"\"name\":\"").count();
            assert_eq!((code, names), (200, expect), "{}", self.name);
        }
        let start = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|c| {
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(LOADED_REQUESTS);
                    for _ in 0..LOADED_REQUESTS {
                        let t = Instant::now();
                        let (code, _) = c.raw(Method::GET, "/v1/services", None).await.unwrap();
                        lat.push(t.elapsed());
                        assert_eq!(code, 200);
                    }
                    lat
                })
            })
            .collect();
        let (lat, rates) = &mut self.loaded[slot];
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        rates.push((CONNS * LOADED_REQUESTS) as f64 / start.elapsed().as_secs_f64());
    }

    async fn round(&mut self, opts: &ExecOptions) {
        for _ in 0..EXECS {
            let t = Instant::now();
            let out = self.client.exec(opts, b"").await.unwrap();
            self.exec.push(t.elapsed());
            assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"hi\n"[..]));
        }
        for _ in 0..GETS {
            let t = Instant::now();
            self.client.services(&[]).await.unwrap();
            self.get.push(t.elapsed());
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `q` quantile of `v` (sorted here), in milliseconds.
fn quantile(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let mut servers = vec![Server::start("cairn", Path::new(CAIRN), &["pebble"])];
    match reference_pebble() {
        Some(p) => servers.push(Server::start("pebble", &p, &[])),
        None => println!("no real Pebble here (set CAIRN_REFERENCE_PEBBLE): cairn alone"),
    }
    let opts = ExecOptions {
        command: vec!["echo".into(), "hi".into()],
        ..ExecOptions::default()
    };
    for s in &mut servers {
        for _ in 0..20 {
            s.client.exec(&opts, b"").await.unwrap();
            s.client.services(&[]).await.unwrap();
        }
    }
    for _ in 0..ROUNDS {
        for s in &mut servers {
            s.round(&opts).await;
        }
    }
    eprintln!("{HISTORY} changes of history, then add-layer");
    for s in &mut servers {
        for _ in 0..HISTORY {
            s.client.services_action("replan", &[]).await.unwrap();
        }
    }
    for _ in 0..LAYER_ROUNDS {
        for s in &mut servers {
            let t = Instant::now();
            s.client
                .add_layer("bench", LAYER, true, false)
                .await
                .unwrap();
            s.layer.push(t.elapsed());
        }
    }
    for (slot, expect) in [(0, 10), (1, 100)] {
        eprintln!("loaded rounds, {expect} services");
        for s in &servers {
            match expect {
                // With the add-layer rounds' `web`: 10, then 100 services.
                10 => s.start_services("ten", &services_layer(0, 9)).await,
                _ => s.start_services("hundred", &services_layer(9, 90)).await,
            }
        }
        for _ in 0..LOADED_ROUNDS {
            for s in &mut servers {
                s.loaded_round(slot, expect).await;
            }
        }
    }
    let mut medians = Vec::new();
    for s in &mut servers {
        let (e50, e99) = (quantile(&mut s.exec, 0.5), quantile(&mut s.exec, 0.99));
        let (g50, g99) = (quantile(&mut s.get, 0.5), quantile(&mut s.get, 0.99));
        println!(
            "{:>6}: exec `echo hi` round trip median {e50:.2} ms, p99 {e99:.2} ms ({} runs); GET /v1/services median {:.3} ms, p99 {g99:.3} ms ({} requests)",
            s.name,
            s.exec.len(),
            g50,
            s.get.len()
        );
        let (l50, l99) = (quantile(&mut s.layer, 0.5), quantile(&mut s.layer, 0.99));
        println!(
            "{:>6}: POST /v1/layers after {HISTORY} more changes median {l50:.2} ms, p99 {l99:.2} ms ({} requests)",
            s.name,
            s.layer.len()
        );
        let mut load = [(0.0, 0.0, 0.0); 2];
        for (i, n) in [10, 100].into_iter().enumerate() {
            let (lat, rates) = &mut s.loaded[i];
            let (p50, p99) = (quantile(lat, 0.5), quantile(lat, 0.99));
            rates.sort_by(f64::total_cmp);
            let rate = rates[rates.len() / 2];
            println!(
                "{:>6}: GET /v1/services, {n} services, {CONNS} connections: median {p50:.3} ms, p99 {p99:.3} ms, {rate:.0} requests/s (median of {} rounds)",
                s.name,
                rates.len()
            );
            load[i] = (p50, p99, rate);
        }
        medians.push((e50, g50, l50, load));
    }
    if let [(ce, cg, cl, cload), (pe, pg, pl, pload)] = medians[..] {
        println!(
            "pebble / cairn, medians: exec {:.2}x, GET /v1/services {:.2}x, POST /v1/layers {:.2}x (above 1: cairn is faster)",
            pe / ce,
            pg / cg,
            pl / cl
        );
        for (i, n) in [10, 100].into_iter().enumerate() {
            println!(
                "pebble / cairn, {n} services on {CONNS} connections: median {:.2}x, p99 {:.2}x; cairn / pebble requests/s {:.2}x (above 1: cairn is faster)",
                pload[i].0 / cload[i].0,
                pload[i].1 / cload[i].1,
                cload[i].2 / pload[i].2
            );
        }
    }
}
