//! The `container` resource: a guest's handle on one of its unit's containers, and every
//! call on it (layers, plan, services, checks, notices, files, exec). A handle is only a
//! name; each call looks the container up among the unit's own and serves it from its
//! backend: the embedded supervisor, or the Pebble API client (`remote`).

use std::time::Duration;

use cairn_supervisor::files::FileType;
use cairn_supervisor::notices::NoticeType;
use cairn_supervisor::{ServicesAction, Supervisor, SupervisorError};
use wasmtime::component::Resource;

use super::convert::{
    api_error, check_info, check_level_filter, custom_error, file_info, ownership, path_error,
    service_info, typed_plan, wit_notice,
};
use super::process::ProcessRes;
use super::remote::{self, client_error, list_error};
use super::{StoreState, blocking, pebble, until_deadline, wit};
use crate::wasm::backend::{ContainerBackend, PebbleClient};

/// A container handle held by a guest: just the name, checked against the unit's containers.
pub struct ContainerRes {
    name: String,
}

/// How long a services call (`replan`, `start`, …) waits for its change, as ops' default
/// `timeout` for them; the event's deadline still bounds the wait.
const SERVICES_TIMEOUT: Duration = Duration::from_secs(30);

/// A signal's name as Pebble takes it (`HUP` becomes `SIGHUP`).
fn signal_name(signal: String) -> String {
    if signal.starts_with("SIG") {
        signal
    } else {
        format!("SIG{signal}")
    }
}

/// A listing's path must be absolute: otherwise Pebble's API refuses the request (400),
/// before any file is looked at.
fn listable(path: &str) -> Result<(), pebble::Error> {
    match path.starts_with('/') {
        true => Ok(()),
        false => Err(api_error(SupervisorError::BadRequest(format!(
            "path must be absolute, got {path:?}"
        )))),
    }
}

