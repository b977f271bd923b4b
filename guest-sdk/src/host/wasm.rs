//! Host calls inside a Cairn host: the WIT imports, with their types mapped to the SDK's.

use crate::__bindings::cairn::charm0_1_0::{pebble, types as wit, unit};
use crate::__bindings::cairn::charm0_2_0::relation;
use crate::container::{ServiceInfo, ServiceStartup, ServiceStatus};
use crate::error::{ApiError, ChangeError, Error};
use crate::layer;
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

pub fn action_set_results(results: &[(String, String)]) -> Result<(), String> {
    unit::action_set_results(results)
}

pub fn action_log(message: &str) -> Result<(), String> {
    unit::action_log(message)
}

pub fn action_fail(message: &str) -> Result<(), String> {
    unit::action_fail(message)
}

/// A running command resource.
pub struct ProcessHandle(pebble::Process);

impl ProcessHandle {
    pub fn write_stdin(&self, data: &[u8]) -> Result<(), Error> {
        self.0.write_stdin(data).map_err(error)
    }

    pub fn send_signal(&self, signal: &str) -> Result<(), Error> {
        self.0.send_signal(signal).map_err(error)
    }

    pub fn read_stdout(&self, max: u32) -> Result<Option<Vec<u8>>, Error> {
        self.0.read_stdout(max).map_err(error)
    }

    pub fn read_stderr(&self, max: u32) -> Result<Option<Vec<u8>>, Error> {
        self.0.read_stderr(max).map_err(error)
    }

    pub fn wait(&self) -> Result<i32, Error> {
        self.0.wait().map_err(error)
    }

    pub fn wait_output(&self) -> Result<crate::container::ExecOutput, Error> {
        let o = self.0.wait_output().map_err(error)?;
        Ok(crate::container::ExecOutput {
            exit_code: o.exit_code,
            stdout: o.stdout,
            stderr: o.stderr,
        })
    }
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

    pub fn get_plan(&self) -> Result<crate::layer::Plan, Error> {
        self.0.get_plan().map(plan).map_err(error)
    }

    pub fn get_plan_yaml(&self) -> Result<String, Error> {
        self.0.get_plan_yaml().map_err(error)
    }

