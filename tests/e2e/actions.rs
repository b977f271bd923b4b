//! Actions: `cairn run-action` through the daemon into the charm and back (issue 6).

use std::time::Duration;

use anyhow::Result;

use crate::common::*;

#[test]
fn issue6_run_action_prints_results_failures_and_refuses_bad_params() -> Result<()> {
    let d = Daemon::start("actions", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;

    // Results and log come back from the charm; defaults are applied.
    let out = d.ok(&[
        "run-action",
        "mis/0",
        "echo",
        "message=hi",
        "times=3",
        "--wait",
    ])?;
    assert!(out.contains("status: completed\n"), "{out}");
    assert!(
        out.contains("results:\n  echo: \"hihihi\"\n  times: \"3\"\n"),
        "{out}"
    );
    assert!(out.contains(" echoing 3 time(s)\n"), "{out}");
    let out = d.ok(&[
        "run-action",
        "mis/0",
        "echo",
        "message=x",
        "--wait",
        "--format",
        "json",
    ])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(v["params"], serde_json::json!({"message": "x", "times": 1}));
    assert_eq!(v["results"]["echo"], "x");

    // A failing action shows its message and exits 1; the unit is not in error.
    let out = d.cli(&["run-action", "mis/0", "fail", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("status: failed\nmessage: \"asked to fail\"\n"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("action ")
            && String::from_utf8_lossy(&out.stderr).contains(" failed: asked to fail"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = d.cli(&["run-action", "mis/0", "crash", "--wait"])?;
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("status: failed\n"), "{stdout}");
    assert!(stdout.contains("misbehave: crash requested"), "{stdout}");
    d.wait_status("mis/0", "active", "", Duration::from_secs(5))?;

    // Bad parameters are refused before the charm runs: no new event.
    let before = d.events("mis/0")?.len();
    for (args, msg) in [
        (
            vec!["times=lots", "message=x"],
            "invalid parameters for action \"echo\": times: expected integer, got \"lots\"",
        ),
        (
            vec![],
            "invalid parameters for action \"echo\": missing required parameter \"message\"",
        ),
        (
            vec!["message=x", "colour=red"],
            "invalid parameters for action \"echo\": unknown parameter \"colour\"",
        ),
    ] {
        let mut all = vec!["run-action", "mis/0", "echo"];
        all.extend(args);
        let out = d.cli(&all)?;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!("error: {msg}")
        );
    }
    let out = d.cli(&["run-action", "mis/0", "nope"])?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("action \"nope\" not defined"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.events("mis/0")?.len(), before);

    // Without --wait it is queued; show-action finds it finished later.
    let out = d.ok(&["run-action", "mis/0", "echo", "message=later"])?;
    let id = out.split_whitespace().nth(1).must("action id")?.to_string();
    let shown = wait_for(Duration::from_secs(10), || {
        let s = d.ok(&["show-action", &id]).ok()?;
        s.contains("status: completed").then_some(s)
    })
    .must("action completed")?;
    assert!(shown.contains("echo: \"later\""), "{shown}");
    let out = d.cli(&["show-action", "999"])?;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: action \"999\" not found"
    );
    Ok(())
}
