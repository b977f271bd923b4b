//! The layer stack of one container and Pebble's add-layer rules (planstate manager):
//! append, combine into a same-label layer, and sub-directory (`x/y`) groups with `inner`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use crate::combine::combine_layers;
use crate::command::command_string;
use crate::error::{PlanError, format_err};
use crate::quote::quote;
use crate::types::{Layer, Override, Plan, Service};

/// Label of the layer that [`Layers::set_service_args`] adds. Like Pebble, which re-applies
/// `--args` on every start, this layer is not meant to be persisted: [`parse_layer`](crate::parse_layer)
/// rejects its reserved `pebble-` label.
pub const SERVICE_ARGS_LABEL: &str = "pebble-service-args";

/// The ordered layers a container holds plus the combined plan they give.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layers {
    layers: Vec<Layer>,
    plan: Plan,
    rendered: Rendered,
}

/// The length of each layer's YAML rendering, found once per layer while it stays the same
/// (a budget counts the layers' bytes on every add, and rendering is the costly part):
/// clones share what they found, and a layer an add changes gets a fresh cell.
#[derive(Clone, Debug, Default)]
struct Rendered(Vec<Arc<OnceLock<usize>>>);

impl Rendered {
    fn fresh(n: usize) -> Self {
        Rendered((0..n).map(|_| Arc::default()).collect())
    }
}

impl PartialEq for Rendered {
    /// A cache: layers equal or not whatever it has found.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Layers {
    /// Takes layers as loaded at startup (layers directory or persisted state), sorted by
    /// order, and validates the plan they give. Labels must be unique.
    pub fn new(mut layers: Vec<Layer>) -> Result<Self, PlanError> {
        layers.sort_by_key(|l| l.order);
        for (i, layer) in layers.iter().enumerate() {
            if layers[..i].iter().any(|l| l.label == layer.label) {
                return Err(PlanError::LabelExists(layer.label.clone()));
            }
        }
        let plan = Plan::from_layers(&layers)?;
        let rendered = Rendered::fresh(layers.len());
        Ok(Layers {
            layers,
            plan,
            rendered,
        })
    }

    /// The layers, lowest order first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The combined, validated plan of the current layers.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The length in bytes of layer `index`'s YAML rendering ([`Layer::to_yaml`]), rendered
    /// once while the layer stays the same.
    pub fn rendered_len(&self, index: usize) -> usize {
        match self.rendered.0.get(index) {
            Some(cell) => *cell.get_or_init(|| self.layers[index].to_yaml().len()),
            None => self.layers[index].to_yaml().len(),
        }
    }

    /// Adds a layer as `POST /v1/layers` does. Without `combine` the label must be new and the
    /// layer is appended; with `combine` it is merged into the layer of the same label (which
    /// keeps its order) or appended. A label `x/y` joins an existing `x/...` group only with
    /// `inner`. On error nothing changes.
    pub fn add(&mut self, layer: Layer, combine: bool, inner: bool) -> Result<(), PlanError> {
        let found = self.layers.iter().position(|l| l.label == layer.label);
        match (combine, found) {
            (false, Some(_)) => Err(PlanError::LabelExists(layer.label)),
            (_, None) => self.append(layer, inner),
            (true, Some(index)) => {
                let existing = &self.layers[index];
                let mut combined = combine_layers(&[existing.clone(), layer])?;
                combined.order = existing.order;
                combined.label = existing.label.clone();
                let mut rendered = self.rendered.clone();
                if combined != *existing
                    && let Some(cell) = rendered.0.get_mut(index)
                {
                    *cell = Arc::default();
                }
                let mut layers = self.layers.clone();
                layers[index] = combined;
                self.update(layers, rendered)
            }
        }
    }

    /// Adds a layer given as YAML, as `POST /v1/layers` and a charm's `add-layer` do:
    /// [`parse_added_layer`](crate::parse_added_layer) (Pebble's API messages), then
    /// [`Layers::add`]. On error nothing changes.
    pub fn add_yaml(
        &mut self,
        label: &str,
        yaml: &[u8],
        combine: bool,
        inner: bool,
    ) -> Result<(), PlanError> {
        let layer = crate::parse_added_layer(label, yaml)?;
        self.add(layer, combine, inner)
    }

