//! Container-wide settings every manager shares: the extra environment of services, exec
//! commands and exec checks, and the root of an isolated container.

use crate::sandbox::Root;

/// What every process of a container is given, in one place.
#[derive(Default)]
pub(crate) struct ContainerEnv {
    /// Environment given to services, exec commands and exec checks on top of the host's.
    pub(crate) env: Vec<(String, String)>,
    /// The container root, when isolated: where services, exec and checks run, and what
    /// the files functions resolve paths in.
    pub(crate) root: Option<Root>,
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
}
