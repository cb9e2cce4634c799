//! Admission control end to end: a pacer thread takes on only what its budget holds,
//! refuses the rest by name before it reaches Telegram, and the calls it already
//! carries keep every frame.

use std::sync::atomic::Ordering;

use serde_json::json;
use wasmcalls::media::EncoderConfig;
use wasmcalls::media::cost::{self, speech_like};

use crate::support::*;

const FIRST: i64 = -1001185324811;
const SECOND: i64 = -1002000000002;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_past_the_budget_is_refused_by_name_and_the_first_call_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "speech.raw", &speech_like(20));
    // What a new encoded stream claims (measured once per process, cached): one pacer
    // thread whose budget is 1.5 of them holds one such call and not two.
    let claim = cost::encode_us(2, EncoderConfig::default()) + cost::SEND_US;
    let host = Host::start_in(dir, &one_thread(claim * 3 / 2)).await;
    let speech = json!({ "raw": { "path": "speech.raw", "rate": 48000, "channels": 2 } });
    let join = |chat: i64| host.api("p", json!({ "cmd": "join", "chat": chat, "source": speech }));

    assert_eq!(join(FIRST).await, json!({ "ok": null }));
    let first = tokio::time::timeout(PATIENCE, host.loopback().participant(FIRST)).await.unwrap();
    tokio::time::timeout(PATIENCE, first.wait_until(|s| s.packets >= 25)).await.unwrap();

    let refused = join(SECOND).await;
    let why = refused["err"]["other"].as_str().unwrap_or_else(|| panic!("refused as `other`: {refused}"));
    assert!(why.starts_with("capacity: no pacer thread has room for a new call"), "{why}");
    assert!(why.contains("shard_budget_percent"), "says what to change: {why}");
    assert_eq!(host.app.media.totals().admission_refused.load(Ordering::Relaxed), 1);
    // Refused before anything reached Telegram: the loopback never saw the second call.
    assert!(host.loopback().calls().iter().all(|c| c.chat() != SECOND));

    // The first call kept every frame.
    let before = first.stats().packets;
    tokio::time::timeout(PATIENCE, first.wait_until(|s| s.packets >= before + 25)).await.unwrap();
    assert_eq!(first.stats().lost, 0);

    // Room comes back when the first call leaves (once the thread, which may have
    // lowered its encoders' complexity meanwhile, has measured itself idle).
    assert_eq!(host.api("p", json!({ "cmd": "leave", "chat": FIRST })).await, json!({ "ok": null }));
    let room = f64::from(claim + cost::IDLE_US) / 20_000.0;
    shard_until(&host, 0, |s| s.complexity == 10 && s.budget - s.committed >= room).await;
    assert_eq!(join(SECOND).await, json!({ "ok": null }));
}

