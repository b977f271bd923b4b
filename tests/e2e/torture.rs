//! `kill -9` torture: the daemon is killed at a random moment of a random operation (deploy,
//! config, remove, run-action, a layer added through a unit's Pebble socket with or without
//! a replan, a service start, an exec) and restarted, again and again. After every restart:
//! - it starts (a refusal is counted, its state directory kept, and the run goes on with a
//!   fresh directory);
//! - every operation it acknowledged before the kill is still there (deployed apps exist,
//!   removed ones are gone, config values and layers are kept, action runs are known);
//! - no process from before the kill survives (every process carrying the state directory
//!   in its environment right after the kill must be gone soon after the restart);
//! - no unit is stuck: its queue drains, it is not in error, and its actions finish.
//!
//! `CAIRN_TORTURE_KILLS` is the number of kills (default 200, what CI runs; 5000 for a long
//! run), `CAIRN_TORTURE_SEED` replays a run's operations and kill delays (the seed is printed;
//! timing makes outcomes vary). Every violation is printed
//! with the seed, the iteration, the operation and a kept copy of the state directory; the
//! test fails at the end with the count of each violated invariant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::common::*;

/// `cairn run` flags: no periodic events, quick retries of failed events.
const FLAGS: &[&str] = &["--update-status-interval", "1h", "--retry-delay", "100ms"];
/// How long processes from before may take to be stopped after the daemon answers.
const ORPHAN_BOUND: Duration = Duration::from_secs(10);
/// How long a unit's queue may take to drain after a restart.
const DRAIN_BOUND: Duration = Duration::from_secs(20);
/// Violations whose state directory is copied aside (the rest are only printed).
const MAX_KEPT: usize = 10;

/// xorshift64: seeded, tiny, good enough to pick operations and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The charms the test deploys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Charm {
    /// examples/pause: one service that sleeps; config `message`.
    Pause,
    /// tests/programs/misbehave: no service, actions; config `label`.
    Mis,
}

impl Charm {
    fn of(app: &str) -> Charm {
        if app.starts_with('p') {
            Charm::Pause
        } else {
            Charm::Mis
        }
    }

    fn dir(self) -> String {
        match self {
            Charm::Pause => example("pause"),
            Charm::Mis => program("misbehave"),
        }
    }

    fn key(self) -> &'static str {
        match self {
            Charm::Pause => "message",
            Charm::Mis => "label",
        }
    }
}

/// App names the test uses: `p*` run the pause charm, `m*` misbehave.
const NAMES: &[&str] = &["p0", "p1", "p2", "m0", "m1"];

/// What the test knows of an app from acknowledged operations.
#[derive(Clone, Debug, Default)]
struct App {
    /// The config values the app may have (one once known; two while a change was cut).
    config: Vec<String>,
    /// Services of acknowledged layers.
    services: BTreeSet<String>,
    /// Acknowledged action runs.
    actions: Vec<String>,
}

/// The test's model of the daemon's state.
#[derive(Debug, Default)]
struct Model {
    /// Apps whose deploy was acknowledged (and not removed since).
    apps: BTreeMap<String, App>,
    /// Apps whose removal was acknowledged.
    gone: BTreeSet<String>,
    /// Apps whose deploy or removal was cut by the kill: either outcome is right.
    unsure: BTreeSet<String>,
    /// Apps found stuck that could not be removed: left alone (reported once).
    wedged: BTreeSet<String>,
}

/// One operation.
#[derive(Clone, Debug)]
enum Op {
    Deploy {
        app: String,
        value: String,
    },
    Config {
        app: String,
        value: String,
    },
    Remove {
        app: String,
    },
    Action {
        app: String,
        message: String,
    },
    /// `services` layers added at once (each with one service), then maybe a replan.
    AddLayer {
        app: String,
        services: Vec<String>,
        replan: bool,
    },
    Start {
        app: String,
        service: String,
    },
    Exec {
        app: String,
        arg: String,
    },
}

impl Op {
    /// The longest delay before the kill: about how long the operation takes, so that
    /// kills land anywhere in it (and sometimes after it).
    fn max_delay_ms(&self) -> u64 {
        match self {
            Op::Deploy { .. } => 700,
            Op::Remove { .. } => 400,
            Op::Start { .. } => 1300,
            Op::AddLayer { replan: true, .. } => 300,
            _ => 150,
        }
    }
}

