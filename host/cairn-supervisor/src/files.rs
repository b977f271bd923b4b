//! Pebble's files API semantics (`api_files.go`): list, read, atomic write, make-dirs and
//! remove, with Pebble's error kinds and Go-style error texts (`stat /x: no such file or
//! directory`).
//!
//! Reads and writes are streaming: a read hands out an open file to copy from, a write
//! copies from any reader into a temporary file beside the target (fsync, chmod, chown,
//! rename), so memory never grows with file size and a failed write leaves the old file.
//!
//! Every function takes the container's [`Root`] when it is isolated: paths then resolve
//! inside it (see [`crate::sandbox`]), and messages still name the container's paths.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sandbox::{Resolved, Root};
use crate::users;

/// A container path on the host: itself (shared container) or resolved in the root.
enum HostPath {
    Plain(std::path::PathBuf),
    Resolved(Resolved),
}

impl HostPath {
    fn path(&self) -> &Path {
        match self {
            HostPath::Plain(p) => p,
            HostPath::Resolved(r) => r.path(),
        }
    }

    /// The path, or `read-only file system` for a write into a system directory.
    fn writable(&self) -> std::io::Result<&Path> {
        match self {
            HostPath::Resolved(r) if r.read_only() => {
                Err(std::io::Error::from_raw_os_error(libc::EROFS))
            }
            _ => Ok(self.path()),
        }
    }
}

/// `path` on the host, its final element followed (`follow`) or named itself.
fn host(root: Option<&Root>, path: &Path, follow: bool) -> std::io::Result<HostPath> {
    match root {
        None => Ok(HostPath::Plain(path.to_path_buf())),
        Some(r) => r.resolve(path, follow).map(HostPath::Resolved),
    }
}

/// Why a file operation failed: the kinds Pebble tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileErrorKind {
    /// The path (or a parent) does not exist.
    NotFound,
    /// The daemon may not touch the path.
    PermissionDenied,
    /// Anything else (bad request values, I/O failures).
    Generic,
}

impl FileErrorKind {
    /// Pebble's name for the kind: `not-found`, `permission-denied` or `generic-file-error`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileErrorKind::NotFound => "not-found",
            FileErrorKind::PermissionDenied => "permission-denied",
            FileErrorKind::Generic => "generic-file-error",
        }
    }
}

/// A failed file operation, as Pebble reports it per path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// What kind of failure it is.
    pub kind: FileErrorKind,
    /// Go-style message, such as `stat /x: no such file or directory`.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FileError {}

impl FileError {
    /// A [`FileErrorKind::Generic`] error with this message (bad values, failed copies).
    pub fn generic(message: impl Into<String>) -> Self {
        FileError {
            kind: FileErrorKind::Generic,
            message: message.into(),
        }
    }
}

/// A Go `*PathError`: `<op> <path>: <errno text>`, with the kind Pebble derives from it.
fn path_error(op: &str, path: &Path, e: &std::io::Error) -> FileError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => FileErrorKind::NotFound,
        std::io::ErrorKind::PermissionDenied => FileErrorKind::PermissionDenied,
        _ => FileErrorKind::Generic,
    };
    FileError {
        kind,
        message: format!("{op} {}: {}", path.display(), crate::errno_text(e)),
    }
}

fn absolute(path: &str) -> Result<&Path, FileError> {
    if path.starts_with('/') {
        Ok(Path::new(path))
    } else {
        Err(FileError::generic(format!(
            "paths must be absolute, got {path:?}"
        )))
    }
}

/// What kind of file a listing entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (listings do not follow them).
    Symlink,
    /// A unix socket.
    Socket,
    /// A FIFO.
    NamedPipe,
    /// A block or character device.
    Device,
    /// Anything else.
    Unknown,
}

