//! `container-probe`: a test guest that calls every WIT `container` and `process` call on
//! container `work` and records what each returned, so one test can run it against each
//! container backend (the embedded supervisor, and the Pebble API client on real Pebble and
//! on `cairn pebble run`) and compare. Not a real charm.
//!
//! On `config-changed` it works under the `base` config option (an absolute directory that
//! must not exist yet) and stores a JSON transcript under the stored-state key
//! `transcript`: an array of `[step, result]`, each result `{"ok": value}` or
//! `{"err": {<variant>: ...}}` with the WIT error's fields. The host is expected to have
//! recorded one custom notice with key `probe.example/one` and data `k=v` in the container
//! beforehand. It calls the raw WIT imports (not the SDK's wrappers), so what it records is
//! exactly what the host returned.
//!
//! With `calls` above 0 it only makes `call` (`name`, `can-connect`, `get-services` or
//! `get-plan`) that many times: the container-call benchmark's event.

use cairn_sdk::__bindings::cairn::charm0_1_0::pebble::{
    self, Container, Error as WitError, ExecOptions, FileOptions, NoticeFilter, Process,
};
use cairn_sdk::__bindings::cairn::charm0_1_0::types as wit;
use cairn_sdk::prelude::*;
use serde_json::{Value, json};

/// The charm; it keeps nothing between events.
#[derive(Default)]
pub struct Probe;

/// The layer the probe adds first: services that ignore SIGHUP and sleep, one disabled, one
/// that exits at once, and two checks that never run during the probe (period 1h).
const LAYER: &str = r#"summary: probe layer
services:
    svc1:
        override: replace
        summary: the first service
        command: sh -c 'trap "" HUP; exec sleep 1000'
        startup: enabled
        environment:
            PROBE_X: from-service
        kill-delay: 2s
    svc2:
        override: replace
        command: sh -c 'trap "" HUP; exec sleep 1000'
        startup: disabled
        after: [svc1]
        on-failure: ignore
    bad:
        override: replace
        command: sh -c 'exit 1'
        startup: disabled
checks:
    chk:
        override: replace
        level: alive
        period: 1h
        threshold: 3
        exec:
            command: "true"
    chk2:
        override: replace
        level: ready
        startup: disabled
        period: 1h
        tcp:
            port: 1
"#;

/// A layer merged into the first (`combine`).
const COMBINED: &str = r#"services:
    svc2:
        override: merge
        environment:
            PROBE_Y: merged
"#;

/// The transcript being written.
struct Log(Vec<Value>);

impl Log {
    /// Records `step` with its result.
    fn rec<T>(&mut self, step: &str, r: &Result<T, WitError>, ok: impl FnOnce(&T) -> Value) {
        let v = match r {
            Ok(t) => json!({ "ok": ok(t) }),
            Err(e) => json!({ "err": err(e) }),
        };
        self.0.push(json!([step, v]));
    }

    /// Records `step` with a result that is not a `Result`.
    fn val(&mut self, step: &str, v: Value) {
        self.0.push(json!([step, v]));
    }
}

/// A WIT error with its variant and every field.
fn err(e: &WitError) -> Value {
    match e {
        WitError::Path(p) => json!({"path": {"kind": p.kind, "message": p.message}}),
        WitError::Connection(m) => json!({ "connection": m }),
        WitError::Api(a) => json!({"api": {
            "code": a.code, "status": a.status, "kind": a.kind, "message": a.message
        }}),
        WitError::Change(c) => json!({"change": {"change-id": c.change_id, "err": c.err}}),
        WitError::Timeout(m) => json!({ "timeout": m }),
    }
}

fn unit(_: &()) -> Value {
    Value::Null
}

fn strings(v: &[String]) -> Value {
    json!(v)
}

fn bytes(b: &[u8]) -> Value {
    json!(String::from_utf8_lossy(b))
}

