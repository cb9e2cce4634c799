//! The `wasmcalls` binary, run as a user would.

use std::process::Command;

use crate::support::*;

fn wasmcalls() -> Command {
    Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
}

#[test]
fn play_streams_a_file_and_writes_what_the_loopback_heard() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_raw(dir.path(), "in.raw", &tones(&[(523.0, 0.3)], 1.0, RATE, 2));
    let wav = dir.path().join("heard.wav");
    let out = wasmcalls().arg("play").arg(&input).arg("--record").arg(&wav).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sent 50 frames"), "{stdout}");
    assert!(stdout.contains("loopback heard 50 packets, 0 lost"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");

    let reader = hound::WavReader::open(&wav).unwrap();
    assert_eq!(reader.spec().sample_rate, 48000);
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.duration(), 48000, "one second heard");
    let samples: Vec<f64> = reader.into_samples::<i16>().step_by(2).map(|s| s.unwrap() as f64).collect();
    let f = tone_frequency(&samples[4800..], RATE);
    assert!((f - 523.0).abs() < 10.0, "heard {f} Hz");
}

#[test]
fn play_explains_bad_input_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, [0u8; 3]).unwrap();
    let cases: [(Vec<&std::ffi::OsStr>, &str); 3] = [
        (vec!["play".as_ref(), "/definitely/missing.raw".as_ref()], "no such file"),
        (vec!["play".as_ref(), odd.as_os_str()], "not a whole number"),
        (vec!["play".as_ref(), odd.as_os_str(), "--rate".as_ref(), "44100".as_ref()], "44100 Hz is not supported"),
    ];
    for (args, needle) in cases {
        let out = wasmcalls().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
    }
}
