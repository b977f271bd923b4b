//! What one event's store may allocate, and a record of the limit it hit.
//!
//! wasmtime asks a store's [`ResourceLimiter`] before every growth of a memory or table.
//! [`GuestLimiter`] refuses growth past the unit's memory limit (or past the memory's own
//! maximum) with a trap, as `StoreLimits` does with `trap_on_grow_failure`, and also
//! remembers that it did, so a failed event is reported as a memory-limit failure from
//! that flag rather than from the text of wasmtime's error.

use wasmtime::ResourceLimiter;

/// Instances one event's store may create (a charm component has a handful).
const MAX_INSTANCES: usize = 16;
/// Tables one event's store may create.
const MAX_TABLES: usize = 16;
/// Elements one table may grow to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The limiter of one event's store.
pub(crate) struct GuestLimiter {
    /// Bytes of linear memory one memory may grow to.
    memory_limit: usize,
    /// Set when a memory growth was refused for passing the limit.
    memory_hit: bool,
    /// The largest size a memory was allowed to grow to, in bytes.
    memory_peak: usize,
}

impl GuestLimiter {
    /// A limiter allowing `memory_limit` bytes of linear memory per memory.
    pub(crate) fn new(memory_limit: usize) -> Self {
        GuestLimiter {
            memory_limit,
            memory_hit: false,
            memory_peak: 0,
        }
    }

    /// Whether the guest tried to grow a memory past the limit.
    pub(crate) fn memory_limit_hit(&self) -> bool {
        self.memory_hit
    }

    /// The largest linear memory the guest was allowed to reach, in bytes.
    pub(crate) fn memory_peak(&self) -> usize {
        self.memory_peak
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit || maximum.is_some_and(|max| desired > max) {
            self.memory_hit = true;
            // A trap, not a failed `memory.grow`: a guest allocator would otherwise abort
            // with its own, less useful message.
            wasmtime::bail!(
                "memory growth to {desired} bytes refused: the limit is {} bytes",
                self.memory_limit
            );
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("cannot grow memory"))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS || maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!(
                "table growth to {desired} elements refused: the limit is {MAX_TABLE_ELEMENTS}"
            );
        }
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("cannot grow table"))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }
}
