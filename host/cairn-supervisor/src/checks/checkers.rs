//! The three kinds of check (`http`, `tcp`, `exec`), each run once and bounded by the
//! check's timeout, with Pebble's failure texts.

use std::collections::BTreeMap;
use std::time::Duration;

use cairn_plan::{Check, ContextOptions, Plan};

use crate::container::ContainerEnv;
use crate::users;

/// At most this much of an HTTP body or exec output is kept as error details.
const MAX_ERROR_BYTES: usize = 512;
/// At most this many lines of it.
const MAX_ERROR_LINES: usize = 5;

/// Why a check run failed: the message, and details (body or output lines) if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// Such as `non-2xx status code 500` or `exit status 1`.
    pub message: String,
    /// First lines of the HTTP body or last lines of the command's output.
    pub details: String,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.details.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}; {}", self.message, self.details)
        }
    }
}

pub(crate) fn fail(message: impl Into<String>) -> CheckFailure {
    CheckFailure {
        message: message.into(),
        details: String::new(),
    }
}

/// The check's type word in change summaries: `HTTP`, `TCP` or `exec`.
pub(crate) fn check_type(c: &Check) -> &'static str {
    if c.http.is_some() {
        "HTTP"
    } else if c.tcp.is_some() {
        "TCP"
    } else if c.exec.is_some() {
        "exec"
    } else {
        "<unknown>"
    }
}

/// The check with an exec check's `service-context` merged in, as Pebble runs it.
pub(crate) fn merged(plan: &Plan, check: &Check) -> Check {
    let mut c = check.clone();
    if let Some(exec) = &mut c.exec
        && !exec.service_context.is_empty()
    {
        let overrides = ContextOptions {
            environment: exec.environment.clone(),
            user_id: exec.user_id,
            user: exec.user.clone(),
            group_id: exec.group_id,
            group: exec.group.clone(),
            working_dir: exec.working_dir.clone(),
        };
        if let Ok(m) = plan.merge_service_context(&exec.service_context, overrides) {
            exec.environment = m.environment;
            exec.user_id = m.user_id;
            exec.user = m.user;
            exec.group_id = m.group_id;
            exec.group = m.group;
            exec.working_dir = m.working_dir;
        }
    }
    c
}

fn first_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.trim().split('\n').collect();
    if lines.len() > MAX_ERROR_LINES {
        lines.truncate(MAX_ERROR_LINES);
        lines.push("(...)");
    }
    lines.join("\n")
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end_matches('\n').split('\n').collect();
    let skip = lines.len().saturating_sub(MAX_ERROR_LINES);
    lines[skip..].join("\n")
}

async fn http_check(url: &str, headers: &BTreeMap<String, String>) -> Result<(), CheckFailure> {
    use http_body_util::{BodyExt, Empty};
    let get_err = |e: &dyn std::fmt::Display| fail(format!("Get {url:?}: {e}"));
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| fail(format!("cannot build request: parse {url:?}: {e}")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(get_err(
                &"https checks are not supported by this supervisor (use http, tcp or exec)",
            ));
        }
        other => {
            return Err(get_err(&format!(
                "unsupported protocol scheme {:?}",
                other.unwrap_or("")
            )));
        }
    }
    let host = uri.host().unwrap_or("localhost").to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr = format!("{host}:{port}");
    let stream = tokio::net::TcpStream::connect(&addr).await.map_err(|e| {
        get_err(&format!(
            "dial tcp {addr}: connect: {}",
            crate::errno_text(&e)
        ))
    })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| get_err(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut req = hyper::Request::builder()
        .method("GET")
        .uri(path)
        .header("Host", uri.authority().map(|a| a.as_str()).unwrap_or(&host))
        .header("User-Agent", "Go-http-client/1.1");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(format!("cannot build request: {e}")))?;
    let resp = sender.send_request(req).await.map_err(|e| get_err(&e))?;
    let code = resp.status().as_u16();
    if (200..300).contains(&code) {
        return Ok(());
    }
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while data.len() < MAX_ERROR_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                }
            }
            _ => break,
        }
    }
    data.truncate(MAX_ERROR_BYTES);
    Err(CheckFailure {
        message: format!("non-2xx status code {code}"),
        details: first_lines(&String::from_utf8_lossy(&data)),
    })
}

async fn tcp_check(host: &str, port: u32) -> Result<(), CheckFailure> {
    let host = if host.is_empty() { "localhost" } else { host };
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    tokio::net::TcpStream::connect(&addr)
        .await
        .map(drop)
        .map_err(|e| {
            fail(format!(
                "dial tcp {addr}: connect: {}",
                crate::errno_text(&e)
            ))
        })
}

