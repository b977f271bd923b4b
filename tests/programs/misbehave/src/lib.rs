//! `misbehave`: a test guest for the host's sandbox tests, not a real charm.
//!
//! On `config-changed` (and `update-status`) it acts on the `mode` option:
//!
//! | mode | what it does |
//! |---|---|
//! | `ok` | adds one to the stored counter `handled` and sets `active("handled N")`; on `update-status` it does nothing more than read `mode` |
//! | `trap` | executes a wasm `unreachable` |
//! | `panic` | panics with `misbehave: panic requested` |
//! | `error` | fails the event with `misbehave: error requested` |
//! | `loop` | spins forever without host calls |
//! | `sleep` | sleeps 60 s with `std::thread::sleep` (a poll on a WASI monotonic-clock pollable) |
//! | `stdin` | reads stdin until something comes (a blocking WASI read, again on end of input) |
//! | `alloc` | allocates and touches memory without bound |
//! | `defer` | defers the event the first time, then behaves as `ok` |
//! | `log-flood` | logs 1 GiB in 64 KiB lines (with a newline and an escape in each); `active("log-flood done")` |
//! | `log-lines` | logs 1,000,000 empty lines, prints 512 Ki newlines to stdout and a line of 256 Ki control characters to stderr; `active("log-lines done")` |
//! | `state-flood` | sets 104 stored-state values of 1 MiB, then `active("state-flood done")` |
//! | `status-flood` | sets a 20 MiB status message |
//! | `escape` | sets a status and logs a line with newlines, a forged status row and an OSC title sequence |
//! | `layer-flood` | tries a 2 MiB layer, 400 services, a check every 1 ms and 10,000 layers in container `work`; `active(<what each gave>)` |
//! | `exec-flood` | starts `sleep 30` in `work` up to 100 times at once; `active("exec-flood: started N; <first refusal>")` |
//! | `pull-flood` | makes a 1 GiB sparse file in `work` and pulls it; `active("pull-flood: <what pull gave>")` |
//! | `defer-all` | defers every event (config-changed, update-status and custom notices) |
//! | `pebble` | adds a `probe` service to container `work`, replans, checks the typed plan, sends the probe SIGHUP and a signal to a missing service; `active("pebble ok")` or `blocked(<what differed>)` |
//!
//! Every failing mode first adds one to the counter, so tests can check that a failed
//! event's stored-state change is discarded. The counter is kept as decimal text.
//! `install` sets `maintenance("installing")`; `start` sets `active("handled N")` with the
//! current count. Other events do nothing (no host calls at all).

use cairn_sdk::prelude::*;

/// Stored-state key of the counter of handled events.
const HANDLED: &str = "handled";
/// Stored-state key marking that `defer` mode already deferred once.
const DEFERRED_ONCE: &str = "deferred-once";

/// The charm; it keeps nothing between events except its stored counter.
#[derive(Default)]
pub struct Misbehave;

/// The counter of handled events.
fn handled(ctx: &Context) -> u64 {
    ctx.state()
        .get(HANDLED)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Adds one to the counter (staged until the event succeeds) and returns the new count.
fn bump(ctx: &Context) -> u64 {
    let n = handled(ctx) + 1;
    ctx.state().set(HANDLED, n.to_string());
    n
}

/// Executes a wasm `unreachable` instruction.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Spins forever without calling the host.
fn spin() -> ! {
    let mut i: u64 = 0;
    loop {
        i = core::hint::black_box(i.wrapping_add(1));
    }
}

/// Allocates 1 MiB blocks filled with data, keeping all of them, until memory runs out.
fn hog() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let fill = core::hint::black_box(0xa5_u8).wrapping_add(blocks.len() as u8);
        blocks.push(vec![fill; 1 << 20]);
        core::hint::black_box(&blocks);
    }
}

