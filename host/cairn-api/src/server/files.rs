//! `GET/POST /v1/files`, exactly as Pebble's `api_files.go`: multipart reads (every file a
//! `files` part named by its full path, then a `response` part with per-path errors, all in
//! a 200 response), multipart writes (a `request` part with the metadata, then one `files`
//! part per file), and JSON `make-dirs` and `remove`.
//!
//! Both directions stream: a read sends the file in 64 KiB chunks through a bounded
//! channel, a write gathers each part's chunks into 64 KiB writes, so memory does not grow
//! with file size. Disk work runs on tokio's blocking pool one short call at a time (an
//! open, a chunk, a commit), never while waiting for the client.

use bytes::Bytes;
use cairn_supervisor::files::{self, FileError, FileErrorKind};
use cairn_supervisor::sandbox::Root;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::limits::{DEFAULT_BODY_LIMIT, FILES_METADATA_LIMIT};
use super::{Body, Call, ChannelBody, full};
use crate::envelope::Reply;
use crate::types::{FileResult, Ownership, WriteItem};

/// Pebble's shortest accepted multipart boundary.
const MIN_BOUNDARY: usize = 32;
/// Read chunk size.
const CHUNK: usize = 64 * 1024;

fn result(path: &str, err: Option<FileError>) -> FileResult {
    FileResult::new(path, err.as_ref())
}

/// The HTTP status Pebble answers a list error with.
fn status(kind: FileErrorKind) -> u16 {
    match kind {
        FileErrorKind::NotFound => 404,
        FileErrorKind::PermissionDenied => 403,
        FileErrorKind::Generic => 400,
    }
}

/// Go's quoting of a `Content-Disposition` parameter (`\` and `"` escaped).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn boundary() -> String {
    let mut b = [0u8; 30];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `GET /v1/files` with `action=read` (multipart) or `action=list` (JSON).
pub(super) fn get(call: &Call<'_>, req: &Request<Incoming>) -> Response<Body> {
    let (q, root) = (&call.query, call.sup().root().cloned());
    match q.get("action") {
        "read" => {
            let paths = q.all("path");
            if paths.is_empty() {
                return full(Reply::bad_request("must specify one or more paths"));
            }
            let accept = req
                .headers()
                .get("Accept")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept != "multipart/form-data" {
                return full(Reply::bad_request("must accept multipart/form-data"));
            }
            read(root, paths)
        }
        "list" => {
            let path = q.get("path");
            if path.is_empty() {
                return full(Reply::bad_request("must specify path"));
            }
            let itself = match q.get("itself") {
                "" | "false" => false,
                "true" => true,
                _ => {
                    return full(Reply::bad_request(
                        "itself parameter must be \"true\" or \"false\"",
                    ));
                }
            };
            // As Pebble: a relative path is a bad request, not a file error.
            if !path.starts_with('/') {
                return full(Reply::bad_request(format!(
                    "path must be absolute, got {path:?}"
                )));
            }
            match files::list(root.as_ref(), path, q.get("pattern"), itself) {
                Ok(list) => full(Reply::sync(
                    crate::types::wire::<_, crate::types::FileInfo>(&list),
                )),
                Err(e) => full(Reply::error(status(e.kind), e.kind.as_str(), e.message)),
            }
        }
        other => full(Reply::bad_request(format!("invalid action {other:?}"))),
    }
}

/// Runs one short piece of file work (an open, a chunk's read or write, a commit) on
/// tokio's blocking pool. A transfer takes a thread only for each such piece, never while
/// it waits for its client: a slow or stalled client (a workload holding hundreds of
/// transfers open on its own socket) cannot hold the pool every tenant's calls share.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(FileError::generic(e.to_string())))
}

