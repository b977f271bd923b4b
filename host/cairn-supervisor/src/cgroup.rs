//! A cgroup per container, with the tenant's limits: every service, exec command and exec
//! check of the container joins it between fork and exec, so whatever they start (a daemon
//! that left its process group with `setsid` included) is found, limited and killed through
//! it: on stop, on remove, and by the next supervisor after a crash.
//!
//! Both cgroup versions, and the hybrid layout between them, are read from
//! `/proc/self/mountinfo` and `/proc/self/cgroup` once per process ([`Layout::host`]):
//! - a `cgroup2` mount (pure v2 at `/sys/fs/cgroup`, or the hybrid `/sys/fs/cgroup/unified`)
//!   is used for membership and `cgroup.kill` always, and for `memory`, `pids` and `cpu`
//!   where those controllers are available to the supervisor's own cgroup (they are
//!   enabled in its `cgroup.subtree_control`; if its own processes forbid that, the
//!   supervisor moves itself into a leaf `cairn-daemon` first, as systemd asks of a
//!   delegated service);
//! - v1 hierarchies (`cgroup` mounts) of the `memory`, `pids`, `cpu`, `cpuacct` and
//!   `freezer` controllers are used for what they carry.
//!
//! In each hierarchy the container's cgroup is `cairn-workloads/<container>-<hash of the
//! container directory>` beneath the supervisor's own cgroup there. Killing uses
//! `cgroup.kill` where the kernel has it (v2, Linux 5.14), else the v1 freezer (freeze,
//! SIGKILL every task, thaw: nothing can fork meanwhile), else repeated SIGKILLs of every
//! member. Where no hierarchy is writable, children stay where they are and the group
//! records alone are used (and limits are not enforced: logged).

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// The parent of the containers' cgroups in each hierarchy, beneath the supervisor's own.
const PARENT: &str = "cairn-workloads";
/// The leaf a supervisor moves itself into on cgroup v2 when its own cgroup must hold no
/// processes for controllers to be enabled below it.
const DAEMON_LEAF: &str = "cairn-daemon";
/// The CPU period used when only a share of a CPU is given.
pub const CPU_PERIOD_DEFAULT_US: u64 = 100_000;

/// Limits on everything a container runs (the tenant's workload budget); `None` is no
/// limit. Applied to the container's cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadLimits {
    /// Memory in bytes (`memory.max`; v1 `memory.limit_in_bytes`); swap is not allowed
    /// beyond it. Past it the kernel's OOM killer kills inside the container's cgroup.
    pub memory_max: Option<u64>,
    /// Tasks (processes and threads) alive at once (`pids.max`); past it forks fail.
    pub pids_max: Option<u64>,
    /// CPU time per period (`cpu.max`; v1 `cpu.cfs_quota_us`/`cpu.cfs_period_us`).
    pub cpu_max: Option<CpuMax>,
}

/// A CPU quota: `quota_us` of CPU time in every `period_us` of wall time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMax {
    /// CPU time allowed per period, in microseconds (at least 1000).
    pub quota_us: u64,
    /// The period, in microseconds (1000 to 1000000).
    pub period_us: u64,
}

impl CpuMax {
    /// The quota of `millicores` thousandths of a CPU (1000 = one whole CPU).
    pub fn millicores(millicores: u64) -> Self {
        CpuMax {
            quota_us: (millicores * CPU_PERIOD_DEFAULT_US / 1000).max(1000),
            period_us: CPU_PERIOD_DEFAULT_US,
        }
    }
}

/// What a container's workloads use, read from its cgroup (`None`: not available here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadUsage {
    /// Memory charged to the container now, in bytes.
    pub memory_bytes: Option<u64>,
    /// The most memory charged to it since its cgroup was made, in bytes.
    pub memory_peak_bytes: Option<u64>,
    /// Processes the OOM killer killed in it.
    pub oom_kills: Option<u64>,
    /// CPU time used by its processes (live and exited), in microseconds.
    pub cpu_usec: Option<u64>,
    /// Tasks alive in it.
    pub tasks: Option<u64>,
    /// Forks refused because of the pids limit.
    pub forks_refused: Option<u64>,
}

/// A controller Cairn uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controller {
    Memory,
    Pids,
    Cpu,
    CpuAcct,
    Freezer,
}

