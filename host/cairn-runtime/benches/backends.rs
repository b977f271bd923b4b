//! What one WIT container call costs on each backend: the embedded supervisor, and the
//! Pebble API client over a unix socket (to `cairn-api`'s server on a supervisor in this
//! process, as `cairn pebble run` serves one).
//!
//! `cargo bench -p cairn-runtime --bench backends` dispatches `config-changed` to the
//! `container-probe` guest set to make one call 200 times, and prints the median time per
//! call for: `name` (a plain host call, no backend reached), `can-connect` (an async host
//! call: on the embedded backend it answers at once, so the difference from `name` is what
//! an async import costs), `get-services` and `get-plan`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_runtime::{
    ConfigValue, ContainerBackend, Event, Outcome, Runtime, RuntimeConfig, UnitContext,
};
use cairn_supervisor::{Supervisor, SupervisorOptions};

/// Calls per event.
const CALLS: i64 = 200;

fn ctx(backend: &ContainerBackend, call: &str) -> UnitContext {
    UnitContext {
        containers: BTreeMap::from([("work".to_string(), backend.clone())]),
        config: BTreeMap::from([
            ("calls".to_string(), ConfigValue::Int(CALLS)),
            ("call".to_string(), ConfigValue::String(call.into())),
        ]),
        leader: true,
        ..UnitContext::new("bench/0", "bench", "cairn")
    }
}

fn main() {
    let dir = cairn_testutil::TempDir::new("bench-backends");
    let rt = Runtime::new(RuntimeConfig::default()).expect("runtime");
    let wasm = cairn_test_programs::read(cairn_test_programs::CONTAINER_PROBE_WASM);
    let charm = rt.load(&wasm).expect("load");
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The supervisor starts its saver task on the runtime.
    let _runtime = tokio.enter();
    let sup = Supervisor::open(SupervisorOptions::new(dir.path().join("work"))).expect("open");
    let socket = dir.path().join("work.socket");
    let server = tokio
        .block_on(cairn_api::serve(
            cairn_api::ApiServer::new(sup.clone(), None),
            &socket,
            None,
        ))
        .expect("serve");
    let layer = "services:\n    svc:\n        override: replace\n        command: sleep 1000\n        startup: disabled\n";
    sup.add_layer("bench", layer.as_bytes(), false, false)
        .expect("layer");
    println!("pooling allocator: {}", rt.pooling());
    println!("{CALLS} calls per event; median per call over 100 events (after 20 warm-up)");
    let backends = [
        ("embedded", ContainerBackend::Embedded(sup.clone())),
        ("pebble client", ContainerBackend::pebble_socket(&socket)),
    ];
    for call in ["name", "can-connect", "get-services", "get-plan"] {
        let mut line = format!("{call:>13}:");
        for (label, backend) in &backends {
            let mut samples: Vec<Duration> = (0..120)
                .map(|_| {
                    let c = ctx(backend, call);
                    let t = Instant::now();
                    let d = tokio.block_on(rt.dispatch(&charm, c, &Event::ConfigChanged));
                    let took = t.elapsed();
                    assert_eq!(d.outcome, Ok(Outcome::Handled), "{call} on {label}");
                    took
                })
                .skip(20)
                .collect();
            samples.sort();
            let per_call = samples[samples.len() / 2] / CALLS as u32;
            line.push_str(&format!("  {label} {per_call:>9.2?}"));
        }
        println!("{line}");
    }
    server.stop();
    tokio.block_on(sup.stop_all());
}
