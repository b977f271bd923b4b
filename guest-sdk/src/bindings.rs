// Bindings generated from the `cairn:charm@0.2.0` WIT world (`wit/charm.wit`, with 0.1's
// interfaces from `wit/deps/charm-0.1`).

wit_bindgen::generate!({
    path: "../wit",
    world: "cairn:charm/charm@0.2.0",
    pub_export_macro: true,
    export_macro_name: "__export_cairn_charm_world",
    default_bindings_module: "cairn_sdk::__bindings",
    // 0.1's interfaces (`wit/deps/charm-0.1`) are this world's imports too.
    generate_all,
});
