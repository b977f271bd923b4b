//! Start and stop ordering of services: `requires` pulls in dependencies (or dependents
//! when stopping), `before`/`after` order them, cycles are reported, and the result is
//! split into lanes of services linked by `requires` (Pebble's `order` and `createLanes`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{PlanError, format_err};
use crate::quote::quote;
use crate::types::{Plan, Service};

impl Plan {
    /// Every service that must start for `names` to start, in start order.
    pub fn start_order(&self, names: &[String]) -> Result<Vec<String>, PlanError> {
        order(&self.services, names, false)
    }

    /// Every service that must stop for `names` to stop, in stop order.
    pub fn stop_order(&self, names: &[String]) -> Result<Vec<String>, PlanError> {
        order(&self.services, names, true)
    }

    /// [`Plan::start_order`] split into lanes: each lane runs in sequence, lanes in parallel.
    pub fn start_lanes(&self, names: &[String]) -> Result<Vec<Vec<String>>, PlanError> {
        create_lanes(&self.start_order(names)?, &self.services)
    }

    /// [`Plan::stop_order`] split into lanes: each lane runs in sequence, lanes in parallel.
    pub fn stop_lanes(&self, names: &[String]) -> Result<Vec<Vec<String>>, PlanError> {
        create_lanes(&self.stop_order(names)?, &self.services)
    }

    /// What a replan does once `changed` (the services whose definition differs from the
    /// one they last started with) is known: the lanes to stop (`changed` and what
    /// requires them) and to start (`changed` and the `startup: enabled` services, with what
    /// they require), as Pebble's `Replan`.
    pub fn replan_lanes(&self, changed: &[String]) -> Result<ReplanLanes, PlanError> {
        let start: Vec<String> = self
            .services
            .iter()
            .filter(|(n, s)| {
                changed.contains(n) || s.startup == crate::types::ServiceStartup::Enabled
            })
            .map(|(n, _)| n.clone())
            .collect();
        Ok(ReplanLanes {
            stop: self.stop_lanes(changed)?,
            start: self.start_lanes(&start)?,
        })
    }

    /// Names of the services with `startup: enabled`, sorted.
    pub fn default_services(&self) -> Vec<String> {
        self.services
            .iter()
            .filter(|(_, s)| s.startup == crate::types::ServiceStartup::Enabled)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Fails with the before/after loop message if the services' ordering has a cycle.
    pub(crate) fn check_cycles(&self) -> Result<(), PlanError> {
        let names: Vec<String> = self.services.keys().cloned().collect();
        order(&self.services, &names, false).map(|_| ())
    }
}

/// The stop and start lanes of a replan ([`Plan::replan_lanes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplanLanes {
    /// Lanes of services to stop first.
    pub stop: Vec<Vec<String>>,
    /// Lanes of services to start then.
    pub start: Vec<Vec<String>>,
}

fn not_exist(name: &str) -> PlanError {
    format_err(format!("service {} does not exist", quote(name)))
}

fn order(
    services: &BTreeMap<String, Arc<Service>>,
    names: &[String],
    stop: bool,
) -> Result<Vec<String>, PlanError> {
    // When stopping, a service's dependents must stop too.
    let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    if stop {
        for (name, service) in services {
            for req in &service.requires {
                dependents
                    .entry(req.as_str())
                    .or_default()
                    .push(name.as_str());
            }
        }
    }

    // Collect every service involved.
    let mut successors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut pending: Vec<String> = names.to_vec();
    let mut i = 0;
    while i < pending.len() {
        let name = pending[i].clone();
        i += 1;
        if successors.contains_key(&name) {
            continue;
        }
        successors.insert(name.clone(), Vec::new());
        if stop {
            if let Some(deps) = dependents.get(name.as_str()) {
                pending.extend(deps.iter().map(|s| s.to_string()));
            }
        } else {
            let service = services.get(&name).ok_or_else(|| not_exist(&name))?;
            pending.extend(service.requires.iter().cloned());
        }
    }

    // Edges among those services only: "a must come before b" is stored as b -> a, so that
    // Tarjan's algorithm emits components in dependency order.
    let involved: Vec<String> = successors.keys().cloned().collect();
    for name in &involved {
        let service = services.get(name).ok_or_else(|| not_exist(name))?;
        let (after, before) = if stop {
            (&service.before, &service.after)
        } else {
            (&service.after, &service.before)
        };
        for a in after {
            if successors.contains_key(a) {
                successors
                    .get_mut(name)
                    .expect("name is involved")
                    .push(a.clone());
            }
        }
        for b in before {
            if let Some(succs) = successors.get_mut(b) {
                succs.push(name.clone());
            }
        }
    }

    let mut ordered = Vec::with_capacity(successors.len());
    for component in tarjan_sort(&successors) {
        if component.len() > 1 {
            return Err(format_err(format!(
                "services in before/after loop: {}",
                component.join(", ")
            )));
        }
        ordered.extend(component);
    }
    Ok(ordered)
}

