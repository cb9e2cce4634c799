//! The media plane end to end: a file streamed by the host, decoded by the loopback.
//!
//! Audio is compared by normalized correlation after alignment, not SNR: Opus is a
//! perceptual codec, so its output is not sample-exact even when it sounds identical,
//! while a missing, repeated, shifted or wrong stretch of a chirp drives correlation
//! far below 0.9. Packet counters (no loss, exact frame counts) back it up.

use wasmcalls::media::{Control, MediaEvent, PcmFormat};

use crate::support::*;

#[test]
fn the_comparison_catches_a_missing_or_repeated_frame() {
    let sent = left(&chirp(200.0, 4000.0, 3.0, 0.5));
    let mut dropped = sent.clone();
    dropped.drain(48000..48960);
    assert!(worst_window_correlation(&sent, &sent, 2000).0 > 0.999);
    assert!(worst_window_correlation(&sent, &dropped, 2000).0 < 0.5);
    let mut repeated = sent.clone();
    repeated.splice(48000..48000, sent[47040..48000].to_vec());
    assert!(worst_window_correlation(&sent, &repeated, 2000).0 < 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chirp_is_heard_intact() {
    let mut call = Call::join().await;
    let sent = chirp(200.0, 4000.0, 3.0, 0.5);
    let stream = call.stream("chirp.raw", &sent, PcmFormat::stereo48());
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    call.play_to_end(id).await;

    let stats = call.media.stats(call.dialed.call).await.unwrap();
    assert_eq!(stats.frames_sent, 150, "3 s is 150 frames of 20 ms");
    let heard = call.heard.stats();
    assert_eq!(heard.packets, 150);
    assert_eq!(heard.lost, 0);
    assert_eq!(heard.ssrcs, vec![call.dialed.ssrc]);
    assert_eq!(heard.level_packets, 150, "every packet carries the audio level");
    assert_eq!(heard.decode_errors, 0);

    let (corr, lag) = worst_window_correlation(&left(&sent), &left(&call.heard.audio()), 2000);
    assert!(corr >= 0.9, "correlation {corr:.3} at lag {lag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mono_and_lower_rates_play_and_a_short_last_frame_is_padded() {
    let mut call = Call::join().await;
    // 24 kHz mono, 1 s plus 100 samples: 50 full frames and one padded frame.
    let mut pcm = tones(&[(500.0, 0.4)], 1.0, 24000, 1);
    pcm.extend(std::iter::repeat_n(1000, 100));
    let stream = call.stream("mono24.raw", &pcm, PcmFormat::new(24000, 1).unwrap());
    let id = stream.id();
    assert_eq!(stream.duration(), Some(48_200), "1 s + 100 samples at 24 kHz, in 48 kHz ticks");
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    call.play_to_end(id).await;
    assert_eq!(call.heard.stats().packets, 51, "the short last frame is sent, not dropped");
    let heard = left(&call.heard.audio());
    let f = tone_frequency(&heard[4800..43200], RATE);
    assert!((f - 500.0).abs() < 10.0, "heard {f} Hz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_sends_nothing_and_resume_continues_from_the_same_sample() {
    let mut call = Call::join().await;
    let sent = chirp(300.0, 3000.0, 3.0, 0.5);
    let stream = call.stream("chirp.raw", &sent, PcmFormat::stereo48());
    let id = stream.id();
    let c = call.dialed.call;
    call.media.control(c, Control::Play(stream)).unwrap();
    call.heard_packets(40).await;
    call.media.control(c, Control::Pause).unwrap();

    // Stats are answered by the pacer thread after the pause command, so this
    // snapshot is the final count before the pause took effect.
    let at_pause = call.media.stats(c).await.unwrap();
    assert!(at_pause.paused);
    assert_eq!(at_pause.position, at_pause.frames_sent * 960, "position is what was sent");
    call.heard_packets(at_pause.frames_sent).await;
    // Absence can only be observed over a window: watch 300 ms of it.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(call.heard.stats().packets, at_pause.frames_sent, "no packets while paused");
    assert_eq!(call.media.stats(c).await.unwrap().frames_sent, at_pause.frames_sent);

    call.media.control(c, Control::Resume).unwrap();
    call.play_to_end(id).await;
    assert_eq!(call.heard.stats().packets, 150, "nothing skipped, nothing repeated");
    assert_eq!(call.heard.stats().lost, 0);

    // The RTP timeline shows the pause as a gap of at least the window we watched.
    let frames = call.heard.frames();
    let k = at_pause.frames_sent as usize;
    let gap = frames[k].at_sample - frames[k - 1].at_sample;
    assert!(gap >= 48 * 300, "pause gap only {gap} samples");
    // Stitch the heard frames without the gap: it is the source, continuous.
    let audio = call.heard.audio();
    let mut stitched = Vec::new();
    for f in &frames {
        let start = f.at_sample as usize * 2;
        stitched.extend_from_slice(&audio[start..(start + 1920).min(audio.len())]);
    }
    let (corr, lag) = worst_window_correlation(&left(&sent), &left(&stitched), 2000);
    assert!(corr >= 0.9, "resumed audio is not continuous: correlation {corr:.3} at lag {lag}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_stream_switches_content_on_the_same_ssrc_and_connection() {
    let mut call = Call::join().await;
    let c = call.dialed.call;
    let first = call.stream("a.raw", &tones(&[(440.0, 0.4)], 10.0, RATE, 2), PcmFormat::stereo48());
    let first_id = first.id();
    call.media.control(c, Control::Play(first)).unwrap();
    call.heard_packets(50).await;

    let second = call.stream("b.raw", &tones(&[(1500.0, 0.4)], 1.0, RATE, 2), PcmFormat::stereo48());
    let second_id = second.id();
    call.media.control(c, Control::Play(second)).unwrap();
    // The only end event is the second stream's: a replaced stream never ends.
    match call.next_event().await {
        MediaEvent::StreamEnded { stream, error: None, .. } => assert_eq!(stream, second_id),
        other => panic!("expected the second stream's end, got {other:?}"),
    }
    assert_ne!(first_id, second_id);
    let sent = call.media.stats(c).await.unwrap().frames_sent;
    call.heard_packets(sent).await;

    let heard = call.heard.stats();
    assert_eq!(heard.ssrcs, vec![call.dialed.ssrc], "same SSRC throughout");
    assert_eq!(heard.lost, 0, "one continuous sequence");
    assert_eq!(call.loopback.calls().len(), 1, "no renegotiation, no second participant");
    assert_eq!(heard.state, "connected");

    let audio = left(&call.heard.audio());
    let early = tone_frequency(&audio[4800..4800 + 24000], RATE);
    let late = tone_frequency(&audio[audio.len() - 30000..audio.len() - 6000], RATE);
    assert!((early - 440.0).abs() < 10.0, "first stream heard at {early} Hz");
    assert!((late - 1500.0).abs() < 20.0, "second stream heard at {late} Hz");
    // The new stream's 1 s is heard whole: 50 frames at its pitch (±1 for the
    // frame that straddles the switch through the codec's delay).
    let new_frames = audio.chunks_exact(960).filter(|f| (tone_frequency(f, RATE) - 1500.0).abs() < 100.0).count();
    assert!((49..=51).contains(&new_frames), "{new_frames} frames of the second stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_zero_is_silence_and_200_is_twice_as_loud() {
    let mut call = Call::join().await;
    let c = call.dialed.call;
    let stream = call.stream("tone.raw", &tones(&[(600.0, 0.2)], 4.0, RATE, 2), PcmFormat::stereo48());
    let id = stream.id();
    call.media.control(c, Control::Play(stream)).unwrap();
    call.heard_packets(40).await;
    call.media.control(c, Control::Volume(0)).unwrap();
    assert_eq!(call.media.stats(c).await.unwrap().volume, 0);
    let at = call.heard.stats().packets;
    call.heard_packets(at + 40).await;
    call.media.control(c, Control::Volume(200)).unwrap();
    call.play_to_end(id).await;

    let audio = left(&call.heard.audio());
    let per_frame: Vec<f64> = audio.chunks(960).map(rms).collect();
    let unity = per_frame[5..25].iter().sum::<f64>() / 20.0;
    let tail = &per_frame[per_frame.len() - 25..per_frame.len() - 5];
    let loud = tail.iter().sum::<f64>() / tail.len() as f64;
    let silent_run = per_frame.split(|r| *r > unity * 0.01).map(|run| run.len()).max().unwrap_or(0);
    assert!(silent_run >= 30, "volume 0 gave no silent stretch (longest {silent_run} frames)");
    let ratio = loud / unity;
    assert!((1.8..=2.2).contains(&ratio), "200 % is {ratio:.2}× unity, not 2×");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_end_fires_exactly_once_even_across_pauses() {
    let mut call = Call::join().await;
    let c = call.dialed.call;
    let first = call.stream("short.raw", &tones(&[(700.0, 0.3)], 1.0, RATE, 2), PcmFormat::stereo48());
    let first_id = first.id();
    call.media.control(c, Control::Play(first)).unwrap();
    call.heard_packets(10).await;
    call.media.control(c, Control::Pause).unwrap();
    call.media.control(c, Control::Resume).unwrap();
    call.play_to_end(first_id).await;

    // Events from one call are ordered: if the first stream's end were to fire again,
    // it would arrive before the second stream's.
    let second = call.stream("next.raw", &tones(&[(900.0, 0.3)], 0.2, RATE, 2), PcmFormat::stereo48());
    let second_id = second.id();
    call.media.control(c, Control::Play(second)).unwrap();
    call.play_to_end(second_id).await;
    assert!(call.events.try_recv().is_err(), "no further events");
    assert_eq!(call.heard.stats().packets, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_playback_without_an_end_event_and_keeps_the_connection() {
    let mut call = Call::join().await;
    let c = call.dialed.call;
    let long = call.stream("long.raw", &tones(&[(440.0, 0.3)], 10.0, RATE, 2), PcmFormat::stereo48());
    call.media.control(c, Control::Play(long)).unwrap();
    call.heard_packets(10).await;
    call.media.control(c, Control::Stop).unwrap();
    let after_stop = call.media.stats(c).await.unwrap();
    assert_eq!(after_stop.stream, None);
    let short = call.stream("short.raw", &tones(&[(880.0, 0.3)], 0.2, RATE, 2), PcmFormat::stereo48());
    let id = short.id();
    call.media.control(c, Control::Play(short)).unwrap();
    call.play_to_end(id).await; // the first event is the short stream's end
    assert_eq!(call.heard.stats().ssrcs.len(), 1);
}
