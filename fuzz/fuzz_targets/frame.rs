#![no_main]
//! See `socle_ingest::fuzzing::frame`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| socle_ingest::fuzzing::frame(data));