/// Groups ordered services into lanes: a service joins the lane it was already placed in
/// (as someone's requirement) or the lane of its first placed requirement, else the lane
/// after the previous service's; its requirements are placed in the same lane.
/// (Like Pebble, a "new" lane is numbered from the previous service's lane, so an unrelated
/// service can land in an existing lane.)
fn create_lanes(
    names: &[String],
    services: &BTreeMap<String, Arc<Service>>,
) -> Result<Vec<Vec<String>>, PlanError> {
    let mut lane_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut current: Option<usize> = None;
    let mut max_lane = 0usize;
    for name in names {
        let service = services.get(name).ok_or_else(|| not_exist(name))?;
        let lane = lane_of
            .get(name)
            .copied()
            .or_else(|| {
                service
                    .requires
                    .iter()
                    .find_map(|dep| lane_of.get(dep).copied())
            })
            .unwrap_or_else(|| current.map_or(0, |c| c + 1));
        lane_of.insert(name.clone(), lane);
        for dep in &service.requires {
            lane_of.insert(dep.clone(), lane);
        }
        current = Some(lane);
        max_lane = max_lane.max(lane);
    }
    let mut lanes = vec![Vec::new(); max_lane + 1];
    for name in names {
        lanes[lane_of[name]].push(name.clone());
    }
    Ok(lanes)
}

/// Tarjan's strongly connected components over `successors`, visiting nodes in sorted
/// order; components come out successors-first, and each cycle's names are sorted.
fn tarjan_sort(successors: &BTreeMap<String, Vec<String>>) -> Vec<Vec<String>> {
    struct Data<'a> {
        successors: &'a BTreeMap<String, Vec<String>>,
        index: BTreeMap<&'a str, usize>,
        lowlink: Vec<usize>,
        stacked: Vec<bool>,
        stack: Vec<&'a str>,
        output: Vec<Vec<String>>,
    }

    fn connect<'a>(data: &mut Data<'a>, id: &'a str) -> usize {
        let index = data.lowlink.len();
        data.index.insert(id, index);
        data.stack.push(id);
        data.lowlink.push(index);
        data.stacked.push(true);
        let successors = data.successors;
        for succ in successors.get(id).map(Vec::as_slice).unwrap_or_default() {
            match data.index.get(succ.as_str()).copied() {
                None => {
                    let succ_low = connect(data, succ);
                    if succ_low < data.lowlink[index] {
                        data.lowlink[index] = succ_low;
                    }
                }
                Some(succ_index) if data.stacked[succ_index] => {
                    if succ_index < data.lowlink[index] {
                        data.lowlink[index] = succ_index;
                    }
                }
                Some(_) => {}
            }
        }
        if data.lowlink[index] == index {
            let mut component = Vec::new();
            while let Some(top) = data.stack.pop() {
                let top_index = data.index[top];
                data.stacked[top_index] = false;
                component.push(top.to_string());
                if top_index == index {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
            }
            data.output.push(component);
        }
        data.lowlink[index]
    }

    let mut data = Data {
        successors,
        index: BTreeMap::new(),
        lowlink: Vec::new(),
        stacked: Vec::new(),
        stack: Vec::new(),
        output: Vec::new(),
    };
    for id in successors.keys() {
        if !data.index.contains_key(id.as_str()) {
            connect(&mut data, id);
        }
    }
    data.output
}
