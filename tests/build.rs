//! Builds every guest the tests need (the example charms and the test programs) as
//! wasm32-wasip2 components, with a nested cargo in a target directory of its own (so it
//! never waits on the outer build's lock), and writes their paths as constants.
//!
//! It first makes sure the toolchain has the wasm32-wasip2 target (installing it with
//! rustup when missing, see `cairn-xtask`), so a fresh `cargo test` sets itself up or stops
//! with one line saying what to run.

use std::path::PathBuf;
use std::process::Command;

use cairn_xtask::{EXAMPLE_CHARMS, GUEST_TARGET, TargetSetup, ensure_target};

/// The test guests' packages (`tests/programs/`), built besides the example charms.
const TEST_PROGRAMS: &[&str] = &[
    "misbehave-charm",
    "container-probe-charm",
    "too-big-to-load-charm",
    "contract-v01-charm",
    "relator-charm",
];

fn main() {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    match ensure_target(&rustc, GUEST_TARGET) {
        Ok(TargetSetup::Present) => {}
        Ok(TargetSetup::Installed) => println!(
            "cargo::warning=installed the {GUEST_TARGET} target (rustup target add {GUEST_TARGET}) to build the test guests"
        ),
        Err(e) => {
            // One line from cargo ("error: cairn-test-programs@…: <e>"), no panic trace.
            println!("cargo::error={e}");
            return;
        }
    }
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target = out.join("guest-target");
    for dir in ["guest-sdk", "examples", "tests/programs", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    // Every guest, and the name of its constant (`web-charm` -> `WEB_WASM`).
    let guests: Vec<(String, &str)> = EXAMPLE_CHARMS
        .iter()
        .chain(TEST_PROGRAMS)
        .map(|pkg| {
            (
                pkg.trim_end_matches("-charm")
                    .replace('-', "_")
                    .to_uppercase(),
                *pkg,
            )
        })
        .collect();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(&target);
    for (_, pkg) in &guests {
        cmd.args(["-p", pkg]);
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo for the guests");
    assert!(status.success(), "building the guest components failed");
    let release = target.join(GUEST_TARGET).join("release");
    let mut consts = String::new();
    for (name, pkg) in &guests {
        let file = release.join(format!("{}.wasm", pkg.replace('-', "_")));
        assert!(file.is_file(), "missing {}", file.display());
        consts.push_str(&format!(
            "/// Path of the built `{pkg}` component.\npub const {name}_WASM: &str = {:?};\n",
            file.display().to_string()
        ));
    }
    consts.push_str(&format!(
        "/// Target directory holding the built guests (what `CARGO_TARGET_DIR` would be).\npub const GUEST_TARGET_DIR: &str = {:?};\n",
        target.display().to_string()
    ));
    consts.push_str(&format!(
        "/// The repository's `examples/` directory.\npub const EXAMPLES_DIR: &str = {:?};\n/// The repository's `tests/programs/` directory.\npub const PROGRAMS_DIR: &str = {:?};\n",
        root.join("examples").display().to_string(),
        root.join("tests/programs").display().to_string()
    ));
    std::fs::write(out.join("artifacts.rs"), consts).unwrap();
}