/// Exercises the container API end to end: layer, replan, typed plan, signals.
fn probe_pebble(ctx: &mut Context) -> Result<()> {
    let work = ctx.container("work")?;
    // The probe says when its trap is set (a file), so the signal never beats the trap
    // on a busy machine.
    let made = work.exec(&["mktemp", "-d"])?.wait_output()?;
    let ready = format!("{}/ready", String::from_utf8_lossy(&made.stdout).trim());
    let layer = Layer::new().service(
        "probe",
        Service::new()
            .command("sh -c 'trap \"echo got-hup\" HUP; touch \"$PROBE_READY\"; echo probe-ready; while true; do sleep 0.05; done'")
            .enabled()
            .env("PROBE", "1")
            .env("PROBE_READY", ready.as_str())
            .requires("helper")
            .after("helper")
            .kill_delay("1s")
            .backoff_factor(1.5)
            .on_failure(ServiceAction::Ignore),
    ).service("helper", Service::new().command("sleep 1000").enabled());
    work.add_layer("probe", &layer, true)?;
    work.replan()?;
    let plan = work.get_plan()?;
    let probe = plan
        .services
        .get("probe")
        .ok_or_else(|| Error::msg("typed plan has no probe service"))?;
    let want = (
        Some(Startup::Enabled),
        Some("1s".to_string()),
        Some(1.5),
        Some(ServiceAction::Ignore),
        vec!["helper".to_string()],
        Some(&"1".to_string()),
    );
    let got = (
        probe.startup,
        probe.kill_delay.clone(),
        probe.backoff_factor,
        probe.on_failure,
        probe.requires.clone(),
        probe.environment.get("PROBE"),
    );
    if got != want {
        return Err(Error::msg(format!("typed plan differs: {got:?}")));
    }
    if !work.get_plan_yaml()?.contains("kill-delay") {
        return Err(Error::msg("plan YAML lacks kill-delay"));
    }
    let info = work.get_service("probe")?;
    if !info.is_running() || info.startup != cairn_sdk::ServiceStartup::Enabled {
        return Err(Error::msg(format!("probe not running: {info:?}")));
    }
    probe_files(&work)?;
    probe_exec(&work)?;
    probe_paths(&work)?;
    let mut waited = 0;
    while !work.exists(&ready)? {
        if waited == 200 {
            return Err(Error::msg("the probe never set its trap"));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        waited += 1;
    }
    work.send_signal("HUP", &["probe"])?;
    match work.send_signal("SIGHUP", &["absent"]) {
        Err(cairn_sdk::Error::Api(e))
            if e.code == 500
                && e.message == "cannot send signal to \"absent\": service is not running" => {}
        other => {
            return Err(Error::msg(format!(
                "signal to a missing service gave {other:?}"
            )));
        }
    }
    Ok(())
}

/// Exercises exec: output, stdin, split stderr, a non-zero exit.
fn probe_exec(work: &Container) -> Result<()> {
    let p = work.exec(&["cat"])?;
    p.write_stdin("through stdin")?;
    let out = p.wait_output()?;
    if out.stdout != b"through stdin" {
        return Err(Error::msg(format!("cat gave {out:?}")));
    }
    // Stderr is kept apart by default, and goes into stdout with `combine_stderr`.
    let opts = cairn_sdk::ExecOptions {
        environment: vec![("PROBE_X".into(), "42".into())],
        ..Default::default()
    };
    let probe = ["sh", "-c", "echo $PROBE_X; echo err >&2"];
    let out = work.exec_with(&probe, &opts)?.wait_output()?;
    if (out.stdout.as_slice(), out.stderr.as_slice()) != (&b"42\n"[..], &b"err\n"[..]) {
        return Err(Error::msg(format!("split exec gave {out:?}")));
    }
    let combined = cairn_sdk::ExecOptions {
        combine_stderr: true,
        ..opts
    };
    let out = work.exec_with(&probe, &combined)?.wait_output()?;
    if (out.stdout.as_slice(), out.stderr.as_slice()) != (&b"42\nerr\n"[..], &b""[..]) {
        return Err(Error::msg(format!("combined exec gave {out:?}")));
    }
    match work.exec(&["sh", "-c", "exit 3"])?.wait_output() {
        Err(cairn_sdk::Error::Exec(e)) if e.exit_code == 3 => {}
        other => return Err(Error::msg(format!("exit 3 gave {other:?}"))),
    }
    // Streaming reads: stdout through io::Read in small chunks, stderr apart, then wait.
    let p = work.exec_with(
        &["sh", "-c", "seq 1 2000; echo done >&2"],
        &cairn_sdk::ExecOptions::default(),
    )?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut p.stdout(), &mut text)?;
    let want: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    if text != want {
        return Err(Error::msg(format!(
            "streamed stdout gave {} bytes",
            text.len()
        )));
    }
    let mut err = Vec::new();
    while let Some(chunk) = p.read_stderr(3)? {
        err.extend(chunk);
    }
    if err != b"done\n" {
        return Err(Error::msg(format!("streamed stderr gave {err:?}")));
    }
    p.wait()?;
    match work.exec(&["sh", "-c", "exit 4"])?.wait() {
        Err(cairn_sdk::Error::Exec(e)) if e.exit_code == 4 => Ok(()),
        other => Err(Error::msg(format!("wait on exit 4 gave {other:?}"))),
    }
}

