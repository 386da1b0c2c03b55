//! Fuzz target: see `starling_fuzz::mandate`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::mandate(data));
