//! Juju-style dispatch: the real `cairn-dispatch` binary run as Juju runs a charm's
//! `dispatch` (one process per event, `JUJU_*` variables, hook tools on `PATH`), and a
//! `.charm` from `cairn pack` unzipped and its `dispatch` run.
//!
//! The hook tools are fake, as in ops' own tests (`cairn_testutil::juju`): one small `sh`
//! script under each tool's name that records its arguments (`calls`, one line per call,
//! tab-separated) and answers as Juju does from files of the fake model (`config.json`,
//! `leader`, `action-params.json`; `status-set` writes what `status-get` reads back).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};

use crate::common::{CAIRN, Must, TempDir, eventually, example, free_port, http_get, program};

/// The dispatcher under test.
pub const DISPATCH: &str = env!("CARGO_BIN_EXE_cairn-dispatch");

/// A fake Juju unit: a charm directory, the model's files and the hook tools.
pub struct FakeUnit {
    pub dir: TempDir,
    pub charm_dir: PathBuf,
    pub model: PathBuf,
    /// What stands for `/` of the charm container: the Pebble sockets are under
    /// `<root>/charm/containers/<name>/pebble.socket`.
    pub root: PathBuf,
    pub unit_name: String,
    bin: PathBuf,
}

impl FakeUnit {
    /// A unit of the charm in `charm_dir` (copied: its `charmcraft.yaml` and `component`).
    pub fn new(name: &str, source: &str, component: &str) -> Result<FakeUnit> {
        let dir = TempDir::new(&format!("juju-{name}"));
        let charm_dir = dir.path().join("charm");
        std::fs::create_dir_all(&charm_dir)?;
        std::fs::copy(
            Path::new(source).join("charmcraft.yaml"),
            charm_dir.join("charmcraft.yaml"),
        )?;
        std::fs::copy(component, charm_dir.join("charm.wasm"))?;
        let unit = FakeUnit::bare(dir, charm_dir)?;
        Ok(unit)
    }