fn pairs(p: &[(String, String)]) -> Value {
    Value::Object(p.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

fn plan(p: &pebble::Plan) -> Value {
    let services: Vec<Value> = p
        .services
        .iter()
        .map(|s| {
            json!({
                "name": s.name, "summary": s.summary, "description": s.description,
                "startup": format!("{:?}", s.startup), "override": format!("{:?}", s.override_),
                "command": s.command, "after": s.after, "before": s.before,
                "requires": s.requires, "environment": pairs(&s.environment),
                "user": s.user, "user-id": s.user_id, "group": s.group, "group-id": s.group_id,
                "working-dir": s.working_dir, "on-success": format!("{:?}", s.on_success),
                "on-failure": format!("{:?}", s.on_failure),
                "on-check-failure": format!("{:?}", s.on_check_failure),
                "backoff-delay": s.backoff_delay, "backoff-factor": s.backoff_factor,
                "backoff-limit": s.backoff_limit, "kill-delay": s.kill_delay,
            })
        })
        .collect();
    let checks: Vec<Value> = p
        .checks
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "override": format!("{:?}", c.override_),
                "level": format!("{:?}", c.level), "startup": format!("{:?}", c.startup),
                "period": c.period, "timeout": c.timeout, "threshold": c.threshold,
                "http": c.http.as_ref().map(|h| json!({"url": h.url, "headers": pairs(&h.headers)})),
                "tcp": c.tcp.as_ref().map(|t| json!({"port": t.port, "host": t.host})),
                "exec": c.exec.as_ref().map(|e| json!({
                    "command": e.command, "service-context": e.service_context,
                    "environment": pairs(&e.environment), "working-dir": e.working_dir,
                })),
            })
        })
        .collect();
    json!({"services": services, "checks": checks, "log-targets": p.log_targets.len()})
}

fn services(list: &[pebble::ServiceInfo]) -> Value {
    json!(
        list.iter()
            .map(|s| json!({
                "name": s.name, "startup": format!("{:?}", s.startup),
                "current": format!("{:?}", s.current), "current-since": s.current_since,
            }))
            .collect::<Vec<_>>()
    )
}

fn checks(list: &[wit::CheckInfo]) -> Value {
    json!(
        list.iter()
            .map(|c| json!({
                "name": c.name, "level": format!("{:?}", c.level),
                "status": format!("{:?}", c.status), "successes": c.successes,
                "failures": c.failures, "threshold": c.threshold, "change-id": c.change_id,
            }))
            .collect::<Vec<_>>()
    )
}

fn notice(n: &wit::Notice) -> Value {
    json!({
        "id": n.id, "user-id": n.user_id, "type": n.type_, "key": n.key,
        "first-occurred": n.first_occurred, "last-occurred": n.last_occurred,
        "last-repeated": n.last_repeated, "occurrences": n.occurrences,
        "last-data": pairs(&n.last_data), "repeat-after-ms": n.repeat_after_ms,
        "expire-after-ms": n.expire_after_ms,
    })
}

fn notices(list: &[wit::Notice]) -> Value {
    json!(list.iter().map(notice).collect::<Vec<_>>())
}

fn files(list: &[pebble::FileInfo]) -> Value {
    json!(
        list.iter()
            .map(|f| json!({
                "path": f.path, "name": f.name, "type": f.type_, "size": f.size,
                "permissions": format!("{:o}", f.permissions), "last-modified": f.last_modified,
                "user-id": f.user_id, "user": f.user, "group-id": f.group_id, "group": f.group,
            }))
            .collect::<Vec<_>>()
    )
}

fn output(o: &pebble::ExecOutput) -> Value {
    json!({"exit-code": o.exit_code, "stdout": bytes(&o.stdout), "stderr": bytes(&o.stderr)})
}

/// File options with only `make-parents` and permissions set.
fn file_opts(make_parents: bool, permissions: Option<u32>) -> FileOptions {
    FileOptions {
        make_parents,
        permissions,
        user_id: None,
        user: None,
        group_id: None,
        group: None,
    }
}

/// Exec options: environment, working dir, timeout, service context and split stderr.
fn exec_opts(split: bool) -> ExecOptions {
    ExecOptions {
        environment: vec![],
        working_dir: None,
        timeout_ms: None,
        user_id: None,
        user: None,
        group_id: None,
        group: None,
        service_context: None,
        split_stderr: split,
    }
}

