//! A program embedding Cairn's runtime: a dry run of a charm. It loads a charm component,
//! delivers `config-changed` (with `key=value` settings over charmcraft.yaml's defaults)
//! against containers served by its own [`ContainerApi`], which keeps layers with the
//! host's plan code and runs nothing, then prints the charm's status, log and the plan
//! each container would run.
//!
//! ```text
//! cargo build-charms
//! cargo run -p cairn-runtime --example dry_run -- \
//!     target/wasm32-wasip2/release/web_charm.wasm examples/web/charmcraft.yaml port=9090
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};
use cairn_api::types as api;
use cairn_charm::CharmMeta;
use cairn_plan::Layers;
use cairn_runtime::wasm::{Command, ContainerApi, ContainerError, NoticeQuery};
use cairn_runtime::{ContainerBackend, Event, Runtime, RuntimeConfig, UnitContext};
use cairn_supervisor::ServicesAction;
use cairn_supervisor::files::Ownership;

/// A container that keeps the layers a charm adds and what it asked for, running nothing.
#[derive(Default)]
struct DryRun {
    layers: Mutex<Layers>,
    /// What the charm asked for that a real container would have done.
    asked: Mutex<Vec<String>>,
}

impl DryRun {
    fn note(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }

    fn refused(what: &str) -> ContainerError {
        ContainerError::bad_request(format!("cannot {what}: this is a dry run"))
    }
}

impl ContainerApi for DryRun {
    fn can_connect(&self) -> bool {
        true
    }

    fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<(), ContainerError> {
        self.layers
            .lock()
            .unwrap()
            .add_yaml(label, yaml.as_bytes(), combine, false)
            .map_err(|e| ContainerError::bad_request(e.to_string()))?;
        self.note(format!("add layer {label:?}"));
        Ok(())
    }

    fn plan(&self) -> Result<cairn_plan::Plan, ContainerError> {
        Ok(self.layers.lock().unwrap().plan().clone())
    }

    fn services_action(
        &self,
        action: ServicesAction,
        names: &[String],
    ) -> Result<(), ContainerError> {
        self.note(
            format!("{} {}", action.as_str(), names.join(" "))
                .trim_end()
                .into(),
        );
        Ok(())
    }

    fn services(&self, names: &[String]) -> Result<Vec<api::ServiceInfo>, ContainerError> {
        let layers = self.layers.lock().unwrap();
        Ok(layers
            .plan()
            .services
            .keys()
            .filter(|n| names.is_empty() || names.contains(n))
            .map(|name| api::ServiceInfo {
                name: name.clone(),
                startup: "disabled".into(),
                current: "inactive".into(),
                current_since: None,
            })
            .collect())
    }

    fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), ContainerError> {
        self.note(format!("send {signal} to {}", names.join(" ")));
        Ok(())
    }

    fn checks(
        &self,
        _level: Option<cairn_plan::CheckLevel>,
        _names: &[String],
    ) -> Result<Vec<api::CheckInfo>, ContainerError> {
        Ok(Vec::new())
    }

    fn checks_action(&self, start: bool, names: &[String]) -> Result<Vec<String>, ContainerError> {
        let verb = if start { "start" } else { "stop" };
        self.note(format!("{verb} checks {}", names.join(" ")));
        Ok(Vec::new())
    }

    fn notices(&self, _query: &NoticeQuery) -> Result<Vec<api::Notice>, ContainerError> {
        Ok(Vec::new())
    }

    fn notice(&self, id: &str) -> Result<api::Notice, ContainerError> {
        Err(ContainerError::not_found(format!(
            "cannot find notice with ID {id:?}"
        )))
    }

    fn push(
        &self,
        path: &str,
        data: &[u8],
        _make_dirs: bool,
        _owner: &Ownership,
    ) -> Result<(), ContainerError> {
        self.note(format!("write {path} ({} bytes)", data.len()));
        Ok(())
    }

    fn pull(&self, path: &str) -> Result<Vec<u8>, ContainerError> {
        Err(ContainerError::path(
            "not-found",
            format!("stat {path}: no such file or directory"),
        ))
    }

    fn list_files(
        &self,
        path: &str,
        _pattern: Option<&str>,
        _itself: bool,
    ) -> Result<Vec<api::FileInfo>, ContainerError> {
        self.pull(path).map(|_| Vec::new())
    }

    fn make_dir(
        &self,
        path: &str,
        _make_parents: bool,
        _owner: &Ownership,
    ) -> Result<(), ContainerError> {
        self.note(format!("make directory {path}"));
        Ok(())
    }

    fn remove_path(&self, path: &str, _recursive: bool) -> Result<(), ContainerError> {
        self.note(format!("remove {path}"));
        Ok(())
    }

    fn exec(&self, options: &cairn_api::ExecOptions) -> Result<Box<dyn Command>, ContainerError> {
        Err(Self::refused(&format!(
            "run {:?}",
            options.command.join(" ")
        )))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [wasm, charmcraft, settings @ ..] = args.as_slice() else {
        bail!("usage: dry_run <component.wasm> <charmcraft.yaml> [key=value ...]");
    };
    let meta = CharmMeta::parse(&std::fs::read_to_string(charmcraft)?)?;
    let mut config = BTreeMap::new();
    for s in settings {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("setting {s:?} is not key=value"))?;
        config.insert(k.to_string(), meta.parse_setting(k, v)?);
    }

    // One engine per process; a component compiled once, instantiated per event.
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let charm = runtime.load(&std::fs::read(wasm)?)?;

    // The unit as this embedder sees it: its containers are served by `DryRun`.
    let containers: BTreeMap<String, Arc<DryRun>> = meta
        .containers
        .keys()
        .map(|n| (n.clone(), Arc::new(DryRun::default())))
        .collect();
    let mut unit = UnitContext::new(&format!("{}/0", meta.name), &meta.name, "dry-run");
    unit.config = meta.effective_config(&config);
    unit.containers = containers
        .iter()
        .map(|(n, c)| {
            let api: Arc<dyn ContainerApi> = c.clone();
            (n.clone(), ContainerBackend::Custom(api))
        })
        .collect();

    let done = runtime.dispatch(&charm, unit, &Event::ConfigChanged).await;
    for line in &done.logs {
        println!("log: {}", line.message);
    }
    match &done.outcome {
        Ok(outcome) => println!("config-changed: {outcome:?} in {:?}", done.duration),
        Err(failure) => println!("config-changed failed: {failure}"),
    }
    println!(
        "status: {} {}",
        done.ctx.unit_status.name(),
        done.ctx.unit_status.message()
    );
    for (name, c) in &containers {
        println!("container {name}:");
        for what in c.asked.lock().unwrap().iter() {
            println!("  asked: {what}");
        }
        for line in c.layers.lock().unwrap().plan().to_yaml().lines() {
            println!("  | {line}");
        }
    }
    Ok(())
}
