//! Dispatch of an event into a precompiled charm: fresh store + instance + handle, beside
//! the floor: the same component on the same engine, driven by the least a wasmtime host
//! can be (a store with a default WASI context, instantiate, call the handler).
//!
//! `cargo bench -p cairn-runtime --bench dispatch` prints median, p99 and the best round's
//! median for the floor, the trivial `upgrade-charm` (no host calls) and `config-changed`
//! (reads config and stored state, writes stored state and status: 4 host calls), rounds
//! of each alternating so that the machine's noise falls on all three; then the ratio of
//! the trivial event to the floor.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cairn_runtime::{ConfigValue, Event, Runtime, RuntimeConfig, UnitContext};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The bare host's view of the charm world: its own bindings of the same WIT.
mod bare {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "cairn:charm/charm@0.2.0",
        exports: { default: async },
    });
}

/// Rounds per measured kind, alternating.
const ROUNDS: usize = 5;
/// Dispatches per round.
const PER_ROUND: usize = 10_000;

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

/// The bare host's store: a WASI context (the component imports WASI) and its table.
struct Bare {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The floor: the component pre-instantiated on `engine` with WASI and every charm import
/// a trap (the trivial event calls none).
struct Floor {
    engine: Engine,
    pre: bare::CharmPre<Bare>,
}

impl Floor {
    fn new(engine: &Engine, wasm: &[u8]) -> Floor {
        let component = Component::new(engine, wasm).expect("compile");
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).expect("wasi");
        linker
            .define_unknown_imports_as_traps(&component)
            .expect("traps");
        let pre = linker.instantiate_pre(&component).expect("pre");
        Floor {
            engine: engine.clone(),
            pre: bare::CharmPre::new(pre).expect("charm world"),
        }
    }

    /// A fresh store and instance, and one call of the handler.
    async fn dispatch(&self) {
        let mut store = Store::new(
            &self.engine,
            Bare {
                wasi: WasiCtx::builder().build(),
                table: ResourceTable::new(),
            },
        );
        // The engine interrupts by epoch: a store needs a deadline to run at all.
        store.set_epoch_deadline(u64::MAX / 2);
        let charm = self
            .pre
            .instantiate_async(&mut store)
            .await
            .expect("instance");
        let event = bare::cairn::charm0_2_0::types::Event::UpgradeCharm;
        let out = charm
            .cairn_charm0_2_0_handler()
            .call_handle(&mut store, &event)
            .await
            .expect("call");
        assert!(out.is_ok(), "{out:?}");
    }
}

/// Samples of one kind, all rounds together, and each round's median.
#[derive(Default)]
struct Samples {
    all: Vec<Duration>,
    medians: Vec<Duration>,
}

impl Samples {
    fn round(&mut self, mut samples: Vec<Duration>) {
        samples.sort();
        self.medians.push(percentile(&samples, 0.5));
        self.all.extend(samples);
    }

    /// Median of all, p99 of all, best round's median (µs).
    fn report(&mut self, label: &str) -> f64 {
        self.all.sort();
        self.medians.sort();
        let median = percentile(&self.all, 0.5).as_secs_f64() * 1e6;
        println!(
            "{label}: median {median:.1} µs (best round {:.1} µs), p99 {:.1} µs, over {} dispatches",
            self.medians[0].as_secs_f64() * 1e6,
            percentile(&self.all, 0.99).as_secs_f64() * 1e6,
            self.all.len()
        );
        median
    }
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
    let floor = Floor::new(rt.engine(), &wasm);
    println!("pooling allocator: {}", rt.pooling());
    // Events are futures: each one is driven to its end on a current-thread runtime.
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("load (compile + cache write): {first:?}; load from cache: {cached:?}");
    let events = [Event::UpgradeCharm, Event::ConfigChanged];
    for _ in 0..2000 {
        tokio.block_on(floor.dispatch());
        for event in &events {
            let d = tokio.block_on(rt.dispatch(&charm, ctx(), event));
            assert!(d.outcome.is_ok(), "{:?}", d.outcome);
        }
    }
    let mut kinds: [Samples; 3] = Default::default();
    for _round in 0..ROUNDS {
        let mut samples = Vec::with_capacity(PER_ROUND);
        for _ in 0..PER_ROUND {
            let t = Instant::now();
            tokio.block_on(floor.dispatch());
            samples.push(t.elapsed());
        }
        kinds[0].round(samples);
        for (kind, event) in kinds[1..].iter_mut().zip(&events) {
            let mut samples = Vec::with_capacity(PER_ROUND);
            for _ in 0..PER_ROUND {
                let c = ctx();
                let t = Instant::now();
                let d = tokio.block_on(rt.dispatch(&charm, c, event));
                samples.push(t.elapsed());
                std::hint::black_box(d);
            }
            kind.round(samples);
        }
    }
    let floor = kinds[0].report("floor: bare wasmtime store + instantiate + trivial call");
    let trivial = kinds[1].report("trivial upgrade-charm (0 host calls)");
    kinds[2].report("config-changed (config, stored state and status host calls)");
    println!(
        "trivial dispatch / floor, medians: {:.2}x (the goal: at most 1.3x)",
        trivial / floor
    );
    let _ = std::fs::remove_dir_all(cache);
}
