//! `cairn refresh`: a deployed application moves to a new component and `charmcraft.yaml`
//! while its units, their stored state and their running workloads stay.
//!
//! Everything is checked before anything changes: the charm's name, its containers (the
//! same set: containers are opened with the unit and cannot appear or go in place), the
//! actions runs already queued still exist, the component compiles and instantiates (its
//! initializers run once, under the app's budget). Then the blob is stored, the app
//! record (the commit point) is written with the new metadata and settings (those of
//! removed options dropped, the others re-typed by the new options; new defaults apply),
//! and each unit gets `upgrade-charm` then `config-changed`. Services are not touched:
//! a charm restarts its workload itself if it needs to.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Host, live_app};
use crate::RuntimeError;
use crate::charm::CharmSource;
use crate::types::Event;
use crate::wasm::UnitContext;

impl Host {
    /// Refreshes `app` to the charm at `source` (a charm directory or `.wasm` with its
    /// `charmcraft.yaml`), as the module says; returns the new component's hash. A charm the
    /// host cannot load, or that no longer fits the app, is refused with nothing changed.
    pub async fn refresh(&self, app: &str, source: &Path) -> Result<String, RuntimeError> {
        let refused = |why: String| RuntimeError::Config(format!("cannot refresh {app:?}: {why}"));
        let src = CharmSource::locate(source, &self.inner.config.target_dirs)?;
        let wasm = std::fs::read(&src.wasm).map_err(|e| RuntimeError::io("read", &src.wasm, e))?;
        let mut apps = self.inner.apps.lock().await;
        let entry = live_app(&mut apps, app)?;
        let old = &entry.record.meta;
        if src.meta.name != old.name {
            return Err(refused(format!(
                "the charm is {:?}, not {:?}",
                src.meta.name, old.name
            )));
        }
        for c in old.containers.keys() {
            if !src.meta.containers.contains_key(c) {
                return Err(refused(format!("the new charm has no container {c:?}")));
            }
        }
        for c in src.meta.containers.keys() {
            if !old.containers.contains_key(c) {
                return Err(refused(format!(
                    "container {c:?} is new: a unit's containers cannot change in place \
                     (remove the application and deploy it again)"
                )));
            }
        }
        self.check_endpoints_kept(app, &src.meta)?;
        for u in entry.units.values() {
            let queued: Vec<(String, String)> = u.unit.with_record(|r| {
                r.queue
                    .iter()
                    .filter_map(|e| match e {
                        Event::Action { name, .. } => Some((r.name.clone(), name.clone())),
                        _ => None,
                    })
                    .collect()
            });
            if let Some((unit, action)) = queued
                .into_iter()
                .find(|(_, a)| !src.meta.actions.contains_key(a))
            {
                return Err(refused(format!(
                    "action {action:?} is queued on {unit} and the new charm has no such action"
                )));
            }
        }
        let charm = self.load_charm(wasm.clone()).await.map_err(|e| {
            refused(format!(
                "cannot load the new charm: {}",
                super::error_chain(&e)
            ))
        })?;
        // The settings that still mean something, typed by the new options.
        let mut settings = BTreeMap::new();
        for (k, v) in &entry.record.settings {
            match src.meta.parse_setting(k, &v.to_string()) {
                Ok(typed) => {
                    settings.insert(k.clone(), typed);
                }
                Err(e) => tracing::warn!("{app}: setting {k}={v} dropped on refresh: {e}"),
            }
        }
        let config = src.meta.effective_config(&settings);
        let budget = entry.view.lock().unwrap().budget.clone();
        let check = UnitContext {
            config: config.clone(),
            budget,
            ..UnitContext::new(&format!("{app}/check"), app, &self.inner.config.model)
        };
        self.inner
            .runtime
            .check(&charm, check)
            .await
            .map_err(|f| refused(format!("the new charm fails when loaded: {f}")))?;
        let stored = self.charm_path(&charm.hash);
        if !stored.exists() {
            cairn_supervisor::persist::atomic_write(&stored, &wasm)
                .map_err(|e| RuntimeError::io("write", &stored, e))?;
        }
        let mut record = entry.record.clone();
        record.meta = super::shared_meta(std::sync::Arc::new(src.meta.clone()));
        record.charm_hash = charm.hash.clone();
        record.settings = settings;
        record.charm_generation += 1;
        record.config_generation += 1;
        self.save_app(&record)?;
        entry.record = record;
        {
            let mut view = entry.view.lock().unwrap();
            view.charm = std::sync::Arc::new(charm);
            view.config = config;
        }
        let (charm_gen, config_gen) = (
            entry.record.charm_generation,
            entry.record.config_generation,
        );
        for u in entry.units.values() {
            u.unit.upgrade_charm(charm_gen);
            u.unit.config_changed(config_gen);
        }
        tracing::info!("refreshed {app} to {}", entry.record.charm_hash);
        Ok(entry.record.charm_hash.clone())
    }
}

