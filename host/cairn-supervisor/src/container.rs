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
