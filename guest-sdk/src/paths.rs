//! Recursive copies of files and directories, as ops' `Container.push_path` and
//! `pull_path`: between a container and an in-memory [`FileTree`] (a charm has no
//! filesystem of its own), or straight from one container to another.
//!
//! As in ops, a source that is a directory lands *inside* the destination directory under
//! its own name (`/etc/app` into `/backup` gives `/backup/app/...`), a glob in the last
//! element of a source (`/etc/app/*.conf`) copies the matching entries, and every path is
//! tried: the failures are gathered into one [`Error::PushPull`].

use std::collections::BTreeMap;

use crate::container::{Container, FileInfo, FileOptions};
use crate::error::{Error, Result};

/// One entry of a [`FileTree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEntry {
    /// A regular file with its content and permission bits.
    File {
        /// The content.
        data: Vec<u8>,
        /// Permission bits, such as `0o644`.
        permissions: u32,
    },
    /// A directory with its permission bits.
    Dir {
        /// Permission bits, such as `0o755`.
        permissions: u32,
    },
}

/// Files and directories by relative path (`app/conf.d/a.conf`): what
/// [`Container::push_path`] writes and [`Container::pull_path`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileTree {
    entries: BTreeMap<String, TreeEntry>,
}

impl FileTree {
    /// An empty tree.
    pub fn new() -> Self {
        FileTree::default()
    }

    /// With a file (mode 0644) at the relative `path`; its parents become directories.
    pub fn file(mut self, path: &str, data: impl AsRef<[u8]>) -> Self {
        self.insert_file(path, data, 0o644);
        self
    }

    /// With an empty directory (mode 0755) at the relative `path`.
    pub fn dir(mut self, path: &str) -> Self {
        self.insert_dir(path, 0o755);
        self
    }

    /// Adds a file with these permission bits; its parents become directories.
    pub fn insert_file(&mut self, path: &str, data: impl AsRef<[u8]>, permissions: u32) {
        let path = relative(path);
        self.add_parents(&path);
        self.entries.insert(
            path,
            TreeEntry::File {
                data: data.as_ref().to_vec(),
                permissions,
            },
        );
    }

    /// Adds a directory with these permission bits (and its parents).
    pub fn insert_dir(&mut self, path: &str, permissions: u32) {
        let path = relative(path);
        self.add_parents(&path);
        self.entries.insert(path, TreeEntry::Dir { permissions });
    }

    fn add_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            self.entries
                .entry(path[..end].to_string())
                .or_insert(TreeEntry::Dir { permissions: 0o755 });
            end += 1;
        }
    }

    /// The content of the file at `path`, if the tree has one there.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(&relative(path)) {
            Some(TreeEntry::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// Every entry, parents before their children.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &TreeEntry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// How many entries (files and directories) the tree holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The total size of its files in bytes.
    pub fn size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                TreeEntry::File { data, .. } => data.len() as u64,
                TreeEntry::Dir { .. } => 0,
            })
            .sum()
    }
}

fn relative(path: &str) -> String {
    path.trim_matches('/').to_string()
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a source into its directory and the glob of its last element, when it has one.
fn split_glob(source: &str) -> Option<(&str, &str)> {
    let (dir, last) = source.rsplit_once('/')?;
    if !last.contains(['*', '?', '[']) {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, last))
}

/// What [`Container::walk`] calls for each entry: its relative name, its info and its
/// content (`None` for a directory).
type Visit<'a> = dyn FnMut(&str, &FileInfo, Option<Vec<u8>>) + 'a;

/// Failures of one recursive copy, gathered as ops' `MultiPushPullError` does.
#[derive(Default)]
struct Failures(Vec<(String, Error)>);

impl Failures {
    fn record<T>(&mut self, path: &str, r: Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push((path.to_string(), e));
                None
            }
        }
    }

    fn finish(self, what: &str) -> Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Error::PushPull {
            message: format!("failed to {what} {} path(s)", self.0.len()),
            errors: self.0,
        })
    }
}

impl Container {
    /// Writes `tree` under the directory `dest_dir` (created as needed), each file with its
    /// permissions, as ops' `push_path`; failures are gathered into one
    /// [`Error::PushPull`].
    pub fn push_path(&self, tree: &FileTree, dest_dir: &str) -> Result<()> {
        let mut failures = Failures::default();
        failures.record(
            dest_dir,
            self.make_dir(dest_dir, &FileOptions::make_parents()),
        );
        for (path, entry) in tree.entries() {
            let dest = join(dest_dir, path);
            let r = match entry {
                TreeEntry::Dir { permissions } => self.make_dir(
                    &dest,
                    &FileOptions::make_parents().permissions(*permissions),
                ),
                TreeEntry::File { data, permissions } => self.push_with(
                    &dest,
                    data,
                    &FileOptions::make_parents().permissions(*permissions),
                ),
            };
            failures.record(&dest, r);
        }
        failures.finish("push")
    }

