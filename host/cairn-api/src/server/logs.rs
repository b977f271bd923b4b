//! `GET /v1/logs`: services' output as ndjson, from the buffers and then as it comes.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use tokio::sync::mpsc;

use super::{Body, Call, ChannelBody, full};
use crate::envelope::Reply;

/// `GET /v1/logs`: ndjson, `n` (default 30, -1 all), `follow`, `services`.
pub(super) fn get(call: &Call<'_>) -> Response<Body> {
    let q = &call.query;
    let follow = match q.get("follow") {
        "" | "false" => false,
        "true" => true,
        _ => {
            return full(Reply::bad_request(
                "follow parameter must be \"true\" or \"false\"",
            ));
        }
    };
    let n: Option<usize> = match q.get("n") {
        "" if follow => Some(0),
        "" => Some(30),
        s => match s.parse::<i64>() {
            Ok(-1) => None,
            Ok(n) if n >= 0 => Some(n as usize),
            _ => return full(Reply::bad_request("n must be -1, 0, or a positive integer")),
        },
    };
    let names = q.list("services");
    let buffers = call.sup().log_buffers(&names);
    let mut subs: Vec<_> = if follow {
        buffers.iter().map(|b| b.subscribe()).collect()
    } else {
        Vec::new()
    };
    let backlog = match n {
        Some(0) => Vec::new(),
        n => call.sup().logs(&names, n),
    };
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let line = |e: &cairn_supervisor::LogEntry| {
        let mut v = serde_json::to_vec(&serde_json::json!({
            "time": cairn_supervisor::timefmt::rfc3339(e.time),
            "service": e.service,
            "message": e.message,
        }))
        .unwrap_or_default();
        v.push(b'\n');
        Bytes::from(v)
    };
    let last_seen = backlog.last().map(|e| e.time);
    let first: Vec<Bytes> = backlog.iter().map(line).collect();
    tokio::spawn(async move {
        for b in first {
            if tx.send(b).await.is_err() {
                return;
            }
        }
        if subs.is_empty() {
            return;
        }
        let (etx, mut erx) = mpsc::channel(256);
        for mut sub in subs.drain(..) {
            let etx = etx.clone();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(e) => {
                            if etx.send(e).await.is_err() {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                }
            });
        }
        drop(etx);
        while let Some(e) = erx.recv().await {
            if last_seen.is_some_and(|t| e.time <= t) {
                continue;
            }
            if tx.send(line(&e)).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(200)
        .header("Content-Type", "application/x-ndjson")
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::testutil::{LAYER, TestApi};

    #[tokio::test(flavor = "multi_thread")]
    async fn logs_return_what_services_printed() {
        let t = TestApi::start("logs").await;
        let c = &t.client;
        c.add_layer("base", LAYER, false, false).await.unwrap();
        c.run_action("replan", &[]).await.unwrap();
        let logs = c.logs(&[], Some(10)).await.unwrap();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert_eq!(
            (logs[0].service.as_str(), logs[0].message.as_str()),
            ("srv", "hello")
        );
        t.sup.stop_all().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn follow_logs_streams_new_lines() {
        let t = TestApi::start("follow").await;
        let c = &t.client;
        c.add_layer(
            "base",
            "services:\n  tick:\n    override: replace\n    command: sh -c 'while true; do echo tick; sleep 0.1; done'\n",
            false,
            false,
        )
        .await
        .unwrap();
        c.run_action("start", &["tick".into()]).await.unwrap();
        let mut rx = c.follow_logs(&["tick".into()], None).await.unwrap();
        for _ in 0..3 {
            let line = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (line.service.as_str(), line.message.as_str()),
                ("tick", "tick")
            );
        }
        t.sup.stop_all().await;
    }
}