fn argv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Reads a stream to its end in chunks of at most `max` bytes, with stdout or stderr.
fn read_all(p: &Process, stderr: bool, max: u32) -> Result<Vec<u8>, WitError> {
    let mut out = Vec::new();
    loop {
        let chunk = if stderr {
            p.read_stderr(max)?
        } else {
            p.read_stdout(max)?
        };
        match chunk {
            Some(c) => out.extend(c),
            None => return Ok(out),
        }
    }
}

fn layers_and_services(log: &mut Log, c: &Container) {
    log.val("can-connect", json!(c.can_connect()));
    log.val("name", json!(c.name()));
    log.rec("get-plan-yaml empty", &c.get_plan_yaml(), |y| json!(y));
    log.rec("autostart nothing", &c.autostart(), unit);
    log.rec("replan nothing", &c.replan(), unit);
    log.rec("add-layer", &c.add_layer("probe", LAYER, false), unit);
    log.rec(
        "add-layer same label",
        &c.add_layer("probe", LAYER, false),
        unit,
    );
    log.rec(
        "add-layer combine",
        &c.add_layer("probe", COMBINED, true),
        unit,
    );
    log.rec(
        "add-layer bad yaml",
        &c.add_layer("x", "services: [", false),
        unit,
    );
    let no_override = "services:\n    s:\n        command: sleep 1\n";
    log.rec(
        "add-layer no override",
        &c.add_layer("x", no_override, false),
        unit,
    );
    let bad_check = "checks:\n    c:\n        override: replace\n        period: 1h\n";
    log.rec(
        "add-layer check without type",
        &c.add_layer("x", bad_check, false),
        unit,
    );
    log.rec("get-plan", &c.get_plan(), plan);
    log.rec("get-plan-yaml", &c.get_plan_yaml(), |y| json!(y));
    log.rec("replan", &c.replan(), unit);
    log.rec("get-services all", &c.get_services(&[]), |l| services(l));
    log.rec(
        "get-services named",
        &c.get_services(&argv(&["svc2", "nosuch"])),
        |l| services(l),
    );
    log.rec("start svc2", &c.start(&argv(&["svc2"])), unit);
    log.rec("start nosuch", &c.start(&argv(&["nosuch"])), unit);
    log.rec("start nothing", &c.start(&[]), unit);
    log.rec("start bad", &c.start(&argv(&["bad"])), unit);
    log.rec(
        "get-services after bad",
        &c.get_services(&argv(&["bad"])),
        |l| services(l),
    );
    log.rec("restart svc1", &c.restart(&argv(&["svc1"])), unit);
    log.rec(
        "send-signal HUP",
        &c.send_signal("HUP", &argv(&["svc1", "svc2"])),
        unit,
    );
    log.rec(
        "send-signal SIGHUP",
        &c.send_signal("SIGHUP", &argv(&["svc1"])),
        unit,
    );
    log.rec(
        "send-signal bad name",
        &c.send_signal("NOPE", &argv(&["svc1"])),
        unit,
    );
    log.rec("send-signal no service", &c.send_signal("HUP", &[]), unit);
    log.rec("stop svc2", &c.stop(&argv(&["svc2"])), unit);
    log.rec(
        "send-signal stopped",
        &c.send_signal("HUP", &argv(&["svc2"])),
        unit,
    );
    log.rec(
        "send-signal nosuch",
        &c.send_signal("HUP", &argv(&["nosuch"])),
        unit,
    );
    log.rec("stop svc2 again", &c.stop(&argv(&["svc2"])), unit);
    log.rec("autostart", &c.autostart(), unit);
    log.rec("get-services end", &c.get_services(&[]), |l| services(l));
}