#[cfg(test)]
mod tests {
    //! Refreshes through a real host, the real `misbehave` guest (and one that traps when
    //! instantiated) and real containers.

    use std::path::Path;

    use cairn_testutil::TempDir;

    use super::super::*;

    const META: &str = "name: misbehave\ncontainers:\n  work:\n    resource: r\nactions:\n  echo:\n    params:\n      message:\n        type: string\nconfig:\n  options:\n    mode:\n      type: string\n      default: ok\n    label:\n      type: string\n      default: \"\"\n    level:\n      type: string\n      default: \"1\"\n";

    use super::super::test_support::{charm_dir, open as open_with_pooling, settled as quiet};

    async fn open(state: &Path) -> Host {
        open_with_pooling(state, true).await
    }

    /// Waits until the host's units are quiet; returns `unit`'s history.
    async fn settled(host: &Host, unit: &str) -> Vec<HistoryEntry> {
        quiet(host).await;
        host.events(unit, None).await.unwrap()
    }

    async fn unit_status(host: &Host) -> WorkloadStatus {
        host.status().await.apps[0].units[0].status.clone()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_keeps_state_and_settings_and_runs_upgrade_charm_then_config_changed() {
        let dir = TempDir::new("refresh");
        let host = open(&dir.path().join("state")).await;
        let old = charm_dir(&dir, "old", META, cairn_test_programs::MISBEHAVE_WASM);
        host.deploy(
            &old,
            Some("m"),
            &[
                ("label".into(), "kept".into()),
                ("level".into(), "7".into()),
            ],
        )
        .await
        .unwrap();
        settled(&host, "m/0").await;
        // config-changed and start each counted one event in the charm's stored state.
        assert_eq!(
            unit_status(&host).await,
            WorkloadStatus::Active("handled 1".into())
        );
        // `label` stays, `level` becomes an int (its setting re-typed), `mode` goes (so its
        // default no longer applies), `colour` is new with a default.
        let meta = "name: misbehave\ncontainers:\n  work:\n    resource: r\nconfig:\n  options:\n    label:\n      type: string\n    level:\n      type: int\n    colour:\n      type: string\n      default: blue\n";
        let new = charm_dir(&dir, "new", meta, cairn_test_programs::MISBEHAVE_WASM);
        host.refresh("m", &new).await.unwrap();
        let history = settled(&host, "m/0").await;
        let names: Vec<&str> = history.iter().map(|h| h.event.as_str()).collect();
        assert_eq!(
            names[names.len() - 2..],
            ["upgrade-charm", "config-changed"]
        );
        assert!(
            history.iter().all(|h| h.outcome == "handled"),
            "{history:?}"
        );
        // Stored state survived: the counter went on from where it was.
        assert_eq!(
            unit_status(&host).await,
            WorkloadStatus::Active("handled 2".into())
        );
        let config = host.get_config("m").await.unwrap();
        assert_eq!(
            config,
            BTreeMap::from([
                ("colour".to_string(), ConfigValue::String("blue".into())),
                ("label".to_string(), ConfigValue::String("kept".into())),
                ("level".to_string(), ConfigValue::Int(7)),
            ])
        );
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_charm_that_cannot_load_or_no_longer_fits_is_refused_and_the_old_one_runs() {
        let dir = TempDir::new("refresh-refused");
        let state = dir.path().join("state");
        let host = open(&state).await;
        let old = charm_dir(&dir, "old", META, cairn_test_programs::MISBEHAVE_WASM);
        host.deploy(&old, Some("m"), &[]).await.unwrap();
        settled(&host, "m/0").await;
        let record = std::fs::read(state.join("apps/m.json")).unwrap();
        let too_big = charm_dir(
            &dir,
            "too-big",
            META,
            cairn_test_programs::TOO_BIG_TO_LOAD_WASM,
        );
        let e = host.refresh("m", &too_big).await.unwrap_err().to_string();
        // Refused when compiled for the pooling allocator (its memory does not fit a slot),
        // else when instantiated under the budget: either way before anything changed.
        assert!(
            e.starts_with("cannot refresh \"m\": cannot load the new charm: ")
                || e.starts_with("cannot refresh \"m\": the new charm fails when loaded: "),
            "{e}"
        );
        assert!(e.contains("memory"), "{e}");
        let garbage = charm_dir(&dir, "garbage", META, cairn_test_programs::MISBEHAVE_WASM);
        std::fs::write(garbage.join("charm.wasm"), b"\0asm not really").unwrap();
        let e = host.refresh("m", &garbage).await.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot refresh \"m\": cannot load the new charm: "),
            "{e}"
        );
        let other = charm_dir(
            &dir,
            "other",
            &META.replace("name: misbehave", "name: other"),
            cairn_test_programs::MISBEHAVE_WASM,
        );
        assert_eq!(
            host.refresh("m", &other).await.unwrap_err().to_string(),
            "cannot refresh \"m\": the charm is \"other\", not \"misbehave\""
        );
        let no_work = charm_dir(
            &dir,
            "no-work",
            &META.replace("work:", "other:"),
            cairn_test_programs::MISBEHAVE_WASM,
        );
        assert_eq!(
            host.refresh("m", &no_work).await.unwrap_err().to_string(),
            "cannot refresh \"m\": the new charm has no container \"work\""
        );
        // Nothing changed: the record, and the charm that handles the next event.
        assert_eq!(std::fs::read(state.join("apps/m.json")).unwrap(), record);
        host.set_config("m", &[("label".into(), "after".into())], &[])
            .await
            .unwrap();
        let history = settled(&host, "m/0").await;
        assert_eq!(history.last().unwrap().event, "config-changed");
        assert_eq!(history.last().unwrap().outcome, "handled");
        assert!(history.iter().all(|h| h.event != "upgrade-charm"));
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_its_units_never_heard_of_is_delivered_after_open() {
        let dir = TempDir::new("refresh-open");
        let state = dir.path().join("state");
        let host = open(&state).await;
        let old = charm_dir(&dir, "old", META, cairn_test_programs::MISBEHAVE_WASM);
        host.deploy(&old, Some("m"), &[]).await.unwrap();
        settled(&host, "m/0").await;
        host.shutdown().await;
        drop(host);
        // A crash after the app record's write, before the unit queued upgrade-charm.
        let path = state.join("apps/m.json");
        let mut rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        rec["charm_generation"] = 1.into();
        std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        let host = open(&state).await;
        let history = settled(&host, "m/0").await;
        let names: Vec<&str> = history.iter().map(|h| h.event.as_str()).collect();
        assert!(
            names.ends_with(&["upgrade-charm", "config-changed", "work-pebble-ready"]),
            "{names:?}"
        );
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_pooling_a_component_that_cannot_be_instantiated_is_refused_by_the_check() {
        let dir = TempDir::new("refresh-check");
        let host = open_with_pooling(&dir.path().join("state"), false).await;
        let old = charm_dir(&dir, "old", META, cairn_test_programs::MISBEHAVE_WASM);
        host.deploy(&old, Some("m"), &[]).await.unwrap();
        settled(&host, "m/0").await;
        let too_big = charm_dir(
            &dir,
            "too-big",
            META,
            cairn_test_programs::TOO_BIG_TO_LOAD_WASM,
        );
        let e = host.refresh("m", &too_big).await.unwrap_err().to_string();
        assert!(
            e.starts_with("cannot refresh \"m\": the new charm fails when loaded: "),
            "{e}"
        );
        assert_eq!(
            host.status().await.apps[0].units[0].status,
            WorkloadStatus::Active("handled 1".into())
        );
        host.shutdown().await;
    }
}
