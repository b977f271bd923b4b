//! File calls of the [`Client`]: list, make-dirs, remove, and streaming push and pull on a
//! connection of their own (so a large transfer never sits in memory).

use std::path::Path;

use bytes::Bytes;
use cairn_supervisor::files::{Ownership, WriteItem};
use http_body_util::{BodyExt, StreamBody};
use hyper::Method;
use hyper::body::Frame;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{decode_envelope, encode};
use crate::types::{self, FileInfo, FileResult};
use crate::{Client, ClientError};

/// The first per-path error of a files response, as `ops.pebble.PathError` would raise it.
fn first_error(results: Vec<FileResult>) -> Result<(), ClientError> {
    match results
        .into_iter()
        .find_map(|r| r.error.map(|e| (r.path, e)))
    {
        Some((_, e)) => Err(ClientError::Path {
            kind: e.kind,
            message: e.message,
        }),
        None => Ok(()),
    }
}

impl Client {
    /// `GET /v1/files?action=list`.
    pub async fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<FileInfo>, ClientError> {
        let mut q = format!("/v1/files?action=list&path={}", encode(path));
        if let Some(p) = pattern {
            q.push_str(&format!("&pattern={}", encode(p)));
        }
        if itself {
            q.push_str("&itself=true");
        }
        self.get(&q).await
    }

    /// `POST /v1/files` `make-dirs` for one directory.
    pub async fn make_dir(
        &self,
        path: &str,
        make_parents: bool,
        ownership: &Ownership,
    ) -> Result<(), ClientError> {
        let mut dir = serde_json::to_value(types::Ownership::from(ownership)).unwrap_or_default();
        dir["path"] = path.into();
        dir["make-parents"] = make_parents.into();
        let env = self
            .call(
                Method::POST,
                "/v1/files",
                Some(serde_json::json!({"action": "make-dirs", "dirs": [dir]})),
            )
            .await?;
        first_error(serde_json::from_value(env.result).map_err(ClientError::protocol)?)
    }

    /// `POST /v1/files` `remove` for one path.
    pub async fn remove_path(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        let env = self
            .call(
                Method::POST,
                "/v1/files",
                Some(serde_json::json!({"action": "remove", "paths": [{"path": path, "recursive": recursive}]})),
            )
            .await?;
        first_error(serde_json::from_value(env.result).map_err(ClientError::protocol)?)
    }

    async fn own_connection(
        &self,
        method: &Method,
        path: &str,
    ) -> Result<
        hyper::client::conn::http1::SendRequest<
            http_body_util::combinators::BoxBody<Bytes, std::io::Error>,
        >,
        ClientError,
    > {
        let stream = self.connect_stream(method, path).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(ClientError::protocol)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Streams `source` into the file `item.path` (`POST /v1/files` multipart `write`).
    pub async fn push(
        &self,
        item: &WriteItem,
        mut source: impl AsyncRead + Unpin + Send + 'static,
    ) -> Result<(), ClientError> {
        let boundary: String = (0..32)
            .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
            .collect();
        let meta = serde_json::json!({"action": "write", "files": [types::WriteItem::from(item)]});
        let head = format!(
            "--{boundary}\r\nContent-Type: application/json\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{meta}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{}\"\r\n\r\n",
            item.path.replace('\\', "\\\\").replace('"', "\\\"")
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        tokio::spawn(async move {
            if tx.send(Ok(Frame::data(Bytes::from(head)))).await.is_err() {
                return;
            }
            loop {
                let mut buf = vec![0u8; 64 * 1024];
                match source.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(Frame::data(Bytes::from(buf)))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
            let _ = tx.send(Ok(Frame::data(Bytes::from(tail)))).await;
        });
        let body = StreamBody::new(tokio_stream_from(rx)).boxed();
        let mut sender = self.own_connection(&Method::POST, "/v1/files").await?;
        let req = hyper::Request::builder()
            .method(Method::POST)
            .uri("/v1/files")
            .header("Host", "localhost")
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary=\"{boundary}\""),
            )
            .body(body)
            .map_err(ClientError::protocol)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(ClientError::protocol)?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(ClientError::protocol)?
            .to_bytes();
        let env = decode_envelope(&bytes)?;
        first_error(serde_json::from_value(env).map_err(ClientError::protocol)?)
    }

    /// Streams the file at `path` into `sink` (`GET /v1/files?action=read`).
    pub async fn pull(
        &self,
        path: &str,
        sink: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, ClientError> {
        let read = format!("/v1/files?action=read&path={}", encode(path));
        let mut sender = self.own_connection(&Method::GET, &read).await?;
        let req = hyper::Request::builder()
            .method(Method::GET)
            .uri(format!("/v1/files?action=read&path={}", encode(path)))
            .header("Host", "localhost")
            .header("Accept", "multipart/form-data")
            .body(
                http_body_util::Empty::<Bytes>::new()
                    .map_err(|e| match e {})
                    .boxed(),
            )
            .map_err(ClientError::protocol)?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(ClientError::protocol)?;
        let ct = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let Ok(boundary) = multer::parse_boundary(&ct) else {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(ClientError::protocol)?
                .to_bytes();
            decode_envelope(&bytes)?;
            return Err(ClientError::Protocol(format!(
                "unexpected content type {ct:?}"
            )));
        };
        let stream = http_body_util::BodyStream::new(resp.into_body());
        let stream = futures_util::StreamExt::filter_map(stream, |f| async move {
            match f {
                Ok(f) => f.into_data().ok().map(Ok::<Bytes, hyper::Error>),
                Err(e) => Some(Err(e)),
            }
        });
        let mut mp = multer::Multipart::new(stream, boundary);
        let mut written = 0u64;
        while let Some(mut field) = mp.next_field().await.map_err(ClientError::protocol)? {
            match field.name() {
                Some("files") => {
                    while let Some(chunk) = field.chunk().await.map_err(ClientError::protocol)? {
                        sink.write_all(&chunk)
                            .await
                            .map_err(ClientError::protocol)?;
                        written += chunk.len() as u64;
                    }
                }
                Some("response") => {
                    let mut raw = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(ClientError::protocol)? {
                        raw.extend_from_slice(&chunk);
                    }
                    let env = decode_envelope(&raw)?;
                    first_error(serde_json::from_value(env).map_err(ClientError::protocol)?)?;
                }
                _ => {}
            }
        }
        sink.flush().await.map_err(ClientError::protocol)?;
        Ok(written)
    }

    /// Pushes a local file.
    pub async fn push_file(&self, local: &Path, item: &WriteItem) -> Result<(), ClientError> {
        let f = tokio::fs::File::open(local)
            .await
            .map_err(|e| ClientError::Protocol(format!("cannot open {}: {e}", local.display())))?;
        self.push(item, f).await
    }
}

/// An mpsc receiver as a stream (without pulling in tokio-stream).
fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