fn checks_and_notices(log: &mut Log, c: &Container) {
    log.rec(
        "get-checks all",
        &c.get_checks(wit::CheckLevel::Unset, &[]),
        |l| checks(l),
    );
    log.rec(
        "get-checks ready",
        &c.get_checks(wit::CheckLevel::Ready, &[]),
        |l| checks(l),
    );
    log.rec(
        "get-checks named",
        &c.get_checks(wit::CheckLevel::Unset, &argv(&["chk", "nosuch"])),
        |l| checks(l),
    );
    log.rec(
        "start-checks",
        &c.start_checks(&argv(&["chk2", "chk"])),
        |l| strings(l),
    );
    log.rec("stop-checks", &c.stop_checks(&argv(&["chk2"])), |l| {
        strings(l)
    });
    log.rec("stop-checks again", &c.stop_checks(&argv(&["chk2"])), |l| {
        strings(l)
    });
    log.rec(
        "start-checks nosuch",
        &c.start_checks(&argv(&["nosuch"])),
        |l| strings(l),
    );
    log.rec("start-checks nothing", &c.start_checks(&[]), |l| strings(l));
    let filter = |types: &[&str], keys: &[&str], after: Option<&str>| NoticeFilter {
        types: argv(types),
        keys: argv(keys),
        after: after.map(str::to_string),
    };
    let custom = c.get_notices(&filter(&["custom"], &[], None));
    log.rec("get-notices custom", &custom, |l| notices(l));
    log.rec(
        "get-notices by key",
        &c.get_notices(&filter(&[], &["probe.example/one"], None)),
        |l| notices(l),
    );
    log.rec(
        "get-notices other key",
        &c.get_notices(&filter(&["custom"], &["probe.example/none"], None)),
        |l| notices(l),
    );
    log.rec(
        "get-notices unknown type",
        &c.get_notices(&filter(&["nonsense"], &[], None)),
        |l| notices(l),
    );
    log.rec(
        "get-notices after the future",
        &c.get_notices(&filter(&["custom"], &[], Some("2999-01-01T00:00:00Z"))),
        |l| notices(l),
    );
    if let Ok(Some(n)) = custom.as_ref().map(|l| l.first()) {
        log.rec("get-notice", &c.get_notice(&n.id), notice);
    }
    log.rec("get-notice missing", &c.get_notice("123456"), notice);
}

