//! Pebble's command line against one container: `cairn --container web/0 …` on a
//! unit of the daemon, and `pebble …` (a symlink) with `PEBBLE` set against `pebble run`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::common::*;

/// Runs `cairn --container <c> args…` and returns (exit code, stdout, stderr).
fn pebble_cli(d: &Daemon, container: &str, args: &[&str]) -> Result<(i32, String, String)> {
    let mut all = vec!["--container", container];
    all.extend_from_slice(args);
    let out = d.cli(&all)?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The row of `services` output for `svc`, split on whitespace runs.
fn service_row(table: &str, svc: &str) -> Option<Vec<String>> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(svc))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

#[test]
fn cli_drives_a_unit_container() -> Result<()> {
    let d = Daemon::start("pebblecli", &[])?;
    let port = d.deploy_web(&[])?;

    // The unit's container is the daemon's: a standalone Pebble is refused in it (its
    // supervisor holds no lock file: the daemon's lock on the state directory covers it).
    let container = d.dir.path().join("units/web-0/containers/web");
    let out = Command::new(CAIRN)
        .args(["pebble", "run", "--hold"])
        .env("PEBBLE", &container)
        .env_remove("PEBBLE_SOCKET")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("it belongs to the cairn daemon of"),
        "{stderr}"
    );

    // services: Pebble's table.
    let (code, out, _) = pebble_cli(&d, "web/0", &["services"])?;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Service  Startup  Current  Since\n"),
        "{out}"
    );
    let row = service_row(&out, "http").must("http row")?;
    assert_eq!(&row[..4], ["http", "enabled", "active", "today"], "{out}");
    // The same container named in full.
    let (_, full, _) = pebble_cli(&d, "web/0/web", &["services", "--abs-time"])?;
    assert!(full.contains("http     enabled  active   20"), "{full}");

    // logs -f follows the service's output as it comes.
    let mut follower = Command::new(CAIRN)
        .arg("--dir")
        .arg(&d.dir)
        .args(["--container", "web/0", "logs", "-f", "-n", "0", "http"])
        .stdout(Stdio::piped())
        .spawn()?;
    let (tx, rx) = mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    http_get(port)?;
    let line = rx.recv_timeout(Duration::from_secs(10));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    );
    let status = follower.wait()?;
    let line = line.map_err(|_| anyhow::anyhow!("logs -f showed nothing"))?;
    assert!(
        line.contains(" [http] ") && line.contains("\"GET / HTTP/1.0\" 200"),
        "{line}"
    );
    assert!(status.success(), "logs -f ended with {status:?}");

    // stop / start wait for their change; the workload really goes and comes back.
    let (code, out, err) = pebble_cli(&d, "web/0", &["stop", "http"])?;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(http_get(port).is_err(), "stopped service still answers");
    let (_, out, _) = pebble_cli(&d, "web/0", &["services", "http"])?;
    assert_eq!(service_row(&out, "http").must("row")?[2], "inactive");
    let (code, id, _) = pebble_cli(&d, "web/0", &["start", "--no-wait", "http"])?;
    assert_eq!(code, 0);
    assert!(id.trim().parse::<u64>().is_ok(), "{id}");
    eventually(Duration::from_secs(10), || http_get(port).ok()).must("restarted workload")?;

    // changes and tasks.
    let (_, changes, _) = pebble_cli(&d, "web/0", &["changes"])?;
    assert!(changes.starts_with("ID   Status  Spawn"), "{changes}");
    assert!(changes.contains("Stop service \"http\""), "{changes}");
    let (_, tasks, _) = pebble_cli(&d, "web/0", &["tasks", "--last=stop"])?;
    assert!(tasks.starts_with("Status  Spawn"), "{tasks}");
    assert!(tasks.contains("Done") && tasks.contains("Stop service \"http\""));
    let (code, _, err) = pebble_cli(&d, "web/0", &["tasks", "--last=nothing"])?;
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "error: no changes of type \"nothing\" found");
    let (code, _, _) = pebble_cli(&d, "web/0", &["tasks", "--last=nothing?"])?;
    assert_eq!(code, 0);

    // plan, health, version.
    let (_, plan, _) = pebble_cli(&d, "web/0", &["plan"])?;
    assert!(
        plan.contains(&format!("command: python3 -m http.server {port}")),
        "{plan}"
    );
    let (code, health, _) = pebble_cli(&d, "web/0", &["health"])?;
    assert_eq!((code, health.as_str()), (0, "healthy\n"));
    let (_, version, _) = pebble_cli(&d, "web/0", &["version"])?;
    let v = format!("v{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(version, format!("client  {v}\nserver  {v}\n"));

    // Errors are one line from the API, the exit code is 1 and nothing changes.
    let (code, _, err) = pebble_cli(&d, "web/0", &["start", "nope"])?;
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: cannot start services: service \"nope\" does not exist"
    );
    let (code, _, err) = pebble_cli(&d, "web/0", &["signal", "hup", "http"])?;
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "error: signal name must be uppercase, for example HUP"
    );
    let (code, _, err) = pebble_cli(&d, "web/9", &["services"])?;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot find unit \"web/9\""),
        "{err}"
    );
    assert!(http_get(port).is_ok());
    Ok(())
}

