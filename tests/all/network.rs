//! A bad network between the host and the loopback, made by the loopback's fault
//! relay (the kernel here has no netem): calls keep their send times whatever the
//! path does, and what arrives is what the path let through.

use std::time::Duration;

use wasmcalls::media::loss::window_correlations;
use wasmcalls::media::{Control, MediaEvent, PacerConfig, PcmFormat};
use wasmcalls::telegram::loopback::LoopbackOptions;
use wasmcalls::telegram::loopback::faults::Faults;
use wasmcalls::transport::Consent;

use crate::support::*;

fn on(faults: Faults) -> LoopbackOptions {
    LoopbackOptions { keep_audio: true, faults, ..Default::default() }
}

/// Plays `seconds` of a chirp and waits for its end, then for the path to drain.
async fn play(call: &mut Call, seconds: f64) {
    let stream = call.stream("chirp.raw", &chirp(200.0, 4000.0, seconds, 0.5), PcmFormat::stereo48());
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    match call.next_event().await {
        MediaEvent::StreamEnded { stream, error: None, .. } => assert_eq!(stream, id),
        other => panic!("expected the stream's end, got {other:?}"),
    }
    // The last datagrams may still be in the relay's delay line; the highest
    // sequence number arriving is the only sign they have, so wait on the count.
    let sent = call.media.stats(call.dialed.call).await.unwrap().frames_sent;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        call.heard.wait_until(|s| s.packets + s.lost + s.late >= sent.saturating_sub(2)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loss_and_jitter_reach_the_loopback_and_not_the_sender() {
    let faults = Faults { loss: 0.05, jitter: Duration::from_millis(30), seed: 7, ..Default::default() };
    let mut call = Call::join_on(on(faults)).await;
    play(&mut call, 4.0).await;
    let ours = call.media.stats(call.dialed.call).await.unwrap();
    // Every frame was sent: the path's trouble does not reach the pacer (its timing is
    // a benchmark's business, not a test's, on a shared machine).
    assert_eq!(ours.frames_sent, 200);
    let heard = call.heard.stats();
    // 5 % of 200 dropped, give or take (the relay's draws also fall on ICE, DTLS and
    // RTCP datagrams); `packets` counts every arrival, in order or not.
    let dropped = 200 - heard.packets;
    assert!((3..=25).contains(&dropped), "{dropped} dropped: {heard:?}");
    // 30 ms of jitter makes 20 ms packets overtake one another; the loopback's jitter
    // buffer puts them back in order, as a receiver's would: none is too late.
    assert!(heard.reordered > 0, "30 ms of jitter reorders 20 ms packets: {heard:?}");
    assert_eq!(heard.late, 0, "{heard:?}");
    assert!(heard.arrival_deviation.p99_us > 20_000, "the jitter shows in arrival times: {heard:?}");
    assert_eq!(heard.decode_errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_blackholes_the_path_and_it_comes_back() {
    // The outage starts 1.5 s after the join: inside the stream, after the handshake.
    let outage = (Duration::from_millis(1500), Duration::from_secs(1));
    let mut call = Call::join_on(on(Faults { outages: vec![outage], seed: 1, ..Default::default() })).await;
    play(&mut call, 4.0).await;
    assert_eq!(call.media.stats(call.dialed.call).await.unwrap().frames_sent, 200);
    let heard = call.heard.stats();
    // About a second of packets (50) never arrived; the rest did, in order.
    assert!((40..=60).contains(&heard.lost), "{heard:?}");
    assert!(heard.packets >= 140, "{heard:?}");
    assert_eq!(heard.late, 0);
    assert!(call.events.try_recv().is_err(), "a 1 s outage is not a lost call");
}

/// Consent timing short enough for a test: silent after 1 s, expired after 6 s.
fn quick_consent(expire_s: u64) -> PacerConfig {
    let consent = Consent { silent_after: Duration::from_secs(1), expire_after: Duration::from_secs(expire_s) };
    PacerConfig { shards: 1, consent, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_path_that_comes_back_is_reported_with_its_length_and_the_call_plays_on() {
    let outage = (Duration::from_millis(1500), Duration::from_millis(2500));
    let faults = Faults { outages: vec![outage], seed: 3, ..Default::default() };
    let mut call = Call::join_with(on(faults), quick_consent(6)).await;
    let stream = call.stream("chirp.raw", &chirp(200.0, 4000.0, 6.0, 0.5), PcmFormat::stereo48());
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    match call.next_event().await {
        MediaEvent::Recovered { call: c, outage } => {
            assert_eq!(c, call.dialed.call);
            // The relay's outage, give or take a consent check (250 ms) and the wait
            // before silence counts.
            assert!((1.8..=3.6).contains(&outage.as_secs_f64()), "{outage:?}");
        }
        other => panic!("expected the path back, got {other:?}"),
    }
    match call.next_event().await {
        MediaEvent::StreamEnded { stream, error: None, .. } => assert_eq!(stream, id),
        other => panic!("the stream should play on to its end, got {other:?}"),
    }
    assert_eq!(call.media.stats(call.dialed.call).await.unwrap().frames_sent, 300, "its pace kept");
    assert!(call.heard.stats().packets >= 150, "heard before and after: {:?}", call.heard.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_consent_expires_the_call_stops_sending() {
    let outage = (Duration::from_millis(1500), Duration::from_secs(60));
    let mut call =
        Call::join_with(on(Faults { outages: vec![outage], seed: 4, ..Default::default() }), quick_consent(3)).await;
    let stream = call.stream("chirp.raw", &chirp(200.0, 4000.0, 20.0, 0.5), PcmFormat::stereo48());
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    match call.next_event().await {
        MediaEvent::ConsentExpired { silent, .. } => assert!(silent >= Duration::from_secs(2), "{silent:?}"),
        other => panic!("expected consent to expire, got {other:?}"),
    }
    // RFC 7675: nothing more is sent. Absence is observed over a window.
    let at_loss = call.media.stats(call.dialed.call).await.map(|s| s.frames_sent);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = call.media.stats(call.dialed.call).await.map(|s| s.frames_sent);
    assert_eq!(at_loss.ok(), later.ok(), "no frame after consent expired");
}

/// Through the whole host, at the production consent timing (silent after 5 s): a bot
/// hears a silence that ended as a raw update with its length, and keeps its call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_hears_that_its_call_was_silent_and_keeps_it() {
    const CHAT: i64 = -1001;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 20.0, RATE, 2));
    let setup =
        Setup::new().chat(CHAT).loopback("faults = { delay = \"1ms\", seed = 5 }").plugin(Bot::testbot("t").all());
    let host = Host::start_in(dir, &setup).await;
    let mut events = host.app.events();
    // The outage starts once the call plays (a schedule from the loopback's start would
    // race the host's start on a busy machine).
    playing(&host, CHAT, 25).await;
    host.loopback().outage(Duration::from_secs(7));
    host.event(&mut events, |e| {
        matches!(e, wasmcalls::calls::HostEvent::RawUpdate { json, chat: Some(CHAT) } if json.contains("connectionRecovered"))
    })
    .await;
    let seen = host.api("t", serde_json::json!({ "cmd": "events" })).await;
    let seen = seen.as_array().unwrap();
    let recovered = seen
        .iter()
        .find_map(|e| e.get("on-raw-update").filter(|r| r["_"] == "wasmcalls.connectionRecovered"))
        .unwrap_or_else(|| panic!("the plugin was told: {seen:?}"));
    assert_eq!(recovered["chat_id"], CHAT);
    let ms = recovered["outage_ms"].as_u64().unwrap();
    assert!((5_500..=9_500).contains(&ms), "the 7 s outage, as the host saw it: {ms} ms");
    assert!(!seen.iter().any(|e| e.get("on-kicked").is_some()), "{seen:?}");
    assert_eq!(host.app.manager.joined_chats(), vec![CHAT]);
}

/// Audio through a lossy path, as a receiver decodes it (FEC for a lost frame the next
/// packet carries, PLC for the rest). The figures are printed for the README; the
/// assertion is loose: a chirp sweeps fast enough that concealment cannot guess it, so
/// each lost frame costs its window a little, never the whole signal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_through_loss_is_concealed_as_a_receiver_would() {
    for loss in [0.05, 0.10] {
        let mut call = Call::join_on(on(Faults { loss, seed: 11, ..Default::default() })).await;
        let sent = chirp(200.0, 2000.0, 6.0, 0.5);
        let stream = call.stream("chirp.raw", &sent, PcmFormat::stereo48());
        call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
        match call.next_event().await {
            MediaEvent::StreamEnded { error: None, .. } => {}
            other => panic!("expected the stream's end, got {other:?}"),
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), call.heard.wait_until(|s| s.packets + s.lost >= 298)).await;
        let heard = call.heard.stats();
        let (mean, worst) = window_correlations(&left(&sent), &left(&call.heard.audio()));
        println!(
            "loss {:.0} %: {} of 300 packets lost; window correlation mean {mean:.3}, worst {worst:.3}",
            loss * 100.0,
            heard.lost
        );
        assert!(mean > 0.8, "loss {loss}: mean {mean:.3}, worst {worst:.3}, {heard:?}");
    }
}

/// A host whose media plane reports silence after 1 s and expires consent after 3 s.
async fn quick_host(setup: &Setup, dir: tempfile::TempDir) -> Host {
    let mut options = Host::options(&dir, setup);
    options.pacer.consent = Consent { silent_after: Duration::from_secs(1), expire_after: Duration::from_secs(3) };
    let app = wasmcalls::app::App::start(&options).await.expect("host starts");
    Host { app, dir }
}

/// The test bot joins `chat` with `long.raw`; the loopback's participant once it has
/// heard `packets`.
async fn playing(host: &Host, chat: i64, packets: u64) -> std::sync::Arc<wasmcalls::telegram::loopback::HeardCall> {
    let joined = host.api("t", serde_json::json!({ "cmd": "join", "chat": chat, "file": "long.raw" })).await;
    assert_eq!(joined, serde_json::json!({ "ok": null }));
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(chat)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= packets)).await.unwrap();
    heard
}

/// Waits until the plugins are told `chat`'s call came back by a rejoin.
async fn rejoined(host: &Host, events: &mut tokio::sync::broadcast::Receiver<wasmcalls::calls::HostEvent>, chat: i64) {
    host.event(events, |e| {
        matches!(e, wasmcalls::calls::HostEvent::RawUpdate { json, chat: Some(c) } if *c == chat && json.contains("\"rejoined\":true"))
    })
    .await;
}

/// Consent expires in the middle of an outage: the host rejoins — the same chat, the
/// same source, from where it was — as soon as the path lets it, and the bot hears it
/// came back, never that it was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_consent_expires_the_call_rejoins_and_plays_on_from_where_it_was() {
    const CHAT: i64 = -1002;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let setup =
        Setup::new().chat(CHAT).loopback("faults = { delay = \"1ms\", seed = 6 }").plugin(Bot::testbot("t").all());
    let host = quick_host(&setup, dir).await;
    let mut events = host.app.events();
    let first = playing(&host, CHAT, 50).await;
    // The network goes down for 6 s: consent expires after 3 of them.
    host.loopback().outage(Duration::from_secs(6));
    rejoined(&host, &mut events, CHAT).await;
    let seen = host.api("t", serde_json::json!({ "cmd": "events" })).await;
    let seen = seen.as_array().unwrap();
    assert!(!seen.iter().any(|e| e.get("on-kicked").is_some()), "never told it was lost: {seen:?}");
    let calls = host.app.manager.calls().await;
    assert_eq!(calls.len(), 1);
    // Playing on from where it was when consent expired (about 4 s in: 1 s heard, then
    // 3 s of silence), not from 0; the margin is for a loaded machine's scheduling.
    assert!(calls[0].position_ms >= 3_000, "{:?}", calls[0]);
    // A new participant, heard once the network is back.
    let second = host.loopback().calls().into_iter().rfind(|p| p.chat() == CHAT).unwrap();
    assert_ne!(second.ssrc(), first.ssrc());
    tokio::time::timeout(PATIENCE, second.wait_until(|s| s.packets >= 25)).await.expect("the rejoined call is heard");
}

