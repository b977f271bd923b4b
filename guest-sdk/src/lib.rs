//! # cairn-sdk: write Cairn charms in Rust
//!
//! A Cairn charm is a `wasm32-wasip2` component that the Cairn host calls once per event,
//! in a fresh instance each time. This crate gives it the shape of a Python `ops` charm:
//!
//! * implement [`Charm`]: one `on_*` method per event (all default to doing nothing);
//! * reach the unit through the [`Context`]: status, leadership, [`Config`], [`StoredState`],
//!   [`Container`]s, and [`Context::defer`];
//! * drive workloads through [`Container`] like `ops.Container`, with typed Pebble
//!   [`Layer`]s built with serde;
//! * return an [`Error`] to fail the event (`?` works on SDK, serde, I/O and parse errors;
//!   [`ResultExt::context`] adds a message to any other);
//! * log with [`info!`], [`debug!`], [`warn!`], [`error!`] (or [`log!`]);
//! * export the charm with [`export_charm!`];
//! * unit-test it natively with `testing::Harness` (the `testing` module exists outside
//!   `wasm32` only).
//!
//! ## A complete charm
//!
//! `Cargo.toml`: a `cdylib` depending on `cairn-sdk`; build it with
//! `cargo build --release --target wasm32-wasip2`, and put a `charmcraft.yaml` declaring the
//! `hello` container and the `greeting` option next to it.
//!
//! ```no_run
//! use cairn_sdk::prelude::*;
//!
//! #[derive(Default)]
//! struct HelloCharm;
//!
//! impl HelloCharm {
//!     /// Puts the workload in the state the config asks for.
//!     fn configure(&self, ctx: &mut Context, hello: &Container) -> Result<()> {
//!         if !hello.can_connect() {
//!             ctx.set_unit_status(Status::waiting("waiting for Pebble"));
//!             return Ok(());
//!         }
//!         let greeting = ctx.config().get_str("greeting").unwrap_or_else(|| "hello".into());
//!         if greeting.is_empty() {
//!             ctx.set_unit_status(Status::blocked("greeting must not be empty"));
//!             return Ok(());
//!         }
//!         let layer = Layer::new().summary("hello layer").service(
//!             "hello",
//!             Service::new()
//!                 .summary("says hello")
//!                 .command("/bin/sh -c 'echo \"$GREETING\"; exec sleep infinity'")
//!                 .enabled()
//!                 .env("GREETING", &greeting),
//!         );
//!         hello.add_layer("hello", &layer, true)?;
//!         hello.replan()?;
//!         ctx.state().save("greeting", &greeting)?;
//!         info!("workload greets with {greeting:?}");
//!         ctx.set_unit_status(Status::active(""));
//!         Ok(())
//!     }
//! }
//!
//! impl Charm for HelloCharm {
//!     fn on_install(&mut self, ctx: &mut Context) -> Result<()> {
//!         ctx.set_unit_status(Status::maintenance("installing"));
//!         Ok(())
//!     }
//!
//!     fn on_pebble_ready(&mut self, ctx: &mut Context, container: Container) -> Result<()> {
//!         self.configure(ctx, &container)
//!     }
//!
//!     fn on_config_changed(&mut self, ctx: &mut Context) -> Result<()> {
//!         let hello = ctx.container("hello")?;
//!         self.configure(ctx, &hello)
//!     }
//!
//!     fn on_update_status(&mut self, ctx: &mut Context) -> Result<()> {
//!         let hello = ctx.container("hello")?;
//!         if hello.can_connect() && !hello.get_service("hello")?.is_running() {
//!             ctx.set_unit_status(Status::blocked("hello is not running"));
//!         }
//!         Ok(())
//!     }
//!
//!     fn on_pebble_check_failed(&mut self, ctx: &mut Context, event: CheckEvent) -> Result<()> {
//!         warn!("check {} failed {} times", event.info.name, event.info.failures);
//!         ctx.defer();
//!         Ok(())
//!     }
//! }
//!
//! cairn_sdk::export_charm!(HelloCharm);
//! ```
//!
//! ## How events map to ops
//!
//! | ops | cairn-sdk |
//! |---|---|
//! | `self.framework.observe(self.on.config_changed, self._on_config_changed)` | `fn on_config_changed(&mut self, ctx: &mut Context)` |
//! | `event.defer()` | `ctx.defer()` |
//! | `self.unit.status = ops.ActiveStatus()` | `ctx.set_unit_status(Status::active(""))` |
//! | `self.config["port"]` | `ctx.config().get_int("port")` / `require_int("port")?` |
//! | `self._stored.port = 8080` | `ctx.state().save("port", &8080)?` |
//! | `self.model.relations["db"]` / `self.model.get_relation("db")` | `ctx.relations("db")` / `ctx.relation("db")?` |
//! | `event.relation`, `event.unit`, `event.app` | `event.relation()?`, `event.unit`, `event.app` |
//! | `relation.data[event.unit]["host"]` | `relation.read(unit, "host")?` / `relation.data(unit)?` |
//! | `relation.data[self.unit]["k"] = "v"` | `relation.set("k", "v")?` |
//! | `relation.data[self.app]["k"] = "v"` (leader) | `relation.set_app("k", "v")?` |
//! | `self.unit.get_container("web")` / `event.workload` | `ctx.container("web")?` / the `Container` argument |
//! | `container.add_layer("web", layer, combine=True)` | `container.add_layer("web", &layer, true)?` |
//! | `container.get_service("web").is_running()` | `container.get_service("web")?.is_running()` |
//! | `raise` in a handler | `return Err(...)` |
//!
//! ## Semantics worth knowing
//!
//! * Every event gets a fresh charm value ([`Default`]) in a fresh instance: keep what must
//!   survive in [`StoredState`].
//! * Status and stored-state writes are committed only when the handler returns `Ok`;
//!   container operations take effect at once, as in Pebble.
//! * A handler error, a panic or a trap fails the event; the host shows the error (with
//!   its whole `source()` chain) and retries the event later.

