//! The container backend seam: the `container-probe` guest calls every WIT `container` and
//! `process` call, and the same event is dispatched with container `work` served by each
//! backend in turn: (a) the embedded supervisor, (b) the Pebble API client on real Pebble
//! (`pebble run --hold --create-dirs`, as Juju starts it in a workload container), (c) the
//! client on `cairn pebble run`, (d) a declared container of `cairn-testing` (the custom
//! backend), for every step that does not need a process to really run. The transcripts
//! must agree, once what must differ (change and notice ids, times, the scratch directory)
//! is normalised.
//!
//! Real Pebble is `CAIRN_REFERENCE_PEBBLE`, else `../shared/tools/pebble` beside the
//! repository (where CI has it); without it, the test says so and compares (a) with (c).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cairn_runtime::{
    ConfigValue, ContainerBackend, Event, Outcome, Runtime, RuntimeConfig, UnitContext,
};
use cairn_supervisor::{Supervisor, SupervisorOptions};
use serde_json::Value;

use crate::common::{CAIRN, ChildGuard, Must, TempDir, eventually};

/// Real Pebble, if this machine has it: `CAIRN_REFERENCE_PEBBLE`, else the shared tools'.
pub fn reference_pebble() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CAIRN_REFERENCE_PEBBLE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/tools/pebble");
    shared.is_file().then_some(shared)
}

/// A Pebble server (`bin` run with `args`) on `dir`, started as Juju starts a workload
/// container's: `--hold --create-dirs`, `PEBBLE` set; killed with its services on drop.
pub fn pebble_server(bin: &Path, args: &[&str], dir: &Path, log: &Path) -> Result<ChildGuard> {
    pebble_server_with(bin, args, dir, log, false)
}

