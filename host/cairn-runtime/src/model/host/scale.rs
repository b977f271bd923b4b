//! An application's units: adding and removing them, leadership, and the operator's way
//! out of a unit in error (`resolve`), with Juju's names and rules.
//!
//! The app record is the commit point of each change, as for deploy: units are started
//! before the record names them (a crash before leaves debris that [`Host::open`] deletes),
//! and a unit is taken out of the record, with the leadership moved, before it is stopped
//! and its directory deleted (a crash after leaves debris too). The leader is the one the
//! app record names; a unit record that disagrees is corrected on open, and a new leader
//! whose `leader-elected` a crash cut off gets it then.

use std::time::Duration;

use super::{AppEntry, Host, MAX_UNITS_PER_CALL, live_app, parse_unit_name};
use crate::RuntimeError;
use crate::model::unit::Resolve;

impl Host {
    /// Adds `n` units to `app` (numbered after the highest it ever had, as Juju numbers
    /// them); each gets install, config-changed, start and pebble-ready, and the app's
    /// leadership if it has no leader. Returns their names.
    pub async fn add_unit(&self, app: &str, n: u32) -> Result<Vec<String>, RuntimeError> {
        if n == 0 || n > MAX_UNITS_PER_CALL {
            return Err(RuntimeError::Config(format!(
                "cannot add {n} units: between 1 and {MAX_UNITS_PER_CALL} at once"
            )));
        }
        let mut apps = self.inner.apps.lock().await;
        let entry = live_app(&mut apps, app)?;
        let existing: Vec<u32> = entry.units.keys().copied().collect();
        let first = entry.record.next_unit;
        let new: Vec<u32> = (first..first + n).collect();
        let joining = self.joining(&apps, app, &existing, &new);
        let entry = live_app(&mut apps, app)?;
        let mut record = entry.record.clone();
        if record.leader.is_none() {
            record.leader = Some(record.next_unit);
        }
        // The new units see the record they will be committed with (their leadership).
        let before = std::mem::replace(&mut entry.record, record.clone());
        let started = match self.start_new_units(entry, n, &joining).await {
            Ok(s) => s,
            Err(e) => {
                entry.record = before;
                return Err(e);
            }
        };
        record.units.extend(started.iter().map(|(idx, _)| *idx));
        record.next_unit += n;
        if let Err(e) = self.save_app(&record) {
            entry.record = before;
            for (_, handle) in started {
                self.discard_unit(handle, false).await;
            }
            return Err(e);
        }
        entry.record = record;
        let names = started
            .iter()
            .map(|(idx, _)| format!("{app}/{idx}"))
            .collect();
        entry.units.extend(started);
        // The units at the other ends hear of them once they are committed.
        self.inner.relations.send(joining.others);
        tracing::info!("added {n} unit(s) to {app}");
        Ok(names)
    }

