//! The `container` resource: a guest's handle on one of its unit's containers, and every
//! call on it (layers, plan, services, checks, notices, files, exec). A handle is only a
//! name; each call looks the container up among the unit's own.

use std::time::Duration;

use cairn_supervisor::files::FileType;
use cairn_supervisor::notices::NoticeType;
use cairn_supervisor::{ServicesAction, Supervisor, SupervisorError};
use wasmtime::component::Resource;

use super::convert::{
    api_error, check_info, check_level_filter, file_info, ownership, path_error, service_info,
    typed_plan, wit_notice,
};
use super::process::ProcessRes;
use super::{StoreState, blocking, pebble, until_deadline, wit};

/// A container handle held by a guest: just the name, checked against the unit's containers.
pub struct ContainerRes {
    name: String,
}

/// How long a services call (`replan`, `start`, …) waits for its change, as ops' default
/// `timeout` for them; the event's deadline still bounds the wait.
const SERVICES_TIMEOUT: Duration = Duration::from_secs(30);

impl StoreState {
    /// The unit's supervisor of the container a handle names.
    fn supervisor(&self, res: &Resource<ContainerRes>) -> Result<Supervisor, pebble::Error> {
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
        let sup = self.supervisor(res)?;
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
}

impl pebble::Host for StoreState {}

impl pebble::HostContainer for StoreState {
    fn exec(
        &mut self,
        self_: Resource<ContainerRes>,
        command: Vec<String>,
        options: pebble::ExecOptions,
    ) -> Result<Resource<ProcessRes>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
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
        let res = ProcessRes::connect(sup, &started, options.split_stderr)?;
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

    fn can_connect(&mut self, self_: Resource<ContainerRes>) -> bool {
        self.supervisor(&self_).is_ok()
    }

    async fn add_layer(
        &mut self,
        self_: Resource<ContainerRes>,
        label: String,
        layer: String,
        combine: bool,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        // A durable write of the container's state: on a blocking thread.
        blocking(self.deadline, "add the layer", move || {
            sup.add_layer(&label, layer.as_bytes(), combine, false)
                .map_err(api_error)
        })
        .await
    }

    fn get_plan(&mut self, self_: Resource<ContainerRes>) -> Result<pebble::Plan, pebble::Error> {
        Ok(typed_plan(&self.supervisor(&self_)?.plan()))
    }

    fn get_plan_yaml(&mut self, self_: Resource<ContainerRes>) -> Result<String, pebble::Error> {
        Ok(self.supervisor(&self_)?.plan().to_yaml())
    }

    fn send_signal(
        &mut self,
        self_: Resource<ContainerRes>,
        signal: String,
        names: Vec<String>,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let signal = if signal.starts_with("SIG") {
            signal
        } else {
            format!("SIG{signal}")
        };
        sup.send_signal(&signal, &names).map_err(api_error)
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

    fn get_services(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<pebble::ServiceInfo>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        Ok(sup.services(&names).into_iter().map(service_info).collect())
    }

    fn get_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        level: wit::CheckLevel,
        names: Vec<String>,
    ) -> Result<Vec<wit::CheckInfo>, pebble::Error> {
        let level = check_level_filter(level);
        Ok(self
            .supervisor(&self_)?
            .checks(level, &names)
            .into_iter()
            .map(|c| check_info(&c.into()))
            .collect())
    }

    fn start_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.supervisor(&self_)?
            .start_checks(&names)
            .map_err(api_error)
    }

    fn stop_checks(
        &mut self,
        self_: Resource<ContainerRes>,
        names: Vec<String>,
    ) -> Result<Vec<String>, pebble::Error> {
        self.supervisor(&self_)?
            .stop_checks(&names)
            .map_err(api_error)
    }