#![warn(missing_docs)]
#![deny(unsafe_code)]

extern crate self as cairn_sdk;

#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
#[path = "bindings.rs"]
pub mod __bindings;

mod charm;
mod container;
mod error;
mod event;
mod host;
pub mod layer;
mod log;
mod model;
mod paths;
mod relation;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
mod yaml;

pub use charm::{Charm, Context, run_event};
pub use container::{
    Container, ExecOptions, ExecOutput, FileInfo, FileOptions, NoticeFilter, Process,
    ProcessOutput, ServiceInfo, ServiceStartup, ServiceStatus,
};
pub use error::{ApiError, BoxError, ChangeError, Error, ExecError, PathError, Result, ResultExt};
pub use event::{
    ActionEvent, CheckEvent, CheckInfo, CheckLevel, CheckStatus, Event, Notice, NoticeEvent,
    Outcome,
};
pub use layer::{Check, Layer, Plan, Service};
pub use model::{App, Config, ConfigValue, FromConfig, LogLevel, Status, StoredState, Unit, log};
pub use paths::{FileTree, TreeEntry};
pub use relation::{BagOwner, Relation, RelationEvent};

/// Everything a charm usually needs: `use cairn_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::layer::{
        Check, CheckLevel, Layer, LogTarget, LogTargetType, Override, Plan, Service, ServiceAction,
        Startup,
    };
    pub use crate::{
        ActionEvent, Charm, CheckEvent, CheckInfo, CheckStatus, ConfigValue, Container, Context,
        Error, Event, ExecError, ExecOptions, ExecOutput, FileOptions, FileTree, NoticeEvent,
        NoticeFilter, Outcome, Process, ProcessOutput, Relation, RelationEvent, Result, ResultExt,
        ServiceInfo, ServiceStatus, Status, StoredState,
    };
    pub use crate::{debug, error, export_charm, info, trace, warn};
}

/// Exports a [`Charm`] type as the component's `cairn:charm/handler`; use it once per
/// charm crate, at the top level.
///
/// The type must implement [`Charm`] (and so [`Default`]). Outside `wasm32` the macro only
/// checks that, so the crate still builds natively for unit tests.
///
/// ```no_run
/// #[derive(Default)]
/// struct MyCharm;
/// impl cairn_sdk::Charm for MyCharm {}
/// cairn_sdk::export_charm!(MyCharm);
/// ```
#[macro_export]
macro_rules! export_charm {
    ($charm:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __CairnCharmExport;

            impl $crate::__private::Guest for __CairnCharmExport {
                fn handle(
                    event: $crate::__private::WitEvent,
                ) -> ::core::result::Result<$crate::__private::WitOutcome, ::std::string::String>
                {
                    $crate::__private::handle::<$charm>(event)
                }
            }

            $crate::__bindings::__export_cairn_charm_world!(
                __CairnCharmExport with_types_in $crate::__bindings
            );
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = {
            fn assert_charm<C: $crate::Charm>() {}
            assert_charm::<$charm>
        };
    };
}