    /// Reads `source` (a file, a directory read recursively, or a glob in the last element)
    /// into a [`FileTree`] named as ops' `pull_path` would lay it out: `/etc/app` gives
    /// `app/...`, `/etc/app/*.conf` gives the matching names.
    pub fn pull_path(&self, source: &str) -> Result<FileTree> {
        let mut tree = FileTree::new();
        let mut failures = Failures::default();
        for (info, name) in self.sources(source, &mut failures) {
            self.walk(
                &info,
                &name,
                &mut failures,
                &mut |path, info, data| match data {
                    Some(data) => tree.insert_file(path, data, info.permissions),
                    None => tree.insert_dir(path, info.permissions),
                },
            );
        }
        failures.finish("pull").map(|()| tree)
    }

    /// Copies `source` (as [`Container::pull_path`] reads it) into `dest_dir` of the
    /// container `to`, one file at a time, keeping permissions: a charm's way to move files
    /// between its containers without holding a whole tree in memory.
    pub fn copy_path(&self, source: &str, to: &Container, dest_dir: &str) -> Result<()> {
        let src = source.trim_end_matches('/');
        if self.name() == to.name() && (dest_dir == src || dest_dir.starts_with(&format!("{src}/")))
        {
            return Err(Error::msg(format!(
                "cannot copy {source:?} into itself ({dest_dir:?})"
            )));
        }
        let mut failures = Failures::default();
        failures.record(
            dest_dir,
            to.make_dir(dest_dir, &FileOptions::make_parents()),
        );
        let mut writes = Vec::new();
        for (info, name) in self.sources(source, &mut failures) {
            self.walk(&info, &name, &mut failures, &mut |path, info, data| {
                let dest = join(dest_dir, path);
                let options = FileOptions::make_parents().permissions(info.permissions);
                let r = match data {
                    Some(data) => to.push_with(&dest, data, &options),
                    None => to.make_dir(&dest, &options),
                };
                writes.push((dest, r));
            });
        }
        for (dest, r) in writes {
            failures.record(&dest, r);
        }
        failures.finish("copy")
    }

    /// The entries a source names, each with the name it gets at the destination.
    fn sources(&self, source: &str, failures: &mut Failures) -> Vec<(FileInfo, String)> {
        let listed = match split_glob(source) {
            Some((dir, glob)) => self.list_files(dir, Some(glob), false),
            None => self.list_files(source, None, true),
        };
        failures
            .record(source, listed)
            .unwrap_or_default()
            .into_iter()
            .map(|info| {
                let name = info.name.clone();
                (info, name)
            })
            .collect()
    }

    /// Visits `info` and, for a directory, everything under it, reading each file; `visit`
    /// gets the relative destination name, the entry and the content (`None` for a
    /// directory). Sockets, pipes and devices are skipped, as ops does.
    fn walk(&self, info: &FileInfo, name: &str, failures: &mut Failures, visit: &mut Visit<'_>) {
        match info.kind.as_str() {
            // A link is read as the file it leads to (a link to a directory fails), as ops'
            // pull_path does.
            "file" | "symlink" => {
                if let Some(data) = failures.record(&info.path, self.pull(&info.path)) {
                    visit(name, info, Some(data));
                }
            }
            "directory" => {
                visit(name, info, None);
                let children = self.list_files(&info.path, None, false);
                for child in failures.record(&info.path, children).unwrap_or_default() {
                    let child_name = format!("{name}/{}", child.name);
                    self.walk(&child, &child_name, failures, visit);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_adds_the_parents_of_its_files() {
        let t = FileTree::new().file("/app/conf.d/a.conf", "x").dir("empty");
        let names: Vec<_> = t.entries().map(|(p, _)| p).collect();
        assert_eq!(names, ["app", "app/conf.d", "app/conf.d/a.conf", "empty"]);
        assert_eq!(t.get("app/conf.d/a.conf"), Some(&b"x"[..]));
        assert_eq!(t.get("app"), None);
        assert_eq!(t.size(), 1);
    }

    #[test]
    fn globs_are_found_only_in_the_last_element() {
        assert_eq!(split_glob("/etc/app/*.conf"), Some(("/etc/app", "*.conf")));
        assert_eq!(split_glob("/x?"), Some(("/", "x?")));
        assert_eq!(split_glob("/etc/app"), None);
        assert_eq!(split_glob("/et*/app"), None);
    }
}
