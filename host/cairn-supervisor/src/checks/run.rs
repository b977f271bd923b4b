//! The task of a check change: runs the check every period, counts, and ends the task as
//! Pebble's `perform-check` and `recover-check` handlers do.

use std::sync::Arc;

use cairn_plan::Check;
use tokio::sync::mpsc;

use super::checkers::{CheckFailure, check_type, run_check};
use super::{CheckData, Refresh};
use crate::Inner;
use crate::runner::{Outcome, TaskCtx, TaskSpec};

/// Which of the two check tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TaskKind {
    /// Runs while the check is up; fails at the threshold.
    Perform,
    /// Runs while the check is down; ends at the first success.
    Recover,
}

impl TaskKind {
    fn name(self) -> &'static str {
        match self {
            TaskKind::Perform => "perform-check",
            TaskKind::Recover => "recover-check",
        }
    }
}

/// What the task of one check change carries from run to run.
struct Run {
    kind: TaskKind,
    change: u64,
    config: Check,
    prev_change_id: String,
    successes: u32,
    failures: u32,
}

impl Inner {
    /// Creates a perform-check or recover-check change for `config` and starts its task.
    pub(super) fn start_check_change(
        self: &Arc<Self>,
        kind: TaskKind,
        config: Check,
        prev_change_id: &str,
        successes: u32,
        failures: u32,
    ) -> String {
        let verb = match kind {
            TaskKind::Perform => "Perform",
            TaskKind::Recover => "Recover",
        };
        let summary = format!("{verb} {} check {:?}", check_type(&config), config.name);
        let (refresh_tx, refresh_rx) = mpsc::channel(1);
        let (change_tx, change_rx) = tokio::sync::oneshot::channel();
        let run = Run {
            kind,
            change: 0,
            config: config.clone(),
            prev_change_id: prev_change_id.to_string(),
            successes,
            failures,
        };
        let spec = TaskSpec::new(kind.name(), summary.clone(), move |ctx| async move {
            let mut run = run;
            run.change = change_rx.await.unwrap_or(0);
            run.run(ctx, refresh_rx).await
        });
        let (change, _) = self.spawn_change(
            kind.name(),
            &summary,
            vec![("check-name", serde_json::json!(config.name))],
            vec![vec![vec![spec]]],
        );
        let change_id = change.to_string();
        self.checks
            .update(&config, &change_id, prev_change_id, successes, failures);
        if let Some(d) = self.checks.checks.lock().unwrap().get_mut(&config.name) {
            let CheckData {
                config: c,
                change: ch,
                refresh,
                ..
            } = d;
            *c = Some(config.clone());
            *ch = Some(change);
            *refresh = Some(refresh_tx);
        }
        let _ = change_tx.send(change);
        change_id
    }
}

fn pluralise(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

impl Run {
    async fn run(mut self, ctx: TaskCtx, mut refresh: mpsc::Receiver<Refresh>) -> Outcome {
        let period = self.config.effective_period();
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let reply = tokio::select! {
                _ = ctx.cancelled() => return Outcome::Done,
                _ = ticker.tick() => None,
                r = refresh.recv() => match r {
                    Some(reply) => {
                        ticker.reset();
                        Some(reply)
                    }
                    None => continue,
                },
            };
            // The supervisor is not held while the check runs: dropping it cancels the run.
            let Some(container) = ctx.inner().map(|inner| inner.container.clone()) else {
                return Outcome::Done;
            };
            let result = tokio::select! {
                _ = ctx.cancelled() => return Outcome::Done,
                r = run_check(&self.config, &container) => r,
            };
            let Some(inner) = ctx.inner() else {
                return Outcome::Done;
            };
            let done = self.record(&ctx, &inner, &result);
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
            if let Some(outcome) = done {
                return outcome;
            }
        }
    }

    /// Counts one run; returns how the task ends when it is finished.
    fn record(
        &mut self,
        ctx: &TaskCtx,
        inner: &Arc<Inner>,
        result: &Result<(), CheckFailure>,
    ) -> Option<Outcome> {
        let name = self.config.name.clone();
        let threshold = self.config.effective_threshold();
        inner.checks.count(&name, result.is_ok());
        let change_id = self.change.to_string();
        let update = |run: &Run| {
            inner.checks.update(
                &run.config,
                &change_id,
                &run.prev_change_id,
                run.successes,
                run.failures,
            )
        };
        match (self.kind, result) {
            (TaskKind::Perform, Err(e)) => {
                self.failures += 1;
                tracing::info!(
                    "Check {name:?} failure {}/{threshold}: {}",
                    self.failures,
                    e.message
                );
                if self.failures < threshold {
                    ctx.log_error(&e.to_string());
                    update(self);
                    return None;
                }
                tracing::info!(
                    "Check {name:?} threshold {threshold} hit, triggering action and recovering"
                );
                // The recover change is started (and the counts the threshold was hit with
                // recorded with it, in one step, so nobody sees "down" still naming this change)
                // before this change fails: whoever reacts to its failure reads them.
                inner.services.check_failed(&name);
                inner.start_check_change(
                    TaskKind::Recover,
                    self.config.clone(),
                    &change_id,
                    self.successes,
                    self.failures,
                );
                Some(Outcome::Error(e.to_string()))
            }
            (TaskKind::Perform, Ok(())) => {
                self.successes += 1;
                if self.failures > 0 {
                    let old = self.failures;
                    self.failures = 0;
                    ctx.log(&format!(
                        "succeeded after {}",
                        pluralise(old, "failure", "failures")
                    ));
                }
                update(self);
                None
            }
            (TaskKind::Recover, Err(e)) => {
                self.failures += 1;
                tracing::info!(
                    "Check {name:?} failure {}/{threshold}: {}",
                    self.failures,
                    e.message
                );
                update(self);
                ctx.log_error(&e.to_string());
                None
            }
            (TaskKind::Recover, Ok(())) => {
                inner.start_check_change(TaskKind::Perform, self.config.clone(), &change_id, 1, 0);
                Some(Outcome::Done)
            }
        }
    }
}
