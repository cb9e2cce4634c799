//! The hostile-plugin suite: plugins that loop, hoard memory, recurse, flood the log
//! or trap on every event. For each: the host stays up, the offender gets the right
//! error or restart, another plugin keeps receiving events, and a call another
//! plugin is playing meanwhile loses nothing.
//!
//! Lateness of frames under this load is a timing figure, so it is measured by the
//! benchmarks, not asserted here; the tests assert that no packet is lost or skipped.

use serde_json::json;
use wasmcalls::runtime::{ApiCall, PluginError};

use crate::support::*;

const CHAT: i64 = -1001185324811;

/// A host with a jukebox playing `seconds` of audio in CHAT, a bystander testbot and
/// an offender testbot with `settings`/`limits`.
async fn arena(
    offender_settings: &str,
    offender_limits: &str,
) -> (Host, std::sync::Arc<wasmcalls::telegram::loopback::HeardCall>) {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    // The offender's own folder, with a symlink that leads out of it.
    let own = dir.path().join("offender-files");
    std::fs::create_dir(&own).unwrap();
    write_raw(&own, "mine.raw", &tones(&[(440.0, 0.3)], 0.2, RATE, 2));
    std::os::unix::fs::symlink(dir.path().join("long.raw"), own.join("escape.raw")).unwrap();
    let setup = Setup::new()
        .chat(CHAT)
        .plugin(
            Bot::jukebox()
                .settings(&format!("chat = {CHAT}, bitrate = 48000, playlist = [\"long.raw\"]"))
                .grants(&format!("chats = [{CHAT}], files = [\".\"]")),
        )
        .plugin(Bot::testbot("bystander"))
        .plugin(
            Bot::testbot("offender")
                .settings(offender_settings)
                .limits(offender_limits)
                .grants("chats = [-42], files = [\"offender-files\"]"),
        );
    let host = Host::start_in(dir, &setup).await;
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(CHAT)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 10)).await.unwrap();
    (host, heard)
}

async fn offend(host: &Host, cmd: serde_json::Value) -> Result<wasmcalls::runtime::ApiReply, PluginError> {
    host.app.plugins.custom_api("offender", ApiCall { path: "/api/offender".into(), body: cmd.to_string() }).await
}

/// The bystander still answers, the call still plays and has lost nothing.
async fn others_unharmed(host: &Host, heard: &wasmcalls::telegram::loopback::HeardCall) {
    assert_eq!(host.api("bystander", json!({ "cmd": "echo", "alive": true })).await["alive"], true);
    let before = heard.stats().packets;
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= before + 10))
        .await
        .expect("the call keeps playing");
    assert_eq!(heard.stats().lost, 0, "no packet lost while the offender misbehaved");
    assert_eq!(host.app.manager.joined_chats(), vec![CHAT]);
    let jukebox = host.app.plugins.status().into_iter().find(|p| p.name == "jukebox").unwrap();
    assert_eq!(jukebox.restarts, 0);
}

