//! The MTProto backend without a network: a fake Telegram ([`crate::fake`]) stands
//! behind the `Rpc` seam, so a plugin's join travels plugin → call manager → MTProto
//! requests → the loopback's WebRTC peer, which decodes the audio. Only the MTProto
//! wire itself (grammers' sender) is not in the loop; see the README's "Running
//! against Telegram".

use std::sync::Arc;
use std::time::Duration;

use grammers_tl_types as tl;
use serde_json::json;
use wasmcalls::calls::HostEvent;
use wasmcalls::telegram::loopback::updates as samples;
use wasmcalls::telegram::mtproto::Mtproto;
use wasmcalls::telegram::{Telegram, TelegramError};
use wasmcalls::transport::JoinParams;

use crate::answers;
use crate::fake::*;
use crate::support::*;

async fn host_on(fake: &FakeTelegram, check_every: Duration) -> (Host, Mtproto<FakeTelegram>, String) {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let tg = Mtproto::new(fake.clone(), ME, options(check_every));
    let host = Host::start_on(dir, &Setup::new().plugin(Bot::testbot("t").all()), Arc::new(tg.clone())).await;
    (host, tg, "long.raw".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_joins_over_mtproto_and_the_loopback_hears_it() {
    let fake = FakeTelegram::new();
    let (host, tg, file) = host_on(&fake, Duration::from_secs(3600)).await;
    let mut events = host.app.events();

    // get-cache-id is the session's account.
    assert_eq!(host.api("t", json!({ "cmd": "cache-id" })).await, json!({ "ok": ME }));
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": file })).await, json!({ "ok": null }));
    let heard = tokio::time::timeout(PATIENCE, fake.loopback.participant(CHAT)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 25))
        .await
        .expect("audio reaches the loopback through the MTProto join");

    // The requests, as Telegram read them.
    let (full, join) = fake.seen(|s| (s.full_channels.clone(), s.joins.clone()));
    assert_eq!(full[0].channel, tl::types::InputChannel { channel_id: CHANNEL, access_hash: CHANNEL_HASH }.into());
    let join = &join[0];
    assert_eq!(
        (join.muted, join.call.clone(), join.join_as.clone()),
        (false, CALL.input(), tl::enums::InputPeer::PeerSelf)
    );
    let tl::enums::DataJson::Json(params) = &join.params;
    let params = JoinParams::parse(&params.data).unwrap();
    assert_eq!(params.ssrc as u32, heard.ssrc(), "the loopback hears the source we joined with");

    // The voice chat ends on Telegram: the plugin is told and the call is gone.
    push(&tg, vec![samples::discarded(None, CALL)], vec![]).await;
    host.event(&mut events, |e| *e == HostEvent::CallEnded(CHAT)).await;
    host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("groupCallDiscarded")))
        .await;
    assert!(host.app.manager.joined_chats().is_empty());
    assert!(tg.joined_calls().is_empty(), "no keep-alive left for an ended call");
    let seen = host.api("t", json!({ "cmd": "events" })).await;
    let seen = seen.as_array().unwrap();
    assert!(seen.contains(&json!({ "on-kicked": CHAT })), "{seen:?}");
    let raw: Vec<_> = seen.iter().filter_map(|e| e.get("on-raw-update")).collect();
    assert!(raw.iter().any(|r| r["_"] == "updateGroupCall" && r["call"]["_"] == "groupCallDiscarded"), "{raw:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_sends_our_source_and_basic_groups_work_too() {
    let fake = FakeTelegram::new();
    let (host, _tg, file) = host_on(&fake, Duration::from_secs(3600)).await;
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": -BASIC, "file": file })).await, json!({ "ok": null }));
    let heard = tokio::time::timeout(PATIENCE, fake.loopback.participant(-BASIC)).await.unwrap();
    assert_eq!(host.api("t", json!({ "cmd": "leave", "chat": -BASIC })).await, json!({ "ok": null }));
    let leaves = fake.seen(|s| s.leaves.clone());
    assert_eq!(leaves.len(), 1);
    assert_eq!((leaves[0].call.clone(), leaves[0].source as u32), (BASIC_CALL.input(), heard.ssrc()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_ssrc_is_redrawn_once() {
    let fake = FakeTelegram::new();
    let (host, _tg, file) = host_on(&fake, Duration::from_secs(3600)).await;
    fake.seen(|s| s.refuse_join = Some((400, "GROUPCALL_SSRC_DUPLICATE_MUCH")));
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": file })).await, json!({ "ok": null }));
    let joins = fake.seen(|s| s.joins.clone());
    assert_eq!(joins.len(), 2);
    assert_ne!(joins[0].params, joins[1].params, "the second join carries a new source");
    let heard = tokio::time::timeout(PATIENCE, fake.loopback.participant(CHAT)).await.unwrap();
    let tl::enums::DataJson::Json(second) = &joins[1].params;
    assert_eq!(JoinParams::parse(&second.data).unwrap().ssrc as u32, heard.ssrc());

    // Any other refusal is the plugin's error, named.
    fake.seen(|s| s.refuse_join = Some((403, "GROUPCALL_FORBIDDEN")));
    let r = host.api("t", json!({ "cmd": "join", "chat": -BASIC, "file": file })).await;
    assert!(r["err"]["permission-denied"].as_str().unwrap().contains("GROUPCALL_FORBIDDEN"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chats_without_a_call_or_unknown_to_the_account_are_named_errors() {
    let fake = FakeTelegram::new();
    let (host, _tg, file) = host_on(&fake, Duration::from_secs(3600)).await;
    let api = |chat: i64| host.api("t", json!({ "cmd": "join", "chat": chat, "file": file }));
    assert_eq!(api(QUIET).await, json!({ "err": { "no-active-group-call": QUIET } }));
    // A basic group without a call, a supergroup the session never saw, a user id.
    assert_eq!(api(-77).await, json!({ "err": { "no-active-group-call": -77 } }));
    let r = api(-1_009_999_999_999).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("not among this account's chats"), "{r}");
    let r = api(12345).await;
    assert!(r["err"]["invalid-argument"].as_str().unwrap().contains("user id"), "{r}");
    assert!(fake.seen(|s| s.joins.is_empty()), "nothing was joined");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_join_answers_are_named_errors() {
    let fake = FakeTelegram::new();
    let tg = Mtproto::new(fake.clone(), ME, options(Duration::from_secs(3600)));
    let params = JoinParams::parse(
        r#"{"ufrag":"u","pwd":"p","fingerprints":[{"hash":"sha-256","setup":"active","fingerprint":"AA"}],"ssrc":5,"ssrc-groups":[]}"#,
    )
    .unwrap();
    let answer = |data: Option<&str>| {
        let list = match data {
            Some(d) => vec![answers::connection(d)],
            None => vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()],
        };
        updates(list)
    };
    let cases = [
        (answer(None), "no updateGroupCallConnection"),
        (answer(Some("{not json")), "not JSON"),
        (answer(Some(r#"{"stream":{"dc_id":2}}"#)), "broadcast mode"),
        (answer(Some(r#"{"transport":null}"#)), "transport"),
    ];
    for (reply, expected) in cases {
        fake.seen(|s| s.next_join = Some(reply));
        let err = tg.join(CHAT, &params, &Default::default()).await.expect_err("an unusable answer is an error");
        assert!(err.to_string().contains(expected), "{expected:?} not in {err}");
        assert!(tg.joined_calls().is_empty(), "a failed join leaves nothing behind");
    }
    let err = tg.join(-77, &params, &Default::default()).await.unwrap_err();
    assert!(matches!(err, TelegramError::NoActiveGroupCall(-77)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keep_alive_rejoins_when_telegram_forgets_our_source() {
    let fake = FakeTelegram::new();
    let (host, _tg, file) = host_on(&fake, Duration::from_millis(100)).await;
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": file })).await, json!({ "ok": null }));
    let heard = tokio::time::timeout(PATIENCE, fake.loopback.participant(CHAT)).await.unwrap();
    // Telegram drops our source; the next check notices and joins again, same JSON.
    fake.seen(|s| s.sources.clear());
    fake.until(|s| s.joins.len() >= 2).await;
    let joins = fake.seen(|s| s.joins.clone());
    assert_eq!(joins[0].params, joins[1].params, "the same source and credentials");
    assert!(fake.seen(|s| { s.checks.iter().all(|c| c.sources == vec![heard.ssrc() as i32]) }));
    // Same transport: the call plays on.
    let before = heard.stats().packets;
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= before + 10))
        .await
        .expect("audio keeps flowing after the rejoin");
    assert_eq!(host.app.manager.joined_chats(), vec![CHAT]);
    assert_eq!(heard.stats().lost, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_onto_another_media_server_connects_to_it_and_plays_on() {
    let fake = FakeTelegram::new();
    let (host, _tg, file) = host_on(&fake, Duration::from_millis(100)).await;
    let mut events = host.app.events();
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": file })).await, json!({ "ok": null }));
    let moved = r#"{"transport":{"ufrag":"x","pwd":"y",
        "fingerprints":[{"hash":"sha-256","setup":"passive","fingerprint":"AA:BB"}],
        "candidates":[{"generation":"0","component":"1","protocol":"udp","port":"40000","ip":"127.0.0.2",
                       "foundation":"1","id":"1","priority":"2130706431","type":"host","network":"1"}]}}"#;
    fake.seen(|s| {
        s.sources.clear();
        s.next_join = Some(updates(vec![answers::connection(moved)]));
    });
    let first = tokio::time::timeout(PATIENCE, fake.loopback.participant(CHAT)).await.unwrap();
    // The host leaves the old source and joins again: a new connection, to the server
    // Telegram names now (the fake answers from the loopback again).
    host.event(
        &mut events,
        |e| matches!(e, HostEvent::RawUpdate { json, chat: Some(CHAT) } if json.contains("\"rejoined\":true")),
    )
    .await;
    let (joins, leaves) = fake.seen(|s| (s.joins.clone(), s.leaves.clone()));
    assert_eq!(joins.len(), 3, "the join, the keep-alive's rejoin, and the new connection");
    assert_ne!(joins[2].params, joins[0].params, "a new source and credentials");
    assert!(leaves.iter().any(|l| l.source as u32 == first.ssrc()), "the old source left");
    assert_eq!(host.app.manager.joined_chats(), vec![CHAT]);
    let second = fake.loopback.calls().into_iter().rfind(|p| p.chat() == CHAT).unwrap();
    assert_ne!(second.ssrc(), first.ssrc());
    tokio::time::timeout(PATIENCE, second.wait_until(|s| s.packets >= 10)).await.expect("the new connection is heard");
    let seen = host.api("t", json!({ "cmd": "events" })).await;
    assert!(!seen.to_string().contains("connectionLost"), "never told it was lost: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicks_and_invites_from_telegram_reach_the_plugin_once() {
    let fake = FakeTelegram::new();
    let (host, tg, file) = host_on(&fake, Duration::from_secs(3600)).await;
    let mut events = host.app.events();

    // Invited by user 42 in the supergroup.
    let channel: tl::enums::Peer = tl::types::PeerChannel { channel_id: CHANNEL }.into();
    push(&tg, vec![samples::invitation(channel, 42, 77, CALL, vec![ME])], vec![]).await;
    host.event(&mut events, |e| matches!(e, HostEvent::Invite(i) if i.chat == CHAT && i.inviter == 42)).await;

    // Joined, then removed from the supergroup.
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": CHAT, "file": file })).await, json!({ "ok": null }));
    let forbidden = answers::channel_forbidden(CHANNEL, CHANNEL_HASH);
    push(&tg, vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()], vec![forbidden]).await;
    host.event(&mut events, |e| *e == HostEvent::Kicked(CHAT)).await;
    host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("updateChannel"))).await;
    assert!(host.app.manager.joined_chats().is_empty());
    assert!(tg.joined_calls().is_empty(), "no keep-alive left for a chat we were removed from");

    let seen = host.api("t", json!({ "cmd": "events" })).await;
    let seen = seen.as_array().unwrap();
    let count = |v: serde_json::Value| seen.iter().filter(|e| **e == v).count();
    assert_eq!(count(json!({ "on-kicked": CHAT })), 1, "{seen:?}");
    assert_eq!(seen.iter().filter(|e| e.get("on-group-call-invite").is_some()).count(), 1, "{seen:?}");
}

/// The one path the fake cannot cover: grammers' sender on the real network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Telegram account, a group with a voice chat, and the network: set WASMCALLS_TELEGRAM_CONFIG \
            (a config whose [telegram] session is logged in) and WASMCALLS_TELEGRAM_CHAT, then run \
            `cargo test --test all -- --ignored real_telegram`"]
async fn real_telegram_join_play_and_leave() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("set {name}; see this test's ignore reason"));
    let config = wasmcalls::config::Config::load(std::path::Path::new(&var("WASMCALLS_TELEGRAM_CONFIG"))).unwrap();
    let chat: i64 = var("WASMCALLS_TELEGRAM_CHAT").parse().expect("WASMCALLS_TELEGRAM_CHAT is a chat id");
    let mut options = wasmcalls::app::resolve(&config).expect("the config resolves");
    let wasmcalls::telegram::TelegramOptions::Mtproto(list) = &options.telegram else {
        panic!("the config has no [telegram] section")
    };
    let account = wasmcalls::telegram::mtproto::session::whoami(&list[0].1).await.expect("the session is signed in");

    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "tone.raw", &tones(&[(440.0, 0.3)], 15.0, RATE, 2));
    let plugins = Host::options(&dir, &Setup::new().plugin(Bot::testbot("t").all())).plugins;
    options.plugins = plugins;
    options.folder = dir.path().canonicalize().unwrap();
    options.api.listen = "127.0.0.1:0".parse().unwrap();
    let host = Host { app: wasmcalls::app::App::start(&options).await.expect("host starts"), dir };
    assert_eq!(host.api("t", json!({ "cmd": "cache-id" })).await, json!({ "ok": account.id }));
    assert_eq!(host.api("t", json!({ "cmd": "join", "chat": chat, "file": "tone.raw" })).await, json!({ "ok": null }));
    let totals = host.app.media.totals();
    tokio::time::timeout(Duration::from_secs(30), async {
        while totals.frames_sent.load(std::sync::atomic::Ordering::Relaxed) < 250 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("five seconds of audio sent into the call");
    assert_eq!(host.api("t", json!({ "cmd": "leave", "chat": chat })).await, json!({ "ok": null }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_sees_only_its_own_chats_updates() {
    let fake = FakeTelegram::new();
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let tg = Mtproto::new(fake.clone(), ME, options(Duration::from_secs(3600)));
    let bot = |name: &str, chat: i64| Bot::testbot(name).grants(&format!("chats = [{chat}], files = [\".\"]"));
    let setup = Setup::new().plugin(bot("a", CHAT)).plugin(bot("b", -BASIC));
    let host = Host::start_on(dir, &setup, Arc::new(tg.clone())).await;
    let mut events = host.app.events();
    assert_eq!(host.api("a", json!({ "cmd": "join", "chat": CHAT, "file": "long.raw" })).await, json!({ "ok": null }));

    let basic: tl::enums::Peer = tl::types::PeerChat { chat_id: BASIC }.into();
    let status = tl::types::UpdateUserStatus { user_id: 9, status: tl::enums::UserStatus::Empty };
    push(
        &tg,
        vec![
            // Someone joins a's call: the update names only the call.
            samples::participants(CALL, vec![samples::participant(1001, 77, false)]),
            samples::invitation(basic, 42, 5, BASIC_CALL, vec![ME]),
            status.into(),
        ],
        vec![],
    )
    .await;
    host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("updateUserStatus")))
        .await;
    let raw = |name: &'static str| {
        let host = &host;
        async move {
            let seen = host.api(name, json!({ "cmd": "events" })).await;
            seen.as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["on-raw-update"]["_"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        raw("a").await,
        ["updateGroupCallConnection", "updateGroupCallParticipants"],
        "a sees its own join's answer and its call, not b's chat"
    );
    assert_eq!(raw("b").await, ["updateNewMessage"], "b sees its chat's invitation only");
    let b = host.api("b", json!({ "cmd": "events" })).await;
    assert!(b.as_array().unwrap().iter().any(|e| e["on-group-call-invite"]["chat"] == -BASIC), "{b}");
}