impl StoreState {
    /// The backend of the container a handle names.
    fn backend(&self, res: &Resource<ContainerRes>) -> Result<ContainerBackend, pebble::Error> {
        let name = &self
            .table
            .get(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))?
            .name;
        self.ctx.containers.get(name).cloned().ok_or_else(|| {
            pebble::Error::Connection(format!("cannot connect to container {name:?}"))
        })
    }

    /// Runs a services action and waits for its change, as ops' `*_services` calls do.
    async fn run(
        &mut self,
        res: &Resource<ContainerRes>,
        action: ServicesAction,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        let sup = match self.backend(res)? {
            ContainerBackend::Embedded(sup) => sup,
            ContainerBackend::Custom(c) => {
                return match c.services_action(action, &names) {
                    // As the other backends: autostart with nothing to start is not an error.
                    Err(crate::wasm::ContainerError::Api { kind, .. })
                        if action == ServicesAction::Autostart && kind == "no-default-services" =>
                    {
                        Ok(())
                    }
                    r => r.map_err(custom_error),
                };
            }
            ContainerBackend::Pebble(c) => {
                return remote::run_services(
                    &c,
                    action.as_str(),
                    &names,
                    SERVICES_TIMEOUT,
                    self.deadline,
                )
                .await;
            }
        };
        let id = match sup.services_action(action, &names) {
            Ok(id) => id,
            // ops' autostart with nothing to start is not an error.
            Err(SupervisorError::NoDefaultServices) if action == ServicesAction::Autostart => {
                return Ok(());
            }
            Err(e) => return Err(api_error(e)),
        };
        let info = until_deadline(self.deadline, "wait for the change", async {
            sup.wait_change(&id, Some(SERVICES_TIMEOUT))
                .await
                .map_err(api_error)
        })
        .await?;
        match info.err {
            Some(err) => Err(pebble::Error::Change(pebble::ChangeError {
                change_id: id,
                err,
            })),
            None => Ok(()),
        }
    }

    /// Starts a command in an embedded container.
    fn exec_embedded(
        &mut self,
        sup: Supervisor,
        command: Vec<String>,
        options: pebble::ExecOptions,
    ) -> Result<ProcessRes, pebble::Error> {
        let plan = sup.plan();
        let overrides = cairn_plan::ContextOptions {
            environment: options.environment.into_iter().collect(),
            user_id: options.user_id,
            user: options.user.unwrap_or_default(),
            group_id: options.group_id,
            group: options.group.unwrap_or_default(),
            working_dir: options.working_dir.unwrap_or_default(),
        };
        let merged = plan
            .merge_service_context(options.service_context.as_deref().unwrap_or(""), overrides)
            .map_err(|e| api_error(SupervisorError::BadRequest(e.to_string())))?;
        let ids = cairn_supervisor::users_normalize(
            merged.user_id,
            merged.group_id,
            &merged.user,
            &merged.group,
        )
        .map_err(|e| api_error(SupervisorError::BadRequest(e)))?;
        let started = sup
            .exec(cairn_supervisor::exec::ExecArgs {
                command,
                environment: merged.environment,
                working_dir: merged.working_dir,
                timeout: options.timeout_ms.map(Duration::from_millis),
                user_id: ids.map(|(u, _)| u),
                group_id: ids.map(|(_, g)| g),
                split_stderr: options.split_stderr,
                ..Default::default()
            })
            .map_err(api_error)?;
        ProcessRes::connect(sup, &started, options.split_stderr)
    }

    /// Starts a command through a container's Pebble API (the service context is the
    /// server's to apply), within the host's budget of concurrent execs.
    async fn exec_remote(
        &mut self,
        c: PebbleClient,
        command: Vec<String>,
        options: pebble::ExecOptions,
    ) -> Result<ProcessRes, pebble::Error> {
        let slot = c.take_exec_slot(self.spend.budget().execs).map_err(|running| {
            self.spend.hit("execs");
            api_error(SupervisorError::Busy {
                limit: "execs",
                message: format!(
                    "cannot call exec: {running} commands are running, the container's budget of concurrent execs"
                ),
            })
        })?;
        let opts = exec_options(command, options);
        let started = until_deadline(self.deadline, "call exec", async {
            c.api().exec_start(&opts).await.map_err(client_error)
        })
        .await?;
        Ok(ProcessRes::remote(c, started, slot))
    }
}

/// A guest's exec request as the API's options (what a client backend sends, and what a
/// custom backend is given).
fn exec_options(command: Vec<String>, options: pebble::ExecOptions) -> cairn_api::ExecOptions {
    cairn_api::ExecOptions {
        command,
        environment: options.environment.into_iter().collect(),
        working_dir: options.working_dir,
        timeout: options.timeout_ms.map(Duration::from_millis),
        user_id: options.user_id,
        user: options.user,
        group_id: options.group_id,
        group: options.group,
        service_context: options.service_context,
        terminal: false,
        interactive: false,
        split_stderr: options.split_stderr,
    }
}

impl pebble::Host for StoreState {}

impl pebble::HostContainer for StoreState {
    async fn exec(
        &mut self,
        self_: Resource<ContainerRes>,
        command: Vec<String>,
        options: pebble::ExecOptions,
    ) -> Result<Resource<ProcessRes>, pebble::Error> {
        let res = match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => self.exec_embedded(sup, command, options)?,
            ContainerBackend::Pebble(c) => self.exec_remote(c, command, options).await?,
            ContainerBackend::Custom(c) => {
                let opts = exec_options(command, options);
                let run = c.exec(&opts).map_err(custom_error)?;
                ProcessRes::custom(run, opts.split_stderr)
            }
        };
        self.table
            .push(res)
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    fn open(&mut self, name: String) -> Result<Resource<ContainerRes>, pebble::Error> {
        if !self.ctx.containers.contains_key(&name) {
            return Err(pebble::Error::Connection(format!(
                "cannot connect to container {name:?}: not a container of {}",
                self.ctx.unit_name
            )));
        }
        self.table
            .push(ContainerRes { name })
            .map_err(|e| pebble::Error::Connection(e.to_string()))
    }