fn file_calls(log: &mut Log, c: &Container, base: &str) {
    let p = |rest: &str| format!("{base}{rest}");
    log.rec("exists base", &c.exists(base), |b| json!(b));
    log.rec(
        "make-dir base",
        &c.make_dir(base, &file_opts(false, None)),
        unit,
    );
    log.rec(
        "make-dir exists",
        &c.make_dir(base, &file_opts(false, None)),
        unit,
    );
    log.rec(
        "make-dir no parent",
        &c.make_dir(&p("/a/b"), &file_opts(false, None)),
        unit,
    );
    log.rec(
        "make-dir parents",
        &c.make_dir(&p("/a/b"), &file_opts(true, Some(0o700))),
        unit,
    );
    log.rec(
        "make-dir relative",
        &c.make_dir("relative/dir", &file_opts(true, None)),
        unit,
    );
    log.rec(
        "push",
        &c.push(&p("/a/f.txt"), b"hello\n", &file_opts(false, Some(0o600))),
        unit,
    );
    log.rec(
        "push again",
        &c.push(&p("/a/f.txt"), b"hello again\n", &file_opts(false, None)),
        unit,
    );
    log.rec(
        "push no parent",
        &c.push(&p("/x/y.txt"), b"y", &file_opts(false, None)),
        unit,
    );
    log.rec(
        "push parents",
        &c.push(&p("/x/y.txt"), b"y", &file_opts(true, None)),
        unit,
    );
    log.rec(
        "push onto a directory",
        &c.push(&p("/a"), b"z", &file_opts(false, None)),
        unit,
    );
    log.rec(
        "push relative",
        &c.push("relative.txt", b"z", &file_opts(false, None)),
        unit,
    );
    log.rec("pull", &c.pull(&p("/a/f.txt")), |b| bytes(b));
    log.rec("pull missing", &c.pull(&p("/missing")), |b| bytes(b));
    log.rec("pull a directory", &c.pull(&p("/a")), |b| bytes(b));
    log.rec("list-files", &c.list_files(&p("/a"), None, false), |l| {
        files(l)
    });
    log.rec(
        "list-files pattern",
        &c.list_files(&p("/a"), Some("*.txt"), false),
        |l| files(l),
    );
    log.rec(
        "list-files itself",
        &c.list_files(&p("/a"), None, true),
        |l| files(l),
    );
    log.rec(
        "list-files a file",
        &c.list_files(&p("/a/f.txt"), None, false),
        |l| files(l),
    );
    log.rec(
        "list-files missing",
        &c.list_files(&p("/missing"), None, false),
        |l| files(l),
    );
    log.rec(
        "list-files bad pattern",
        &c.list_files(&p("/a"), Some("["), false),
        |l| files(l),
    );
    log.rec(
        "list-files relative",
        &c.list_files("relative", None, false),
        |l| files(l),
    );
    log.rec("exists relative", &c.exists("relative"), |b| json!(b));
    log.rec(
        "make-dir onto a file",
        &c.make_dir(&p("/a/f.txt"), &file_opts(true, None)),
        unit,
    );
    log.rec(
        "make-dir under a file",
        &c.make_dir(&p("/a/f.txt/d"), &file_opts(true, None)),
        unit,
    );
    log.rec(
        "push under a file",
        &c.push(&p("/a/f.txt/g"), b"g", &file_opts(true, None)),
        unit,
    );
    log.rec("exists file", &c.exists(&p("/a/f.txt")), |b| json!(b));
    log.rec("exists missing", &c.exists(&p("/missing")), |b| json!(b));
    log.rec("is-dir dir", &c.is_dir(&p("/a")), |b| json!(b));
    log.rec("is-dir file", &c.is_dir(&p("/a/f.txt")), |b| json!(b));
    log.rec("is-dir missing", &c.is_dir(&p("/missing")), |b| json!(b));
    log.rec(
        "remove-path non-empty",
        &c.remove_path(&p("/a"), false),
        unit,
    );
    log.rec(
        "remove-path missing",
        &c.remove_path(&p("/missing"), false),
        unit,
    );
    log.rec(
        "remove-path missing recursive",
        &c.remove_path(&p("/missing"), true),
        unit,
    );
    log.rec(
        "remove-path file",
        &c.remove_path(&p("/x/y.txt"), false),
        unit,
    );
    log.rec(
        "remove-path recursive",
        &c.remove_path(&p("/a"), true),
        unit,
    );
    log.rec("exists removed", &c.exists(&p("/a")), |b| json!(b));
}

