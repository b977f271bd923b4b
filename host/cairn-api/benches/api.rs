//! `GET /v1/services` latency and throughput over the unix socket from one client, and a
//! replan round trip (POST /v1/services replan + wait), against a real supervisor.
//!
//! The server runs on its own thread and single-threaded runtime, as it would in its own
//! process; the client uses another. `cargo bench -p cairn-api --bench api`

use std::time::{Duration, Instant};

use cairn_api::{ApiServer, Client, serve};
use cairn_supervisor::{Supervisor, SupervisorOptions};

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("cairn-api-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let socket = dir.join(".pebble.socket");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server_dir = dir.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let sup = Supervisor::open(SupervisorOptions::new(&server_dir)).unwrap();
            let socket = server_dir.join(".pebble.socket");
            let handle = serve(ApiServer::new(sup.clone(), None), &socket, None)
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            let _ = stop_rx.await;
            sup.stop_all().await;
            handle.stop();
        });
    });
    ready_rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = Client::unix(&socket);
        let mut layer = String::from("services:\n");
        for i in 0..10 {
            layer.push_str(&format!(
                "  s{i}:\n    override: replace\n    command: sleep 100{i}\n    startup: enabled\n"
            ));
        }
        client.add_layer("base", &layer, false, false).await.unwrap();
        client.run_action("replan", &[]).await.unwrap();

        for _ in 0..2000 {
            client.services(&[]).await.unwrap();
        }
        let n = 20_000;
        let mut lat = Vec::with_capacity(n);
        let start = Instant::now();
        for _ in 0..n {
            let t = Instant::now();
            let s = client.services(&[]).await.unwrap();
            lat.push(t.elapsed());
            assert_eq!(s.len(), 10);
        }
        let total = start.elapsed();
        println!(
            "GET /v1/services (10 services), one keep-alive client: p50 {:.1} µs, p99 {:.1} µs, {:.0} req/s",
            pct(&mut lat, 0.5).as_secs_f64() * 1e6,
            pct(&mut lat, 0.99).as_secs_f64() * 1e6,
            n as f64 / total.as_secs_f64()
        );

        let mut rep = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let info = client.run_action("replan", &[]).await.unwrap();
            rep.push(t.elapsed());
            assert_eq!(info.status, "Done");
        }
        println!(
            "replan round trip (POST replan + wait, 10 running services unchanged): p50 {:.2} ms, p99 {:.2} ms",
            pct(&mut rep, 0.5).as_secs_f64() * 1e3,
            pct(&mut rep, 0.99).as_secs_f64() * 1e3
        );
    });
    stop_tx.send(()).unwrap();
    server.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