fn trap_reason(r: Result<wasmcalls::runtime::ApiReply, PluginError>) -> String {
    match r {
        Err(PluginError::Trap { name, reason, .. }) => {
            assert_eq!(name, "offender");
            reason
        }
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_is_interrupted_at_its_cpu_budget() {
    let (host, heard) = arena("", "cpu_ms_per_event = 100").await;
    let started = std::time::Instant::now();
    let reason = trap_reason(offend(&host, json!({ "cmd": "loop" })).await);
    assert!(reason.contains("CPU budget of 100 ms"), "{reason}");
    assert!(started.elapsed() < PATIENCE, "interrupted, not left to run");
    others_unharmed(&host, &heard).await;
    // The offender is back on a fresh instance.
    assert_eq!(offend(&host, json!({ "cmd": "echo", "n": 1 })).await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let (host, heard) = arena("", "memory_mb = 16").await;
    let reason = trap_reason(offend(&host, json!({ "cmd": "alloc" })).await);
    assert!(reason.contains("memory cap of 16 MiB"), "{reason}");
    others_unharmed(&host, &heard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_recursion_traps_without_hurting_the_host() {
    let (host, heard) = arena("", "").await;
    let reason = trap_reason(offend(&host, json!({ "cmd": "recurse" })).await);
    assert!(reason.contains("stack"), "{reason}");
    assert!(!reason.is_empty());
    others_unharmed(&host, &heard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_capped() {
    // CPU to spare, so the log cap (not the CPU budget) is what stops the flood.
    let (host, heard) = arena("", "log_lines_per_s = 20, cpu_ms_per_event = 5000").await;
    let reply = offend(&host, json!({ "cmd": "flood", "lines": 3000 })).await.unwrap();
    assert_eq!(reply.status, 200);
    let offender = host.app.plugins.status().into_iter().find(|p| p.name == "offender").unwrap();
    // A 4 s burst (80 lines) and the trickle after it get through; the rest is dropped.
    assert!(offender.logs_dropped >= 2800, "only a burst gets through: {} dropped", offender.logs_dropped);
    others_unharmed(&host, &heard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_traps_on_every_event_is_disabled_after_a_crash_loop() {
    let (host, heard) = arena("trap_always = true", "max_traps = 3").await;
    let mut last = None;
    for _ in 0..6 {
        last = Some(offend(&host, json!({ "cmd": "echo" })).await);
    }
    assert!(matches!(last, Some(Err(PluginError::Disabled { .. }))), "{last:?}");
    let offender = host.app.plugins.status().into_iter().find(|p| p.name == "offender").unwrap();
    assert!(offender.disabled);
    assert!(offender.restarts >= 3, "{offender:?}");
    others_unharmed(&host, &heard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_and_files_outside_the_grants_are_refused() {
    let (host, heard) = arena("", "").await;
    // Commands on a chat it was not granted: permission denied, naming the chat.
    for cmd in ["pause", "resume", "leave"] {
        let r = host.api("offender", json!({ "cmd": cmd, "chat": CHAT })).await;
        let msg = r["err"]["permission-denied"].as_str().unwrap_or_else(|| panic!("{cmd}: {r}"));
        assert!(msg.contains(&CHAT.to_string()), "{msg}");
    }
    let r = host.api("offender", json!({ "cmd": "volume", "chat": CHAT, "volume": 0 })).await;
    assert!(r["err"]["permission-denied"].is_string(), "{r}");
    // Its calls list shows only its own chats.
    assert_eq!(host.api("offender", json!({ "cmd": "calls" })).await, json!([]));
    // Files: `..`, absolute paths, the host's secrets and a symlink out are refused.
    for path in ["../long.raw", "offender-files/../long.raw", "long.raw", "/etc/passwd", "offender-files/escape.raw"] {
        let r = host.api("offender", json!({ "cmd": "join", "chat": -42, "file": path })).await;
        assert!(r["err"]["permission-denied"].is_string(), "{path}: {r}");
    }
    // Its own folder works (the chat -42 has a call in the loopback's open world? no:
    // only CHAT is listed, so the join gets as far as Telegram and no further).
    let r = host.api("offender", json!({ "cmd": "join", "chat": -42, "file": "offender-files/mine.raw" })).await;
    assert_eq!(r, json!({ "err": { "no-active-group-call": -42 } }), "the file passed the grant check");
    others_unharmed(&host, &heard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_sees_only_its_granted_folder_through_wasi() {
    let (host, _heard) = arena("", "").await;
    let read = |path: &str| host.api("offender", json!({ "cmd": "read", "path": path }));
    let own = read("offender-files/mine.raw").await;
    assert!(own["ok"].as_u64().unwrap() > 0, "it may read its own folder: {own}");
    for path in ["/etc/passwd", "../long.raw", "long.raw", "offender-files/escape.raw", "/"] {
        let r = read(path).await;
        assert!(r["err"].is_string(), "{path} was readable: {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_other_chats_are_never_delivered() {
    let (host, _heard) = arena("", "").await;
    let mut events = host.app.events();
    host.loopback().kick(CHAT);
    host.event(
        &mut events,
        |e| matches!(e, wasmcalls::calls::HostEvent::RawUpdate { json: j, .. } if j.contains("updateChannel")),
    )
    .await;
    let seen = host.api("offender", json!({ "cmd": "events" })).await;
    assert_eq!(seen, json!([{ "on-start": wasmcalls::telegram::loopback::DEFAULT_USER_ID }]), "nothing about {CHAT}");
    // The bystander has no grants at all, so it hears nothing either.
    let seen = host.api("bystander", json!({ "cmd": "events" })).await;
    assert_eq!(seen.as_array().unwrap().len(), 1);
}
