//! Host calls outside a Cairn host: served by the fake unit of the running
//! [`Harness`](crate::testing::Harness).

use crate::container::ServiceInfo;
use crate::error::Error;
use crate::model::{ConfigValue, LogLevel, Status};
use crate::testing::with_world;

pub fn unit_name() -> String {
    with_world(|w| w.unit_name.clone())
}

pub fn app_name() -> String {
    with_world(|w| w.app_name.clone())
}

pub fn model_name() -> String {
    with_world(|w| w.model_name.clone())
}

pub fn containers() -> Vec<String> {
    with_world(|w| w.containers.keys().cloned().collect())
}

pub fn config() -> Vec<(String, ConfigValue)> {
    with_world(|w| {
        w.config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

pub fn config_get(key: &str) -> Option<ConfigValue> {
    with_world(|w| w.config.get(key).cloned())
}

pub fn unit_status() -> Status {
    with_world(|w| w.unit_status.clone())
}

pub fn set_unit_status(status: &Status) {
    with_world(|w| w.unit_status = status.clone());
}

pub fn app_status() -> Status {
    with_world(|w| w.app_status.clone())
}

pub fn action_set_results(results: &[(String, String)]) -> Result<(), String> {
    with_world(|w| {
        let a = w.action.as_mut().ok_or("not running an action")?;
        a.results.extend(results.iter().cloned());
        Ok(())
    })
}

pub fn action_log(message: &str) -> Result<(), String> {
    with_world(|w| {
        let a = w.action.as_mut().ok_or("not running an action")?;
        a.log.push(message.to_string());
        Ok(())
    })
}

pub fn action_fail(message: &str) -> Result<(), String> {
    with_world(|w| {
        let a = w.action.as_mut().ok_or("not running an action")?;
        a.failed = Some(message.to_string());
        Ok(())
    })
}

pub fn set_app_status(status: &Status) -> Result<(), String> {
    with_world(|w| {
        if !w.leader {
            return Err(format!(
                "cannot set application status: {} is not the leader",
                w.unit_name
            ));
        }
        w.app_status = status.clone();
        Ok(())
    })
}

pub fn is_leader() -> bool {
    with_world(|w| w.leader)
}

pub fn state_get(key: &str) -> Option<Vec<u8>> {
    with_world(|w| w.stored.get(key).cloned())
}

pub fn state_set(key: &str, value: &[u8]) {
    with_world(|w| w.stored.insert(key.to_string(), value.to_vec()));
}

pub fn state_delete(key: &str) {
    with_world(|w| w.stored.remove(key));
}

pub fn state_keys() -> Vec<String> {
    with_world(|w| w.stored.keys().cloned().collect())
}

pub fn log(level: LogLevel, message: &str) {
    with_world(|w| w.logs.push((level, message.to_string())));
}

/// A fake container, by name.
pub struct ContainerHandle(String);

impl ContainerHandle {
    pub fn open(name: &str) -> Result<Self, Error> {
        with_world(|w| {
            if w.containers.contains_key(name) {
                Ok(ContainerHandle(name.to_string()))
            } else {
                Err(Error::Connection(format!(
                    "cannot connect to container {name:?}: not a container of {}",
                    w.unit_name
                )))
            }
        })
    }

    pub fn can_connect(&self) -> bool {
        with_world(|w| w.containers[&self.0].can_connect())
    }

    pub fn add_layer(&self, label: &str, yaml: &str, combine: bool) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.add_layer(label, yaml, combine))
    }

    pub fn get_plan(&self) -> Result<crate::layer::Plan, Error> {
        with_world(|w| Ok(w.container(&self.0)?.plan()))
    }

    pub fn get_plan_yaml(&self) -> Result<String, Error> {
        with_world(|w| Ok(w.container(&self.0)?.plan_yaml()))
    }

    pub fn send_signal(&self, signal: &str, names: &[String]) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.send_signal(signal, names))
    }

    pub fn get_checks(
        &self,
        level: Option<crate::event::CheckLevel>,
        names: &[String],
    ) -> Result<Vec<crate::event::CheckInfo>, Error> {
        with_world(|w| Ok(w.container(&self.0)?.check_infos(level, names)))
    }

    pub fn start_checks(&self, names: &[String]) -> Result<Vec<String>, Error> {
        with_world(|w| w.container(&self.0)?.checks_action(true, names))
    }

    pub fn stop_checks(&self, names: &[String]) -> Result<Vec<String>, Error> {
        with_world(|w| w.container(&self.0)?.checks_action(false, names))
    }

    pub fn get_notices(
        &self,
        filter: &crate::container::NoticeFilter,
    ) -> Result<Vec<crate::event::Notice>, Error> {
        with_world(|w| Ok(w.container(&self.0)?.find_notices(filter)))
    }

    pub fn exec(
        &self,
        command: &[String],
        o: &crate::container::ExecOptions,
    ) -> Result<ProcessHandle, Error> {
        let handler = with_world(|w| w.container(&self.0)?.fake_exec(command))?;
        Ok(ProcessHandle {
            container: self.0.clone(),
            handler,
            args: std::cell::RefCell::new(crate::testing::ExecArgs {
                command: command.to_vec(),
                options: o.clone(),
                stdin: Vec::new(),
            }),
            output: std::cell::RefCell::new(None),
        })
    }

    pub fn push(
        &self,
        path: &str,
        data: &[u8],
        o: &crate::container::FileOptions,
    ) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.fs_push(path, data, o))
    }

    pub fn pull(&self, path: &str) -> Result<Vec<u8>, Error> {
        with_world(|w| w.container(&self.0)?.fs_pull(path))
    }

    pub fn list_files(
        &self,
        path: &str,
        pattern: Option<&str>,
        itself: bool,
    ) -> Result<Vec<crate::container::FileInfo>, Error> {
        with_world(|w| w.container(&self.0)?.fs_list(path, pattern, itself))
    }

    pub fn make_dir(&self, path: &str, o: &crate::container::FileOptions) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.fs_make_dir(path, o))
    }

    pub fn remove_path(&self, path: &str, recursive: bool) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.fs_remove(path, recursive))
    }

    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        with_world(|w| Ok(w.container(&self.0)?.fs_kind(path).is_some()))
    }

    pub fn is_dir(&self, path: &str) -> Result<bool, Error> {
        with_world(|w| Ok(w.container(&self.0)?.fs_kind(path) == Some(true)))
    }

    pub fn get_notice(&self, id: &str) -> Result<crate::event::Notice, Error> {
        with_world(|w| w.container(&self.0)?.notice(id))
    }

    pub fn replan(&self) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.replan())
    }

    pub fn autostart(&self) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.autostart())
    }

    pub fn start(&self, names: &[String]) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.start(names))
    }

    pub fn stop(&self, names: &[String]) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.stop(names))
    }

    pub fn restart(&self, names: &[String]) -> Result<(), Error> {
        with_world(|w| w.container(&self.0)?.restart(names))
    }

    pub fn get_services(&self, names: &[String]) -> Result<Vec<ServiceInfo>, Error> {
        with_world(|w| Ok(w.container(&self.0)?.services(names)))
    }
}

