//! The model's status as `cairn status` shows it (and the control socket sends it).

use cairn_supervisor::ServiceInfo;
use serde::{Deserialize, Serialize};

use crate::types::WorkloadStatus;

/// A container and its services, as status shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerReport {
    /// The container's name.
    pub name: String,
    /// Its services, by name.
    pub services: Vec<ServiceReport>,
}

/// One service line of a status report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceReport {
    /// The service's name.
    pub name: String,
    /// `enabled` or `disabled`.
    pub startup: String,
    /// `active`, `inactive`, `backoff` or `error`.
    pub current: String,
}

impl From<ServiceInfo> for ServiceReport {
    fn from(s: ServiceInfo) -> Self {
        ServiceReport {
            name: s.name,
            startup: if s.startup == cairn_plan::ServiceStartup::Enabled {
                "enabled".into()
            } else {
                "disabled".into()
            },
            current: s.current.as_str().into(),
        }
    }
}

/// One unit of a status report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UnitReport {
    /// `app/N`.
    pub name: String,
    /// The unit's status (`error` while an event is failing).
    pub status: WorkloadStatus,
    /// Whether it leads its app.
    pub leader: bool,
    /// Events waiting in its queue.
    pub queued: usize,
    /// Its containers.
    pub containers: Vec<ContainerReport>,
}

/// One application of a status report.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppReport {
    /// The app's name.
    pub name: String,
    /// The charm's name.
    pub charm: String,
    /// The app's status (the leader's, else its units' most severe).
    pub status: WorkloadStatus,
    /// Its units.
    pub units: Vec<UnitReport>,
}

/// A relation as `cairn status --relations` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RelationReport {
    /// Its id.
    pub id: u32,
    /// The providing end (`app:endpoint`; the peer endpoint for a peer relation).
    pub provider: String,
    /// The requiring end (the peer endpoint again for a peer relation).
    pub requirer: String,
    /// The interface.
    pub interface: String,
    /// `regular` or `peer`.
    pub kind: String,
    /// `joined`, or `dying` while its units run `-relation-broken`.
    pub state: String,
}

/// The whole model's status.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StatusReport {
    /// The model's name.
    pub model: String,
    /// Its apps, by name.
    pub apps: Vec<AppReport>,
    /// Its relations, by id.
    #[serde(default)]
    pub relations: Vec<RelationReport>,
}
