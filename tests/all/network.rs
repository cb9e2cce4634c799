//! A bad network between the host and the loopback, made by the loopback's fault
//! relay (the kernel here has no netem): calls keep their send times whatever the
//! path does, and what arrives is what the path let through.

use std::time::Duration;

use wasmcalls::media::{Control, MediaEvent, PcmFormat};
use wasmcalls::telegram::loopback::LoopbackOptions;
use wasmcalls::telegram::loopback::faults::Faults;

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
    assert!(heard.late > 0, "30 ms of jitter reorders 20 ms packets: {heard:?}");
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
