//! Relations between real charms with real workloads: `cairn integrate web db` hands the
//! URL db's leader publishes to web's server (its environment and a page it serves); when
//! the leader goes, the next leader republishes its own URL and web follows; `cairn
//! remove-relation` takes it away again.

use std::time::Duration;

use anyhow::Result;

use crate::common::*;

/// The environment of the web server process (the one whose `PORT` is `port`).
fn server_env(port: u16) -> Option<Vec<String>> {
    let want = port.to_string();
    processes_with(&format!("PORT={port}"))
        .into_iter()
        .map(|(_, env)| env)
        .find(|env| env_value(env, "PORT").as_deref() == Some(want.as_str()))
}

/// A port such that it and the `n - 1` after it are free (db unit K listens on port+K).
fn free_port_run(n: u16) -> u16 {
    loop {
        let base = free_port();
        let all_free = (0..n).all(|k| {
            base.checked_add(k)
                .is_some_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if all_free {
            return base;
        }
    }
}

/// Waits until web serves `want` as `/db.txt` on `port`.
fn serves_db_url(port: u16, want: &str) -> bool {
    eventually(Duration::from_secs(10), || {
        let (status, body) = http(port, "GET", "/db.txt", "").ok()?;
        (status.contains("200") && body.trim() == want).then_some(())
    })
    .is_some()
}

#[test]
fn web_follows_the_db_leaders_url_through_failover_until_the_relation_is_removed() -> Result<()> {
    let d = Daemon::start("relate", &[])?;
    let site = d.dir.join("site");
    let web_port = d.deploy_web(&[&format!("site-dir={}", site.display())])?;
    let db_port = free_port_run(3);
    let data = d.dir.join("db-data");
    d.ok(&[
        "deploy",
        &example("db"),
        "-n",
        "3",
        "--config",
        &format!("port={db_port}"),
        "--config",
        &format!("data-dir={}", data.display()),
    ])?;
    for k in 0..3u16 {
        let unit = format!("db/{k}");
        let serving = format!("serving on 127.0.0.1:{}", db_port + k);
        d.wait_status(&unit, "active", &serving, Duration::from_secs(30))?;
    }
    let out = d.ok(&["integrate", "web", "db"])?;
    assert!(out.contains("related web:db and db:database"), "{out}");
    let url = format!("http://127.0.0.1:{db_port}");
    d.wait_status("web/0", "active", &url, Duration::from_secs(20))?;
    assert!(serves_db_url(web_port, &url), "{}", d.log());
    let env = server_env(web_port).must("the web server")?;
    assert_eq!(env_value(&env, "DB_URL").as_deref(), Some(url.as_str()));
    let table = d.ok(&["status", "--relations"])?;
    let row = table
        .lines()
        .find(|l| l.starts_with("db:database"))
        .must("a relation row")?;
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        ["db:database", "web:db", "cairn-kv", "regular"],
        "{table}"
    );
    // Every db unit heard web's site.
    for k in 0..3 {
        let log = eventually(Duration::from_secs(10), || {
            let log = std::fs::read_to_string(d.dir.join(format!("units/db-{k}/unit.log"))).ok()?;
            log.contains(&format!("client web/0 serves http://127.0.0.1:{web_port}/"))
                .then_some(log)
        });
        assert!(log.is_some(), "db/{k}: {}", d.log());
    }
    let refused = d.cli(&["integrate", "web", "db"])?;
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already exists"),
        "{refused:?}"
    );

    // The leader goes: db/1 is elected and publishes its own URL; web's server follows.
    d.ok(&["remove-unit", "db/0"])?;
    let url1 = format!("http://127.0.0.1:{}", db_port + 1);
    d.wait_status("web/0", "active", &url1, Duration::from_secs(20))?;
    assert!(serves_db_url(web_port, &url1), "{}", d.log());
    let db1: Vec<String> = event_names(&d, "db/1")?;
    assert!(db1.iter().any(|e| e == "leader-elected"), "{db1:?}");
    let web: Vec<String> = event_names(&d, "web/0")?;
    assert!(web.iter().any(|e| e == "db-relation-departed"), "{web:?}");

    // Removed: web runs without a database again and says so.
    d.ok(&["remove-relation", "web", "db"])?;
    d.wait_status(
        "web/0",
        "active",
        "database relation 0 removed",
        Duration::from_secs(20),
    )?;
    let gone = eventually(Duration::from_secs(10), || {
        let (status, _) = http(web_port, "GET", "/db.txt", "").ok()?;
        status.contains("404").then_some(())
    });
    assert!(gone.is_some(), "{}", d.log());
    let env = eventually(Duration::from_secs(10), || {
        server_env(web_port).filter(|e| env_value(e, "DB_URL").is_none())
    });
    assert!(env.is_some(), "{}", d.log());
    let events: Vec<String> = event_names(&d, "web/0")?;
    let tail: Vec<&str> = events.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "db-relation-broken",
            "db-relation-departed",
            "db-relation-departed"
        ],
        "{events:?}"
    );
    let table = d.ok(&["status", "--relations"])?;
    assert!(!table.contains("db:database"), "{table}");
    Ok(())
}
