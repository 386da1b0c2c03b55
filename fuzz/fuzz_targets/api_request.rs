//! Fuzz target: see `starling_fuzz::api_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::api_request(data));
