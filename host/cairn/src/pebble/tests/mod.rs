//! The Pebble-style commands against an in-process API server: each test starts
//! `cairn_api::serve` on a temporary socket over a real supervisor in a temporary directory,
//! runs command lines through the same clap definitions and dispatch as the binary, and
//! checks the exact text on stdout and stderr and the exit code, as `main` would print them.

mod changes;
mod checks;
mod exec;
mod files;
mod logs;
mod notices;
mod plan;
mod services;
mod version;

use std::path::PathBuf;
use std::time::Duration;

use cairn_api::{ApiServer, Client, ServerHandle};
use cairn_supervisor::{Supervisor, SupervisorOptions};
use clap::Parser;

use super::{ClientCommand, Io};

/// A command line as `pebble` would parse it.
#[derive(Parser)]
#[command(name = "pebble")]
struct Cli {
    #[command(subcommand)]
    command: ClientCommand,
}

/// What a command left: exit code, stdout and stderr (with `main`'s `error: …` line).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: i32,
    out: String,
    err: String,
}

impl Outcome {
    /// Success with this stdout and nothing on stderr.
    fn ok(out: &str) -> Outcome {
        Outcome {
            code: 0,
            out: out.into(),
            err: String::new(),
        }
    }

    /// Failure (exit code 1) with this error line, as `main` prints it.
    fn error(message: &str) -> Outcome {
        Outcome {
            code: 1,
            out: String::new(),
            err: format!("error: {message}\n"),
        }
    }
}

/// One container: a supervisor in a temporary directory, its API on a socket, a client.
struct Container {
    dir: PathBuf,
    sup: Supervisor,
    client: Client,
    server: Option<ServerHandle>,
}

impl Container {
    /// Starts a supervisor and its API server in a fresh directory named after the test.
    async fn start(name: &str) -> Container {
        let dir = std::env::temp_dir().join(format!("cairn-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sup = Supervisor::open(SupervisorOptions::new(dir.join("pebble"))).unwrap();
        let socket = dir.join(".pebble.socket");
        let server = cairn_api::serve(ApiServer::new(sup.clone(), None), &socket, None)
            .await
            .unwrap();
        Container {
            client: Client::unix(&socket),
            dir,
            sup,
            server: Some(server),
        }
    }

    /// Writes a file in the container's directory and returns its path.
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }

    /// Runs `pebble <args>` with stdin a terminal that is never read.
    async fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, None).await
    }

    /// Runs `pebble <args>`; with `stdin`, standard input is that data and not a terminal.
    async fn run_with(&self, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = self.run_into(args, stdin, &mut out, &mut err).await;
        Outcome {
            code,
            out: String::from_utf8(out).unwrap(),
            err: String::from_utf8(err).unwrap(),
        }
    }

    /// Runs `pebble <args>` writing into the given buffers; returns the exit code.
    async fn run_into(
        &self,
        args: &[&str],
        stdin: Option<&[u8]>,
        out: &mut Vec<u8>,
        err: &mut Vec<u8>,
    ) -> i32 {
        let argv = std::iter::once("pebble").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let mut input = stdin.unwrap_or_default();
        let mut io = Io {
            stdin: &mut input,
            stdin_is_terminal: stdin.is_none(),
            out,
            err,
            program: "pebble".into(),
            cli_state: self.dir.join("cli.json"),
        };
        match super::execute(&self.client, cli.command, &mut io).await {
            Ok(code) => code,
            Err(e) => {
                writeln!(io.err, "error: {e:#}").unwrap();
                1
            }
        }
    }

    /// Runs `pebble <args>` until `done` holds for its outcome (10 s at most).
    async fn run_until(&self, args: &[&str], done: impl Fn(&Outcome) -> bool) -> Outcome {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.run(args).await;
            if done(&o) || tokio::time::Instant::now() > deadline {
                return o;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the services and the server and removes the directory (again while the
    /// supervisor's last state save races the removal).
    async fn close(mut self) {
        self.sup.stop_all().await;
        if let Some(s) = self.server.take() {
            s.stop();
        }
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.dir).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Container {
    /// A failed test still stops its services (the tests run on a multi-thread runtime).
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            let sup = self.sup.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(sup.stop_all())
            });
            s.stop();
        }
    }
}

/// Replaces the clock in Pebble's human times ("today at 15:04 UTC") with `HH:MM`, keeping
/// the length so that tables stay aligned.
fn mask_clock(s: &str) -> String {
    const MARKER: &str = "today at ";
    let mut out = s.to_string();
    let mut from = 0;
    while let Some(i) = out[from..].find(MARKER) {
        let at = from + i + MARKER.len();
        if out.len() >= at + 5 {
            out.replace_range(at..at + 5, "HH:MM");
        }
        from = at;
    }
    out
}

/// Replaces RFC 3339 timestamps (`2026-11-22T10:11:12.345Z`, with any fraction and zone)
/// with `TIME`.
fn mask_stamps(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::new();
    let (mut i, mut copied) = (0, 0);
    while i < b.len() {
        let is_stamp = b.len() >= i + 20
            && b[i..i + 4].iter().all(u8::is_ascii_digit)
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 13] == b':';
        if !is_stamp {
            i += 1;
            continue;
        }
        let mut j = i + 19;
        while j < b.len() && (b[j].is_ascii_digit() || b"+-:.".contains(&b[j])) {
            j += 1;
        }
        if j < b.len() && b[j] == b'Z' {
            j += 1;
        }
        out.push_str(&s[copied..i]);
        out.push_str("TIME");
        (i, copied) = (j, j);
    }
    out.push_str(&s[copied..]);
    out
}

#[test]
fn masks_keep_table_widths_and_hide_stamps() {
    assert_eq!(
        mask_clock("a    today at 10:42 UTC  b"),
        "a    today at HH:MM UTC  b"
    );
    assert_eq!(
        mask_stamps("2026-11-22T10:11:12.345Z [srv] x 2026-11-22T10:11:12+01:00\n"),
        "TIME [srv] x TIME\n"
    );
}
