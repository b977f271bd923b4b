//! The error type of this crate; its `Display` is Pebble's exact message text.

use crate::quote::quote;

/// Why a layer, plan, layers directory or plan operation was rejected.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Invalid layer or plan content (Pebble's `plan.FormatError`; the API answers 400).
    #[error("{0}")]
    Format(String),
    /// An add-layer without `combine` named a label that already exists (the API answers 400).
    #[error("layer {} already exists", quote(.0))]
    LabelExists(String),
    /// An add-layer would go inside an existing sub-directory group but `inner` was not set.
    #[error("cannot insert sub-directory layer without 'inner' attribute set")]
    InnerRequired,
    /// A service command could not be split (`cannot parse service "x" command: ...`).
    #[error("{0}")]
    Command(String),
    /// A layers directory could not be read, or holds a badly named entry.
    #[error("{0}")]
    LayersDir(String),
    /// A `service-context` named a service the plan does not define.
    #[error("context service {} not found", quote(.0))]
    ContextServiceNotFound(String),
    /// Service arguments were given for a service the plan does not define.
    #[error("service {} not found in plan", quote(.0))]
    ServiceNotFound(String),
    /// A service, check or log target whose `override` is missing or not `merge`/`replace`.
    /// Pebble finds these when combining layers, so an added layer's message carries no
    /// parse prefix even though Cairn finds invalid values while parsing.
    #[error("{0}")]
    Override(String),
    /// An add-layer request without a label.
    #[error("label must be set")]
    LabelRequired,
    /// An added layer's YAML was refused: what `POST /v1/layers` answers for a layer that
    /// does not parse. The inner error is the parser's; it is part of this message, so it
    /// is not also given as `source()` (a chain would print it twice).
    #[error("cannot parse layer YAML: {0}")]
    LayerYaml(Box<PlanError>),
}

impl PlanError {
    /// Whether Pebble's API reports this error as a bad request (400) rather than a server error (500).
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            PlanError::Format(_)
                | PlanError::LabelExists(_)
                | PlanError::Override(_)
                | PlanError::LabelRequired
                | PlanError::LayerYaml(_)
        )
    }
}

/// Shorthand for building a [`PlanError::Format`].
pub(crate) fn format_err(message: impl Into<String>) -> PlanError {
    PlanError::Format(message.into())
}