/// `raw` (48 kHz stereo s16le in `dir`) as Ogg Opus, named `name`.
fn opus_file(dir: &std::path::Path, raw: &str, name: &str) -> String {
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", raw, "-c:a", "libopus", name])
        .current_dir(dir)
        .status()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    assert!(ok.success(), "ffmpeg encoded {raw}");
    name.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_change_past_the_budget_is_refused_and_the_old_one_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "speech.raw", &speech_like(20));
    // Room for a passed-through call (sending only) and not for an encoder.
    let opus = opus_file(dir.path(), "speech.raw", "speech.opus");
    let host = Host::start_in(dir, &one_thread(cost::encode_us(2, EncoderConfig::default()) / 2)).await;
    let joined = host.api("p", json!({ "cmd": "join", "chat": FIRST, "source": { "file": opus } })).await;
    assert_eq!(joined, json!({ "ok": null }));
    let call = tokio::time::timeout(PATIENCE, host.loopback().participant(FIRST)).await.unwrap();
    tokio::time::timeout(PATIENCE, call.wait_until(|s| s.packets >= 25)).await.unwrap();

    let speech = json!({ "raw": { "path": "speech.raw", "rate": 48000, "channels": 2 } });
    let refused = host.api("p", json!({ "cmd": "play", "chat": FIRST, "source": speech })).await;
    let why = refused["err"]["other"].as_str().unwrap_or_else(|| panic!("refused as `other`: {refused}"));
    assert!(why.starts_with("capacity: no pacer thread has room for this stream"), "{why}");

    // What played before plays on, unbroken.
    let status = host.api("p", json!({ "cmd": "status", "chat": FIRST })).await;
    assert_eq!(status["ok"]["state"], "playing", "{status}");
    let before = call.stats().packets;
    tokio::time::timeout(PATIENCE, call.wait_until(|s| s.packets >= before + 25)).await.unwrap();
    assert_eq!(call.stats().lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoders_turning_dearer_are_lowered_in_complexity_and_new_work_waits() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "speech.raw", &speech_like(30));
    // Room for several encoded calls (a debug build's cost ~1 ms a frame); the first
    // then turns dearer than the whole budget.
    let claim = cost::encode_us(2, EncoderConfig::default()) + cost::SEND_US;
    let budget_us = 5_000;
    let host = Host::start_in(dir, &one_thread(budget_us)).await;
    let speech = json!({ "raw": { "path": "speech.raw", "rate": 48000, "channels": 2 } });
    let join = |chat: i64| host.api("p", json!({ "cmd": "join", "chat": chat, "source": speech }));
    assert_eq!(join(FIRST).await, json!({ "ok": null }));
    let first = tokio::time::timeout(PATIENCE, host.loopback().participant(FIRST)).await.unwrap();

    let per_frame = std::time::Duration::from_micros(u64::from(budget_us) * 11 / 10);
    host.app.manager.inject_cost(FIRST, per_frame).unwrap();
    shard_until(&host, 0, |s| s.complexity == 3).await;
    let refused = join(SECOND).await;
    let why = refused["err"]["other"].as_str().unwrap_or_else(|| panic!("refused as `other`: {refused}"));
    assert!(why.contains("lowered complexity"), "{why}");

    // Cheap again: complexity comes back step by step, and so does room.
    host.app.manager.inject_cost(FIRST, std::time::Duration::ZERO).unwrap();
    let room = f64::from(claim + cost::IDLE_US) / 20_000.0;
    shard_until(&host, 0, |s| s.complexity == 10 && s.budget - s.committed >= room).await;
    assert_eq!(join(SECOND).await, json!({ "ok": null }));
    assert_eq!(first.stats().lost, 0, "the first call kept every frame throughout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_its_calls_thread_has_no_room_for_moves_the_call_to_one_that_has() {
    const THIRD: i64 = -1003000000003;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "speech.raw", &speech_like(30));
    let opus = json!({ "file": opus_file(dir.path(), "speech.raw", "speech.opus") });
    let speech = json!({ "raw": { "path": "speech.raw", "rate": 48000, "channels": 2 } });
    // Two pacer threads with room to spare for these calls (a debug build's encoded
    // call costs ~1 ms a frame); a thread is filled by making one of its calls dearer.
    let budget_us = 3_000;
    let host = Host::start_in(dir, &threads(2, budget_us).chat(THIRD)).await;
    let manager = &host.app.manager;
    let thread_of = |chat: i64| async move {
        let calls = manager.calls().await;
        calls.iter().find(|c| c.chat == chat).and_then(|c| c.pacer_thread).expect("a connected call has a thread")
    };

    // Three calls passing Opus through, placed on two threads by load: two share one.
    for chat in [FIRST, SECOND, THIRD] {
        assert_eq!(host.api("p", json!({ "cmd": "join", "chat": chat, "source": opus })).await, json!({ "ok": null }));
        tokio::time::timeout(PATIENCE, host.loopback().participant(chat)).await.unwrap();
    }
    let mut on = Vec::new();
    for chat in [FIRST, SECOND, THIRD] {
        on.push((thread_of(chat).await, chat));
    }
    on.sort();
    let (crowded, [(_, filler), (_, mover)], (spare, last)) =
        if on[0].0 == on[1].0 { (on[0].0, [on[0], on[1]], on[2]) } else { (on[1].0, [on[1], on[2]], on[0]) };
    assert_ne!(crowded, spare, "placed by load: {on:?}");

    // The filler turns dear enough to leave its thread no room for an encoder.
    let claim = f64::from(cost::encode_us(2, EncoderConfig::default()) + cost::SEND_US) / 20_000.0;
    manager.inject_cost(filler, std::time::Duration::from_micros(budget_us.into())).unwrap();
    shard_until(&host, crowded, |s| s.budget - s.committed < claim).await;

    // The mover's new stream fits only on the other thread: the call moves there.
    let heard = host.loopback().participant(mover).await;
    let before = heard.stats();
    assert_eq!(play_once_measured(&host, mover, &speech).await, json!({ "ok": null }));
    assert_eq!(host.app.media.totals().calls_moved.load(Ordering::Relaxed), 1);
    assert_eq!(thread_of(mover).await, spare);
    let loads: Vec<usize> = host.app.media.shards().iter().map(|s| s.calls).collect();
    assert_eq!((loads[crowded], loads[spare]), (1, 2), "{loads:?}");

    // It plays the new source on the same stream: no packet lost, the SSRC unchanged,
    // its RTP clock running on (a talk spurt marks where the new source starts).
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= before.packets + 50)).await.unwrap();
    let after = heard.stats();
    assert_eq!((after.lost, after.ssrcs.len()), (0, 1), "{after:?}");
    assert!(after.markers > before.markers, "{after:?}");
    for pair in heard.frames().windows(2) {
        let ticks = pair[1].timestamp.wrapping_sub(pair[0].timestamp) as i32;
        assert!((960..=48_000).contains(&ticks), "the RTP clock runs forward, by a frame or a gap: {ticks}");
    }
    let status = host.api("p", json!({ "cmd": "status", "chat": mover })).await;
    assert_eq!(status["ok"]["state"], "playing", "{status}");
    // Commands reach it where it now is: it pauses.
    assert_eq!(host.api("p", json!({ "cmd": "pause", "chat": mover })).await, json!({ "ok": null }));
    let status = host.api("p", json!({ "cmd": "status", "chat": mover })).await;
    assert_eq!(status["ok"]["state"], "paused", "{status}");

    // With the other thread filled too, a new encoder has room nowhere: refused, by name.
    manager.inject_cost(last, std::time::Duration::from_micros(budget_us.into())).unwrap();
    shard_until(&host, spare, |s| s.budget - s.committed < claim).await;
    let refused = play_once_measured(&host, filler, &speech).await;
    let why = refused["err"]["other"].as_str().unwrap_or_else(|| panic!("refused as `other`: {refused}"));
    assert!(why.starts_with("capacity: no pacer thread has room for this stream"), "{why}");
    assert_eq!(host.app.media.totals().calls_moved.load(Ordering::Relaxed), 1);
}