    pub fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), Error> {
        self.0.send_signal(signal, names).map_err(error)
    }

    pub fn get_checks(
        &self,
        level: Option<crate::event::CheckLevel>,
        names: &[String],
    ) -> Result<Vec<crate::event::CheckInfo>, Error> {
        let level = match level {
            None => wit::CheckLevel::Unset,
            Some(crate::event::CheckLevel::Alive) => wit::CheckLevel::Alive,
            Some(crate::event::CheckLevel::Ready) => wit::CheckLevel::Ready,
        };
        let infos = self.0.get_checks(level, names).map_err(error)?;
        Ok(infos
            .into_iter()
            .map(crate::__private::check_info)
            .collect())
    }

    pub fn start_checks(&self, names: &[String]) -> Result<Vec<String>, Error> {
        self.0.start_checks(names).map_err(error)
    }

    pub fn stop_checks(&self, names: &[String]) -> Result<Vec<String>, Error> {
        self.0.stop_checks(names).map_err(error)
    }

    pub fn get_notices(
        &self,
        filter: &crate::container::NoticeFilter,
    ) -> Result<Vec<crate::event::Notice>, Error> {
        let f = pebble::NoticeFilter {
            types: filter.types.clone(),
            keys: filter.keys.clone(),
            after: filter.after.clone(),
        };
        let found = self.0.get_notices(&f).map_err(error)?;
        Ok(found.into_iter().map(crate::__private::notice).collect())
    }

    pub fn exec(
        &self,
        command: &[String],
        o: &crate::container::ExecOptions,
    ) -> Result<ProcessHandle, Error> {
        let opts = pebble::ExecOptions {
            environment: o.environment.clone(),
            working_dir: o.working_dir.clone(),
            timeout_ms: o.timeout.map(|t| t.as_millis() as u64),
            user_id: None,
            user: o.user.clone(),
            group_id: None,
            group: o.group.clone(),
            service_context: o.service_context.clone(),
            split_stderr: !o.combine_stderr,
        };
        self.0
            .exec(command, &opts)
            .map(ProcessHandle)
            .map_err(error)
    }

    pub fn push(
        &self,
        path: &str,
        data: &[u8],
        o: &crate::container::FileOptions,
    ) -> Result<(), Error> {
        self.0.push(path, data, &file_options(o)).map_err(error)
    }

    pub fn pull(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.0.pull(path).map_err(error)
    }

    pub fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<crate::container::FileInfo>, Error> {
        let list = self.0.list_files(path, pattern, itself).map_err(error)?;
        Ok(list
            .into_iter()
            .map(|f| crate::container::FileInfo {
                path: f.path,
                name: f.name,
                kind: f.type_,
                size: f.size,
                permissions: f.permissions,
                last_modified: f.last_modified,
                user_id: f.user_id,
                user: f.user,
                group_id: f.group_id,
                group: f.group,
            })
            .collect())
    }

    pub fn make_dir(&self, path: &str, o: &crate::container::FileOptions) -> Result<(), Error> {
        self.0.make_dir(path, &file_options(o)).map_err(error)
    }

    pub fn remove_path(&self, path: &str, recursive: bool) -> Result<(), Error> {
        self.0.remove_path(path, recursive).map_err(error)
    }

    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        self.0.exists(path).map_err(error)
    }

    pub fn is_dir(&self, path: &str) -> Result<bool, Error> {
        self.0.is_dir(path).map_err(error)
    }

    pub fn get_notice(&self, id: &str) -> Result<crate::event::Notice, Error> {
        self.0
            .get_notice(id)
            .map(crate::__private::notice)
            .map_err(error)
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

fn map(pairs: Vec<(String, String)>) -> std::collections::BTreeMap<String, String> {
    pairs.into_iter().collect()
}

fn override_kind(o: pebble::OverrideKind) -> Option<layer::Override> {
    match o {
        pebble::OverrideKind::Unset => None,
        pebble::OverrideKind::Merge => Some(layer::Override::Merge),
        pebble::OverrideKind::Replace => Some(layer::Override::Replace),
    }
}

fn startup(s: pebble::ServiceStartup) -> layer::Startup {
    match s {
        pebble::ServiceStartup::Enabled => layer::Startup::Enabled,
        pebble::ServiceStartup::Disabled => layer::Startup::Disabled,
    }
}

fn action(a: pebble::ServiceAction) -> layer::ServiceAction {
    match a {
        pebble::ServiceAction::Restart => layer::ServiceAction::Restart,
        pebble::ServiceAction::Shutdown => layer::ServiceAction::Shutdown,
        pebble::ServiceAction::FailureShutdown => layer::ServiceAction::FailureShutdown,
        pebble::ServiceAction::SuccessShutdown => layer::ServiceAction::SuccessShutdown,
        pebble::ServiceAction::Ignore => layer::ServiceAction::Ignore,
    }
}

/// The WIT plan as the SDK's serde types (the same shape `Plan::from_yaml` gives).
fn plan(p: pebble::Plan) -> layer::Plan {
    let services = p
        .services
        .into_iter()
        .map(|s| {
            let service = layer::Service {
                override_: override_kind(s.override_),
                summary: Some(s.summary).filter(|x| !x.is_empty()),
                description: Some(s.description).filter(|x| !x.is_empty()),
                command: Some(s.command).filter(|x| !x.is_empty()),
                startup: s.startup.map(startup),
                after: s.after,
                before: s.before,
                requires: s.requires,
                environment: map(s.environment),
                user: s.user,
                user_id: s.user_id,
                group: s.group,
                group_id: s.group_id,
                working_dir: s.working_dir,
                on_success: s.on_success.map(action),
                on_failure: s.on_failure.map(action),
                on_check_failure: s
                    .on_check_failure
                    .into_iter()
                    .map(|(k, a)| (k, action(a)))
                    .collect(),
                backoff_delay: s.backoff_delay,
                backoff_factor: s.backoff_factor,
                backoff_limit: s.backoff_limit,
                kill_delay: s.kill_delay,
            };
            (s.name, service)
        })
        .collect();
    let checks = p
        .checks
        .into_iter()
        .map(|c| {
            let check = layer::Check {
                override_: override_kind(c.override_),
                level: match c.level {
                    wit::CheckLevel::Unset => None,
                    wit::CheckLevel::Alive => Some(layer::CheckLevel::Alive),
                    wit::CheckLevel::Ready => Some(layer::CheckLevel::Ready),
                },
                startup: c.startup.map(startup),
                period: c.period,
                timeout: c.timeout,
                threshold: c.threshold,
                http: c.http.map(|h| layer::HttpCheck {
                    url: h.url,
                    headers: map(h.headers),
                }),
                tcp: c.tcp.map(|t| layer::TcpCheck {
                    port: t.port,
                    host: t.host,
                }),
                exec: c.exec.map(|e| layer::ExecCheck {
                    command: e.command,
                    service_context: e.service_context,
                    environment: map(e.environment),
                    user: e.user,
                    user_id: e.user_id,
                    group: e.group,
                    group_id: e.group_id,
                    working_dir: e.working_dir,
                }),
            };
            (c.name, check)
        })
        .collect();
    let log_targets = p
        .log_targets
        .into_iter()
        .map(|t| {
            let target = layer::LogTarget {
                override_: override_kind(t.override_),
                type_: t.type_.map(|k| match k {
                    pebble::LogTargetType::Loki => layer::LogTargetType::Loki,
                    pebble::LogTargetType::Opentelemetry => layer::LogTargetType::Opentelemetry,
                    pebble::LogTargetType::Syslog => layer::LogTargetType::Syslog,
                }),
                location: Some(t.location).filter(|x| !x.is_empty()),
                services: t.services,
                labels: map(t.labels),
            };
            (t.name, target)
        })
        .collect();
    layer::Plan {
        services,
        checks,
        log_targets,
    }
}

fn file_options(o: &crate::container::FileOptions) -> pebble::FileOptions {
    pebble::FileOptions {
        make_parents: o.make_parents,
        permissions: o.permissions,
        user_id: o.user_id,
        user: o.user.clone(),
        group_id: o.group_id,
        group: o.group.clone(),
    }
}

fn error(e: pebble::Error) -> Error {
    match e {
        pebble::Error::Path(p) => Error::Path(crate::error::PathError {
            kind: p.kind,
            message: p.message,
        }),
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

pub fn relations() -> Vec<crate::relation::Relation> {
    relation::relations()
        .into_iter()
        .map(|r| crate::relation::Relation {
            id: r.id,
            endpoint: r.endpoint,
            interface: r.interface,
            app: r.remote_app,
            units: r.remote_units,
        })
        .collect()
}

pub fn relation_get(id: u32, owner: &str) -> Result<Vec<(String, String)>, String> {
    relation::get(id, owner)
}

pub fn relation_set(id: u32, owner: &str, settings: &[(String, String)]) -> Result<(), String> {
    relation::set(id, owner, settings)
}