/// A `pebble` symlink to the binary under test.
pub fn pebble_link(dir: &Path) -> Result<std::path::PathBuf> {
    let link = dir.join("bin/pebble");
    std::fs::create_dir_all(link.parent().unwrap())?;
    std::os::unix::fs::symlink(CAIRN, &link)?;
    Ok(link)
}

/// `bin args…` as a `pebble run` on `pebble_dir` (`PEBBLE` set, no `PEBBLE_SOCKET`), its
/// stderr to `stderr`; returns once its socket is there. Killed with its services on drop.
fn serve_pebble(bin: &Path, args: &[&str], pebble_dir: &Path, stderr: Stdio) -> Result<ChildGuard> {
    let server = ChildGuard {
        child: Command::new(bin)
            .args(args)
            .env("PEBBLE", pebble_dir)
            .env_remove("PEBBLE_SOCKET")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?,
        needle: pebble_dir.display().to_string(),
    };
    eventually(Duration::from_secs(10), || {
        pebble_dir.join(".pebble.socket").exists().then_some(())
    })
    .must("socket")?;
    Ok(server)
}

#[test]
fn pebble_cli_with_env_and_run_args() -> Result<()> {
    let dir = TempDir::new("e2e-pebbleenv");
    let pebble_dir = dir.join("pebble");
    std::fs::create_dir_all(pebble_dir.join("layers"))?;
    std::fs::write(
        pebble_dir.join("layers/001-base.yaml"),
        "services:\n  svc:\n    override: replace\n    command: sleep [ 1000 ]\n    startup: enabled\n",
    )?;
    let link = pebble_link(&dir)?;
    let mut server = serve_pebble(
        &link,
        &["run", "--args", "svc", "1234", ";", "--hold"],
        &pebble_dir,
        std::fs::File::create(dir.join("pebble.log"))?.into(),
    )?;
    let pebble = |args: &[&str]| -> Result<(i32, String, String)> {
        let out = Command::new(&link)
            .args(args)
            .env("PEBBLE", &pebble_dir)
            .env_remove("PEBBLE_SOCKET")
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let result = (|| -> Result<()> {
        // --hold: nothing started; --args replaced the default arguments.
        let (_, out, _) = pebble(&["services"])?;
        assert_eq!(
            service_row(&out, "svc").must("row")?[..3],
            ["svc", "enabled", "inactive"]
        );
        let (_, plan, _) = pebble(&["plan"])?;
        assert!(plan.contains("command: sleep [ 1234 ]"), "{plan}");
        let (code, _, err) = pebble(&["autostart"])?;
        assert_eq!(code, 0, "{err}");
        let procs = processes_with(&pebble_dir.display().to_string());
        let server_pid = server.child.id() as i32;
        let cmdlines: Vec<String> = procs
            .iter()
            .filter(|(pid, _)| *pid != server_pid)
            .map(|(pid, _)| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(cmdlines, ["sleep 1234 "]);

        // add a layer from a file, replan, and the new service runs.
        let layer = dir.join("extra.yaml");
        std::fs::write(
            &layer,
            "services:\n  two:\n    override: replace\n    command: sleep 999\n    startup: enabled\n",
        )?;
        let (code, out, err) = pebble(&["add", "extra", layer.to_str().unwrap()])?;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            format!(
                "Layer \"extra\" added successfully from {:?}\n",
                layer.display().to_string()
            )
        );
        let (code, _, err) = pebble(&["add", "extra", layer.to_str().unwrap()])?;
        assert_eq!(code, 1);
        assert_eq!(err.trim(), "error: layer \"extra\" already exists");
        let (code, _, err) = pebble(&["replan"])?;
        assert_eq!(code, 0, "{err}");
        let (_, out, _) = pebble(&["services"])?;
        assert_eq!(service_row(&out, "two").must("row")?[2], "active", "{out}");
        let (code, _, err) = pebble(&["signal", "TERM", "two"])?;
        assert_eq!(code, 0, "{err}");
        let (_, out, _) = pebble(&["changes", "two"])?;
        assert!(out.contains("Replan service \"svc\" and 1 more"), "{out}");
        Ok(())
    })();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let status = server.child.wait()?;
    if let Err(e) = result {
        bail!(
            "{e:#}\n{}",
            std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
        );
    }
    assert!(status.success());
    Ok(())
}

#[test]
fn a_charm_reads_the_typed_plan_and_signals_services() -> Result<()> {
    let d = Daemon::start("charmsignal", &[])?;
    d.ok(&["deploy", &program("misbehave"), "--name", "mis"])?;
    d.wait_status("mis/0", "active", "", Duration::from_secs(15))?;
    d.ok(&["config", "mis", "mode=pebble"])?;
    d.wait_status("mis/0", "active", "pebble ok", Duration::from_secs(15))?;
    // The guest's SIGHUP reached the probe's main process, which logged it.
    let seen = std::cell::RefCell::new(String::new());
    let got = eventually(Duration::from_secs(15), || {
        let answer = pebble_cli(&d, "mis/0", &["logs", "probe"]);
        *seen.borrow_mut() = format!("{answer:?}");
        let (_, logs, _) = answer.ok()?;
        logs.contains("[probe] got-hup").then_some(logs)
    });
    assert!(
        got.is_some(),
        "last `pebble logs probe`: {}\n{}",
        seen.borrow(),
        d.log()
    );
    // requires/after: helper started before probe in the replan change.
    let (_, tasks, _) = pebble_cli(&d, "mis/0", &["tasks", "--last=replan"])?;
    let helper = tasks.find("Start service \"helper\"").must("helper task")?;
    let probe = tasks.find("Start service \"probe\"").must("probe task")?;
    assert!(helper < probe, "{tasks}");
    Ok(())
}

/// Runs `cairn pebble run` on a layer until it exits by itself; returns its exit code.
fn pebble_run_until_exit(name: &str, layer: &str) -> Result<Option<i32>> {
    let dir = TempDir::new(&format!("e2e-{name}"));
    std::fs::create_dir_all(dir.join("layers"))?;
    std::fs::write(dir.join("layers/001-base.yaml"), layer)?;
    let mut child = Command::new(CAIRN)
        .args(["pebble", "run"])
        .env("PEBBLE", &dir)
        .env_remove("PEBBLE_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let code = eventually(Duration::from_secs(15), || child.try_wait().ok().flatten());
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let left = processes_with(&dir.display().to_string());
    for (pid, _) in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert_eq!(left.len(), 0, "services outlived pebble run");
    Ok(code.and_then(|s| s.code()))
}

#[test]
fn pebble_run_exits_with_pebbles_codes_on_shutdown_actions() -> Result<()> {
    let layer = |cmd: &str, on: &str, action: &str| {
        format!(
            "services:\n  svc:\n    override: replace\n    command: sh -c '{cmd}'\n    startup: enabled\n    {on}: {action}\n  other:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n"
        )
    };
    assert_eq!(
        pebble_run_until_exit(
            "exitfail",
            &layer("sleep 1.2; exit 3", "on-failure", "shutdown")
        )?,
        Some(10)
    );
    assert_eq!(
        pebble_run_until_exit(
            "exitok",
            &layer("sleep 1.2; exit 0", "on-success", "shutdown")
        )?,
        Some(0)
    );
    assert_eq!(
        pebble_run_until_exit(
            "exitsuccess",
            &layer("sleep 1.2; exit 5", "on-failure", "success-shutdown")
        )?,
        Some(0)
    );
    assert_eq!(
        pebble_run_until_exit(
            "exitfailure",
            &layer("sleep 1.2; exit 0", "on-success", "failure-shutdown")
        )?,
        Some(10)
    );
    // A failing check whose service says `on-check-failure: shutdown`: exit 11 (the check
    // fails after the service's 1 s okay delay; Pebble ignores check failures while a
    // service is still starting).
    assert_eq!(
        pebble_run_until_exit(
            "exitcheck",
            "services:\n  svc:\n    override: replace\n    command: sleep 1000\n    startup: enabled\n    on-check-failure:\n      probe: shutdown\nchecks:\n  probe:\n    override: replace\n    period: 700ms\n    threshold: 2\n    exec:\n      command: 'false'\n"
        )?,
        Some(11)
    );
    Ok(())
}

#[test]
fn cli_push_pull_ls_mkdir_rm() -> Result<()> {
    let dir = TempDir::new("e2e-clifiles");
    let pebble_dir = dir.join("pebble");
    let server = serve_pebble(
        Path::new(CAIRN),
        &["pebble", "run", "--create-dirs"],
        &pebble_dir,
        Stdio::null(),
    )?;
    let cli = |args: &[&str]| -> Result<(i32, String, String)> {
        let out = Command::new(CAIRN)
            .args(args)
            .env("PEBBLE", &pebble_dir)
            .env_remove("PEBBLE_SOCKET")
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let remote = dir.join("remote");
    let local = dir.join("local.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data)?;
    let target = remote.join("sub/data.bin");
    let (code, _, err) = cli(&[
        "push",
        "-p",
        "-m",
        "640",
        local.to_str().unwrap(),
        target.to_str().unwrap(),
    ])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&target)?, data);
    let (_, ls, _) = cli(&["ls", "-l", remote.join("sub").to_str().unwrap()])?;
    assert!(ls.starts_with("-rw-r-----  root  root   300kB  "), "{ls}");
    assert!(ls.trim_end().ends_with("data.bin"), "{ls}");
    let (_, names, _) = cli(&["ls", &format!("{}/*.bin", remote.join("sub").display())])?;
    assert_eq!(names, "data.bin\n");
    let back = dir.join("back.bin");
    let (code, _, err) = cli(&["pull", target.to_str().unwrap(), back.to_str().unwrap()])?;
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&back)?, data);
    let (code, _, err) = cli(&[
        "pull",
        remote.join("nope").to_str().unwrap(),
        back.to_str().unwrap(),
    ])?;
    assert_eq!(code, 1);
    // Wrapped at 80 columns, as Pebble wraps it.
    assert_eq!(
        err.split_whitespace().collect::<Vec<_>>().join(" "),
        format!(
            "error: stat {}: no such file or directory",
            remote.join("nope").display()
        )
    );
    assert_eq!(
        std::fs::read(&back)?,
        data,
        "a failed pull changed the local file"
    );
    let (code, _, _) = cli(&["mkdir", "-p", remote.join("x/y").to_str().unwrap()])?;
    assert_eq!(code, 0);
    let (code, _, err) = cli(&["rm", remote.to_str().unwrap()])?;
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("error: remove {}: directory not empty", remote.display())
    );
    let (code, _, _) = cli(&["rm", "-r", remote.to_str().unwrap()])?;
    assert_eq!(code, 0);
    assert!(!remote.exists());

    // exec: output, stderr, exit code and stdin pass through.
    let (code, out, err) = cli(&[
        "exec",
        "--env",
        "X=1",
        "--",
        "sh",
        "-c",
        "echo hi $X; echo err >&2; exit 3",
    ])?;
    assert_eq!((code, out.as_str(), err.as_str()), (3, "hi 1\n", "err\n"));
    let out = Command::new(CAIRN)
        .args(["exec", "cat"])
        .env("PEBBLE", &pebble_dir)
        .env_remove("PEBBLE_SOCKET")
        .stdin(std::fs::File::open(&local)?)
        .output()?;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, data);
    let (code, _, err) = cli(&["exec", "--timeout", "200ms", "sleep", "5"])?;
    assert_eq!(code, 1);
    assert!(err.contains("timed out after 200ms"), "{err}");
    drop(server);
    Ok(())
}

