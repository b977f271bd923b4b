//! Container-wide settings every manager shares: the extra environment of services, exec
//! commands and exec checks, the root of an isolated container, and the cgroup they all
//! run in with the tenant's limits.

use std::sync::{Arc, Mutex};

use crate::cgroup::{Cgroup, WorkloadLimits};
use crate::sandbox::Root;
use crate::share::CpuShare;

/// What every process of a container is given, in one place.
#[derive(Default)]
pub(crate) struct ContainerEnv {
    /// Environment given to services, exec commands and exec checks on top of the host's.
    pub(crate) env: Vec<(String, String)>,
    /// The container root, when isolated: where services, exec and checks run, and what
    /// the files functions resolve paths in.
    pub(crate) root: Option<Root>,
    /// The cgroup every process of the container joins before exec (where the host lets
    /// the supervisor make one), with the limits of `limits`.
    pub(crate) cgroup: Option<Mutex<Cgroup>>,
    /// The workload limits asked for (memory, pids, CPU), whether or not the host can
    /// enforce them.
    pub(crate) limits: Mutex<WorkloadLimits>,
    /// The tenant's share of the host's CPU, which pays for the forks of its processes.
    pub(crate) share: Option<Arc<CpuShare>>,
}

impl ContainerEnv {
    /// Makes the child of `cmd` join the container's cgroup between fork and exec.
    pub(crate) fn enter_cgroup(&self, cmd: &mut crate::spawn::Command) {
        if let Some(cg) = &self.cgroup {
            cg.lock()
                .unwrap_or_else(|e| e.into_inner())
                .enter_in_child(cmd);
        }
    }

    /// Waits until the tenant's CPU share can pay for another process start.
    pub(crate) async fn wait_share(&self) {
        if let Some(share) = &self.share {
            share.wait().await;
        }
    }

    /// Kills every process left in the container's cgroup: those that left their process
    /// group (`setsid`) included.
    pub(crate) fn kill_cgroup(&self) {
        if let Some(cg) = &self.cgroup {
            cg.lock().unwrap_or_else(|e| e.into_inner()).kill();
        }
    }
}

impl ContainerEnv {
    /// What a process starts from before its own settings: the host's environment, or in a
    /// strict container only what Pebble itself sets, plus the container's extra variables.
    pub(crate) fn base_env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = match self.strict() {
            Some(_) => crate::namespaces::minimal_env(),
            None => std::env::vars().collect(),
        };
        env.extend(self.env.iter().cloned());
        env
    }

    /// The strict container's settings, when strict.
    pub(crate) fn strict(&self) -> Option<&crate::namespaces::Strict> {
        self.root.as_ref().and_then(|r| r.strict())
    }

    /// The pid namespace a child is forked into: a strict container's (made by the
    /// `place`ment of the command), else none.
    pub(crate) fn pid_ns(&self) -> Option<std::sync::Arc<crate::namespaces::Namespaces>> {
        self.strict().and_then(|s| s.current())
    }

    /// Starts `cmd` as [`crate::reaper::spawn`] does, in the container's pid namespace if
    /// it has one, its fork charged to the tenant's CPU share.
    pub(crate) fn spawn(
        &self,
        cmd: crate::spawn::Command,
    ) -> std::io::Result<(
        crate::spawn::Child,
        tokio::sync::oneshot::Receiver<crate::reaper::ExitCode>,
    )> {
        crate::reaper::spawn_in(cmd, self.pid_ns(), self.share.clone())
    }
}