impl Controller {
    const ALL: [Controller; 5] = [
        Controller::Memory,
        Controller::Pids,
        Controller::Cpu,
        Controller::CpuAcct,
        Controller::Freezer,
    ];

    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::CpuAcct => "cpuacct",
            Controller::Freezer => "freezer",
        }
    }
}

/// One hierarchy the containers' cgroups are made in.
#[derive(Clone, Debug)]
struct Hierarchy {
    /// Whether it is the cgroup2 hierarchy.
    v2: bool,
    /// `cairn-workloads` beneath the supervisor's own cgroup there.
    parent: PathBuf,
    /// The controllers of Cairn's it carries (on v2: enabled for the containers' cgroups).
    controllers: Vec<Controller>,
    /// The cgroup of containers of earlier versions (`cairn-<hash>` beneath the
    /// supervisor's own cgroup2), to find what they left.
    legacy: Option<PathBuf>,
}

impl Hierarchy {
    fn has(&self, c: Controller) -> bool {
        self.controllers.contains(&c)
    }
}

/// Where containers' cgroups are made on this host, and with which controllers.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    hierarchies: Vec<Hierarchy>,
}

/// A mount of a cgroup filesystem: where, its root, and (v1) its super options.
struct Mount {
    point: PathBuf,
    root: String,
    v2: bool,
    options: Vec<String>,
}

fn mounts(mountinfo: &str) -> Vec<Mount> {
    // "<id> <parent> <dev> <root> <mount point> <options> [optional…] - <fstype> <src> <super>"
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let options = right.nth(1).unwrap_or("");
            let mut left = left.split(' ');
            let root = left.nth(3)?;
            let point = left.next()?;
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                point: PathBuf::from(point.replace("\\040", " ")),
                root: root.to_string(),
                v2,
                options: options.split(',').map(String::from).collect(),
            })
        })
        .collect()
}

/// The directory of cgroup `path` (as `/proc/self/cgroup` names it) under `mount`.
fn dir_in(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let rel = path.strip_prefix(root)?;
    if !(rel.is_empty() || rel.starts_with('/')) {
        return None;
    }
    Some(mount.point.join(rel.trim_start_matches('/')))
}

/// Writes `value` to the cgroup file `dir/file`.
fn write(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(dir.join(file), value)
}

