//! The same API requests, in the same order, to real Pebble and to `cairn pebble run`, each
//! fresh: status codes, envelopes, results and error texts must agree once what must differ
//! (times, change and notice ids, the scratch directory) is normalised. What differs on
//! purpose is listed in [`ON_PURPOSE`] with why. Real Pebble is `CAIRN_REFERENCE_PEBBLE`,
//! else `../shared/tools/pebble`; without it the test says it was skipped.

use std::path::Path;

use anyhow::Result;
use cairn_api::Client;
use hyper::Method;
use serde_json::Value;

use crate::backends::{normalise, pebble_server, reference_pebble};
use crate::common::{CAIRN, TempDir};

/// Requests whose answers differ on purpose, and why.
const ON_PURPOSE: &[(&str, &str)] = &[
    (
        "GET /v1/system-info",
        "the version is Cairn's own, not the Pebble release it follows",
    ),
    (
        "POST /v1/layers not json",
        "a body that is not JSON gets the same 400 and prefix, but the decoder's own words \
         (serde_json's, not Go's encoding/json's)",
    ),
];

/// One step: method, path and JSON body (`$D` is the server's directory, `$C` the change
/// the last async answer started), or `WAIT` for that change to end before going on.
type Step = (&'static str, &'static str, Option<&'static str>);

const LAYER: &str = r#"{"action":"add","label":"a","format":"yaml","layer":"services:\n  ok:\n    override: replace\n    command: sleep 301\n  missing:\n    override: replace\n    command: nosuchcmd-xyz\n  badpath:\n    override: replace\n    command: /nonexistent/x\n  badwd:\n    override: replace\n    command: sleep 302\n    working-dir: /nonexistent\n  envpath:\n    override: replace\n    command: sleep 303\n    environment:\n      PATH: /nonexistent\n"}"#;

/// A check, added once the services' changes are done (its change never ends).
const CHECK_LAYER: &str = r#"{"action":"add","label":"c","format":"yaml","layer":"checks:\n  up:\n    override: replace\n    level: alive\n    period: 10s\n    exec:\n      command: 'true'\n"}"#;

/// The script: every route, with good and bad input.
const SCRIPT: &[Step] = &[
    ("GET", "/v1/system-info", None),
    ("GET", "/v1/health", None),
    ("GET", "/v1/health?level=bad", None),
    ("GET", "/v1/identities", None),
    ("POST", "/v1/pairing", Some(r#"{"action":"pair"}"#)),
    ("GET", "/v1/pairing", None),
    ("GET", "/v1/nope", None),
    ("PUT", "/v1/services", Some("{}")),
    ("GET", "/v1/plan?format=yaml", None),
    ("GET", "/v1/plan?format=json", None),
    ("POST", "/v1/layers", Some(LAYER)),
    ("POST", "/v1/layers", Some(LAYER)),
    (
        "POST",
        "/v1/layers",
        Some(
            r#"{"action":"add","label":"b","format":"yaml","layer":"services:\n  x:\n    command: foo\n"}"#,
        ),
    ),
    (
        "POST",
        "/v1/layers",
        Some(
            r#"{"action":"add","label":"b","format":"yaml","layer":"services:\n  x:\n    override: bad\n    command: foo\n"}"#,
        ),
    ),
    (
        "POST",
        "/v1/layers",
        Some(r#"{"action":"add","label":"b","format":"json","layer":""}"#),
    ),
    (
        "POST",
        "/v1/layers",
        Some(r#"{"action":"bogus","label":"b"}"#),
    ),
    ("POST", "/v1/layers", Some("not json")),
    ("GET", "/v1/plan?format=yaml", None),
    ("GET", "/v1/services", None),
    ("GET", "/v1/services?names=nope", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"bogus","services":["x"]}"#),
    ),
    ("POST", "/v1/services", Some(r#"{"action":"start"}"#)),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["nope"]}"#),
    ),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["missing"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["badpath"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["badwd"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["envpath","ok"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    ("GET", "/v1/services", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"start","services":["ok"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    (
        "POST",
        "/v1/services",
        Some(r#"{"action":"stop","services":["ok","envpath"]}"#),
    ),
    ("WAIT", "", None),
    ("GET", "/v1/changes/$C", None),
    ("POST", "/v1/layers", Some(CHECK_LAYER)),
    ("GET", "/v1/changes?select=all", None),
    ("GET", "/v1/changes?select=bad", None),
    ("GET", "/v1/changes?for=ok", None),
    ("GET", "/v1/changes/999", None),
    ("GET", "/v1/changes/999/wait", None),
    ("GET", "/v1/changes/$C/wait?timeout=bad", None),
    ("POST", "/v1/changes/$C", Some(r#"{"action":"abort"}"#)),
    ("POST", "/v1/changes/$C", Some(r#"{"action":"bogus"}"#)),
    ("GET", "/v1/checks", None),
    ("GET", "/v1/checks?level=bad", None),
    ("GET", "/v1/checks?names=nope", None),
    (
        "POST",
        "/v1/checks",
        Some(r#"{"action":"bogus","checks":["up"]}"#),
    ),
    (
        "POST",
        "/v1/checks",
        Some(r#"{"action":"stop","checks":["nope"]}"#),
    ),
    ("POST", "/v1/checks/refresh", Some(r#"{"name":"nope"}"#)),
    ("GET", "/v1/notices?after=bad", None),
    ("GET", "/v1/notices?types=bogus", None),
    (
        "POST",
        "/v1/notices",
        Some(r#"{"action":"add","type":"custom","key":"bad"}"#),
    ),
    (
        "POST",
        "/v1/notices",
        Some(r#"{"action":"add","type":"custom","key":"example.com/x","repeat-after":"bad"}"#),
    ),
    (
        "POST",
        "/v1/notices",
        Some(r#"{"action":"add","type":"warning","key":"example.com/x"}"#),
    ),
    (
        "POST",
        "/v1/notices",
        Some(r#"{"action":"add","type":"custom","key":"example.com/x","data":{"a":"b"}}"#),
    ),
    ("GET", "/v1/notices?types=custom", None),
    ("GET", "/v1/notices/999", None),
    (
        "POST",
        "/v1/signals",
        Some(r#"{"signal":"SIGFOO","services":["ok"]}"#),
    ),
    (
        "POST",
        "/v1/signals",
        Some(r#"{"signal":"SIGHUP","services":["ok"]}"#),
    ),
    ("POST", "/v1/signals", Some(r#"{"signal":"SIGHUP"}"#)),
    ("POST", "/v1/exec", Some(r#"{"command":["nosuchcmd-xyz"]}"#)),
    (
        "POST",
        "/v1/exec",
        Some(r#"{"command":["/nonexistent/x"]}"#),
    ),
    (
        "POST",
        "/v1/exec",
        Some(r#"{"command":["true"],"working-dir":"/nonexistent"}"#),
    ),
    ("POST", "/v1/exec", Some(r#"{"command":[]}"#)),
    (
        "POST",
        "/v1/exec",
        Some(r#"{"command":["true"],"timeout":"bad"}"#),
    ),
    (
        "POST",
        "/v1/exec",
        Some(r#"{"command":["true"],"user":"nosuchuser"}"#),
    ),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"make-dirs","dirs":[{"path":"relative"}]}"#),
    ),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"make-dirs","dirs":[{"path":"$D/x/y"}]}"#),
    ),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"make-dirs","dirs":[{"path":"$D/x/y","make-parents":true}]}"#),
    ),
    ("GET", "/v1/files?action=list&path=$D/x", None),
    ("GET", "/v1/files?action=list&path=$D/x/&itself=true", None),
    ("GET", "/v1/files?action=list&path=$D/x&pattern=[", None),
    ("GET", "/v1/files?action=list&path=$D/nonexistent", None),
    ("GET", "/v1/files?action=read&path=$D/nonexistent", None),
    ("GET", "/v1/files?action=bogus&path=/", None),
    ("GET", "/v1/files?action=list", None),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"remove","paths":[{"path":"$D/nonexistent"}]}"#),
    ),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"remove","paths":[{"path":"$D/x"}]}"#),
    ),
    (
        "POST",
        "/v1/files",
        Some(r#"{"action":"remove","paths":[{"path":"$D/x","recursive":true}]}"#),
    ),
    ("POST", "/v1/files", Some(r#"{"action":"bogus"}"#)),
    ("GET", "/v1/logs?n=bad", None),
    ("GET", "/v1/warnings", None),
];

/// Each step's request and its normalised answer, from the server at `dir`.
async fn run(dir: &Path) -> Result<Vec<(String, Value)>> {
    let client = Client::unix(dir.join(".pebble.socket"));
    let base = dir.display().to_string();
    let mut out = Vec::new();
    let mut change = String::new();
    for (method, path, body) in SCRIPT {
        if *method == "WAIT" {
            client
                .raw(
                    Method::GET,
                    &format!("/v1/changes/{change}/wait?timeout=20s"),
                    None,
                )
                .await?;
            continue;
        }
        let path = path.replace("$D", &base).replace("$C", &change);
        let tag = if *body == Some("not json") {
            " not json"
        } else {
            ""
        };
        let body = body.map(|b| b.replace("$D", &base).into_bytes());
        let (code, bytes) = client
            .raw(Method::from_bytes(method.as_bytes())?, &path, body)
            .await?;
        let mut answer = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => {
                if let Some(id) = v["change"].as_str() {
                    change = id.to_string();
                }
                normalise(&v, &base)
            }
            Err(_) => Value::String(String::from_utf8_lossy(&bytes).replace(&base, "$BASE")),
        };
        // Pebble lists changes in its map's order, which Go makes random.
        if path.starts_with("/v1/changes?")
            && let Some(list) = answer["result"].as_array_mut()
        {
            list.sort_by_key(|c| c.to_string());
        }
        out.push((
            format!("{method} {}{tag}", path.replace(&base, "$D")),
            serde_json::json!({"status": code, "body": answer}),
        ));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_as_real_pebble_does() -> Result<()> {
    let Some(real) = reference_pebble() else {
        println!("skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    let dir = TempDir::new("e2e-differential");
    let (real_dir, cairn_dir) = (dir.join("real"), dir.join("cairn"));
    let want = {
        let _server = pebble_server(&real, &[], &real_dir, &dir.join("real.log"))?;
        run(&real_dir).await?
    };
    let got = {
        let _server = pebble_server(
            Path::new(CAIRN),
            &["pebble"],
            &cairn_dir,
            &dir.join("cairn.log"),
        )?;
        run(&cairn_dir).await?
    };
    assert_eq!(want.len(), got.len());
    let mut differ = Vec::new();
    for ((step, w), (_, g)) in want.iter().zip(&got) {
        let purpose = ON_PURPOSE.iter().find(|(s, _)| s == step);
        match (w == g, purpose) {
            (true, Some(_)) => differ.push(format!("{step}: listed as differing, but agrees")),
            (false, None) => differ.push(format!("{step}:\n  pebble: {w}\n  cairn:  {g}")),
            _ => {}
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The script did what it says: the good layer went in, a service ran.
    let step = |name: &str| &want.iter().find(|s| s.0 == name).unwrap().1;
    let started = want
        .iter()
        .filter(|s| s.0.starts_with("GET /v1/changes/"))
        .any(|s| s.1["body"]["result"]["summary"] == "Start service \"envpath\" and 1 more");
    assert!(started, "the script started no service");
    assert_eq!(step("GET /v1/services")["status"], 200);
    Ok(())
}

/// A check that does not run while the script does (its first run is an hour away).
const CLI_LAYER: &str = "services:\n  srv:\n    override: replace\n    command: sleep 400\n    startup: enabled\n  other:\n    override: replace\n    command: sleep 401\nchecks:\n  chk:\n    override: replace\n    level: alive\n    period: 1h\n    exec:\n      command: 'true'\n";

/// The CLI script: `$D` is the server's directory, `$F` a scratch directory of the test's.
const CLI_SCRIPT: &[&[&str]] = &[
    &["plan"],
    &["add", "base", "$F/layer.yaml"],
    &["add", "base", "$F/layer.yaml"],
    &["plan"],
    &["services"],
    &["services", "nope"],
    &["replan"],
    &["services"],
    &["start", "other"],
    &["start", "nope"],
    &["stop", "other"],
    &["restart", "srv"],
    &["changes"],
    &["changes", "srv"],
    &["changes", "1"],
    &["tasks", "1"],
    &["tasks", "--last=start"],
    &["tasks", "999"],
    &["checks"],
    &["check", "chk"],
    &["health"],
    &["health", "--level=alive"],
    &["notify", "bad"],
    &["notify", "example.com/x", "a=b"],
    &["notice", "999"],
    &["warnings"],
    &["okay"],
    &["mkdir", "$D/x"],
    &["mkdir", "$D/x/y/z"],
    &["ls", "$D/x"],
    &["ls", "$D/nope"],
    &["rm", "$D/nope"],
    &["push", "$F/layer.yaml", "$D/x/f.yaml"],
    &["pull", "$D/nope", "$F/pulled"],
    &["exec", "echo", "hi"],
    &["exec", "nosuchcmd"],
    &["exec", "--timeout", "100ms", "sleep", "1"],
    &["stop-checks", "chk"],
    &["start-checks", "chk"],
    &["stop-checks", "nope"],
    &["logs", "-n", "1", "nope"],
    &["services", "--format", "json"],
    &["checks", "--format", "json"],
    &["changes", "--format", "json"],
    &["notices", "--format", "json"],
    &["notices", "--format", "yaml"],
    &["services", "--format", "yaml"],
    &["checks", "--format", "yaml"],
    &["check", "chk", "--format", "yaml"],
    &["health", "--format", "yaml"],
    &["tasks", "1", "--format", "yaml"],
    &["identities", "--format", "yaml"],
    &["ls", "--format", "yaml", "$D/x"],
    &["warnings", "--format", "json"],
    &["ls", "--format", "json", "$D/x"],
    &["nonexistent-command"],
    &["services", "--bogus"],
    &["services", "--bogus=1"],
    &["add"],
    &["add", "base"],
    &["stop"],
    &["signal"],
    &["signal", "HUP"],
    &["health", "--level=bad"],
    &["add-identities"],
    &["logs", "-n"],
    &["exec", "--timeout", "x", "ls"],
    &["changes", "a", "b"],
    &["okay", "x"],
    &["tasks", "1", "extra"],
    &["--version"],
    &["exec", "--context", "srv", "sh", "-c", "env | grep ^PEBBLE"],
];

/// What must differ between two runs of a CLI command: the server's directory, times,
/// versions.
fn normalise_cli(s: &str, dir: &str) -> String {
    let s = s.replace(dir, "$D");
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive([' ', '"', '\n']) {
        let (body, end) = word.split_at(word.len() - word.ends_with([' ', '"', '\n']) as usize);
        let rfc3339 =
            time::OffsetDateTime::parse(body, &time::format_description::well_known::Rfc3339)
                .is_ok();
        let clock = body.len() == 5 && body.as_bytes()[2] == b':';
        // A version differs on purpose (see `ON_PURPOSE`: Cairn's own).
        let version = body.strip_prefix('v').is_some_and(|v| {
            v.split('.').count() == 3 && v.split('.').all(|n| n.parse::<u32>().is_ok())
        });
        out.push_str(match (rfc3339, clock, version) {
            (true, _, _) => "<time>",
            (_, true, _) => "HH:MM",
            (_, _, true) => "<version>",
            _ => body,
        });
        out.push_str(end);
    }
    out
}

/// Each CLI step's exit code, stdout and stderr from `bin` (invoked as `pebble`) against a
/// fresh server on `dir`.
fn run_cli(bin: &Path, dir: &Path, scratch: &Path, log: &Path) -> Result<Vec<(String, Value)>> {
    let _server = pebble_server(bin, &[], dir, log)?;
    let (d, f) = (dir.display().to_string(), scratch.display().to_string());
    let mut out = Vec::new();
    for args in CLI_SCRIPT {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("$D", &d).replace("$F", &f))
            .collect();
        let o = std::process::Command::new(bin)
            .args(&args)
            .env("PEBBLE", dir)
            .env_remove("PEBBLE_SOCKET")
            .env_remove("COLUMNS")
            .output()?;
        out.push((
            args.join(" ").replace(&d, "$D").replace(&f, "$F"),
            serde_json::json!([
                o.status.code(),
                normalise_cli(&String::from_utf8_lossy(&o.stdout), &d),
                normalise_cli(&String::from_utf8_lossy(&o.stderr), &d),
            ]),
        ));
    }
    Ok(out)
}

#[test]
fn cli_commands_answer_as_real_pebbles_do() -> Result<()> {
    let Some(real) = reference_pebble() else {
        println!("skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    let dir = TempDir::new("e2e-differential-cli");
    std::fs::write(dir.join("layer.yaml"), CLI_LAYER)?;
    let link = crate::pebble_cli::pebble_link(&dir)?;
    let want = run_cli(&real, &dir.join("real"), &dir, &dir.join("real.log"))?;
    // Directories of one length: Pebble wraps long errors at 80 columns.
    let got = run_cli(&link, &dir.join("ours"), &dir, &dir.join("ours.log"))?;
    let differ: Vec<String> = want
        .iter()
        .zip(&got)
        .filter(|(w, g)| w != g)
        .map(|((step, w), (_, g))| format!("pebble {step}:\n  pebble: {w}\n  cairn:  {g}"))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The script did what it says.
    let step = |name: &str| &want.iter().find(|s| s.0 == name).unwrap().1;
    assert_eq!(step("exec echo hi")[1], "hi\n");
    Ok(())
}