impl FileType {
    /// Pebble's name for the type.
    pub fn as_str(self) -> &'static str {
        match self {
            FileType::File => "file",
            FileType::Directory => "directory",
            FileType::Symlink => "symlink",
            FileType::Socket => "socket",
            FileType::NamedPipe => "named-pipe",
            FileType::Device => "device",
            FileType::Unknown => "unknown",
        }
    }

    fn of(ft: std::fs::FileType) -> Self {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_file() {
            FileType::File
        } else if ft.is_dir() {
            FileType::Directory
        } else if ft.is_symlink() {
            FileType::Symlink
        } else if ft.is_socket() {
            FileType::Socket
        } else if ft.is_fifo() {
            FileType::NamedPipe
        } else if ft.is_block_device() || ft.is_char_device() {
            FileType::Device
        } else {
            FileType::Unknown
        }
    }
}

/// One entry of a listing (`GET /v1/files?action=list` renders it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Full path.
    pub path: String,
    /// Base name.
    pub name: String,
    /// What kind of file it is.
    pub type_: FileType,
    /// Size in bytes, for regular files only.
    pub size: Option<u64>,
    /// Permission bits (`0o644`).
    pub permissions: u32,
    /// Modification time.
    pub last_modified: time::OffsetDateTime,
    /// Owner's uid.
    pub user_id: Option<u32>,
    /// Owner's name (empty when unknown).
    pub user: String,
    /// Group's gid.
    pub group_id: Option<u32>,
    /// Group's name (empty when unknown).
    pub group: String,
}

/// A file's metadata as the files API reports it: owners are container ids in a strict
/// container (host ids outside its range show as the kernel's overflow id, as inside).
fn info(root: Option<&Root>, path: &Path, meta: &std::fs::Metadata) -> FileInfo {
    let modified = time::OffsetDateTime::from_unix_timestamp(meta.mtime())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (uid, gid) = match root.and_then(|r| r.ids()) {
        Some(m) => (m.to_container(meta.uid()), m.to_container(meta.gid())),
        None => (meta.uid(), meta.gid()),
    };
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default();
    let group = nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_default();
    FileInfo {
        path: path.display().to_string(),
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        type_: FileType::of(meta.file_type()),
        size: meta.is_file().then_some(meta.len()),
        permissions: meta.permissions().mode() & 0o777,
        last_modified: modified,
        user_id: Some(uid),
        user,
        group_id: Some(gid),
        group,
    }
}

/// Go's `path.Match` for one name (`cairn_plan::glob_match`, shared with the SDK's
/// testing harness); a malformed pattern is a generic file error.
pub fn glob_match(pattern: &str, name: &str) -> Result<bool, FileError> {
    cairn_plan::glob_match(pattern, name).map_err(|e| FileError::generic(e.to_string()))
}

/// Lists a directory's entries (or the path itself, for a file or with `itself`), keeping
/// names that match `pattern`.
pub fn list(
    root: Option<&Root>,
    path: &str,
    pattern: &str,
    itself: bool,
) -> Result<Vec<FileInfo>, FileError> {
    let p = if path.starts_with('/') {
        Path::new(path)
    } else {
        return Err(FileError::generic(format!(
            "path must be absolute, got {path:?}"
        )));
    };
    let h = host(root, p, true).map_err(|e| path_error("stat", p, &e))?;
    let meta = std::fs::metadata(h.path()).map_err(|e| path_error("stat", p, &e))?;
    let mut out = Vec::new();
    if !meta.is_dir() || itself {
        // As Pebble: the entry's name is the stat's (the last element as given, trailing
        // slashes dropped) and its path that name joined to `path.Dir(path)`, so
        // `/d/` listed itself is `/d/d`, as real Pebble answers.
        let name = go_stat_name(path);
        if pattern.is_empty() || glob_match(pattern, &name)? {
            let full = go_clean(&format!("{}/{name}", go_clean(go_dir(path))));
            out.push(info(root, Path::new(&full), &meta));
        }
        return Ok(out);
    }
    let rd = std::fs::read_dir(h.path()).map_err(|e| path_error("open", p, &e))?;
    let mut entries: Vec<std::fs::DirEntry> = rd.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if !pattern.is_empty() && !glob_match(pattern, &name)? {
            continue;
        }
        let full = PathBuf::from(go_clean(&format!("{path}/{name}")));
        let meta = std::fs::symlink_metadata(h.path().join(&name))
            .map_err(|e| path_error("lstat", &full, &e))?;
        out.push(info(root, &full, &meta));
    }
    Ok(out)
}

