//! `cairn pack`: a charm directory to a `.charm` that Juju deploys, laid out as charmcraft
//! 3 lays out a charm built from `charmcraft.yaml`: `manifest.yaml` (its bases),
//! `metadata.yaml`, `config.yaml` and `actions.yaml` derived from `charmcraft.yaml`, and an
//! executable `dispatch`, which here runs the Cairn dispatcher (`bin/cairn-dispatch`) on
//! the charm's component (`charm.wasm`) as charmcraft's runs `src/charm.py`. The dispatcher
//! is checked to start on the manifest's bases first ([`crate::elf`]): built for their
//! architecture, and static or needing no newer glibc than they have.

use std::io::Write;
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;

use crate::JujuError;

/// The component's name inside the `.charm`.
pub const COMPONENT: &str = "charm.wasm";
/// The dispatcher's path inside the `.charm`.
pub const DISPATCHER: &str = "bin/cairn-dispatch";

/// The `dispatch` script: Juju runs it in the charm directory for every event.
pub const DISPATCH_SCRIPT: &str = "#!/bin/sh\n\
JUJU_DISPATCH_PATH=\"${JUJU_DISPATCH_PATH:-$0}\" exec ./bin/cairn-dispatch charm.wasm\n";

/// `charmcraft.yaml` keys that are not charm metadata (build settings, or the parts
/// that go to `config.yaml` and `actions.yaml`).
const NOT_METADATA: &[&str] = &[
    "type",
    "bases",
    "base",
    "build-base",
    "platforms",
    "parts",
    "config",
    "actions",
    "charmhub",
    "analysis",
];

/// What to pack.
#[derive(Clone, Debug)]
pub struct PackInput {
    /// The charm directory (its `charmcraft.yaml`).
    pub charm_dir: PathBuf,
    /// The built component.
    pub component: PathBuf,
    /// The dispatcher binary (`cairn-dispatch`).
    pub dispatcher: PathBuf,
    /// Where to write the `.charm`.
    pub out: PathBuf,
}

/// Juju's name of this machine's architecture.
pub(crate) fn juju_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The bases of `manifest.yaml`, from `charmcraft.yaml`'s `bases` (their `run-on`),
/// or `base` and `platforms`, or Ubuntu 22.04 on this architecture.
fn manifest_bases(doc: &serde_yaml::Mapping) -> serde_yaml::Value {
    use serde_yaml::Value as Y;
    let arch = juju_arch();
    let base = |name: &str, channel: &str, archs: Vec<String>| {
        let mut m = serde_yaml::Mapping::new();
        m.insert("name".into(), name.into());
        m.insert("channel".into(), channel.into());
        m.insert(
            "architectures".into(),
            Y::Sequence(archs.into_iter().map(Y::from).collect()),
        );
        Y::Mapping(m)
    };
    if let Some(Y::Sequence(bases)) = doc.get("bases") {
        let mut out = Vec::new();
        for b in bases {
            let run_on = match b.get("run-on") {
                Some(Y::Sequence(r)) => r.clone(),
                _ => vec![b.clone()],
            };
            for r in run_on {
                let name = r.get("name").and_then(Y::as_str).unwrap_or("ubuntu");
                let channel = r.get("channel").and_then(Y::as_str).unwrap_or("22.04");
                let archs = match r.get("architectures") {
                    Some(Y::Sequence(a)) => a
                        .iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect(),
                    _ => vec![arch.to_string()],
                };
                out.push(base(name, channel, archs));
            }
        }
        return Y::Sequence(out);
    }
    if let Some(Y::String(b)) = doc.get("base") {
        let (name, channel) = b.split_once('@').unwrap_or(("ubuntu", b));
        let archs = match doc.get("platforms") {
            Some(Y::Mapping(p)) => p
                .keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            _ => vec![arch.to_string()],
        };
        return Y::Sequence(vec![base(name, channel, archs)]);
    }
    Y::Sequence(vec![base("ubuntu", "22.04", vec![arch.to_string()])])
}

