//! Placeholder, replaced by the events-per-second bench.
fn main() {}
