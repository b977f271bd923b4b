//! A charm built against the frozen `cairn:charm@0.1.0` world (`wit/deps/charm-0.1`), with
//! wit-bindgen and no SDK, so it stays a 0.1 component whatever the SDK targets: the host
//! must keep loading and running it (install, config-changed, a container call).

#[allow(missing_docs, unsafe_code, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: "../../../wit/deps/charm-0.1",
        world: "cairn:charm/charm@0.1.0",
    });
}

use bindings::cairn::charm::pebble::{Container, FileOptions};
use bindings::cairn::charm::types::{ConfigValue, Event, Outcome, Status};
use bindings::cairn::charm::unit;

struct V01;

/// The `greeting` option's value.
fn greeting() -> String {
    match unit::config_get("greeting") {
        Some(ConfigValue::String(s)) => s,
        _ => "hello".into(),
    }
}

impl bindings::exports::cairn::charm::handler::Guest for V01 {
    fn handle(event: Event) -> Result<Outcome, String> {
        match event {
            Event::Install => {
                unit::state_set("installed", b"yes");
                unit::set_unit_status(&Status::Maintenance("installed by a 0.1 charm".into()));
            }
            Event::ConfigChanged => {
                unit::set_unit_status(&Status::Active(format!("0.1 says {}", greeting())));
            }
            Event::PebbleReady(name) => {
                let c = Container::open(&name).map_err(|e| format!("{e:?}"))?;
                let options = FileOptions {
                    make_parents: true,
                    permissions: None,
                    user_id: None,
                    user: None,
                    group_id: None,
                    group: None,
                };
                c.push("/greeting.txt", greeting().as_bytes(), &options)
                    .map_err(|e| format!("{e:?}"))?;
                let back = c.pull("/greeting.txt").map_err(|e| format!("{e:?}"))?;
                unit::set_unit_status(&Status::Active(format!(
                    "pushed {}",
                    String::from_utf8_lossy(&back)
                )));
            }
            _ => {}
        }
        Ok(Outcome::Handled)
    }
}

bindings::export!(V01 with_types_in bindings);
