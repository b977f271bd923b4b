//! The crate's one test fixture: a temporary directory (the workspace's test-util one),
//! removed on drop, with a real
//! supervisor in it served on a temporary socket, and a client of that socket.

use std::path::{Path, PathBuf};

use cairn_supervisor::{Supervisor, SupervisorOptions};
pub(crate) use cairn_testutil::TempDir;

use crate::{ApiServer, Client, ClientError, ServerHandle, serve};

/// A server over a fresh supervisor on `<dir>/.pebble.socket`, and a client of it. Dropping
/// it stops the server, then removes the directory.
pub(crate) struct TestApi {
    /// The supervisor served.
    pub(crate) sup: Supervisor,
    /// A client of the socket.
    pub(crate) client: Client,
    /// The socket.
    pub(crate) socket: PathBuf,
    handle: Option<ServerHandle>,
    // Last: removed after the server stops.
    dir: TempDir,
}

impl TestApi {
    /// Opens a supervisor in a temporary directory named after `name` and serves it.
    pub(crate) async fn start(name: &str) -> TestApi {
        let dir = TempDir::new(name);
        let sup = Supervisor::open(SupervisorOptions::new(dir.path())).unwrap();
        let socket = dir.path().join(".pebble.socket");
        let handle = serve(ApiServer::new(sup.clone(), None), &socket, None)
            .await
            .unwrap();
        TestApi {
            sup,
            client: Client::unix(&socket),
            socket,
            handle: Some(handle),
            dir,
        }
    }

    /// The supervisor's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server now (the supervisor and directory stay until drop).
    pub(crate) fn stop_server(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}

impl Drop for TestApi {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}

/// A layer with one service, `srv`, that prints `hello` and then sleeps, started by replan.
pub(crate) const LAYER: &str = "services:\n    srv:\n        override: replace\n        command: sh -c 'echo hello; exec sleep 1000'\n        startup: enabled\n";

/// The API error a call failed with: code, kind and message.
pub(crate) fn api_err(r: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, String) {
    match r.unwrap_err() {
        ClientError::Api {
            code,
            kind,
            message,
        } => (code, kind, message),
        other => panic!("not an API error: {other:?}"),
    }
}

/// Asserts a raw reply's status code and the start of its error message.
#[track_caller]
pub(crate) fn check(got: (u16, bytes::Bytes), code: u16, message: &str) {
    let v: serde_json::Value = serde_json::from_slice(&got.1).unwrap();
    let msg = v["result"]["message"].as_str().unwrap_or_default();
    assert_eq!(got.0, code, "{v}");
    assert!(
        msg.starts_with(message),
        "{msg:?} does not start with {message:?}"
    );
}