/// Go's `path.Clean` of an absolute path.
fn go_clean(path: &str) -> String {
    format!("/{}", crate::sandbox::clean(Path::new(path)).join("/"))
}

/// Go's `path.Dir` without the cleaning: everything up to the last `/`.
fn go_dir(path: &str) -> &str {
    path.rfind('/').map_or(".", |i| &path[..=i])
}

/// The name Go's `os.Stat` gives a path: its last element once trailing slashes are
/// dropped (`/` for the root).
fn go_stat_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some(n) if !trimmed.is_empty() => n.to_string(),
        _ => "/".into(),
    }
}

/// Opens a regular file for reading (`GET /v1/files?action=read`).
pub fn open_read(root: Option<&Root>, path: &str) -> Result<std::fs::File, FileError> {
    let p = absolute(path)?;
    let h = host(root, p, true).map_err(|e| path_error("stat", p, &e))?;
    let meta = std::fs::metadata(h.path()).map_err(|e| path_error("stat", p, &e))?;
    if !meta.is_file() {
        return Err(FileError::generic(format!(
            "can only read a regular file: {path:?}"
        )));
    }
    std::fs::File::open(h.path()).map_err(|e| path_error("open", p, &e))
}

/// Owner and mode options shared by writes and make-dirs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    /// Three octal digits; empty for the default.
    pub permissions: String,
    /// Owner uid.
    pub user_id: Option<u32>,
    /// Owner name.
    pub user: String,
    /// Group gid.
    pub group_id: Option<u32>,
    /// Group name.
    pub group: String,
}

/// A file mode as the API takes it (three octal digits; empty for `default`), with
/// Pebble's message for anything else.
pub fn parse_permissions(s: &str, default: u32) -> Result<u32, FileError> {
    if s.is_empty() {
        return Ok(default);
    }
    match u32::from_str_radix(s, 8) {
        Ok(m) if s.len() == 3 => Ok(m),
        _ => Err(FileError::generic(format!(
            "permissions must be a 3-digit octal string, got {s:?}"
        ))),
    }
}

/// The host owner to give a new file: the one asked for, as container ids in a strict
/// container (whose files belong to its root when none is asked for), mapped to host ids.
fn owner(root: Option<&Root>, o: &Ownership) -> Result<Option<(u32, u32)>, FileError> {
    let asked = users::normalize(o.user_id, o.group_id, &o.user, &o.group)
        .map_err(|e| FileError::generic(format!("cannot look up user and group: {e}")))?;
    match root.and_then(|r| r.ids()) {
        Some(m) => m
            .creds_to_host(asked.unwrap_or((0, 0)))
            .map(Some)
            .map_err(|e| FileError::generic(format!("cannot look up user and group: {e}"))),
        None => Ok(asked),
    }
}

/// `mkdir -p` with the mode forced (umask ignored) and ownership applied to the
/// directories it creates; existing directories are fine.
fn mkdir_all(
    root: Option<&Root>,
    path: &Path,
    mode: u32,
    own: Option<(u32, u32)>,
) -> Result<(), FileError> {
    match host(root, path, true).and_then(|h| std::fs::metadata(h.path())) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => return Err(not_a_directory(path)),
        Err(_) => {}
    }
    if let Some(parent) = path.parent().filter(|p| *p != Path::new("/")) {
        mkdir_all(root, parent, mode, own)?;
    }
    mkdir_one(root, path, mode, own)
}

/// Go's `mkdir <path>: not a directory`.
fn not_a_directory(path: &Path) -> FileError {
    path_error(
        "mkdir",
        path,
        &std::io::Error::from_raw_os_error(libc::ENOTDIR),
    )
}

