//! The v0.2 contract on the loopback: chat in and out, button presses, participants,
//! join options, and the grants that bound them — driven through the probe plugin,
//! with the loopback's simulated people on the other side.

use serde_json::{Value, json};
use wasmcalls::calls::HostEvent;
use wasmcalls::telegram::Telegram;
use wasmcalls::telegram::loopback::{DEFAULT_BOT_ID, DEFAULT_USER_ID, File, Upload};

use crate::support::*;

const CHAT: i64 = -1_001_185_324_811;
const OTHER: i64 = -1_002_000_000_002;
const QUIET: i64 = -1_003_000_000_003;
const ALICE: i64 = 424_242;
const BOB: i64 = 515_151;

/// Loopback chats: CHAT (Alice administers it) and OTHER with voice chats, QUIET without.
fn chats() -> Setup {
    Setup::new().chat(CHAT).chat(OTHER).quiet_chat(QUIET).admin(CHAT, ALICE)
}

/// A probe granted every chat and file, chatting where `messages` says.
fn probe(name: &str, messages: &str) -> Bot {
    Bot::probe(name).grants(&format!("chats = \"all\", files = [\".\"], messages = {messages}"))
}

async fn events_of(host: &Host, plugin: &str) -> Vec<Value> {
    host.api(plugin, json!({ "cmd": "events" })).await.as_array().cloned().unwrap_or_default()
}