/// `wasmcalls loopback outage --for 2s` against a running host's loopback: the calls
/// through the relay go quiet; without faults configured, the command says what to set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outage_command_takes_the_network_down_and_names_what_it_needs() {
    const CHAT: i64 = -1003;
    let run = |url: String| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
            .args(["loopback", "outage", "--for", "2s", "--url", &url])
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for faulty in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 10.0, RATE, 2));
        let mut setup = Setup::new().chat(CHAT).loopback("control = \"127.0.0.1:0\"").plugin(Bot::testbot("t").all());
        if faulty {
            setup = setup.loopback("faults = { delay = \"1ms\", seed = 8 }");
        }
        let host = Host::start_in(dir, &setup).await;
        let url = format!("http://{}", host.app.control.unwrap());
        let heard = playing(&host, CHAT, 10).await;
        let (ok, stderr) = tokio::task::spawn_blocking(move || run(url)).await.unwrap();
        if faulty {
            assert!(ok, "{stderr}");
            // The network is down: over a window shorter than the outage, nothing arrives.
            let before = heard.stats().packets;
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert!(heard.stats().packets <= before + 1, "{:?}", heard.stats());
        } else {
            assert!(!ok && stderr.contains("[loopback.faults]"), "{stderr}");
        }
    }
}

