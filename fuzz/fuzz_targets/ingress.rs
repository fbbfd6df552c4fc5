#![no_main]
//! See `socle_ingest::fuzzing::ingress`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| socle_ingest::fuzzing::ingress(data));
