//! Relations between real charms with real workloads: `cairn integrate web db` hands the
//! database's URL (published by db's leader) to web's server, a port change on db reaches
//! web, and `cairn remove-relation` takes it away again.

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

#[test]
fn integrating_web_with_db_hands_the_database_url_to_the_server_until_removed() -> Result<()> {
    let d = Daemon::start("relate", &[])?;
    let web_port = d.deploy_web(&[])?;
    let db_port = free_port();
    let data = d.dir.join("db-data");
    d.ok(&[
        "deploy",
        &example("db"),
        "--config",
        &format!("port={db_port}"),
        "--config",
        &format!("data-dir={}", data.display()),
    ])?;
    d.wait_status("db/0", "active", "serving", Duration::from_secs(20))?;
    let out = d.ok(&["integrate", "web", "db"])?;
    assert!(out.contains("related web:db and db:database"), "{out}");
    let url = format!("http://127.0.0.1:{db_port}");
    d.wait_status("web/0", "active", &url, Duration::from_secs(20))?;
    let env = eventually(Duration::from_secs(10), || {
        server_env(web_port).filter(|e| env_value(e, "DB_URL").is_some())
    })
    .must("the web server with DB_URL")?;
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
    // db heard web's site.
    let log = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(d.dir.join("units/db-0/unit.log")).ok()?;
        log.contains(&format!("client web/0 serves http://127.0.0.1:{web_port}/"))
            .then_some(log)
    });
    assert!(log.is_some(), "{}", d.log());
    // db moves: its leader publishes the new URL, web's server gets it.
    let db_port2 = free_port();
    d.ok(&["config", "db", &format!("port={db_port2}")])?;
    let url2 = format!("http://127.0.0.1:{db_port2}");
    d.wait_status("web/0", "active", &url2, Duration::from_secs(20))?;
    let env = eventually(Duration::from_secs(10), || {
        server_env(web_port).filter(|e| env_value(e, "DB_URL").as_deref() == Some(url2.as_str()))
    });
    assert!(env.is_some(), "{}", d.log());
    // Removed: web runs without a database again.
    let refused = d.cli(&["integrate", "web", "db"])?;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("already exists"),
        "{refused:?}"
    );
    d.ok(&["remove-relation", "web", "db"])?;
    d.wait_status(
        "web/0",
        "active",
        &format!("serving on port {web_port}"),
        Duration::from_secs(20),
    )?;
    let env = eventually(Duration::from_secs(10), || {
        server_env(web_port).filter(|e| env_value(e, "DB_URL").is_none())
    });
    assert!(env.is_some(), "{}", d.log());
    let events: Vec<String> = d
        .events("web/0")?
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    let tail: Vec<&str> = events.iter().rev().take(2).map(String::as_str).collect();
    assert_eq!(
        tail,
        ["db-relation-broken", "db-relation-departed"],
        "{events:?}"
    );
    let table = d.ok(&["status", "--relations"])?;
    assert!(!table.contains("db:database"), "{table}");
    Ok(())
}
