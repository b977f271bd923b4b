//! `push`, `pull`, `ls`, `mkdir` and `rm`: files in the container.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_api::Client;
use cairn_supervisor::files::{Ownership, WriteItem};
use clap::Args;

use super::Io;
use super::times::fmt_time;
use crate::args::{ListFormatArgs, TimeArgs};
use crate::table::render;

/// `--uid`, `--user`, `--gid`, `--group` of push and mkdir.
#[derive(Args)]
pub struct OwnerArgs {
    /// Use specified user ID.
    #[arg(long)]
    uid: Option<u32>,
    /// Use specified username.
    #[arg(long)]
    user: Option<String>,
    /// Use specified group ID.
    #[arg(long)]
    gid: Option<u32>,
    /// Use specified group name.
    #[arg(long)]
    group: Option<String>,
}

impl OwnerArgs {
    fn ownership(&self, mode: Option<String>) -> Ownership {
        Ownership {
            permissions: mode.unwrap_or_default(),
            user_id: self.uid,
            user: self.user.clone().unwrap_or_default(),
            group_id: self.gid,
            group: self.group.clone().unwrap_or_default(),
        }
    }
}

/// Arguments of `push`.
#[derive(Args)]
pub struct PushArgs {
    /// Create parent directories for the file.
    #[arg(short = 'p')]
    parents: bool,
    /// Override mode bits (3-digit octal).
    #[arg(short = 'm')]
    mode: Option<String>,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Local path.
    local_path: PathBuf,
    /// Remote path.
    remote_path: String,
}

/// Arguments of `pull`.
#[derive(Args)]
pub struct PullArgs {
    /// Remote path.
    remote_path: String,
    /// Local path.
    local_path: PathBuf,
}

/// Arguments of `ls`.
#[derive(Args)]
pub struct LsArgs {
    /// List matching entries themselves, not directory contents.
    #[arg(short = 'd')]
    directory: bool,
    /// Use a long listing format.
    #[arg(short = 'l')]
    long: bool,
    #[command(flatten)]
    time: TimeArgs,
    #[command(flatten)]
    format: ListFormatArgs,
    /// Path (a glob in its last element filters).
    path: String,
}

/// Arguments of `mkdir`.
#[derive(Args)]
pub struct MkdirArgs {
    /// Create parent directories as needed, and don't fail if the path exists.
    #[arg(short = 'p')]
    parents: bool,
    /// Override mode bits (3-digit octal).
    #[arg(short = 'm')]
    mode: Option<String>,
    #[command(flatten)]
    owner: OwnerArgs,
    /// Directory path.
    path: String,
}

/// Arguments of `rm`.
#[derive(Args)]
pub struct RmArgs {
    /// Remove all files and directories recursively in the specified path.
    #[arg(short = 'r')]
    recursive: bool,
    /// Path.
    path: String,
}

/// `push`: writes a local file into the container.
pub async fn push(client: &Client, args: PushArgs, _io: &mut Io<'_>) -> Result<i32> {
    let item = WriteItem {
        path: args.remote_path,
        make_dirs: args.parents,
        ownership: args.owner.ownership(args.mode),
    };
    client.push_file(&args.local_path, &item).await?;
    Ok(0)
}

/// `pull`: copies a file out of the container; the local file changes only on success.
pub async fn pull(client: &Client, args: PullArgs, _io: &mut Io<'_>) -> Result<i32> {
    let PullArgs {
        remote_path,
        local_path,
    } = args;
    let tmp = local_path.with_extension(format!("{}.part", std::process::id()));
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    let pulled = client.pull(&remote_path, &mut f).await;
    drop(f);
    match pulled {
        Ok(_) => std::fs::rename(&tmp, &local_path)
            .with_context(|| format!("cannot write {}", local_path.display()))?,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.into());
        }
    }
    Ok(0)
}

/// `ls`: a directory's entries (or those matching a glob in the last element), by name or
/// in the long format.
pub async fn ls(client: &Client, args: LsArgs, io: &mut Io<'_>) -> Result<i32> {
    let LsArgs {
        directory,
        long,
        time,
        format,
        path,
    } = args;
    let trimmed = path.trim_end_matches('/');
    let (dir, file) = match trimmed.rfind('/') {
        Some(i) => (&trimmed[..=i], &trimmed[i + 1..]),
        None => ("", trimmed),
    };
    let glob = |s: &str| s.contains(['*', '?', '[']);
    if glob(dir) {
        bail!("can only use globs on the last path element");
    }
    let (path, pattern) = if glob(file) {
        (dir.to_string(), Some(file))
    } else {
        (path.clone(), None)
    };
    let list = client.list_files(&path, pattern, directory).await?;
    if !format.text() {
        format.write(io.out, &super::json_under("files", &list)?)?;
    } else if long {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|f| {
                vec![
                    mode_string(&f.type_, &f.permissions),
                    f.user.clone(),
                    f.group.clone(),
                    f.size
                        .map_or("-".into(), |s| format!("{:>6}", format!("{}B", amount(s)))),
                    fmt_time(&f.last_modified, time.abs_time),
                    f.name.clone(),
                ]
            })
            .collect();
        io.out.write_all(render(&rows).as_bytes())?;
    } else {
        for f in &list {
            writeln!(io.out, "{}", f.name)?;
        }
    }
    Ok(0)
}

/// `mkdir`: creates a directory (with `-p`, its parents too, and no error if it exists).
pub async fn mkdir(client: &Client, args: MkdirArgs, _io: &mut Io<'_>) -> Result<i32> {
    let ownership = args.owner.ownership(args.mode);
    client
        .make_dir(&args.path, args.parents, &ownership)
        .await?;
    Ok(0)
}

/// `rm`: removes a file or an empty directory (with `-r`, a whole tree).
pub async fn rm(client: &Client, args: RmArgs, _io: &mut Io<'_>) -> Result<i32> {
    client.remove_path(&args.path, args.recursive).await?;
    Ok(0)
}

/// Go's `FileMode.String()` for a listing entry: `-rw-r--r--`, `drwxr-xr-x`.
fn mode_string(type_: &str, permissions: &str) -> String {
    let t = match type_ {
        "directory" => 'd',
        "symlink" => 'L',
        "socket" => 'S',
        "named-pipe" => 'p',
        "device" => 'D',
        _ => '-',
    };
    let bits = u32::from_str_radix(permissions, 8).unwrap_or(0);
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if bits & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// snapd's `quantity.FormatAmount(n, -1)`: up to 3 significant digits with k/M/G/T/P/E.
fn amount(n: u64) -> String {
    if n < 1000 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = 0;
    let units = ["", "k", "M", "G", "T", "P", "E"];
    while v >= 999.5 && unit < units.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if v < 9.995 {
        format!("{v:.2}{}", units[unit])
    } else if v < 99.95 {
        format!("{v:.1}{}", units[unit])
    } else {
        format!("{v:.0}{}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_like_go_file_modes() {
        assert_eq!(mode_string("file", "644"), "-rw-r--r--");
        assert_eq!(mode_string("directory", "755"), "drwxr-xr-x");
        assert_eq!(mode_string("symlink", "777"), "Lrwxrwxrwx");
    }

    #[test]
    fn sizes_have_three_significant_digits() {
        assert_eq!(amount(999), "999");
        assert_eq!(amount(1000), "1.00k");
        assert_eq!(amount(300_000), "300k");
        assert_eq!(amount(12_345_678), "12.3M");
    }
}