/// Streams the files as multipart parts, then the `response` part.
fn read(root: Option<Root>, paths: Vec<String>) -> Response<Body> {
    let b = boundary();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let bb = b.clone();
    tokio::spawn(async move {
        let mut results = Vec::new();
        let mut first = true;
        let sep = |first: &mut bool| {
            let s = if *first {
                format!("--{bb}\r\n")
            } else {
                format!("\r\n--{bb}\r\n")
            };
            *first = false;
            s
        };
        for path in &paths {
            let (r, p) = (root.clone(), path.clone());
            let mut file = match blocking(move || files::open_read(r.as_ref(), &p)).await {
                Ok(f) => f,
                Err(e) => {
                    results.push(result(path, Some(e)));
                    continue;
                }
            };
            let head = format!(
                "{}Content-Disposition: form-data; name=\"files\"; filename={}\r\nContent-Type: application/octet-stream\r\n\r\n",
                sep(&mut first),
                quote(path)
            );
            if tx.send(Bytes::from(head)).await.is_err() {
                return;
            }
            let mut err = None;
            loop {
                let p = path.clone();
                let chunk = blocking(move || {
                    let mut buf = vec![0u8; CHUNK];
                    match std::io::Read::read(&mut file, &mut buf) {
                        Ok(n) => {
                            buf.truncate(n);
                            Ok((file, buf))
                        }
                        Err(e) => Err(FileError::generic(format!("read {p}: {e}"))),
                    }
                })
                .await;
                match chunk {
                    Ok((_, buf)) if buf.is_empty() => break,
                    Ok((f, buf)) => {
                        file = f;
                        if tx.send(Bytes::from(buf)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            results.push(result(path, err));
        }
        let json = serde_json::json!({
            "type": "sync",
            "status-code": 200,
            "status": "OK",
            "result": results,
        });
        let tail = format!(
            "{}Content-Disposition: form-data; name=\"response\"\r\nContent-Type: application/json\r\n\r\n{}\n\r\n--{bb}--\r\n",
            sep(&mut first),
            json
        );
        let _ = tx.send(Bytes::from(tail)).await;
    });
    Response::builder()
        .status(200)
        .header("Content-Type", format!("multipart/form-data; boundary={b}"))
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap()
}

/// `POST /v1/files`: multipart `write`, or JSON `make-dirs` / `remove`.
pub(super) async fn post(call: &Call<'_>, req: Request<Incoming>) -> Response<Body> {
    let root = call.sup().root().cloned();
    let ct = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let Ok(mime) = ct.parse::<mime::Mime>() else {
        return full(Reply::bad_request(format!("invalid Content-Type {ct:?}")));
    };
    match (mime.type_().as_str(), mime.subtype().as_str()) {
        ("multipart", "form-data") => {
            let boundary = mime
                .get_param("boundary")
                .map(|b| b.as_str().to_string())
                .unwrap_or_default();
            if boundary.len() < MIN_BOUNDARY {
                return full(Reply::bad_request(format!("invalid boundary {boundary:?}")));
            }
            full(write(req.into_body(), boundary, root).await)
        }
        ("application", "json") => {
            let body = match super::routes::read_body(req, DEFAULT_BODY_LIMIT, call.limits).await {
                Ok(b) => b,
                Err(r) => return full(r),
            };
            full(json_action(&body, root.as_ref()))
        }
        _ => full(Reply::bad_request(format!(
            "invalid media type {:?}",
            mime.essence_str()
        ))),
    }
}

#[derive(Deserialize)]
struct MakeDirItem {
    #[serde(default)]
    path: String,
    #[serde(default, rename = "make-parents")]
    make_parents: bool,
    #[serde(flatten)]
    ownership: Ownership,
}

#[derive(Deserialize)]
struct RemoveItem {
    #[serde(default)]
    path: String,
    #[serde(default)]
    recursive: bool,
}

fn json_action(body: &[u8], root: Option<&Root>) -> Reply {
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        dirs: Option<Vec<MakeDirItem>>,
        #[serde(default)]
        paths: Option<Vec<RemoveItem>>,
    }
    let p: Payload = match serde_json::from_slice(body) {
        Ok(p) => p,
        Err(e) => return Reply::bad_request(format!("cannot decode request body: {e}")),
    };
    match p.action.as_deref().unwrap_or("") {
        "make-dirs" => Reply::sync(
            p.dirs
                .unwrap_or_default()
                .into_iter()
                .map(|d| {
                    let own = d.ownership.into();
                    result(
                        &d.path,
                        files::make_dir(root, &d.path, d.make_parents, &own).err(),
                    )
                })
                .collect::<Vec<_>>(),
        ),
        "remove" => Reply::sync(
            p.paths
                .unwrap_or_default()
                .iter()
                .map(|r| result(&r.path, files::remove(root, &r.path, r.recursive).err()))
                .collect::<Vec<_>>(),
        ),
        "write" => Reply::bad_request("must use multipart with \"write\" action"),
        other => Reply::bad_request(format!("invalid action {other:?}")),
    }
}

/// Writes each `files` part through short blocking writes, chunk by chunk.
async fn write(body: Incoming, boundary: String, root: Option<Root>) -> Reply {
    // The body is read to its very end by a task of its own, whatever the parser stops at
    // (an early error, or the epilogue after the last boundary): a request body left unread
    // would make hyper drop the connection under a client still sending.
    let (tx, rx) = mpsc::channel::<Result<Bytes, hyper::Error>>(4);
    let drain = tokio::spawn(async move {
        let mut body = body;
        let mut open = true;
        while let Some(frame) = body.frame().await {
            let item = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Err(e) => Err(e),
            };
            if open && tx.send(item).await.is_err() {
                open = false;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let reply = write_parts(multer::Multipart::new(stream, boundary), root).await;
    let _ = drain.await;
    reply
}

/// Parses the multipart request and writes each file.
async fn write_parts(mut mp: multer::Multipart<'static>, root: Option<Root>) -> Reply {
    let mut meta = match mp.next_field().await {
        Ok(Some(f)) => f,
        Ok(None) => return Reply::bad_request("cannot read request metadata: EOF"),
        Err(e) => return Reply::bad_request(format!("cannot read request metadata: {e}")),
    };
    if meta.name() != Some("request") {
        return Reply::bad_request(format!(
            "metadata field name must be \"request\", got {:?}",
            meta.name().unwrap_or("")
        ));
    }
    let mut raw = Vec::new();
    loop {
        match meta.chunk().await {
            Ok(Some(c)) if raw.len() + c.len() > FILES_METADATA_LIMIT => {
                return Reply::error(
                    413,
                    "",
                    format!(
                        "cannot read request metadata: larger than {FILES_METADATA_LIMIT} bytes"
                    ),
                );
            }
            Ok(Some(c)) => raw.extend_from_slice(&c),
            Ok(None) => break,
            Err(e) => return Reply::bad_request(format!("cannot read request metadata: {e}")),
        }
    }
    drop(meta);
    #[derive(Deserialize)]
    struct Payload {
        #[serde(default)]
        action: Option<String>,
        #[serde(default)]
        files: Option<Vec<WriteItem>>,
    }
    let payload: Payload = match serde_json::from_slice(&raw) {
        Ok(p) => p,
        Err(e) => return Reply::bad_request(format!("cannot decode request metadata: {e}")),
    };
    let action = payload.action.unwrap_or_default();
    if action != "write" {
        return Reply::bad_request(format!(
            "multipart action must be \"write\", got {action:?}"
        ));
    }
    let items: Vec<files::WriteItem> = payload
        .files
        .unwrap_or_default()
        .into_iter()
        .map(Into::into)
        .collect();
    if items.is_empty() {
        return Reply::bad_request("must specify one or more files");
    }
    let mut errors: std::collections::HashMap<String, Option<FileError>> =
        std::collections::HashMap::new();
    let mut i = 0;
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Reply::bad_request(format!("cannot read file part {i}: {e}")),
        };
        if field.name() != Some("files") {
            return Reply::bad_request(format!(
                "field name must be \"files\", got {:?}",
                field.name().unwrap_or("")
            ));
        }
        let path = field.file_name().unwrap_or("").to_string();
        let Some(item) = items.iter().find(|it| it.path == path).cloned() else {
            return Reply::bad_request(format!("no metadata for path {path:?}"));
        };
        // The part's chunks are gathered up to CHUNK and written by short blocking calls;
        // the temporary file replaces the target only at the part's end, so a broken
        // upload leaves nothing (an uncommitted `Writer` removes it when dropped).
        let (r, it) = (root.clone(), item.clone());
        let mut writer = blocking(move || files::Writer::create(r.as_ref(), &it))
            .await
            .map(Some);
        let mut pending = bytes::BytesMut::new();
        let mut broken = None;
        loop {
            let (chunk, end) = match field.chunk().await {
                Ok(Some(c)) => (Some(c), false),
                Ok(None) => (None, true),
                Err(e) => {
                    broken = Some(format!("cannot read file part {i}: {e}"));
                    break;
                }
            };
            // After a failed write the part is still read to its end, then reported.
            let Ok(slot) = &mut writer else {
                if end {
                    break;
                }
                continue;
            };
            if let Some(c) = chunk {
                pending.extend_from_slice(&c);
            }
            if pending.len() >= CHUNK || end {
                let data = pending.split().freeze();
                let mut w = slot.take().expect("the writer is back after each write");
                writer = blocking(move || {
                    w.write_all(&data)?;
                    Ok(w)
                })
                .await
                .map(Some);
            }
            if end {
                break;
            }
        }
        if let Some(msg) = broken {
            if let Ok(Some(w)) = writer {
                // Dropped uncommitted: its temporary file is removed.
                tokio::task::spawn_blocking(move || drop(w));
            }
            return Reply::bad_request(msg);
        }
        let outcome = match writer {
            Ok(Some(w)) => blocking(move || w.commit()).await,
            Ok(None) => Err(FileError::generic("upload interrupted")),
            Err(e) => Err(e),
        };
        errors.insert(path, outcome.err());
        i += 1;
    }
    let results: Vec<FileResult> = items
        .iter()
        .map(|it| match errors.remove(&it.path) {
            Some(err) => result(&it.path, err),
            None => result(
                &it.path,
                Some(FileError::generic(format!(
                    "no file content for path {:?}",
                    it.path
                ))),
            ),
        })
        .collect();
    Reply::sync(results)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cairn_supervisor::files::{Ownership, WriteItem};
    use hyper::Method;

    use crate::testutil::{TestApi, api_err, check};

    #[tokio::test(flavor = "multi_thread")]
    async fn files_push_list_pull_and_remove() {
        let t = TestApi::start("files").await;
        let c = &t.client;
        let sub = t.dir().join("data/sub").display().to_string();
        let path = format!("{sub}/f.txt");
        let item = WriteItem {
            path: path.clone(),
            make_dirs: true,
            ownership: Ownership {
                permissions: "600".into(),
                ..Default::default()
            },
        };
        c.push(&item, &b"hello"[..]).await.unwrap();
        let list = c.list_files(&sub, None, false).await.unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(
            (
                list[0].name.as_str(),
                list[0].size,
                list[0].permissions.as_str()
            ),
            ("f.txt", Some(5), "600")
        );
        let mut got = Vec::new();
        assert_eq!(c.pull(&path, &mut got).await.unwrap(), 5);
        assert_eq!(got, b"hello");
        c.remove_path(&path, false).await.unwrap();
        assert!(c.list_files(&sub, None, false).await.unwrap().is_empty());
        let (code, kind, _) = api_err(c.list_files(&path, None, false).await);
        assert_eq!((code, kind.as_str()), (404, "not-found"));
        // A read's error is the path's, as ops' PathError.
        match c.pull(&path, &mut got).await.unwrap_err() {
            crate::ClientError::Path { kind, .. } => assert_eq!(kind, "not-found"),
            other => panic!("not a path error: {other:?}"),
        }
    }

    /// Transfers whose clients stall (a pull never read, a push that stops sending) must
    /// not hold threads of tokio's blocking pool, which every tenant's calls share: with
    /// the pool cut to 2 threads, 16 stalled transfers still leave a push and a pull of
    /// another client to complete promptly.
    #[test]
    fn stalled_transfers_hold_no_blocking_threads() {
        use tokio::io::AsyncWriteExt;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = TestApi::start("files-stalled").await;
            let big = t.dir().join("big.bin");
            std::fs::write(&big, vec![7u8; 8 << 20]).unwrap();
            let boundary = "b".repeat(40);
            let target = t.dir().join("stalled.txt").display().to_string();
            let mut held = Vec::new();
            for i in 0..16 {
                let mut conn = tokio::net::UnixStream::connect(&t.socket).await.unwrap();
                let request = if i % 2 == 0 {
                    // A pull of 8 MiB whose response is never read.
                    format!(
                        "GET /v1/files?action=read&path={} HTTP/1.1\r\nHost: localhost\r\nAccept: multipart/form-data\r\n\r\n",
                        big.display()
                    )
                } else {
                    // A push that sends its metadata and a first chunk, then nothing more.
                    let body = format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"request\"\r\nContent-Type: application/json\r\n\r\n{{\"action\":\"write\",\"files\":[{{\"path\":\"{target}\"}}]}}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{target}\"\r\nContent-Type: application/octet-stream\r\n\r\n{}",
                        "x".repeat(100_000)
                    );
                    format!(
                        "POST /v1/files HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len() + (1 << 20)
                    )
                };
                conn.write_all(request.as_bytes()).await.unwrap();
                held.push(conn);
            }
            // Let every transfer reach its stall.
            tokio::time::sleep(Duration::from_millis(500)).await;

            let path = t.dir().join("ok.txt").display().to_string();
            let item = WriteItem {
                path: path.clone(),
                ..Default::default()
            };
            let c = &t.client;
            let round = async {
                c.push(&item, &b"still served"[..]).await.unwrap();
                let mut got = Vec::new();
                c.pull(&path, &mut got).await.unwrap();
                got
            };
            let got = tokio::time::timeout(Duration::from_secs(3), round)
                .await
                .expect("a push and a pull waited behind stalled transfers");
            assert_eq!(got, b"still served");
            drop(held);
        });
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn files_requests_get_pebbles_errors() {
        let t = TestApi::start("files-errors").await;
        let c = &t.client;
        check(
            c.raw(
                Method::GET,
                "/v1/files?action=read&path=/etc/hostname",
                None,
            )
            .await
            .unwrap(),
            400,
            "must accept multipart/form-data",
        );
        check(
            c.raw(Method::GET, "/v1/files?action=list", None)
                .await
                .unwrap(),
            400,
            "must specify path",
        );
        check(
            c.raw(Method::GET, "/v1/files?action=bogus", None)
                .await
                .unwrap(),
            400,
            "invalid action \"bogus\"",
        );
        check(
            c.raw(
                Method::POST,
                "/v1/files",
                Some(br#"{"action":"write"}"#.to_vec()),
            )
            .await
            .unwrap(),
            400,
            "must use multipart with \"write\" action",
        );
    }
}