    fn name(&mut self, self_: Resource<ContainerRes>) -> String {
        self.table
            .get(&self_)
            .map(|c| c.name.clone())
            .unwrap_or_default()
    }

    async fn can_connect(&mut self, self_: Resource<ContainerRes>) -> bool {
        match self.backend(&self_) {
            Ok(ContainerBackend::Embedded(_)) => true,
            Ok(ContainerBackend::Custom(c)) => c.can_connect(),
            // As ops: the API answers `GET /v1/system-info`.
            Ok(ContainerBackend::Pebble(c)) => until_deadline(self.deadline, "connect", async {
                c.api().system_info().await.map_err(client_error)
            })
            .await
            .is_ok(),
            Err(_) => false,
        }
    }

    async fn add_layer(
        &mut self,
        self_: Resource<ContainerRes>,
        label: String,
        layer: String,
        combine: bool,
    ) -> Result<(), pebble::Error> {
        match self.backend(&self_)? {
            // A durable write of the container's state: on a blocking thread.
            ContainerBackend::Embedded(sup) => {
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "add the layer",
                    move || {
                        sup.add_layer(&label, layer.as_bytes(), combine, false)
                            .map_err(api_error)
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => {
                c.add_layer(&label, &layer, combine).map_err(custom_error)
            }
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "add the layer", async {
                    c.api()
                        .add_layer(&label, &layer, combine, false)
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    async fn get_plan(
        &mut self,
        self_: Resource<ContainerRes>,
    ) -> Result<pebble::Plan, pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => Ok(typed_plan(&sup.plan())),
            ContainerBackend::Custom(c) => Ok(typed_plan(&c.plan().map_err(custom_error)?)),
            ContainerBackend::Pebble(c) => {
                let yaml = until_deadline(self.deadline, "get the plan", async {
                    c.api().plan().await.map_err(client_error)
                })
                .await?;
                Ok(typed_plan(&remote::parse_plan(&yaml)?))
            }
        }
    }

    async fn get_plan_yaml(
        &mut self,
        self_: Resource<ContainerRes>,
    ) -> Result<String, pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => Ok(sup.plan().to_yaml()),
            ContainerBackend::Custom(c) => Ok(c.plan().map_err(custom_error)?.to_yaml()),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "get the plan", async {
                    c.api().plan().await.map_err(client_error)
                })
                .await
            }
        }
    }

    async fn send_signal(
        &mut self,
        self_: Resource<ContainerRes>,
        signal: String,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        let signal = signal_name(signal);
        match self.backend(&self_)? {
            // As Pebble's API: no names is a bad request, a signal that cannot be sent
            // the server's error.
            ContainerBackend::Embedded(sup) => sup.send_signal(&signal, &names).map_err(|e| {
                api_error(match names.is_empty() {
                    true => e,
                    false => SupervisorError::Internal(e.to_string()),
                })
            }),
            ContainerBackend::Custom(c) => c.send_signal(&signal, &names).map_err(custom_error),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "send the signal", async {
                    c.api()
                        .send_signal(&signal, &names)
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    async fn replan(&mut self, self_: Resource<ContainerRes>) -> Result<(), pebble::Error> {
        self.run(&self_, ServicesAction::Replan, vec![]).await
    }

    async fn autostart(&mut self, self_: Resource<ContainerRes>) -> Result<(), pebble::Error> {
        self.run(&self_, ServicesAction::Autostart, vec![]).await
    }

    async fn start(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, ServicesAction::Start, names).await
    }

    async fn stop(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, ServicesAction::Stop, names).await
    }

    async fn restart(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        self.run(&self_, ServicesAction::Restart, names).await
    }

    async fn get_services(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<pebble::ServiceInfo>, pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                Ok(sup.services(&names).into_iter().map(service_info).collect())
            }
            ContainerBackend::Custom(c) => Ok(c
                .services(&names)
                .map_err(custom_error)?
                .into_iter()
                .map(remote::service_info)
                .collect()),
            ContainerBackend::Pebble(c) => {
                let list = until_deadline(self.deadline, "get the services", async {
                    c.api().services(&names).await.map_err(client_error)
                })
                .await?;
                Ok(list.into_iter().map(remote::service_info).collect())
            }
        }
    }

    async fn get_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        level: wit::CheckLevel,
        names: Vec<String>,
    ) -> Result<Vec<wit::CheckInfo>, pebble::Error> {
        let level = check_level_filter(level);
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => Ok(sup
                .checks(level, &names)
                .into_iter()
                .map(|c| check_info(&c.into()))
                .collect()),
            ContainerBackend::Custom(c) => Ok(c
                .checks(level, &names)
                .map_err(custom_error)?
                .into_iter()
                .map(remote::check_info)
                .collect()),
            ContainerBackend::Pebble(c) => {
                let level = level.map(cairn_api::types::level_name).unwrap_or("");
                let list = until_deadline(self.deadline, "get the checks", async {
                    c.api().checks(level, &names).await.map_err(client_error)
                })
                .await?;
                Ok(list.into_iter().map(remote::check_info).collect())
            }
        }
    }

    async fn start_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.checks_action(self_, "start", names).await
    }

    async fn stop_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.checks_action(self_, "stop", names).await
    }

    async fn get_notices(
        &mut self,
        self_: Resource<ContainerRes>,
        filter: pebble::NoticeFilter,
    ) -> Result<Vec<wit::Notice>, pebble::Error> {
        let sup = match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => sup,
            ContainerBackend::Custom(c) => {
                let query = crate::wasm::NoticeQuery {
                    types: filter.types,
                    keys: filter.keys,
                    after: filter.after,
                };
                return Ok(c
                    .notices(&query)
                    .map_err(custom_error)?
                    .into_iter()
                    .map(remote::notice)
                    .collect());
            }
            ContainerBackend::Pebble(c) => {
                let query = remote::notices_query(&filter);
                let list = until_deadline(self.deadline, "get the notices", async {
                    c.api().notices(&query, None).await.map_err(client_error)
                })
                .await?;
                return Ok(list.into_iter().map(remote::notice).collect());
            }
        };
        let after = match filter.after.as_deref() {
            None | Some("") => None,
            Some(t) => Some(cairn_supervisor::timefmt::parse_rfc3339_go(t).map_err(|e| {
                api_error(SupervisorError::BadRequest(format!(
                    "invalid \"after\" timestamp: {e}"
                )))
            })?),
        };
        // As the API: types Pebble does not know are ignored, and asking only for such
        // types finds nothing.
        let types: Vec<NoticeType> = filter
            .types
            .iter()
            .filter_map(|t| NoticeType::from_name(t))
            .collect();
        if types.is_empty() && !filter.types.is_empty() {
            return Ok(Vec::new());
        }
        let filter = cairn_supervisor::NoticeFilter {
            // As the host's own user: public notices and the host user's.
            user_id: Some(nix::unistd::getuid().as_raw()),
            types,
            keys: filter.keys,
            after,
        };
        Ok(sup
            .notices(&filter)
            .iter()
            .map(|n| wit_notice(&n.into()))
            .collect())
    }

    async fn get_notice(
        &mut self,
        self_: Resource<ContainerRes>,
        id: String,
    ) -> Result<wit::Notice, pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => sup
                .notice(&id)
                .map(|n| wit_notice(&(&n).into()))
                .ok_or_else(|| {
                    api_error(SupervisorError::NotFound(format!(
                        "cannot find notice with ID {id:?}"
                    )))
                }),
            ContainerBackend::Custom(c) => Ok(remote::notice(c.notice(&id).map_err(custom_error)?)),
            ContainerBackend::Pebble(c) => {
                let n = until_deadline(self.deadline, "get the notice", async {
                    c.api().notice(&id).await.map_err(client_error)
                })
                .await?;
                Ok(remote::notice(n))
            }
        }
    }

    async fn push(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        data: Vec<u8>,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let item = cairn_supervisor::files::WriteItem {
            path,
            make_dirs: options.make_parents,
            ownership: ownership(&options),
        };
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "push the file",
                    move || {
                        cairn_supervisor::files::write(sup.root(), &item, &mut data.as_slice())
                            .map_err(path_error)
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => c
                .push(&item.path, &data, item.make_dirs, &item.ownership)
                .map_err(custom_error),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "push the file", async {
                    c.api()
                        .push(&item, std::io::Cursor::new(data))
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    async fn pull(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<Vec<u8>, pebble::Error> {
        // No more than the guest's memory could take is read, whatever the file claims (a
        // sparse file, or one that grows meanwhile): the read stops one byte past the
        // budget, and a size over it is refused (and counted) here.
        let limit = self.spend.budget().memory;
        let read = match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                let read_path = path.clone();
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "pull the file",
                    move || {
                        let f = cairn_supervisor::files::open_read(sup.root(), &read_path)
                            .map_err(path_error)?;
                        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                        if size > limit {
                            return Ok(Err(size));
                        }
                        let mut out = Vec::new();
                        std::io::Read::read_to_end(
                            &mut std::io::Read::take(f, limit + 1),
                            &mut out,
                        )
                        .map_err(|e| {
                            path_error(cairn_supervisor::files::FileError::generic(format!(
                                "read {read_path}: {e}"
                            )))
                        })?;
                        Ok(Ok(out))
                    },
                )
                .await?
            }
            ContainerBackend::Pebble(c) => {
                until_deadline(
                    self.deadline,
                    "pull the file",
                    pull_remote(&c, &path, limit),
                )
                .await?
            }
            ContainerBackend::Custom(c) => {
                let data = c.pull(&path).map_err(custom_error)?;
                match data.len() as u64 {
                    size if size > limit => Err(size),
                    _ => Ok(data),
                }
            }
        };
        let too_big = |size: u64| {
            self.spend
                .check_pull(&path, size)
                .map_err(|e| path_error(cairn_supervisor::files::FileError::generic(e)))
        };
        match read {
            Ok(out) => {
                too_big(out.len() as u64)?;
                Ok(out)
            }
            Err(size) => {
                too_big(size)?;
                Err(path_error(cairn_supervisor::files::FileError::generic(
                    format!("cannot pull {path}: file is over the charm's memory budget"),
                )))
            }
        }
    }

    async fn list_files(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        pattern: Option<String>,
        itself: bool,
    ) -> Result<Vec<pebble::FileInfo>, pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                listable(&path)?;
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "list files",
                    move || {
                        let list = cairn_supervisor::files::list(
                            sup.root(),
                            &path,
                            pattern.as_deref().unwrap_or(""),
                            itself,
                        )
                        .map_err(path_error)?;
                        Ok(list.into_iter().map(file_info).collect())
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => {
                listable(&path)?;
                Ok(c.list_files(&path, pattern.as_deref(), itself)
                    .map_err(custom_error)?
                    .into_iter()
                    .map(remote::file_info)
                    .collect())
            }
            ContainerBackend::Pebble(c) => {
                let list = until_deadline(self.deadline, "list files", async {
                    c.api()
                        .list_files(&path, pattern.as_deref(), itself)
                        .await
                        .map_err(list_error)
                })
                .await?;
                Ok(list.into_iter().map(remote::file_info).collect())
            }
        }
    }

    async fn make_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let owner = ownership(&options);
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "make the directory",
                    move || {
                        cairn_supervisor::files::make_dir(
                            sup.root(),
                            &path,
                            options.make_parents,
                            &owner,
                        )
                        .map_err(path_error)
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => c
                .make_dir(&path, options.make_parents, &owner)
                .map_err(custom_error),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "make the directory", async {
                    c.api()
                        .make_dir(&path, options.make_parents, &owner)
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    async fn remove_path(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        recursive: bool,
    ) -> Result<(), pebble::Error> {
        match self.backend(&self_)? {
            ContainerBackend::Embedded(sup) => {
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "remove the path",
                    move || {
                        cairn_supervisor::files::remove(sup.root(), &path, recursive)
                            .map_err(path_error)
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => c.remove_path(&path, recursive).map_err(custom_error),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "remove the path", async {
                    c.api()
                        .remove_path(&path, recursive)
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    async fn exists(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        Ok(self.lookup(self_, path).await?.is_some())
    }

    async fn is_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        Ok(self.lookup(self_, path).await? == Some(true))
    }

    fn drop(&mut self, rep: Resource<ContainerRes>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl StoreState {
    /// `start-checks` / `stop-checks`: the checks that changed.
    async fn checks_action(
        &mut self,
        res: Resource<ContainerRes>,
        action: &str,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        match self.backend(&res)? {
            ContainerBackend::Embedded(sup) if action == "start" => {
                sup.start_checks(&names).map_err(api_error)
            }
            ContainerBackend::Embedded(sup) => sup.stop_checks(&names).map_err(api_error),
            ContainerBackend::Custom(c) => c
                .checks_action(action == "start", &names)
                .map_err(custom_error),
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "change the checks", async {
                    c.api()
                        .checks_action(action, &names)
                        .await
                        .map_err(client_error)
                })
                .await
            }
        }
    }

    /// What `exists` and `is-dir` ask, as ops answers them: a listing of the path itself;
    /// `None` when it is not found, else whether it is a directory.
    async fn lookup(
        &mut self,
        res: Resource<ContainerRes>,
        path: String,
    ) -> Result<Option<bool>, pebble::Error> {
        match self.backend(&res)? {
            ContainerBackend::Embedded(sup) => {
                listable(&path)?;
                blocking(
                    sup.cpu_share().cloned(),
                    self.deadline,
                    "look up the path",
                    move || match cairn_supervisor::files::list(sup.root(), &path, "", true) {
                        Ok(l) => Ok(Some(
                            l.first().is_some_and(|f| f.type_ == FileType::Directory),
                        )),
                        Err(e) if e.kind == cairn_supervisor::files::FileErrorKind::NotFound => {
                            Ok(None)
                        }
                        Err(e) => Err(path_error(e)),
                    },
                )
                .await
            }
            ContainerBackend::Custom(c) => {
                listable(&path)?;
                match c.list_files(&path, None, true) {
                    Ok(l) => Ok(Some(l.first().is_some_and(|f| f.type_ == "directory"))),
                    Err(crate::wasm::ContainerError::Path { kind, .. }) if kind == "not-found" => {
                        Ok(None)
                    }
                    Err(e) => Err(custom_error(e)),
                }
            }
            ContainerBackend::Pebble(c) => {
                until_deadline(self.deadline, "look up the path", async {
                    match c.api().list_files(&path, None, true).await {
                        Ok(l) => Ok(Some(l.first().is_some_and(|f| f.type_ == "directory"))),
                        Err(cairn_api::ClientError::Api { code: 404, .. }) => Ok(None),
                        Err(e) => Err(list_error(e)),
                    }
                })
                .await
            }
        }
    }
}

/// A pull through the API, reading no more than `limit` bytes into memory: the file's
/// size is looked up first (so a file over the budget is refused with its size, as the
/// embedded side does), and the read stops past `limit` whatever the listing said.
/// `Ok(Err(size))` when the file is over `limit`.
async fn pull_remote(
    c: &PebbleClient,
    path: &str,
    limit: u64,
) -> Result<Result<Vec<u8>, u64>, pebble::Error> {
    // A listing that fails leaves the error to the read, which reports it as Pebble does.
    if let Ok(l) = c.api().list_files(path, None, true).await
        && let Some(size) = l.first().and_then(|f| f.size)
        && size > limit
    {
        return Ok(Err(size));
    }
    let mut sink = remote::CappedSink::new(limit);
    match c.api().pull(path, &mut sink).await {
        Ok(_) => Ok(Ok(sink.buf)),
        Err(_) if sink.over => Ok(Err(limit + 1)),
        Err(e) => Err(client_error(e)),
    }
}
