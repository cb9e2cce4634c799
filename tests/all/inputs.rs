//! Bad input gets an error that names the thing and says what to do.

use std::time::Duration;

use wasmcalls::media::source::{Frame, Input, PcmFormat, SourceError, SourceSpec, open};

fn raw(path: std::path::PathBuf, rate: u32, channels: u8) -> SourceSpec {
    SourceSpec::File { path, raw: PcmFormat::stated(rate, channels) }
}

#[test]
fn any_sample_rate_plays_and_impossible_formats_are_refused() {
    for rate in [8000, 11025, 22050, 44100, 48000, 96000, 192000] {
        PcmFormat::new(rate, 2).unwrap();
    }
    assert!(matches!(PcmFormat::new(500, 2), Err(SourceError::BadRate(500))));
    assert!(PcmFormat::new(48000, 9).unwrap_err().to_string().contains("1 to 8 channels"));
}

#[test]
fn missing_empty_odd_and_directory_sources_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = |spec: SourceSpec| open(&spec, None).err().expect("refused");
    let e = err(raw(dir.path().join("nope.raw"), 48000, 2));
    assert!(matches!(e, SourceError::NotFound(_)) && e.to_string().contains("nope.raw"), "{e}");

    let empty = dir.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(err(raw(empty, 48000, 2)), SourceError::Empty(_)));

    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, [0u8; 1001]).unwrap();
    assert!(err(raw(odd.clone(), 48000, 2)).to_string().contains("1001 bytes"));
    assert!(matches!(err(raw(odd, 7, 2)), SourceError::BadRate(7)), "a raw file's stated rate is checked");

    assert!(matches!(err(raw(dir.path().to_path_buf(), 48000, 2)), SourceError::IsDirectory(_)));

    // A container's header is held to the same rates (fuzzing found a 4 GHz WAV).
    let fuzzed =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/media_bytes/wav-rate-4ghz-958e3430");
    let wav = dir.path().join("fast.wav");
    std::fs::copy(fuzzed, &wav).unwrap();
    let e = err(raw(wav, 48000, 2)).to_string();
    assert!(e.contains("fast.wav") && e.contains("4294967295 Hz"), "{e}");
}

#[test]
fn raw_pcm_at_any_rate_becomes_48k_frames_and_the_last_is_padded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.raw");
    // 30 ms of mono 8 kHz: 240 samples, 1.5 frames of 20 ms once at 48 kHz.
    let pcm: Vec<u8> = (0..240i16).flat_map(|s| (s * 50).to_le_bytes()).collect();
    std::fs::write(&path, pcm).unwrap();
    let opened = open(&raw(path, 8000, 1), None).unwrap();
    assert_eq!(opened.duration, Some(1440));
    assert_eq!((opened.info.container.as_str(), opened.info.sample_rate), ("raw", 8000));
    let Input::Pcm(mut input) = opened.input else { panic!("raw PCM is PCM") };
    assert_eq!(input.channels(), 1);
    let mut frame = vec![0i16; 960];
    assert_eq!(input.next_frame(&mut frame).unwrap(), Frame::Audio(960));
    assert_eq!(input.next_frame(&mut frame).unwrap(), Frame::Audio(480));
    assert!(frame[600..].iter().all(|&s| s == 0), "padded with silence");
    assert_eq!(input.next_frame(&mut frame).unwrap(), Frame::End);
}

#[test]
fn a_raw_file_opens_at_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.raw");
    std::fs::write(&path, vec![0u8; 48000 * 4 * 2]).unwrap(); // 2 s of 48 kHz stereo
    let opened = open(&raw(path, 48000, 2), Some(Duration::from_millis(1500))).unwrap();
    assert_eq!(opened.start, 72_000);
}