    /// Removes one unit (`app/N`): the app record drops it first (its leadership moving to
    /// the lowest-numbered unit left, which gets `leader-elected`), then the unit is removed
    /// as a whole app's are: its running event interrupted, `stop` and `remove` under a
    /// short deadline, its services stopped and its directory deleted.
    pub async fn remove_unit(&self, unit: &str) -> Result<(), RuntimeError> {
        let (app, idx) = parse_unit_name(unit)
            .ok_or_else(|| RuntimeError::Config(format!("invalid unit name {unit:?}")))?;
        let handle = {
            let mut apps = self.inner.apps.lock().await;
            let entry = live_app(&mut apps, app)?;
            let broken = entry.broken_units.contains_key(&idx);
            if !entry.units.contains_key(&idx) && !broken {
                return Err(RuntimeError::NotFound(format!("unit {unit:?} not found")));
            }
            let (leaving, others) = if entry.units.contains_key(&idx) {
                self.unit_leaving(&apps, app, idx)
            } else {
                Default::default()
            };
            let entry = live_app(&mut apps, app)?;
            let mut record = entry.record.clone();
            record.units.retain(|u| *u != idx);
            let old_leader = record.leader;
            if record.leader == Some(idx) {
                record.leader = entry.units.keys().copied().find(|u| *u != idx);
            }
            self.save_app(&record)?;
            entry.record = record;
            let handle = entry.units.remove(&idx);
            entry.broken_units.remove(&idx);
            if entry.record.leader != old_leader {
                let status = handle
                    .as_ref()
                    .map(|h| h.unit.with_record(|r| r.app_status.clone()))
                    .unwrap_or_default();
                if let Some(new) = entry.record.leader.and_then(|l| entry.units.get(&l)) {
                    tracing::info!("{unit} leaves: {} leads {app}", new.unit.name());
                    new.unit.become_leader(status);
                }
            }
            if let Some(h) = &handle {
                h.unit.begin_removal(leaving);
            }
            self.inner.relations.send(others);
            handle
        };
        match handle {
            Some(h) => self.discard_unit(h, true).await,
            None => super::discard_unit_dir(self.unit_dir(app, idx)).await,
        }
        tracing::info!("removed {unit}");
        Ok(())
    }

    /// `cairn resolve`: retries the event a unit in error is failing on now, or with
    /// [`Resolve::Skip`] drops it and goes on with the queue.
    pub async fn resolve(&self, unit: &str, how: Resolve) -> Result<(), RuntimeError> {
        let apps = self.inner.apps.lock().await;
        super::find_unit(&apps, unit)?
            .resolve(how)
            .map_err(RuntimeError::Config)
    }

    /// The app's config generation (what [`Host::wait_config`] waits for).
    pub async fn config_generation(&self, app: &str) -> Result<u64, RuntimeError> {
        let apps = self.inner.apps.lock().await;
        apps.get(app)
            .map(|e| e.record.config_generation)
            .ok_or_else(|| RuntimeError::NotFound(format!("application {app:?} not found")))
    }

