//! `relator`: records every relation event it sees in stored state (`seen`, one line per
//! event: name, remote unit, departing unit, the units listed, the remote app's bag and
//! the event's remote unit's bag), writes `name` into its unit bag and, as leader,
//! `leader` into its app bag on relation-created, and `key` (config) into every unit bag
//! on config-changed. `fail` names an event whose handler writes `bad` and fails.
//! `relay` is the relation benchmark's mode: two units pass `hop` back and forth.

use std::collections::BTreeMap;

use cairn_sdk::prelude::*;

/// Stored-state key of the record.
const SEEN: &str = "seen";

/// The charm.
#[derive(Default)]
pub struct Relator;

fn bag(b: &BTreeMap<String, String>) -> String {
    b.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Relator {
    /// Records the event, then acts on it.
    fn record(&self, ctx: &mut Context, kind: &str, event: &RelationEvent) -> Result<()> {
        let rel = event.relation()?;
        let remote_app = rel
            .remote_app_data()
            .map(|b| bag(&b))
            .unwrap_or_else(|e| e.to_string());
        let remote_unit = match &event.unit {
            Some(u) => rel
                .data(u.as_str())
                .map(|b| bag(&b))
                .unwrap_or_else(|e| e.to_string()),
            None => String::new(),
        };
        let line = format!(
            "{}-relation-{kind} {} remote={} departing={} units=[{}] app-bag=[{remote_app}] unit-bag=[{remote_unit}]",
            event.endpoint,
            event.relation_id,
            event.unit.as_deref().unwrap_or("-"),
            event.departing_unit.as_deref().unwrap_or("-"),
            rel.units.join(" "),
        );
        let mut seen: Vec<String> = ctx.state().load(SEEN)?.unwrap_or_default();
        seen.push(line);
        ctx.state().save(SEEN, &seen)?;
        let unit = ctx.unit_name();
        if kind == "created" {
            rel.set("name", unit.clone())?;
            if ctx.is_leader() {
                rel.set_app("leader", unit.clone())?;
            }
        }
        let name = format!("{}-relation-{kind}", event.endpoint);
        if ctx.config().get_str("fail").as_deref() == Some(name.as_str()) {
            rel.set("bad", "1")?;
            return Err(Error::msg(format!("failing {name} as asked")));
        }
        ctx.set_unit_status(Status::active(format!("seen {}", seen.len())));
        Ok(())
    }
}

impl Relator {
    /// The relay (`relay` > 0): answers a remote `hop=<round>:k` with `hop=<round>:k+1`
    /// while k < relay. Returns whether the charm is in relay mode.
    fn relay(&self, ctx: &Context, event: &RelationEvent) -> Result<bool> {
        let limit = ctx.config().get_int("relay").unwrap_or(0);
        if limit <= 0 {
            return Ok(false);
        }
        let Some(unit) = &event.unit else {
            return Ok(true);
        };
        let rel = event.relation()?;
        let Some(hop) = rel.read(unit.as_str(), "hop")? else {
            return Ok(true);
        };
        if let Some((round, k)) = hop.rsplit_once(':')
            && let Ok(k) = k.parse::<i64>()
            && k < limit
        {
            rel.set("hop", format!("{round}:{}", k + 1))?;
        }
        Ok(true)
    }
}

impl Charm for Relator {
    fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
        let key = ctx.config().get_str("key").unwrap_or_default();
        let relay = ctx.config().get_int("relay").unwrap_or(0) > 0;
        if !key.is_empty() {
            for rel in Relation::all() {
                if relay {
                    rel.set("hop", format!("{key}:0"))?;
                } else {
                    rel.set("key", key.clone())?;
                }
            }
        }
        Ok(())
    }

    fn on_relation_created(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        self.record(ctx, "created", &event)
    }

    fn on_relation_joined(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        self.record(ctx, "joined", &event)
    }

    fn on_relation_changed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        if self.relay(ctx, &event)? {
            return Ok(());
        }
        self.record(ctx, "changed", &event)
    }

    fn on_relation_departed(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        self.record(ctx, "departed", &event)
    }

    fn on_relation_broken(&mut self, ctx: &mut Context, event: RelationEvent) -> Result<()> {
        self.record(ctx, "broken", &event)
    }
}

export_charm!(Relator);
