//! `exec`.

use super::{Container, Outcome};

#[tokio::test(flavor = "multi_thread")]
async fn output_stderr_and_exit_code_pass_through() {
    let c = Container::start("exec").await;
    assert_eq!(
        c.run(&[
            "exec",
            "--env",
            "X=1",
            "--",
            "sh",
            "-c",
            "echo hi $X; echo err >&2; exit 3"
        ])
        .await,
        Outcome {
            code: 3,
            out: "hi 1\n".into(),
            err: "err\n".into()
        }
    );
    let wd = c.dir.to_str().unwrap();
    assert_eq!(
        c.run(&["exec", "-w", wd, "pwd"]).await,
        Outcome::ok(&format!("{wd}\n"))
    );
    assert_eq!(
        c.run(&["exec", "--env", "X", "true"]).await,
        Outcome::error("invalid environment variable \"X\": expected KEY=VALUE")
    );
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_forwarded_unless_it_is_a_terminal() {
    let c = Container::start("exec-stdin").await;
    assert_eq!(
        c.run_with(&["exec", "cat"], Some(b"some input")).await,
        Outcome::ok("some input")
    );
    // A terminal is not read without -i.
    assert_eq!(c.run(&["exec", "cat"]).await, Outcome::ok(""));
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_kills_the_command() {
    let c = Container::start("exec-timeout").await;
    let o = c.run(&["exec", "--timeout", "200ms", "sleep", "5"]).await;
    assert_eq!(
        o,
        Outcome::error(
            "cannot perform the following tasks:\n- Execute command \"sleep\" (timed out after 200ms: context deadline exceeded)"
        )
    );
    c.close().await;
}
