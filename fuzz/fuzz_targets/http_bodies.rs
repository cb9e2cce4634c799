//! Fuzz target: see `checks::Http`. Needs the test bot built first (fuzz/README.md);
//! `WASMCALLS_FUZZ_PLUGIN` names another `.wasm`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

use std::sync::OnceLock;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static HTTP: OnceLock<checks::Http> = OnceLock::new();
    let http = HTTP.get_or_init(|| {
        let wasm = std::env::var("WASMCALLS_FUZZ_PLUGIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/target/wasm32-wasip2/release/testbot.wasm").into()
        });
        checks::Http::new(std::path::Path::new(&wasm))
    });
    http.request(data);
});
