//! `cairn demo`: the main job end to end, as a user would run it.
//!
//! Starts a real daemon (`cairn run`) on a fresh state directory, deploys the example
//! charms built by `cargo build-charms`, waits for them to go active, shows events and
//! status, checks the web workload answers, writes a key into the db workload and runs its
//! `backup` action, moves web to another port, and removes everything.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cairn_runtime::StatusReport;

use crate::control::{self, Request};
use crate::output;

fn examples_dir() -> Result<PathBuf> {
    let candidates = [
        std::env::current_dir()?.join("examples"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples"),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("web/charmcraft.yaml").is_file())
        .context("cannot find the examples directory (run from the repository root)")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn status(dir: &Path) -> Result<StatusReport> {
    Ok(serde_json::from_value(
        control::call(dir, &Request::Status { apps: Vec::new() }).await?,
    )?)
}

async fn wait_active(dir: &Path, unit: &str, want_message: &str) -> Result<Duration> {
    let start = Instant::now();
    loop {
        let st = status(dir).await?;
        let u = st
            .apps
            .iter()
            .flat_map(|a| &a.units)
            .find(|u| u.name == unit);
        if let Some(u) = u
            && u.status.name() == "active"
            && u.queued == 0
            && u.status.message().contains(want_message)
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{unit} did not become active: {:?}", u.map(|u| &u.status));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// First line of the reply to one HTTP/1.0 request to 127.0.0.1:`port`.
fn http(port: u16, method: &str, path: &str, body: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    Ok(buf.lines().next().unwrap_or_default().to_string())
}

/// [`http`], retried for up to 10 s while the workload comes up.
async fn http_retry(port: u16, method: &str, path: &str, body: &str) -> Result<String> {
    let start = Instant::now();
    loop {
        match http(port, method, path, body) {
            Ok(l) => return Ok(l),
            Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// Runs the tour.
pub async fn run(keep: bool) -> Result<()> {
    let examples = examples_dir()?;
    let dir = std::env::temp_dir().join(format!("cairn-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    println!("$ cairn run --dir {}   (in the background)", dir.display());
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let child = std::process::Command::new(std::env::current_exe()?)
        .args(["run", "--dir"])
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the daemon")?;
    let daemon = Daemon(child);
    let started = Instant::now();
    while !dir.join(control::SOCKET).exists() || status(&dir).await.is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!("the daemon did not come up");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "  daemon ready in {:?} (its log: {}/daemon.log)",
        started.elapsed(),
        dir.display()
    );

    let port = free_port()?;
    let db_port = free_port()?;
    let db_data = dir.join("db-data").display().to_string();
    for (charm, config) in [
        ("pause", vec![]),
        ("web", vec![("port".to_string(), port.to_string())]),
        (
            "db",
            vec![
                ("port".to_string(), db_port.to_string()),
                ("data-dir".to_string(), db_data.clone()),
            ],
        ),
    ] {
        let path = examples.join(charm);
        let shown: Vec<String> = config
            .iter()
            .map(|(k, v)| format!(" --config {k}={v}"))
            .collect();
        println!("$ cairn deploy examples/{charm}{}", shown.concat());
        control::call(
            &dir,
            &Request::Deploy {
                path: path.display().to_string(),
                name: None,
                config,
                limits: vec![],
                units: 1,
            },
        )
        .await?;
    }
    let t = wait_active(&dir, "web/0", &port.to_string()).await?;
    wait_active(&dir, "pause/0", "").await?;
    wait_active(&dir, "db/0", "serving").await?;
    println!("  web/0 active {t:?} after deploy");
    println!(
        "$ curl http://127.0.0.1:{port}/\n  {}",
        http_retry(port, "GET", "/", "").await?
    );
    println!("$ cairn integrate web db");
    let v = control::call(
        &dir,
        &Request::Integrate {
            one: "web".into(),
            other: "db".into(),
        },
    )
    .await?;
    let rel: cairn_runtime::RelationReport = serde_json::from_value(v)?;
    println!(
        "  related {} and {} (relation {}, interface {})",
        rel.requirer, rel.provider, rel.id, rel.interface
    );
    wait_active(
        &dir,
        "web/0",
        &format!("database at http://127.0.0.1:{db_port}"),
    )
    .await?;
    println!("$ cairn status --relations");
    print!("{}", output::status_table(&status(&dir).await?, true));
    println!("$ curl -X PUT http://127.0.0.1:{db_port}/keys/greeting -d hello");
    println!(
        "  {}",
        http_retry(db_port, "PUT", "/keys/greeting", "hello").await?
    );
    println!("$ cairn run-action db/0 backup name=demo --wait");
    let v = control::call(
        &dir,
        &Request::RunAction {
            unit: "db/0".into(),
            action: "backup".into(),
            params: vec![("name".into(), "demo".into())],
            wait: Some(30),
        },
    )
    .await?;
    let rec: cairn_runtime::ActionRecord = serde_json::from_value(v)?;
    print!("{}", output::action_text(&rec));
    if rec.status != cairn_runtime::ActionStatus::Completed {
        bail!("the backup action did not complete: {}", rec.message);
    }
    for unit in ["pause/0", "web/0", "db/0"] {
        println!("$ cairn events {unit}");
        let v = control::call(
            &dir,
            &Request::Events {
                unit: unit.into(),
                n: None,
            },
        )
        .await?;
        let events: Vec<cairn_runtime::HistoryEntry> = serde_json::from_value(v)?;
        print!("{}", output::events_table(&events));
    }
    let port2 = free_port()?;
    println!("$ cairn config web port={port2} --wait");
    control::call(
        &dir,
        &Request::Config {
            app: "web".into(),
            set: vec![("port".into(), port2.to_string())],
            reset: vec![],
            limits: vec![],
            wait: Some(30),
        },
    )
    .await?;
    wait_active(&dir, "web/0", &port2.to_string()).await?;
    println!(
        "$ curl http://127.0.0.1:{port2}/\n  {}",
        http_retry(port2, "GET", "/", "").await?
    );
    println!("$ cairn config web port=0");
    control::call(
        &dir,
        &Request::Config {
            app: "web".into(),
            set: vec![("port".into(), "0".into())],
            reset: vec![],
            limits: vec![],
            wait: None,
        },
    )
    .await?;
    let start = Instant::now();
    loop {
        let st = status(&dir).await?;
        let u = &st
            .apps
            .iter()
            .find(|a| a.name == "web")
            .context("web vanished")?
            .units[0];
        if u.status.name() == "blocked" {
            println!("  web/0 blocked: {}", u.status.message());
            break;
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("web/0 did not block on port 0: {:?}", u.status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for app in ["web", "pause", "db"] {
        println!("$ cairn remove {app}");
        control::call(&dir, &Request::Remove { app: app.into() }).await?;
    }
    println!("$ cairn status");
    print!("{}", output::status_table(&status(&dir).await?, true));
    drop(daemon);
    if keep {
        println!("state kept in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