/// `play`s `source` in `chat`, once its thread has measured what its newest streams
/// cost (until then it takes on only part of its budget, and says so).
async fn play_once_measured(host: &Host, chat: i64, source: &serde_json::Value) -> serde_json::Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let r = host.api("p", json!({ "cmd": "play", "chat": chat, "source": source })).await;
            if !r["err"]["other"].as_str().is_some_and(|why| why.contains("still measuring")) {
                return r;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the thread measured its streams in time")
}

/// A host with one pacer thread that may commit `budget_us` per 20 ms, two chats, and
/// a probe plugin that may play files from its folder.
fn one_thread(budget_us: u32) -> Setup {
    threads(1, budget_us)
}

/// As [`one_thread`], with `n` pacer threads.
fn threads(n: usize, budget_us: u32) -> Setup {
    Setup::new()
        .chat(FIRST)
        .chat(SECOND)
        .host(&format!("pacer_shards = {n}"))
        .host(&format!("shard_budget_percent = {}", f64::from(budget_us) / 200.0))
        .plugin(Bot::probe("p").grants("chats = \"all\", files = [\".\"]"))
}

/// Waits until pacer thread `i`'s load satisfies `pred` (its figures change once a
/// second; nothing announces them).
async fn shard_until(host: &Host, i: usize, pred: impl Fn(&wasmcalls::media::ShardLoad) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !pred(&host.app.media.shards()[i]) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the pacer thread got there in time: {:?}", host.app.media.shards()));
}