/// Glue for [`export_charm!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use crate::__bindings::cairn::charm0_1_0::types as wit;
    use crate::event::{ActionEvent, CheckEvent, CheckInfo, CheckLevel, CheckStatus, Event};
    use crate::event::{Notice, NoticeEvent, Outcome, RelationEvent};

    pub use crate::__bindings::cairn::charm0_2_0::types::Event as WitEvent;
    pub use crate::__bindings::exports::cairn::charm0_2_0::handler::Guest;
    pub use wit::Outcome as WitOutcome;

    fn relation(r: crate::__bindings::cairn::charm0_2_0::types::RelationEvent) -> RelationEvent {
        RelationEvent {
            relation_id: r.relation_id,
            endpoint: r.endpoint,
            app: r.remote_app,
            unit: r.remote_unit,
            departing_unit: r.departing_unit,
        }
    }

    /// Handles one WIT event with a fresh `C`.
    pub fn handle<C: crate::Charm>(event: WitEvent) -> Result<WitOutcome, String> {
        crate::run_event::<C>(from_wit(event)).map(|o| match o {
            Outcome::Handled => WitOutcome::Handled,
            Outcome::Deferred => WitOutcome::Deferred,
        })
    }

    /// The SDK's view of a WIT event.
    pub fn from_wit(event: WitEvent) -> Event {
        match event {
            WitEvent::Install => Event::Install,
            WitEvent::Start => Event::Start,
            WitEvent::Stop => Event::Stop,
            WitEvent::Remove => Event::Remove,
            WitEvent::ConfigChanged => Event::ConfigChanged,
            WitEvent::UpgradeCharm => Event::UpgradeCharm,
            WitEvent::UpdateStatus => Event::UpdateStatus,
            WitEvent::LeaderElected => Event::LeaderElected,
            WitEvent::PebbleReady(c) => Event::PebbleReady(c),
            WitEvent::PebbleCheckFailed(e) => Event::PebbleCheckFailed(check_event(e)),
            WitEvent::PebbleCheckRecovered(e) => Event::PebbleCheckRecovered(check_event(e)),
            WitEvent::PebbleCustomNotice(e) => Event::PebbleCustomNotice(NoticeEvent {
                container: e.container,
                notice: notice(e.notice),
            }),
            WitEvent::Action(a) => Event::Action(ActionEvent {
                id: a.id,
                name: a.name,
                params_json: a.params_json,
            }),
            WitEvent::RelationCreated(r) => Event::RelationCreated(relation(r)),
            WitEvent::RelationJoined(r) => Event::RelationJoined(relation(r)),
            WitEvent::RelationChanged(r) => Event::RelationChanged(relation(r)),
            WitEvent::RelationDeparted(r) => Event::RelationDeparted(relation(r)),
            WitEvent::RelationBroken(r) => Event::RelationBroken(relation(r)),
        }
    }

    /// Builds a map by insertion (cheaper in code size than `collect`, which sorts).
    fn map(pairs: Vec<(String, String)>) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        for (k, v) in pairs {
            m.insert(k, v);
        }
        m
    }

    fn check_event(e: wit::CheckEvent) -> CheckEvent {
        CheckEvent {
            container: e.container,
            info: check_info(e.info),
        }
    }

    /// The SDK's view of a WIT check info.
    pub(crate) fn check_info(i: wit::CheckInfo) -> CheckInfo {
        CheckInfo {
            name: i.name,
            level: match i.level {
                wit::CheckLevel::Unset => None,
                wit::CheckLevel::Alive => Some(CheckLevel::Alive),
                wit::CheckLevel::Ready => Some(CheckLevel::Ready),
            },
            status: match i.status {
                wit::CheckStatus::Up => CheckStatus::Up,
                wit::CheckStatus::Down => CheckStatus::Down,
                wit::CheckStatus::Inactive => CheckStatus::Inactive,
            },
            successes: i.successes,
            failures: i.failures,
            threshold: i.threshold,
            change_id: i.change_id,
        }
    }

    /// The SDK's view of a WIT notice.
    pub(crate) fn notice(n: wit::Notice) -> Notice {
        Notice {
            id: n.id,
            user_id: n.user_id,
            kind: n.type_,
            key: n.key,
            first_occurred: n.first_occurred,
            last_occurred: n.last_occurred,
            last_repeated: n.last_repeated,
            occurrences: n.occurrences,
            last_data: map(n.last_data),
            repeat_after: n.repeat_after_ms.map(Duration::from_millis),
            expire_after: n.expire_after_ms.map(Duration::from_millis),
        }
    }
}
