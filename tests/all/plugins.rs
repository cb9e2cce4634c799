//! The control plane end to end: real plugins (built for wasm32-wasip2 once per run)
//! driving real calls on the loopback.

use serde_json::{Value, json};
use wasmcalls::calls::HostEvent;
use wasmcalls::runtime::{CacheOptions, Loaded, PluginError, PluginHost, PluginSpec};

use crate::support::*;

const CHAT: i64 = -1001185324811;
const NO_CALL: i64 = -1002000000002;

/// The chats these tests use: two with a voice chat, one without.
fn chats() -> Setup {
    Setup::new().chat(CHAT).quiet_chat(NO_CALL).chat(-3)
}

fn testbot(name: &str) -> Bot {
    Bot::testbot(name).all()
}

fn jukebox(chat: i64, playlist: &[&str], autostart: bool) -> Bot {
    Bot::jukebox()
        .settings(&format!("chat = {chat}, bitrate = 48000, autostart = {autostart}, playlist = {playlist:?}"))
        .all()
}

fn tone_file(dir: &std::path::Path, name: &str, hz: f64, seconds: f64) -> String {
    write_raw(dir, name, &tones(&[(hz, 0.3)], seconds, RATE, 2));
    name.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jukebox_plays_its_playlist_then_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let a = tone_file(dir.path(), "a.raw", 440.0, 0.6);
    let b = tone_file(dir.path(), "b.raw", 880.0, 0.6);
    let host = Host::start_in(dir, &chats().plugin(jukebox(CHAT, &[&a, &b], true))).await;
    let mut events = host.app.events();
    // start → join → audio heard
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(CHAT)).await.unwrap();
    // → stream end → next → stream end → leave
    for _ in 0..2 {
        host.event(&mut events, |e| *e == HostEvent::StreamEnd(CHAT)).await;
    }
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.state == "left")).await.expect("the jukebox left");
    let s = heard.stats();
    assert_eq!(s.packets, 60, "both tracks heard whole: {s:?}");
    assert_eq!(s.lost, 0);
    assert!(host.app.manager.joined_chats().is_empty());
    let status = &host.app.plugins.status()[0];
    assert_eq!((status.name.as_str(), status.restarts), ("jukebox", 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicked_and_call_ended_reach_the_plugin_and_drop_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let long = tone_file(dir.path(), "long.raw", 440.0, 10.0);
    let host = Host::start_in(dir, &chats().plugin(testbot("t"))).await;
    let mut events = host.app.events();

    let r = host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": long })).await;
    assert_eq!(r, json!({ "ok": null }));
    host.loopback().kick(CHAT);
    host.event(&mut events, |e| *e == HostEvent::Kicked(CHAT)).await;
    assert!(host.app.manager.joined_chats().is_empty(), "the call is dropped");
    // The raw form of the same update follows the routed one.
    host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("updateChannel"))).await;
    let seen = host.api("t", json!({ "cmd": "events" })).await;
    assert!(seen.as_array().unwrap().contains(&json!({ "on-kicked": CHAT })), "{seen}");
    assert!(
        seen.as_array().unwrap().iter().any(|e| e["on-raw-update"]["_"] == "updateChannel"),
        "the kick also arrives as a raw update: {seen}"
    );

    // A call whose voice chat ends is dropped the same way.
    let r = host.api("t", json!({ "cmd": "join", "chat": -3, "file": long })).await;
    assert_eq!(r, json!({ "ok": null }));
    host.loopback().end_call(-3);
    host.event(&mut events, |e| *e == HostEvent::CallEnded(-3)).await;
    assert!(host.app.manager.joined_chats().is_empty());
    // A v0.1 plugin has no on-call-ended: it hears on-kicked, as it always did.
    let seen = host.api("t", json!({ "cmd": "events" })).await;
    assert!(seen.as_array().unwrap().contains(&json!({ "on-kicked": -3 })), "{seen}");
    // …and the chat has no call to join any more.
    let r = host.api("t", json!({ "cmd": "join", "chat": -3, "file": long })).await;
    assert_eq!(r, json!({ "err": { "no-active-group-call": -3 } }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invited_jukebox_joins_and_plays() {
    let dir = tempfile::tempdir().unwrap();
    let a = tone_file(dir.path(), "a.raw", 523.0, 0.4);
    let host = Host::start_in(dir, &chats().plugin(jukebox(CHAT, &[&a], false))).await;
    let mut events = host.app.events();
    let invite = host.loopback().invite(-3, 4242);
    host.event(&mut events, |e| matches!(e, HostEvent::Invite(i) if *i == invite)).await;
    let Ok(heard) = tokio::time::timeout(PATIENCE, host.loopback().participant(-3)).await else {
        panic!("the jukebox never joined the invited chat: {:?}", host.app.plugins.status());
    };
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 20)).await.expect("audio in the invited chat");
    assert!(host.loopback().calls().iter().all(|c| c.chat() == -3), "it joined the chat it was invited to only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_reports_its_error_variant_to_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let long = tone_file(dir.path(), "long.raw", 440.0, 10.0);
    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, [0u8; 3]).unwrap();
    let host = Host::start_in(dir, &chats().plugin(testbot("t"))).await;
    let api = |body: Value| host.api("t", body);

    // No active group call / not in the call: PyTgCalls' JOIN_ERROR and NOT_IN_GROUP.
    assert_eq!(
        api(json!({ "cmd": "join", "chat": NO_CALL, "file": long })).await,
        json!({ "err": { "no-active-group-call": NO_CALL } })
    );
    for cmd in ["leave", "pause", "resume"] {
        assert_eq!(api(json!({ "cmd": cmd, "chat": CHAT })).await, json!({ "err": { "not-in-call": CHAT } }), "{cmd}");
    }
    assert_eq!(
        api(json!({ "cmd": "volume", "chat": CHAT, "volume": 50 })).await,
        json!({ "err": { "not-in-call": CHAT } })
    );
    assert_eq!(
        api(json!({ "cmd": "change", "chat": CHAT, "file": long })).await,
        json!({ "err": { "not-in-call": CHAT } })
    );

    // Bad files and arguments, before anything connects.
    let r = api(json!({ "cmd": "join", "chat": CHAT, "file": "missing.raw" })).await;
    assert!(r["err"]["file-error"].as_str().unwrap().contains("missing.raw"), "{r}");
    let r = api(json!({ "cmd": "join", "chat": CHAT, "file": "odd.raw" })).await;
    assert!(r["err"]["file-error"].as_str().unwrap().contains("not a whole number"), "{r}");
    let r = api(json!({ "cmd": "join", "chat": CHAT, "file": long, "bitrate": 7 })).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("7 Hz"), "{r}");
    assert!(host.loopback().calls().is_empty(), "nothing connected for a bad request");

    // A joined call: every command succeeds, and the illegal ones say why.
    assert_eq!(api(json!({ "cmd": "join", "chat": CHAT, "file": long })).await, json!({ "ok": null }));
    let r = api(json!({ "cmd": "join", "chat": CHAT, "file": long })).await;
    assert!(r["err"]["other"].as_str().unwrap().contains("already in"), "{r}");
    let r = api(json!({ "cmd": "volume", "chat": CHAT, "volume": 300 })).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("300"), "{r}");
    assert_eq!(api(json!({ "cmd": "volume", "chat": CHAT, "volume": 150 })).await, json!({ "ok": null }));
    assert_eq!(api(json!({ "cmd": "active-calls" })).await, json!([CHAT]));
    assert_eq!(api(json!({ "cmd": "pause", "chat": CHAT })).await, json!({ "ok": null }));
    assert_eq!(api(json!({ "cmd": "active-calls" })).await, json!([]), "a paused call is not active");
    let calls = api(json!({ "cmd": "calls" })).await;
    assert_eq!(calls[0]["chat"], CHAT);
    assert_eq!(calls[0]["state"], "paused");
    assert_eq!(calls[0]["volume"], 150);
    assert!(calls[0]["file"].as_str().unwrap().ends_with("long.raw"), "{calls}");
    assert_eq!(api(json!({ "cmd": "resume", "chat": CHAT })).await, json!({ "ok": null }));
    assert_eq!(api(json!({ "cmd": "change", "chat": CHAT, "file": long })).await, json!({ "ok": null }));
    assert_eq!(
        api(json!({ "cmd": "cache-id" })).await,
        json!({ "ok": wasmcalls::telegram::loopback::DEFAULT_USER_ID })
    );
    assert_eq!(api(json!({ "cmd": "port" })).await, json!(host.app.api.port()), "the port the API really listens on");
    assert_eq!(api(json!({ "cmd": "leave", "chat": CHAT })).await, json!({ "ok": null }));
    assert_eq!(api(json!({ "cmd": "calls" })).await, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_restarts_while_another_plugins_call_keeps_playing() {
    let dir = tempfile::tempdir().unwrap();
    let long = tone_file(dir.path(), "long.raw", 440.0, 6.0);
    let host = Host::start_in(dir, &chats().plugin(jukebox(CHAT, &[&long], true)).plugin(testbot("crashy"))).await;
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(CHAT)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 25)).await.unwrap();

    let call = wasmcalls::runtime::ApiCall { path: "/api".into(), body: json!({ "cmd": "trap" }).to_string() };
    let err = host.app.plugins.custom_api("crashy", call).await.unwrap_err();
    assert!(matches!(&err, PluginError::Trap { name, event: "on-custom-api", .. } if name == "crashy"), "{err:?}");
    // The next request runs on a fresh instance, which got on-start again first.
    let seen = host.api("crashy", json!({ "cmd": "events" })).await;
    assert_eq!(seen, json!([{ "on-start": wasmcalls::telegram::loopback::DEFAULT_USER_ID }]));
    let crashy = host.app.plugins.status().into_iter().find(|p| p.name == "crashy").unwrap();
    assert_eq!(crashy.restarts, 1);

    // Meanwhile the jukebox's call never missed a frame.
    let before = heard.stats().packets;
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= before + 25)).await.unwrap();
    assert_eq!(heard.stats().lost, 0);
    let joined = host.app.manager.joined_chats();
    assert_eq!(joined, vec![CHAT]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_traps_in_on_start_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let setup = chats().plugin(testbot("bad").settings("trap_on_start = true")).plugin(testbot("good"));
    let host = Host::start_in(dir, &setup).await;
    let good = host.api("good", json!({ "cmd": "events" })).await;
    assert_eq!(good, json!([{ "on-start": wasmcalls::telegram::loopback::DEFAULT_USER_ID }]));
    // `bad` traps on every start, so each event that arrives is answered with the trap.
    let call = wasmcalls::runtime::ApiCall { path: "/api".into(), body: json!({ "cmd": "echo" }).to_string() };
    assert!(host.app.plugins.custom_api("bad", call).await.is_err());
    assert!(host.app.plugins.status().iter().any(|p| p.name == "bad" && p.restarts >= 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_wrong_world_components_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let junk = write("junk.wasm", b"definitely not wasm");
    let core = write("core.wasm", &wat::parse_str("(module)").unwrap());
    let other = write("other.wasm", &wat::parse_str("(component (import \"x:y/z\" (func)))").unwrap());
    let http = write(
        "http.wasm",
        &wat::parse_str("(component (import \"wasi:http/outgoing-handler@0.2.0\" (instance)))").unwrap(),
    );
    let empty = write("empty.wasm", &wat::parse_str("(component)").unwrap());
    let threads = write("threads.wasm", &wat::parse_str("(component (core module (memory 1 1 shared)))").unwrap());
    let host = Host::start(&chats()).await;
    let load = |name: &str, wasm: std::path::PathBuf| {
        host.app.plugins.load(PluginSpec {
            name: name.into(),
            wasm,
            settings: Value::Null,
            limits: Default::default(),
            grants: Default::default(),
        })
    };

    let e = load("junk", junk).await.unwrap_err();
    assert!(matches!(e, PluginError::NotAComponent { .. }) && e.to_string().contains("magic bytes"), "{e}");
    let e = load("core", core).await.unwrap_err();
    assert!(e.to_string().contains("core WebAssembly module, not a component"), "{e}");
    // An import the host does not provide is named, with what to do about it.
    let e = load("other", other).await.unwrap_err();
    assert!(matches!(e, PluginError::UnknownImport { .. }) && e.to_string().contains("imports x:y/z"), "{e}");
    let e = load("http", http).await.unwrap_err();
    assert!(
        e.to_string().contains("wasi:http/outgoing-handler@0.2.0") && e.to_string().contains("componentize-qjs"),
        "{e}"
    );
    let e = load("empty", empty).await.unwrap_err();
    assert!(matches!(e, PluginError::WrongWorld { .. }) && e.to_string().contains("wit/v0.2"), "{e}");
    let e = load("threads", threads).await.unwrap_err();
    assert!(
        matches!(e, PluginError::NotAComponent { .. }) && e.to_string().contains("threads"),
        "a disabled proposal: {e}"
    );
    let e = load("missing", dir.path().join("nope.wasm")).await.unwrap_err();
    assert!(matches!(e, PluginError::Read { .. }) && e.to_string().contains("nope.wasm"), "{e}");
    assert!(host.app.plugins.status().is_empty(), "none of them runs");

    // A bad plugin in the config is reported and skipped; the good one runs.
    let junk = dir.path().join("junk.wasm");
    let host = Host::start(&chats().plugin(Bot::at("broken", junk.to_str().unwrap())).plugin(testbot("fine"))).await;
    assert!(host.app.loaded[0].1.is_err());
    assert!(host.app.loaded[1].1.is_ok());
    assert_eq!(host.api("fine", json!({ "cmd": "echo", "x": 1 })).await["x"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_on_disk() {
    let cache = tempfile::tempdir().unwrap();
    let host = Host::start(&Setup::new()).await;
    let spec = || PluginSpec {
        name: "t".into(),
        wasm: plugin("testbot"),
        settings: Value::Null,
        limits: Default::default(),
        grants: Default::default(),
    };
    let cached = || CacheOptions { dir: Some(cache.path().into()), ..Default::default() };
    let first = PluginHost::new(host.app.manager.clone(), cached(), Default::default()).unwrap();
    assert_eq!(first.load(spec()).await.unwrap().loaded, Loaded::Compiled);
    let second = PluginHost::new(host.app.manager.clone(), cached(), Default::default()).unwrap();
    assert_eq!(second.load(spec()).await.unwrap().loaded, Loaded::FromCache);
    // A corrupt entry is ignored, not trusted: it is recompiled.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    let third = PluginHost::new(host.app.manager.clone(), cached(), Default::default()).unwrap();
    assert_eq!(third.load(spec()).await.unwrap().loaded, Loaded::Compiled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_updates_reach_every_plugin() {
    let host = Host::start(&chats().plugin(testbot("a")).plugin(testbot("b"))).await;
    let mut events = host.app.events();
    host.loopback().raw_update(json!({ "_": "updateGroupCallParticipants", "participants": [] }));
    host.event(
        &mut events,
        |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("updateGroupCallParticipants")),
    )
    .await;
    for p in ["a", "b"] {
        let seen = host.api(p, json!({ "cmd": "events" })).await;
        assert!(
            seen.as_array().unwrap().iter().any(|e| e["on-raw-update"]["_"] == "updateGroupCallParticipants"),
            "{p}: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_while_handling_one_call_costs_that_call_only() {
    let dir = tempfile::tempdir().unwrap();
    let long = tone_file(dir.path(), "long.raw", 440.0, 20.0);
    // One pacer shard holds both calls, so the other call shares the shard that panics.
    let host = Host::start_in(dir, &chats().host("pacer_shards = 1").plugin(testbot("t"))).await;
    let mut events = host.app.events();
    for chat in [CHAT, -3] {
        assert_eq!(host.api("t", json!({ "cmd": "join", "chat": chat, "file": long })).await, json!({ "ok": null }));
    }
    let survivor = tokio::time::timeout(PATIENCE, host.loopback().participant(-3)).await.unwrap();
    tokio::time::timeout(PATIENCE, survivor.wait_until(|s| s.packets >= 10)).await.unwrap();

    host.app.manager.inject_fault(CHAT).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::ConnectionLost { chat, .. } if *chat == CHAT)).await;
    // The v0.1 plugin hears it as it always did: the reason as a raw update, then on-kicked.
    let seen = host.api("t", json!({ "cmd": "events" })).await;
    assert!(seen.as_array().unwrap().contains(&json!({ "on-kicked": CHAT })), "{seen}");
    let lost =
        seen.as_array().unwrap().iter().find_map(|e| {
            e.get("on-raw-update").filter(|r| r["_"] == "wasmcalls.connectionLost" && r["chat_id"] == CHAT)
        });
    assert!(lost.unwrap()["reason"].as_str().unwrap().contains("internal error"), "the plugin is told why: {seen}");
    assert_eq!(host.app.media.totals().call_crashes.load(std::sync::atomic::Ordering::Relaxed), 1);

    // The other call on the same shard never missed a frame.
    let before = survivor.stats().packets;
    tokio::time::timeout(PATIENCE, survivor.wait_until(|s| s.packets >= before + 25)).await.unwrap();
    assert_eq!(survivor.stats().lost, 0);
    assert_eq!(host.app.manager.joined_chats(), vec![-3]);
}
