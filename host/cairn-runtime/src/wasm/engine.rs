//! The wasmtime engine, the on-disk component cache and per-event dispatch with limits.
//!
//! One [`Runtime`] per host process: one engine (pooling allocator when the machine allows
//! it, `concurrency_support(false)`, epochs driven by one ticker thread), one linker with
//! WASI p2 (no preopens, no sockets) and the charm world, both async. A [`Charm`] is a
//! compiled component plus its `InstancePre`; every event gets a fresh store and instance,
//! as Juju gives every hook a fresh process.
//!
//! An event is a future on the caller's task: wasm runs on a fiber that yields back to the
//! tokio worker at every epoch tick, and host calls that wait (WASI's clocks and polls
//! included) await instead of blocking a thread. The event's deadline is a tokio timeout
//! around instantiate and call, and an [`Interrupt`] ends it at once; either way the
//! future is dropped, which cancels the guest wherever it is (in wasm or in a host call).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use sha2::Digest;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::bindings::{StoreState, UnitContext, v01, v02};
use super::limits::GuestLimiter;
use crate::RuntimeError;
use crate::types::{Event, LogLevel, LogLine, Outcome};

/// How often the engine-wide epoch advances.
const TICK: Duration = Duration::from_millis(10);
/// Most bytes of guest stdout/stderr kept per event.
const MAX_GUEST_OUTPUT: usize = 1 << 20;

/// Limits and places of the runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Linear memory limit per unit store, in bytes.
    pub memory_limit: usize,
    /// Wall-clock budget of one event, host calls included (a timeout around the event's
    /// future).
    pub event_deadline: Duration,
    /// Instances that may exist at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Whether to try the pooling allocator (the binary may turn it off, e.g. where
    /// reserving its virtual memory is not allowed).
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            memory_limit: 64 << 20,
            event_deadline: Duration::from_secs(60),
            max_instances: 1000,
            pooling: true,
        }
    }
}

/// The wasm engine shared by every unit of the host.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    config: RuntimeConfig,
    pooling: bool,
    stop_ticker: Arc<AtomicBool>,
    /// The components loaded, by content hash, while some app holds them: apps of one
    /// charm share its code (one mapping and one descriptor of the compiled file, not one
    /// per app).
    loaded: std::sync::Mutex<std::collections::HashMap<String, Weak<Pre>>>,
}

/// A component prepared as the world it targets.
enum Pre {
    V01(v01::CharmPre<StoreState>),
    V02(v02::CharmPre<StoreState>),
}

/// A charm component compiled for this engine, ready to instantiate.
pub struct Charm {
    pre: Arc<Pre>,
    /// Hex SHA-256 of the component bytes.
    pub hash: String,
}

impl Charm {
    /// The version of the `cairn:charm` contract the component targets (`0.1.0`,
    /// `0.2.0`): a 0.1 charm has no relations.
    pub fn contract(&self) -> &'static str {
        match *self.pre {
            Pre::V01(_) => "0.1.0",
            Pre::V02(_) => "0.2.0",
        }
    }

    /// Whether the charm can be given relation events (it targets 0.2 or later).
    pub fn has_relations(&self) -> bool {
        matches!(*self.pre, Pre::V02(_))
    }
}

/// The result of delivering one event.
pub struct Dispatched {
    /// What the handler returned, or why the event failed.
    pub outcome: Result<Outcome, Failure>,
    /// The unit context after the handler (status, stored state and relation bags as the
    /// handler left them; `ctx.relations.written` lists the bags it wrote). After a failed
    /// event the relations are as lent: nothing of them is to be committed.
    pub ctx: UnitContext,
    /// Charm log calls and guest output, in order.
    pub logs: Vec<LogLine>,
    /// Wall time of instantiate + handle.
    pub duration: Duration,
    /// The largest linear memory the guest reached, in bytes (for the tenant's metrics).
    pub memory_peak: usize,
}

