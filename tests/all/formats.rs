//! Real media, heard by the loopback: every common format decoded natively (fixtures
//! made at test time with sox, lame, flac, oggenc, opusenc and ffmpeg — `.ci/setup`
//! installs them), each compared with ffmpeg's own decode of the same file; Opus
//! passed through byte for byte; volume changes during pass-through; seeking; bad
//! input named; ffmpeg as the fallback for what is not decoded natively.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use wasmcalls::media::source::{SourceError, SourceSpec, TICKS_PER_SECOND, open};
use wasmcalls::media::{Control, EncoderConfig, MediaEvent, PcmFormat, Stream};

use crate::support::*;

/// A 2 s stereo chirp at `rate` Hz with `bits` (sox makes it; `float` for 32-bit float).
fn chirp_wav(dir: &Path, name: &str, rate: u32, channels: u8, bits: u8, float: bool) -> PathBuf {
    let (r, c, b) = (rate.to_string(), channels.to_string(), bits.to_string());
    let encoding = if float {
        "floating-point"
    } else if bits == 8 {
        "unsigned"
    } else {
        "signed"
    };
    tool(
        "sox",
        &["-n", "-r", &r, "-c", &c, "-b", &b, "-e", encoding, name, "synth", "2", "sine", "300-3000", "vol", "0.5"],
        dir,
    );
    dir.join(name)
}

