//! Dispatch of a trivial event into a precompiled charm: fresh store + instance + handle.
//!
//! `cargo bench -p cairn-runtime --bench dispatch` prints median, p99 and mean over several
//! rounds, for the trivial `update-status` (no host calls) and for `config-changed` (reads
//! config and stored state, writes stored state and status: 4 host calls).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_runtime::{ConfigValue, Event, Runtime, RuntimeConfig, UnitContext};

fn ctx() -> UnitContext {
    let mut config = BTreeMap::new();
    config.insert("mode".to_string(), ConfigValue::String("ok".into()));
    UnitContext {
        config,
        leader: true,
        ..UnitContext::new("bench/0", "bench", "cairn")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let cache = std::env::temp_dir().join(format!("cairn-bench-cache-{}", std::process::id()));
    let rt = Runtime::new(RuntimeConfig {
        cache_dir: Some(cache.clone()),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let wasm = cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM);
    let t = Instant::now();
    let charm = rt.load(&wasm).expect("load");
    let first = t.elapsed();
    let t = Instant::now();
    let charm2 = rt.load(&wasm).expect("load cached");
    let cached = t.elapsed();
    drop(charm2);
    println!("pooling allocator: {}", rt.pooling());
    // Events are futures: each one is driven to its end on a current-thread runtime.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("load (compile + cache write): {first:?}; load from cache: {cached:?}");
    for (label, event) in [
        ("trivial upgrade-charm (0 host calls)", Event::UpgradeCharm),
        (
            "config-changed (config, stored state and status host calls)",
            Event::ConfigChanged,
        ),
    ] {
        for _ in 0..2000 {
            let d = tokio.block_on(rt.dispatch(&charm, ctx(), &event));
            assert!(d.outcome.is_ok(), "{:?}", d.outcome);
        }
        let mut medians = Vec::new();
        let mut p99s = Vec::new();
        let mut all = Vec::new();
        for _round in 0..5 {
            let mut samples = Vec::with_capacity(10_000);
            for _ in 0..10_000 {
                let c = ctx();
                let t = Instant::now();
                let d = tokio.block_on(rt.dispatch(&charm, c, &event));
                samples.push(t.elapsed());
                std::hint::black_box(d);
            }
            samples.sort();
            medians.push(percentile(&samples, 0.5));
            p99s.push(percentile(&samples, 0.99));
            all.extend(samples);
        }
        all.sort();
        medians.sort();
        println!(
            "{label}: median {:.1} µs (best round {:.1} µs), p99 {:.1} µs, over {} dispatches",
            percentile(&all, 0.5).as_secs_f64() * 1e6,
            medians[0].as_secs_f64() * 1e6,
            percentile(&all, 0.99).as_secs_f64() * 1e6,
            all.len()
        );
    }
    let _ = std::fs::remove_dir_all(cache);
}
