//! The MTProto side's chat and call management at the TL level: a user account and a
//! bot account, each behind its own fake Telegram ([`crate::fake`]), read back from the
//! bytes of every request — driven by the v0.2 probe plugin.

use std::sync::Arc;
use std::time::Duration;

use grammers_tl_types as tl;
use serde_json::{Value, json};
use wasmcalls::calls::HostEvent;
use wasmcalls::telegram::loopback::updates::{self as samples, Said, Upload};
use wasmcalls::telegram::messages::Bot as BotAccount;
use wasmcalls::telegram::mtproto::Mtproto;
use wasmcalls::telegram::tl::peer_of;

use crate::fake::*;
use crate::support::*;

const BOT: i64 = 6_000_001;

struct Sides {
    host: Host,
    tg: Mtproto<FakeTelegram>,
    user: FakeTelegram,
    bot: FakeTelegram,
}

/// A host on MTProto with a bot, and a probe granted every chat, file and message.
async fn sides() -> Sides {
    let (user, bot) = (FakeTelegram::new(), FakeTelegram::new());
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let account = BotAccount { id: BOT, username: "demo_bot".into() };
    let tg = Mtproto::with_bot(user.clone(), ME, bot.clone(), account, options(Duration::from_secs(3600)));
    let probe = Bot::probe("p").grants("chats = \"all\", files = [\".\"], messages = true");
    let host = Host::start_on(dir, &Setup::new().plugin(probe), Arc::new(tg.clone())).await;
    Sides { host, tg, user, bot }
}

/// `from` says `text` in CHAT (message `id`), as Telegram sends it.
fn said(id: i32, from: i64, text: &str) -> tl::enums::Update {
    samples::new_message(peer_of(CHAT), Said { id, from, text: text.into(), date: 1, ..Default::default() })
}

