//! Charm metadata (`charmcraft.yaml`, modelled and checked by the pure `cairn-charm` crate,
//! which the SDK's testing harness shares) and locating a charm's built component.

use std::path::{Path, PathBuf};

pub use cairn_charm::{ActionSpec, CharmError, CharmMeta, ConfigOption, ConfigSection};

use crate::RuntimeError;

impl From<CharmError> for RuntimeError {
    /// Metadata problems are the charm's; a bad setting, action or parameter is the
    /// operator's (`Config`).
    fn from(e: CharmError) -> Self {
        if e.is_metadata_error() {
            RuntimeError::Charm(e.to_string())
        } else {
            RuntimeError::Config(e.to_string())
        }
    }
}

/// A charm on disk: its metadata and the path of its component.
#[derive(Clone, Debug)]
pub struct CharmSource {
    /// Parsed `charmcraft.yaml`.
    pub meta: CharmMeta,
    /// The component (`.wasm`).
    pub wasm: PathBuf,
}

impl CharmSource {
    /// Finds a charm from a directory (`charmcraft.yaml` plus `charm.wasm`, or the
    /// directory's crate built for wasm32-wasip2 under a `target/` above it) or from a
    /// `.wasm` file with `charmcraft.yaml` beside it. `target_dirs` are Cargo target
    /// directories searched before the `target/` directories above the charm.
    pub fn locate(path: &Path, target_dirs: &[PathBuf]) -> Result<Self, RuntimeError> {
        let (dir, wasm) = if path.extension().is_some_and(|e| e == "wasm") {
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                Some(path.to_path_buf()),
            )
        } else {
            (path.to_path_buf(), None)
        };
        let meta_path = dir.join("charmcraft.yaml");
        let text = std::fs::read_to_string(&meta_path).map_err(|e| {
            RuntimeError::Charm(format!("cannot read {}: {e}", meta_path.display()))
        })?;
        let meta = CharmMeta::parse(&text)?;
        let wasm = match wasm {
            Some(w) => w,
            None => find_component(&dir, target_dirs)?,
        };
        if !wasm.is_file() {
            return Err(RuntimeError::Charm(format!(
                "cannot find component {}",
                wasm.display()
            )));
        }
        Ok(CharmSource { meta, wasm })
    }
}

fn find_component(dir: &Path, target_dirs: &[PathBuf]) -> Result<PathBuf, RuntimeError> {
    let direct = dir.join("charm.wasm");
    if direct.is_file() {
        return Ok(direct);
    }
    let cargo = dir.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&cargo) else {
        return Err(RuntimeError::Charm(format!(
            "cannot find the charm's component: no charm.wasm in {} and no Cargo.toml to build one",
            dir.display()
        )));
    };
    let manifest: toml_lite::Manifest = toml_lite::parse(&text);
    let Some(package) = manifest.package_name else {
        return Err(RuntimeError::Charm(format!(
            "cannot read package name from {}",
            cargo.display()
        )));
    };
    let file = format!("{}.wasm", package.replace('-', "_"));
    let mut roots: Vec<PathBuf> = target_dirs.to_vec();
    let abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for anc in abs.ancestors() {
        roots.push(anc.join("target"));
    }
    for root in &roots {
        for profile in ["release", "guest", "debug"] {
            let p = root.join("wasm32-wasip2").join(profile).join(&file);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(RuntimeError::Charm(format!(
        "cannot find the charm's component {file}: build it with `cargo build --release --target wasm32-wasip2 -p {package}`"
    )))
}

/// The one fact read from a charm's Cargo.toml: its package name.
mod toml_lite {
    pub struct Manifest {
        pub package_name: Option<String>,
    }

    pub fn parse(text: &str) -> Manifest {
        let mut in_package = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_package = line == "[package]";
                continue;
            }
            if in_package
                && let Some(rest) = line.strip_prefix("name")
                && let Some(v) = rest.trim_start().strip_prefix('=')
            {
                return Manifest {
                    package_name: Some(v.trim().trim_matches('"').to_string()),
                };
            }
        }
        Manifest { package_name: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_errors_are_the_charms_and_setting_errors_the_operators() {
        let bad = "name: x\nconfig:\n  options:\n    port:\n      type: int\n      default: nope\n";
        let e = RuntimeError::from(CharmMeta::parse(bad).unwrap_err());
        assert!(matches!(e, RuntimeError::Charm(_)), "{e:?}");
        let m = CharmMeta::parse("name: x\n").unwrap();
        let e = RuntimeError::from(m.parse_setting("nope", "1").unwrap_err());
        assert_eq!(e.to_string(), "unknown option \"nope\"");
        assert!(matches!(e, RuntimeError::Config(_)), "{e:?}");
    }

    #[test]
    fn package_name_is_read() {
        let m = toml_lite::parse("[package]\nname = \"web-charm\"\nversion = \"1\"\n");
        assert_eq!(m.package_name.as_deref(), Some("web-charm"));
    }
}