/// Exercises the recursive copies: a tree pushed, pulled back, copied within the container.
fn probe_paths(work: &Container) -> Result<()> {
    let base = "/tmp/cairn-misbehave-probe-paths";
    work.remove_path(base, true)?;
    let tree = cairn_sdk::FileTree::new()
        .file("app/a.conf", "a")
        .file("app/conf.d/b.conf", "bb")
        .dir("app/empty");
    work.push_path(&tree, &format!("{base}/src"))?;
    let pulled = work.pull_path(&format!("{base}/src/app"))?;
    if pulled.get("app/conf.d/b.conf") != Some(&b"bb"[..]) || pulled.len() != 5 {
        return Err(Error::msg(format!("pull_path gave {pulled:?}")));
    }
    work.copy_path(
        &format!("{base}/src/app/*.conf"),
        work,
        &format!("{base}/copy"),
    )?;
    if work.pull(&format!("{base}/copy/a.conf"))? != b"a" {
        return Err(Error::msg("copy_path did not copy a.conf"));
    }
    if work
        .copy_path(&format!("{base}/src"), work, &format!("{base}/src/inner"))
        .is_ok()
    {
        return Err(Error::msg("copy_path into its own source was not refused"));
    }
    match work.pull_path(&format!("{base}/missing")) {
        Err(cairn_sdk::Error::PushPull { errors, .. }) if errors.len() == 1 => {}
        other => {
            return Err(Error::msg(format!(
                "pull_path of a missing path gave {other:?}"
            )));
        }
    }
    work.remove_path(base, true)
}

/// Exercises the files calls on a scratch directory of the container.
fn probe_files(work: &Container) -> Result<()> {
    let base = "/tmp/cairn-misbehave-probe-files";
    work.remove_path(base, true)?;
    work.make_dir(
        &format!("{base}/sub"),
        &cairn_sdk::FileOptions::make_parents(),
    )?;
    let file = format!("{base}/sub/data.txt");
    work.push_with(
        &file,
        "probe data\n",
        &cairn_sdk::FileOptions::default().permissions(0o600),
    )?;
    if work.pull_string(&file)? != "probe data\n" {
        return Err(Error::msg("pulled content differs"));
    }
    let listed = work.list_files(&format!("{base}/sub"), Some("*.txt"), false)?;
    let ok = listed.len() == 1
        && listed[0].name == "data.txt"
        && listed[0].size == Some(11)
        && listed[0].permissions == 0o600
        && listed[0].kind == "file";
    if !ok {
        return Err(Error::msg(format!("listing differs: {listed:?}")));
    }
    if !work.is_dir(base)? || !work.exists(&file)? || work.exists(&format!("{base}/nope"))? {
        return Err(Error::msg("exists/is_dir differ"));
    }
    match work.pull(&format!("{base}/nope")) {
        Err(cairn_sdk::Error::Path(e)) if e.kind == "not-found" => {}
        other => return Err(Error::msg(format!("pull of a missing file gave {other:?}"))),
    }
    work.remove_path(base, true)?;
    if work.exists(base)? {
        return Err(Error::msg("remove_path left the directory"));
    }
    Ok(())
}

/// An error as `<code> <message>` when the API refused, else its text.
fn api_text(e: &Error) -> String {
    match e {
        Error::Api(a) => format!("{} {}", a.code, a.message),
        other => other.to_string(),
    }
}

/// Tries what the container's budget refuses: a big layer, many services, a fast check,
/// many layers. Returns what each attempt gave, `; `-separated.
fn flood_layers(ctx: &mut Context) -> Result<String> {
    let work = ctx.container("work")?;
    let gave = |r: Result<()>| match r {
        Ok(()) => "accepted".to_string(),
        Err(e) => api_text(&e),
    };
    let mut out = Vec::new();
    let big = format!(
        "summary: \"{}\"\nservices:\n  big:\n    override: replace\n    command: sleep 1\n",
        "y".repeat(2 << 20)
    );
    out.push(gave(work.add_layer("big", big.as_str(), false)));
    let mut many = String::from("services:\n");
    for i in 0..400 {
        many.push_str(&format!(
            "  s{i}:\n    override: replace\n    command: sleep 1\n"
        ));
    }
    out.push(gave(work.add_layer("many", many.as_str(), false)));
    let fast = "checks:\n  fast:\n    override: replace\n    period: 1ms\n    exec:\n      command: 'true'\n";
    out.push(gave(work.add_layer("fast", fast, false)));
    let mut added = 0;
    let mut last = String::from("accepted");
    for i in 0..10_000 {
        let layer = format!("summary: layer {i}\n");
        match work.add_layer(&format!("l{i}"), layer.as_str(), false) {
            Ok(()) => added += 1,
            Err(e) => {
                last = api_text(&e);
                break;
            }
        }
    }
    out.push(format!("{added} layers added then {last}"));
    Ok(out.join("; "))
}