/// Creates one directory as Pebble's `osutil.mkdir` does: made as `<path>.mkdir-new` (an
/// existing one is reused), given its mode and owner, then renamed into place, so the
/// directory appears whole.
fn mkdir_one(
    root: Option<&Root>,
    path: &Path,
    mode: u32,
    own: Option<(u32, u32)>,
) -> Result<(), FileError> {
    let mut cand = path.as_os_str().to_owned();
    cand.push(".mkdir-new");
    let cand = std::path::PathBuf::from(cand);
    match create_dir(root, &cand) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(path_error("mkdir", &cand, &e)),
    }
    finish_dir(root, &cand, mode, own)?;
    let renamed = host(root, &cand, false).and_then(|from| {
        let to = host(root, path, false)?;
        std::fs::rename(from.writable()?, to.writable()?)?;
        // Persisted with its parent, as Pebble syncs the parent directory.
        if let Some(parent) = to.path().parent()
            && let Ok(d) = std::fs::File::open(parent)
        {
            let _ = d.sync_all();
        }
        Ok(())
    });
    renamed.map_err(|e| link_error("rename", &cand, path, &e))
}

/// A Go `*LinkError`: `<op> <old> <new>: <errno text>`, with the kind Pebble derives.
fn link_error(op: &str, old: &Path, new: &Path, e: &std::io::Error) -> FileError {
    let mut err = path_error(op, old, e);
    err.message = format!(
        "{op} {} {}: {}",
        old.display(),
        new.display(),
        crate::errno_text(e)
    );
    err
}

/// Creates one directory (the final element is never followed).
fn create_dir(root: Option<&Root>, path: &Path) -> std::io::Result<()> {
    std::fs::create_dir(host(root, path, false)?.writable()?)
}

/// Forces the mode and sets the owner of a directory just created, through a descriptor
/// (so a directory swapped for a link meanwhile is not followed out of the root).
fn finish_dir(
    root: Option<&Root>,
    path: &Path,
    mode: u32,
    own: Option<(u32, u32)>,
) -> Result<(), FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Not following a link, and only a directory (a FIFO put in its place cannot block).
    let dir = host(root, path, false)
        .and_then(|h| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
                .open(h.path())
        })
        .map_err(|e| path_error("chmod", path, &e))?;
    dir.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| path_error("chmod", path, &e))?;
    if let Some((uid, gid)) = own {
        std::os::unix::fs::fchown(&dir, Some(uid), Some(gid))
            .map_err(|e| path_error("chown", path, &e))?;
    }
    Ok(())
}

/// Creates a directory (`make-dirs`): with `make_parents` like `mkdir -p` (existing is
/// fine), else exactly one level (existing is an error).
pub fn make_dir(
    root: Option<&Root>,
    path: &str,
    make_parents: bool,
    o: &Ownership,
) -> Result<(), FileError> {
    let p = absolute(path)?;
    let mode = parse_permissions(&o.permissions, 0o755)?;
    let own = owner(root, o)?;
    // As Pebble's `osutil.Mkdir`: an existing path is checked first.
    match host(root, p, true).and_then(|h| std::fs::metadata(h.path())) {
        Ok(m) if !m.is_dir() => return Err(not_a_directory(p)),
        Ok(_) if make_parents => return Ok(()),
        Ok(_) => {
            return Err(path_error(
                "mkdir",
                p,
                &std::io::Error::from_raw_os_error(libc::EEXIST),
            ));
        }
        Err(_) => {}
    }
    if make_parents {
        return mkdir_all(root, p, mode, own);
    }
    mkdir_one(root, p, mode, own)
}

