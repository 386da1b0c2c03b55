//! Fuzz target: see `starling_fuzz::evidence_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::evidence_record(data));
