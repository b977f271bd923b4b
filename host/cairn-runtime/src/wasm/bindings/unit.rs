//! The `unit` interface: the unit's identity, config, status, leadership, stored state,
//! action results and log. Changes stay in the store until the handler returns.

use super::convert::{from_wit_log_level, from_wit_status, to_wit_config, to_wit_status};
use super::generated::cairn::charm::unit as wit_unit;
use super::{StoreState, wit};
use crate::types::LogLine;

impl wit::Host for StoreState {}

impl wit_unit::Host for StoreState {
    fn unit_name(&mut self) -> String {
        self.ctx.unit_name.clone()
    }

    fn app_name(&mut self) -> String {
        self.ctx.app_name.clone()
    }

    fn model_name(&mut self) -> String {
        self.ctx.model_name.clone()
    }

    fn containers(&mut self) -> Vec<String> {
        self.ctx.containers.keys().cloned().collect()
    }

    fn config(&mut self) -> Vec<(String, wit::ConfigValue)> {
        self.ctx
            .config
            .iter()
            .map(|(k, v)| (k.clone(), to_wit_config(v)))
            .collect()
    }

    fn config_get(&mut self, key: String) -> Option<wit::ConfigValue> {
        self.ctx.config.get(&key).map(to_wit_config)
    }

    fn unit_status(&mut self) -> wit::Status {
        to_wit_status(&self.ctx.unit_status)
    }

    fn set_unit_status(&mut self, status: wit::Status) {
        self.ctx.unit_status = self.spend.status(from_wit_status(status));
    }

    fn app_status(&mut self) -> wit::Status {
        to_wit_status(&self.ctx.app_status)
    }

    fn set_app_status(&mut self, status: wit::Status) -> Result<(), String> {
        if !self.ctx.leader {
            return Err("cannot set application status: unit is not the leader".into());
        }
        self.ctx.app_status = self.spend.status(from_wit_status(status));
        Ok(())
    }

    fn is_leader(&mut self) -> bool {
        self.ctx.leader
    }

    fn state_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.ctx.stored.get(&key).cloned()
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) {
        self.spend.state_set(&mut self.ctx.stored, key, value);
    }

    fn state_delete(&mut self, key: String) {
        self.spend.state_delete(&mut self.ctx.stored, &key);
    }

    fn state_keys(&mut self) -> Vec<String> {
        self.ctx.stored.keys().cloned().collect()
    }

    fn action_set_results(&mut self, results: Vec<(String, String)>) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        self.spend.action_results(&mut a.results, results)
    }

    fn action_log(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        if let Some(line) = self.spend.log("", &message) {
            a.log.push((crate::now(), line));
        }
        Ok(())
    }

    fn action_fail(&mut self, message: String) -> Result<(), String> {
        let a = self.ctx.action.as_mut().ok_or("not running an action")?;
        a.failed = Some(self.spend.message(&message));
        Ok(())
    }

    fn log(&mut self, level: wit::LogLevel, message: String) {
        let prefix = format!("{}: ", self.ctx.unit_name);
        if let Some(message) = self.spend.log(&prefix, &message) {
            self.logs.push(LogLine {
                time: crate::now(),
                level: from_wit_log_level(level),
                message,
            });
        }
    }
}
