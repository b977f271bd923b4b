//! Reading layers directories (Pebble's `TestReadLayersDir`, bad and duplicate names).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::*;

/// A scratch directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("cairn-plan-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Creates `name` (possibly inside a sub-directory) with a layer whose command is `name`.
    fn layer(&self, name: &str) {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text =
            format!("services:\n    srv:\n        override: replace\n        command: {name}\n");
        std::fs::write(path, text).unwrap();
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn valid_load_orders_and_labels() {
    let dir = TempDir::new();
    let names = [
        "001-aaa.yaml",
        "010-bbb.yaml",
        "002-dir.d/100-foo.yaml",
        "002-dir.d/090-bar.yaml",
        "008-ccc.yaml",
        "900-overlay.d/002-something.yaml",
        "900-overlay.d/001-else.yaml",
        "003-plans.d/999-final.yaml",
        "009-baz.d/009-baz.yaml",
    ];
    for name in names {
        dir.layer(name);
    }
    std::fs::write(dir.path().join("README.txt"), "ignored").unwrap();
    std::fs::write(dir.path().join("002-dir.d/notes.md"), "ignored").unwrap();
    let layers = read_layers_dir(dir.path()).unwrap();
    let got: Vec<(u32, &str, &str)> = layers
        .iter()
        .map(|l| {
            (
                l.order,
                l.label.as_str(),
                l.services["srv"].command.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (1000, "aaa", "001-aaa.yaml"),
            (2090, "dir/bar", "002-dir.d/090-bar.yaml"),
            (2100, "dir/foo", "002-dir.d/100-foo.yaml"),
            (3999, "plans/final", "003-plans.d/999-final.yaml"),
            (8000, "ccc", "008-ccc.yaml"),
            (9009, "baz/baz", "009-baz.d/009-baz.yaml"),
            (10000, "bbb", "010-bbb.yaml"),
            (900001, "overlay/else", "900-overlay.d/001-else.yaml"),
            (
                900002,
                "overlay/something",
                "900-overlay.d/002-something.yaml"
            ),
        ]
    );
    assert!(Layers::new(layers).is_ok());
}

fn check_dir_error(files: &[&str], expected: &str) {
    let dir = TempDir::new();
    for name in files {
        dir.layer(name);
    }
    let err = read_layers_dir(dir.path()).unwrap_err();
    assert_eq!(err.to_string(), expected, "{files:?}");
}

#[test]
fn bad_names() {
    for name in [
        "001-l.yaml",
        "01-label.yaml",
        "0001-label.yaml",
        "001-label-.yaml",
        "001--label.yaml",
        "001-label--label.yaml",
        "001foo.yaml",
    ] {
        check_dir_error(
            &[name],
            &format!(r#"invalid layer filename: "{name}" (must look like "123-some-label.yaml")"#),
        );
    }
    check_dir_error(
        &["001-foo.d/001foo.yaml"],
        r#"invalid layer filename: "001foo.yaml" (must look like "123-some-label.yaml")"#,
    );
    check_dir_error(
        &["001foo.d/001-bar.yaml"],
        r#"invalid layer sub-directory name: "001foo.d" (must look like "123-some-label.d")"#,
    );
    check_dir_error(
        &["001-foo.d/002-bar.d/001-baz.yaml"],
        "cannot have a layers sub-directory at this level",
    );
}

#[test]
fn duplicate_orders_and_labels() {
    check_dir_error(
        &["001-bar.yaml", "001-foo.yaml"],
        r#"invalid layer filename: "001-foo.yaml" not unique (have "001-bar.yaml" already)"#,
    );
    check_dir_error(
        &["001-foo.yaml", "002-foo.yaml"],
        r#"invalid layer filename: "002-foo.yaml" not unique (have "001-foo.yaml" already)"#,
    );
    check_dir_error(
        &["002-dir.d/001-bar.yaml", "002-dir.d/001-foo.yaml"],
        r#"invalid layer filename: "001-foo.yaml" not unique (have "001-bar.yaml" already)"#,
    );
    check_dir_error(
        &["001-foo.d/001-a.yaml", "002-foo.yaml"],
        r#"invalid layer filename: "002-foo.yaml" not unique (have "001-foo.yaml" already)"#,
    );
}

#[test]
fn parse_errors_and_missing_directories() {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("001-base.yaml"), "services: [x]\n").unwrap();
    let err = read_layers_dir(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot parse layer \"base\" section \"services\": yaml: unmarshal errors:\n  line 1: cannot unmarshal !!seq into map[string]*plan.Service"
    );
    let missing = dir.path().join("nope");
    let err = read_layers_dir(&missing).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot read layers directory: open {}: no such file or directory",
            missing.display()
        )
    );
    assert!(!err.is_client_error());
    assert_eq!(load_layers_dir(&missing).unwrap(), vec![]);
    std::fs::remove_file(dir.path().join("001-base.yaml")).unwrap();
    assert_eq!(load_layers_dir(dir.path()).unwrap(), vec![]);
}