/// Why an event failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The handler returned an error.
    #[error("{0}")]
    Handler(String),
    /// The event ran past its deadline (in wasm or waiting in a host call).
    #[error("event deadline of {} exceeded", cairn_plan::format_duration(*.0))]
    Deadline(Duration),
    /// The event was stopped before its end by its [`Interrupt`] (the unit is being
    /// removed).
    #[error("event interrupted: unit is being removed")]
    Interrupted,
    /// The guest tried to grow its memory past the limit (bytes).
    #[error("memory limit of {} MiB exceeded", .0 >> 20)]
    MemoryLimit(usize),
    /// The guest trapped: the trap, then what it printed last (a panic's message).
    #[error("guest trapped: {trap}{}", detail.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Trap {
        /// The trap's description.
        trap: String,
        /// The last line of the guest's stderr.
        detail: Option<String>,
    },
    /// The event went over the app's budget (stored state): the text says which.
    #[error("{0}")]
    Budget(String),
    /// Instantiation or the call failed otherwise (the error chain, flattened for the
    /// unit's history).
    #[error("guest failed: {0}")]
    Guest(String),
    /// The handler succeeded but the host could not commit what it did (relation data on
    /// a full disk): the event is retried.
    #[error("{0}")]
    Commit(String),
}

/// Stops the events it is handed to: set once, it ends the event running and every later
/// one at once ([`Failure::Interrupted`]). Clones share the signal.
#[derive(Clone, Debug)]
pub struct Interrupt(Arc<watch::Sender<bool>>);

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt(Arc::new(watch::Sender::new(false)))
    }
}

impl Interrupt {
    /// A signal not yet given.
    pub fn new() -> Self {
        Self::default()
    }

    /// Gives the signal: events running with it end now.
    pub fn interrupt(&self) {
        self.0.send_replace(true);
    }

    /// Whether the signal was given.
    pub fn is_interrupted(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the signal is given.
    pub(crate) async fn interrupted(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|given| *given).await;
    }
}

/// How an event's call ended when it did not return.
enum Stopped {
    Deadline,
    Interrupted,
}

/// The most bytes of a pooled linear memory kept resident (and zeroed by hand) when its
/// slot is given back.
const KEEP_RESIDENT: usize = 1 << 20;
/// The most unused slots kept warm (their pages resident) in the pool.
const WARM_SLOTS: u32 = 16;

fn base_config() -> Config {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    c.concurrency_support(false);
    c
}