impl Misbehave {
    /// Acts on `mode`.
    fn act(&self, ctx: &mut Context, mode: &str) -> Result<()> {
        match mode {
            "ok" => {
                let n = bump(ctx);
                ctx.set_unit_status(Status::active(format!("handled {n}")));
                Ok(())
            }
            "remember" => {
                // What a guest keeps in its own memory: a fresh instance starts at zero.
                static EVENTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = EVENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                ctx.set_unit_status(Status::active(format!("remembered {n}")));
                Ok(())
            }
            "defer" if !ctx.state().contains(DEFERRED_ONCE) => {
                ctx.state().set(DEFERRED_ONCE, "1");
                ctx.defer();
                Ok(())
            }
            "defer" => self.act(ctx, "ok"),
            "trap" => {
                bump(ctx);
                trap()
            }
            "panic" => {
                bump(ctx);
                panic!("misbehave: panic requested")
            }
            "error" => {
                bump(ctx);
                Err(Error::msg("misbehave: error requested"))
            }
            // Fails until the file named by `label` exists in the container: a fault fixed
            // outside the charm, which only a retry (`cairn resolve`) notices.
            "gate" => {
                let gate = ctx.config().get_str("label").unwrap_or_default();
                if ctx.container("work")?.exists(&gate)? {
                    self.act(ctx, "ok")
                } else {
                    Err(Error::msg(format!("misbehave: {gate} is missing")))
                }
            }
            "loop" => {
                bump(ctx);
                spin()
            }
            "sleep" => {
                bump(ctx);
                std::thread::sleep(std::time::Duration::from_secs(60));
                Ok(())
            }
            "stdin" => {
                bump(ctx);
                let mut buf = [0u8; 64];
                while std::io::Read::read(&mut std::io::stdin(), &mut buf)? == 0 {}
                Ok(())
            }
            "alloc" => {
                bump(ctx);
                hog()
            }
            "log-flood" => {
                let line = format!("flood\n\x1b[31m{}", "x".repeat(64 << 10));
                for _ in 0..(1 << 14) {
                    cairn_sdk::log(cairn_sdk::LogLevel::Info, &line);
                }
                ctx.set_unit_status(Status::active("log-flood done"));
                Ok(())
            }
            "state-flood" => {
                for i in 0..104 {
                    ctx.state().set(&format!("flood-{i}"), vec![b'x'; 1 << 20]);
                }
                ctx.set_unit_status(Status::active("state-flood done"));
                Ok(())
            }
            "status-flood" => {
                ctx.set_unit_status(Status::active("s".repeat(20 << 20)));
                Ok(())
            }
            "escape" => {
                let forged = "ok\nother/0      error   0       forged\x1b]0;pwned\x07\r";
                cairn_sdk::log(cairn_sdk::LogLevel::Info, forged);
                println!("{forged}");
                ctx.set_unit_status(Status::active(forged));
                Ok(())
            }
            "layer-flood" => {
                let status = flood_layers(ctx)?;
                ctx.set_unit_status(Status::active(status));
                Ok(())
            }
            "exec-flood" => {
                let work = ctx.container("work")?;
                let mut held = Vec::new();
                let mut refused = String::new();
                for _ in 0..100 {
                    match work.exec(&["sleep", "30"]) {
                        Ok(p) => held.push(p),
                        Err(e) => {
                            refused = api_text(&e);
                            break;
                        }
                    }
                }
                let n = held.len();
                for p in &held {
                    let _ = p.send_signal("SIGKILL");
                }
                ctx.set_unit_status(Status::active(format!(
                    "exec-flood: started {n}; {refused}"
                )));
                Ok(())
            }
            "pull-flood" => {
                let work = ctx.container("work")?;
                let path = format!(
                    "/tmp/cairn-pull-flood-{}",
                    ctx.unit().name().replace('/', "-")
                );
                work.exec(&["truncate", "-s", "1G", &path])?.wait_output()?;
                let got = match work.pull(&path) {
                    Ok(data) => format!("read {} bytes", data.len()),
                    Err(e) => e.to_string(),
                };
                let _ = work.remove_path(&path, false);
                ctx.set_unit_status(Status::active(format!("pull-flood: {got}")));
                Ok(())
            }
            "defer-all" => {
                ctx.defer();
                Ok(())
            }
            "pebble" => {
                let status = match probe_pebble(ctx) {
                    Ok(()) => Status::active("pebble ok"),
                    Err(e) => Status::blocked(e.to_string()),
                };
                ctx.set_unit_status(status);
                Ok(())
            }
            "log-lines" => {
                for _ in 0..1_000_000 {
                    cairn_sdk::log(cairn_sdk::LogLevel::Info, "");
                }
                print!("{}", "\n".repeat(512 << 10));
                eprintln!("{}", "\x01".repeat(256 << 10));
                ctx.set_unit_status(Status::active("log-lines done"));
                Ok(())
            }
            other => {
                ctx.set_unit_status(Status::blocked(format!("unknown mode {other:?}")));
                Ok(())
            }
        }
    }