/// What came of an operation.
#[derive(Debug, Default)]
struct Outcome {
    acked: bool,
    /// The action id, for an acknowledged action.
    id: Option<String>,
    /// The services of the acknowledged layers, for layers added at once.
    services: Vec<String>,
}

/// One broken invariant.
struct Violation {
    invariant: &'static str,
    detail: String,
}

fn cli(dir: &Path, args: &[&str]) -> Output {
    Command::new(CAIRN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run cairn")
}

fn spawn_cli(dir: &Path, args: &[&str]) -> Child {
    Command::new(CAIRN)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot run cairn")
}

/// Runs `op` to its end (or until the daemon dies) with the CLI.
fn perform(dir: &Path, op: &Op) -> Outcome {
    let unit = |app: &str| format!("{app}/0");
    let ok = |o: Output| o.status.success();
    match op {
        Op::Deploy { app, value } => {
            let charm = Charm::of(app);
            let setting = format!("{}={value}", charm.key());
            let acked = ok(cli(
                dir,
                &["deploy", &charm.dir(), "--name", app, "--config", &setting],
            ));
            Outcome {
                acked,
                ..Outcome::default()
            }
        }
        Op::Config { app, value } => {
            let setting = format!("{}={value}", Charm::of(app).key());
            Outcome {
                acked: ok(cli(dir, &["config", app, &setting])),
                ..Outcome::default()
            }
        }
        Op::Remove { app } => Outcome {
            acked: ok(cli(dir, &["remove", app])),
            ..Outcome::default()
        },
        Op::Action { app, message } => {
            let param = format!("message={message}");
            let out = cli(
                dir,
                &["run-action", &unit(app), "echo", &param, "--format", "json"],
            );
            let id = out
                .status
                .success()
                .then(|| serde_json::from_slice::<Value>(&out.stdout).ok())
                .flatten()
                .and_then(|v| v["id"].as_str().map(str::to_string));
            Outcome {
                acked: id.is_some(),
                id,
                ..Outcome::default()
            }
        }
        Op::AddLayer {
            app,
            services,
            replan,
        } => {
            let startup = if *replan { "enabled" } else { "disabled" };
            let unit = unit(app);
            // Concurrent writers of the container's state, as concurrent API clients are.
            let adds: Vec<_> = services
                .iter()
                .map(|service| {
                    let file = dir.join(format!("layer-{service}.yaml"));
                    std::fs::write(
                        &file,
                        format!(
                            "services:\n  {service}:\n    override: replace\n    command: sleep 10{}\n    startup: {startup}\n",
                            service.trim_start_matches("tsvc").replace('x', "")
                        ),
                    )
                    .expect("cannot write layer");
                    let (dir, unit, service) = (dir.to_path_buf(), unit.clone(), service.clone());
                    std::thread::spawn(move || {
                        let file = file.display().to_string();
                        ok(cli(&dir, &["--container", &unit, "add", &service, &file]))
                            .then_some(service)
                    })
                })
                .collect();
            let acked: Vec<String> = adds
                .into_iter()
                .filter_map(|t| t.join().expect("add thread panicked"))
                .collect();
            if !acked.is_empty() && *replan {
                cli(dir, &["--container", &unit, "replan"]);
            }
            Outcome {
                acked: acked.len() == services.len(),
                id: None,
                services: acked,
            }
        }
        Op::Start { app, service } => Outcome {
            acked: ok(cli(dir, &["--container", &unit(app), "start", service])),
            ..Outcome::default()
        },
        Op::Exec { app, arg } => {
            // Runs until the daemon dies: never acknowledged, only its process matters.
            let mut c = spawn_cli(dir, &["--container", &unit(app), "exec", "sleep", arg]);
            let _ = eventually(Duration::from_secs(30), || c.try_wait().ok().flatten());
            let _ = c.kill();
            let _ = c.wait();
            Outcome::default()
        }
    }
}

/// Picks an operation the model allows.
fn choose(rng: &mut Rng, model: &Model, i: u64) -> Op {
    let present: Vec<String> = model.apps.keys().cloned().collect();
    let absent: Vec<&str> = NAMES
        .iter()
        .copied()
        .filter(|n| {
            !model.apps.contains_key(*n) && !model.unsure.contains(*n) && !model.wedged.contains(*n)
        })
        .collect();
    let mis: Vec<String> = present
        .iter()
        .filter(|a| Charm::of(a) == Charm::Mis)
        .cloned()
        .collect();
    let with_services: Vec<(String, String)> = model
        .apps
        .iter()
        .flat_map(|(a, m)| m.services.iter().map(move |s| (a.clone(), s.clone())))
        .collect();
    loop {
        let op = match rng.below(100) {
            0..15 if !absent.is_empty() => Op::Deploy {
                app: rng.pick(&absent).to_string(),
                value: format!("v{i}"),
            },
            15..25 if !present.is_empty() => Op::Remove {
                app: rng.pick(&present).clone(),
            },
            25..45 if !present.is_empty() => Op::Config {
                app: rng.pick(&present).clone(),
                value: format!("v{i}"),
            },
            45..60 if !mis.is_empty() => Op::Action {
                app: rng.pick(&mis).clone(),
                message: format!("a{i}"),
            },
            60..85 if !present.is_empty() => Op::AddLayer {
                app: rng.pick(&present).clone(),
                services: (0..=rng.below(3)).map(|k| format!("tsvc{i}x{k}")).collect(),
                replan: rng.below(2) == 0,
            },
            85..95 if !with_services.is_empty() => {
                let (app, service) = rng.pick(&with_services).clone();
                Op::Start { app, service }
            }
            95..100 if !present.is_empty() => Op::Exec {
                app: rng.pick(&present).clone(),
                arg: format!("20{i}"),
            },
            _ => continue,
        };
        return op;
    }
}

/// A process: pid, start time (so that a reused pid is not mistaken for it) and command.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    start: u64,
    cmd: String,
}

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; fields after the command (which may hold spaces) start at field 3.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Live processes carrying `dir` in their environment.
fn procs(dir: &Path) -> Vec<Proc> {
    processes_with(&dir.display().to_string())
        .into_iter()
        .filter_map(|(pid, _)| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            Some(Proc {
                pid,
                start: start_time(pid)?,
                cmd: cmd.trim().to_string(),
            })
        })
        .collect()
}

