//! Replays every input `cargo fuzz` found crashing (kept in `fuzz/regressions/<target>/`, see
//! docs/ingest.md), plus hand-made edge cases, through the same entry points as the fuzzer.

use std::path::Path;

use socle_ingest::fuzzing;

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let data = std::fs::read(&path).expect("readable");
        run(&data);
        n += 1;
    }
    n
}

#[test]
fn every_kept_crash_input_now_passes() {
    replay("frame", fuzzing::frame);
    replay("ingress", fuzzing::ingress);
    replay("resolve", fuzzing::resolve);
}

#[test]
fn edge_cases_do_not_panic() {
    let cases: &[&[u8]] = &[
        &[],
        &[0],
        &[0, 0, 0, 0, 1],
        &[1; 40],
        // A string length of 2^62: must be refused, not allocated.
        &[0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        // A long union index.
        &[
            3, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ],
        &[0xff; 64],
    ];
    for c in cases {
        fuzzing::frame(c);
        fuzzing::ingress(c);
        fuzzing::resolve(c);
    }
}