/// `pebble run --identities`: a local identity takes a user's default access away, a
/// basic-auth metrics identity scrapes `/v1/metrics` over plain HTTP (and nothing else), and
/// the identities outlive a restart.
#[test]
fn identities_seeded_at_run_restrict_local_users_and_let_a_metrics_user_scrape_over_http()
-> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("e2e-identities");
    let pebble_dir = dir.join("pebble");
    std::fs::create_dir_all(pebble_dir.join("layers"))?;
    for d in [dir.path(), pebble_dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    // `openssl passwd -6 -salt saltsalt secret`.
    let ids = dir.join("ids.yaml");
    std::fs::write(
        &ids,
        "identities:\n    nobody:\n        access: untrusted\n        local:\n            user-id: 65534\n    scraper:\n        access: metrics\n        basic:\n            password: $6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n",
    )?;
    let link = pebble_link(&dir)?;
    let port = free_port();
    let start = |extra: &[&str]| -> Result<ChildGuard> {
        let _ = std::fs::remove_file(pebble_dir.join(".pebble.socket"));
        let http = format!("127.0.0.1:{port}");
        let mut args = vec!["run", "--http", http.as_str()];
        args.extend(extra);
        let guard = serve_pebble(&link, &args, &pebble_dir, Stdio::null())?;
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .must("the HTTP listener")?;
        Ok(guard)
    };
    // The status code of a GET over HTTP, with basic credentials if given.
    let http_status = |path: &str, creds: Option<&str>| -> Result<String> {
        use base64::Engine as _;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
        let auth = creds
            .map(|c| {
                format!(
                    "Authorization: Basic {}\r\n",
                    base64::engine::general_purpose::STANDARD.encode(c)
                )
            })
            .unwrap_or_default();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n")?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)?;
        Ok(reply.split(' ').nth(1).unwrap_or_default().to_string())
    };
    let server = start(&["--identities", &ids.display().to_string()])?;
    // uid 65534 reads by default, but its identity is untrusted.
    let socket = pebble_dir.join(".pebble.socket");
    let as_nobody = format!(
        "import os, socket\nos.setgroups([]); os.setgid(65534); os.setuid(65534)\ns = socket.socket(socket.AF_UNIX); s.connect({:?})\ns.sendall(b'GET /v1/services HTTP/1.0\\r\\nHost: x\\r\\n\\r\\n')\nprint(s.recv(65536).decode().split(' ')[1])\n",
        socket.display().to_string()
    );
    let out = Command::new("python3").args(["-c", &as_nobody]).output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "401",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(http_status("/v1/metrics", Some("scraper:secret"))?, "200");
    assert_eq!(http_status("/v1/metrics", Some("scraper:wrong"))?, "401");
    assert_eq!(http_status("/v1/metrics", None)?, "401");
    assert_eq!(http_status("/v1/services", Some("scraper:secret"))?, "401");
    assert_eq!(http_status("/v1/health", None)?, "200");
    drop(server);
    // Persisted with the rest of the state.
    let _server = start(&[])?;
    let out = Command::new(&link)
        .arg("identities")
        .env("PEBBLE", &pebble_dir)
        .env_remove("PEBBLE_SOCKET")
        .output()?;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("nobody   untrusted  local"), "{table}");
    assert!(table.contains("scraper  metrics    basic"), "{table}");
    Ok(())
}

