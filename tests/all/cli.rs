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

#[test]
fn run_plays_the_jukebox_demo_and_exits_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "a.raw", &tones(&[(440.0, 0.3)], 0.4, RATE, 2));
    write_raw(dir.path(), "b.raw", &tones(&[(660.0, 0.3)], 0.4, RATE, 2));
    let config = dir.path().join("wasmcalls.toml");
    std::fs::write(
        &config,
        format!(
            "[host]\napi_port = 0\ncache_dir = \"cache\"\n[loopback]\nrecord_dir = \"heard\"\n[[loopback.chats]]\nid = -100\n\
             [[plugins]]\nname = \"jukebox\"\nwasm = {:?}\n\
             settings = {{ chat = -100, bitrate = 48000, playlist = [\"a.raw\", \"b.raw\"] }}\n\
             grants = {{ chats = [-100], files = [\".\"] }}\n",
            crate::support::plugin("jukebox")
        ),
    )
    .unwrap();
    let out = wasmcalls().arg("run").arg(&config).arg("--exit-when-idle").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plugin jukebox: 3 events, 0 restarts"), "{stdout}");
    assert!(stdout.contains("40 packets, 0 lost"), "{stdout}");
    assert!(stderr.contains("playlist finished"), "the plugin's log reaches the host log: {stderr}");
    let wavs: Vec<_> = std::fs::read_dir(dir.path().join("heard")).unwrap().collect();
    assert_eq!(wavs.len(), 1, "one recording for the one participant");
    assert!(dir.path().join("cache").read_dir().unwrap().next().is_some(), "compiled code was cached");
}

#[test]
fn run_explains_a_bad_config_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[host]\napi_port = 1\nport = 2\n").unwrap();
    let out = wasmcalls().arg("run").arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml") && stderr.contains("line 3") && stderr.contains("port"), "{stderr}");
    let out = wasmcalls().arg("run").arg(dir.path().join("absent.toml")).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn telegram_commands_say_to_log_in_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tg.toml");
    std::fs::write(
        &config,
        "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\nsession = \"state/me.session\"\n",
    )
    .unwrap();
    let input = write_raw(dir.path(), "in.raw", &tones(&[(523.0, 0.3)], 0.2, RATE, 2));
    let play = |c: &mut Command| {
        c.arg(&input).arg("--telegram");
    };
    for cmd in ["run", "whoami", "play"] {
        let mut c = wasmcalls();
        c.arg(cmd);
        if cmd == "play" {
            play(&mut c);
        }
        let out = c.arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd} without a session must fail");
        assert!(stderr.contains("run `wasmcalls login`") && stderr.contains("me.session"), "{cmd}: {stderr}");
    }
    assert!(!dir.path().join("state/me.session").exists(), "nothing is created before login");

    // login on a config without [telegram] says what to add.
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, "").unwrap();
    let out = wasmcalls().arg("login").arg(&plain).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no [telegram] section") && stderr.contains("my.telegram.org"),
        "{stderr}"
    );
}