/// A command run by the harness: its handler runs when the charm first reads output or
/// waits, with the stdin written until then.
pub struct ProcessHandle {
    container: String,
    handler: crate::testing::ExecHandler,
    args: std::cell::RefCell<crate::testing::ExecArgs>,
    /// The result once run, less what was read.
    output: std::cell::RefCell<Option<crate::container::ExecOutput>>,
}

impl ProcessHandle {
    pub fn write_stdin(&self, data: &[u8]) -> Result<(), Error> {
        if self.output.borrow().is_some() {
            return Err(Error::Connection("the command's stdin is closed".into()));
        }
        self.args.borrow_mut().stdin.extend_from_slice(data);
        Ok(())
    }

    pub fn send_signal(&self, _signal: &str) -> Result<(), Error> {
        Ok(())
    }

    /// Runs the handler once and lends its (remaining) output.
    fn with_output<R>(
        &self,
        f: impl FnOnce(&mut crate::container::ExecOutput) -> R,
    ) -> Result<R, Error> {
        let mut slot = self.output.borrow_mut();
        if slot.is_none() {
            let args = self.args.borrow().clone();
            let out = with_world(|w| {
                let c = w.container(&self.container)?;
                Ok::<_, Error>(self.handler.run(&args, c))
            })?;
            *slot = Some(out);
        }
        Ok(f(slot.as_mut().expect("output was just set")))
    }

    fn read(&self, max: u32, stderr: bool) -> Result<Option<Vec<u8>>, Error> {
        self.with_output(|o| {
            let buf = if stderr { &mut o.stderr } else { &mut o.stdout };
            if buf.is_empty() {
                return None;
            }
            let n = buf.len().min(max as usize);
            Some(buf.drain(..n).collect())
        })
    }

    pub fn read_stdout(&self, max: u32) -> Result<Option<Vec<u8>>, Error> {
        self.read(max, false)
    }

    pub fn read_stderr(&self, max: u32) -> Result<Option<Vec<u8>>, Error> {
        self.read(max, true)
    }

    pub fn wait(&self) -> Result<i32, Error> {
        self.with_output(|o| o.exit_code)
    }

    pub fn wait_output(&self) -> Result<crate::container::ExecOutput, Error> {
        self.with_output(|o| crate::container::ExecOutput {
            exit_code: o.exit_code,
            stdout: std::mem::take(&mut o.stdout),
            stderr: std::mem::take(&mut o.stderr),
        })
    }
}

pub fn relations() -> Vec<crate::relation::Relation> {
    with_world(|w| {
        w.relations
            .values()
            .map(|r| {
                let mut units = r.remote_units.clone();
                units.sort();
                crate::relation::Relation {
                    id: r.id,
                    endpoint: r.endpoint.clone(),
                    interface: r.interface.clone(),
                    app: r.remote_app.clone(),
                    units,
                }
            })
            .collect()
    })
}

pub fn relation_get(id: u32, owner: &str) -> Result<Vec<(String, String)>, String> {
    with_world(|w| crate::testing::relation_get(w, id, owner))
}

pub fn relation_set(id: u32, owner: &str, settings: &[(String, String)]) -> Result<(), String> {
    with_world(|w| crate::testing::relation_set(w, id, owner, settings))
}
