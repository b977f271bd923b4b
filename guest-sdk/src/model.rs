//! The unit's view of the model: identity, status, leadership, config and stored state.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::host;

/// Workload status of a unit or an application, as Juju shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Status {
    /// Nothing has been set yet.
    #[default]
    Unknown,
    /// The unit is ready and working; the message is optional detail.
    Active(String),
    /// The unit needs a human to act (bad config, missing relation).
    Blocked(String),
    /// The unit is busy on its own (installing, upgrading).
    Maintenance(String),
    /// The unit waits on something outside it.
    Waiting(String),
}

impl Status {
    /// `active` with a message (often empty), like `ops.ActiveStatus`.
    pub fn active(message: impl Into<String>) -> Self {
        Status::Active(message.into())
    }

    /// `blocked` with the reason a human must act, like `ops.BlockedStatus`.
    pub fn blocked(message: impl Into<String>) -> Self {
        Status::Blocked(message.into())
    }

    /// `maintenance` with what the unit is doing, like `ops.MaintenanceStatus`.
    pub fn maintenance(message: impl Into<String>) -> Self {
        Status::Maintenance(message.into())
    }

    /// `waiting` with what the unit waits for, like `ops.WaitingStatus`.
    pub fn waiting(message: impl Into<String>) -> Self {
        Status::Waiting(message.into())
    }

    /// The status name: `unknown`, `active`, `blocked`, `maintenance` or `waiting`.
    pub fn name(&self) -> &'static str {
        match self {
            Status::Unknown => "unknown",
            Status::Active(_) => "active",
            Status::Blocked(_) => "blocked",
            Status::Maintenance(_) => "maintenance",
            Status::Waiting(_) => "waiting",
        }
    }

    /// The status message (empty for `unknown`).
    pub fn message(&self) -> &str {
        match self {
            Status::Unknown => "",
            Status::Active(m)
            | Status::Blocked(m)
            | Status::Maintenance(m)
            | Status::Waiting(m) => m,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message().is_empty() {
            f.write_str(self.name())
        } else {
            write!(f, "{}: {}", self.name(), self.message())
        }
    }
}

/// Severity of a charm log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the charm can live with.
    Warning,
    /// Something failed.
    Error,
}

/// Writes a line to the unit's log; the [`info!`](crate::info) family of macros calls this.
pub fn log(level: LogLevel, message: &str) {
    host::log(level, message);
}

/// A typed config value, as declared in `charmcraft.yaml` `config.options`.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigValue {
    /// `type: string` (and `secret`).
    String(String),
    /// `type: int`.
    Int(i64),
    /// `type: float`.
    Float(f64),
    /// `type: boolean`.
    Bool(bool),
}

