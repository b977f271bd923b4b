//! Host calls inside a Cairn host: the WIT imports, with their types mapped to the SDK's.

use crate::__bindings::cairn::charm::{pebble, types as wit, unit};
use crate::container::{ServiceInfo, ServiceStartup, ServiceStatus};
use crate::error::{ApiError, ChangeError, Error};
use crate::model::{ConfigValue, LogLevel, Status};

pub fn unit_name() -> String {
    unit::unit_name()
}

pub fn app_name() -> String {
    unit::app_name()
}

pub fn model_name() -> String {
    unit::model_name()
}

pub fn containers() -> Vec<String> {
    unit::containers()
}

pub fn config() -> Vec<(String, ConfigValue)> {
    unit::config()
        .into_iter()
        .map(|(k, v)| (k, config_value(v)))
        .collect()
}

pub fn config_get(key: &str) -> Option<ConfigValue> {
    unit::config_get(key).map(config_value)
}

pub fn unit_status() -> Status {
    status_from(unit::unit_status())
}

pub fn set_unit_status(status: &Status) {
    unit::set_unit_status(&status_to(status));
}

pub fn app_status() -> Status {
    status_from(unit::app_status())
}

pub fn set_app_status(status: &Status) -> Result<(), String> {
    unit::set_app_status(&status_to(status))
}

pub fn is_leader() -> bool {
    unit::is_leader()
}

pub fn state_get(key: &str) -> Option<Vec<u8>> {
    unit::state_get(key)
}

pub fn state_set(key: &str, value: &[u8]) {
    unit::state_set(key, value);
}

pub fn state_delete(key: &str) {
    unit::state_delete(key);
}

pub fn state_keys() -> Vec<String> {
    unit::state_keys()
}

pub fn log(level: LogLevel, message: &str) {
    let level = match level {
        LogLevel::Trace => wit::LogLevel::Trace,
        LogLevel::Debug => wit::LogLevel::Debug,
        LogLevel::Info => wit::LogLevel::Info,
        LogLevel::Warning => wit::LogLevel::Warning,
        LogLevel::Error => wit::LogLevel::Error,
    };
    unit::log(level, message);
}

/// An open container resource.
pub struct ContainerHandle(pebble::Container);

impl ContainerHandle {
    pub fn open(name: &str) -> Result<Self, Error> {
        pebble::Container::open(name)
            .map(ContainerHandle)
            .map_err(error)
    }

    pub fn can_connect(&self) -> bool {
        self.0.can_connect()
    }

    pub fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<(), Error> {
        self.0.add_layer(label, yaml, combine).map_err(error)
    }

    pub fn get_plan(&self) -> Result<String, Error> {
        self.0.get_plan().map_err(error)
    }

    pub fn replan(&self) -> Result<(), Error> {
        self.0.replan().map_err(error)
    }

    pub fn autostart(&self) -> Result<(), Error> {
        self.0.autostart().map_err(error)
    }

    pub fn start(&self, names: &[String]) -> Result<(), Error> {
        self.0.start(names).map_err(error)
    }

    pub fn stop(&self, names: &[String]) -> Result<(), Error> {
        self.0.stop(names).map_err(error)
    }

    pub fn restart(&self, names: &[String]) -> Result<(), Error> {
        self.0.restart(names).map_err(error)
    }

    pub fn get_services(&self, names: &[String]) -> Result<Vec<ServiceInfo>, Error> {
        let infos = self.0.get_services(names).map_err(error)?;
        Ok(infos
            .into_iter()
            .map(|s| ServiceInfo {
                name: s.name,
                startup: match s.startup {
                    pebble::ServiceStartup::Enabled => ServiceStartup::Enabled,
                    pebble::ServiceStartup::Disabled => ServiceStartup::Disabled,
                },
                current: match s.current {
                    pebble::ServiceStatus::Active => ServiceStatus::Active,
                    pebble::ServiceStatus::Inactive => ServiceStatus::Inactive,
                    pebble::ServiceStatus::Backoff => ServiceStatus::Backoff,
                    pebble::ServiceStatus::Error => ServiceStatus::Error,
                },
                current_since: s.current_since,
            })
            .collect())
    }
}

fn error(e: pebble::Error) -> Error {
    match e {
        pebble::Error::Connection(m) => Error::Connection(m),
        pebble::Error::Api(a) => Error::Api(ApiError {
            code: a.code,
            status: a.status,
            kind: a.kind,
            message: a.message,
        }),
        pebble::Error::Change(c) => Error::Change(ChangeError {
            change_id: c.change_id,
            err: c.err,
        }),
        pebble::Error::Timeout(m) => Error::Timeout(m),
    }
}

fn config_value(v: wit::ConfigValue) -> ConfigValue {
    match v {
        wit::ConfigValue::String(s) => ConfigValue::String(s),
        wit::ConfigValue::Int(i) => ConfigValue::Int(i),
        wit::ConfigValue::Float(x) => ConfigValue::Float(x),
        wit::ConfigValue::Boolean(b) => ConfigValue::Bool(b),
    }
}

fn status_from(s: wit::Status) -> Status {
    match s {
        wit::Status::Unknown => Status::Unknown,
        wit::Status::Active(m) => Status::Active(m),
        wit::Status::Blocked(m) => Status::Blocked(m),
        wit::Status::Maintenance(m) => Status::Maintenance(m),
        wit::Status::Waiting(m) => Status::Waiting(m),
    }
}

fn status_to(s: &Status) -> wit::Status {
    match s.clone() {
        Status::Unknown => wit::Status::Unknown,
        Status::Active(m) => wit::Status::Active(m),
        Status::Blocked(m) => wit::Status::Blocked(m),
        Status::Maintenance(m) => wit::Status::Maintenance(m),
        Status::Waiting(m) => wit::Status::Waiting(m),
    }
}