impl Runtime {
    /// Builds the engine (trying the pooling allocator first), the linker and the ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let pooled = if config.pooling {
            let mut pool = PoolingAllocationConfig::default();
            let n = config.max_instances.max(1);
            pool.total_component_instances(n);
            pool.total_core_instances(n * 4);
            pool.total_memories(n);
            pool.total_tables(n * 4);
            // One fiber stack per running event (2 MiB reserved each, wasmtime's default;
            // pages are given back when a stack returns to the pool).
            pool.total_stacks(n);
            pool.max_memory_size(config.memory_limit);
            // A slot given back is reset by writing zeros over the pages the instance
            // touched (found with PAGEMAP_SCAN where the kernel has it), up to these
            // sizes, instead of unmapping them: the next event on the slot takes no page
            // faults, and no other thread is interrupted to flush its TLB. Kept warm: a
            // few slots, so that the pages kept stay a few MiB in all.
            pool.linear_memory_keep_resident(KEEP_RESIDENT);
            pool.table_keep_resident(KEEP_RESIDENT / 16);
            pool.async_stack_keep_resident(KEEP_RESIDENT / 16);
            pool.pagemap_scan(wasmtime::Enabled::Auto);
            pool.max_unused_warm_slots(WARM_SLOTS);
            let mut c = base_config();
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            match Engine::new(&c) {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::info!("pooling allocator unavailable, using on-demand: {e}");
                    None
                }
            }
        } else {
            None
        };
        let pooling = pooled.is_some();
        let engine = match pooled {
            Some(e) => e,
            None => Engine::new(&base_config()).map_err(|e| RuntimeError::Engine(e.into()))?,
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(e.into()))?;
        // 0.1's world (`unit`, `pebble`), then what 0.2 adds (`relation`): 0.2's world
        // imports 0.1's interfaces themselves, so one linker serves both.
        v01::Charm::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Engine(e.into()))?;
        v02::cairn::charm0_2_0::relation::add_to_linker::<_, wasmtime::component::HasSelf<_>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| RuntimeError::Engine(e.into()))?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("cairn-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(e.into()))?;
        }
        if let Some(dir) = &config.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| RuntimeError::cache("create", dir, e))?;
        }
        Ok(Runtime {
            engine,
            linker,
            config,
            pooling,
            stop_ticker,
            loaded: Default::default(),
        })
    }

    /// The engine events run on: for an embedder that compiles or runs components of its
    /// own with the same settings (the dispatch bench's bare-wasmtime floor does).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether the pooling allocator is in use.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    /// The runtime's limits.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn cache_path(&self, hash: &str) -> Option<PathBuf> {
        let dir = self.config.cache_dir.as_ref()?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{hash}-{:016x}.cwasm", h.finish())))
    }

    /// Compiles (or loads from the cache) a component and prepares it for instantiation.
    pub fn load(&self, wasm: &[u8]) -> Result<Charm, RuntimeError> {
        let hash = hex(&sha2::Sha256::digest(wasm));
        if let Some(charm) = self.shared(&hash) {
            return Ok(charm);
        }
        let component = match self.cache_path(&hash) {
            Some(path) => {
                // SAFETY: deserializing runs native code from the file, so the cache directory
                // must be trusted: it is the host's own state (under its state directory by
                // default, or the operator's `--cache-dir`, which may be shared only between
                // hosts of the same owner) and the host writes it atomically. wasmtime rejects
                // files that are not its artifacts or were built for another engine
                // configuration (the name also carries the compatibility hash; a corrupt file
                // is an error and is recompiled), but a crafted artifact is not detected.
                let cached = path
                    .is_file()
                    .then(|| unsafe { Component::deserialize_file(&self.engine, &path) }.ok())
                    .flatten();
                match cached {
                    Some(c) => c,
                    None => {
                        let bytes = self
                            .engine
                            .precompile_component(wasm)
                            .map_err(|e| RuntimeError::Compile(e.into()))?;
                        cairn_supervisor::persist::atomic_write(&path, &bytes)
                            .map_err(|e| RuntimeError::cache("write", &path, e))?;
                        // SAFETY: produced just now by this engine.
                        unsafe { Component::deserialize_file(&self.engine, &path) }
                            .map_err(|e| RuntimeError::Compile(e.into()))?
                    }
                }
            }
            None => {
                Component::new(&self.engine, wasm).map_err(|e| RuntimeError::Compile(e.into()))?
            }
        };
        self.prepare(&component, hash)
    }

    /// The charm of content `hash` if an app holds it loaded already.
    fn shared(&self, hash: &str) -> Option<Charm> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let pre = loaded.get(hash)?.upgrade()?;
        Some(Charm {
            pre,
            hash: hash.to_string(),
        })
    }

    /// Links a compiled component and checks that it is a charm: it exports the `handler`
    /// of 0.2 or, failing that, of 0.1.
    fn prepare(&self, component: &Component, hash: String) -> Result<Charm, RuntimeError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::Compile(e.context("cannot link charm").into()))?;
        let pre = match v02::CharmPre::new(pre.clone()) {
            Ok(p) => Pre::V02(p),
            Err(_) => Pre::V01(v01::CharmPre::new(pre).map_err(|e| {
                RuntimeError::Compile(e.context("component is not a charm").into())
            })?),
        };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        // Another load of the same charm may have finished meanwhile: share its.
        let pre = loaded
            .get(&hash)
            .and_then(Weak::upgrade)
            .unwrap_or_else(|| Arc::new(pre));
        loaded.retain(|_, p| p.strong_count() > 0);
        loaded.insert(hash.clone(), Arc::downgrade(&pre));
        Ok(Charm { pre, hash })
    }

    /// Loads a component file like [`Runtime::load`], without reading or hashing it again
    /// when the cache already holds it: a stamp beside the artifact
    /// (`<file name>.stamp`: the file's device, inode, size and modification time, then its
    /// hash) maps the file as it is now to its content hash. A start-up path (one process
    /// per event under Juju) pays a `stat` and an `mmap` instead of a read and a SHA-256.
    pub fn load_file(&self, wasm: &Path) -> Result<Charm, RuntimeError> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(wasm).map_err(|e| RuntimeError::io("read", wasm, e))?;
        let key = format!(
            "{} {} {} {}.{}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        let stamp = self.config.cache_dir.as_ref().map(|d| {
            let name = wasm.file_name().unwrap_or_default().to_string_lossy();
            d.join(format!("{name}.stamp"))
        });
        let stamped = stamp
            .as_ref()
            .and_then(|s| std::fs::read_to_string(s).ok())
            .and_then(|text| {
                Some(
                    text.strip_prefix(&key)?
                        .strip_prefix(' ')?
                        .trim()
                        .to_string(),
                )
            });
        if let Some(hash) = stamped {
            if let Some(charm) = self.shared(&hash) {
                return Ok(charm);
            }
            if let Some(path) = self.cache_path(&hash)
                && path.is_file()
                // SAFETY: as in `load`: the cache directory is the host's own (here the charm
                // directory's `.cairn`, written by this program); a file that is not an artifact
                // of this engine's configuration is rejected, and then recompiled below.
                && let Ok(component) = unsafe { Component::deserialize_file(&self.engine, &path) }
            {
                return self.prepare(&component, hash);
            }
        }
        let bytes = std::fs::read(wasm).map_err(|e| RuntimeError::io("read", wasm, e))?;
        let charm = self.load(&bytes)?;
        if let Some(stamp) = &stamp {
            cairn_supervisor::persist::atomic_write_unsynced(
                stamp,
                format!("{key} {}\n", charm.hash).as_bytes(),
            )
            .map_err(|e| RuntimeError::cache("write", stamp, e))?;
        }
        Ok(charm)
    }

    /// Delivers one event to a fresh instance of `charm` under the unit's limits: the
    /// app's budget (`ctx.budget`), bounded by the engine's maxima.
    pub async fn dispatch(&self, charm: &Charm, ctx: UnitContext, event: &Event) -> Dispatched {
        let deadline = ctx.budget.deadline;
        self.dispatch_with(charm, ctx, event, deadline, &Interrupt::new())
            .await
    }

    /// Delivers one event to a fresh instance of `charm` under the app's budget (bounded by
    /// the engine's maxima), ending it at `deadline` (wall time, host calls included; never
    /// later than the budget's) or when `interrupt` is given, whichever comes first.
    pub async fn dispatch_with(
        &self,
        charm: &Charm,
        ctx: UnitContext,
        event: &Event,
        deadline: Duration,
        interrupt: &Interrupt,
    ) -> Dispatched {
        self.instantiate_and(charm, ctx, Some(event), deadline, interrupt)
            .await
    }

    /// Instantiates `charm` once, as an event would, without calling its handler: a
    /// component whose instantiation traps (its initializers) or overruns the budget fails
    /// here, before a host commits to it (refresh). `ctx` is what the instance may see.
    pub async fn check(&self, charm: &Charm, ctx: UnitContext) -> Result<(), Failure> {
        let deadline = ctx.budget.deadline;
        let done = self
            .instantiate_and(charm, ctx, None, deadline, &Interrupt::new())
            .await;
        done.outcome.map(|_| ())
    }

    /// A fresh instance of `charm` under the app's budget, given `event` (or only
    /// instantiated, with `None`).
    async fn instantiate_and(
        &self,
        charm: &Charm,
        ctx: UnitContext,
        event: Option<&Event>,
        deadline: Duration,
        interrupt: &Interrupt,
    ) -> Dispatched {
        // A 0.1 charm has no relations: a relation event is handled for it, unseen.
        if !charm.has_relations() && event.is_some_and(|e| e.relation().is_some()) {
            return Dispatched {
                outcome: Ok(Outcome::Handled),
                ctx,
                logs: Vec::new(),
                duration: Duration::ZERO,
                memory_peak: 0,
            };
        }
        let memory_limit = usize::try_from(ctx.budget.memory)
            .unwrap_or(usize::MAX)
            .min(self.config.memory_limit);
        let deadline = deadline
            .min(ctx.budget.deadline)
            .min(self.config.event_deadline);
        let mut budget = ctx.budget.clone();
        budget.memory = memory_limit as u64;
        let spend = crate::budget::EventSpend::new(budget, ctx.hits.clone(), &ctx.stored);
        // What a failed event wrote to its relations is dropped here, so no caller can
        // commit it by mistake.
        let lent_relations = ctx.relations.clone();
        let stdout = MemoryOutputPipe::new(MAX_GUEST_OUTPUT);
        let stderr = MemoryOutputPipe::new(MAX_GUEST_OUTPUT);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let unit = ctx.unit_name.clone();
        let start = Instant::now();
        let ends = tokio::time::Instant::from_std(start) + deadline;
        let mut store = Store::new(
            &self.engine,
            StoreState {
                wasi,
                table: ResourceTable::new(),
                limiter: GuestLimiter::new(memory_limit),
                ctx,
                logs: Vec::new(),
                deadline: ends,
                output_limit: memory_limit,
                spend,
            },
        );
        store.limiter(|s| &mut s.limiter);
        // Every tick the guest gives its worker thread back (the deadline is the timeout),
        // and its thread is charged for the CPU the event has used.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| {
            crate::threads::charge();
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        let result = {
            let call = async {
                let handled = Ok(Ok(super::bindings::to_wit_outcome(Outcome::Handled)));
                match &*charm.pre {
                    Pre::V01(pre) => {
                        let inst = pre.instantiate_async(&mut store).await?;
                        match event.and_then(super::bindings::to_wit_event) {
                            Some(e) => inst.cairn_charm_handler().call_handle(&mut store, &e).await,
                            None => handled,
                        }
                    }
                    Pre::V02(pre) => {
                        let inst = pre.instantiate_async(&mut store).await?;
                        match event.map(super::bindings::to_wit_event_v02) {
                            Some(e) => {
                                inst.cairn_charm0_2_0_handler()
                                    .call_handle(&mut store, &e)
                                    .await
                            }
                            None => handled,
                        }
                    }
                }
            };
            // Whichever ends first; the others are dropped here, the call with them (which
            // cancels the guest).
            tokio::select! {
                biased;
                _ = interrupt.interrupted() => Err(Stopped::Interrupted),
                r = tokio::time::timeout_at(ends, call) => r.map_err(|_| Stopped::Deadline),
            }
        };
        let duration = start.elapsed();
        let spend = &store.data().spend;
        let outcome = match result {
            // Stored state over its budget fails the event whatever the handler said.
            Ok(Ok(_)) if spend.failure().is_some() => Err(Failure::Budget(
                spend.failure().unwrap_or_default().to_string(),
            )),
            Ok(Ok(Ok(o))) => Ok(super::bindings::from_wit_outcome(o)),
            Ok(Ok(Err(msg))) => Err(Failure::Handler(spend.message(&msg))),
            Ok(Err(e)) => {
                let memory_hit = store.data().limiter.memory_limit_hit();
                let f = failure(&e, memory_hit, &stderr, memory_limit, deadline);
                match &f {
                    Failure::MemoryLimit(_) => spend.hit("memory"),
                    Failure::Deadline(_) => spend.hit("deadline"),
                    _ => {}
                }
                // What a trapped guest printed last is its own text: one line, capped.
                Err(match f {
                    Failure::Trap { trap, detail } => Failure::Trap {
                        trap,
                        detail: detail.map(|d| spend.message(&d)),
                    },
                    f => f,
                })
            }
            Err(Stopped::Deadline) => {
                spend.hit("deadline");
                Err(Failure::Deadline(deadline))
            }
            Err(Stopped::Interrupted) => Err(Failure::Interrupted),
        };
        let mut done = self.finish(store, stdout, stderr, unit, duration, outcome);
        if done.outcome.is_err() {
            done.ctx.relations = lent_relations;
        }
        done
    }

    /// The dispatch's result: the guest's output added to its log lines within the event's
    /// `log-bytes` (with one marker line for what was dropped).
    fn finish(
        &self,
        store: Store<StoreState>,
        stdout: MemoryOutputPipe,
        stderr: MemoryOutputPipe,
        unit: String,
        duration: Duration,
        outcome: Result<Outcome, Failure>,
    ) -> Dispatched {
        let memory_peak = store.data().limiter.memory_peak();
        let mut state = store.into_data();
        let mut logs = std::mem::take(&mut state.logs);
        let prefix = format!("{unit}: ");
        for (pipe, level) in [(&stdout, LogLevel::Info), (&stderr, LogLevel::Warning)] {
            for line in String::from_utf8_lossy(&pipe.contents()).lines() {
                if let Some(message) = state.spend.log(&prefix, line) {
                    logs.push(LogLine {
                        time: crate::now(),
                        level,
                        message,
                    });
                }
            }
        }
        if let Some(message) = state.spend.log_marker(&prefix) {
            logs.push(LogLine {
                time: crate::now(),
                level: LogLevel::Warning,
                message,
            });
        }
        Dispatched {
            outcome,
            ctx: state.ctx,
            logs,
            duration,
            memory_peak,
        }
    }
}