fn alive(p: &Proc) -> bool {
    start_time(p.pid) == Some(p.start) && procs_is_not_zombie(p.pid)
}

fn procs_is_not_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

fn kill9(p: &Proc) {
    if alive(p) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid), Signal::SIGKILL);
    }
}

/// Why the daemon refused to start: its fatal error and any panic (else the log's last
/// lines).
fn reason(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut why: Vec<String> = lines
        .iter()
        .filter(|l| l.starts_with("error:"))
        .map(|l| l.to_string())
        .collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains("panicked") {
            let what = lines.get(i + 1).unwrap_or(&"");
            why.push(format!("(while exiting: {} {what})", l.trim()));
        }
    }
    if why.is_empty() {
        tail(text, 5)
    } else {
        why.join(" ")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The apps of a status report with their unit's entry.
fn status_units(d: &Daemon) -> Result<BTreeMap<String, Value>> {
    let st = d.status()?;
    let mut out = BTreeMap::new();
    for app in st["apps"].as_array().into_iter().flatten() {
        let name = app["name"].as_str().unwrap_or_default().to_string();
        let unit = app["units"][0].clone();
        out.insert(name, unit);
    }
    Ok(out)
}

/// The app's current value of its charm's config key, as `cairn config` prints it.
fn config_value(d: &Daemon, app: &str) -> Option<String> {
    let out = d.cli(&["config", app]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = format!("{}=", Charm::of(app).key());
    text.lines()
        .find_map(|l| l.strip_prefix(&key).map(str::to_string))
}

/// Applies an operation's outcome to the model.
fn record(model: &mut Model, op: &Op, out: &Outcome) {
    match op {
        Op::Deploy { app, value } => {
            if out.acked {
                model.gone.remove(app);
                model.apps.insert(
                    app.clone(),
                    App {
                        config: vec![value.clone()],
                        ..App::default()
                    },
                );
            } else {
                model.gone.remove(app);
                model.unsure.insert(app.clone());
            }
        }
        Op::Remove { app } => {
            model.apps.remove(app);
            if out.acked {
                model.gone.insert(app.clone());
            } else {
                model.unsure.insert(app.clone());
            }
        }
        Op::Config { app, value } => {
            if let Some(a) = model.apps.get_mut(app) {
                if out.acked {
                    a.config = vec![value.clone()];
                } else {
                    a.config.push(value.clone());
                }
            }
        }
        Op::Action { app, .. } => {
            if let (Some(a), Some(id)) = (model.apps.get_mut(app), &out.id) {
                a.actions.push(id.clone());
            }
        }
        Op::AddLayer { app, .. } => {
            if let Some(a) = model.apps.get_mut(app) {
                a.services.extend(out.services.iter().cloned());
            }
        }
        Op::Start { .. } | Op::Exec { .. } => {}
    }
}

/// Checks the invariants after a restart and brings the model back in line with what is
/// there, so that the run can go on. Returns the violations and the apps found stuck (for
/// [`unstick`], once the state directory has been copied).
fn check(d: &Daemon, model: &mut Model, orphans: &[Proc]) -> Result<(Vec<Violation>, Vec<String>)> {
    let mut v = Vec::new();
    let mut stuck = Vec::new();
    let mut bad = |invariant: &'static str, detail: String| {
        v.push(Violation { invariant, detail });
    };
    let units = status_units(d)?;

    // Acknowledged deploys and removals.
    for app in model.apps.keys().cloned().collect::<Vec<_>>() {
        if !units.contains_key(&app) {
            bad(
                "acknowledged deploy lost",
                format!("{app} is not in the status"),
            );
            model.apps.remove(&app);
        }
    }
    for app in model.gone.clone() {
        if units.contains_key(&app) {
            bad(
                "acknowledged remove undone",
                format!("{app} is back: {}", units[&app]),
            );
            model.gone.remove(&app);
            model.unsure.insert(app);
        }
    }
    // Cut deploys and removals: whatever is there is right; adopt it.
    for app in std::mem::take(&mut model.unsure) {
        if units.contains_key(&app) {
            let config = config_value(d, &app).into_iter().collect();
            model.apps.insert(
                app,
                App {
                    config,
                    ..App::default()
                },
            );
        } else {
            model.gone.insert(app);
        }
    }

    // Acknowledged config, layers and actions.
    for (app, m) in model.apps.iter_mut() {
        let now = config_value(d, app);
        match &now {
            Some(value) if m.config.is_empty() || m.config.contains(value) => {}
            _ => bad(
                "acknowledged config lost",
                format!("{app}: {:?}, expected one of {:?}", now, m.config),
            ),
        }
        m.config = now.into_iter().collect();
        if !m.services.is_empty() {
            let plan = d
                .cli(&["--container", &format!("{app}/0"), "plan"])
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            let lost: Vec<&String> = m
                .services
                .iter()
                .filter(|s| !plan.contains(&format!(" {s}:")))
                .collect();
            if !lost.is_empty() {
                bad(
                    "acknowledged layer lost",
                    format!("{app}: services {lost:?} not in the plan:\n{plan}"),
                );
                m.services.retain(|s| plan.contains(&format!(" {s}:")));
            }
        }
        for id in m.actions.clone() {
            if !d.cli(&["show-action", &id])?.status.success() {
                bad(
                    "acknowledged action lost",
                    format!("{app}: action {id} unknown"),
                );
                m.actions.retain(|a| *a != id);
            }
        }
    }

    // No process from before survives (the daemon stops them when it comes back).
    let survivors = eventually(ORPHAN_BOUND, || {
        let left: Vec<&Proc> = orphans.iter().filter(|p| alive(p)).collect();
        left.is_empty().then_some(())
    });
    if survivors.is_none() {
        let left: Vec<&Proc> = orphans.iter().filter(|p| alive(p)).collect();
        bad(
            "process from before survived",
            format!(
                "{} of {} still running after {ORPHAN_BOUND:?}: {left:?}",
                left.len(),
                orphans.len()
            ),
        );
        for p in left {
            kill9(p);
        }
    }

    // No unit stuck: every queue drains, no unit in error, every action finishes. A stuck
    // app is reported once, then removed (or left alone if that fails too).
    let watched: Vec<String> = units
        .keys()
        .filter(|a| !model.wedged.contains(*a))
        .cloned()
        .collect();
    for app in &watched {
        let unit = format!("{app}/0");
        let mut last = Value::Null;
        let drained = eventually(DRAIN_BOUND, || {
            last = d.unit(&unit).ok()?;
            (last["queued"] == 0 && last["status"]["status"] != "error").then_some(())
        });
        if drained.is_none() {
            let events = d.events(&unit).map(|e| event_lines(&e)).unwrap_or_default();
            bad(
                "unit stuck",
                format!(
                    "{unit} after {DRAIN_BOUND:?}: {last}; last events {:?}",
                    &events[events.len().saturating_sub(5)..]
                ),
            );
            stuck.push(app.clone());
        }
    }
    for (app, m) in model.apps.iter_mut() {
        for id in &m.actions {
            let mut last = String::new();
            let done = eventually(DRAIN_BOUND, || {
                let out = d.cli(&["show-action", id, "--format", "json"]).ok()?;
                let v: Value = serde_json::from_slice(&out.stdout).ok()?;
                last = v["status"].to_string();
                (v["status"] == "completed" || v["status"] == "failed").then_some(())
            });
            if done.is_none() {
                bad(
                    "unit stuck",
                    format!("{app}: action {id} still {last} after {DRAIN_BOUND:?}"),
                );
            }
        }
        // Finished runs need no more checking than their existence; keep the list short.
        if m.actions.len() > 4 {
            m.actions.drain(..m.actions.len() - 4);
        }
    }
    Ok((v, stuck))
}

/// Removes apps found stuck so that the run goes on; one that cannot be removed either is
/// left alone (and no longer checked).
fn unstick(d: &Daemon, model: &mut Model, stuck: &[String]) {
    for app in stuck {
        model.apps.remove(app);
        let mut rm = spawn_cli(&d.dir, &["remove", app]);
        let removed = eventually(Duration::from_secs(15), || rm.try_wait().ok().flatten());
        let _ = rm.kill();
        let _ = rm.wait();
        if removed.is_some_and(|s| s.success()) {
            model.gone.insert(app.clone());
        } else {
            model.wedged.insert(app.clone());
        }
    }
}

/// Violations by invariant, the first ones in full, and how many directories were copied.
#[derive(Default)]
struct Tally {
    counts: BTreeMap<&'static str, u64>,
    first: Vec<String>,
    kept: usize,
}

impl Tally {
    fn add(&mut self, invariant: &'static str, detail: &str, what: &str, dir: &str) {
        *self.counts.entry(invariant).or_default() += 1;
        let line = format!("torture: VIOLATION {invariant}: {detail} [{what}; state dir {dir}]");
        eprintln!("{line}");
        if self.first.len() < 20 {
            self.first.push(line);
        }
    }
}

/// How many files under `dir` are writers' temporary files (`.<name>.tmp<pid>`).
fn temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => temp_files(&e.path()),
            _ => usize::from(e.file_name().to_string_lossy().contains(".tmp")),
        })
        .sum()
}