/// A self-signed client certificate and its key (`openssl req -x509`, ed25519) in `dir`.
fn client_certificate(dir: &Path, name: &str) -> Result<(String, String)> {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ed25519", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={name}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()?;
    if !out.status.success() {
        bail!("openssl: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok((cert.display().to_string(), key.display().to_string()))
}

/// `pebble run --https` beside real Pebble's: a client presenting a cert identity's
/// certificate reads, but may not write with read access; an unknown certificate is
/// refused per request (401), no certificate at the handshake; the same answers from
/// both. curl is the client, as an operator's would be.
#[test]
fn a_client_certificate_identity_reads_over_https_as_on_real_pebble() -> Result<()> {
    for tool in ["curl", "openssl"] {
        if Command::new(tool).arg("--version").output().is_err() {
            println!("skipped: {tool} is not installed (.ci/run installs it)");
            return Ok(());
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("e2e-https");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let (reader_pem, reader_key) = client_certificate(&dir, "reader")?;
    let (stranger_pem, stranger_key) = client_certificate(&dir, "stranger")?;
    let pem = std::fs::read_to_string(&reader_pem)?;
    let indented: String = pem
        .lines()
        .map(|l| format!("                {l}\n"))
        .collect();
    let ids = dir.join("ids.yaml");
    std::fs::write(
        &ids,
        format!(
            "identities:\n    reader:\n        access: read\n        cert:\n            pem: |\n{indented}"
        ),
    )?;
    let link = pebble_link(&dir)?;
    // Each request's status code (000: no answer, the handshake failed).
    let run = |bin: &Path, name: &str| -> Result<Vec<(String, String)>> {
        let pebble_dir = dir.join(name);
        std::fs::create_dir_all(pebble_dir.join("layers"))?;
        let port = free_port();
        let https = format!("127.0.0.1:{port}");
        let ids = ids.display().to_string();
        let _server = serve_pebble(
            bin,
            &["run", "--https", &https, "--identities", &ids],
            &pebble_dir,
            Stdio::null(),
        )?;
        eventually(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        })
        .must("the HTTPS listener")?;
        let curl = |cert: Option<(&str, &str)>, method: &str, path: &str| -> Result<String> {
            let mut cmd = Command::new("curl");
            cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-X", method]);
            if let Some((pem, key)) = cert {
                cmd.args(["--cert", pem, "--key", key]);
            }
            if method == "POST" {
                cmd.args(["-d", r#"{"action":"replan"}"#]);
            }
            let out = cmd.arg(format!("https://{https}{path}")).output()?;
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let reader = Some((reader_pem.as_str(), reader_key.as_str()));
        let stranger = Some((stranger_pem.as_str(), stranger_key.as_str()));
        let mut out = Vec::new();
        for (who, cert, method, path) in [
            ("nobody", None, "GET", "/v1/health"),
            ("reader", reader, "GET", "/v1/health"),
            ("reader", reader, "GET", "/v1/services"),
            ("reader", reader, "GET", "/v1/metrics"),
            ("reader", reader, "GET", "/v1/system-info"),
            ("reader", reader, "POST", "/v1/services"),
            ("stranger", stranger, "GET", "/v1/health"),
            ("stranger", stranger, "GET", "/v1/services"),
            // No pairing window is ever open in stock Pebble.
            ("reader", reader, "POST", "/v1/pairing"),
        ] {
            out.push((format!("{who} {method} {path}"), curl(cert, method, path)?));
        }
        Ok(out)
    };
    let got = run(&link, "ours")?;
    let codes: Vec<&str> = got.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(
        codes,
        [
            "000", "200", "200", "200", "200", "401", "200", "401", "401"
        ],
        "{got:?}"
    );
    // The server's identity key and certificate are kept as Pebble keeps them.
    for (p, mode) in [("identity/key.pem", 0o600), ("tls/identity.pem", 0o600)] {
        let meta = std::fs::metadata(dir.join("ours").join(p))?;
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{p}");
    }
    let Some(real) = crate::backends::reference_pebble() else {
        println!("skipped the comparison with real Pebble: none here (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    assert_eq!(run(&real, "real")?, got, "real Pebble answered otherwise");
    Ok(())
}

/// The identities commands, one script against real Pebble and against `cairn pebble run`:
/// the same exit codes, output and error texts, byte for byte (long API errors wrapped at 80
/// columns as Pebble wraps them).
#[test]
fn identities_commands_answer_as_real_pebbles_do() -> Result<()> {
    let Some(real) = crate::backends::reference_pebble() else {
        println!("skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    let dir = TempDir::new("e2e-identities-diff");
    let file = |name: &str, text: &str| -> Result<String> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p.display().to_string())
    };
    let two = file(
        "two.yaml",
        "identities:\n    bob:\n        access: admin\n        local:\n            user-id: 42\n    web:\n        access: metrics\n        basic:\n            password: $6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\n",
    )?;
    let null_bob = file("null.yaml", "identities:\n    bob: null\n")?;
    // Removing needs null values; Pebble names the first non-null identity its map meets,
    // which Go orders at random, so the file for that refusal holds one.
    let web_only = file(
        "web.yaml",
        "identities:\n    web:\n        access: metrics\n        basic:\n            password: x\n",
    )?;
    let bad = file(
        "bad.yaml",
        "identities:\n    \"1x\":\n        access: root\n        local:\n            user-id: 1\n",
    )?;
    let clash = file(
        "clash.yaml",
        "identities:\n    carol:\n        access: read\n        local:\n            user-id: 42\n",
    )?;
    let empty = file("empty.yaml", "ids: {}\n")?;
    let script: Vec<Vec<&str>> = vec![
        vec!["identities"],
        vec!["add-identities", "--from", &two],
        vec!["add-identities", "--from", &two],
        vec!["identities"],
        vec!["identities", "--format", "json"],
        vec!["identity", "bob"],
        vec!["identity", "web"],
        vec!["identity", "nope"],
        vec!["add-identities", "--from", &bad],
        vec!["add-identities", "--from", &clash],
        vec!["add-identities", "--from", &empty],
        vec!["update-identities", "--from", &null_bob],
        vec!["remove-identities", "--from", &web_only],
        vec!["update-identities", "--replace", "--from", &null_bob],
        vec!["remove-identities", "--from", &null_bob],
        vec!["identities"],
    ];
    let run = |bin: &Path, pebble: &Path| -> Result<Vec<(i32, String, String)>> {
        script
            .iter()
            .map(|args| {
                let out = Command::new(bin)
                    .args(if bin == Path::new(CAIRN) {
                        &["pebble"][..]
                    } else {
                        &[][..]
                    })
                    .args(args)
                    .env("PEBBLE", pebble)
                    .env_remove("PEBBLE_SOCKET")
                    .env_remove("COLUMNS")
                    .output()?;
                Ok((
                    out.status.code().unwrap_or(-1),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                ))
            })
            .collect()
    };
    let real_dir = dir.join("real");
    let cairn_dir = dir.join("cairn");
    let _real = crate::backends::pebble_server(&real, &[], &real_dir, &dir.join("real.log"))?;
    let _cairn = crate::backends::pebble_server(
        Path::new(CAIRN),
        &["pebble"],
        &cairn_dir,
        &dir.join("cairn.log"),
    )?;
    let want = run(&real, &real_dir)?;
    let got = run(Path::new(CAIRN), &cairn_dir)?;
    for ((args, w), g) in script.iter().zip(&want).zip(&got) {
        assert_eq!(g, w, "`{}` differs from real Pebble's", args.join(" "));
    }
    Ok(())
}

/// Layers added over the API live in memory only, as Pebble's: after a restart the plan is
/// the `layers/` directory's again. The same steps against real Pebble when it is here.
#[test]
fn api_layers_are_gone_after_a_restart_as_pebbles_are() -> Result<()> {
    let dir = TempDir::new("e2e-layers-restart");
    let extra = dir.join("extra.yaml");
    std::fs::write(
        &extra,
        "services:\n    b:\n        override: replace\n        command: sleep 200\n",
    )?;
    let plans = |bin: &Path, args: &[&str], name: &str| -> Result<(String, String)> {
        let pebble = dir.join(name);
        std::fs::create_dir_all(pebble.join("layers"))?;
        std::fs::write(
            pebble.join("layers/001-base.yaml"),
            "services:\n    a:\n        override: replace\n        command: sleep 100\n",
        )?;
        let log = dir.join(format!("{name}.log"));
        let cli = |cmd: &[&str]| -> Result<String> {
            let out = Command::new(bin)
                .args(args)
                .args(cmd)
                .env("PEBBLE", &pebble)
                .env_remove("PEBBLE_SOCKET")
                .output()?;
            anyhow::ensure!(out.status.success(), "{cmd:?}: {out:?}");
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let server = crate::backends::pebble_server(bin, args, &pebble, &log)?;
        cli(&["add", "extra", &extra.display().to_string()])?;
        let before = cli(&["plan"])?;
        drop(server);
        let _ = std::fs::remove_file(pebble.join(".pebble.socket"));
        let _server = crate::backends::pebble_server(bin, args, &pebble, &log)?;
        Ok((before, cli(&["plan"])?))
    };
    let (before, after) = plans(Path::new(CAIRN), &["pebble"], "cairn")?;
    assert!(
        before.contains("    b:") && before.contains("    a:"),
        "{before}"
    );
    assert!(
        after.contains("    a:") && !after.contains("    b:"),
        "{after}"
    );
    match crate::backends::reference_pebble() {
        Some(real) => assert_eq!(plans(&real, &[], "real")?, (before, after)),
        None => println!("not compared: no real Pebble (set CAIRN_REFERENCE_PEBBLE)"),
    }
    Ok(())
}

/// `pebble run --verbose` (and `PEBBLE_VERBOSE=1`) writes every service's output to stdout
/// in the service log's format, as real Pebble does; without either, stdout stays empty.
#[test]
fn run_verbose_echoes_service_output_as_real_pebble_does() -> Result<()> {
    let dir = TempDir::new("e2e-verbose");
    let link = pebble_link(&dir)?;
    let layer = "services:\n  srv:\n    override: replace\n    startup: enabled\n    command: sh -c 'echo one; echo two >&2; exec sleep 1000'\n";
    // What `bin run args` (with `env`) prints on stdout, times as `<time>`.
    let stdout = |bin: &Path, name: &str, args: &[&str], env: Option<(&str, &str)>| {
        let pebble_dir = dir.join(name);
        std::fs::create_dir_all(pebble_dir.join("layers"))?;
        std::fs::write(pebble_dir.join("layers/001-base.yaml"), layer)?;
        let out = dir.join(format!("{name}.out"));
        let mut cmd = Command::new(bin);
        cmd.arg("run")
            .args(args)
            .env("PEBBLE", &pebble_dir)
            .env_remove("PEBBLE_SOCKET")
            .env_remove("PEBBLE_VERBOSE")
            .stdout(std::fs::File::create(&out)?)
            .stderr(Stdio::null());
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let _server = ChildGuard {
            child: cmd.spawn()?,
            needle: pebble_dir.display().to_string(),
        };
        let want_lines = if args.is_empty() && env.is_none() {
            0
        } else {
            2
        };
        let _ = eventually(Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&out).ok()?;
            (text.lines().count() >= want_lines && pebble_dir.join(".pebble.socket").exists())
                .then_some(())
        });
        // A moment for anything that should not be there.
        std::thread::sleep(Duration::from_millis(300));
        let text = std::fs::read_to_string(&out)?;
        Ok::<_, anyhow::Error>(
            text.lines()
                .map(|l| match l.split_once(' ') {
                    Some((t, rest)) if t.len() == 24 && t.ends_with('Z') => {
                        format!("<time> {rest}")
                    }
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>(),
        )
    };
    let got = stdout(&link, "ours", &["--verbose"], None)?;
    assert_eq!(got, ["<time> [srv] one", "<time> [srv] two"]);
    assert_eq!(
        stdout(&link, "ours-env", &[], Some(("PEBBLE_VERBOSE", "1")))?,
        got
    );
    assert!(stdout(&link, "ours-quiet", &[], None)?.is_empty());
    let Some(real) = crate::backends::reference_pebble() else {
        println!("skipped the comparison with real Pebble: none here (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    assert_eq!(stdout(&real, "real", &["-v"], None)?, got);
    Ok(())
}

/// `pebble enter`, Pebble as a container's entrypoint, beside real Pebble's: each
/// subcommand runs against a supervisor started for it (services held unless `--run`),
/// with the same output, errors and exit codes (a command's own for `exec`).
#[test]
fn enter_runs_subcommands_as_real_pebble_does() -> Result<()> {
    let Some(real) = crate::backends::reference_pebble() else {
        println!("skipped: no real Pebble (set CAIRN_REFERENCE_PEBBLE)");
        return Ok(());
    };
    let dir = TempDir::new("e2e-enter");
    let link = pebble_link(&dir)?;
    let layer =
        "services:\n  srv:\n    override: replace\n    startup: enabled\n    command: sleep 1000\n";
    let script: &[&[&str]] = &[
        &["exec", "echo", "hi"],
        &["exec", "sh", "-c", "echo err >&2; exit 3"],
        &["ls", "$D/layers"],
        &["services"],
        &["plan"],
        &["--run", "plan"],
        &["-v", "exec", "true"],
        &["logs"],
        &["stop", "srv"],
    ];
    /// A step's arguments, exit code, stdout and stderr.
    type Outcome = (String, Option<i32>, String, String);
    // Each step on a fresh directory (`ours` and `real`, the same length).
    let run = |bin: &Path, name: &str| -> Result<Vec<Outcome>> {
        let mut out = Vec::new();
        for (i, step) in script.iter().enumerate() {
            let pebble_dir = dir.join(format!("{name}{i}"));
            std::fs::create_dir_all(pebble_dir.join("layers"))?;
            std::fs::write(pebble_dir.join("layers/001-base.yaml"), layer)?;
            let d = pebble_dir.display().to_string();
            let args: Vec<String> = step.iter().map(|a| a.replace("$D", &d)).collect();
            let o = Command::new(bin)
                .arg("enter")
                .args(&args)
                .env("PEBBLE", &pebble_dir)
                .env_remove("PEBBLE_SOCKET")
                .env_remove("PEBBLE_VERBOSE")
                .output()?;
            let text = |b: &[u8]| String::from_utf8_lossy(b).replace(&d, "$D");
            out.push((
                step.join(" "),
                o.status.code(),
                text(&o.stdout),
                text(&o.stderr),
            ));
        }
        Ok(out)
    };
    let got = run(&link, "ours")?;
    assert_eq!(got[0].2, "hi\n");
    assert_eq!(got[1].1, Some(3));
    let want = run(&real, "real")?;
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(w, g, "enter {}", w.0);
    }
    Ok(())
}
