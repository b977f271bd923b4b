// Bindings generated from the `cairn:charm/charm` WIT world (`wit/charm.wit`).

wit_bindgen::generate!({
    path: "../wit",
    world: "cairn:charm/charm",
    pub_export_macro: true,
    export_macro_name: "__export_cairn_charm_world",
    default_bindings_module: "cairn_sdk::__bindings",
});