    fn get_notices(
        &mut self,
        self_: Resource<ContainerRes>,
        filter: pebble::NoticeFilter,
    ) -> Result<Vec<wit::Notice>, pebble::Error> {
        let after = match filter.after.as_deref() {
            None | Some("") => None,
            Some(t) => Some(
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| {
                        api_error(SupervisorError::BadRequest(format!(
                            "invalid \"after\" timestamp: {e}"
                        )))
                    })?,
            ),
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
        Ok(self
            .supervisor(&self_)?
            .notices(&filter)
            .iter()
            .map(|n| wit_notice(&n.into()))
            .collect())
    }

    fn get_notice(
        &mut self,
        self_: Resource<ContainerRes>,
        id: String,
    ) -> Result<wit::Notice, pebble::Error> {
        self.supervisor(&self_)?
            .notice(&id)
            .map(|n| wit_notice(&(&n).into()))
            .ok_or_else(|| {
                api_error(SupervisorError::NotFound(format!(
                    "cannot find notice with ID {id:?}"
                )))
            })
    }

    async fn push(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        data: Vec<u8>,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let item = cairn_supervisor::files::WriteItem {
            path,
            make_dirs: options.make_parents,
            ownership: ownership(&options),
        };
        blocking(self.deadline, "push the file", move || {
            cairn_supervisor::files::write(sup.root(), &item, &mut data.as_slice())
                .map_err(path_error)
        })
        .await
    }

    async fn pull(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<Vec<u8>, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        // No more than the guest's memory could take is read, whatever the file claims (a
        // sparse file, or one that grows meanwhile): the read stops one byte past the
        // budget, and a size over it is refused (and counted) here.
        let limit = self.spend.budget().memory;
        let read_path = path.clone();
        let read = blocking(self.deadline, "pull the file", move || {
            let f =
                cairn_supervisor::files::open_read(sup.root(), &read_path).map_err(path_error)?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            if size > limit {
                return Ok(Err(size));
            }
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(f, limit + 1), &mut out).map_err(
                |e| {
                    path_error(cairn_supervisor::files::FileError::generic(format!(
                        "read {read_path}: {e}"
                    )))
                },
            )?;
            Ok(Ok(out))
        })
        .await?;
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
        let sup = self.supervisor(&self_)?;
        blocking(self.deadline, "list files", move || {
            let list = cairn_supervisor::files::list(
                sup.root(),
                &path,
                pattern.as_deref().unwrap_or(""),
                itself,
            )
            .map_err(path_error)?;
            Ok(list.into_iter().map(file_info).collect())
        })
        .await
    }

    async fn make_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        options: pebble::FileOptions,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        let owner = ownership(&options);
        blocking(self.deadline, "make the directory", move || {
            cairn_supervisor::files::make_dir(sup.root(), &path, options.make_parents, &owner)
                .map_err(path_error)
        })
        .await
    }

    async fn remove_path(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
        recursive: bool,
    ) -> Result<(), pebble::Error> {
        let sup = self.supervisor(&self_)?;
        blocking(self.deadline, "remove the path", move || {
            cairn_supervisor::files::remove(sup.root(), &path, recursive).map_err(path_error)
        })
        .await
    }

    async fn exists(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        blocking(
            self.deadline,
            "look up the path",
            move || match cairn_supervisor::files::list(sup.root(), &path, "", true) {
                Ok(_) => Ok(true),
                Err(e) if e.kind == cairn_supervisor::files::FileErrorKind::NotFound => Ok(false),
                Err(e) => Err(path_error(e)),
            },
        )
        .await
    }

    async fn is_dir(
        &mut self,
        self_: Resource<ContainerRes>,
        path: String,
    ) -> Result<bool, pebble::Error> {
        let sup = self.supervisor(&self_)?;
        blocking(
            self.deadline,
            "look up the path",
            move || match cairn_supervisor::files::list(sup.root(), &path, "", true) {
                Ok(l) => Ok(l.first().is_some_and(|f| f.type_ == FileType::Directory)),
                Err(e) if e.kind == cairn_supervisor::files::FileErrorKind::NotFound => Ok(false),
                Err(e) => Err(path_error(e)),
            },
        )
        .await
    }

    fn drop(&mut self, rep: Resource<ContainerRes>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
