//! Fuzz target: see `starling_fuzz::wire_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::wire_frame(data));