/// A copy of the state directory for a violation (sockets and all), or why there is none.
fn keep_copy(dir: &Path, seed: u64, i: u64, kept: &mut usize) -> String {
    if *kept >= MAX_KEPT {
        return format!(
            "{} (not copied: {MAX_KEPT} copies kept already)",
            dir.display()
        );
    }
    *kept += 1;
    let to = PathBuf::from(format!("{}-seed{seed}-iter{i}", dir.display()));
    let _ = std::fs::remove_dir_all(&to);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir)
        .arg(&to)
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if copied {
        to.display().to_string()
    } else {
        format!("{} (copy failed)", dir.display())
    }
}

fn deploy_initial(d: &Daemon, model: &mut Model) -> Result<()> {
    for app in ["p0", "m0"] {
        let op = Op::Deploy {
            app: app.to_string(),
            value: "v0".to_string(),
        };
        let out = perform(&d.dir, &op);
        anyhow::ensure!(out.acked, "cannot deploy {app}: {}", d.log());
        record(model, &op, &out);
    }
    Ok(())
}

#[test]
fn kill_9_at_random_moments_loses_nothing_acknowledged_and_leaves_no_process() -> Result<()> {
    let kills: u64 = std::env::var("CAIRN_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("CAIRN_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    eprintln!("torture: seed {seed} (CAIRN_TORTURE_SEED={seed} replays it), {kills} kills");
    // CAIRN_TORTURE_VERBOSE=1 prints every iteration.
    let verbose = std::env::var_os("CAIRN_TORTURE_VERBOSE").is_some_and(|v| !v.is_empty());
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut d = Daemon::start("torture", FLAGS)?;
    let mut model = Model::default();
    deploy_initial(&d, &mut model)?;

    let mut tally = Tally::default();
    let mut acked_ops = 0;
    for i in 1..=kills {
        let op = choose(&mut rng, &model, i);
        // Half the kills land in the first 50 ms (where a request is being handled: the
        // CLI takes a few ms to connect), half anywhere in the operation or after it.
        let max = if rng.below(2) == 0 {
            50
        } else {
            op.max_delay_ms()
        };
        let delay = Duration::from_millis(rng.below(max + 1));
        let dir = d.dir.to_path_buf();
        let worker = {
            let op = op.clone();
            std::thread::spawn(move || perform(&dir, &op))
        };
        std::thread::sleep(delay);
        d.stop_with(Signal::SIGKILL);
        let out = worker.join().expect("operation thread panicked");
        acked_ops += u64::from(out.acked);
        record(&mut model, &op, &out);
        // The daemon is dead: every process carrying its directory is from before.
        let orphans = procs(&d.dir);

        let what = format!(
            "seed {seed} iteration {i} op {op:?} (killed after {delay:?}, acknowledged: {})",
            out.acked
        );
        if let Err(e) = d.spawn() {
            // This directory is bricked: keep it, stop its processes, go on with a new one.
            for p in &orphans {
                kill9(p);
            }
            let to = PathBuf::from(format!("{}-refused-seed{seed}-iter{i}", d.dir.display()));
            let _ = std::fs::rename(&d.dir, &to);
            tally.add(
                "daemon refused to start",
                &reason(&format!("{e:#}")),
                &what,
                &to.display().to_string(),
            );
            drop(d);
            d = Daemon::start("torture", FLAGS)?;
            model = Model::default();
            deploy_initial(&d, &mut model)?;
            continue;
        }
        if verbose {
            eprintln!(
                "torture: {what}: {} processes from before, apps {:?}",
                orphans.len(),
                model.apps.keys().collect::<Vec<_>>()
            );
        }
        let (violations, stuck) = check(&d, &mut model, &orphans).unwrap_or_else(|e| {
            let v = Violation {
                invariant: "daemon unusable after restart",
                detail: tail(&format!("{e:#}"), 15),
            };
            (vec![v], Vec::new())
        });
        if !violations.is_empty() {
            let kept = keep_copy(&d.dir, seed, i, &mut tally.kept);
            for v in violations {
                tally.add(v.invariant, &v.detail, &what, &kept);
            }
        }
        unstick(&d, &mut model, &stuck);
        if i % 20 == 0 {
            eprintln!(
                "torture: {i}/{kills} kills in {:.0?}, {} violations",
                started.elapsed(),
                tally.counts.values().sum::<u64>()
            );
        }
    }
    let elapsed = started.elapsed();
    let mut summary = format!(
        "torture: seed {seed}: {kills} kills ({acked_ops} operations acknowledged before their kill) in {elapsed:.1?}\n"
    );
    let _ = writeln!(
        summary,
        "  (not a violation: {} temporary files left in the state directory)",
        temp_files(&d.dir)
    );
    for (k, n) in &tally.counts {
        let _ = writeln!(summary, "  {n:5} × {k}");
    }
    eprintln!("{summary}");
    if !tally.counts.is_empty() {
        // Keep the last directory too.
        let to = PathBuf::from(format!("{}-final-seed{seed}", d.dir.display()));
        let _ = Command::new("cp").arg("-a").arg(&d.dir).arg(&to).status();
        anyhow::bail!(
            "{summary}first violations:\n{}\nlast state dir: {}",
            tally.first.join("\n"),
            to.display()
        );
    }
    Ok(())
}
