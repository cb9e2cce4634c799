//! Fuzz target: see `checks::tl_updates`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::tl_updates(data));
