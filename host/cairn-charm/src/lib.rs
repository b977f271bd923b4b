//! A charm's metadata, `charmcraft.yaml`, and the checks the host makes against it.
//!
//! [`CharmMeta`] holds what Cairn reads from `charmcraft.yaml` (real charmcraft keys): the
//! charm's name, its workload containers, its config options with their types and
//! defaults ([`ConfigOption`]), and its actions with their parameter schemas
//! ([`ActionSpec`]). On top of it:
//!
//! - [`CharmMeta::parse_setting`] types an operator's `key=value` config setting by the
//!   option's declared type, and [`CharmMeta::effective_config`] fills in defaults: the
//!   config a charm sees;
//! - [`CharmMeta::validate_params`] types an action's `key=value` parameters by its JSON
//!   schema, checks them and applies defaults, before the charm runs.
//!
//! The host (`cairn-runtime`) and the SDK's native testing harness both use this crate, so
//! a setting or parameter the host refuses is refused by a charm's unit tests with the same
//! message ([`CharmError`]'s texts are the host's).
//!
//! The crate is pure: it reads only the text it is given; no files, no async.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod actions;
mod config;
mod meta;
mod relations;

pub use actions::{ActionSpec, param_settings};
pub use config::{ConfigOption, ConfigSection, ConfigValue};
pub use meta::{CharmMeta, valid_action_name, valid_container_name};
pub use relations::{RelationRole, RelationSpec};

/// Why charm metadata, a config setting or action parameters were refused; the texts are
/// what the host shows an operator.
#[derive(thiserror::Error, Debug)]
pub enum CharmError {
    /// `charmcraft.yaml` is not valid YAML or does not have the expected shape.
    #[error("cannot parse charmcraft.yaml: {0}")]
    Parse(#[source] serde_yaml::Error),
    /// A config option declares a type other than `string`, `int`, `float`, `boolean` or
    /// `secret`.
    #[error("config option {option:?} has unknown type {kind:?}")]
    UnknownType {
        /// The option.
        option: String,
        /// The type it declares.
        kind: String,
    },
    /// A config option's default does not have the option's type.
    #[error("config option {option:?} default: {reason}")]
    BadDefault {
        /// The option.
        option: String,
        /// What is wrong with the default.
        reason: String,
    },
    /// A `requires`/`provides`/`peers` endpoint Juju refuses (Juju's texts): a reserved
    /// name (`juju`, `juju-*`), a reserved interface on a `provides` or `peers` endpoint,
    /// or a name used twice.
    #[error("{0}")]
    Relation(String),
    /// A container or action name that does not follow Juju's rules (container names become
    /// directory names in the host's state directory).
    #[error("invalid {kind} name {name:?} in charmcraft.yaml: {rule}")]
    InvalidName {
        /// `container` or `action`.
        kind: &'static str,
        /// The name as declared.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A setting names an option the charm does not declare.
    #[error("unknown option {0:?}")]
    UnknownOption(String),
    /// A setting's value does not read as the option's type.
    #[error("option {option:?} expected {kind}, got {value:?}")]
    BadSetting {
        /// The option.
        option: String,
        /// Its declared type.
        kind: String,
        /// The value as given.
        value: String,
    },
    /// An action the charm does not declare.
    #[error(
        "action {action:?} not defined by charm {charm:?} (it has: {})",
        if known.is_empty() { "none".to_string() } else { known.join(", ") }
    )]
    UnknownAction {
        /// The action asked for.
        action: String,
        /// The charm's name.
        charm: String,
        /// The actions it declares, sorted.
        known: Vec<String>,
    },
    /// An action's parameters do not satisfy its schema.
    #[error("invalid parameters for action {action:?}: {reason}")]
    BadParams {
        /// The action.
        action: String,
        /// What is wrong, such as `missing required parameter "target"`.
        reason: String,
    },
}

impl CharmError {
    /// Whether the error is about the charm's metadata (rather than about what an operator
    /// asked for: a setting, an action, its parameters).
    pub fn is_metadata_error(&self) -> bool {
        matches!(
            self,
            CharmError::Parse(_)
                | CharmError::UnknownType { .. }
                | CharmError::BadDefault { .. }
                | CharmError::InvalidName { .. }
                | CharmError::Relation(_)
        )
    }
}
