//! Fuzz target: see `starling_fuzz::policy_change`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::policy_change(data));