/// Removes a path (`remove`): recursively like `rm -rf` (a missing path is fine), or one
/// file or empty directory.
pub fn remove(root: Option<&Root>, path: &str, recursive: bool) -> Result<(), FileError> {
    let p = absolute(path)?;
    let h = host(root, p, false);
    if recursive {
        let h = match h {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            r => r.map_err(|e| path_error("lstat", p, &e))?,
        };
        return match std::fs::symlink_metadata(h.path()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(path_error("lstat", p, &e)),
            Ok(m) => {
                let hp = h.writable().map_err(|e| path_error("unlinkat", p, &e))?;
                if m.is_dir() {
                    std::fs::remove_dir_all(hp).map_err(|e| path_error("unlinkat", p, &e))
                } else {
                    std::fs::remove_file(hp).map_err(|e| path_error("remove", p, &e))
                }
            }
        };
    }
    let h = h.map_err(|e| path_error("remove", p, &e))?;
    let meta = std::fs::symlink_metadata(h.path()).map_err(|e| path_error("remove", p, &e))?;
    let hp = h.writable().map_err(|e| path_error("remove", p, &e))?;
    if meta.is_dir() {
        std::fs::remove_dir(hp).map_err(|e| path_error("remove", p, &e))
    } else {
        std::fs::remove_file(hp).map_err(|e| path_error("remove", p, &e))
    }
}

/// A file to write (one item of a files `write` request).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteItem {
    /// Absolute path.
    pub path: String,
    /// Create missing parent directories (mode 755, owned as the file).
    pub make_dirs: bool,
    /// Mode and owner.
    pub ownership: Ownership,
}

/// A write in progress: content goes to a temporary file beside the target, which replaces
/// the target only when [`Writer::commit`] succeeds. Dropped uncommitted, it leaves nothing.
pub struct Writer {
    /// The container path, for messages.
    target: std::path::PathBuf,
    /// The directory on the host (a descriptor's path in an isolated container), kept
    /// open until the rename so that both names are looked up in the same directory.
    dir: HostPath,
    /// File names in it.
    name: String,
    tmp: String,
    file: Option<std::fs::File>,
    mode: u32,
    own: Option<(u32, u32)>,
}

impl Writer {
    /// Checks the item and opens the temporary file.
    pub fn create(root: Option<&Root>, item: &WriteItem) -> Result<Writer, FileError> {
        let p = absolute(&item.path)?;
        let own = owner(root, &item.ownership)?;
        let dir = p.parent().unwrap_or(Path::new("/"));
        if item.make_dirs {
            mkdir_all(root, dir, 0o755, own).map_err(|e| FileError {
                message: format!("cannot create directory: {}", e.message),
                ..e
            })?;
        }
        let mode = parse_permissions(&item.ownership.permissions, 0o644)?;
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let host_dir = host(root, dir, true).map_err(|e| path_error("open", p, &e))?;
        // The target itself may be a system name at the top (`/lib64`) or a mount point.
        if let Some(r) = root {
            r.resolve(p, false)
                .map(HostPath::Resolved)
                .and_then(|h| h.writable().map(drop))
                .map_err(|e| path_error("open", p, &e))?;
        }
        // As Pebble's `osutil.NewAtomicFile` (Go's `os.CreateTemp(dir, name + ".*~")`):
        // `<name>.<random>~` beside the target, another random on a clash.
        let mut attempt = 0u32;
        let (tmp, file) = loop {
            let tmp = format!("{name}.{}~", temp_suffix(attempt));
            let opened = host_dir.writable().and_then(|d| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(d.join(&tmp))
            });
            match opened {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(path_error("open", &dir.join(&tmp), &e)),
                Ok(f) => break (tmp, f),
            }
        };
        Ok(Writer {
            target: p.to_path_buf(),
            dir: host_dir,
            name,
            tmp,
            file: Some(file),
            mode,
            own,
        })
    }

    /// Appends content.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), FileError> {
        let target = self.target.clone();
        self.file
            .as_mut()
            .expect("writer used after commit")
            .write_all(data)
            .map_err(|e| path_error("write", &target, &e))
    }

    /// Copies everything from `r`.
    pub fn copy_from(&mut self, r: &mut impl Read) -> Result<u64, FileError> {
        let target = self.target.clone();
        std::io::copy(r, self.file.as_mut().expect("writer used after commit"))
            .map_err(|e| path_error("write", &target, &e))
    }

    /// fsync, mode, owner, rename over the target.
    pub fn commit(mut self) -> Result<(), FileError> {
        let file = self.file.take().expect("writer committed twice");
        let t = self.target.clone();
        file.sync_all().map_err(|e| path_error("sync", &t, &e))?;
        file.set_permissions(std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| path_error("chmod", &t, &e))?;
        if let Some((uid, gid)) = self.own {
            std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
                .map_err(|e| path_error("chown", &t, &e))?;
        }
        drop(file);
        let dir = self.dir.path();
        let tmp = t.parent().unwrap_or(Path::new("/")).join(&self.tmp);
        // Go's `os.Rename` refuses a directory as the new name (`file exists`).
        if std::fs::symlink_metadata(dir.join(&self.name)).is_ok_and(|m| m.is_dir()) {
            let e = std::io::Error::from_raw_os_error(libc::EEXIST);
            return Err(link_error("rename", &tmp, &t, &e));
        }
        std::fs::rename(dir.join(&self.tmp), dir.join(&self.name))
            .map_err(|e| link_error("rename", &tmp, &t, &e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(self.dir.path().join(&self.tmp));
        }
    }
}

