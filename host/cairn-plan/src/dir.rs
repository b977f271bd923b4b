//! Reading a Pebble layers directory: `NNN-label.yaml` files and one level of
//! `NNN-label.d/NNN-sub.yaml` sub-directories, with Pebble's naming rules and errors.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::error::PlanError;
use crate::layer::parse_layer;
use crate::quote::quote;
use crate::types::Layer;

static ENTRY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([0-9]{3})-([a-z](?:-?[a-z0-9]){2,})(.yaml|.d)$").expect("valid regex")
});

struct Entry {
    name: String,
    order: u32,
    label: String,
    is_dir: bool,
}

/// Formats an I/O error as Go's `*os.PathError` does: `op path: message`.
fn path_error(op: &str, path: &Path, err: &std::io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    format!("{op} {}: {}", path.display(), text.to_lowercase())
}

/// Loads every layer of a layers directory, ordered by their order prefixes:
/// `001-foo.yaml` → order 1000 label `foo`; `002-bar.d/001-baz.yaml` → 2001 `bar/baz`.
/// Files not ending in `.yaml` or `.d` are ignored; a missing directory is an error.
pub fn read_layers_dir(dir: &Path) -> Result<Vec<Layer>, PlanError> {
    let mut layers = Vec::new();
    for top in entries(dir, true)? {
        let top_path = dir.join(&top.name);
        if top.is_dir {
            for sub in entries(&top_path, false)? {
                let label = format!("{}/{}", top.label, sub.label);
                layers.push(load(
                    &top_path.join(&sub.name),
                    1000 * top.order + sub.order,
                    &label,
                )?);
            }
        } else {
            layers.push(load(&top_path, 1000 * top.order, &top.label)?);
        }
    }
    Ok(layers)
}

/// Like [`read_layers_dir`], but a directory that does not exist holds no layers (Pebble's `ReadDir`).
pub fn load_layers_dir(dir: &Path) -> Result<Vec<Layer>, PlanError> {
    match std::fs::metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(PlanError::LayersDir(path_error("stat", dir, &err))),
        Ok(_) => read_layers_dir(dir),
    }
}

fn load(path: &Path, order: u32, label: &str) -> Result<Layer, PlanError> {
    let data = std::fs::read(path).map_err(|err| {
        PlanError::LayersDir(format!(
            "cannot read layer file: {}",
            path_error("open", path, &err)
        ))
    })?;
    parse_layer(order, label, &data)
}

fn entries(dir: &Path, dirs_allowed: bool) -> Result<Vec<Entry>, PlanError> {
    let read_err = |err: std::io::Error| {
        PlanError::LayersDir(format!(
            "cannot read layers directory: {}",
            path_error("open", dir, &err)
        ))
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();

    let mut result: Vec<Entry> = Vec::new();
    for name in names {
        if !name.ends_with(".yaml") && !name.ends_with(".d") {
            continue;
        }
        let path = dir.join(&name);
        let is_dir = std::fs::metadata(&path)
            .map_err(|err| PlanError::LayersDir(path_error("stat", &path, &err)))?
            .is_dir();
        let Some(caps) = ENTRY_NAME.captures(&name) else {
            return Err(PlanError::LayersDir(if is_dir {
                format!(
                    r#"invalid layer sub-directory name: {} (must look like "123-some-label.d")"#,
                    quote(&name)
                )
            } else {
                format!(
                    r#"invalid layer filename: {} (must look like "123-some-label.yaml")"#,
                    quote(&name)
                )
            }));
        };
        if is_dir && !dirs_allowed {
            return Err(PlanError::LayersDir(
                "cannot have a layers sub-directory at this level".into(),
            ));
        }
        let order: u32 = caps[1].parse().expect("three digits");
        let label = caps[2].to_string();
        let clash = result
            .iter()
            .find(|e| e.order == order)
            .map(|e| (order, e.label.clone()))
            .or_else(|| {
                result
                    .iter()
                    .find(|e| e.label == label)
                    .map(|e| (e.order, label.clone()))
            });
        if let Some((old_order, old_label)) = clash {
            return Err(PlanError::LayersDir(format!(
                "invalid layer filename: {} not unique (have \"{old_order:03}-{old_label}.yaml\" already)",
                quote(&name)
            )));
        }
        result.push(Entry {
            name,
            order,
            label,
            is_dir,
        });
    }
    Ok(result)
}