    /// Fake hook tools and model for an existing charm directory under `dir`.
    pub fn bare(dir: TempDir, charm_dir: PathBuf) -> Result<FakeUnit> {
        let model = dir.path().join("model");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&model)?;
        cairn_testutil::juju::install_fake_hook_tools(&bin)?;
        std::fs::write(model.join("calls"), "")?;
        let root = dir.path().join("root");
        let unit_name = format!(
            "{}/0",
            serde_yaml::from_str::<serde_yaml::Value>(
                &std::fs::read_to_string(charm_dir.join("charmcraft.yaml"))
                    .or_else(|_| std::fs::read_to_string(charm_dir.join("metadata.yaml")))?
            )?["name"]
                .as_str()
                .unwrap_or("charm")
        );
        Ok(FakeUnit {
            dir,
            charm_dir,
            model,
            root,
            unit_name,
            bin,
        })
    }

    /// Sets the config `config-get` answers.
    pub fn set_config(&self, json: &str) -> Result<()> {
        Ok(std::fs::write(self.model.join("config.json"), json)?)
    }

    /// The environment Juju gives a dispatch of `path` (`hooks/install`, `actions/echo`).
    pub fn command(&self, program: &Path, path: &str, extra: &[(&str, &str)]) -> Command {
        let mut c = Command::new(program);
        let path_var = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.current_dir(&self.charm_dir)
            .env_clear()
            .env("PATH", path_var)
            .env("FAKE_JUJU", &self.model)
            .env("JUJU_DISPATCH_PATH", path)
            .env("JUJU_UNIT_NAME", &self.unit_name)
            .env("JUJU_MODEL_NAME", "test")
            .env("JUJU_MODEL_UUID", "00000000-0000-4000-8000-000000000000")
            .env("JUJU_CHARM_DIR", &self.charm_dir)
            .env("JUJU_VERSION", "3.6.4")
            .env("JUJU_HOOK_NAME", path.rsplit('/').next().unwrap_or(path))
            .env("CAIRN_JUJU_ROOT", &self.root);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    }

    /// Runs the dispatcher for `path` with the component in the charm directory.
    pub fn dispatch(&self, path: &str, extra: &[(&str, &str)]) -> Result<Output> {
        let out = self
            .command(Path::new(DISPATCH), path, extra)
            .arg("charm.wasm")
            .output()
            .context("cannot run cairn-dispatch")?;
        Ok(out)
    }

    /// Hook tool calls so far, each as its name and arguments; cleared.
    pub fn take_calls(&self) -> Result<Vec<Vec<String>>> {
        let p = self.model.join("calls");
        let text = std::fs::read_to_string(&p)?;
        std::fs::write(&p, "")?;
        Ok(text
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect())
    }

    /// The unit's status as `status-set` last wrote it.
    pub fn status(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.model.join("status"))
            .unwrap_or_default()
            .replace('\n', " ")
            .trim()
            .to_string())
    }

    /// The stored state and deferred events file.
    pub fn state(&self) -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(self.charm_dir.join(".cairn-unit-state.json"))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn ok(out: &Output) -> Result<()> {
    ensure!(
        out.status.success(),
        "dispatch failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Names of the tools called, in order.
fn tools(calls: &[Vec<String>]) -> Vec<&str> {
    calls.iter().map(|c| c[0].as_str()).collect()
}

fn misbehave() -> Result<FakeUnit> {
    FakeUnit::new(
        "misbehave",
        &program("misbehave"),
        cairn_test_programs::MISBEHAVE_WASM,
    )
}

/// The handled-events counter of the misbehave charm's stored state.
fn handled(unit: &FakeUnit) -> Result<String> {
    let state = unit.state()?;
    let bytes: Vec<u8> = serde_json::from_value(state["stored"]["handled"].clone())?;
    Ok(String::from_utf8(bytes)?)
}

#[test]
fn install_and_config_changed_are_served_by_hook_tools_called_only_as_needed() -> Result<()> {
    let unit = misbehave()?;
    unit.set_config(r#"{"mode": "ok", "label": ""}"#)?;
    ok(&unit.dispatch("hooks/install", &[])?)?;
    // install only sets a status: no config-get, no is-leader, no status-get.
    assert_eq!(
        unit.take_calls()?,
        [[
            "status-set",
            "--application=false",
            "maintenance",
            "--",
            "installing"
        ]]
    );
    assert!(
        std::fs::read_dir(unit.charm_dir.join(".cairn"))?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "cwasm")),
        "no precompiled component cached in the charm directory"
    );
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    let calls = unit.take_calls()?;
    assert_eq!(tools(&calls), ["config-get", "status-set"], "{calls:?}");
    assert_eq!(calls[0], ["config-get", "--format=json"]);
    assert_eq!(unit.status()?, "active handled 1");
    assert_eq!(handled(&unit)?, "1");
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    assert_eq!(unit.status()?, "active handled 2");
    // A hook the WIT world has no event for, with nothing deferred: logged, nothing run.
    ok(&unit.dispatch("hooks/secret-changed", &[])?)?;
    let calls = unit.take_calls()?;
    assert_eq!(tools(&calls), ["config-get", "status-set", "juju-log"]);
    assert_eq!(calls[2][1..3], ["--log-level", "DEBUG"]);
    assert_eq!(handled(&unit)?, "2");
    Ok(())
}

#[test]
fn a_deferred_event_is_re_emitted_before_the_next_one() -> Result<()> {
    let unit = misbehave()?;
    unit.set_config(r#"{"mode": "defer"}"#)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    let state = unit.state()?;
    assert_eq!(
        state["deferred"],
        serde_json::json!([{"kind": "config-changed"}])
    );
    assert_eq!(tools(&unit.take_calls()?), ["config-get"]);
    // The next dispatch (update-status, which does nothing in `ok` mode) first re-emits
    // the deferred config-changed, which now handles it; one status-set at the end.
    unit.set_config(r#"{"mode": "ok"}"#)?;
    ok(&unit.dispatch("hooks/update-status", &[])?)?;
    assert_eq!(tools(&unit.take_calls()?), ["config-get", "status-set"]);
    assert_eq!(unit.status()?, "active handled 1");
    let state = unit.state()?;
    assert_eq!(state["deferred"], serde_json::json!([]));
    // A deferred event is re-emitted even for a hook the charm has no event for.
    unit.set_config(r#"{"mode": "defer-all"}"#)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    unit.set_config(r#"{"mode": "ok"}"#)?;
    ok(&unit.dispatch("hooks/secret-changed", &[])?)?;
    assert_eq!(unit.state()?["deferred"], serde_json::json!([]));
    assert_eq!(unit.status()?, "active handled 2");
    Ok(())
}

#[test]
fn a_failing_handler_exits_1_and_changes_nothing() -> Result<()> {
    let unit = misbehave()?;
    unit.set_config(r#"{"mode": "ok"}"#)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    let before = std::fs::read(unit.charm_dir.join(".cairn-unit-state.json"))?;
    unit.take_calls()?;
    // `error` bumps the counter, then fails: the bump is not kept.
    unit.set_config(r#"{"mode": "error"}"#)?;
    let out = unit.dispatch("hooks/config-changed", &[])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot handle config-changed: misbehave: error requested"),
        "{stderr}"
    );
    let calls = unit.take_calls()?;
    assert_eq!(tools(&calls), ["config-get", "juju-log"], "{calls:?}");
    assert_eq!(calls[1][2], "ERROR");
    assert_eq!(
        std::fs::read(unit.charm_dir.join(".cairn-unit-state.json"))?,
        before
    );
    assert_eq!(unit.status()?, "active handled 1");
    // A trap fails the same way.
    unit.set_config(r#"{"mode": "trap"}"#)?;
    let out = unit.dispatch("hooks/config-changed", &[])?;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(handled(&unit)?, "1");
    Ok(())
}

#[test]
fn an_action_takes_its_params_from_action_get_and_reports_with_action_set() -> Result<()> {
    let unit = misbehave()?;
    std::fs::write(
        unit.model.join("action-params.json"),
        r#"{"message": "hi", "times": 2}"#,
    )?;
    let env = [
        ("JUJU_ACTION_NAME", "echo"),
        ("JUJU_ACTION_UUID", "7c1e0b5a-1111-4222-8333-444455556666"),
    ];
    ok(&unit.dispatch("actions/echo", &env)?)?;
    let calls = unit.take_calls()?;
    assert_eq!(
        calls,
        [
            vec!["action-get", "--format=json"],
            vec!["action-log", "--", "echoing 2 time(s)"],
            vec!["action-set", "echo=hihi", "times=2"],
        ]
    );
    let results = std::fs::read_to_string(unit.model.join("action-results"))?;
    assert_eq!(results, "echo=hihi\ntimes=2\n");
    // action-fail
    ok(&unit.dispatch(
        "actions/fail",
        &[("JUJU_ACTION_NAME", "fail"), ("JUJU_ACTION_UUID", "8")],
    )?)?;
    let calls = unit.take_calls()?;
    assert_eq!(
        calls.last().unwrap(),
        &["action-fail", "--", "asked to fail"]
    );
    Ok(())
}

#[test]
fn action_log_runs_when_called_so_progress_survives_a_failing_action() -> Result<()> {
    let unit = misbehave()?;
    let env = [
        ("JUJU_ACTION_NAME", "progress"),
        ("JUJU_ACTION_UUID", "9d2f1c6b-1111-4222-8333-444455556666"),
    ];
    let out = unit.dispatch("actions/progress", &env)?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // Sent while the handler ran: before the error it ended with was logged, and although
    // the action failed (nothing else of it reaches Juju).
    let calls = unit.take_calls()?;
    assert_eq!(
        tools(&calls),
        ["action-get", "action-log", "juju-log"],
        "{calls:?}"
    );
    assert_eq!(calls[1], ["action-log", "--", "step 1 of 2 done"]);
    assert_eq!(calls[2][2], "ERROR");
    assert!(
        calls[2][4].contains("misbehave: step 2 failed"),
        "{calls:?}"
    );
    Ok(())
}

#[test]
fn a_hook_tool_failure_fails_the_event() -> Result<()> {
    let unit = misbehave()?;
    // No config.json: config-get's `cat` fails... but the script exits 0 with no output,
    // which is not JSON: the charm's config read fails and so does the event.
    let out = unit.dispatch("hooks/config-changed", &[])?;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot parse output of config-get"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_packed_charm_unzips_to_charmcrafts_layout_and_its_dispatch_runs_a_hook() -> Result<()> {
    let dir = TempDir::new("juju-pack");
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src)?;
    std::fs::copy(
        Path::new(&program("misbehave")).join("charmcraft.yaml"),
        src.join("charmcraft.yaml"),
    )?;
    std::fs::copy(cairn_test_programs::MISBEHAVE_WASM, src.join("charm.wasm"))?;
    let charm = dir.path().join("misbehave.charm");
    // CAIRN_PACK_DISPATCHER: pack another build (the static one of `cargo build-dispatcher`).
    let dispatcher = std::env::var_os("CAIRN_PACK_DISPATCHER").unwrap_or(DISPATCH.into());
    let out = Command::new(CAIRN)
        .arg("pack")
        .arg(&src)
        .arg("--output")
        .arg(&charm)
        .arg("--dispatcher")
        .arg(&dispatcher)
        .output()?;
    ok(&out)?;
    let unpacked = dir.path().join("unpacked");
    let out = Command::new("unzip")
        .arg("-q")
        .arg(&charm)
        .arg("-d")
        .arg(&unpacked)
        .output()?;
    ok(&out)?;
    let mut names: Vec<String> = walk(&unpacked, &unpacked)?;
    names.sort();
    assert_eq!(
        names,
        [
            "actions.yaml",
            "bin/cairn-dispatch",
            "charm.wasm",
            "config.yaml",
            "dispatch",
            "manifest.yaml",
            "metadata.yaml"
        ]
    );
    use std::os::unix::fs::PermissionsExt;
    for exe in ["dispatch", "bin/cairn-dispatch"] {
        let mode = std::fs::metadata(unpacked.join(exe))?.permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{exe} is not executable: {mode:o}");
    }
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(unpacked.join("manifest.yaml"))?)?;
    assert_eq!(manifest["bases"][0]["name"], "ubuntu");
    let metadata: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(unpacked.join("metadata.yaml"))?)?;
    assert_eq!(metadata["name"], "misbehave");
    assert!(metadata["containers"]["work"].is_mapping());
    // Juju runs `./dispatch` in the charm directory with JUJU_DISPATCH_PATH set.
    let unit = FakeUnit::bare(dir, unpacked.clone())?;
    unit.set_config(r#"{"mode": "ok", "label": ""}"#)?;
    let out = unit
        .command(&unpacked.join("dispatch"), "hooks/config-changed", &[])
        .output()?;
    ok(&out)?;
    assert_eq!(unit.status()?, "active handled 1");
    Ok(())
}

/// Files under `dir`, relative to `root`.
fn walk(root: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(root, &p)?);
        } else {
            out.push(p.strip_prefix(root)?.display().to_string());
        }
    }
    Ok(out)
}

/// Links a container's Pebble socket where Juju mounts it in the charm container.
fn mount_socket(unit: &FakeUnit, container: &str, socket: &Path) -> Result<()> {
    let dir = unit.root.join("charm/containers").join(container);
    std::fs::create_dir_all(&dir)?;
    std::os::unix::fs::symlink(socket, dir.join("pebble.socket"))?;
    Ok(())
}

/// Runs `f` against the Pebble API on `socket`.
fn pebble_api<T>(
    socket: &Path,
    f: impl AsyncFnOnce(cairn_api::Client) -> Result<T, cairn_api::ClientError>,
) -> Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(f(cairn_api::Client::unix(socket)))?)
}

