//! Fuzz target: see `starling_fuzz::genesis`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::genesis(data));
