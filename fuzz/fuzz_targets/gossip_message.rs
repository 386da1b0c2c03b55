//! Fuzz target: see `starling_fuzz::gossip_message`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| starling_fuzz::gossip_message(data));