    /// Waits (up to `timeout`) until every unit of `app` ran `config-changed` for config
    /// `generation` or later (`cairn config --wait`); a unit in error ends the wait with
    /// its error.
    pub async fn wait_config(
        &self,
        app: &str,
        generation: u64,
        timeout: Duration,
    ) -> Result<(), RuntimeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before the units are looked at, so that no progress between the
            // look and the wait is missed.
            let progressed = self.inner.progress.notified();
            tokio::pin!(progressed);
            progressed.as_mut().enable();
            {
                let apps = self.inner.apps.lock().await;
                let entry = apps.get(app).ok_or_else(|| {
                    RuntimeError::NotFound(format!("application {app:?} not found"))
                })?;
                let mut waiting = false;
                for u in entry.units.values() {
                    let (name, handled, error) = u
                        .unit
                        .with_record(|r| (r.name.clone(), r.config_handled, r.error.clone()));
                    if handled >= generation {
                        continue;
                    }
                    if let Some(e) = error {
                        return Err(RuntimeError::Config(format!(
                            "unit {name} is in error: {e}"
                        )));
                    }
                    waiting = true;
                }
                if !waiting {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Config(format!(
                    "timeout waiting for {app}'s units to run config-changed"
                )));
            }
            // A unit in error is retried without finishing a delivery each time: look again
            // now and then as well.
            let _ = tokio::time::timeout(Duration::from_millis(250), progressed).await;
        }
    }

    /// Makes the app record's leader and the unit records agree on open: a record without
    /// a leader (older than multi-unit apps) takes the unit whose record says it leads, or
    /// the lowest-numbered; the leader's unit record is marked (and given `leader-elected`
    /// when a crash came between the two writes), any other unit's unmarked.
    pub(super) fn settle_leadership(&self, entry: &mut AppEntry) {
        let app = entry.record.name.clone();
        let named = entry
            .record
            .leader
            .filter(|l| entry.record.units.contains(l));
        let leader = named.or_else(|| {
            let marked = entry
                .units
                .iter()
                .find(|(_, u)| u.unit.with_record(|r| r.leader))
                .map(|(idx, _)| *idx);
            marked.or_else(|| entry.units.keys().next().copied())
        });
        if leader != entry.record.leader {
            let mut record = entry.record.clone();
            record.leader = leader;
            match self.save_app(&record) {
                Ok(()) => entry.record = record,
                Err(e) => tracing::error!("cannot record the leader of {app}: {e}"),
            }
        }
        for (idx, u) in &entry.units {
            let marked = u.unit.with_record(|r| r.leader);
            if Some(*idx) == leader && !marked {
                tracing::warn!(
                    "{app}/{idx} leads but was not told (interrupted): queueing leader-elected"
                );
                let status = u.unit.with_record(|r| r.app_status.clone());
                u.unit.become_leader(status);
            } else if Some(*idx) != leader && marked {
                u.unit.lose_leadership();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Units and leadership through a real host, the real `misbehave` guest and real
    //! containers (no services are started by it).

    use std::path::{Path, PathBuf};

    use cairn_testutil::TempDir;

    use super::super::test_support::{self, settled};
    use super::super::*;

    const META: &str = "name: misbehave\ncontainers:\n  work:\n    resource: r\nconfig:\n  options:\n    mode:\n      type: string\n      default: ok\n";

    fn charm_dir(dir: &TempDir) -> PathBuf {
        test_support::charm_dir(dir, "charm", META, cairn_test_programs::MISBEHAVE_WASM)
    }

    async fn open(state: &Path) -> Host {
        test_support::open(state, true).await
    }

    async fn deploy(host: &Host, charm: &Path, units: u32) {
        let opts = DeployOptions {
            name: Some("m".into()),
            units,
            ..DeployOptions::default()
        };
        host.deploy_with(charm, &opts).await.unwrap();
    }

    /// Each unit's name and whether it leads, in order.
    async fn leaders(host: &Host) -> Vec<(String, bool)> {
        let st = host.status().await;
        st.apps
            .iter()
            .flat_map(|a| a.units.iter().map(|u| (u.name.clone(), u.leader)))
            .collect()
    }

    async fn events(host: &Host, unit: &str) -> Vec<String> {
        let h = host.events(unit, None).await.unwrap();
        h.into_iter().map(|e| e.event).collect()
    }

    fn app_record(state: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(state.join("apps/m.json")).unwrap()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_unit_gets_its_own_events_and_containers_and_only_the_first_leads() {
        let dir = TempDir::new("units");
        let state = dir.path().join("state");
        let host = open(&state).await;
        deploy(&host, &charm_dir(&dir), 3).await;
        settled(&host).await;
        assert_eq!(
            leaders(&host).await,
            [
                ("m/0".to_string(), true),
                ("m/1".to_string(), false),
                ("m/2".to_string(), false)
            ]
        );
        let first = ["install", "config-changed", "start", "work-pebble-ready"];
        let mut leader = first.to_vec();
        leader.insert(1, "leader-elected");
        assert_eq!(events(&host, "m/0").await, leader);
        assert_eq!(events(&host, "m/2").await, first);
        for i in 0..3 {
            assert!(
                state
                    .join(format!("units/m-{i}/containers/work/.pebble.socket"))
                    .exists()
            );
        }
        assert_eq!(app_record(&state)["leader"], 0);
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn removing_the_leader_elects_the_lowest_unit_left_which_hears_leader_elected() {
        let dir = TempDir::new("failover");
        let state = dir.path().join("state");
        let host = open(&state).await;
        deploy(&host, &charm_dir(&dir), 3).await;
        settled(&host).await;
        host.remove_unit("m/0").await.unwrap();
        settled(&host).await;
        assert_eq!(
            leaders(&host).await,
            [("m/1".to_string(), true), ("m/2".to_string(), false)]
        );
        assert_eq!(events(&host, "m/1").await.last().unwrap(), "leader-elected");
        assert!(
            !events(&host, "m/2")
                .await
                .contains(&"leader-elected".into())
        );
        assert!(!state.join("units/m-0").exists());
        let rec = app_record(&state);
        assert_eq!(rec["leader"], 1);
        assert_eq!(rec["units"], serde_json::json!([1, 2]));
        // Units are numbered after the highest the app ever had, as Juju numbers them.
        assert_eq!(host.add_unit("m", 2).await.unwrap(), ["m/3", "m/4"]);
        settled(&host).await;
        assert!(
            !events(&host, "m/3")
                .await
                .contains(&"leader-elected".into())
        );
        assert_eq!(
            host.remove_unit("m/0").await.unwrap_err().to_string(),
            "unit \"m/0\" not found"
        );
        // The last unit may go; the app stays, without a leader, and its next unit leads.
        for u in ["m/1", "m/2", "m/3", "m/4"] {
            host.remove_unit(u).await.unwrap();
        }
        assert!(app_record(&state)["leader"].is_null());
        assert_eq!(host.add_unit("m", 1).await.unwrap(), ["m/5"]);
        settled(&host).await;
        assert_eq!(leaders(&host).await, [("m/5".to_string(), true)]);
        assert!(
            events(&host, "m/5")
                .await
                .contains(&"leader-elected".into())
        );
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_leader_the_app_record_names_but_its_unit_was_not_told_of_is_told_on_open() {
        let dir = TempDir::new("leader-open");
        let state = dir.path().join("state");
        let host = open(&state).await;
        deploy(&host, &charm_dir(&dir), 2).await;
        settled(&host).await;
        host.shutdown().await;
        drop(host);
        // A crash between the app record's write and the new leader's.
        let path = state.join("apps/m.json");
        let mut rec = app_record(&state);
        rec["leader"] = 1.into();
        std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        let host = open(&state).await;
        settled(&host).await;
        assert_eq!(
            leaders(&host).await,
            [("m/0".to_string(), false), ("m/1".to_string(), true)]
        );
        assert!(
            events(&host, "m/1")
                .await
                .contains(&"leader-elected".into())
        );
        host.shutdown().await;
        drop(host);
        // A record older than multi-unit apps (no leader) keeps the unit that leads.
        let mut rec = app_record(&state);
        rec.as_object_mut().unwrap().remove("leader");
        std::fs::write(&path, serde_json::to_vec(&rec).unwrap()).unwrap();
        let host = open(&state).await;
        assert_eq!(
            leaders(&host).await,
            [("m/0".to_string(), false), ("m/1".to_string(), true)]
        );
        assert_eq!(app_record(&state)["leader"], 1);
        host.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn config_wait_returns_once_every_unit_ran_config_changed_or_one_fails() {
        let dir = TempDir::new("config-wait");
        let state = dir.path().join("state");
        let host = open(&state).await;
        deploy(&host, &charm_dir(&dir), 2).await;
        settled(&host).await;
        assert!(
            host.set_config("m", &[("mode".into(), "defer".into())], &[])
                .await
                .unwrap()
        );
        let generation = host.config_generation("m").await.unwrap();
        host.wait_config("m", generation, Duration::from_secs(30))
            .await
            .unwrap();
        for u in ["m/0", "m/1"] {
            let h = host.events(u, Some(1)).await.unwrap();
            assert_eq!(h[0].event, "config-changed", "{u}");
        }
        host.set_config("m", &[("mode".into(), "error".into())], &[])
            .await
            .unwrap();
        let generation = host.config_generation("m").await.unwrap();
        let e = host
            .wait_config("m", generation, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            e.to_string().ends_with(
                "is in error: hook failed: \"config-changed\": misbehave: error requested"
            ),
            "{e}"
        );
        host.shutdown().await;
    }
}
