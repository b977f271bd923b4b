//! The Pebble API's request handling: route lookup, query parsing and body decoding (JSON
//! bodies of every endpoint, multipart file pushes), through a real server on a unix socket
//! over a real supervisor, exactly as a client's request arrives.
//!
//! Fuzz input must never run anything: before the first request the process installs a
//! seccomp filter refusing `execve` and IP sockets (so no service, exec or check command
//! runs and no check reaches a port; see `cairn_fuzz::forbid_exec_and_network`), the
//! container is isolated in a fresh root directory (the files API cannot write outside it)
//! and nothing is persisted. The supervisor keeps its state from one input to the next.
//!
//! Input: first byte = method (GET, POST, PUT, DELETE), then the request target
//! (`/v1/...?query`) up to a newline, then the Content-Type up to a newline, then the body.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use cairn_api::{ApiServer, serve};
use cairn_supervisor::{Supervisor, SupervisorOptions};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Harness {
    rt: tokio::runtime::Runtime,
    socket: PathBuf,
}

/// The fuzz directory, removed when libFuzzer exits.
static DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_dir() {
    if let Some(dir) = DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        cairn_fuzz::forbid_exec_and_network();
        // libFuzzer's C main leaves SIGPIPE fatal; a Rust program (the daemon) ignores it,
        // so a write to a connection the client closed is an error, not death.
        // SAFETY: setting a signal's disposition to SIG_IGN.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let dir = std::env::temp_dir().join(format!("cairn-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create the fuzz directory");
        let _ = DIR.set(dir.clone());
        // SAFETY: registers a function without arguments to run at exit.
        unsafe { libc::atexit(remove_dir) };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot start tokio");
        let socket = dir.join(".pebble.socket");
        rt.block_on(async {
            let mut opts = SupervisorOptions::new(dir.join("pebble"));
            opts.persist = false;
            opts.root = Some(dir.join("root"));
            let sup = Supervisor::open(opts).expect("cannot open the supervisor");
            let handle = serve(ApiServer::new(sup, None), &socket, None)
                .await
                .expect("cannot serve the API");
            // Serves until the process ends.
            std::mem::forget(handle);
        });
        Harness { rt, socket }
    })
}

fn line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = ["GET", "POST", "PUT", "DELETE"][usize::from(m % 4)];
    let (target, rest) = line(rest);
    let (content_type, body) = line(rest);
    // Only what a client can send: a valid request target and header value.
    let (Ok(target), Ok(content_type)) = (
        std::str::from_utf8(target),
        std::str::from_utf8(content_type),
    ) else {
        return;
    };
    if !target.starts_with('/')
        || target.parse::<hyper::Uri>().is_err()
        || content_type.bytes().any(|b| b.is_ascii_control())
    {
        return;
    }
    let h = harness();
    h.rt.block_on(async {
        let Ok(mut s) = tokio::net::UnixStream::connect(&h.socket).await else {
            panic!("cannot connect to the API socket");
        };
        let mut req = format!(
            "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !content_type.is_empty() {
            req.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        if s.write_all(&bytes).await.is_err() {
            return;
        }
        // Long polls and waits answer later; the request is dropped after a moment.
        let mut reply = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), s.read_to_end(&mut reply)).await;
        assert!(
            reply.is_empty() || reply.starts_with(b"HTTP/1.1 "),
            "not an HTTP reply: {:?}",
            String::from_utf8_lossy(&reply[..reply.len().min(200)])
        );
    });
});
