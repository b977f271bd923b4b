//! The fake filesystem of a test container: files with their permissions and
//! directories, with Pebble's path errors. `list_files` patterns are read by Go's
//! `path.Match` rules, through the glob the host itself uses (`cairn_plan::glob_match`).

use std::collections::BTreeMap;

use super::container::TestContainer;
use crate::container::{FileInfo, FileOptions};
use crate::error::{Error, PathError, Result};

/// Files (content and permissions) and directories (permissions), by absolute path.
#[derive(Clone, Debug)]
pub(super) struct FakeFs {
    files: BTreeMap<String, (Vec<u8>, u32)>,
    dirs: BTreeMap<String, u32>,
}

impl Default for FakeFs {
    fn default() -> Self {
        FakeFs {
            files: BTreeMap::new(),
            dirs: [("/".to_string(), 0o755)].into(),
        }
    }
}

impl TestContainer {
    /// The content of a file in the fake filesystem (what the charm pushed, or what the
    /// test put there with [`TestContainer::put_file`]).
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        self.fs.files.get(path).map(|(d, _)| d.as_slice())
    }

    /// Puts a file into the fake filesystem, creating its parent directories.
    pub fn put_file(&mut self, path: &str, data: impl AsRef<[u8]>) {
        let mut parent = parent_of(path);
        while let Some(p) = parent {
            self.fs.dirs.entry(p.to_string()).or_insert(0o755);
            parent = parent_of(p);
        }
        self.fs
            .files
            .insert(path.to_string(), (data.as_ref().to_vec(), 0o644));
    }

    fn path_err(kind: &str, message: String) -> Error {
        Error::Path(PathError {
            kind: kind.into(),
            message,
        })
    }

    fn absolute(path: &str) -> Result<()> {
        if path.starts_with('/') {
            Ok(())
        } else {
            Err(Self::path_err(
                "generic-file-error",
                format!("paths must be absolute, got {path:?}"),
            ))
        }
    }

    /// `Some(true)` for a directory, `Some(false)` for a file, `None` if absent.
    pub(crate) fn fs_kind(&self, path: &str) -> Option<bool> {
        if self.fs.dirs.contains_key(path) {
            Some(true)
        } else if self.fs.files.contains_key(path) {
            Some(false)
        } else {
            None
        }
    }

    pub(crate) fn fs_push(&mut self, path: &str, data: &[u8], o: &FileOptions) -> Result<()> {
        Self::absolute(path)?;
        let parent = parent_of(path).unwrap_or("/");
        if !self.fs.dirs.contains_key(parent) {
            if !o.make_parents {
                return Err(Self::path_err(
                    "not-found",
                    format!("open {path}: no such file or directory"),
                ));
            }
            self.put_file(path, b"");
        }
        self.fs.files.insert(
            path.to_string(),
            (data.to_vec(), o.permissions.unwrap_or(0o644)),
        );
        Ok(())
    }

    pub(crate) fn fs_pull(&self, path: &str) -> Result<Vec<u8>> {
        Self::absolute(path)?;
        match self.fs_kind(path) {
            Some(false) => Ok(self.fs.files[path].0.clone()),
            Some(true) => Err(Self::path_err(
                "generic-file-error",
                format!("can only read a regular file: {path:?}"),
            )),
            None => Err(Self::path_err(
                "not-found",
                format!("stat {path}: no such file or directory"),
            )),
        }
    }

    pub(crate) fn fs_list(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<FileInfo>> {
        Self::absolute(path)?;
        let info = |p: &str| {
            let dir = self.fs.dirs.get(p);
            FileInfo {
                path: p.to_string(),
                name: p
                    .rsplit('/')
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("/")
                    .to_string(),
                kind: if dir.is_some() { "directory" } else { "file" }.into(),
                size: self.fs.files.get(p).map(|(d, _)| d.len() as u64),
                permissions: dir
                    .copied()
                    .or(self.fs.files.get(p).map(|(_, m)| *m))
                    .unwrap_or(0),
                last_modified: "2026-01-01T00:00:00Z".into(),
                user_id: Some(0),
                user: Some("root".into()),
                group_id: Some(0),
                group: Some("root".into()),
            }
        };
        let Some(is_dir) = self.fs_kind(path) else {
            return Err(Self::path_err(
                "not-found",
                format!("stat {path}: no such file or directory"),
            ));
        };
        let bad_pattern =
            |_| Self::path_err("generic-file-error", "syntax error in pattern".into());
        let matches = |name: &str| match pattern {
            None | Some("") => Ok(true),
            Some(p) => cairn_plan::glob_match(p, name).map_err(bad_pattern),
        };
        if !is_dir || itself {
            let i = info(path);
            return Ok(if matches(&i.name)? { vec![i] } else { vec![] });
        }
        let mut out = Vec::new();
        for p in self.fs.dirs.keys().chain(self.fs.files.keys()) {
            if p.as_str() != path && parent_of(p) == Some(path) {
                let i = info(p);
                if matches(&i.name)? {
                    out.push(i);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub(crate) fn fs_make_dir(&mut self, path: &str, o: &FileOptions) -> Result<()> {
        Self::absolute(path)?;
        let mode = o.permissions.unwrap_or(0o755);
        // Pebble's words: an existing path is checked first; a directory is made as
        // `<path>.mkdir-new` and renamed into place.
        match self.fs_kind(path) {
            Some(false) => {
                return Err(Self::path_err(
                    "generic-file-error",
                    format!("mkdir {path}: not a directory"),
                ));
            }
            Some(true) if o.make_parents => return Ok(()),
            Some(true) => {
                return Err(Self::path_err(
                    "generic-file-error",
                    format!("mkdir {path}: file exists"),
                ));
            }
            None => {}
        }
        let parent = parent_of(path).unwrap_or("/");
        if !self.fs.dirs.contains_key(parent) {
            if !o.make_parents {
                return Err(Self::path_err(
                    "not-found",
                    format!("mkdir {path}.mkdir-new: no such file or directory"),
                ));
            }
            self.fs_make_dir(parent, o)?;
        }
        self.fs.dirs.insert(path.to_string(), mode);
        Ok(())
    }

    pub(crate) fn fs_remove(&mut self, path: &str, recursive: bool) -> Result<()> {
        Self::absolute(path)?;
        let under = |p: &String| p.starts_with(&format!("{}/", path.trim_end_matches('/')));
        if recursive {
            self.fs.files.retain(|p, _| p != path && !under(p));
            self.fs.dirs.retain(|p, _| p != path && !under(p));
            return Ok(());
        }
        match self.fs_kind(path) {
            None => Err(Self::path_err(
                "not-found",
                format!("remove {path}: no such file or directory"),
            )),
            Some(true) if self.fs.files.keys().chain(self.fs.dirs.keys()).any(under) => {
                Err(Self::path_err(
                    "generic-file-error",
                    format!("remove {path}: directory not empty"),
                ))
            }
            Some(_) => {
                self.fs.files.remove(path);
                self.fs.dirs.remove(path);
                Ok(())
            }
        }
    }
}

/// The parent of an absolute path (`None` for `/`).
fn parent_of(path: &str) -> Option<&str> {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    match t.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&t[..i]),
        None => None,
    }
}