fn messages_in(events: &[Value]) -> Vec<&Value> {
    events.iter().filter_map(|e| e.get("on-message")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reaches_each_plugin_granted_the_chat_once() {
    let setup =
        chats().plugin(probe("a", "true")).plugin(probe("b", "false")).plugin(probe("c", &format!("[{OTHER}]")));
    let host = Host::start(&setup).await;
    let mut events = host.app.events();
    let start = events_of(&host, "a").await;
    assert_eq!(start[0], json!({ "on-start": { "user": DEFAULT_USER_ID, "bot": DEFAULT_BOT_ID } }));

    // Both the account and the bot receive a command (the bot in privacy mode sees
    // only commands): the plugin gets it once.
    let id = host.loopback().say(CHAT, ALICE, "/play@wasmcalls_bot  song.mp3 ", None).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == id)).await;
    host.loopback().say(CHAT, ALICE, "just chatting", None).unwrap();
    host.loopback().say(CHAT, ALICE, "/skip@another_bot", None).unwrap();
    let last = host.loopback().say(OTHER, BOB, "/queue", None).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == last && m.chat == OTHER)).await;

    let a = events_of(&host, "a").await;
    let got = messages_in(&a);
    assert_eq!(got.len(), 4, "each message once: {got:?}");
    assert_eq!(got[0]["command"], json!({ "name": "play", "args": "song.mp3" }));
    assert_eq!((got[0]["sender"].as_i64(), got[0]["chat"].as_i64()), (Some(ALICE), Some(CHAT)));
    assert_eq!(got[1]["command"], Value::Null, "not a command");
    assert_eq!(got[2]["command"], Value::Null, "a command for another bot is not ours");
    let b = events_of(&host, "b").await;
    assert!(messages_in(&b).is_empty(), "b may not chat: it hears nothing: {b:?}");
    let c = events_of(&host, "c").await;
    let got = messages_in(&c);
    assert_eq!(got.len(), 1, "c chats only in OTHER: {got:?}");
    assert_eq!(got[0]["command"]["name"], "queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_sent_edited_and_deleted_as_the_bot_with_buttons() {
    let host = Host::start(&chats().plugin(probe("p", "true"))).await;
    let buttons = json!([[{ "text": "⏸", "data": "pause" }, { "text": "site", "url": "https://example.com" }]]);
    let r = host
        .api("p", json!({ "cmd": "send", "chat": CHAT, "text": "**Now playing** x", "format": "markdown", "buttons": buttons }))
        .await;
    let id = r["ok"].as_i64().unwrap_or_else(|| panic!("{r}")) as i32;
    let t = host.loopback().transcript(CHAT);
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].id, t[0].from, t[0].text.as_str()), (id, DEFAULT_BOT_ID, "Now playing x"), "markdown parsed");
    assert_eq!(t[0].buttons[0][0].data.as_deref(), Some("pause"));
    assert_eq!(t[0].buttons[0][1].url.as_deref(), Some("https://example.com"));

    let r = host
        .api("p", json!({ "cmd": "edit", "chat": CHAT, "message": id, "text": "<i>Paused</i>", "format": "html" }))
        .await;
    assert_eq!(r, json!({ "ok": null }));
    let t = host.loopback().transcript(CHAT);
    assert!(t[0].edited && t[0].text == "Paused" && t[0].buttons.is_empty(), "{:?}", t[0]);
    // Telegram refuses an edit that changes nothing, and says so.
    let r = host
        .api("p", json!({ "cmd": "edit", "chat": CHAT, "message": id, "text": "<i>Paused</i>", "format": "html" }))
        .await;
    assert_eq!(r["err"]["telegram"], json!({ "code": 400, "name": "MESSAGE_NOT_MODIFIED" }));

    let reply =
        host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "a reply", "reply_to": id, "silent": true })).await;
    let reply = reply["ok"].as_i64().unwrap() as i32;
    assert_eq!(host.loopback().transcript(CHAT)[1].reply_to, Some(id));
    assert_eq!(host.api("p", json!({ "cmd": "delete", "chat": CHAT, "message": reply })).await, json!({ "ok": null }));
    assert!(host.loopback().transcript(CHAT)[1].deleted);
    let r = host.api("p", json!({ "cmd": "delete", "chat": CHAT, "message": reply })).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("cannot be found"), "{r}");

    for (bad, needle) in [
        (json!({ "cmd": "send", "chat": CHAT, "text": "  " }), "needs some text"),
        (
            json!({ "cmd": "send", "chat": CHAT, "text": "x", "buttons": [[{ "text": "b", "data": "d".repeat(65) }]] }),
            "64",
        ),
        (json!({ "cmd": "send", "chat": CHAT, "text": "x", "buttons": [[{ "text": "b", "url": "ftp://x" }]] }), "URL"),
    ] {
        let r = host.api("p", bad).await;
        assert!(r["err"]["invalid-argument"].as_str().unwrap().contains(needle), "{r}");
    }

    let status = |user: i64| host.api("p", json!({ "cmd": "member", "chat": CHAT, "user": user }));
    assert_eq!(status(ALICE).await, json!({ "ok": "administrator" }));
    assert_eq!(status(DEFAULT_USER_ID).await, json!({ "ok": "creator" }));
    assert_eq!(status(BOB).await, json!({ "ok": "left" }), "never seen in the chat");
    host.loopback().say(CHAT, BOB, "hi", None).unwrap();
    assert_eq!(status(BOB).await, json!({ "ok": "member" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_button_press_reaches_the_plugin_and_its_answer_shows() {
    let host = Host::start(&chats().plugin(probe("p", "true")).plugin(probe("q", &format!("[{OTHER}]")))).await;
    let mut events = host.app.events();
    let buttons = json!([[{ "text": "⏭", "data": "skip" }]]);
    let r = host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "now playing", "buttons": buttons })).await;
    let id = r["ok"].as_i64().unwrap() as i32;

    assert!(host.loopback().press(CHAT, id, BOB, "nope").unwrap_err().contains("no button"));
    let query = host.loopback().press(CHAT, id, BOB, "skip").unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Callback(q) if q.id == query)).await;
    let p = events_of(&host, "p").await;
    let pressed: Vec<_> = p.iter().filter_map(|e| e.get("on-callback-query")).collect();
    assert_eq!(pressed, vec![&json!({ "id": query, "chat": CHAT, "message": id, "sender": BOB, "data": "skip" })]);

    // A plugin the query was not delivered to may not answer it.
    let r = host.api("q", json!({ "cmd": "answer", "id": query, "text": "ha" })).await;
    assert!(r["err"]["permission-denied"].as_str().is_some(), "{r}");
    let r = host.api("p", json!({ "cmd": "answer", "id": query, "text": "Skipped", "alert": true })).await;
    assert_eq!(r, json!({ "ok": null }));
    let press = &host.loopback().transcript(CHAT)[0].presses[0];
    assert!(press.answered && press.alert && press.answer.as_deref() == Some("Skipped"), "{press:?}");
    // Answered once: Telegram forgets the query.
    let r = host.api("p", json!({ "cmd": "answer", "id": query })).await;
    assert_eq!(r["err"]["telegram"], json!({ "code": 400, "name": "QUERY_ID_INVALID" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bot_the_account_chats_and_buttons_are_refused() {
    let host = Host::start(&chats().loopback("bot_id = 0").plugin(probe("p", "true"))).await;
    let mut events = host.app.events();
    let start = events_of(&host, "p").await;
    assert_eq!(start[0], json!({ "on-start": { "user": DEFAULT_USER_ID, "bot": null } }));
    let r = host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "hello" })).await;
    assert!(r["ok"].is_i64(), "{r}");
    assert_eq!(host.loopback().transcript(CHAT)[0].from, DEFAULT_USER_ID, "sent as the account");
    let r = host
        .api("p", json!({ "cmd": "send", "chat": CHAT, "text": "x", "buttons": [[{ "text": "b", "data": "d" }]] }))
        .await;
    assert!(r["err"]["no-client"].as_str().unwrap().contains("telegram.bot_token"), "{r}");
    // The account sees every message, commands or not.
    let id = host.loopback().say(CHAT, ALICE, "/play", None).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == id)).await;
    assert_eq!(messages_in(&events_of(&host, "p").await).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatting_needs_the_messages_grant_for_that_chat() {
    let host = Host::start(&chats().plugin(probe("p", &format!("[{OTHER}]")))).await;
    for cmd in [
        json!({ "cmd": "send", "chat": CHAT, "text": "hi" }),
        json!({ "cmd": "edit", "chat": CHAT, "message": 1, "text": "hi" }),
        json!({ "cmd": "delete", "chat": CHAT, "message": 1 }),
        json!({ "cmd": "member", "chat": CHAT, "user": ALICE }),
        json!({ "cmd": "join", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": 1 } } }),
    ] {
        let r = host.api("p", cmd.clone()).await;
        assert!(r["err"]["permission-denied"].as_str().unwrap().contains("grants.messages"), "{cmd}: {r}");
    }
    assert!(host.api("p", json!({ "cmd": "send", "chat": OTHER, "text": "hi" })).await["ok"].is_i64());
    assert!(host.loopback().transcript(CHAT).is_empty(), "nothing reached the chat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_join_mute_and_leave_and_are_listed_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let host = Host::start_in(dir, &chats().plugin(probe("p", "false"))).await;
    let mut events = host.app.events();
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    let lb = host.loopback();
    lb.person_joins(CHAT, ALICE, false).unwrap();
    lb.person_joins(CHAT, BOB, true).unwrap();
    lb.person_mutes(CHAT, ALICE, true).unwrap();
    lb.person_mutes(CHAT, BOB, false).unwrap();
    lb.person_leaves(CHAT, ALICE).unwrap();
    assert!(lb.person_leaves(CHAT, ALICE).is_err(), "she already left");
    host.event(&mut events, |e| {
        matches!(e, HostEvent::Participants { changes, .. }
            if changes.contains(&wasmcalls::telegram::ParticipantChange::Left(ALICE)))
    })
    .await;
    let seen: Vec<Value> =
        events_of(&host, "p").await.into_iter().filter_map(|e| e.get("on-participants").cloned()).collect();
    let changes: Vec<&Value> = seen.iter().flat_map(|s| s["changes"].as_array().unwrap()).collect();
    assert_eq!(
        changes,
        vec![
            &json!({ "joined": { "peer": DEFAULT_USER_ID, "muted": false, "is_self": true } }),
            &json!({ "joined": { "peer": ALICE, "muted": false, "is_self": false } }),
            &json!({ "joined": { "peer": BOB, "muted": true, "is_self": false } }),
            &json!({ "muted": ALICE }),
            &json!({ "unmuted": BOB }),
            &json!({ "left": ALICE }),
        ]
    );

    let page = host.api("p", json!({ "cmd": "participants", "chat": CHAT, "limit": 1 })).await;
    assert_eq!(page["ok"]["total"], 2, "{page}");
    assert_eq!(page["ok"]["participants"].as_array().unwrap().len(), 1);
    let next = page["ok"]["next_offset"].as_str().unwrap().to_owned();
    let page = host.api("p", json!({ "cmd": "participants", "chat": CHAT, "limit": 1, "offset": next })).await;
    assert_eq!(page["ok"]["participants"][0]["peer"], BOB);
    assert_eq!(page["ok"]["next_offset"], Value::Null, "the last page");
    let r = host.api("p", json!({ "cmd": "participants", "chat": QUIET })).await;
    assert_eq!(r, json!({ "err": { "no-active-group-call": QUIET } }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_shows_on_our_participant_and_the_stream_keeps_its_place() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let host = Host::start_in(dir, &chats().plugin(probe("p", "false"))).await;
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    let heard = host.loopback().participant(CHAT).await;
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 10)).await.unwrap();

    assert_eq!(host.api("p", json!({ "cmd": "mute", "chat": CHAT })).await, json!({ "ok": null }));
    let status = host.api("p", json!({ "cmd": "status", "chat": CHAT })).await;
    assert_eq!((status["ok"]["muted"].as_bool(), status["ok"]["state"].as_str()), (Some(true), Some("paused")));
    let listed = host.loopback().participants(CHAT, None, 10).await.unwrap();
    assert!(listed.participants.iter().any(|p| p.is_self && p.muted), "{listed:?}");
    let at = status["ok"]["position_ms"].as_u64().unwrap();

    assert_eq!(host.api("p", json!({ "cmd": "unmute", "chat": CHAT })).await, json!({ "ok": null }));
    let status = host.api("p", json!({ "cmd": "status", "chat": CHAT })).await;
    assert_eq!((status["ok"]["muted"].as_bool(), status["ok"]["state"].as_str()), (Some(false), Some("playing")));
    assert!(status["ok"]["position_ms"].as_u64().unwrap() >= at, "the place was kept");
    let sent = heard.stats().packets;
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= sent + 10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_options_start_a_voice_chat_join_muted_and_speak_as_a_channel() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let host = Host::start_in(dir, &chats().plugin(probe("p", "false"))).await;
    let raw = json!({ "raw": { "path": "long.raw", "rate": 48000, "channels": 2 } });

    let r = host.api("p", json!({ "cmd": "join", "chat": QUIET, "source": raw })).await;
    assert_eq!(r, json!({ "err": { "no-active-group-call": QUIET } }));
    let r = host
        .api(
            "p",
            json!({ "cmd": "join", "chat": QUIET, "source": raw, "options": { "create": true, "start_muted": true } }),
        )
        .await;
    assert_eq!(r, json!({ "ok": null }), "the voice chat was started and joined");
    let status = host.api("p", json!({ "cmd": "status", "chat": QUIET })).await;
    assert_eq!((status["ok"]["muted"].as_bool(), status["ok"]["state"].as_str()), (Some(true), Some("paused")));

    let channel = -1_009_000_000_009i64;
    let r =
        host.api("p", json!({ "cmd": "join", "chat": CHAT, "source": raw, "options": { "join_as": channel } })).await;
    assert_eq!(r, json!({ "ok": null }));
    let listed = host.loopback().participants(CHAT, None, 10).await.unwrap();
    assert_eq!(listed.participants[0].peer, channel, "speaking as the channel");
    let r = host.api("p", json!({ "cmd": "join", "chat": OTHER, "source": raw, "options": { "join_as": 77 } })).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("not a channel"), "{r}");

    // Errors of their own, not `other`.
    let r = host.api("p", json!({ "cmd": "join", "chat": CHAT, "source": raw })).await;
    assert_eq!(r, json!({ "err": { "already-in-call": CHAT } }));
    assert_eq!(
        host.api("p", json!({ "cmd": "pause", "chat": OTHER })).await,
        json!({ "err": { "not-in-call": OTHER } })
    );

    // Leaving with `close` ends the voice chat for everyone.
    assert_eq!(host.api("p", json!({ "cmd": "leave", "chat": QUIET, "close": true })).await, json!({ "ok": null }));
    assert!(!host.loopback().chats().iter().any(|c| c.id == QUIET && c.active_call));
}

/// A short MP3 made with sox and lame.
fn mp3(dir: &std::path::Path, seconds: f64) -> Vec<u8> {
    let raw = write_raw(dir, "song.raw", &tones(&[(523.0, 0.3)], seconds, 44_100, 2));
    let wav = dir.join("song.wav");
    let ok = std::process::Command::new("sox")
        .args(["-t", "raw", "-r", "44100", "-c", "2", "-b", "16", "-e", "signed"])
        .arg(&raw)
        .arg(&wav)
        .status()
        .unwrap()
        .success();
    assert!(ok, "sox makes the fixture (bash .ci/setup installs it)");
    let mp3 = dir.join("song.mp3");
    assert!(std::process::Command::new("lame").args(["--quiet"]).arg(&wav).arg(&mp3).status().unwrap().success());
    std::fs::read(mp3).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audio_a_message_replies_to_is_downloaded_and_played() {
    let dir = tempfile::tempdir().unwrap();
    let song = mp3(dir.path(), 2.0);
    let size = song.len();
    let bot = probe("p", "true").limits("download_mb = 1");
    let host = Host::start_in(dir, &chats().plugin(bot)).await;
    let mut events = host.app.events();
    let lb = host.loopback();
    let file = File { name: "song.mp3".into(), mime: "audio/mpeg".into(), kind: Upload::Audio, bytes: song.into() };
    let upload = lb.upload(CHAT, ALICE, file, "").unwrap();
    let cmd = lb.say(CHAT, ALICE, "/play", Some(upload)).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == cmd)).await;
    let got = events_of(&host, "p").await;
    let play = messages_in(&got).into_iter().find(|m| m["id"] == cmd).unwrap().clone();
    assert_eq!(
        play["reply_to"],
        json!({ "message": upload, "media": { "kind": "audio", "file_name": "song.mp3", "size": size, "title": "song" } })
    );

    let r = host
        .api("p", json!({ "cmd": "join", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": upload } } }))
        .await;
    assert_eq!(r, json!({ "ok": null }));
    let status = host.api("p", json!({ "cmd": "joined" })).await;
    assert_eq!(status["ok"][0]["source"], format!("message {upload} in chat {CHAT}"), "named as the plugin named it");
    host.event(&mut events, |e| *e == HostEvent::StreamEnd(CHAT)).await;
    let heard = lb.participant(CHAT).await;
    assert!(heard.stats().timeline_samples >= 90_000, "about two seconds heard: {:?}", heard.stats());

    // A text message has nothing to play; a large file is refused by the plugin's cap.
    let r = host
        .api("p", json!({ "cmd": "play", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": cmd } } }))
        .await;
    assert!(r["err"]["source-error"].as_str().unwrap().contains("no audio"), "{r}");
    let big = File {
        name: "big.mp3".into(),
        mime: "audio/mpeg".into(),
        kind: Upload::Audio,
        bytes: vec![0u8; 2 << 20].into(),
    };
    let big = lb.upload(CHAT, ALICE, big, "").unwrap();
    let r = host
        .api("p", json!({ "cmd": "play", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": big } } }))
        .await;
    assert!(r["err"]["source-error"].as_str().unwrap().contains("limits.download_mb"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v01_plugin_and_a_v02_plugin_run_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "a.raw", &tones(&[(523.0, 0.3)], 0.5, 24_000, 2));
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let jukebox = Bot::jukebox()
        .settings(&format!("chat = {OTHER}, bitrate = 24000, playlist = [\"a.raw\"]"))
        .grants(&format!("chats = [{OTHER}], files = [\".\"]"));
    let host = Host::start_in(dir, &chats().plugin(jukebox).plugin(probe("p", "true"))).await;
    let mut events = host.app.events();
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "file": "long.raw" } });
    assert_eq!(host.api("p", join).await, json!({ "ok": null }));
    // The v0.1 jukebox plays its playlist to the end in its own chat meanwhile.
    host.event(&mut events, |e| *e == HostEvent::StreamEnd(OTHER)).await;
    let status = host.app.plugins.status();
    assert!(status.iter().all(|p| p.restarts == 0), "{status:?}");
    assert!(host.app.manager.joined_chats().contains(&CHAT), "the v0.2 plugin's call plays on");
}
