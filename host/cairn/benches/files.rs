//! Push and pull of a 100 MiB file through the files API of `cairn pebble run`, with the
//! server's resident memory before and after (it must stay flat: transfers stream).
//!
//! `cargo bench -p cairn --bench files` prints MiB/s and RSS.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_api::Client;
use cairn_supervisor::files::WriteItem;

const CAIRN: &str = env!("CARGO_BIN_EXE_cairn");
const SIZE: usize = 100 << 20;

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main]
async fn main() {
    let dir = std::env::temp_dir().join(format!("cairn-bench-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pebble = dir.join("pebble");
    let mut server = Command::new(CAIRN)
        .args(["pebble", "run", "--create-dirs"])
        .env("PEBBLE", &pebble)
        .env_remove("PEBBLE_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = pebble.join(".pebble.socket");
    while !socket.exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let local = dir.join("source.bin");
    let data: Vec<u8> = (0..SIZE).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    drop(data);
    let client = Client::unix(&socket);
    let rss0 = rss_mib(server.id());
    let mut push_rates = Vec::new();
    let mut pull_rates = Vec::new();
    let mut rss_max: f64 = 0.0;
    for i in 0..3 {
        let item = WriteItem {
            path: dir.join(format!("remote-{i}.bin")).display().to_string(),
            ..WriteItem::default()
        };
        let t = Instant::now();
        client.push_file(&local, &item).await.unwrap();
        push_rates.push(SIZE as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64());
        rss_max = rss_max.max(rss_mib(server.id()));
        let t = Instant::now();
        let n = client
            .pull(&item.path, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(n as usize, SIZE);
        pull_rates.push(SIZE as f64 / (1 << 20) as f64 / t.elapsed().as_secs_f64());
        rss_max = rss_max.max(rss_mib(server.id()));
        std::fs::remove_file(&item.path).unwrap();
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "100 MiB push: median {:.0} MiB/s; pull: median {:.0} MiB/s (3 runs each)",
        med(&mut push_rates),
        med(&mut pull_rates)
    );
    println!("server RSS: {rss0:.1} MiB before, at most {rss_max:.1} MiB during the transfers");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
