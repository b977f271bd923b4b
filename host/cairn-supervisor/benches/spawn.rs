//! What starting a process costs a large, busy daemon: `spawn::Command` (clone with a
//! shared address space) beside `std::process::Command` with a pre-exec hook (a fork).
//!
//! `cargo bench -p cairn-supervisor --bench spawn` prints, for each way and for a daemon of
//! 20 MiB and of 200 MiB (`CAIRN_BENCH_SPAWN_MIB` sets the large size):
//! - starts per second of `/bin/true`, started and waited for back to back for 3 s;
//! - a neighbour thread's latency meanwhile: it writes one byte per page of its own 16 MiB
//!   every millisecond (as another tenant's event touching its memory), median and p99.
//!   Each fork write-protects the daemon's pages, so a neighbour's writes fault.

use std::os::unix::process::CommandExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(3);

/// A neighbour thread's write latencies (µs) while `start` runs back to back for [`RUN`];
/// returns the starts per second and the latencies, sorted.
fn measure(start: &dyn Fn()) -> (f64, Vec<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let neighbour = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut mem = vec![0u8; 16 << 20];
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                for i in (0..mem.len()).step_by(4096) {
                    mem[i] = mem[i].wrapping_add(1);
                }
                lat.push(t.elapsed().as_micros() as u64);
                std::thread::sleep(Duration::from_millis(1));
            }
            std::hint::black_box(&mem);
            lat
        })
    };
    let begin = Instant::now();
    let mut n = 0u64;
    while begin.elapsed() < RUN {
        start();
        n += 1;
    }
    let rate = n as f64 / begin.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut lat = neighbour.join().unwrap();
    lat.sort_unstable();
    (rate, lat)
}

fn pct(v: &[u64], p: f64) -> u64 {
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() {
    let large: usize = std::env::var("CAIRN_BENCH_SPAWN_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    println!("| daemon | way | starts/s | neighbour median | neighbour p99 |");
    println!("|---|---|---|---|---|");
    for mib in [20, large] {
        // The daemon's own memory, every page touched.
        let mut heap = vec![1u8; mib << 20];
        for i in (0..heap.len()).step_by(4096) {
            heap[i] = i as u8;
        }
        let (idle_rate, idle) = measure(&|| std::thread::sleep(Duration::from_millis(1)));
        let _ = idle_rate;
        println!(
            "| {mib} MiB | none | - | {} µs | {} µs |",
            pct(&idle, 0.5),
            pct(&idle, 0.99)
        );
        let fork = || {
            let mut cmd = std::process::Command::new("/bin/true");
            // SAFETY: an empty hook, which makes std fork.
            unsafe {
                cmd.pre_exec(|| Ok(()));
            }
            cmd.spawn().unwrap().wait().unwrap();
        };
        let clone = || {
            let mut cmd = cairn_supervisor::spawn::Command::new("/bin/true");
            // SAFETY: an empty hook, as above.
            unsafe {
                cmd.pre_exec(|| Ok(()));
            }
            let child = cmd.spawn().unwrap();
            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(child.id() as i32), None).unwrap();
        };
        let mut rates = Vec::new();
        for (way, f) in [
            ("std fork", &fork as &dyn Fn()),
            ("spawn::Command", &clone as &dyn Fn()),
        ] {
            let (rate, lat) = measure(f);
            rates.push(rate);
            println!(
                "| {mib} MiB | {way} | {rate:.0} | {} µs | {} µs |",
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
        }
        println!("| {mib} MiB | ratio | {:.1}× | | |", rates[1] / rates[0]);
        std::hint::black_box(&heap);
    }
}
