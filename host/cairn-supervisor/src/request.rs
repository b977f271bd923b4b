//! Services requests (`POST /v1/services`): the typed verb, and how a verb and service
//! names become a change's stop and start lanes and its summary, as Pebble's
//! `servstate/request.go` plans them.

use cairn_plan::{Plan, PlanError};

use crate::SupervisorError;

/// What a services request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServicesAction {
    /// Start the named services (and what they require).
    Start,
    /// Stop the named services (and what requires them).
    Stop,
    /// Stop then start the named services.
    Restart,
    /// Restart services whose configuration changed, start enabled ones.
    Replan,
    /// Start the `startup: enabled` services.
    Autostart,
}

impl ServicesAction {
    /// The verb as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ServicesAction::Start => "start",
            ServicesAction::Stop => "stop",
            ServicesAction::Restart => "restart",
            ServicesAction::Replan => "replan",
            ServicesAction::Autostart => "autostart",
        }
    }
}

impl std::str::FromStr for ServicesAction {
    type Err = SupervisorError;

    /// Parses the API's verb, refusing others with Pebble's text.
    fn from_str(s: &str) -> Result<Self, SupervisorError> {
        Ok(match s {
            "start" => ServicesAction::Start,
            "stop" => ServicesAction::Stop,
            "restart" => ServicesAction::Restart,
            "replan" => ServicesAction::Replan,
            "autostart" => ServicesAction::Autostart,
            _ => {
                return Err(SupervisorError::BadRequest(format!("invalid action {s:?}")));
            }
        })
    }
}

/// A services request planned: the change's summary, the services it names, and its lanes.
pub(crate) struct ServicesPlan {
    pub(crate) summary: String,
    pub(crate) names: Vec<String>,
    pub(crate) stop_lanes: Vec<Vec<String>>,
    pub(crate) start_lanes: Vec<Vec<String>>,
}

/// Plans `action` on `names` against `plan`; `changed` gives the services a replan must
/// restart (their configuration changed since they started).
pub(crate) fn plan_services(
    action: ServicesAction,
    names: &[String],
    plan: &Plan,
    changed: impl FnOnce() -> Vec<String>,
) -> Result<ServicesPlan, SupervisorError> {
    use ServicesAction::*;
    let verb = action.as_str();
    let mut names = names.to_vec();
    match action {
        Replan | Autostart if !names.is_empty() => {
            return Err(SupervisorError::BadRequest(format!(
                "{verb} accepts no service names"
            )));
        }
        Autostart => {
            let defaults = plan.default_services();
            let lanes = plan
                .start_lanes(&defaults)
                .map_err(|e| SupervisorError::BadRequest(format!("cannot {verb} services: {e}")))?;
            names = lanes.into_iter().flatten().collect();
            if names.is_empty() {
                return Err(SupervisorError::NoDefaultServices);
            }
        }
        Replan => {}
        Start | Stop | Restart if names.is_empty() => {
            return Err(SupervisorError::BadRequest(format!(
                "must specify services for {verb} action"
            )));
        }
        Start | Stop | Restart => {}
    }
    let order_err =
        |e: PlanError| SupervisorError::BadRequest(format!("cannot {verb} services: {e}"));
    let (stop_lanes, start_lanes) = match action {
        Start | Autostart => (vec![], plan.start_lanes(&names).map_err(order_err)?),
        Stop => (plan.stop_lanes(&names).map_err(order_err)?, vec![]),
        Restart => {
            let stop = plan.stop_lanes(&names).map_err(order_err)?;
            let stop = stop
                .into_iter()
                .map(|lane| {
                    lane.into_iter()
                        .filter(|n| names.contains(n))
                        .collect::<Vec<_>>()
                })
                .filter(|lane| !lane.is_empty())
                .collect();
            (stop, plan.start_lanes(&names).map_err(order_err)?)
        }
        Replan => {
            let cairn_plan::ReplanLanes {
                stop: stop_lanes,
                start: start_lanes,
            } = plan.replan_lanes(&changed()).map_err(order_err)?;
            let mut all: Vec<String> = stop_lanes
                .iter()
                .chain(start_lanes.iter())
                .flatten()
                .cloned()
                .collect();
            all.sort();
            all.dedup();
            names = all;
            (stop_lanes, start_lanes)
        }
    };
    let count = |lanes: &Vec<Vec<String>>| lanes.iter().map(Vec::len).sum::<usize>();
    let task_count = count(&stop_lanes) + count(&start_lanes);
    let resolved = match action {
        Replan => names.len(),
        Restart => count(&start_lanes),
        _ => task_count,
    };
    let title = {
        let mut c = verb.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let summary = if task_count == 0 {
        format!("{title} - no services")
    } else if resolved <= 1 {
        format!("{title} service {:?}", names[0])
    } else {
        format!("{title} service {:?} and {} more", names[0], resolved - 1)
    };
    Ok(ServicesPlan {
        summary,
        names,
        stop_lanes,
        start_lanes,
    })
}
