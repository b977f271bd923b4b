//! Watchers of a unit's containers: what happens in a container that the charm must hear
//! about (a notice, a check failing or recovering, a shutdown asked for by an exit
//! action) becomes an event on the unit's queue.

use std::sync::Weak;
use std::time::Duration;

use cairn_supervisor::notices::NoticeType;
use cairn_supervisor::{ChangeStatus, CheckStatus, Supervisor};

use super::unit::UnitShared;
use crate::types::{CheckInfo, Event};

/// How long one wait for new notices lasts before the watcher checks that its unit still
/// exists and waits again.
const NOTICE_POLL: Duration = Duration::from_secs(30);

/// Watches a container's notices as Juju does and queues the charm events they mean:
/// every new occurrence or repeat of a `custom` notice is a `pebble-custom-notice`; a
/// `change-update` of a `perform-check` change in `Error` is `pebble-check-failed`, of a
/// `recover-check` change `Done` is `pebble-check-recovered`.
pub(super) async fn watch_notices(unit: Weak<UnitShared>, container: String, sup: Supervisor) {
    let mut after = time::OffsetDateTime::now_utc();
    loop {
        let filter = cairn_supervisor::NoticeFilter {
            user_id: None,
            types: vec![NoticeType::Custom, NoticeType::ChangeUpdate],
            keys: Vec::new(),
            after: Some(after),
        };
        let notices = sup.wait_notices(&filter, NOTICE_POLL).await;
        let Some(shared) = unit.upgrade() else {
            return;
        };
        for n in notices {
            after = after.max(n.last_repeated);
            if let Some(event) = notice_event(&container, &sup, &n) {
                shared.enqueue(event);
            }
        }
    }
}

/// The charm event a notice means, if any.
fn notice_event(container: &str, sup: &Supervisor, n: &cairn_supervisor::Notice) -> Option<Event> {
    match n.type_ {
        NoticeType::Custom => Some(Event::PebbleCustomNotice {
            container: container.to_string(),
            notice: n.into(),
        }),
        NoticeType::ChangeUpdate => {
            let kind = n.last_data.get("kind")?;
            let check = n.last_data.get("check-name")?;
            // A pruned change is taken to have reached the status that matters.
            let status = sup
                .change(&n.key)
                .map(|c| c.status)
                .unwrap_or(match kind.as_str() {
                    "perform-check" => ChangeStatus::Error,
                    _ => ChangeStatus::Done,
                });
            let failed = kind == "perform-check" && status == ChangeStatus::Error;
            let recovered = kind == "recover-check" && status == ChangeStatus::Done;
            if !failed && !recovered {
                return None;
            }
            let info = sup
                .checks(None, std::slice::from_ref(check))
                .into_iter()
                .next()
                .map(CheckInfo::from)
                .unwrap_or_else(|| CheckInfo {
                    name: check.clone(),
                    level: cairn_plan::CheckLevel::Unset,
                    status: if failed {
                        CheckStatus::Down
                    } else {
                        CheckStatus::Up
                    },
                    successes: 0,
                    failures: 0,
                    threshold: 0,
                    change_id: Some(n.key.clone()),
                });
            let container = container.to_string();
            Some(if failed {
                Event::PebbleCheckFailed { container, info }
            } else {
                Event::PebbleCheckRecovered { container, info }
            })
        }
        NoticeType::Warning => None,
    }
}

/// Restarts a container whose supervisor was asked to shut down by a service's exit action
/// (`shutdown`, `success-shutdown`, `failure-shutdown`), as Kubernetes restarts a container
/// whose Pebble exited, then tells the charm with `pebble-ready`.
pub(super) async fn watch_shutdown(unit: Weak<UnitShared>, container: String, sup: Supervisor) {
    let mut requests = sup.shutdown_requests();
    loop {
        if requests.changed().await.is_err() {
            return;
        }
        let Some(request) = *requests.borrow_and_update() else {
            continue;
        };
        let Some(shared) = unit.upgrade() else {
            return;
        };
        let unit_name = shared.name();
        tracing::warn!(
            "container {container:?} of {unit_name} shut down by a service exit action ({request:?}); restarting it"
        );
        if let Err(e) = sup.restart().await {
            tracing::error!("cannot restart container {container:?}: {e}");
            continue;
        }
        shared.enqueue(Event::PebbleReady {
            container: container.clone(),
        });
    }
}