/// `wasmcalls loopback move` on a running host: every connection goes dead and the
/// loopback answers joins on new ports. The call's path goes silent, consent expires
/// (timed short here), the host joins again — on the new port — and plays on; the bot
/// hears that it came back, never that it was lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_loopback_moves_the_call_follows_it() {
    const CHAT: i64 = -1004;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, RATE, 2));
    let setup = Setup::new().chat(CHAT).loopback("control = \"127.0.0.1:0\"").plugin(Bot::testbot("t").all());
    let host = quick_host(&setup, dir).await;
    let mut events = host.app.events();
    let first = playing(&host, CHAT, 25).await;
    let url = format!("http://{}", host.app.control.unwrap());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
            .args(["loopback", "move", "--url", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"moved\":1"), "{out:?}");
    rejoined(&host, &mut events, CHAT).await;
    let second = host.loopback().calls().into_iter().rfind(|p| p.chat() == CHAT).unwrap();
    assert_ne!(second.ssrc(), first.ssrc());
    tokio::time::timeout(PATIENCE, second.wait_until(|s| s.packets >= 25)).await.expect("heard on the new port");
    let seen = host.api("t", serde_json::json!({ "cmd": "events" })).await;
    assert!(!seen.to_string().contains("on-kicked"), "never told it was lost: {seen}");
    assert_eq!(host.app.manager.calls().await.len(), 1);
}