impl ConfigValue {
    /// The `charmcraft.yaml` type name of this value.
    pub fn type_name(&self) -> &'static str {
        match self {
            ConfigValue::String(_) => "string",
            ConfigValue::Int(_) => "int",
            ConfigValue::Float(_) => "float",
            ConfigValue::Bool(_) => "boolean",
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::String(s) => f.write_str(s),
            ConfigValue::Int(i) => write!(f, "{i}"),
            ConfigValue::Float(x) => write!(f, "{x}"),
            ConfigValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl From<&str> for ConfigValue {
    fn from(v: &str) -> Self {
        ConfigValue::String(v.to_string())
    }
}

impl From<String> for ConfigValue {
    fn from(v: String) -> Self {
        ConfigValue::String(v)
    }
}

impl From<i64> for ConfigValue {
    fn from(v: i64) -> Self {
        ConfigValue::Int(v)
    }
}

impl From<i32> for ConfigValue {
    fn from(v: i32) -> Self {
        ConfigValue::Int(v.into())
    }
}

impl From<f64> for ConfigValue {
    fn from(v: f64) -> Self {
        ConfigValue::Float(v)
    }
}

impl From<bool> for ConfigValue {
    fn from(v: bool) -> Self {
        ConfigValue::Bool(v)
    }
}

/// A Rust type a config value converts to, for [`Config::get`] and [`Config::require`].
pub trait FromConfig: Sized {
    /// The `charmcraft.yaml` type this Rust type is read from, for error messages.
    const EXPECTED: &'static str;

    /// Converts the value, or returns `None` when it has another type or is out of range.
    fn from_config(value: &ConfigValue) -> Option<Self>;
}

impl FromConfig for String {
    const EXPECTED: &'static str = "string";
    fn from_config(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::String(s) => Some(s.clone()),
            _ => None,
        }
    }
}

impl FromConfig for bool {
    const EXPECTED: &'static str = "boolean";
    fn from_config(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

impl FromConfig for f64 {
    const EXPECTED: &'static str = "float";
    fn from_config(value: &ConfigValue) -> Option<Self> {
        match value {
            ConfigValue::Float(x) => Some(*x),
            ConfigValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

macro_rules! int_from_config {
    ($($ty:ty),*) => {$(
        impl FromConfig for $ty {
            const EXPECTED: &'static str = concat!("int (fitting ", stringify!($ty), ")");
            fn from_config(value: &ConfigValue) -> Option<Self> {
                match value {
                    ConfigValue::Int(i) => (*i).try_into().ok(),
                    _ => None,
                }
            }
        }
    )*};
}

int_from_config!(i64, i32, i16, i8, u64, u32, u16, u8, usize, isize);

impl FromConfig for ConfigValue {
    const EXPECTED: &'static str = "any";
    fn from_config(value: &ConfigValue) -> Option<Self> {
        Some(value.clone())
    }
}

/// The charm's config: user settings over the `charmcraft.yaml` defaults.
///
/// Obtained with [`Context::config`](crate::Context::config); every read asks the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    _private: (),
}

impl Config {
    /// The config view.
    pub fn new() -> Self {
        Config { _private: () }
    }

    /// The raw value of `key`, if it has one.
    pub fn value(&self, key: &str) -> Option<ConfigValue> {
        host::config_get(key)
    }

    /// Every option that has a value.
    pub fn all(&self) -> BTreeMap<String, ConfigValue> {
        host::config().into_iter().collect()
    }

    /// A string option; `None` if unset or not a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get_as(key)
    }

    /// An int option; `None` if unset or not an int.
    pub fn get_int(&self, key: &str) -> Option<i64> {
        self.get_as(key)
    }

    /// A float option (an int reads as float too); `None` if unset or of another type.
    pub fn get_float(&self, key: &str) -> Option<f64> {
        self.get_as(key)
    }

    /// A boolean option; `None` if unset or not a boolean.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get_as(key)
    }

    fn get_as<T: FromConfig>(&self, key: &str) -> Option<T> {
        self.value(key).as_ref().and_then(T::from_config)
    }

    /// An option converted to `T`: `Ok(None)` if unset, an [`Error::Config`] if it has
    /// another type or does not fit `T`.
    pub fn get<T: FromConfig>(&self, key: &str) -> Result<Option<T>> {
        match self.value(key) {
            None => Ok(None),
            Some(v) => T::from_config(&v).map(Some).ok_or_else(|| {
                // Floats are named, not printed: float formatting is large in a guest.
                let value = match &v {
                    ConfigValue::String(s) => format!("string {s:?}"),
                    ConfigValue::Int(i) => format!("int {i}"),
                    ConfigValue::Bool(b) => format!("boolean {b}"),
                    ConfigValue::Float(_) => "a float".to_string(),
                };
                Error::Config(format!(
                    "config option {key:?} is {value}, expected {}",
                    T::EXPECTED
                ))
            }),
        }
    }

    /// An option converted to `T`, with an [`Error::Config`] if it is unset, has another
    /// type or does not fit `T`.
    pub fn require<T: FromConfig>(&self, key: &str) -> Result<T> {
        self.get(key)?
            .ok_or_else(|| Error::Config(format!("config option {key:?} is not set")))
    }

    /// A string option, or an [`Error::Config`] if unset or not a string.
    pub fn require_str(&self, key: &str) -> Result<String> {
        self.require(key)
    }

    /// An int option, or an [`Error::Config`] if unset or not an int.
    pub fn require_int(&self, key: &str) -> Result<i64> {
        self.require(key)
    }

    /// A float option, or an [`Error::Config`] if unset or not a number.
    pub fn require_float(&self, key: &str) -> Result<f64> {
        self.require(key)
    }

    /// A boolean option, or an [`Error::Config`] if unset or not a boolean.
    pub fn require_bool(&self, key: &str) -> Result<bool> {
        self.require(key)
    }
}

/// The unit's stored state: bytes kept across events under string keys.
///
/// Writes are committed by the host only when the handler succeeds (or defers); a failed
/// event's writes are discarded. Typed values are kept as JSON with [`save`](Self::save)
/// and [`load`](Self::load).
#[derive(Clone, Copy, Debug, Default)]
pub struct StoredState {
    _private: (),
}

impl StoredState {
    /// The stored-state view.
    pub fn new() -> Self {
        StoredState { _private: () }
    }

    /// The raw bytes under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        host::state_get(key)
    }

    /// Stores raw bytes under `key`.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) {
        host::state_set(key, value.as_ref());
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) {
        host::state_delete(key);
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        host::state_keys()
    }