/// The number in the cgroup file `dir/file`.
fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
fn read_key(dir: &Path, file: &str, key: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(file))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl Layout {
    /// This process's layout, found (and Cairn's parent cgroups made) on first use.
    pub(crate) fn host() -> &'static Layout {
        static HOST: OnceLock<Layout> = OnceLock::new();
        HOST.get_or_init(|| {
            let layout = Layout::detect();
            tracing::debug!("Container cgroups: {}", layout.describe());
            layout
        })
    }

    /// One line saying what the layout supports, for the log.
    fn describe(&self) -> String {
        if self.hierarchies.is_empty() {
            return "none (no writable cgroup hierarchy: workload limits are not enforced)".into();
        }
        self.hierarchies
            .iter()
            .map(|h| {
                let names: Vec<&str> = h.controllers.iter().map(|c| c.name()).collect();
                format!(
                    "{} {} [{}]",
                    if h.v2 { "v2" } else { "v1" },
                    h.parent.display(),
                    names.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn detect() -> Layout {
        let (Ok(mountinfo), Ok(own)) = (
            std::fs::read_to_string("/proc/self/mountinfo"),
            std::fs::read_to_string("/proc/self/cgroup"),
        ) else {
            return Layout::default();
        };
        let mounts = mounts(&mountinfo);
        let mut hierarchies = Vec::new();
        for line in own.lines() {
            // "<id>:<controllers>:<path>"
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(names), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if id == "0" && names.is_empty() {
                let Some(mount) = mounts.iter().find(|m| m.v2 && dir_in(m, path).is_some()) else {
                    continue;
                };
                let Some(mut own) = dir_in(mount, path) else {
                    continue;
                };
                // A supervisor of this process's ancestry moved itself into its leaf.
                if own.file_name().is_some_and(|n| n == DAEMON_LEAF) {
                    own.pop();
                }
                if let Some(h) = Self::v2_hierarchy(own) {
                    hierarchies.push(h);
                }
            } else {
                let names: Vec<&str> = names.split(',').collect();
                let controllers: Vec<Controller> = Controller::ALL
                    .into_iter()
                    .filter(|c| names.contains(&c.name()))
                    .collect();
                let Some(first) = controllers.first() else {
                    continue;
                };
                let Some(own) = mounts
                    .iter()
                    .filter(|m| !m.v2 && m.options.iter().any(|o| o == first.name()))
                    .find_map(|m| dir_in(m, path))
                else {
                    continue;
                };
                let parent = own.join(PARENT);
                match std::fs::create_dir(&parent) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => {
                        tracing::debug!("No cgroup v1 parent {}: {e}", parent.display());
                        continue;
                    }
                }
                hierarchies.push(Hierarchy {
                    v2: false,
                    parent,
                    controllers,
                    legacy: None,
                });
            }
        }
        // The cgroup2 hierarchy first: it is the one that kills with `cgroup.kill`.
        hierarchies.sort_by_key(|h| !h.v2);
        Layout { hierarchies }
    }

    /// Cairn's parent in the cgroup2 hierarchy beneath `own`, with the controllers it can
    /// have enabled there.
    fn v2_hierarchy(own: PathBuf) -> Option<Hierarchy> {
        let parent = own.join(PARENT);
        if let Err(e) = std::fs::create_dir(&parent)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            tracing::debug!("No cgroup2 parent {}: {e}", parent.display());
            return None;
        }
        let available = std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        let wanted: Vec<Controller> = [Controller::Memory, Controller::Pids, Controller::Cpu]
            .into_iter()
            .filter(|c| available.split_whitespace().any(|a| a == c.name()))
            .collect();
        let enable = |dir: &Path| {
            let line: Vec<String> = wanted.iter().map(|c| format!("+{}", c.name())).collect();
            write(dir, "cgroup.subtree_control", &line.join(" "))
        };
        if !wanted.is_empty() {
            let enabled = match enable(&own) {
                Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => {
                    // Processes in our own cgroup (this one): it cannot have controllers
                    // enabled for children. Move into a leaf of our own and try again.
                    let leaf = own.join(DAEMON_LEAF);
                    let moved = std::fs::create_dir(&leaf)
                        .or_else(|e| {
                            (e.kind() == std::io::ErrorKind::AlreadyExists)
                                .then_some(())
                                .ok_or(e)
                        })
                        .and_then(|()| write(&leaf, "cgroup.procs", "0"));
                    match moved {
                        Ok(()) => {
                            tracing::info!(
                                "Moved the supervisor into {} to delegate controllers to containers",
                                leaf.display()
                            );
                            enable(&own)
                        }
                        Err(e) => Err(e),
                    }
                }
                other => other,
            };
            if let Err(e) = enabled.and_then(|()| enable(&parent)) {
                tracing::warn!(
                    "Cannot enable the {:?} controllers for containers' cgroups in {}: {e}; they only track processes",
                    wanted.iter().map(|c| c.name()).collect::<Vec<_>>(),
                    own.display()
                );
            }
        }
        let enabled =
            std::fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        let controllers = wanted
            .into_iter()
            .filter(|c| enabled.split_whitespace().any(|a| a == c.name()))
            .collect();
        Some(Hierarchy {
            v2: true,
            parent,
            controllers,
            legacy: Some(own),
        })
    }

    /// The layout with only its cgroup2 (`v2`) or only its v1 hierarchies, for tests of
    /// each version's code on a hybrid host.
    #[cfg(test)]
    pub(crate) fn only(&self, v2: bool) -> Layout {
        Layout {
            hierarchies: self
                .hierarchies
                .iter()
                .filter(|h| h.v2 == v2)
                .cloned()
                .collect(),
        }
    }

    /// Whether some hierarchy carries `c`.
    fn carries(&self, c: Controller) -> bool {
        self.hierarchies.iter().any(|h| h.has(c))
    }

    /// Whether a container cgroup can be made here at all.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.hierarchies.is_empty()
    }
}

