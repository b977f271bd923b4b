//! `notify`, `notices`, `notice`, `warnings` and `okay`.

use super::{Container, Outcome, mask_clock, mask_stamps};

#[tokio::test(flavor = "multi_thread")]
async fn notify_then_list_then_okay() {
    let c = Container::start("notices").await;
    assert_eq!(
        c.run(&["notices"]).await,
        Outcome {
            code: 0,
            out: String::new(),
            err: "No matching notices.\n".into()
        }
    );
    assert_eq!(
        c.run(&["notify", "example.com/backup/done", "path=/x"])
            .await,
        Outcome::ok("Recorded notice 1\n")
    );
    assert_eq!(
        c.run(&["notify", "example.com/a", "novalue"]).await,
        Outcome::error("data args must be in \"name=value\" format, not \"novalue\"")
    );
    let o = c.run(&["notices"]).await;
    let uid = nix::unistd::getuid();
    assert_eq!(
        mask_clock(&o.out),
        format!(
            "ID   User  Type    Key                      First               Repeated            Occurrences\n\
             1    {uid:<4}  custom  example.com/backup/done  today at HH:MM UTC  today at HH:MM UTC  1\n"
        )
    );
    let o = c.run(&["notice", "1"]).await;
    assert_eq!(
        mask_stamps(&o.out),
        format!(
            // As yaml.v3 writes it: a number-like string double-quoted, 4-space indents.
            "id: \"1\"\nuser-id: {uid}\ntype: custom\nkey: example.com/backup/done\n\
             first-occurred: TIME\nlast-occurred: TIME\nlast-repeated: TIME\noccurrences: 1\n\
             last-data:\n    path: /x\nexpire-after: 168h0m0s\n"
        )
    );
    assert_eq!(
        c.run(&["notice", "custom", "example.com/backup/done"])
            .await,
        o
    );
    assert_eq!(
        c.run(&["notice", "custom", "nope"]).await,
        Outcome::error("cannot find custom notice with key \"nope\"")
    );
    assert_eq!(c.run(&["okay"]).await, Outcome::ok(""));
    assert_eq!(c.run(&["notices"]).await.err, "No matching notices.\n");
    let state = std::fs::read_to_string(c.dir.join("cli.json")).unwrap();
    assert!(state.contains("\"notices-last-okayed\""), "{state}");
    c.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn warnings_and_okay_without_a_listing() {
    let c = Container::start("warnings").await;
    assert_eq!(
        c.run(&["okay"]).await,
        Outcome::error(
            "no notices or warnings have been listed; try 'pebble notices' or 'pebble warnings'"
        )
    );
    assert_eq!(
        c.run(&["okay", "--warnings"]).await,
        Outcome::error("no warnings have been listed; try 'pebble warnings'")
    );
    assert_eq!(
        c.run(&["warnings"]).await,
        Outcome {
            code: 0,
            out: String::new(),
            err: "No warnings.\n".into()
        }
    );
    assert_eq!(
        c.run(&["warnings", "--format", "json"]).await,
        Outcome::ok("{\"warnings\":[]}\n")
    );
    c.close().await;
}
