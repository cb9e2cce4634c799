//! Every input the fuzzers kept — the corpus each target grew (`fuzz/corpus/<target>/`,
//! minimized) and each crash or hang found and fixed (`fuzz/regressions/<target>/`) —
//! run through the same checks the fuzz targets make (`fuzz/checks.rs`), so a fixed
//! bug stays fixed without a nightly toolchain or a sanitizer build.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// The kept inputs of `target`, with their paths (for a failure's message).
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
        for entry in dir.flatten() {
            let path = entry.path();
            out.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no kept inputs for {target} under fuzz/corpus or fuzz/regressions");
    out
}

/// Runs `check` on every kept input of `target`, naming the one that fails.
fn replay(target: &str, check: impl Fn(&[u8])) {
    for (path, data) in inputs(target) {
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data))).is_err() {
            panic!("{path} fails its check again");
        }
    }
}

#[test]
fn join_json() {
    replay("join_json", checks::join_json);
}

#[test]
fn transport_json() {
    replay("transport_json", checks::transport_json);
}

#[test]
fn config_toml() {
    replay("config_toml", checks::config_toml);
}

#[test]
fn tl_updates() {
    replay("tl_updates", checks::tl_updates);
}

#[test]
fn media_bytes() {
    replay("media_bytes", checks::media_bytes);
}

#[test]
fn http_bodies() {
    let http = checks::Http::new(&crate::support::plugin("testbot"));
    replay("http_bodies", |data| http.request(data));
}

/// Writes the seed inputs each fuzz target starts from (`fuzz/corpus/<target>/seed-*`):
/// real join and transport JSON, the example configs, Telegram's updates as the
/// loopback sends them, one short file of each audio format, and requests of each kind.
#[tokio::test]
#[ignore = "writes fuzz/corpus seeds: run when the formats change (`cargo test --test all -- --ignored write_fuzz_seeds`)"]
async fn write_fuzz_seeds() {
    use grammers_tl_types::{self as tl, Serializable};
    use wasmcalls::telegram::loopback::updates::{self, Said};
    use wasmcalls::telegram::tl::{CallRef, container};
    use wasmcalls::transport::{JoinParams, OutboundPeer, Setup};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let put = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    let peer = OutboundPeer::new("127.0.0.1".parse().unwrap(), Default::default(), std::time::Duration::from_secs(10))
        .unwrap();
    let join = JoinParams::from_offer(peer.offer_sdp(), 0x1234_5678, Setup::Active).unwrap().to_json();
    put("join_json", "ours", join.as_bytes());
    let loopback = wasmcalls::telegram::loopback::Loopback::new(Default::default()).unwrap();
    let answer = loopback.join_json(-1001, &join).await.unwrap();
    put("transport_json", "loopback", answer.as_bytes());
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "toml") {
            put("config_toml", &path.file_name().unwrap().to_string_lossy(), &std::fs::read(&path).unwrap());
        }
    }
    let call = CallRef { id: 1, access_hash: 2 };
    let channel: tl::enums::Peer = tl::types::PeerChannel { channel_id: 1001 }.into();
    let said = |text: &str| Said {
        id: 5,
        from: 424_242,
        text: text.into(),
        entities: vec![],
        reply_to: Some(4),
        media: None,
        buttons: None,
        date: 0,
        edited: None,
        out: false,
    };
    let seeds: Vec<(&str, tl::enums::Update)> = vec![
        (
            "participants",
            updates::participants(call, vec![updates::participant(42, 3, false), updates::participant(43, 9, true)]),
        ),
        ("invitation", updates::invitation(channel.clone(), 42, 7, call, vec![777])),
        ("discarded", updates::discarded(Some(channel.clone()), call)),
        ("active", updates::active_call(channel.clone(), call, 2)),
        ("message", updates::new_message(channel.clone(), said("/play bells.mp3"))),
        ("edited", updates::edited_message(channel.clone(), said("/queue"))),
        ("deleted", updates::deleted_messages(channel.clone(), vec![4, 5])),
        ("callback", updates::callback_query(9, 424_242, channel.clone(), 5, "pause")),
    ];
    for (name, update) in seeds {
        put("tl_updates", name, &container(vec![update], vec![]).to_bytes());
    }
    // One short file per format, made by the tools CI installs.
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    let sox = |args: &[&str]| std::process::Command::new("sox").args(args).status().unwrap().success();
    assert!(sox(&["-n", "-r", "48000", "-c", "2", "-b", "16", wav.to_str().unwrap(), "synth", "0.06", "sine", "440"]));
    put("media_bytes", "wav", &std::fs::read(&wav).unwrap());
    for (ext, args) in [
        ("flac", &["-c:a", "flac"][..]),
        ("mp3", &["-c:a", "libmp3lame", "-b:a", "64k"]),
        ("ogg", &["-c:a", "libvorbis"]),
        ("opus", &["-c:a", "libopus", "-b:a", "32k"]),
        ("m4a", &["-c:a", "aac", "-b:a", "64k"]),
        ("webm", &["-c:a", "libopus", "-b:a", "32k"]),
    ] {
        let out = dir.path().join(format!("tone.{ext}"));
        let ok = std::process::Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i", wav.to_str().unwrap()])
            .args(args)
            .arg(&out)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ffmpeg made no {ext}");
        put("media_bytes", ext, &std::fs::read(&out).unwrap());
    }
    // Requests: route, chat (8 bytes), a short string, the content-type flag, the body.
    let request = |route: u8, text: &str, body: &str| {
        let mut b = vec![route];
        b.extend(0i64.to_le_bytes());
        b.extend(text.as_bytes());
        b.extend([0xff, 1]);
        b.extend(body.as_bytes());
        b
    };
    for (name, route, text, body) in [
        ("api-join", 0, "", r#"{"cmd":"join","chat":-1001,"file":"a.raw"}"#),
        ("api-named", 1, "t", r#"{"cmd":"calls"}"#),
        ("say", 3, "", r#"{"from":424242,"text":"/play a.raw"}"#),
        ("press", 4, "", r#"{"from":424242,"message":1,"data":"pause"}"#),
        ("people", 5, "", r#"{"user":42,"action":"join"}"#),
        ("raw", 9, "", r#"{"_":"updateGroupCall"}"#),
        ("outage", 10, "0.1", ""),
    ] {
        put("http_bodies", name, &request(route, text, body));
    }
}
