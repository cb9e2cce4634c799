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
    let shard = host.app.media.shards()[0];
    assert!(shard.committed <= shard.budget, "admitted work stays within the budget: {shard:?}");

    // The first call kept every frame.
    let before = first.stats().packets;
    tokio::time::timeout(PATIENCE, first.wait_until(|s| s.packets >= before + 25)).await.unwrap();
    assert_eq!(first.stats().lost, 0);

    // Room comes back when the first call leaves (once the thread, which may have
    // lowered its encoders' complexity meanwhile, has measured itself idle).
    assert_eq!(host.api("p", json!({ "cmd": "leave", "chat": FIRST })).await, json!({ "ok": null }));
    let room = f64::from(claim + cost::IDLE_US) / 20_000.0;
    shard_until(&host, |s| s.complexity == 10 && s.budget - s.committed >= room).await;
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
    // Room for several encoded calls; the first then turns far dearer than that.
    let claim = cost::encode_us(2, EncoderConfig::default()) + cost::SEND_US;
    let budget_us = claim * 6;
    let host = Host::start_in(dir, &one_thread(budget_us)).await;
    let speech = json!({ "raw": { "path": "speech.raw", "rate": 48000, "channels": 2 } });
    let join = |chat: i64| host.api("p", json!({ "cmd": "join", "chat": chat, "source": speech }));
    assert_eq!(join(FIRST).await, json!({ "ok": null }));
    let first = tokio::time::timeout(PATIENCE, host.loopback().participant(FIRST)).await.unwrap();

    let per_frame = std::time::Duration::from_micros(u64::from(budget_us) * 3 / 2);
    host.app.manager.inject_cost(FIRST, per_frame).unwrap();
    shard_until(&host, |s| s.complexity == 3).await;
    let refused = join(SECOND).await;
    let why = refused["err"]["other"].as_str().unwrap_or_else(|| panic!("refused as `other`: {refused}"));
    assert!(why.contains("lowered complexity"), "{why}");

    // Cheap again: complexity comes back step by step, and so does room.
    host.app.manager.inject_cost(FIRST, std::time::Duration::ZERO).unwrap();
    shard_until(&host, |s| s.complexity == 10).await;
    assert_eq!(join(SECOND).await, json!({ "ok": null }));
    assert_eq!(first.stats().lost, 0, "the first call kept every frame throughout");
}

/// A host with one pacer thread that may commit `budget_us` per 20 ms, two chats, and
/// a probe plugin that may play files from its folder.
fn one_thread(budget_us: u32) -> Setup {
    Setup::new()
        .chat(FIRST)
        .chat(SECOND)
        .host("pacer_shards = 1")
        .host(&format!("shard_budget_percent = {}", f64::from(budget_us) / 200.0))
        .plugin(Bot::probe("p").grants("chats = \"all\", files = [\".\"]"))
}

/// Waits until the only pacer thread's load satisfies `pred` (its figures change once
/// a second; nothing announces them).
async fn shard_until(host: &Host, pred: impl Fn(&wasmcalls::media::ShardLoad) -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !pred(&host.app.media.shards()[0]) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the pacer thread got there in time: {:?}", host.app.media.shards()));
}
