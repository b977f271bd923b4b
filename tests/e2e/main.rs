//! Cairn's end-to-end suite: the real `cairn` binary as a daemon, driven through its CLI,
//! running the real example charms (built by the `cairn-test-programs` build script) that
//! supervise real processes. One binary, one module per topic (as wasmtime's tests/all).

mod actions;
mod backends;
mod budgets;
mod checks_notices;
mod common;
mod differential;
mod forwarding;
mod hostile;
mod juju;
mod lifecycle;
mod limits;
mod metrics;
mod ops_compat;
mod pebble_cli;
mod recovery;
mod relations;
mod restart;
mod sandbox;
mod strict;
mod torture;
mod units;
