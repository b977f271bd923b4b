//! Paths of the guest components built for the tests and benchmarks.
//!
//! `build.rs` compiles the example charms (`examples/`) and the test guests
//! (`tests/programs/`) for `wasm32-wasip2` and records where they are, so tests use the
//! real components a user would build.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Reads a built component.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}