    /// The `mode` option.
    fn mode(ctx: &Context) -> String {
        ctx.config().get_str("mode").unwrap_or_else(|| "ok".into())
    }
}

impl Charm for Misbehave {
    fn on_install(&mut self, ctx: &mut Context) -> Result<()> {
        ctx.set_unit_status(Status::maintenance("installing"));
        Ok(())
    }

    fn on_start(&mut self, ctx: &mut Context) -> Result<()> {
        ctx.set_unit_status(Status::active(format!("handled {}", handled(ctx))));
        Ok(())
    }

    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let mode = Self::mode(ctx);
        self.act(ctx, &mode)
    }

    /// Answers the remote side's `ask` in this unit's bag (and, as leader, names itself in
    /// the app's bag), records what a write to and a read of the app's bag said, then acts
    /// on `mode` (`error` fails the event after the writes).
    fn on_relation_changed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        let rel = event.relation()?;
        let owner = event.unit.clone().unwrap_or_else(|| rel.app.clone());
        let ask = rel.read(owner.as_str(), "ask")?.unwrap_or_default();
        let unit = ctx.unit_name();
        rel.set("answer", format!("{ask} from {unit}"))?;
        let app_write = match rel.set_app("leader", unit.clone()) {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        };
        let app_read = match rel.app_data() {
            Ok(bag) => format!("{} keys", bag.len()),
            Err(e) => e.to_string(),
        };
        rel.update(&unit, [("app-write", app_write), ("app-read", app_read)])?;
        ctx.set_unit_status(Status::active(format!(
            "{} {}: {} remote units",
            event.endpoint,
            rel.id,
            rel.units.len()
        )));
        match Self::mode(ctx).as_str() {
            "relation-flood" => rel.set("flood", "x".repeat(4096)),
            mode => self.act(ctx, mode),
        }
    }

    fn on_action(&mut self, _ctx: &mut Context, action: ActionEvent) -> Result<()> {
        match action.name.as_str() {
            "echo" => {
                let message: String = action.param("message")?.unwrap_or_default();
                let times: usize = action.param("times")?.unwrap_or(1);
                action.log(format!("echoing {times} time(s)"))?;
                action.set_results(&[
                    ("echo", message.repeat(times)),
                    ("times", times.to_string()),
                ])?;
                Ok(())
            }
            "fail" => action.fail("asked to fail"),
            "progress" => {
                // Reports progress, then fails: what was logged must already be out.
                action.log("step 1 of 2 done")?;
                Err(Error::msg("misbehave: step 2 failed"))
            }
            "hang" => {
                // Blocks in the host on a command that outlives the event's deadline.
                let work = Container::get("work")?;
                work.exec(&["sleep", "600"])?.wait_output()?;
                action.set_results(&[("slept", "600")])
            }
            "flood" => {
                // More output than the unit's memory could hold: refused, not buffered.
                let bytes: u64 = action.param("bytes")?.unwrap_or(100_000_000);
                let work = Container::get("work")?;
                let count = bytes.to_string();
                match work
                    .exec(&["head", "-c", &count, "/dev/zero"])?
                    .wait_output()
                {
                    Ok(out) => action.set_results(&[("bytes", out.stdout.len())]),
                    Err(Error::Api(e)) => {
                        action.set_results(&[("code", e.code.to_string()), ("message", e.message)])
                    }
                    Err(e) => Err(e),
                }
            }
            "results-flood" => {
                // 64 results of 8 MiB: far more than the host should keep for one run.
                let big = "r".repeat(8 << 20);
                for i in 0..64 {
                    if let Err(e) = action.set_results(&[(format!("r{i}"), &big)]) {
                        return action.fail(format!("results-flood: {e} after {i}"));
                    }
                }
                action.set_results(&[("done", "64")])
            }
            "crash" => panic!("misbehave: crash requested"),
            other => Err(Error::msg(format!("unknown action {other:?}"))),
        }
    }

    fn on_pebble_custom_notice(&mut self, ctx: &mut Context, _event: NoticeEvent) -> Result<()> {
        // Only `defer-all` looks at notices: distinct notices are distinct deferred events.
        if Self::mode(ctx) == "defer-all" {
            ctx.defer();
        }
        Ok(())
    }

    fn on_update_status(&mut self, ctx: &mut Context) -> Result<()> {
        // The trivial event of the dispatch benchmark: in `ok` mode, one config read.
        let mode = Self::mode(ctx);
        if mode == "ok" {
            return Ok(());
        }
        self.act(ctx, &mode)
    }
}