/// The random part of a temporary file's name, in Go's form (a decimal `u32`), different
/// for each `attempt` and each call.
fn temp_suffix(attempt: u32) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // A multiplicative hash spreads the counter; the clock and pid make it differ per run.
    (seq.wrapping_add(attempt).wrapping_mul(0x9E37_79B9) ^ nanos ^ std::process::id())
        .rotate_left(7)
}

/// Writes a whole file from a reader (atomically), as one `write` item.
pub fn write(root: Option<&Root>, item: &WriteItem, r: &mut impl Read) -> Result<(), FileError> {
    let mut w = Writer::create(root, item)?;
    w.copy_from(r)?;
    w.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cairn-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn glob_like_go_path_match() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.md", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[^a-c]x", "bx", false),
            ("\\*", "*", true),
            ("*", "", true),
        ] {
            assert_eq!(glob_match(p, n).unwrap(), want, "{p} {n}");
        }
        assert_eq!(
            glob_match("[", "a").unwrap_err().message,
            "syntax error in pattern"
        );
    }

    #[test]
    fn errors_read_like_go() {
        let e = list(None, "/nonexistent-cairn", "", false).unwrap_err();
        assert_eq!(
            (e.kind, e.kind.as_str(), e.message.as_str()),
            (
                FileErrorKind::NotFound,
                "not-found",
                "stat /nonexistent-cairn: no such file or directory"
            )
        );
        let e = open_read(None, "relative").unwrap_err();
        assert_eq!(e.message, "paths must be absolute, got \"relative\"");
        let d = tmp("errs");
        let e = open_read(None, d.to_str().unwrap()).unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "can only read a regular file: {:?}",
                d.display().to_string()
            )
        );
        let e = make_dir(None, d.to_str().unwrap(), false, &Ownership::default()).unwrap_err();
        assert_eq!(e.message, format!("mkdir {}: file exists", d.display()));
        // As Pebble's `osutil.Mkdir`: made as `<path>.mkdir-new`, then renamed.
        let deep = d.join("a/b");
        let e = make_dir(None, deep.to_str().unwrap(), false, &Ownership::default()).unwrap_err();
        assert_eq!(
            (e.kind, e.message),
            (
                FileErrorKind::NotFound,
                format!(
                    "mkdir {}.mkdir-new: no such file or directory",
                    deep.display()
                )
            )
        );
        // As Go's `os.CreateTemp` and `os.Rename`: the temporary file is named.
        let item = |p: &Path| WriteItem {
            path: p.display().to_string(),
            ..WriteItem::default()
        };
        let e = write(None, &item(&d.join("a/f")), &mut &b"x"[..]).unwrap_err();
        let temp = e
            .message
            .strip_prefix(&format!("open {}/a/f.", d.display()))
            .and_then(|m| m.strip_suffix("~: no such file or directory"))
            .unwrap_or_else(|| panic!("{}", e.message));
        assert!(temp.parse::<u32>().is_ok(), "{}", e.message);
        let e = write(None, &item(&d), &mut &b"x"[..]).unwrap_err();
        let parent = d.parent().unwrap().display().to_string();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            e.message.starts_with(&format!("rename {parent}/{name}."))
                && e.message
                    .ends_with(&format!("~ {}: file exists", d.display())),
            "{}",
            e.message
        );

        std::fs::write(d.join("f"), "x").unwrap();
        let f = d.join("f");
        let e = make_dir(
            None,
            f.join("g").to_str().unwrap(),
            true,
            &Ownership::default(),
        );
        assert_eq!(
            e.unwrap_err().message,
            format!("mkdir {}: not a directory", f.display())
        );
        let e = remove(None, d.to_str().unwrap(), false).unwrap_err();
        assert_eq!(
            e.message,
            format!("remove {}: directory not empty", d.display())
        );
        let bad = Ownership {
            permissions: "7777".into(),
            ..Ownership::default()
        };
        let e = make_dir(None, d.join("x").to_str().unwrap(), false, &bad).unwrap_err();
        assert_eq!(
            e.message,
            "permissions must be a 3-digit octal string, got \"7777\""
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn write_is_atomic_with_mode_and_dirs() {
        let d = tmp("write");
        let path = d.join("a/b/file.txt");
        let item = WriteItem {
            path: path.display().to_string(),
            make_dirs: true,
            ownership: Ownership {
                permissions: "600".into(),
                ..Ownership::default()
            },
        };
        write(None, &item, &mut &b"hello"[..]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // An abandoned write leaves the old content and no temporary file.
        let mut w = Writer::create(None, &item).unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello");
        assert_eq!(std::fs::read_dir(d.join("a/b")).unwrap().count(), 1);
        // Without make-dirs a missing parent is not-found, and nothing is written.
        let e = write(
            None,
            &WriteItem {
                path: d.join("missing/f").display().to_string(),
                ..WriteItem::default()
            },
            &mut &b"x"[..],
        )
        .unwrap_err();
        assert_eq!(e.kind, FileErrorKind::NotFound);
        let listed = list(None, d.join("a/b").to_str().unwrap(), "*.txt", false).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].name.as_str(),
                listed[0].type_.as_str(),
                listed[0].size,
                format!("{:03o}", listed[0].permissions).as_str()
            ),
            ("file.txt", "file", Some(5), "600")
        );
        let itself = list(None, d.join("a").to_str().unwrap(), "", true).unwrap();
        assert_eq!(itself[0].type_, FileType::Directory);
        remove(None, d.join("a").to_str().unwrap(), true).unwrap();
        assert!(!d.join("a").exists());
        remove(None, d.join("a").to_str().unwrap(), true).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn listed_paths_are_named_as_pebble_names_them() {
        // Real Pebble 1.32.1's answers for the same paths (`itself` joins the stat's name
        // to the path's directory, so a trailing slash names `d/d`).
        let d = tmp("names");
        let base = d.display().to_string();
        std::fs::create_dir_all(d.join("d/sub")).unwrap();
        std::fs::write(d.join("d/f"), "x").unwrap();
        let paths = |path: String, itself: bool| -> Vec<(String, String)> {
            list(None, &path, "", itself)
                .unwrap()
                .into_iter()
                .map(|i| (i.path.strip_prefix(&base).unwrap().to_string(), i.name))
                .collect()
        };
        let one = |p: &str, n: &str| vec![(p.to_string(), n.to_string())];
        assert_eq!(paths(format!("{base}/d/"), true), one("/d/d", "d"));
        assert_eq!(paths(format!("{base}/d"), true), one("/d", "d"));
        assert_eq!(paths(format!("{base}/d//sub"), true), one("/d/sub", "sub"));
        assert_eq!(
            paths(format!("{base}/d/sub/./"), true),
            one("/d/sub", "sub")
        );
        assert_eq!(
            paths(format!("{base}/d//"), false),
            [
                ("/d/f".to_string(), "f".to_string()),
                ("/d/sub".into(), "sub".into())
            ]
        );
        assert_eq!(go_stat_name("/"), "/");
    }
}