/// FNV-1a: a hash that stays the same across builds and versions, so that a new supervisor
/// finds its predecessor's cgroup.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The name of the container's cgroup: a readable label (`<unit>.<container>` for a unit's
/// container) and the hash of its canonical directory, which makes it unique.
pub(crate) fn name_of(container_dir: &Path) -> (String, u64) {
    let dir = std::fs::canonicalize(container_dir).unwrap_or_else(|_| container_dir.into());
    let hash = fnv1a(dir.as_os_str().as_encoded_bytes());
    let name = |p: Option<&Path>| {
        p.and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut label = name(Some(&dir));
    let parent = dir.parent();
    if name(parent) == "containers" {
        label = format!("{}.{label}", name(parent.and_then(|p| p.parent())));
    }
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    (format!("{label}-{hash:016x}"), hash)
}

/// Container cgroups live in this process: a removal retried in the background gives up on
/// one that was made again meanwhile.
fn live() -> &'static Mutex<HashSet<PathBuf>> {
    static LIVE: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// The container's cgroup in one hierarchy.
struct Dir {
    path: PathBuf,
    hierarchy: Hierarchy,
}

/// The cgroup of one container, in every hierarchy of the layout, whose `cgroup.procs`
/// children join through. (Opened at each spawn, not kept: six descriptors per container
/// on a hybrid host took a thousand strict units past a 20,000-descriptor limit.)
pub(crate) struct Cgroup {
    dirs: Vec<Dir>,
    /// Per directory of a cgroup made here (empty for one a previous run left, which is
    /// only killed): whether it must be joined (its hierarchy carries a limit).
    required: Vec<bool>,
}

/// Opens the `cgroup.procs` of the cgroup at `path` for a child to join through.
fn open_procs(path: &Path) -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        &path.join("cgroup.procs"),
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

impl Cgroup {
    /// The container's cgroup in each hierarchy of `layout`, made if needed, with `limits`
    /// applied; None where no hierarchy lets the supervisor make one.
    pub(crate) fn create(
        layout: &Layout,
        container_dir: &Path,
        limits: &WorkloadLimits,
    ) -> Option<Self> {
        let (name, _) = name_of(container_dir);
        let mut live = live().lock().unwrap_or_else(|e| e.into_inner());
        let mut cg = Cgroup {
            dirs: Vec::new(),
            required: Vec::new(),
        };
        for h in &layout.hierarchies {
            let path = h.parent.join(&name);
            if let Err(e) = std::fs::create_dir(&path)
                && e.kind() != std::io::ErrorKind::AlreadyExists
            {
                tracing::debug!("No cgroup for the container ({}): {e}", path.display());
                continue;
            }
            // Whether children will be able to join it through the supervisor's opening.
            match open_procs(&path) {
                Ok(_) => {
                    live.insert(path.clone());
                    cg.required.push(false);
                    cg.dirs.push(Dir {
                        path,
                        hierarchy: h.clone(),
                    });
                }
                Err(e) => {
                    tracing::debug!("No cgroup for the container ({}): {e}", path.display());
                    let _ = std::fs::remove_dir(&path);
                }
            }
        }
        drop(live);
        if cg.dirs.is_empty() {
            return None;
        }
        if let Err(e) = cg.set_limits(limits) {
            tracing::warn!(
                "Cannot limit the workloads of {}: {e}",
                container_dir.display()
            );
        }
        Some(cg)
    }

    /// The container's cgroup as a previous run left it (nothing is made); None if it has
    /// none in any hierarchy.
    fn existing(layout: &Layout, container_dir: &Path) -> Option<Self> {
        let (name, hash) = name_of(container_dir);
        let mut dirs = Vec::new();
        for h in &layout.hierarchies {
            let mut paths = vec![h.parent.join(&name)];
            paths.extend(
                h.legacy
                    .as_ref()
                    .map(|l| l.join(format!("cairn-{hash:016x}"))),
            );
            for path in paths {
                if path.is_dir() {
                    dirs.push(Dir {
                        path,
                        hierarchy: h.clone(),
                    });
                }
            }
        }
        (!dirs.is_empty()).then_some(Cgroup {
            dirs,
            required: Vec::new(),
        })
    }

    /// Applies `limits` (an unset one is lifted). A limit no hierarchy carries is an error
    /// naming it; the others are applied all the same.
    pub(crate) fn set_limits(&mut self, limits: &WorkloadLimits) -> Result<(), String> {
        let mut errors = Vec::new();
        let mut applied =
            |c: Controller, set: bool, result: Result<bool, std::io::Error>| match result {
                Ok(true) => {}
                Ok(false) if !set => {}
                Ok(false) => errors.push(format!(
                    "no {} controller is available to cairn here",
                    c.name()
                )),
                Err(e) => errors.push(format!("cannot set the {} limit: {e}", c.name())),
            };
        let memory = self.each(Controller::Memory, |d| d.set_memory(limits.memory_max));
        applied(Controller::Memory, limits.memory_max.is_some(), memory);
        let pids = self.each(Controller::Pids, |d| {
            let v = limits.pids_max.map_or("max".into(), |n| n.to_string());
            write(&d.path, "pids.max", &v)
        });
        applied(Controller::Pids, limits.pids_max.is_some(), pids);
        let cpu = self.each(Controller::Cpu, |d| d.set_cpu(limits.cpu_max));
        applied(Controller::Cpu, limits.cpu_max.is_some(), cpu);
        // A hierarchy carrying a limit must be joined: a child that cannot join it fails.
        for (i, d) in self.dirs.iter().enumerate() {
            let h = &d.hierarchy;
            self.required[i] = (limits.memory_max.is_some() && h.has(Controller::Memory))
                || (limits.pids_max.is_some() && h.has(Controller::Pids))
                || (limits.cpu_max.is_some() && h.has(Controller::Cpu));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// Runs `f` on the directory of the hierarchy carrying `c`; whether there was one.
    fn each(
        &self,
        c: Controller,
        f: impl Fn(&Dir) -> std::io::Result<()>,
    ) -> Result<bool, std::io::Error> {
        match self.dirs.iter().find(|d| d.hierarchy.has(c)) {
            Some(d) => f(d).map(|()| true),
            None => Ok(false),
        }
    }

    /// Makes the child of `cmd` join the cgroup between fork and exec. It may have switched
    /// users by then: the kernel checks the rights of whoever opened `cgroup.procs` (the
    /// supervisor; Linux 5.16 and the stable kernels it was backported to). A child that
    /// cannot join a hierarchy carrying one of its limits fails to start; one that cannot
    /// join a tracking-only one runs anyway, tracked by its group record.
    pub(crate) fn enter_in_child(&self, cmd: &mut crate::spawn::Command) {
        // Opened now and held by the hook until the command is dropped, after its spawn.
        let mut procs: Vec<(OwnedFd, bool)> = Vec::new();
        let mut missing: Option<std::io::Error> = None;
        for (d, &required) in self.dirs.iter().zip(&self.required) {
            match open_procs(&d.path) {
                Ok(fd) => procs.push((fd, required)),
                Err(e) if required => missing = Some(e.into()),
                Err(e) => tracing::debug!("Cannot join {}: {e}", d.path.display()),
            }
        }
        let missing = missing.map(|e| e.raw_os_error().unwrap_or(nix::libc::EIO));
        // SAFETY: write(2) of a static buffer to descriptors the hook owns, reading a
        // vector allocated before the fork: async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(errno) = missing {
                    return Err(std::io::Error::from_raw_os_error(errno));
                }
                for (fd, required) in &procs {
                    let fd: RawFd = fd.as_raw_fd();
                    if nix::libc::write(fd, c"0".as_ptr().cast(), 1) != 1 && *required {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// Pids of the processes in the cgroup (in any hierarchy: they all hold the same).
    pub(crate) fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.dirs.iter().flat_map(|d| d.pids()).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Sends `sig` to every process in the cgroup; how many there were.
    fn signal_all(&self, sig: Signal) -> usize {
        let pids = self.pids();
        for pid in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
        }
        pids.len()
    }

    /// Kills every process in the cgroup (including any forked meanwhile) and waits, up to
    /// two seconds, for them to be gone; whether they are.
    pub(crate) fn kill(&self) -> bool {
        let start = Instant::now();
        let limit = Duration::from_secs(2);
        let mut round = 0;
        while !self.pids().is_empty() {
            round += 1;
            if start.elapsed() > limit {
                tracing::warn!(
                    "Processes of the container's cgroup {} survive SIGKILL",
                    self.describe()
                );
                return false;
            }
            let v2 = self.dirs.iter().find(|d| d.hierarchy.v2);
            let freezer = self
                .dirs
                .iter()
                .find(|d| d.hierarchy.has(Controller::Freezer));
            let whole = if let Some(d) = v2.filter(|d| d.path.join("cgroup.kill").exists()) {
                // The kernel kills every member, and what they fork meanwhile.
                write(&d.path, "cgroup.kill", "1").is_ok()
            } else if let Some(d) = freezer {
                d.freeze_and_kill();
                true
            } else {
                false
            };
            // Without either, and for a process that could not join the hierarchy that
            // killed (it is in the others): SIGKILL each member.
            if round > 1 || !whole {
                self.signal_all(Signal::SIGKILL);
            }
            // Killed processes leave the cgroup as they exit: a moment.
            let until = Instant::now() + Duration::from_millis(100);
            while !self.pids().is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        true
    }

    /// What it uses, for the tenant's metrics.
    pub(crate) fn usage(&self) -> WorkloadUsage {
        let mut u = WorkloadUsage::default();
        for d in &self.dirs {
            let (p, v2) = (&d.path, d.hierarchy.v2);
            if d.hierarchy.has(Controller::Memory) {
                if v2 {
                    u.memory_bytes = read_u64(p, "memory.current");
                    u.memory_peak_bytes = read_u64(p, "memory.peak");
                    u.oom_kills = read_key(p, "memory.events", "oom_kill");
                } else {
                    u.memory_bytes = read_u64(p, "memory.usage_in_bytes");
                    u.memory_peak_bytes = read_u64(p, "memory.max_usage_in_bytes");
                    u.oom_kills = read_key(p, "memory.oom_control", "oom_kill");
                }
            }
            if d.hierarchy.has(Controller::Pids) {
                u.tasks = read_u64(p, "pids.current");
                u.forks_refused = read_key(p, "pids.events", "max");
            }
            if d.hierarchy.has(Controller::CpuAcct) {
                u.cpu_usec = read_u64(p, "cpuacct.usage").map(|ns| ns / 1000);
            }
        }
        // cgroup2 accounts CPU time whether or not its cpu controller is enabled.
        if u.cpu_usec.is_none()
            && let Some(d) = self.dirs.iter().find(|d| d.hierarchy.v2)
        {
            u.cpu_usec = read_key(&d.path, "cpu.stat", "usage_usec");
        }
        u
    }

    /// Its directories, for messages.
    fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .dirs
            .iter()
            .map(|d| d.path.display().to_string())
            .collect();
        dirs.join(", ")
    }
}

impl Drop for Cgroup {
    /// Kills what is left in the cgroup and removes it (retried in the background for a few
    /// seconds while the last processes exit).
    fn drop(&mut self) {
        if !self.pids().is_empty() {
            self.kill();
        }
        let mut registry = live().lock().unwrap_or_else(|e| e.into_inner());
        let mut busy = Vec::new();
        for d in &self.dirs {
            registry.remove(&d.path);
            if std::fs::remove_dir(&d.path).is_err() && d.path.exists() {
                busy.push(d.path.clone());
            }
        }
        drop(registry);
        if busy.is_empty() {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("cairn-cgroup-rm".into())
            .spawn(move || {
                for _ in 0..100 {
                    std::thread::sleep(Duration::from_millis(50));
                    let registry = live().lock().unwrap_or_else(|e| e.into_inner());
                    busy.retain(|p| {
                        !registry.contains(p) && std::fs::remove_dir(p).is_err() && p.exists()
                    });
                    if busy.is_empty() {
                        return;
                    }
                }
            });
    }
}

impl Dir {
    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn set_memory(&self, max: Option<u64>) -> std::io::Result<()> {
        let p = &self.path;
        if self.hierarchy.v2 {
            write(
                p,
                "memory.max",
                &max.map_or("max".into(), |n| n.to_string()),
            )?;
            // No swap beyond the limit: the limit is the memory the tenant may hold.
            if p.join("memory.swap.max").exists() {
                write(
                    p,
                    "memory.swap.max",
                    if max.is_some() { "0" } else { "max" },
                )?;
            }
            return Ok(());
        }
        let value = max.map_or("-1".into(), |n| n.to_string());
        let memsw = p.join("memory.memsw.limit_in_bytes").exists();
        // memory+swap may never be below memory: lift it, set memory, then bring it down.
        if memsw {
            write(p, "memory.memsw.limit_in_bytes", "-1")?;
        }
        write(p, "memory.limit_in_bytes", &value)?;
        if memsw {
            write(p, "memory.memsw.limit_in_bytes", &value)?;
        }
        Ok(())
    }

    fn set_cpu(&self, max: Option<CpuMax>) -> std::io::Result<()> {
        let p = &self.path;
        let period = max.map_or(CPU_PERIOD_DEFAULT_US, |m| m.period_us);
        if self.hierarchy.v2 {
            let quota = max.map_or("max".into(), |m| m.quota_us.to_string());
            return write(p, "cpu.max", &format!("{quota} {period}"));
        }
        // The quota is checked against the period: lift it first.
        write(p, "cpu.cfs_quota_us", "-1")?;
        write(p, "cpu.cfs_period_us", &period.to_string())?;
        if let Some(m) = max {
            write(p, "cpu.cfs_quota_us", &m.quota_us.to_string())?;
        }
        Ok(())
    }

    /// v1: freezes the cgroup, SIGKILLs every task (none can fork while frozen), thaws it
    /// so that they die.
    fn freeze_and_kill(&self) {
        let p = &self.path;
        if write(p, "freezer.state", "FROZEN").is_ok() {
            let until = Instant::now() + Duration::from_millis(500);
            while std::fs::read_to_string(p.join("freezer.state"))
                .is_ok_and(|s| s.trim() != "FROZEN")
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = write(p, "freezer.state", "THAWED");
    }
}

/// Terminates the processes a previous supervisor of the container left in its cgroup
/// (those its group records did not account for: an unreadable record, a daemon that left
/// its process group): SIGTERM, then after `kill_delay` the cgroup is killed and removed.
/// Returns how many there were.
pub(crate) fn terminate_left(container_dir: &Path, kill_delay: Duration) -> usize {
    let Some(cg) = Cgroup::existing(Layout::host(), container_dir) else {
        return 0;
    };
    let n = cg.signal_all(Signal::SIGTERM);
    if n > 0 {
        tracing::warn!(
            "Terminating {n} processes left in the container's cgroup {} by a previous run",
            cg.describe()
        );
        let start = Instant::now();
        while !cg.pids().is_empty() && start.elapsed() < kill_delay {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Drop kills what is left and removes the cgroup.
    drop(cg);
    n
}

/// Whether `limits` can be enforced on this host: the names of those that cannot.
pub(crate) fn unenforceable(limits: &WorkloadLimits) -> Vec<&'static str> {
    let layout = Layout::host();
    let mut v = Vec::new();
    if limits.memory_max.is_some() && !layout.carries(Controller::Memory) {
        v.push("memory");
    }
    if limits.pids_max.is_some() && !layout.carries(Controller::Pids) {
        v.push("pids");
    }
    if limits.cpu_max.is_some() && !layout.carries(Controller::Cpu) {
        v.push("cpu");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn a_unit_container_cgroup_is_named_after_unit_and_container() {
        let (name, hash) = name_of(Path::new("/nonexistent/units/web-0/containers/work load"));
        assert_eq!(name, format!("web-0.work_load-{hash:016x}"));
    }

    #[test]
    fn a_hybrid_hosts_hierarchies_are_read_from_mountinfo() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let m = mounts(mountinfo);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].options, ["rw", "cpu", "cpuacct"]);
        assert!(m[2].v2);
        assert_eq!(
            dir_in(&m[1], "/docker/abc/x"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/x"))
        );
        assert_eq!(dir_in(&m[1], "/other"), None);
        assert_eq!(dir_in(&m[1], "/docker/abcd"), None);
        assert_eq!(
            dir_in(&m[2], "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn millicores_are_a_quota_of_the_default_period() {
        assert_eq!(
            CpuMax::millicores(250),
            CpuMax {
                quota_us: 25_000,
                period_us: 100_000
            }
        );
        assert_eq!(CpuMax::millicores(1).quota_us, 1000);
    }
}