fn exec_calls(log: &mut Log, c: &Container, base: &str) {
    let run = |log: &mut Log, step: &str, cmd: &[&str], opts: ExecOptions| {
        let r = c.exec(&argv(cmd), &opts).and_then(|p| p.wait_output());
        log.rec(step, &r, output);
    };
    run(log, "exec echo", &["echo", "hi"], exec_opts(true));
    let both = ["sh", "-c", "echo out; echo err >&2; exit 3"];
    run(log, "exec split", &both, exec_opts(true));
    run(
        log,
        "exec combined",
        &["sh", "-c", "echo out; sleep 0.1; echo err >&2; exit 3"],
        exec_opts(false),
    );
    let mut env = exec_opts(true);
    env.environment = vec![("PROBE_X".into(), "from-exec".into())];
    env.working_dir = Some(base.to_string());
    run(
        log,
        "exec environment",
        &["sh", "-c", "echo $PROBE_X; pwd"],
        env,
    );
    let mut ctx = exec_opts(true);
    ctx.service_context = Some("svc1".into());
    run(
        log,
        "exec service context",
        &["sh", "-c", "echo $PROBE_X"],
        ctx,
    );
    let mut missing_ctx = exec_opts(true);
    missing_ctx.service_context = Some("nosuch".into());
    run(log, "exec missing service context", &["true"], missing_ctx);
    run(
        log,
        "exec missing command",
        &["/no/such/command"],
        exec_opts(true),
    );
    run(log, "exec nothing", &[], exec_opts(true));
    let mut bad_dir = exec_opts(true);
    bad_dir.working_dir = Some(format!("{base}/no/such/dir"));
    run(log, "exec missing working dir", &["true"], bad_dir);
    let mut timeout = exec_opts(true);
    timeout.timeout_ms = Some(300);
    let r = c
        .exec(&argv(&["sleep", "10"]), &timeout)
        .and_then(|p| p.wait());
    log.rec("exec timeout", &r, |code| json!(code));

    // Streams: stdin written and closed, stdout read in small chunks.
    let r = c.exec(&argv(&["cat"]), &exec_opts(true)).and_then(|p| {
        p.write_stdin(b"through ")?;
        p.write_stdin(b"stdin\n")?;
        p.close_stdin();
        let out = read_all(&p, false, 3)?;
        let end = p.read_stdout(10)?;
        let code = p.wait()?;
        Ok(json!({"stdout": bytes(&out), "then": end.map(|b| bytes(&b)), "exit-code": code}))
    });
    log.rec("exec cat streamed", &r, Value::clone);
    let r = c
        .exec(
            &argv(&["sh", "-c", "seq 1 3000; echo done >&2; exit 5"]),
            &exec_opts(true),
        )
        .and_then(|p| {
            let out = read_all(&p, false, 1000)?;
            let err = read_all(&p, true, 2)?;
            let code = p.wait()?;
            Ok(json!({"stdout-bytes": out.len(), "stderr": bytes(&err), "exit-code": code}))
        });
    log.rec("exec read stdout and stderr", &r, Value::clone);
    let r = c.exec(&argv(&["cat"]), &exec_opts(true)).and_then(|p| {
        p.write_stdin(b"partly read\n")?;
        let first = p.read_stdout(7)?;
        let out = p.wait_output()?;
        Ok(json!({"first": first.map(|b| bytes(&b)), "rest": output(&out)}))
    });
    log.rec("exec wait-output after a read", &r, Value::clone);
    let r = c
        .exec(&argv(&["sleep", "100"]), &exec_opts(true))
        .and_then(|p| {
            p.send_signal("TERM")?;
            p.wait()
        });
    log.rec("exec send-signal TERM", &r, |code| json!(code));
    let r = c
        .exec(&argv(&["sleep", "100"]), &exec_opts(true))
        .and_then(|p| {
            p.send_signal("SIGKILL")?;
            p.wait_output()
        });
    log.rec("exec send-signal SIGKILL", &r, output);
    let r = c.exec(&argv(&["true"]), &exec_opts(true)).and_then(|p| {
        let code = p.wait()?;
        let after = p.write_stdin(b"late");
        Ok(json!({"exit-code": code, "write after wait": after.map_err(|e| err(&e)).err()}))
    });
    log.rec("exec write after wait", &r, Value::clone);
}

/// Makes `call` `n` times on `c` (the benchmark mode).
fn repeat(c: &Container, call: &str, n: i64) -> Result<()> {
    let failed = |e: WitError| Error::msg(format!("{call}: {}", err(&e)));
    for _ in 0..n {
        match call {
            "name" => drop(c.name()),
            "can-connect" => drop(c.can_connect()),
            "get-services" => drop(c.get_services(&[]).map_err(failed)?),
            "get-plan" => drop(c.get_plan().map_err(failed)?),
            other => return Err(Error::msg(format!("unknown call {other:?}"))),
        }
    }
    Ok(())
}

impl Charm for Probe {
    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let calls = ctx.config().get_int("calls").unwrap_or(0);
        if calls > 0 {
            let c = Container::open("work").map_err(|e| Error::msg(format!("{:?}", err(&e))))?;
            let call = ctx.config().require_str("call")?;
            return repeat(&c, &call, calls);
        }
        let base = ctx.config().require_str("base")?;
        let mut log = Log(Vec::new());
        log.rec("open missing", &Container::open("nosuch"), |_| Value::Null);
        let c = Container::open("work").map_err(|e| Error::msg(format!("{:?}", err(&e))))?;
        layers_and_services(&mut log, &c);
        checks_and_notices(&mut log, &c);
        file_calls(&mut log, &c, &base);
        exec_calls(&mut log, &c, &base);
        log.rec("stop all", &c.stop(&argv(&["svc1", "svc2"])), unit);
        ctx.state().set("transcript", serde_json::to_vec(&log.0)?);
        Ok(())
    }
}

export_charm!(Probe);