async fn events_of(host: &Host) -> Vec<Value> {
    host.api("p", json!({ "cmd": "events" })).await.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_both_accounts_receive_reaches_the_plugin_once() {
    let s = sides().await;
    let mut events = s.host.app.events();
    assert_eq!(events_of(&s.host).await[0], json!({ "on-start": { "user": ME, "bot": BOT } }));
    let (updates, chats) =
        crate::answers::through_the_wire(&crate::answers::updates(vec![said(7, ADMIN, "/play@demo_bot x")], vec![]));
    s.tg.feed(&updates, &chats).await;
    s.tg.feed_bot(&updates, &chats).await;
    let (updates, chats) =
        crate::answers::through_the_wire(&crate::answers::updates(vec![said(8, ADMIN, "/skip")], vec![]));
    s.tg.feed_bot(&updates, &chats).await;
    s.host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == 8)).await;
    let got: Vec<Value> = events_of(&s.host).await.into_iter().filter_map(|e| e.get("on-message").cloned()).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["command"], json!({ "name": "play", "args": "x" }));
    // Our own messages (the bot's, the account's) are not news.
    let (updates, chats) =
        crate::answers::through_the_wire(&crate::answers::updates(vec![said(9, BOT, "/play")], vec![]));
    s.tg.feed(&updates, &chats).await;
    s.host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json, .. } if json.contains("\"id\":9"))).await;
    assert_eq!(events_of(&s.host).await.iter().filter(|e| e.get("on-message").is_some()).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_sends_with_buttons_and_flood_waits_become_rate_limits() {
    let s = sides().await;
    let buttons = json!([[{ "text": "⏸", "data": "pause" }]]);
    let r = s.host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "__now__", "format": "markdown", "buttons": buttons, "reply_to": 7 })).await;
    assert_eq!(r, json!({ "ok": 1 }), "the id from the answer's updateMessageID");
    let sent = s.bot.seen(|f| f.sent.clone());
    assert!(s.user.seen(|f| f.sent.is_empty()), "the bot sends, not the account");
    let req = &sent[0];
    assert_eq!(req.peer, tl::types::InputPeerChannel { channel_id: CHANNEL, access_hash: CHANNEL_HASH }.into());
    assert_eq!((req.message.as_str(), req.entities.as_ref().map(Vec::len)), ("now", Some(1)));
    assert!(matches!(&req.reply_markup, Some(tl::enums::ReplyMarkup::ReplyInlineMarkup(_))));
    assert!(matches!(&req.reply_to, Some(tl::enums::InputReplyTo::Message(m)) if m.reply_to_msg_id == 7));

    let r = s.host.api("p", json!({ "cmd": "edit", "chat": CHAT, "message": 1, "text": "paused" })).await;
    assert_eq!(r, json!({ "ok": null }));
    assert_eq!(s.bot.seen(|f| f.edits[0].message.clone()), Some("paused".into()));

    // Telegram says wait 30 s: the plugin is told so, and the next send to that chat
    // is refused at once without asking Telegram again.
    s.bot.seen(|f| f.refuse_send = Some((420, "FLOOD_WAIT_30")));
    let r = s.host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "x" })).await;
    assert_eq!(r, json!({ "err": { "rate-limited": 30 } }));
    let asked = s.bot.seen(|f| f.sent.len());
    let r = s.host.api("p", json!({ "cmd": "send", "chat": CHAT, "text": "y" })).await;
    assert!(r["err"]["rate-limited"].as_u64().is_some_and(|s| s > 25), "{r}");
    assert_eq!(s.bot.seen(|f| f.sent.len()), asked, "not sent: the host kept the wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn button_presses_members_and_a_messages_audio_go_through_the_bot() {
    let s = sides().await;
    let mut events = s.host.app.events();
    // A press arrives on the bot's connection.
    let press = samples::callback_query(987_654_321, ADMIN, peer_of(CHAT), 3, "pause");
    let (updates, chats) = crate::answers::through_the_wire(&crate::answers::updates(vec![press], vec![]));
    s.tg.feed_bot(&updates, &chats).await;
    s.host.event(&mut events, |e| matches!(e, HostEvent::Callback(q) if q.id == "987654321")).await;
    let r = s.host.api("p", json!({ "cmd": "answer", "id": "987654321", "text": "Paused" })).await;
    assert_eq!(r, json!({ "ok": null }));
    let answer = s.bot.seen(|f| f.answers[0].clone());
    assert_eq!((answer.query_id, answer.message.as_deref(), answer.alert), (987_654_321, Some("Paused"), false));

    // A member's standing: the session has no access hash for them, so they are named
    // through the message the bot saw from them.
    let (updates, chats) =
        crate::answers::through_the_wire(&crate::answers::updates(vec![said(12, ADMIN, "/stop")], vec![]));
    s.tg.feed_bot(&updates, &chats).await;
    s.host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == 12)).await;
    assert_eq!(
        s.host.api("p", json!({ "cmd": "member", "chat": CHAT, "user": ADMIN })).await,
        json!({ "ok": "administrator" })
    );
    let asked = s.bot.seen(|f| f.members[0].clone());
    assert_eq!(
        asked.participant,
        tl::types::InputPeerUserFromMessage {
            peer: tl::types::InputPeerChannel { channel_id: CHANNEL, access_hash: CHANNEL_HASH }.into(),
            msg_id: 12,
            user_id: ADMIN
        }
        .into()
    );
    let r = s.host.api("p", json!({ "cmd": "member", "chat": CHAT, "user": 31337 })).await;
    assert!(r["err"].is_object(), "an unknown user cannot be named: {r}");

    // A message's audio: fetched, then downloaded with upload.getFile in legal chunks,
    // then played into the call.
    let dir = tempfile::tempdir().unwrap();
    let song = {
        let raw = write_raw(dir.path(), "s.raw", &tones(&[(523.0, 0.3)], 15.0, 44_100, 2));
        let wav = dir.path().join("s.wav");
        let mp3 = dir.path().join("s.mp3");
        assert!(
            std::process::Command::new("sox")
                .args(["-t", "raw", "-r", "44100", "-c", "2", "-b", "16", "-e", "signed"])
                .arg(&raw)
                .arg(&wav)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            std::process::Command::new("lame")
                .args(["--quiet", "-b", "320"])
                .arg(&wav)
                .arg(&mp3)
                .status()
                .unwrap()
                .success()
        );
        std::fs::read(mp3).unwrap()
    };
    assert!(song.len() > 512 * 1024, "big enough to take more than one 512 KiB chunk");
    let doc_id = 55;
    let media = samples::document(doc_id, "s.mp3", "audio/mpeg", song.len() as u64, Upload::Audio, 3);
    let message =
        samples::message(peer_of(CHAT), Said { id: 20, from: ADMIN, media: Some(media), ..Default::default() });
    let parts = song.len().div_ceil(512 * 1024);
    s.bot.seen(|f| {
        f.messages.insert(20, message);
        f.files.insert(doc_id, song.clone());
    });
    let join = json!({ "cmd": "join", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": 20 } } });
    assert_eq!(s.host.api("p", join).await, json!({ "ok": null }));
    assert_eq!(s.bot.seen(|f| f.file_parts.len()), parts, "{} bytes in 512 KiB chunks", song.len());
    let heard = s.user.loopback.participant(CHAT).await;
    tokio::time::timeout(PATIENCE, heard.wait_until(|h| h.packets >= 100)).await.expect("the song is heard");
    let r = s
        .host
        .api("p", json!({ "cmd": "play", "chat": CHAT, "source": { "message": { "chat": CHAT, "id": 21 } } }))
        .await;
    assert!(r["err"]["source-error"].as_str().unwrap().contains("cannot be found"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_options_mute_participants_and_closing_at_the_tl_level() {
    let s = sides().await;
    // No call in QUIET: `create` starts one (phone.createGroupCall), then joins it muted.
    let join = json!({ "cmd": "join", "chat": QUIET, "source": { "file": "long.raw" }, "options": { "create": true, "start_muted": true } });
    assert_eq!(s.host.api("p", join).await, json!({ "ok": null }));
    let created = s.user.seen(|f| f.created[0].clone());
    assert_eq!(
        created.peer,
        tl::types::InputPeerChannel { channel_id: QUIET_CHANNEL, access_hash: CHANNEL_HASH }.into()
    );
    let joined = s.user.seen(|f| f.joins.last().cloned().unwrap());
    assert!(joined.muted && joined.call == QUIET_CALL.input(), "{joined:?}");

    // As a channel the account owns.
    let join =
        json!({ "cmd": "join", "chat": CHAT, "source": { "file": "long.raw" }, "options": { "join_as": QUIET } });
    assert_eq!(s.host.api("p", join).await, json!({ "ok": null }));
    let joined = s.user.seen(|f| f.joins.last().cloned().unwrap());
    let channel: tl::enums::InputPeer =
        tl::types::InputPeerChannel { channel_id: QUIET_CHANNEL, access_hash: CHANNEL_HASH }.into();
    assert_eq!(joined.join_as, channel);
    assert_eq!(s.host.api("p", json!({ "cmd": "mute", "chat": CHAT })).await, json!({ "ok": null }));
    let muted = s.user.seen(|f| f.mutes[0].clone());
    assert_eq!((muted.participant, muted.muted, muted.call), (channel, Some(true), CALL.input()));

    // Participants, page by page.
    let page = s.host.api("p", json!({ "cmd": "participants", "chat": CHAT, "limit": 2 })).await;
    assert_eq!(page["ok"]["total"], 3);
    let next = page["ok"]["next_offset"].as_str().unwrap().to_owned();
    let page = s.host.api("p", json!({ "cmd": "participants", "chat": CHAT, "limit": 2, "offset": next })).await;
    assert_eq!(
        (page["ok"]["participants"][0]["peer"].as_i64(), &page["ok"]["next_offset"]),
        (Some(1003), &Value::Null)
    );

    // Leaving with `close` discards the voice chat.
    assert_eq!(s.host.api("p", json!({ "cmd": "leave", "chat": QUIET, "close": true })).await, json!({ "ok": null }));
    assert_eq!(s.user.seen(|f| f.discarded[0].call.clone()), QUIET_CALL.input());
}