async fn exec_check(
    exec: &cairn_plan::ExecCheck,
    container: &ContainerEnv,
) -> Result<(), CheckFailure> {
    let args = shlex::split(&exec.command)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| fail("cannot parse command: invalid command"))?;
    container.wait_share().await;
    // Go's exec.Command, as Pebble's checker: a bare name is looked up on the supervisor's
    // PATH and the path found is what runs (and what a failure names).
    let program = if args[0].contains('/') {
        args[0].clone()
    } else {
        let own_path = std::env::var("PATH").unwrap_or_default();
        crate::exec::look_path(&args[0], &own_path, container.root.as_ref()).ok_or_else(|| {
            fail(format!(
                "exec: {:?}: executable file not found in $PATH",
                args[0]
            ))
        })?
    };
    let mut cmd = crate::spawn::Command::new(&program);
    cmd.arg0(&args[0]);
    cmd.args(&args[1..])
        .stdin(crate::spawn::Stdio::null())
        .process_group(0);
    let mut env: BTreeMap<String, String> = container.base_env().into_iter().collect();
    env.extend(exec.environment.clone());
    cmd.env_clear().envs(env);
    let creds =
        users::normalize(exec.user_id, exec.group_id, &exec.user, &exec.group).map_err(fail)?;
    crate::sandbox::place(&mut cmd, container.root.as_ref(), &exec.working_dir, creds)
        .map_err(|e| fail(e.to_string()))?;
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(e.to_string()))?;
    let write2 = write.try_clone().map_err(|e| fail(e.to_string()))?;
    cmd.stdout(write).stderr(write2);
    container.enter_cgroup(&mut cmd);
    let (child, exit) = container
        .spawn(cmd)
        .map_err(|e| fail(format!("fork/exec {program}: {}", crate::errno_text(&e))))?;
    let pid = child.id() as i32;
    let output = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut kept: Vec<u8> = Vec::new();
        let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(read) else {
            return kept;
        };
        let mut buf = [0u8; 4096];
        while let Ok(n) = rx.read(&mut buf).await {
            if n == 0 {
                break;
            }
            kept.extend_from_slice(&buf[..n]);
            if kept.len() > MAX_ERROR_BYTES {
                kept.drain(..kept.len() - MAX_ERROR_BYTES);
            }
        }
        kept
    });
    // Killed with the group when the run is cancelled (timeout or stop), as Go's
    // CommandContext kills the process.
    struct KillOnDrop(i32, bool);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if !self.1 {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(self.0),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    let mut guard = KillOnDrop(pid, false);
    let code = exit.await.unwrap_or(-1);
    guard.1 = true;
    let out = tokio::time::timeout(Duration::from_secs(1), output)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    if code == 0 {
        return Ok(());
    }
    let message = if code > 0 {
        format!("exit status {code}")
    } else {
        format!("signal: {}", signal_name(-code))
    };
    Err(CheckFailure {
        message,
        details: last_lines(&String::from_utf8_lossy(&out)),
    })
}

fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| match s {
            nix::sys::signal::Signal::SIGKILL => "killed".to_string(),
            nix::sys::signal::Signal::SIGTERM => "terminated".to_string(),
            other => other.as_str().to_lowercase(),
        })
        .unwrap_or_else(|_| sig.to_string())
}

/// Runs a check once, bounded by its timeout.
pub(crate) async fn run_check(check: &Check, container: &ContainerEnv) -> Result<(), CheckFailure> {
    let timeout = check.effective_timeout();
    let run = async {
        if let Some(h) = &check.http {
            http_check(&h.url, &h.headers).await
        } else if let Some(t) = &check.tcp {
            tcp_check(&t.host, t.port).await
        } else if let Some(e) = &check.exec {
            exec_check(e, container).await
        } else {
            Err(fail("invalid check config"))
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!(
            "check timed out after {}",
            cairn_plan::format_duration(timeout)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_details_are_cut_like_pebble() {
        let body = "a\nb\nc\nd\ne\nf\ng\n";
        assert_eq!(first_lines(body), "a\nb\nc\nd\ne\n(...)");
        assert_eq!(last_lines(body), "c\nd\ne\nf\ng");
        let f = CheckFailure {
            message: "exit status 1".into(),
            details: "boom".into(),
        };
        assert_eq!(f.to_string(), "exit status 1; boom");
    }
}