/// [`pebble_server`], with `PEBBLE_SOCKET` set to its socket when `socket_env` (as Juju
/// sets it in a workload container, so that the services it starts inherit it).
pub fn pebble_server_with(
    bin: &Path,
    args: &[&str],
    dir: &Path,
    log: &Path,
    socket_env: bool,
) -> Result<ChildGuard> {
    let mut cmd = Command::new(bin);
    cmd.env_remove("PEBBLE_SOCKET");
    if socket_env {
        cmd.env("PEBBLE_SOCKET", dir.join(".pebble.socket"));
    }
    let child = cmd
        .args(args)
        .args(["run", "--hold", "--create-dirs"])
        .env("PEBBLE", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let guard = ChildGuard {
        child,
        needle: dir.display().to_string(),
    };
    eventually(Duration::from_secs(20), || {
        dir.join(".pebble.socket").exists().then_some(())
    })
    .must("pebble socket")?;
    Ok(guard)
}

/// Records the custom notice the probe looks for, through the API.
async fn notify_socket(socket: &Path) -> Result<()> {
    let data = BTreeMap::from([("k".to_string(), "v".to_string())]);
    cairn_api::Client::unix(socket)
        .notify("probe.example/one", &data, None)
        .await?;
    Ok(())
}

/// Dispatches `config-changed` to the probe with container `work` served by `backend` and
/// files under `base`; returns its transcript.
async fn probe(
    rt: &Runtime,
    charm: &cairn_runtime::Charm,
    backend: ContainerBackend,
    base: &Path,
) -> Result<Vec<(String, Value)>> {
    let ctx = UnitContext {
        containers: BTreeMap::from([("work".to_string(), backend)]),
        config: BTreeMap::from([(
            "base".to_string(),
            ConfigValue::String(base.display().to_string()),
        )]),
        leader: true,
        ..UnitContext::new("probe/0", "probe", "m")
    };
    let d = rt.dispatch(charm, ctx, &Event::ConfigChanged).await;
    if d.outcome != Ok(Outcome::Handled) {
        bail!("probe failed: {:?}; logs: {:?}", d.outcome, d.logs);
    }
    let raw = d.ctx.stored.get("transcript").must("transcript")?;
    let steps: Vec<(String, Value)> = serde_json::from_slice(raw)?;
    Ok(steps)
}

/// The probe's steps a declared container (`cairn-testing`) cannot answer as the embedded
/// supervisor does, because they depend on a process really running: a service whose
/// program exits at once (and the statuses that follow), and commands' own output and
/// signals. Every other step must agree.
const DECLARED_RUNS_NOTHING: &[&str] = &[
    "start bad",
    "get-services after bad",
    "get-services end",
    "exec echo",
    "exec split",
    "exec combined",
    "exec environment",
    "exec service context",
    "exec timeout",
    "exec cat streamed",
    "exec read stdout and stderr",
    "exec wait-output after a read",
    "exec send-signal TERM",
    "exec send-signal SIGKILL",
];

/// A temporary file's random part (`f.txt.3684936040~`, as Go's `os.CreateTemp` names it)
/// as `f.txt.<n>~`.
fn temp_names(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('.') {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with('~') {
            out.push_str("<n>");
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

/// What must differ between two runs made the same: the scratch directory, change and
/// notice ids, times (a task log line's too), temporary files' random names.
pub fn normalise(v: &Value, base: &str) -> Value {
    match v {
        Value::String(s) => {
            let rfc3339 = |t: &str| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .is_ok()
            };
            if rfc3339(s) {
                Value::String("<time>".into())
            } else if let Some((t, rest)) = s.split_once(' ')
                && rfc3339(t)
            {
                // A task log line: `<time> ERROR …`.
                Value::String(format!(
                    "<time> {}",
                    temp_names(&rest.replace(base, "$BASE"))
                ))
            } else {
                Value::String(temp_names(&s.replace(base, "$BASE")))
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| normalise(v, base)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("change-id" | "id", Value::String(_)) => Value::String("<id>".into()),
                        _ => normalise(v, base),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The steps where `got` differs from `want`, each with both results.
fn differences(want: &[(String, Value)], got: &[(String, Value)]) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for i in 0..want.len().max(got.len()) {
        let (a, b) = (want.get(i), got.get(i));
        if a != b {
            let name = a.or(b).map(|s| s.0.clone()).unwrap_or_default();
            let val = |s: Option<&(String, Value)>| s.map(|s| s.1.clone()).unwrap_or(Value::Null);
            out.push((name, val(a), val(b)));
        }
    }
    out
}

/// A normalised transcript's result for `step`.
fn step<'a>(t: &'a [(String, Value)], step: &str) -> &'a Value {
    &t.iter()
        .find(|s| s.0 == step)
        .unwrap_or_else(|| panic!("no step {step}"))
        .1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_container_call_gives_the_same_results_on_every_backend() -> Result<()> {
    let dir = TempDir::new("e2e-backends");
    let rt = Runtime::new(RuntimeConfig {
        max_instances: 2,
        ..RuntimeConfig::default()
    })?;
    let wasm = cairn_test_programs::read(cairn_test_programs::CONTAINER_PROBE_WASM);
    let charm = rt.load(&wasm)?;

    // (a) The embedded supervisor.
    let embedded = Supervisor::open(SupervisorOptions::new(dir.join("embedded")))?;
    embedded.notify(
        Some(nix::unistd::getuid().as_raw()),
        "probe.example/one",
        BTreeMap::from([("k".to_string(), "v".to_string())]),
        None,
    )?;
    let base = dir.join("files-embedded");
    let run = probe(&rt, &charm, embedded.clone().into(), &base).await;
    embedded.stop_all().await;
    let want: Vec<(String, Value)> = run?
        .into_iter()
        .map(|(s, v)| (s, normalise(&v, &base.display().to_string())))
        .collect();

    // (d) A declared container (`cairn-testing`, served through the custom backend): what
    // does not depend on a process really running must agree with the embedded supervisor.
    let base_declared = dir.join("files-declared");
    let declared = cairn_testing::Declared::new(
        cairn_testing::Container::new("work")
            .dir(&dir.display().to_string())
            .notice("probe.example/one", &[("k", "v")], 1)
            .exec(&["true"], cairn_testing::ExecOutput::default()),
    );
    let got: Vec<(String, Value)> = probe(&rt, &charm, declared.backend(), &base_declared)
        .await
        .context("probe on a declared container")?
        .into_iter()
        .map(|(s, v)| (s, normalise(&v, &base_declared.display().to_string())))
        .collect();
    let declared_differs: Vec<String> = differences(&want, &got)
        .into_iter()
        .filter(|(step, _, _)| !DECLARED_RUNS_NOTHING.contains(&step.as_str()))
        .map(|(step, a, b)| format!("declared: {step}:\n  embedded: {a}\n  declared: {b}"))
        .collect();
    println!(
        "declared: {} calls compared ({} of them process-dependent, not compared)",
        got.len(),
        DECLARED_RUNS_NOTHING.len()
    );

    // The probe did what it says, so agreeing is not agreeing on failures.
    assert_eq!(step(&want, "replan"), &serde_json::json!({"ok": null}));
    assert_eq!(
        step(&want, "exec echo")["ok"]["stdout"],
        serde_json::json!("hi\n")
    );
    assert_eq!(
        step(&want, "pull"),
        &serde_json::json!({"ok": "hello again\n"})
    );
    assert_eq!(
        step(&want, "exec cat streamed")["ok"]["stdout"],
        serde_json::json!("through stdin\n")
    );
    assert_eq!(
        step(&want, "get-notice")["ok"]["last-data"],
        serde_json::json!({"k": "v"})
    );
    assert!(
        step(&want, "start bad")["err"]["change"].is_object(),
        "{}",
        step(&want, "start bad")
    );

    // (b) real Pebble and (c) `cairn pebble run`, through the client backend.
    let mut servers: Vec<(&str, PathBuf, Vec<&str>)> =
        vec![("cairn pebble run", CAIRN.into(), vec!["pebble"])];
    match reference_pebble() {
        Some(p) => servers.insert(0, ("real pebble", p, vec![])),
        None => println!(
            "skipped the real-Pebble backend: set CAIRN_REFERENCE_PEBBLE to Pebble v1.32.1 \
             (../shared/tools/pebble is not there)"
        ),
    }
    let mut failures = declared_differs;
    for (i, (name, bin, args)) in servers.iter().enumerate() {
        let pdir = dir.join(format!("pebble-{i}"));
        let _server = pebble_server(bin, args, &pdir, &dir.join(format!("pebble-{i}.log")))?;
        let socket = pdir.join(".pebble.socket");
        notify_socket(&socket).await?;
        let base = dir.join(format!("files-{i}"));
        let got: Vec<(String, Value)> =
            probe(&rt, &charm, ContainerBackend::pebble_socket(&socket), &base)
                .await
                .with_context(|| format!("probe on {name}"))?
                .into_iter()
                .map(|(s, v)| (s, normalise(&v, &base.display().to_string())))
                .collect();
        println!("{name}: {} calls compared", got.len());
        for (step, a, b) in differences(&want, &got) {
            failures.push(format!("{name}: {step}:\n  embedded: {a}\n  {name}: {b}"));
        }
    }
    // A socket nothing listens on: the container cannot connect, and every call says so.
    let gone = dir.join("nothing.socket");
    let down = probe(
        &rt,
        &charm,
        ContainerBackend::pebble_socket(&gone),
        &dir.join("files-down"),
    )
    .await?;
    assert_eq!(step(&down, "can-connect"), &serde_json::json!(false));
    let refused = "cannot communicate with server: ";
    for call in [
        "add-layer",
        "replan",
        "get-services all",
        "pull",
        "exec echo",
    ] {
        let err = step(&down, call)["err"]["connection"]
            .as_str()
            .unwrap_or("");
        assert!(err.starts_with(refused), "{call}: {}", step(&down, call));
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