    /// Replaces the `[ ... ]` arguments of the named services, as `pebble run --args` does,
    /// by appending a `pebble-service-args` layer.
    pub fn set_service_args(
        &mut self,
        args: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), PlanError> {
        let mut layer = Layer {
            label: SERVICE_ARGS_LABEL.to_string(),
            ..Layer::default()
        };
        for (name, service_args) in args {
            let service = self
                .plan
                .services
                .get(name)
                .ok_or_else(|| PlanError::ServiceNotFound(name.clone()))?;
            let (base, _) = service.parse_command(None)?;
            layer.services.insert(
                name.clone(),
                Arc::new(Service {
                    name: name.clone(),
                    override_: Override::Merge,
                    command: command_string(&base, service_args),
                    ..Service::default()
                }),
            );
        }
        self.append(layer, false)
    }

    /// Appends, or inserts at the end of an existing sub-directory group, choosing the order.
    fn append(&mut self, mut layer: Layer, inner: bool) -> Result<(), PlanError> {
        let count = self.layers.len();
        let mut index = 0;
        let mut order = 1000;
        if let Some(last) = self.layers.last() {
            let (group, has_sub) = match layer.label.split_once('/') {
                Some((group, _)) => (group, true),
                None => (layer.label.as_str(), false),
            };
            // The last layer of the same group (the label before any "/") decides where it goes.
            if let Some(i) = self
                .layers
                .iter()
                .rposition(|l| l.label.split('/').next() == Some(group))
            {
                order = self.layers[i].order + 1;
                index = i + 1;
            }
            if index == 0 {
                index = count;
                order = (last.order / 1000 + 1) * 1000;
                if has_sub {
                    order += 1;
                }
            }
        }
        if index != count && !inner {
            return Err(PlanError::InnerRequired);
        }
        layer.order = order;
        let mut layers = self.layers.clone();
        layers.insert(index, layer);
        let mut rendered = self.rendered.clone();
        if rendered.0.len() == count {
            rendered.0.insert(index, Arc::default());
        } else {
            rendered = Rendered::fresh(layers.len());
        }
        self.update(layers, rendered)
    }

    /// Recomputes and validates the plan for `layers`, and commits both only if valid.
    fn update(&mut self, layers: Vec<Layer>, rendered: Rendered) -> Result<(), PlanError> {
        let plan = Plan::from_layers(&layers)?;
        if plan.workloads != self.plan.workloads {
            return Err(format_err(format!(
                "cannot change immutable section {}",
                quote("workloads")
            )));
        }
        self.layers = layers;
        self.plan = plan;
        self.rendered = rendered;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every layer's cached rendering length, beside a fresh rendering.
    fn lengths(l: &Layers) -> Vec<(usize, usize)> {
        (0..l.layers().len())
            .map(|i| (l.rendered_len(i), l.layers()[i].to_yaml().len()))
            .collect()
    }

    #[test]
    fn rendered_lengths_follow_every_add_and_combine() {
        let svc =
            |cmd: &str| format!("services:\n  s:\n    override: replace\n    command: {cmd}\n");
        let mut l = Layers::default();
        l.add_yaml("a", svc("sleep 1").as_bytes(), false, false)
            .unwrap();
        let _ = lengths(&l);
        l.add_yaml("b", svc("sleep 22").as_bytes(), false, false)
            .unwrap();
        let before = l.clone();
        // The same layer again: its length is kept; a changed one is measured again.
        l.add_yaml("a", svc("sleep 1").as_bytes(), true, false)
            .unwrap();
        l.add_yaml("b", svc("sleep 333333").as_bytes(), true, false)
            .unwrap();
        l.add_yaml("c/x", svc("true").as_bytes(), false, false)
            .unwrap();
        l.add_yaml("c/y", svc("false").as_bytes(), false, true)
            .unwrap();
        for (cached, fresh) in lengths(&l).into_iter().chain(lengths(&before)) {
            assert_eq!(cached, fresh);
        }
        // A refused add changes nothing, the cache included.
        assert!(l.add_yaml("b", b"services: [", true, false).is_err());
        for (cached, fresh) in lengths(&l) {
            assert_eq!(cached, fresh);
        }
    }
}
