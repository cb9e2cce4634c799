//! Fuzz target: see `checks::media_bytes`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::media_bytes(data));