    /// The JSON value under `key` decoded as `T`, `None` if absent.
    pub fn load<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::State(format!("cannot decode stored state {key:?}: {e}"))),
        }
    }

    /// The JSON value under `key` decoded as `T`, or `T::default()` if absent.
    pub fn load_or_default<T: DeserializeOwned + Default>(&self, key: &str) -> Result<T> {
        Ok(self.load(key)?.unwrap_or_default())
    }

    /// Stores `value` as JSON under `key`.
    pub fn save<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| Error::State(format!("cannot encode stored state {key:?}: {e}")))?;
        self.set(key, bytes);
        Ok(())
    }
}

/// This unit (`ops.Unit`): its name, status and leadership.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unit {
    _private: (),
}

impl Unit {
    /// The unit view.
    pub fn new() -> Self {
        Unit { _private: () }
    }

    /// The unit's name, such as `web/0`.
    pub fn name(&self) -> String {
        host::unit_name()
    }

    /// The unit's status as last committed (or as set earlier in this event).
    pub fn status(&self) -> Status {
        host::unit_status()
    }

    /// Sets the unit's status; committed only if the handler succeeds.
    pub fn set_status(&self, status: Status) {
        host::set_unit_status(&status);
    }

    /// Whether this unit leads its application.
    pub fn is_leader(&self) -> bool {
        host::is_leader()
    }
}

/// This unit's application (`ops.Application`): its name and status.
#[derive(Clone, Copy, Debug, Default)]
pub struct App {
    _private: (),
}

impl App {
    /// The application view.
    pub fn new() -> Self {
        App { _private: () }
    }

    /// The application's name, such as `web`.
    pub fn name(&self) -> String {
        host::app_name()
    }

    /// The application's status.
    pub fn status(&self) -> Status {
        host::app_status()
    }

    /// Sets the application's status; only the leader may ([`Error::Model`] otherwise).
    pub fn set_status(&self, status: Status) -> Result<()> {
        host::set_app_status(&status).map_err(Error::Model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_display_and_parts() {
        assert_eq!(Status::active("").to_string(), "active");
        let b = Status::blocked("invalid port");
        assert_eq!(b.to_string(), "blocked: invalid port");
        assert_eq!((b.name(), b.message()), ("blocked", "invalid port"));
    }

    #[test]
    fn config_conversions() {
        assert_eq!(u16::from_config(&ConfigValue::Int(8080)), Some(8080));
        assert_eq!(u16::from_config(&ConfigValue::Int(70000)), None);
        assert_eq!(f64::from_config(&ConfigValue::Int(2)), Some(2.0));
        assert_eq!(String::from_config(&ConfigValue::Bool(true)), None);
    }
}