/// ffmpeg's decode of `path`, at 48 kHz stereo: the reference what we heard is held to.
fn reference(path: &Path) -> Vec<i16> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-vn", "-f", "s16le", "-ar", "48000", "-ac", "2", "-"])
        .output()
        .expect("ffmpeg runs (bash .ci/setup installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// Plays `spec` into a fresh loopback call to its end; returns the call.
async fn play(spec: &SourceSpec, from: Option<Duration>) -> Call {
    let mut call = Call::join().await;
    let stream = open_stream(&call, spec, from);
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    call.play_to_end(id).await;
    call
}

fn open_stream(call: &Call, spec: &SourceSpec, from: Option<Duration>) -> Box<Stream> {
    call.media.open_stream(spec, from, EncoderConfig::default()).unwrap_or_else(|e| panic!("{}: {e}", spec.describe()))
}

fn file(path: PathBuf) -> SourceSpec {
    SourceSpec::File { path, raw: PcmFormat::stereo48() }
}

/// The heard audio, aligned to `reference` by the best lag either way, correlates
/// ≥ 0.9 in every 0.25 s window.
fn assert_heard(reference: &[i16], heard: &[i16], what: &str) {
    let (r, h) = (left(reference), left(heard));
    // Encoders and decoders shift the start by up to a few thousand samples, either way.
    let best = (0..4000)
        .flat_map(|l| [l as i64, -(l as i64)])
        .max_by(|&a, &b| corr_at(&r, &h, a).total_cmp(&corr_at(&r, &h, b)))
        .unwrap();
    let (r, h) = if best >= 0 { (&r[..], &h[best as usize..]) } else { (&r[(-best) as usize..], &h[..]) };
    // The last 100 ms: decoders differ in how they end (padding, fades).
    let len = r.len().min(h.len()).saturating_sub(4800);
    let (corr, lag) = worst_window_correlation(&r[..len], &h[..len + 16], 16);
    assert!(corr >= 0.9, "{what}: worst window correlation {corr:.3} (aligned at {best}, refined {lag})");
}

fn corr_at(r: &[f64], h: &[f64], lag: i64) -> f64 {
    let n = 24_000.min(r.len()).min(h.len()).saturating_sub(lag.unsigned_abs() as usize);
    let (a, b) = if lag >= 0 {
        (&r[..n], &h[lag as usize..lag as usize + n])
    } else {
        (&r[(-lag) as usize..(-lag) as usize + n], &h[..n])
    };
    correlation(a, b)
}

/// Plays a fixture and checks it against ffmpeg's decode.
async fn heard_like_ffmpeg(path: PathBuf, codec: &str) {
    let opened = open(&file(path.clone()), None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(opened.info.codec, codec, "{}", path.display());
    drop(opened);
    let call = play(&file(path.clone()), None).await;
    assert_eq!(call.heard.stats().lost, 0);
    assert_heard(&reference(&path), &call.heard.audio(), &path.display().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wav_of_every_sample_format_plays() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, float) in [(8, false), (16, false), (24, false), (32, false), (32, true)] {
        let name = format!("c{bits}{}.wav", if float { "f" } else { "" });
        heard_like_ffmpeg(chirp_wav(dir.path(), &name, 44_100, 2, bits, float), "pcm").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flac_at_high_rates_and_depths_plays() {
    let dir = tempfile::tempdir().unwrap();
    for (rate, bits) in [(44_100, 16), (96_000, 24), (192_000, 24)] {
        let wav = chirp_wav(dir.path(), &format!("c{rate}.wav"), rate, 2, bits, false);
        let out = format!("c{rate}.flac");
        tool("flac", &["-s", "-f", wav.to_str().unwrap(), "-o", &out], dir.path());
        heard_like_ffmpeg(dir.path().join(out), "flac").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mp3_cbr_and_vbr_with_tags_and_cover_art_play() {
    let dir = tempfile::tempdir().unwrap();
    let wav = chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    // A cover image inside the ID3v2 tag, which must be skipped.
    tool(
        "ffmpeg",
        &["-v", "error", "-y", "-f", "lavfi", "-i", "color=red:size=64x64", "-frames:v", "1", "cover.jpg"],
        dir.path(),
    );
    tool("lame", &["--quiet", "-b", "160", "--tt", "Chirp", "--ta", "wasmcalls", "c.wav", "cbr.mp3"], dir.path());
    tool("lame", &["--quiet", "-V", "2", "--ti", "cover.jpg", "c.wav", "vbr.mp3"], dir.path());
    let _ = wav;
    for f in ["cbr.mp3", "vbr.mp3"] {
        heard_like_ffmpeg(dir.path().join(f), "mp3").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aac_in_m4a_mp4_with_video_and_adts_plays() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 48_000, 2, 16, false);
    tool("ffmpeg", &["-v", "error", "-y", "-i", "c.wav", "-c:a", "aac", "c.m4a"], dir.path());
    tool("ffmpeg", &["-v", "error", "-y", "-i", "c.wav", "-c:a", "aac", "-f", "adts", "c.aac"], dir.path());
    // A video with sound: the audio track is chosen.
    tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10:duration=2",
            "-i",
            "c.wav",
            "-c:v",
            "mpeg4",
            "-c:a",
            "aac",
            "-shortest",
            "video.mp4",
        ],
        dir.path(),
    );
    for f in ["c.m4a", "c.aac", "video.mp4"] {
        heard_like_ffmpeg(dir.path().join(f), "aac").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vorbis_in_ogg_and_webm_plays_and_surround_mixes_down() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    tool("oggenc", &["-Q", "c.wav", "-o", "c.ogg"], dir.path());
    tool("ffmpeg", &["-v", "error", "-y", "-i", "c.wav", "-c:a", "libvorbis", "c.webm"], dir.path());
    chirp_wav(dir.path(), "surround.wav", 48_000, 6, 16, false);
    tool("oggenc", &["-Q", "surround.wav", "-o", "surround.ogg"], dir.path());
    for f in ["c.ogg", "c.webm", "surround.ogg"] {
        heard_like_ffmpeg(dir.path().join(f), "vorbis").await;
    }
    // Mono stays mono.
    let mono = chirp_wav(dir.path(), "mono.wav", 22_050, 1, 16, false);
    assert_eq!(open(&file(mono.clone()), None).unwrap().info.channels, 1);
    heard_like_ffmpeg(mono, "pcm").await;
}

/// The packets in an Opus file (Ogg or WebM), as its demuxer gives them.
fn opus_packets(path: &Path) -> Vec<Vec<u8>> {
    let mss = MediaSourceStream::new(Box::new(std::fs::File::open(path).unwrap()), MediaSourceStreamOptions::default());
    let mut format = symphonia::default::get_probe()
        .probe(&Hint::new(), mss, FormatOptions::default(), MetadataOptions::default())
        .unwrap();
    let track = format.default_track(TrackType::Audio).unwrap().id;
    let mut out = Vec::new();
    while let Ok(Some(p)) = format.next_packet() {
        if p.track_id == track {
            out.push(p.data.to_vec());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opus_passes_through_byte_for_byte_in_ogg_and_webm() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 48_000, 2, 16, false);
    tool("opusenc", &["--quiet", "c.wav", "c.opus"], dir.path());
    tool("ffmpeg", &["-v", "error", "-y", "-i", "c.wav", "-c:a", "libopus", "c.webm"], dir.path());
    // 60 ms packets: legal on the wire, and the pacer keeps time by them.
    tool("opusenc", &["--quiet", "--framesize", "60", "c.wav", "c60.opus"], dir.path());
    for f in ["c.opus", "c.webm", "c60.opus"] {
        let path = dir.path().join(f);
        let opened = open(&file(path.clone()), None).unwrap();
        assert!(opened.info.pass_through && opened.info.codec == "opus", "{f}: {:?}", opened.info);
        drop(opened);
        let call = play(&file(path.clone()), None).await;
        let sent = opus_packets(&path);
        let heard: Vec<Vec<u8>> = call.heard.frames().iter().map(|f| f.payload.to_vec()).collect();
        assert_eq!(heard.len(), sent.len(), "{f}: every packet, once");
        assert!(heard == sent, "{f}: the loopback received the file's own Opus payloads, byte for byte");
        // RTP time advanced by each packet's duration.
        let frames = call.heard.frames();
        let step = frames[1].timestamp.wrapping_sub(frames[0].timestamp);
        assert_eq!(step, if f == "c60.opus" { 2880 } else { 960 }, "{f}");
        assert_eq!(call.heard.stats().lost, 0);
        assert_heard(&reference(&path), &call.heard.audio(), f);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_change_during_pass_through_re_encodes_and_comes_back_with_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("c.wav");
    tool(
        "sox",
        &["-n", "-r", "48000", "-c", "2", "-b", "16", "c.wav", "synth", "4", "sine", "300-3000", "vol", "0.5"],
        dir.path(),
    );
    tool("opusenc", &["--quiet", "c.wav", "c.opus"], dir.path());
    let path = dir.path().join("c.opus");
    let mut call = Call::join().await;
    let stream = open_stream(&call, &file(path.clone()), None);
    let (id, c) = (stream.id(), call.dialed.call);
    call.media.control(c, Control::Play(stream)).unwrap();
    call.heard_packets(50).await;
    call.media.control(c, Control::Volume(50)).unwrap();
    call.heard_packets(100).await;
    assert!(!call.media.stats(c).await.unwrap().passing_through, "re-encoding at 50 %");
    call.media.control(c, Control::Volume(100)).unwrap();
    call.heard_packets(150).await;
    assert!(call.media.stats(c).await.unwrap().passing_through, "the file's packets again at 100 %");
    call.play_to_end(id).await;

    let frames = call.heard.frames();
    let sent = opus_packets(&path);
    // No gap: RTP time continuous through both switches.
    for w in frames.windows(2) {
        assert_eq!(w[1].timestamp.wrapping_sub(w[0].timestamp), 960, "a gap or an overlap at seq {}", w[1].seq);
    }
    assert_eq!(frames.len(), sent.len(), "as many 20 ms packets as the file has");
    let same: Vec<bool> = frames.iter().zip(&sent).map(|(f, s)| f.payload[..] == s[..]).collect();
    assert!(same[..40].iter().all(|&x| x), "passed through before the change");
    assert!(same[60..90].iter().all(|&x| !x), "re-encoded while at 50 %");
    assert!(same[same.len() - 40..].iter().all(|&x| x), "passed through again after it");
    // The audio is the file's, continuous, through both switches (correlation is scale-free).
    let _ = wav;
    assert_heard(&reference(&path), &call.heard.audio(), "volume switches");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_starts_where_asked_in_decoded_and_opus_files() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    tool("flac", &["-s", "-f", "c.wav", "-o", "c.flac"], dir.path());
    tool("opusenc", &["--quiet", "c.wav", "c.opus"], dir.path());
    for f in ["c.flac", "c.opus"] {
        let path = dir.path().join(f);
        let call = play(&file(path.clone()), Some(Duration::from_secs(1))).await;
        let reference = reference(&path);
        // The second half of the file, heard from the start of the call.
        assert_heard(&reference[48_000 * 2..], &call.heard.audio(), &format!("{f} from 1 s"));
        let heard_seconds = call.heard.stats().timeline_samples as f64 / 48_000.0;
        assert!((0.9..1.15).contains(&heard_seconds), "{f}: {heard_seconds} s heard after seeking to 1 s of 2");
    }
}

#[test]
fn positions_and_durations_are_known_per_format() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    tool("flac", &["-s", "-f", "c.wav", "-o", "c.flac"], dir.path());
    tool("opusenc", &["--quiet", "c.wav", "c.opus"], dir.path());
    tool("lame", &["--quiet", "-b", "128", "c.wav", "c.mp3"], dir.path());
    for f in ["c.wav", "c.flac", "c.opus", "c.mp3"] {
        let d = open(&file(dir.path().join(f)), None).unwrap().duration.expect(f);
        let secs = d as f64 / TICKS_PER_SECOND as f64;
        assert!((1.95..2.1).contains(&secs), "{f}: {secs} s");
    }
}

#[test]
fn bad_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let err = |p: PathBuf| open(&file(p), None).err().expect("refused").to_string();
    assert!(err(write("empty.mp3", b"")).contains("is empty"));
    assert!(err(write("page.mp3", b"<!DOCTYPE html>\n<html><body>Not here</body></html>")).contains("web page"));
    assert!(err(write("song.mid", b"MThd\0\0\0\x06\0\x01\0\x02\x01\xe0MTrk")).contains("MIDI"));
    assert!(err(write("list.mp3", b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n")).contains("HLS"));
    // A video without sound.
    tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x64:rate=10:duration=1",
            "-c:v",
            "mpeg4",
            "silent.mp4",
        ],
        dir.path(),
    );
    let e = open(&file(dir.path().join("silent.mp4")), None).err().unwrap();
    assert!(matches!(e, SourceError::NoAudioTrack(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_plays_what_it_has_and_a_damaged_middle_plays_around_the_damage() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    tool("lame", &["--quiet", "-b", "128", "c.wav", "c.mp3"], dir.path());
    // FLAC: its frames carry checksums, so damage is found and counted (an MP3 frame
    // has none: garbage in it plays as noise, or is skipped by resync, uncounted).
    tool("flac", &["-s", "-f", "c.wav", "-o", "c.flac"], dir.path());
    let whole = std::fs::read(dir.path().join("c.mp3")).unwrap();
    let cut = dir.path().join("cut.mp3");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let call = play(&file(cut), None).await;
    let secs = call.heard.stats().timeline_samples as f64 / 48_000.0;
    assert!((0.8..1.2).contains(&secs), "half the file heard: {secs} s");

    let mut damaged = std::fs::read(dir.path().join("c.flac")).unwrap();
    let mid = damaged.len() / 2;
    damaged[mid..mid + 2000].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 37 % 251) as u8);
    let path = dir.path().join("damaged.flac");
    std::fs::write(&path, &damaged).unwrap();
    let mut call = Call::join().await;
    let stream = open_stream(&call, &file(path), None);
    let (id, c) = (stream.id(), call.dialed.call);
    call.media.control(c, Control::Play(stream)).unwrap();
    // Just before the end: what was skipped is counted.
    call.heard_packets(90).await;
    let skipped = call.media.stats(c).await.unwrap().skipped;
    call.play_to_end(id).await;
    let secs = call.heard.stats().timeline_samples as f64 / 48_000.0;
    assert!((1.8..2.1).contains(&secs), "the whole file but the damage heard: {secs} s");
    assert!(skipped >= 1, "the damaged frames are counted: {skipped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_decoded_natively_goes_through_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 44_100, 2, 16, false);
    // MP3 audio in an AVI container: symphonia has no AVI demuxer.
    tool("ffmpeg", &["-v", "error", "-y", "-i", "c.wav", "-c:a", "libmp3lame", "c.avi"], dir.path());
    let path = dir.path().join("c.avi");
    let opened = open(&file(path.clone()), None).unwrap();
    assert_eq!(opened.info.container, "ffmpeg");
    drop(opened);
    let call = play(&file(path.clone()), None).await;
    assert_heard(&reference(&path), &call.heard.audio(), "c.avi through ffmpeg");

    // Without ffmpeg the error names the format and says to install it.
    let out = Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
        .args(["play", "c.avi"])
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("install ffmpeg"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_end_comes_once_for_every_format() {
    let dir = tempfile::tempdir().unwrap();
    chirp_wav(dir.path(), "c.wav", 48_000, 2, 16, false);
    tool("opusenc", &["--quiet", "c.wav", "c.opus"], dir.path());
    let mut call = Call::join().await;
    let stream = open_stream(&call, &file(dir.path().join("c.opus")), None);
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    call.play_to_end(id).await;
    let more = tokio::time::timeout(Duration::from_millis(200), call.events.recv()).await;
    assert!(!matches!(more, Ok(Some(MediaEvent::StreamEnded { .. }))), "ended once");
}