/// The status of check `name` in Pebble on `socket`.
fn check_status(socket: &Path, name: &str) -> Result<String> {
    let name = name.to_string();
    let checks = pebble_api(socket, async move |c| c.checks("", &[name]).await)?;
    Ok(checks.first().map(|c| c.status.clone()).unwrap_or_default())
}

/// Runs a services action (`stop`, `start`) on Pebble and waits for its change.
fn services(socket: &Path, action: &str, names: &[&str]) -> Result<()> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let action = action.to_string();
    pebble_api(socket, async move |c| {
        let id = c.services_action(&action, &names).await?;
        c.wait_change(&id, Some(std::time::Duration::from_secs(30)))
            .await
            .map(drop)
    })
}

/// The web example, dispatched as Juju does against a Pebble server (`bin args… run
/// --hold --create-dirs`) as its workload container: install → config-changed →
/// web-pebble-ready → active with the HTTP workload answering; a config change moves it; a
/// failing check and its recovery arrive as events and move the status.
fn web_runs_against(bin: &Path, args: &[&str]) -> Result<()> {
    let unit = FakeUnit::new("web", &example("web"), cairn_test_programs::WEB_WASM)?;
    let pebble_dir = unit.dir.path().join("pebble-web");
    let _pebble = crate::backends::pebble_server(
        bin,
        args,
        &pebble_dir,
        &unit.dir.path().join("pebble.log"),
    )?;
    let socket = pebble_dir.join(".pebble.socket");
    mount_socket(&unit, "web", &socket)?;
    let port = free_port();
    unit.set_config(&format!(r#"{{"port": {port}, "check-period": "200ms"}}"#))?;
    ok(&unit.dispatch("hooks/install", &[])?)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    assert_eq!(unit.status()?, format!("active serving on port {port}"));
    assert!(
        http_get(port)?.contains("200"),
        "web server does not answer"
    );
    let ready = [("JUJU_WORKLOAD_NAME", "web")];
    ok(&unit.dispatch("hooks/web-pebble-ready", &ready)?)?;
    assert_eq!(unit.status()?, format!("active serving on port {port}"));

    let moved = free_port();
    unit.set_config(&format!(r#"{{"port": {moved}, "check-period": "200ms"}}"#))?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    assert_eq!(unit.status()?, format!("active serving on port {moved}"));
    assert!(http_get(moved)?.contains("200"));
    eventually(std::time::Duration::from_secs(10), || {
        http_get(port).is_err().then_some(())
    })
    .must("the old port closed")?;

    // The server stops: the `up` check goes down and Juju dispatches check-failed.
    eventually(std::time::Duration::from_secs(10), || {
        (check_status(&socket, "up").ok()? == "up").then_some(())
    })
    .must("check up")?;
    services(&socket, "stop", &["http"])?;
    eventually(std::time::Duration::from_secs(20), || {
        (check_status(&socket, "up").ok()? == "down").then_some(())
    })
    .must("check down")?;
    let check = [
        ("JUJU_WORKLOAD_NAME", "web"),
        ("JUJU_PEBBLE_CHECK_NAME", "up"),
    ];
    ok(&unit.dispatch("hooks/web-pebble-check-failed", &check)?)?;
    assert_eq!(
        unit.status()?,
        "maintenance check \"up\" failing; the server does not answer"
    );
    services(&socket, "start", &["http"])?;
    eventually(std::time::Duration::from_secs(20), || {
        (check_status(&socket, "up").ok()? == "up").then_some(())
    })
    .must("check up again")?;
    ok(&unit.dispatch("hooks/web-pebble-check-recovered", &check)?)?;
    assert_eq!(unit.status()?, format!("active serving on port {moved}"));
    Ok(())
}

#[test]
fn web_goes_active_against_real_pebble_as_its_workload_container() -> Result<()> {
    let Some(pebble) = crate::backends::reference_pebble() else {
        println!("skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    web_runs_against(&pebble, &[])
}

#[test]
fn web_goes_active_against_cairn_pebble_run_as_its_workload_container() -> Result<()> {
    web_runs_against(Path::new(CAIRN), &["pebble"])
}

/// The db example under Juju-style dispatch against real Pebble (else `cairn pebble run`):
/// its `backup` action execs the dump in the container, pulls it and reports through
/// `action-set`; a custom notice from the workload arrives as `db-pebble-custom-notice`
/// (with `JUJU_NOTICE_*` as Juju sets them) and the charm records it in its status.
#[test]
fn db_backup_action_and_a_custom_notice_run_against_pebble() -> Result<()> {
    let (bin, args): (PathBuf, Vec<&str>) = match crate::backends::reference_pebble() {
        Some(p) => (p, vec![]),
        None => (PathBuf::from(CAIRN), vec!["pebble"]),
    };
    let unit = FakeUnit::new("db", &example("db"), cairn_test_programs::DB_WASM)?;
    let pebble_dir = unit.dir.path().join("pebble-db");
    let _pebble = crate::backends::pebble_server(
        &bin,
        &args,
        &pebble_dir,
        &unit.dir.path().join("pebble.log"),
    )?;
    let socket = pebble_dir.join(".pebble.socket");
    mount_socket(&unit, "db", &socket)?;
    let port = free_port();
    let data = unit.dir.path().join("data");
    unit.set_config(&format!(
        r#"{{"port": {port}, "data-dir": "{}", "backup-interval": 0}}"#,
        data.display()
    ))?;
    ok(&unit.dispatch("hooks/install", &[])?)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    ok(&unit.dispatch("hooks/db-pebble-ready", &[("JUJU_WORKLOAD_NAME", "db")])?)?;
    assert!(unit.status()?.starts_with("active"), "{}", unit.status()?);
    std::fs::write(
        unit.model.join("action-params.json"),
        r#"{"name": "nightly", "compress": false}"#,
    )?;
    unit.take_calls()?;
    ok(&unit.dispatch(
        "actions/backup",
        &[("JUJU_ACTION_NAME", "backup"), ("JUJU_ACTION_UUID", "42")],
    )?)?;
    let results = std::fs::read_to_string(unit.model.join("action-results"))?;
    let path = results
        .lines()
        .find_map(|l| l.strip_prefix("path="))
        .must("path in the action's results")?;
    assert!(
        path.starts_with(&data.join("backups/nightly").display().to_string())
            && results.contains("sha256="),
        "{results}"
    );
    assert!(Path::new(path).is_file(), "no dump at {path}");

    // The workload reports a scheduled dump with a custom notice; Juju dispatches it.
    let data_map = std::collections::BTreeMap::from([
        ("path".to_string(), "/srv/x.sql".to_string()),
        ("bytes".to_string(), "123".to_string()),
    ]);
    let id = pebble_api(&socket, async move |c| {
        c.notify("example.com/db/backup", &data_map, None).await
    })?;
    ok(&unit.dispatch(
        "hooks/db-pebble-custom-notice",
        &[
            ("JUJU_WORKLOAD_NAME", "db"),
            ("JUJU_NOTICE_ID", &id),
            ("JUJU_NOTICE_TYPE", "custom"),
            ("JUJU_NOTICE_KEY", "example.com/db/backup"),
        ],
    )?)?;
    assert_eq!(
        unit.status()?,
        format!("active serving on 127.0.0.1:{port}; scheduled backup 1: /srv/x.sql (123 bytes)")
    );
    Ok(())
}

#[test]
fn a_relation_hook_reads_bags_with_relation_get_and_writes_back_only_what_changed() -> Result<()> {
    let unit = misbehave()?;
    unit.set_config(r#"{"mode": "ok"}"#)?;
    let model = |name: &str, text: &str| std::fs::write(unit.model.join(name), text);
    model("relation-ids-db.json", r#"["db:3"]"#)?;
    model("relation-3-units.json", r#"["pg/0"]"#)?;
    model("relation-3-app.json", r#""pg""#)?;
    model("bag-3-pg_0.json", r#"{"ask": "hi"}"#)?;
    model(
        "bag-3-misbehave_0.json",
        r#"{"answer": "old", "gone": "soon"}"#,
    )?;
    model("bag-3-misbehave.json", r#"{"v": "1"}"#)?;
    let env = [
        ("JUJU_RELATION", "db"),
        ("JUJU_RELATION_ID", "db:3"),
        ("JUJU_REMOTE_UNIT", "pg/0"),
        ("JUJU_REMOTE_APP", "pg"),
    ];
    ok(&unit.dispatch("hooks/db-relation-changed", &env)?)?;
    let calls = unit.take_calls()?;
    let of = |tool: &str| -> Vec<Vec<String>> {
        calls.iter().filter(|c| c[0] == tool).cloned().collect()
    };
    assert_eq!(
        of("relation-ids"),
        [["relation-ids", "--format=json", "db"]]
    );
    assert_eq!(
        of("relation-get"),
        [
            ["relation-get", "--format=json", "-r", "3", "-", "pg/0"].as_slice(),
            &[
                "relation-get",
                "--format=json",
                "-r",
                "3",
                "-",
                "misbehave/0"
            ],
            &[
                "relation-get",
                "--format=json",
                "-r",
                "3",
                "-",
                "misbehave",
                "--app"
            ],
        ],
        "{calls:?}"
    );
    // Only what changed, after the handler succeeded: this unit's bag, then the app's.
    assert_eq!(
        of("relation-set"),
        [
            [
                "relation-set",
                "-r",
                "3",
                "answer=hi from misbehave/0",
                "app-read=2 keys",
                "app-write=ok"
            ]
            .as_slice(),
            &["relation-set", "-r", "3", "--app", "leader=misbehave/0"],
        ],
        "{calls:?}"
    );
    // A failing handler writes nothing back.
    unit.set_config(r#"{"mode": "error"}"#)?;
    let out = unit.dispatch("hooks/db-relation-changed", &env)?;
    assert_eq!(out.status.code(), Some(1));
    let calls = unit.take_calls()?;
    assert!(calls.iter().all(|c| c[0] != "relation-set"), "{calls:?}");
    Ok(())
}

/// The backup example under Juju-style dispatch against real Pebble (else `cairn pebble
/// run`), started with `PEBBLE_SOCKET` as Juju starts a workload container's: its workload
/// archives a directory and records `example.com/backup/done` notices through that socket;
/// Juju dispatches each as `backup-pebble-custom-notice` and the charm shows the archive.
#[test]
fn backup_workload_notices_reach_the_charm_as_custom_notice_hooks() -> Result<()> {
    let (bin, args): (PathBuf, Vec<&str>) = match crate::backends::reference_pebble() {
        Some(p) => (p, vec![]),
        None => (PathBuf::from(CAIRN), vec!["pebble"]),
    };
    let unit = FakeUnit::new(
        "backup",
        &example("backup"),
        cairn_test_programs::BACKUP_WASM,
    )?;
    let pebble_dir = unit.dir.path().join("pebble-backup");
    let _pebble = crate::backends::pebble_server_with(
        &bin,
        &args,
        &pebble_dir,
        &unit.dir.path().join("pebble.log"),
        true,
    )?;
    let socket = pebble_dir.join(".pebble.socket");
    mount_socket(&unit, "backup", &socket)?;
    let source = unit.dir.path().join("data");
    std::fs::create_dir_all(&source)?;
    std::fs::write(source.join("file.txt"), "precious\n")?;
    let target = unit.dir.path().join("archives");
    unit.set_config(
        &serde_json::json!({
            "source": source, "target-dir": target, "interval": 3600
        })
        .to_string(),
    )?;
    ok(&unit.dispatch("hooks/install", &[])?)?;
    ok(&unit.dispatch("hooks/config-changed", &[])?)?;
    let ready = [("JUJU_WORKLOAD_NAME", "backup")];
    ok(&unit.dispatch("hooks/backup-pebble-ready", &ready)?)?;
    assert_eq!(unit.status()?, "active waiting for the first backup");

    // The workload's first archive is reported by a notice; Juju dispatches it.
    let query = [
        ("types", "custom".to_string()),
        ("keys", "example.com/backup/done".to_string()),
    ];
    let notice = eventually(std::time::Duration::from_secs(20), || {
        let q = query.clone();
        pebble_api(&socket, async move |c| c.notices(&q, None).await)
            .ok()?
            .into_iter()
            .next()
    })
    .must("a backup notice from the workload")?;
    ok(&unit.dispatch(
        "hooks/backup-pebble-custom-notice",
        &[
            ("JUJU_WORKLOAD_NAME", "backup"),
            ("JUJU_NOTICE_ID", &notice.id),
            ("JUJU_NOTICE_TYPE", "custom"),
            ("JUJU_NOTICE_KEY", "example.com/backup/done"),
        ],
    )?)?;
    let status = unit.status()?;
    let path = status
        .strip_prefix("active backup 1 done: ")
        .and_then(|r| r.split(" (").next())
        .must("archive path in the status")?
        .to_string();
    assert!(
        path.starts_with(&target.display().to_string()) && Path::new(&path).is_file(),
        "{status}"
    );
    let last = &unit.state()?["stored"]["last-backup"];
    assert!(last.is_array(), "archive not kept in stored state: {last}");
    Ok(())
}
