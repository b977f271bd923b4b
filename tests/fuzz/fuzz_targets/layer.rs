//! Layer YAML: parsing (`parse_layer`), adding through the API's rules
//! (`Layers::add_yaml`, with and without `combine` and `inner`), combining into a plan,
//! rendering it, ordering its services, splitting their commands, and the persistence
//! round trip (a layer as Cairn saves it must parse back to the same layer, or it would be
//! lost or refused on the next start).
//!
//! Input: `<base layer>\0<added layer>`; the first byte's low bits choose `combine` and
//! `inner`. Without a NUL the whole input is the added layer.

#![no_main]

use cairn_plan::{Layers, parse_layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let (base, added) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let mut layers = match parse_layer(1, "base", base).and_then(|l| Layers::new(vec![l])) {
        Ok(l) => l,
        Err(_) => Layers::new(Vec::new()).expect("no layers make a plan"),
    };
    let label = if flags & 4 == 0 { "base" } else { "base/inner" };
    let _ = layers.add_yaml(label, added, flags & 1 != 0, flags & 2 != 0);
    let plan = layers.plan();
    let _ = plan.to_yaml();
    let names: Vec<String> = plan.services.keys().cloned().collect();
    let _ = plan.start_lanes(&names);
    let _ = plan.stop_lanes(&names);
    for s in plan.services.values() {
        let _ = s.parse_command(None);
    }
    for l in layers.layers() {
        let saved = l.to_yaml();
        let back = parse_layer(l.order, &l.label, saved.as_bytes())
            .unwrap_or_else(|e| panic!("a saved layer does not parse back: {e}\n{saved}"));
        assert_eq!(&back, l, "a saved layer parses back different:\n{saved}");
    }
});
