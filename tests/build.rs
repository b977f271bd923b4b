//! Builds every guest the tests need (the example charms and the test programs) as
//! wasm32-wasip2 components, with a nested cargo in a target directory of its own (so it
//! never waits on the outer build's lock), and writes their paths as constants.

use std::path::PathBuf;
use std::process::Command;

const GUESTS: &[(&str, &str)] = &[
    ("PAUSE", "pause-charm"),
    ("WEB", "web-charm"),
    ("BACKUP", "backup-charm"),
    ("DB", "db-charm"),
    ("MISBEHAVE", "misbehave-charm"),
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target = out.join("guest-target");
    for dir in ["guest-sdk", "examples", "tests/programs", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&target);
    for (_, pkg) in GUESTS {
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
    let release = target.join("wasm32-wasip2").join("release");
    let mut consts = String::new();
    for (name, pkg) in GUESTS {
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
