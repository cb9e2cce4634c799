//! Bad input gets an error that names the thing and says what to do.

use wasmcalls::media::source::{PcmFormat, PcmSource, SourceError};

#[test]
fn unsupported_rates_and_channels_are_refused_with_advice() {
    let e = PcmFormat::new(44100, 2).unwrap_err();
    assert!(matches!(e, SourceError::UnsupportedRate(44100)));
    assert!(e.to_string().contains("ffmpeg"), "{e}");
    assert!(matches!(PcmFormat::new(96000, 2), Err(SourceError::RateTooHigh(96000))));
    assert!(PcmFormat::new(48000, 3).unwrap_err().to_string().contains("mono (1) or stereo (2)"));
    for rate in [8000, 12000, 16000, 24000, 48000] {
        PcmFormat::new(rate, 1).unwrap();
    }
}

#[test]
fn missing_empty_odd_and_wav_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let f = PcmFormat::stereo48();
    let missing = dir.path().join("nope.raw");
    let e = PcmSource::open(&missing, f).err().unwrap();
    assert!(matches!(e, SourceError::NotFound { .. }));
    assert!(e.to_string().contains("nope.raw"), "{e}");

    let empty = dir.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(PcmSource::open(&empty, f), Err(SourceError::Empty { .. })));

    let odd = dir.path().join("odd.raw");
    std::fs::write(&odd, [0u8; 1001]).unwrap();
    let e = PcmSource::open(&odd, f).err().unwrap();
    assert!(e.to_string().contains("1001 bytes"), "{e}");

    let wav = dir.path().join("song.wav");
    let mut bytes = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
    bytes.resize(48, 0);
    std::fs::write(&wav, bytes).unwrap();
    let e = PcmSource::open(&wav, f).err().unwrap();
    assert!(matches!(e, SourceError::LooksLikeWav { .. }));
    assert!(e.to_string().contains("ffmpeg"), "{e}");

    assert!(matches!(PcmSource::open(dir.path(), f), Err(SourceError::IsDirectory { .. })));
}

#[test]
fn a_source_streams_frames_and_pads_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.raw");
    // 1.5 frames of mono 8 kHz: 240 samples.
    let pcm: Vec<u8> = (0..240i16).flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, pcm).unwrap();
    let mut src = PcmSource::open(&path, PcmFormat::new(8000, 1).unwrap()).unwrap();
    assert_eq!(src.total_frames(), 2);
    let mut frame = vec![0i16; 160];
    assert_eq!(src.read_frame(&mut frame).unwrap(), 160);
    assert_eq!(frame[159], 159);
    assert_eq!(src.read_frame(&mut frame).unwrap(), 80);
    assert_eq!(frame[0], 160);
    assert!(frame[80..].iter().all(|&s| s == 0), "padded with silence");
    assert_eq!(src.read_frame(&mut frame).unwrap(), 0);
    assert_eq!(src.frames_read(), 2);
}