export_charm!(Misbehave);

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_sdk::testing::Harness;

    fn harness() -> Harness<Misbehave> {
        Harness::from_charmcraft(include_str!("../charmcraft.yaml")).unwrap()
    }

    #[test]
    fn actions_report_results_and_failures() {
        let mut h = harness();
        h.deploy().unwrap();
        let out = h
            .run_action("echo", r#"{"message":"hi","times":2}"#)
            .unwrap();
        assert_eq!(out.results["echo"], "hihi");
        assert_eq!(out.log, ["echoing 2 time(s)"]);
        assert_eq!(out.failed, None);
        let out = h.run_action("fail", "{}").unwrap();
        assert_eq!(out.failed.as_deref(), Some("asked to fail"));
    }

    #[test]
    fn pebble_mode_drives_the_container_api() {
        let mut h = harness();
        h.deploy().unwrap();
        let work = h.container_mut("work");
        work.handle_exec(&["cat"], 0, "through stdin", "");
        work.handle_exec(
            &["sh", "-c", "echo $PROBE_X; echo err >&2"],
            0,
            "42\n",
            "err\n",
        );
        work.handle_exec(&["sh", "-c", "exit 3"], 3, "", "");
        let seq: String = (1..=2000).map(|i| format!("{i}\n")).collect();
        work.handle_exec(
            &["sh", "-c", "seq 1 2000; echo done >&2"],
            0,
            &seq,
            "done\n",
        );
        work.handle_exec(&["sh", "-c", "exit 4"], 4, "", "");
        // The probe's readiness file, as its trap would leave it.
        work.handle_exec(&["mktemp", "-d"], 0, "/tmp/probe.x\n", "");
        work.put_file("/tmp/probe.x/ready", "");
        h.update_config("mode", "pebble").unwrap();
        assert_eq!(h.unit_status(), &Status::active("pebble ok"));
        let work = h.container("work");
        assert!(work.is_running("probe") && work.is_running("helper"));
        assert_eq!(
            work.signals(),
            [("probe".to_string(), "SIGHUP".to_string())]
        );
    }

    #[test]
    fn deploy_counts_one_and_start_keeps_the_count() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(h.unit_status(), &Status::active("handled 1"));
        assert_eq!(h.state(HANDLED), Some(&b"1"[..]));
        h.update_status().unwrap();
        assert_eq!(h.state(HANDLED), Some(&b"1"[..]));
    }

    #[test]
    fn error_discards_the_increment() {
        let mut h = harness();
        h.deploy().unwrap();
        assert_eq!(
            h.update_config("mode", "error")
                .unwrap_err()
                .chain_message(),
            "misbehave: error requested"
        );
        assert_eq!(h.state(HANDLED), Some(&b"1"[..]));
        h.update_config("mode", "ok").unwrap();
        assert_eq!(h.unit_status(), &Status::active("handled 2"));
    }

    #[test]
    fn defer_defers_once() {
        let mut h = harness().with_config("mode", "defer");
        assert_eq!(h.config_changed().unwrap(), Outcome::Deferred);
        assert_eq!(h.config_changed().unwrap(), Outcome::Handled);
        // The deferred event came back first, then the new one.
        assert_eq!(h.unit_status(), &Status::active("handled 2"));
    }
}