/// The files of the `.charm` other than the component and the dispatcher, by name.
pub fn charm_files(charmcraft_yaml: &str) -> Result<Vec<(&'static str, String)>, JujuError> {
    use serde_yaml::Value as Y;
    cairn_charm::CharmMeta::parse(charmcraft_yaml)
        .map_err(|e| JujuError::Pack(format!("charmcraft.yaml: {e}")))?;
    let doc: serde_yaml::Mapping = serde_yaml::from_str(charmcraft_yaml)
        .map_err(|e| JujuError::Pack(format!("cannot parse charmcraft.yaml: {e}")))?;
    let yaml = |v: &Y| serde_yaml::to_string(v).unwrap_or_default();
    let mut metadata = serde_yaml::Mapping::new();
    for (k, v) in &doc {
        if !k.as_str().is_some_and(|k| NOT_METADATA.contains(&k)) {
            metadata.insert(k.clone(), v.clone());
        }
    }
    let mut manifest = serde_yaml::Mapping::new();
    manifest.insert(
        "charmcraft-version".into(),
        format!("cairn-{}", env!("CARGO_PKG_VERSION")).into(),
    );
    manifest.insert(
        "charmcraft-started-at".into(),
        cairn_supervisor::timefmt::rfc3339(time_now()).into(),
    );
    manifest.insert("bases".into(), manifest_bases(&doc));
    let mut files = vec![
        ("manifest.yaml", yaml(&Y::Mapping(manifest))),
        ("metadata.yaml", yaml(&Y::Mapping(metadata))),
    ];
    if let Some(config) = doc.get("config") {
        files.push(("config.yaml", yaml(config)));
    }
    if let Some(actions) = doc.get("actions").filter(|a| !a.is_null()) {
        files.push(("actions.yaml", yaml(actions)));
    }
    files.push(("dispatch", DISPATCH_SCRIPT.to_string()));
    Ok(files)
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// Writes the `.charm` (atomically: a temporary file renamed into place).
pub fn pack(input: &PackInput) -> Result<PathBuf, JujuError> {
    let meta_path = input.charm_dir.join("charmcraft.yaml");
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| JujuError::Pack(format!("cannot read {}: {e}", meta_path.display())))?;
    let files = charm_files(&text)?;
    let read = |p: &Path| {
        std::fs::read(p).map_err(|e| JujuError::Pack(format!("cannot read {}: {e}", p.display())))
    };
    let component = read(&input.component)?;
    let dispatcher = read(&input.dispatcher)?;
    // The dispatcher must start on every base the manifest declares.
    let doc: serde_yaml::Mapping = serde_yaml::from_str(&text)
        .map_err(|e| JujuError::Pack(format!("cannot parse charmcraft.yaml: {e}")))?;
    let exe = crate::elf::inspect(&dispatcher)
        .map_err(|e| JujuError::Pack(format!("{}: {e}", input.dispatcher.display())))?;
    crate::elf::check_runs_on(
        &exe,
        &input.dispatcher.display().to_string(),
        &manifest_bases(&doc),
    )?;
    let tmp = input.out.with_extension("charm.tmp");
    let f = std::fs::File::create(&tmp)
        .map_err(|e| JujuError::Pack(format!("cannot create {}: {e}", tmp.display())))?;
    let mut zip = zip::ZipWriter::new(f);
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let zerr = |e: zip::result::ZipError| JujuError::Pack(format!("cannot write zip: {e}"));
    let ioerr = |e: std::io::Error| JujuError::Pack(format!("cannot write zip: {e}"));
    for (name, body) in &files {
        let mode = if *name == "dispatch" { 0o755 } else { 0o644 };
        zip.start_file(*name, deflated.unix_permissions(mode))
            .map_err(zerr)?;
        zip.write_all(body.as_bytes()).map_err(ioerr)?;
    }
    zip.start_file(COMPONENT, deflated.unix_permissions(0o644))
        .map_err(zerr)?;
    zip.write_all(&component).map_err(ioerr)?;
    zip.add_directory("bin/", SimpleFileOptions::default().unix_permissions(0o755))
        .map_err(zerr)?;
    zip.start_file(DISPATCHER, deflated.unix_permissions(0o755))
        .map_err(zerr)?;
    zip.write_all(&dispatcher).map_err(ioerr)?;
    let f = zip.finish().map_err(zerr)?;
    f.sync_all().map_err(ioerr)?;
    std::fs::rename(&tmp, &input.out)
        .map_err(|e| JujuError::Pack(format!("cannot write {}: {e}", input.out.display())))?;
    Ok(input.out.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "name: web\ntype: charm\nsummary: s\ncontainers:\n  web:\n    resource: web-image\nresources:\n  web-image:\n    type: oci-image\nconfig:\n  options:\n    port:\n      type: int\n      default: 8080\nactions:\n  snap:\n    description: d\n";

    fn file(files: &[(&str, String)], name: &str) -> serde_yaml::Value {
        let text = &files.iter().find(|(n, _)| *n == name).unwrap().1;
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn charmcraft_yaml_is_split_as_charmcraft_lays_it_out() {
        let files = charm_files(WEB).unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "manifest.yaml",
                "metadata.yaml",
                "config.yaml",
                "actions.yaml",
                "dispatch"
            ]
        );
        let metadata = file(&files, "metadata.yaml");
        assert_eq!(metadata["name"], "web");
        assert_eq!(metadata["containers"]["web"]["resource"], "web-image");
        assert!(metadata.get("config").is_none() && metadata.get("type").is_none());
        assert_eq!(
            file(&files, "config.yaml")["options"]["port"]["default"],
            8080
        );
        assert_eq!(file(&files, "actions.yaml")["snap"]["description"], "d");
        let bases = &file(&files, "manifest.yaml")["bases"][0];
        assert_eq!(bases["name"], "ubuntu");
        assert_eq!(bases["channel"], "22.04");
        assert_eq!(bases["architectures"][0], juju_arch());
    }

    #[test]
    fn manifest_bases_follow_base_and_platforms() {
        let files = charm_files(&format!(
            "{WEB}base: ubuntu@24.04\nplatforms:\n  amd64:\n  arm64:\n"
        ))
        .unwrap();
        let b = &file(&files, "manifest.yaml")["bases"][0];
        assert_eq!(b["channel"], "24.04");
        assert_eq!(b["architectures"][1], "arm64");
    }
}
