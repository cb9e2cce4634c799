//! Hearing the call: the loopback's simulated people speak, as Telegram's server
//! forwards a participant's stream — under the source they announced, unnamed in any
//! SDP — and the host hears each stream, knows who is speaking, and tells the plugins.

use std::time::Duration;

use serde_json::{Value, json};
use wasmcalls::calls::HostEvent;
use wasmcalls::media::MediaEvent;
use wasmcalls::telegram::{ParticipantChange, Telegram};

use crate::support::*;

const CHAT: i64 = -1_001_185_324_811;
const ALICE: i64 = 424_242;
const BOB: i64 = 515_151;

/// Two seconds of something as loud as speech (about -13 dBov).
fn words(seconds: f64) -> Vec<i16> {
    tones(&[(310.0, 0.25), (720.0, 0.15)], seconds, RATE, 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_speaking_is_heard_under_their_source_and_only_while_they_speak() {
    let mut call = Call::join().await;
    let chat = -100;
    let path = write_raw(call.dir.path(), "alice.raw", &words(2.0));
    let length = call.loopback.speak(chat, ALICE, path, None).await.unwrap();
    assert_eq!(length, Some(Duration::from_secs(2)));
    let page = call.loopback.participants(chat, None, 10).await.unwrap();
    let source = page.participants.iter().find(|p| p.peer == ALICE).expect("speaking joined her").source;

    let us = call.dialed.call;
    assert_eq!(call.next_event().await, MediaEvent::Speaking { call: us, ssrc: source, speaking: true });
    // Once the file ends, the hold passes and she is quiet again.
    assert_eq!(call.next_event().await, MediaEvent::Speaking { call: us, ssrc: source, speaking: false });
    let stats = call.media.stats(us).await.unwrap();
    assert_eq!(stats.heard.len(), 1, "{stats:?}");
    let heard = &stats.heard[0];
    assert_eq!((heard.ssrc, heard.packets, heard.lost), (source, 100, 0), "2 s is 100 packets of 20 ms");
    assert!(!heard.speaking);
    assert_eq!(stats.frames_sent, 0, "hearing sends nothing");
    let totals = call.media.totals().heard_packets.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(totals, 100, "the metric counts them too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_see_who_speaks_whether_or_not_an_update_named_their_source() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let alice = write_raw(dir.path(), "alice.raw", &words(1.0));
    let bob = write_raw(dir.path(), "bob.raw", &words(1.0));
    let setup = Setup::new().chat(CHAT).plugin(Bot::probe("p").grants("chats = \"all\", files = [\".\"]"));
    let host = Host::start_in(dir, &setup).await;
    let lb = host.loopback().clone();
    // Alice is in the call before us: no update we receive names her source, so the
    // host asks who sends under it, as Telegram's clients do.
    lb.person_joins(CHAT, ALICE, false).unwrap();
    let mut events = host.app.events();
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    let speaking = |who: i64, on: bool| {
        move |e: &HostEvent| {
            let want =
                if on { ParticipantChange::StartedSpeaking(who) } else { ParticipantChange::StoppedSpeaking(who) };
            matches!(e, HostEvent::Participants { chat, changes } if *chat == CHAT && changes.contains(&want))
        }
    };
    lb.speak(CHAT, ALICE, alice, None).await.unwrap();
    host.event(&mut events, speaking(ALICE, true)).await;
    let page = host.api("p", json!({ "cmd": "participants", "chat": CHAT })).await;
    let listed = page["ok"]["participants"].as_array().unwrap().clone();
    let her = listed.iter().find(|p| p["peer"] == ALICE).unwrap();
    assert_eq!(her["speaking"], true, "pages show who speaks: {page}");
    let status = host.app.manager.calls().await;
    assert_eq!(status[0].speaking, vec![ALICE], "and so does the status");
    assert_eq!(status[0].heard.len(), 1, "{status:?}");
    host.event(&mut events, speaking(ALICE, false)).await;

    // Bob joins after us (his update names his source), speaks, and leaves while
    // speaking: he stops speaking, then leaves.
    lb.speak(CHAT, BOB, bob, None).await.unwrap();
    host.event(&mut events, speaking(BOB, true)).await;
    lb.person_leaves(CHAT, BOB).unwrap();
    host.event(
        &mut events,
        |e| matches!(e, HostEvent::Participants { changes, .. } if changes.contains(&ParticipantChange::Left(BOB))),
    )
    .await;

    let seen: Vec<Value> = host.api("p", json!({ "cmd": "events" })).await.as_array().unwrap().clone();
    let changes: Vec<Value> = seen
        .iter()
        .filter_map(|e| e.get("on-participants"))
        .flat_map(|s| s["changes"].as_array().unwrap().clone())
        .filter(|c| c.get("joined").is_none_or(|j| j["peer"] != json!(777_000_001)))
        .collect();
    assert_eq!(
        changes,
        vec![
            json!({ "started-speaking": ALICE }),
            json!({ "stopped-speaking": ALICE }),
            json!({ "joined": { "peer": BOB, "muted": false, "is_self": false } }),
            json!({ "started-speaking": BOB }),
            json!({ "stopped-speaking": BOB }),
            json!({ "left": BOB }),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_person_cannot_speak_and_a_file_that_is_not_audio_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new().chat(CHAT);
    let host = Host::start_in(dir, &setup).await;
    let lb = host.loopback();
    lb.person_joins(CHAT, ALICE, true).unwrap();
    let err = lb.speak_bytes(CHAT, ALICE, "hello.wav", &[1; 4000]).await.unwrap_err();
    assert!(err.contains("muted") && err.contains("unmute"), "{err}");
    lb.person_mutes(CHAT, ALICE, false).unwrap();
    let err = lb.speak_bytes(CHAT, ALICE, "notes.txt", b"just some words, not audio at all\n").await.unwrap_err();
    assert!(err.starts_with("notes.txt: ") && err.contains("not audio"), "{err}");
    let err = lb.speak_bytes(CHAT, ALICE, "empty.wav", b"").await.unwrap_err();
    assert!(err.contains("empty"), "{err}");
}

/// Correlation of each 0.25 s window of `sent` with `heard`, each searched within 20 ms
/// of where the one before it was found.
fn tracked_windows(sent: &[f64], heard: &[f64]) -> Vec<f64> {
    const W: usize = 12_000;
    let mut at = 0usize;
    let mut out = Vec::new();
    for (i, window) in sent.chunks_exact(W).enumerate() {
        let expected = at + if i == 0 { 0 } else { W };
        let lags = expected.saturating_sub(960)..=expected + 960;
        let best = lags
            .filter(|&l| l + W <= heard.len())
            .map(|l| (l, correlation(window, &heard[l..l + W])))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((l, c)) = best else { break };
        out.push(c);
        at = l;
    }
    out
}

/// `heard` from where it stops being silent.
fn from_sound(heard: &[f64]) -> &[f64] {
    let start = heard.iter().position(|x| x.abs() > 500.0).unwrap_or(heard.len());
    &heard[start.saturating_sub(200)..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_speaker_is_recorded_to_a_file_of_their_own_and_the_mix_to_a_wav() {
    let mut call = Call::join().await;
    let chat = -100;
    let dir = call.dir.path().to_owned();
    // Rising chirps: starting low keeps the alignment search off a neighbouring period.
    let (alice, bob) = (chirp(300.0, 3000.0, 2.0, 0.3), chirp(150.0, 1800.0, 2.0, 0.3));
    let (alice_file, bob_file) = (write_raw(&dir, "alice.raw", &alice), write_raw(&dir, "bob.raw", &bob));
    let us = call.dialed.call;
    let plan = wasmcalls::media::record::RecordPlan {
        each: Some((dir.clone(), Box::new(|ssrc| format!("source-{ssrc}")))),
        mix: Some(dir.join("mix.wav")),
        max_duration: Duration::from_secs(600),
        max_bytes: 1 << 30,
    };
    call.media.record(us, plan).await.unwrap();
    // One after the other: each file holds one voice, the mix both in turn.
    for (who, file) in [(ALICE, alice_file), (BOB, bob_file)] {
        call.loopback.speak(chat, who, file, None).await.unwrap();
        loop {
            if let MediaEvent::Speaking { speaking: false, .. } = call.next_event().await {
                break;
            }
        }
    }
    call.media.control(us, wasmcalls::media::Control::Listen(wasmcalls::media::Listener::Recording, None)).unwrap();
    let summary = loop {
        if let MediaEvent::RecordingEnded { summary, .. } = call.next_event().await {
            break summary;
        }
    };
    assert_eq!((summary.error.as_deref(), summary.dropped, summary.lost), (None, 0, 0), "{summary:?}");
    assert_eq!(summary.files.len(), 3, "{summary:?}");
    let page = call.loopback.participants(chat, None, 10).await.unwrap();
    let source_of = |who: i64| page.participants.iter().find(|p| p.peer == who).unwrap().source;
    for (who, sent) in [(ALICE, &alice), (BOB, &bob)] {
        let file = summary.files.iter().find(|f| f.ssrc == Some(source_of(who))).unwrap();
        assert_eq!(file.path, dir.join(format!("source-{}.ogg", source_of(who))));
        assert!((2000..2100).contains(&file.duration_ms), "{file:?}");
        let heard = left(&decoded(&file.path));
        let (mean, worst) = wasmcalls::media::loss::window_correlations(&left(sent), &heard);
        assert!(mean >= 0.9, "{who}'s recording matches what they said: mean {mean:.3}, worst {worst:.3}");
    }
    let mix = summary.files.iter().find(|f| f.ssrc.is_none()).unwrap();
    let heard = left(&decoded(&mix.path));
    let (mean, worst) = wasmcalls::media::loss::window_correlations(&left(&alice), from_sound(&heard));
    assert!(mean >= 0.9, "the mix starts with Alice: mean {mean:.3}, worst {worst:.3}");
    let after_alice = &heard[heard.len() - from_sound(&heard).len() + 2 * RATE as usize..];
    let (mean, worst) = wasmcalls::media::loss::window_correlations(&left(&bob), from_sound(after_alice));
    assert!(mean >= 0.9, "then Bob: mean {mean:.3}, worst {worst:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_records_into_its_granted_folder_only_and_hears_how_recordings_end() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let alice = write_raw(dir.path(), "alice.raw", &words(1.0));
    std::fs::create_dir(dir.path().join("rec")).unwrap();
    std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
    let grants = "chats = \"all\", files = [\".\"], recordings = [\"rec\"]";
    let setup = Setup::new().chat(CHAT).plugin(Bot::probe("p").grants(grants));
    let host = Host::start_in(dir, &setup).await;
    let root = host.dir.path().to_owned();
    let lb = host.loopback().clone();
    let mut events = host.app.events();
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    lb.person_joins(CHAT, ALICE, false).unwrap();
    let record = |extra: Value| {
        let mut cmd = json!({ "cmd": "record", "chat": CHAT });
        cmd.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        cmd
    };
    for (target, why) in [
        (json!({ "each": "elsewhere" }), "permission-denied"),
        (json!({ "mix": "rec/../elsewhere/x.wav" }), "permission-denied"),
        (json!({ "mix": "/tmp/x.wav" }), "permission-denied"),
        (json!({ "mix": "rec/mix.txt" }), "invalid-argument"),
        (json!({ "each": "rec", "max_seconds": 100_000_000 }), "invalid-argument"),
    ] {
        let r = host.api("p", record(target.clone())).await;
        assert!(r["err"][why].is_string(), "{target}: {r}");
    }
    assert!(std::fs::read_dir(root.join("elsewhere")).unwrap().next().is_none(), "nothing written outside");

    assert_eq!(host.api("p", record(json!({ "each": "rec" }))).await, json!({ "ok": null }));
    let again = host.api("p", record(json!({ "mix": "rec/mix.wav" }))).await;
    assert!(again["err"]["invalid-argument"].as_str().unwrap().contains("already"), "{again}");
    lb.speak(CHAT, ALICE, alice, None).await.unwrap();
    host.event(&mut events, |e| {
        matches!(e, HostEvent::Participants { changes, .. } if changes.contains(&ParticipantChange::StoppedSpeaking(ALICE)))
    })
    .await;
    let stopped = host.api("p", json!({ "cmd": "stop-record", "chat": CHAT })).await;
    let files = stopped["ok"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{stopped}");
    let name = files[0]["path"].as_str().unwrap();
    assert!(
        name.starts_with(&format!("rec/{ALICE}-")) && name.ends_with(".ogg"),
        "named as the plugin names it: {name}"
    );
    let ms = files[0]["duration_ms"].as_u64().unwrap();
    assert!((1000..1100).contains(&ms), "{stopped}");
    assert_eq!(stopped["ok"]["error"], Value::Null);
    let heard = left(&decoded(&root.join(name)));
    assert!(rms(&heard) > 1000.0, "her words are in it");

    // A recording that reaches its cap ends by itself, and the plugin is told.
    assert_eq!(host.api("p", record(json!({ "mix": "rec/mix.wav", "max_seconds": 1 }))).await, json!({ "ok": null }));
    host.event(&mut events, |e| matches!(e, HostEvent::RecordingEnded { chat, .. } if *chat == CHAT)).await;
    let seen: Vec<Value> = host.api("p", json!({ "cmd": "events" })).await.as_array().unwrap().clone();
    let ended = seen.iter().find_map(|e| e.get("on-recording-ended")).expect("the plugin heard it");
    assert!(ended["recording"]["error"].as_str().unwrap().contains("cap of 1 s"), "{ended}");
    assert_eq!(ended["recording"]["files"][0]["path"], "rec/mix.wav");
    let exists = host.api("p", record(json!({ "mix": "rec/mix.wav" }))).await;
    assert!(exists["err"]["invalid-argument"].as_str().unwrap().contains("exists"), "{exists}");
    let none = host.api("p", json!({ "cmd": "stop-record", "chat": CHAT })).await;
    assert!(none["err"]["invalid-argument"].as_str().unwrap().contains("not being recorded"), "{none}");

    // The mix as FLAC, chosen by the file's name: ffmpeg reads back its second.
    let flac = record(json!({ "mix": "rec/mix.flac", "max_seconds": 1 }));
    assert_eq!(host.api("p", flac).await, json!({ "ok": null }));
    host.event(&mut events, |e| matches!(e, HostEvent::RecordingEnded { chat, .. } if *chat == CHAT)).await;
    let seconds = decoded(&root.join("rec/mix.flac")).len() as f64 / 2.0 / RATE as f64;
    assert!((0.95..1.2).contains(&seconds), "a second of mix in the FLAC file: {seconds} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_built_on_0_2_0_still_links_joins_and_hears_who_speaks() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let alice = write_raw(dir.path(), "alice.raw", &words(1.0));
    let setup = Setup::new().chat(CHAT).plugin(Bot::probe_v0_2_0("old").all());
    let host = Host::start_in(dir, &setup).await;
    assert!(host.app.loaded[0].1.is_ok(), "a 0.2.0 component links against 0.2.1: {:?}", host.app.loaded[0].1);
    let mut events = host.app.events();
    let join = json!({ "cmd": "join", "chat": CHAT, "file": "long.raw" });
    assert_eq!(host.api("old", join).await, json!({ "ok": null }));
    host.loopback().speak(CHAT, ALICE, alice, None).await.unwrap();
    host.event(&mut events, |e| {
        matches!(e, HostEvent::Participants { changes, .. } if changes.contains(&ParticipantChange::StartedSpeaking(ALICE)))
    })
    .await;
    let seen = host.api("old", json!({ "cmd": "events" })).await;
    assert!(
        seen.as_array().unwrap().contains(&json!({ "started-speaking": { "chat": CHAT, "peer": ALICE } })),
        "{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_plays_one_calls_speaker_into_another_call() {
    use wasmcalls::calls::dial;
    use wasmcalls::media::{EncoderConfig, MediaPlane, PacerConfig};
    use wasmcalls::telegram::loopback::{Loopback, LoopbackOptions};
    let (media, mut events) = MediaPlane::start(PacerConfig { shards: 1, ..Default::default() }).unwrap();
    let lb = Loopback::new(LoopbackOptions { keep_audio: true, ..Default::default() }).unwrap();
    let ip = "127.0.0.1".parse().unwrap();
    let (stage, room) = (-100, -200);
    let a = dial(&media, &lb, stage, ip, &Default::default()).await.unwrap();
    let b = dial(&media, &lb, room, ip, &Default::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let said = chirp(300.0, 2500.0, 3.0, 0.3);
    let path = write_raw(dir.path(), "alice.raw", &said);

    media.bridge(a.call, b.call, EncoderConfig::default()).await.unwrap();
    lb.speak(stage, ALICE, path, None).await.unwrap();
    // She is heard in the room (our call there sends the stage's mix) until she stops.
    let heard = lb.call(b.ssrc).unwrap();
    loop {
        match tokio::time::timeout(PATIENCE, events.recv()).await.unwrap().unwrap() {
            MediaEvent::Speaking { call, speaking: false, .. } if call == a.call => break,
            _ => {}
        }
    }
    media.unbridge(a.call, b.call).unwrap();
    let room_heard = left(&heard.audio());
    // Each 0.25 s of what she said, found where it landed: a stalled pacer on a loaded
    // machine can shift the room's timeline, which is not the bridge's to judge.
    let found = tracked_windows(&left(&said), from_sound(&room_heard));
    let mean = found.iter().sum::<f64>() / found.len() as f64;
    assert!(mean >= 0.9, "the room hears the stage: {found:.2?}");
    let stats = media.stats(b.call).await.unwrap();
    assert_eq!(stats.stream, None, "unbridged, the room plays nothing");
    assert!(stats.frames_sent >= 150, "3 s of the stage went out: {}", stats.frames_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridges_are_between_two_granted_calls() {
    const OTHER: i64 = -1_002_000_000_002;
    const QUIET: i64 = -1_003_000_000_003;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let grants = format!("chats = [{CHAT}, {OTHER}], files = [\".\"]");
    let setup = Setup::new().chat(CHAT).chat(OTHER).chat(QUIET).plugin(Bot::probe("p").grants(&grants));
    let host = Host::start_in(dir, &setup).await;
    for chat in [CHAT, OTHER] {
        let join = json!({ "cmd": "join", "chat": chat, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
        assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    }
    let bridge = |from: i64, to: i64| json!({ "cmd": "bridge", "from": from, "chat": to });
    assert!(host.api("p", bridge(CHAT, CHAT)).await["err"]["invalid-argument"].is_string());
    assert!(host.api("p", bridge(CHAT, QUIET)).await["err"]["permission-denied"].is_string());
    assert_eq!(host.api("p", bridge(CHAT, OTHER)).await, json!({ "ok": null }));
    let status = host.api("p", json!({ "cmd": "status", "chat": OTHER })).await;
    assert_eq!(status["ok"]["source"], format!("bridge from {CHAT}"));
    assert_eq!(host.api("p", json!({ "cmd": "unbridge", "chat": OTHER })).await, json!({ "ok": null }));
    let again = host.api("p", json!({ "cmd": "unbridge", "chat": OTHER })).await;
    assert!(again["err"]["invalid-argument"].as_str().unwrap().contains("no bridge"), "{again}");
    let status = host.api("p", json!({ "cmd": "status", "chat": OTHER })).await;
    assert_eq!(status["ok"]["state"], "idle");
}

/// What the probe has heard, once `enough` says it is all there.
async fn heard_until(host: &Host, plugin: &str, enough: impl Fn(&Value) -> bool) -> Value {
    answer_until(host, plugin, json!({ "cmd": "heard" }), enough).await
}

/// `plugin`'s answer to `ask`, once `enough` says it has heard it all.
async fn answer_until(host: &Host, plugin: &str, ask: Value, enough: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let heard = host.api(plugin, ask.clone()).await;
            if enough(&heard) {
                return heard;
            }
            // Batches come every 100 ms or so; nothing announces the last one.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the plugin heard it in time")
}

fn samples_of(heard: &Value, key: &str) -> Vec<f64> {
    heard["pcm"][key].as_array().map_or_else(Vec::new, |a| a.iter().map(|x| x.as_f64().unwrap()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_hears_a_speaker_as_pcm_batches_in_the_format_it_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let said = chirp(300.0, 3000.0, 2.0, 0.3);
    let alice = write_raw(dir.path(), "alice.raw", &said);
    let grants = "chats = \"all\", files = [\".\"], audio = true";
    let host = Host::start_in(dir, &Setup::new().chat(CHAT).plugin(Bot::probe("p").grants(grants))).await;
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    // What a speech recogniser takes: 16 kHz mono, 200 ms at a time, each speaker alone.
    let listen =
        json!({ "cmd": "listen", "chat": CHAT, "target": "each", "rate": 16000, "channels": 1, "batch_ms": 200 });
    assert_eq!(host.api("p", listen).await, json!({ "ok": null }));
    host.loopback().speak(CHAT, ALICE, alice, None).await.unwrap();

    let total =
        |h: &Value| h["batches"].as_array().unwrap().iter().map(|b| b["samples"].as_u64().unwrap()).sum::<u64>();
    let heard = heard_until(&host, "p", |h| total(h) >= 32_000).await;
    let page = host.loopback().participants(CHAT, None, 10).await.unwrap();
    let source = page.participants.iter().find(|p| p.peer == ALICE).unwrap().source;
    let batches = heard["batches"].as_array().unwrap();
    for b in batches {
        assert_eq!(
            (b["user"].as_i64(), b["source"].as_u64(), b["dropped"].as_u64()),
            (Some(ALICE), Some(source.into()), Some(0)),
            "{b}"
        );
    }
    assert!(batches[..batches.len() - 1].iter().all(|b| b["samples"] == 3200), "200 ms of 16 kHz mono: {batches:?}");
    assert_eq!(total(&heard), 32_000, "exactly the 2 s she spoke");
    // Her words, at a third of the rate: every third sample of what she said.
    let sent: Vec<f64> = left(&said).into_iter().step_by(3).collect();
    let (mean, worst) = wasmcalls::media::loss::window_correlations(&sent, &samples_of(&heard, &source.to_string()));
    assert!(mean >= 0.9, "the plugin heard what she said: mean {mean:.3}, worst {worst:.3}");

    assert_eq!(host.api("p", json!({ "cmd": "unlisten", "chat": CHAT })).await, json!({ "ok": null }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_listener_loses_batches_and_says_so_while_another_call_keeps_time() {
    const OTHER: i64 = -1_002_000_000_002;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let alice = write_raw(dir.path(), "alice.raw", &words(3.0));
    let grants = "chats = \"all\", files = [\".\"], audio = true";
    let setup = Setup::new()
        .host("pacer_shards = 1")
        .chat(CHAT)
        .chat(OTHER)
        .plugin(Bot::probe("slow").grants(grants))
        .plugin(Bot::probe("player").grants("chats = \"all\", files = [\".\"]"));
    let host = Host::start_in(dir, &setup).await;
    let source = json!({ "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } });
    assert_eq!(host.api("slow", json!({ "cmd": "join", "chat": CHAT, "source": source })).await, json!({ "ok": null }));
    assert_eq!(
        host.api("player", json!({ "cmd": "join", "chat": OTHER, "source": source })).await,
        json!({ "ok": null })
    );
    let other = tokio::time::timeout(PATIENCE, host.loopback().participant(OTHER)).await.unwrap();

    // The mix every 20 ms, each taking the plugin 60 ms: it cannot keep up.
    let listen = json!({ "cmd": "listen", "chat": CHAT, "target": "mix", "batch_ms": 20, "work_ms": 60 });
    assert_eq!(host.api("slow", listen).await, json!({ "ok": null }));
    let before = other.stats().packets;
    host.loopback().speak(CHAT, ALICE, alice, None).await.unwrap();
    let told = |h: &Value| h["batches"].as_array().unwrap().iter().map(|b| b["dropped"].as_u64().unwrap()).sum::<u64>();
    let heard = heard_until(&host, "slow", |h| told(h) >= 20).await;
    let status = host.app.plugins.status().into_iter().find(|p| p.name == "slow").unwrap();
    assert!(status.audio_dropped >= told(&heard), "the host counts what it dropped: {status:?}");
    assert!(heard["batches"].as_array().unwrap().iter().all(|b| b["samples"] == 1920), "20 ms of 48 kHz stereo each");

    // The slow listener's requests still get through (events go first), and the call
    // next door never missed a frame.
    assert_eq!(host.api("slow", json!({ "cmd": "unlisten", "chat": CHAT })).await, json!({ "ok": null }));
    tokio::time::timeout(PATIENCE, other.wait_until(|s| s.packets >= before + 150)).await.unwrap();
    assert_eq!(other.stats().lost, 0);
    let url = format!("http://{}/metrics", host.app.api);
    let metrics = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("wasmcalls_plugin_audio_dropped_total{plugin=\"slow\"}"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hearing_a_call_needs_the_grant_a_call_and_a_format_libopus_decodes_to() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let setup = Setup::new()
        .chat(CHAT)
        .plugin(Bot::probe("deaf").grants("chats = \"all\", files = [\".\"]"))
        .plugin(Bot::probe("ears").grants("chats = \"all\", files = [\".\"], audio = true"));
    let host = Host::start_in(dir, &setup).await;
    let listen =
        |rate: u32, batch_ms: u32| json!({ "cmd": "listen", "chat": CHAT, "rate": rate, "batch_ms": batch_ms });
    let err = host.api("ears", listen(48_000, 100)).await;
    assert!(err["err"]["not-in-call"].is_i64(), "{err}");
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("ears", join).await, json!({ "ok": null }));
    let err = host.api("deaf", listen(48_000, 100)).await;
    assert!(err["err"]["permission-denied"].as_str().unwrap().contains("grants.audio"), "{err}");
    let err = host.api("ears", listen(44_100, 100)).await;
    assert!(err["err"]["invalid-argument"].as_str().unwrap().contains("44100 Hz"), "{err}");
    let err = host.api("ears", listen(48_000, 30)).await;
    assert!(err["err"]["invalid-argument"].as_str().unwrap().contains("multiple of 20"), "{err}");
    assert_eq!(host.api("ears", listen(48_000, 100)).await, json!({ "ok": null }));
    // The mix comes even when nobody speaks: silence, batch after batch.
    let heard = heard_until(&host, "ears", |h| h["batches"].as_array().unwrap().len() >= 3).await;
    assert!(samples_of(&heard, "mix").iter().all(|&x| x == 0.0));
}

/// The talk-time bot (`plugins/talktime-*`) hears two people through its SDK — Python's
/// `@bot.on_audio`, JavaScript's `bot.onAudio` — and answers `/talktime` in the chat.
async fn the_sdks_hear_who_talks_how_long(wasm: std::path::PathBuf) {
    use wasmcalls::telegram::loopback::DEFAULT_BOT_ID;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let alice = write_raw(dir.path(), "alice.raw", &words(2.0));
    let bob = write_raw(dir.path(), "bob.raw", &words(1.0));
    let grants = format!("chats = [{CHAT}], files = [\".\"], messages = true, audio = true");
    let mut setup = Setup::new().chat(CHAT).plugin(Bot::at("talktime", wasm.to_str().unwrap()).grants(&grants));
    for line in shared_compile() {
        setup = setup.host(&line);
    }
    let host = Host::start_in(dir, &setup).await;
    assert_eq!(host.api("talktime", json!({ "listen": CHAT, "file": "long.raw" })).await, json!({ "ok": true }));
    let talked = |who: i64| move |h: &Value| h["talk"][CHAT.to_string()][who.to_string()].as_f64().unwrap_or(0.0);
    for (who, file, seconds) in [(ALICE, alice, 2.0), (BOB, bob, 1.0)] {
        host.loopback().speak(CHAT, who, file, None).await.unwrap();
        let heard = answer_until(&host, "talktime", json!({}), |h| talked(who)(h) >= seconds - 0.001).await;
        assert!((talked(who)(&heard) - seconds).abs() < 0.001, "{who} spoke {seconds} s: {heard}");
        assert_eq!(heard["stats"]["dropped"], 0, "{heard}");
    }
    let mut events = host.app.events();
    let id = host.loopback().say(CHAT, ALICE, "/talktime", None).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == id)).await;
    host.api("talktime", json!({})).await; // it has answered by now (its events run in order)
    let said = host.loopback().transcript(CHAT).into_iter().rfind(|p| p.from == DEFAULT_BOT_ID);
    assert_eq!(said.unwrap().text, format!("{ALICE}: 2.0 s\n{BOB}: 1.0 s"));
}

mod the_sdks_hear_who_talks_how_long {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python() {
        super::the_sdks_hear_who_talks_how_long(python_bot("talktime-py")).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn javascript() {
        super::the_sdks_hear_who_talks_how_long(js_bot("talktime-js")).await
    }
}
