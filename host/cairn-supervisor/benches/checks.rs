//! CPU cost of many running checks, and notice wake-up latency, on the real supervisor.
//!
//! `cargo bench -p cairn-supervisor --bench checks` prints:
//! - the CPU time (user + system, from `getrusage`) the process spends per second of wall
//!   time while 1000 TCP checks and then 1000 HTTP checks run at a 1 s period, as a
//!   percentage of one core;
//! - the latency from recording a notice to waking a long-poll waiting for it.

use std::time::{Duration, Instant};

use cairn_supervisor::{NoticeFilter, Supervisor, SupervisorOptions};

const N: usize = 1000;

fn cpu_time() -> Duration {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// A server that accepts connections and answers every HTTP request with 200.
async fn server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 512];
                if let Ok(n) = s.read(&mut buf).await
                    && n > 0
                {
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                }
            });
        }
    });
    port
}

async fn measure(kind: &str, check: impl Fn(usize) -> String) {
    let dir =
        std::env::temp_dir().join(format!("cairn-bench-checks-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sup = Supervisor::open(SupervisorOptions {
        persist: false,
        ..SupervisorOptions::new(&dir)
    })
    .unwrap();
    let mut layer = String::from("checks:\n");
    for i in 0..N {
        layer.push_str(&check(i));
    }
    sup.add_layer("checks", layer.as_bytes(), false, false)
        .unwrap();
    // Let the checks spread over their first periods, then measure 10 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (cpu, wall) = (cpu_time() - c0, t0.elapsed());
    let up = sup
        .checks(None, &[])
        .iter()
        .filter(|c| c.status == cairn_supervisor::CheckStatus::Up)
        .count();
    let runs: u32 = sup.checks(None, &[]).iter().map(|c| c.successes).sum();
    println!(
        "{N} {kind} checks at 1s: {:.1}% of one core ({:.0} ms CPU over {:.1} s; {up} up, {runs} successful runs)",
        cpu.as_secs_f64() / wall.as_secs_f64() * 100.0,
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64()
    );
    let names: Vec<String> = (0..N).map(|i| format!("c{i}")).collect();
    sup.stop_checks(&names).unwrap();
    drop(sup);
    let _ = std::fs::remove_dir_all(&dir);
}

async fn notice_latency() {
    let dir = std::env::temp_dir().join(format!("cairn-bench-notices-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sup = Supervisor::open(SupervisorOptions {
        persist: false,
        ..SupervisorOptions::new(&dir)
    })
    .unwrap();
    let mut lat = Vec::new();
    let mut after = time::OffsetDateTime::now_utc();
    for i in 0..2000 {
        let filter = NoticeFilter {
            user_id: None,
            types: vec![cairn_supervisor::notices::NoticeType::Custom],
            keys: vec![],
            after: Some(after),
        };
        let waiter = {
            let sup = sup.clone();
            tokio::spawn(async move {
                let found = sup.wait_notices(&filter, Duration::from_secs(5)).await;
                (Instant::now(), found)
            })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(200)).await;
        let t = Instant::now();
        sup.notify(
            None,
            &format!("example.com/bench/k{}", i % 10),
            Default::default(),
            None,
        )
        .unwrap();
        let (woke, found) = waiter.await.unwrap();
        assert!(!found.is_empty());
        after = found.last().unwrap().last_repeated;
        lat.push(woke - t);
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "notice add -> long-poll wake-up (in process): p50 {:.1} µs, p99 {:.1} µs over {} notices",
        p(0.5),
        p(0.99),
        lat.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::main]
async fn main() {
    notice_latency().await;
    let port = server().await;
    measure("TCP", |i| {
        format!("  c{i}:\n    override: replace\n    period: 1s\n    tcp:\n      port: {port}\n      host: 127.0.0.1\n")
    })
    .await;
    measure("HTTP", |i| {
        format!("  c{i}:\n    override: replace\n    period: 1s\n    http:\n      url: http://127.0.0.1:{port}/c{i}\n")
    })
    .await;
}