/// Why a call into the guest failed: the limiter's record first (a refused growth
/// traps), then the trap, else the error chain.
fn failure(
    e: &wasmtime::Error,
    memory_hit: bool,
    stderr: &MemoryOutputPipe,
    memory_limit: usize,
    deadline: Duration,
) -> Failure {
    if memory_hit {
        return Failure::MemoryLimit(memory_limit);
    }
    match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => Failure::Deadline(deadline),
        Some(trap) => Failure::Trap {
            trap: trap.to_string(),
            detail: last_line(&stderr.contents()),
        },
        None => Failure::Guest(format!("{e:#}")),
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// What a guest printed last before failing: the panic message if it panicked.
fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(i) = lines.iter().rposition(|l| l.contains("panicked at")) {
        let msg = lines.get(i + 1).copied().unwrap_or(lines[i]);
        return Some(format!("panicked: {msg}"));
    }
    lines
        .iter()
        .rev()
        .find(|l| !l.starts_with("note:"))
        .map(|l| l.to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> UnitContext {
        UnitContext {
            leader: true,
            ..UnitContext::new("t/0", "t", "m")
        }
    }

    fn runtime(name: &str) -> (Runtime, PathBuf) {
        let dir = std::env::temp_dir().join(format!("cairn-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rt = Runtime::new(RuntimeConfig {
            cache_dir: Some(dir.clone()),
            max_instances: 16,
            ..RuntimeConfig::default()
        })
        .unwrap();
        (rt, dir)
    }

    #[tokio::test]
    async fn compiled_components_are_cached_by_content_and_engine() {
        let (rt, dir) = runtime("hit");
        let wasm = cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM);
        let a = rt.load(&wasm).unwrap();
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        let name = files[0].to_string_lossy().into_owned();
        assert!(
            name.starts_with(&a.hash) && name.ends_with(".cwasm"),
            "{name}"
        );
        let modified = std::fs::metadata(dir.join(&name))
            .unwrap()
            .modified()
            .unwrap();
        let b = rt.load(&wasm).unwrap();
        assert_eq!(a.hash, b.hash);
        assert_eq!(
            std::fs::metadata(dir.join(&name))
                .unwrap()
                .modified()
                .unwrap(),
            modified,
            "cache rewritten"
        );
        let d = rt.dispatch(&b, ctx(), &Event::UpgradeCharm).await;
        assert_eq!(d.outcome, Ok(Outcome::Handled));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_component_file_is_loaded_from_the_cache_without_rehashing_until_it_changes() {
        let (rt, dir) = runtime("file");
        let wasm = dir.join("charm.wasm");
        std::fs::write(
            &wasm,
            cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM),
        )
        .unwrap();
        let a = rt.load_file(&wasm).unwrap();
        let stamp = dir.join("charm.wasm.stamp");
        let text = std::fs::read_to_string(&stamp).unwrap();
        assert!(text.trim_end().ends_with(&a.hash), "{text}");
        // A stamp naming another hash is believed while the file is unchanged: proof that
        // the file was not hashed again (the cache has no such artifact, so it recompiles).
        let artifact = rt.cache_path(&a.hash).unwrap();
        let fake = "0".repeat(64);
        std::fs::write(&stamp, text.replace(&a.hash, &fake)).unwrap();
        std::fs::copy(&artifact, rt.cache_path(&fake).unwrap()).unwrap();
        assert_eq!(rt.load_file(&wasm).unwrap().hash, fake);
        // A changed file is hashed again.
        std::fs::write(
            &wasm,
            cairn_test_programs::read(cairn_test_programs::WEB_WASM),
        )
        .unwrap();
        let b = rt.load_file(&wasm).unwrap();
        assert_ne!(b.hash, fake);
        assert_ne!(b.hash, a.hash);
        let d = rt.dispatch(&a, ctx(), &Event::UpgradeCharm).await;
        assert_eq!(d.outcome, Ok(Outcome::Handled));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_corrupt_cache_entry_is_recompiled() {
        let (rt, dir) = runtime("corrupt");
        let wasm = cairn_test_programs::read(cairn_test_programs::MISBEHAVE_WASM);
        rt.load(&wasm).unwrap();
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .next()
            .unwrap()
            .path();
        std::fs::write(&entry, b"not a cwasm").unwrap();
        let c = rt.load(&wasm).unwrap();
        assert_eq!(
            rt.dispatch(&c, ctx(), &Event::UpgradeCharm).await.outcome,
            Ok(Outcome::Handled)
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_component_that_is_not_a_charm_is_refused() {
        let (rt, dir) = runtime("notcharm");
        for bytes in [&b"\0asm\x0d\0\x01\0"[..], b"garbage"] {
            let err = rt.load(bytes).err().unwrap();
            assert!(matches!(err, RuntimeError::Compile(_)), "{err:?}");
            let text = format!("{:#}", anyhow::Error::from(err));
            assert!(text.starts_with("cannot load charm: "), "{text}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }
}
