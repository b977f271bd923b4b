//! Exec round trip through the API of `cairn pebble run`: `POST /v1/exec`, the stdio and
//! control websockets, the command (`echo hi`), its output and its change's exit code.
//!
//! `cargo bench -p cairn --bench exec` prints the median and p99.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_api::{Client, ExecOptions};

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("cairn-bench-exec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut server = Command::new(CAIRN)
        .args(["pebble", "run", "--create-dirs"])
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
    let client = Client::unix(&socket);
    let opts = ExecOptions {
        command: vec!["echo".into(), "hi".into()],
        ..ExecOptions::default()
    };
    for _ in 0..20 {
        client.exec(&opts, b"").await.unwrap();
    }
    let mut lat = Vec::new();
    for _ in 0..300 {
        let t = Instant::now();
        let out = client.exec(&opts, b"").await.unwrap();
        lat.push(t.elapsed());
        assert_eq!((out.exit_code, out.stdout.as_slice()), (0, &b"hi\n"[..]));
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
    println!(
        "exec `echo hi` round trip over the API: median {:.2} ms, p99 {:.2} ms over {} runs",
        p(0.5),
        p(0.99),
        lat.len()
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
