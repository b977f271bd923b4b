//! `cairn-dispatch <component>`: what a packed charm's `dispatch` runs, once per Juju
//! event. Reads Juju's environment, delivers the event to the component and exits 0, or 1
//! when the charm's handler failed (as an ops charm's uncaught exception does).
//!
//! `CAIRN_JUJU_ROOT` moves the root under which the containers' Pebble sockets are looked
//! for (`<root>/charm/containers/<name>/pebble.socket`; `/` under Juju), for tests.
//! `CAIRN_DISPATCH_TIMES` (any value) prints the time of each phase on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let timed_from = std::env::var_os("CAIRN_DISPATCH_TIMES").map(|_| std::time::Instant::now());
    let component = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(cairn_juju::pack::COMPONENT));
    let root = std::env::var_os("CAIRN_JUJU_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    let options = cairn_juju::dispatch::Options {
        component,
        root,
        timed_from,
    };
    match cairn_juju::dispatch::run_from_env(&options) {
        Ok(report) => ExitCode::from(report.exit_code),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
