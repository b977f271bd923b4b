//! Crash-safe file writes: a temp file with a name unique to the write, fsync, rename,
//! fsync the directory.
//!
//! Each write's temporary file is `.{name}.tmp-{pid}-{n}`, `n` from a process-wide
//! counter, so that two writers of one file (two threads, or two processes) never
//! truncate each other's temp. The temp is removed on any error. A crash between create and
//! rename leaves such a temp behind: [`remove_stale_temps`] clears them when the owner of
//! the directory opens it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Numbers the temporary files of this process, so that concurrent writes never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The prefix of every temporary name of `name` (`.{name}.tmp`), old (`.{name}.tmp{pid}`)
/// and new (`.{name}.tmp-{pid}-{n}`) alike.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new content,
/// never an empty or partial file.
pub fn atomic_write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    replace(path, data, true)
}

/// Like [`atomic_write`] without the fsyncs: for records that must survive the death of
/// this process but not of the machine (after which what they describe is gone too).
pub fn atomic_write_unsynced(path: &Path, data: &[u8]) -> std::io::Result<()> {
    replace(path, data, false)
}

/// Writes `data` to a temporary file unique to this write and renames it over `path`,
/// with fsyncs of the file and the directory when `durable`.
fn replace(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| std::io::Error::other(format!("{} names no file", path.display())))?;
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{}-{}-{n}", temp_prefix(&name), std::process::id()));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is.
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Removes the temporary files of writes of `name` in `dir` that a crash left behind. Call
/// it only as the one writer of `name` (when opening the directory), before writing.
pub fn remove_stale_temps(dir: &Path, name: &str) -> Vec<PathBuf> {
    let prefix = temp_prefix(name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(f) = file.to_str() else { continue };
        let Some(rest) = f.strip_prefix(&prefix) else {
            continue;
        };
        // `{pid}` (old) or `-{pid}-{n}` (new): digits and dashes only.
        let ours = !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'-');
        if ours && std::fs::remove_file(e.path()).is_ok() {
            removed.push(e.path());
        }
    }
    removed
}

/// Removes the temporary files of writes of any file in `dir` that a crash left behind
/// (`.{name}.tmp{pid}` and `.{name}.tmp-{pid}-{n}`). Call it only as the one writer of the
/// directory's files (when opening it), before writing.
pub fn remove_all_stale_temps(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name();
        let Some(f) = file.to_str() else { continue };
        let Some((name, _)) = f.strip_prefix('.').and_then(|f| f.rsplit_once(".tmp")) else {
            continue;
        };
        if !name.is_empty() {
            removed.extend(remove_stale_temps(dir, name));
        }
    }
    removed.sort();
    removed.dedup();
    removed
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("cairn-persist-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn temps_of_any_file_left_by_a_crash_are_removed_and_nothing_else() {
        let dir = dir("any");
        let keep = [".x.json", "x.json", ".x.json.tmpx", "a.tmp-1-2", ".tmp-1-2"];
        let gone = [".x.json.tmp12", ".y.wasm.tmp-3-4", "..pebble.state.tmp-5-6"];
        for f in keep.iter().chain(&gone) {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        let mut removed: Vec<String> = super::remove_all_stale_temps(&dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut want: Vec<String> = gone.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(removed, want);
        for f in keep {
            assert!(dir.join(f).exists(), "{f}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = dir("replace");
        let p = dir.join("state.json");
        super::atomic_write(&p, b"one").unwrap();
        super::atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn concurrent_writers_of_one_file_never_fail_nor_leave_it_torn() {
        let dir = dir("concurrent");
        let p = Arc::new(dir.join("state.json"));
        let writers: Vec<_> = (0..8u8)
            .map(|i| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let data = vec![b'a' + i; 64 * 1024];
                    for _ in 0..40 {
                        super::atomic_write(&p, &data).unwrap();
                    }
                })
            })
            .collect();
        let mut reads = 0;
        while !writers.iter().all(|w| w.is_finished()) {
            if let Ok(d) = std::fs::read(&*p) {
                assert_eq!(d.len(), 64 * 1024, "torn or empty read");
                assert!(d.iter().all(|b| *b == d[0]), "mixed content");
                reads += 1;
            }
        }
        for w in writers {
            w.join().unwrap();
        }
        assert!(reads > 0);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temps left");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_write_removes_its_temp_and_keeps_the_old_content() {
        let dir = dir("failed");
        let p = dir.join("state.json");
        super::atomic_write(&p, b"old").unwrap();
        // Renaming a file over a non-empty directory fails after the temp was written.
        let blocker = dir.join("blocker");
        std::fs::create_dir_all(blocker.join("inside")).unwrap();
        assert!(super::atomic_write(&blocker, b"new").is_err());
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_temps_of_a_crash_are_removed_and_nothing_else() {
        let dir = dir("stale");
        for f in [
            ".state.json.tmp123",
            ".state.json.tmp-123-4",
            ".state.json.tmp-x",
            ".other.tmp-1-2",
            "state.json",
        ] {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        let mut removed: Vec<String> = super::remove_stale_temps(&dir, "state.json")
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        assert_eq!(removed, [".state.json.tmp-123-4", ".state.json.tmp123"]);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
