//! The layer stack of one container and Pebble's add-layer rules (planstate manager):
//! append, combine into a same-label layer, and sub-directory (`x/y`) groups with `inner`.

use std::collections::BTreeMap;
use std::sync::Arc;

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
        Ok(Layers { layers, plan })
    }

    /// The layers, lowest order first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The combined, validated plan of the current layers.
    pub fn plan(&self) -> &Plan {
        &self.plan
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
                let mut layers = self.layers.clone();
                layers[index] = combined;
                self.update(layers)
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
        self.update(layers)
    }

    /// Recomputes and validates the plan for `layers`, and commits both only if valid.
    fn update(&mut self, layers: Vec<Layer>) -> Result<(), PlanError> {
        let plan = Plan::from_layers(&layers)?;
        if plan.workloads != self.plan.workloads {
            return Err(format_err(format!(
                "cannot change immutable section {}",
                quote("workloads")
            )));
        }
        self.layers = layers;
        self.plan = plan;
        Ok(())
    }
}
