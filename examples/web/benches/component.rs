//! Events per second of a compiled-component test (`cairn_testing::Context::run`) on the web
//! charm, beside the same scenario run natively by the SDK's harness and, when Python's
//! `ops[testing]` is importable (`CAIRN_OPS_PYTHON`, default `python3`), by ops' Scenario
//! on the same charm logic written with ops (`benches/scenario_web.py`).
//!
//! The scenario: the unit serves on port 8080; each event is a `config-changed` that
//! checks the port, connects, makes the site directory, looks for `db.txt`, adds the
//! layer (parsed, combined and validated), replans, saves the port and sets the status.
//!
//! `cargo bench -p web-charm --bench component` (`CAIRN_BENCH_EVENTS`, default 5000;
//! `CAIRN_BENCH_ONLY=component` runs only the first part, for a profiler).

use std::time::Instant;

use cairn_sdk::testing::Harness;
use cairn_testing::{Context, Event, State};
use web_charm::WebCharm;

fn main() {
    let n: u32 = std::env::var("CAIRN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let dir = env!("CARGO_MANIFEST_DIR");

    // Compiled component, fresh instance per event, through the host's runtime.
    let load = Instant::now();
    let ctx = Context::from_charm_dir(dir).expect("the web charm builds and loads");
    let load = load.elapsed();
    let serving = ctx.run(Event::ConfigChanged, State::new()).unwrap();
    for _ in 0..200 {
        ctx.run(Event::ConfigChanged, serving.clone()).unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        let out = ctx.run(Event::ConfigChanged, serving.clone()).unwrap();
        assert_eq!(out.container("web").start_count("http"), 1);
    }
    let component = t.elapsed().as_secs_f64() / f64::from(n);

    if std::env::var("CAIRN_BENCH_ONLY").as_deref() == Ok("component") {
        println!(
            "cairn-testing (component): {:>8.1} us/event  {:>8.0} events/s",
            component * 1e6,
            1.0 / component
        );
        return;
    }

    // Same charm, native, through the SDK's harness.
    let mut h = Harness::<WebCharm>::from_charm_dir(dir).unwrap();
    h.deploy().unwrap();
    for _ in 0..200 {
        h.config_changed().unwrap();
    }
    let t = Instant::now();
    for _ in 0..n {
        h.config_changed().unwrap();
    }
    let native = t.elapsed().as_secs_f64() / f64::from(n);

    println!("events: {n} config-changed on the web charm (first load {load:.2?})");
    println!(
        "cairn-testing (component): {:>8.1} us/event  {:>8.0} events/s",
        component * 1e6,
        1.0 / component
    );
    println!(
        "sdk harness (native):      {:>8.1} us/event  {:>8.0} events/s  (component/native {:.1}x)",
        native * 1e6,
        1.0 / native,
        component / native
    );

    let python = std::env::var("CAIRN_OPS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!("{dir}/benches/scenario_web.py");
    let scenario_n = (n / 5).max(100).to_string();
    match std::process::Command::new(&python)
        .args([&script, &scenario_n])
        .output()
    {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            match text.trim().parse::<f64>() {
                Ok(secs) => println!(
                    "ops Scenario (python):     {:>8.1} us/event  {:>8.0} events/s  (scenario/component {:.1}x)",
                    secs * 1e6,
                    1.0 / secs,
                    secs / component
                ),
                Err(_) => println!("ops Scenario: unexpected output {text:?}"),
            }
        }
        Ok(out) => println!(
            "ops Scenario: skipped ({python} {script} failed: {}; pip install 'ops[testing]')",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("ops Scenario: skipped (cannot run {python}: {e})"),
    }
}
