//! A real Telegram client against the loopback: NTgCalls (PyPI `ntgcalls`, the
//! libwebrtc core of pytgcalls) joins `wasmcalls loopback serve` as it would join
//! Telegram's media servers — ICE-controlled, never nominating, DTLS server, and
//! refusing an answer without a video section — and the loopback must hear it on the
//! first try, every call. Skipped, saying so, where no Python is installed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// The project's venv Python with NTgCalls (`tests/ntgcalls/python` makes it where
/// missing); none where there is no python3.
fn ntgcalls_python() -> Option<PathBuf> {
    let out = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ntgcalls/python")).output().unwrap();
    match out.status.code() {
        Some(0) => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
        Some(3) => None,
        _ => panic!("making the NTgCalls venv failed: {}", String::from_utf8_lossy(&out.stderr)),
    }
}

#[test]
fn ntgcalls_joins_the_loopback_on_the_first_try_and_is_heard() {
    let Some(python) = ntgcalls_python() else {
        eprintln!("skipped: no python3 here to run NTgCalls (install python3 ≥ 3.9 and run .ci/setup)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let tone = write_raw(dir.path(), "tone.raw", &tones(&[(440.0, 0.3)], 4.0, RATE, 2));
    let mut serve = Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
        .args(["loopback", "serve", "--listen", "127.0.0.1:0", "--record-dir"])
        .arg(dir.path().join("heard"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(serve.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Drained to the end, so the loopback's closing summary has somewhere to go.
    let drain = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let join = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches("?chat=<chat");
    let base = join.trim_end_matches("/join").to_owned();

    const CALLS: usize = 4;
    let out = Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ntgcalls/drive.py"))
        .args([join, tone.to_str().unwrap(), "--calls", &CALLS.to_string(), "--seconds", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value = serde_json::from_str(stdout.trim()).expect("the driver prints JSON");
    for (chat, r) in results.as_object().unwrap() {
        assert_eq!(r["outcome"], "connected", "chat {chat} on the first attempt: {results}");
    }

    // What the loopback heard from each client.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let calls: Vec<serde_json::Value> = rt.block_on(async {
        serde_json::from_str(&reqwest::get(format!("{base}/calls")).await.unwrap().text().await.unwrap()).unwrap()
    });
    assert_eq!(calls.len(), CALLS, "{calls:?}");
    for c in &calls {
        let heard = &c["heard"];
        assert!(heard["packets"].as_u64().unwrap() >= 40, "about 3 s of audio from {}: {heard}", c["chat"]);
        assert_eq!(heard["decode_errors"], 0, "{heard}");
        assert!(heard["level_packets"].as_u64().unwrap() > 0, "the audio-level extension is negotiated: {heard}");
    }
    // Ctrl-C: the loopback closes its recordings and exits.
    // SAFETY: a plain signal to our own child process.
    unsafe { libc::kill(serve.id() as i32, libc::SIGINT) };
    assert!(serve.wait().unwrap().success());
    drain.join().unwrap().unwrap();
    let wavs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("heard")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(wavs.len(), CALLS);
    for wav in wavs {
        let samples: Vec<f64> =
            hound::WavReader::open(&wav).unwrap().into_samples::<i16>().step_by(2).map(|s| s.unwrap() as f64).collect();
        // Skip the first half second: connection set-up and codec warm-up.
        let body = &samples[24_000.min(samples.len())..];
        assert!(rms(body) > 1000.0, "{}: silence", wav.display());
        let f = tone_frequency(body, RATE);
        assert!((f - 440.0).abs() < 15.0, "{}: heard {f} Hz", wav.display());
    }
}
