//! The control protocol of `cairn run`: a request line as the daemon decodes it
//! (`control::decode_request`), and a reply as the CLI decodes it. A decoded request must
//! encode and decode again to the same request.
//!
//! `host/cairn/src/control.rs` is compiled here on its own (the `cairn` package is a library
//! and binaries whose dependencies include wasmtime, which would take long to build with the fuzzing
//! instrumentation); it may only use its own dependencies, never `crate::`.

#![no_main]

#[allow(dead_code)]
#[path = "../../../host/cairn/src/control.rs"]
mod control;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(req) = control::decode_request(line) {
        let again = serde_json::to_string(&req).expect("a request encodes");
        let back = control::decode_request(&again)
            .unwrap_or_else(|e| panic!("an encoded request does not decode: {e}: {again}"));
        assert_eq!(format!("{req:?}"), format!("{back:?}"), "{again}");
    }
    if let Ok(reply) = serde_json::from_str::<control::Reply>(line) {
        let again = serde_json::to_string(&reply).expect("a reply encodes");
        serde_json::from_str::<control::Reply>(&again)
            .unwrap_or_else(|e| panic!("an encoded reply does not decode: {e}: {again}"));
    }
});
