//! What a file or a stream is, from its first bytes — never from its name: a
//! mislabelled MP3 plays, and a web page named `.mp3` is called a web page.

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// An audio container (RIFF, FLAC, Ogg, ID3, Matroska, MP4, AIFF, CAF).
    Container,
    /// A bare codec stream (MPEG audio or ADTS frames): its sync word is short enough
    /// to occur by chance in raw PCM, so a `.raw` name outweighs it.
    Audio,
    /// A container symphonia has no demuxer for (AVI, ASF, FLV, MPEG transport or
    /// program streams), named: ffmpeg's to decode. Left to symphonia's probe, which
    /// scans for a codec's sync word, an AVI's MP3 was sometimes found and played with
    /// the container's chunks in between, sometimes not.
    Foreign(&'static str),
    /// Something that is not audio, named for the error message.
    NotAudio(&'static str),
    /// No signature: raw PCM, or a format we do not know.
    Unknown,
}

/// Classifies the start of a file or stream (a few hundred bytes are plenty).
pub fn sniff(head: &[u8]) -> Sniffed {
    let h = Head(head);
    if h.starts(b"RIFF") && h.at(8, b"WAVE")
        || h.starts(b"fLaC")
        || h.starts(b"OggS")
        || h.starts(b"ID3")
        || h.starts(b"\x1a\x45\xdf\xa3") // Matroska / WebM
        || h.starts(b"FORM") && (h.at(8, b"AIFF") || h.at(8, b"AIFC"))
        || h.starts(b"caff")
        || h.at(4, b"ftyp")
    // ISO MP4 / M4A (audio or not: the demuxer tells)
    {
        return Sniffed::Container;
    }
    if let Some(format) = foreign(h) {
        return Sniffed::Foreign(format);
    }
    if is_mpeg_audio(head) || is_adts(head) {
        return Sniffed::Audio;
    }
    let text = trimmed(head);
    let lower: Vec<u8> = text.iter().take(64).map(u8::to_ascii_lowercase).collect();
    let tstarts = |sig: &[u8]| lower.starts_with(sig);
    let named = if tstarts(b"<!doctype html") || tstarts(b"<html") || tstarts(b"<head") || tstarts(b"<body") {
        "a web page (HTML)"
    } else if tstarts(b"<?xml") || tstarts(b"<svg") {
        "an XML document"
    } else if tstarts(b"#extm3u") {
        "a playlist (M3U/HLS); HLS streams are not decoded natively — install ffmpeg to play them"
    } else if tstarts(b"[playlist]") {
        "a playlist (PLS); play one of the URLs it lists"
    } else if h.starts(b"MThd") {
        "a MIDI file (notes, not recorded sound)"
    } else if h.starts(b"%PDF") {
        "a PDF document"
    } else if h.starts(b"\x89PNG")
        || h.starts(b"\xff\xd8\xff")
        || h.starts(b"GIF8")
        || h.starts(b"BM") && head.len() > 14 && h.at(6, &[0, 0, 0, 0])
    {
        "an image"
    } else if h.starts(b"PK\x03\x04") || h.starts(b"\x1f\x8b") || h.starts(b"7z\xbc\xaf") || h.starts(b"Rar!") {
        "an archive"
    } else if h.starts(b"\x7fELF") {
        "a program"
    } else if h.starts(b"\0asm") {
        "a WebAssembly module"
    } else if tstarts(b"{") || tstarts(b"[") {
        "a JSON document"
    } else if looks_like_text(head) {
        "a text file"
    } else {
        return Sniffed::Unknown;
    };
    Sniffed::NotAudio(named)
}

fn trimmed(head: &[u8]) -> &[u8] {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(head.len());
    &head[start..]
}

/// Mostly printable ASCII/UTF-8 with line breaks: no audio looks like that.
fn looks_like_text(head: &[u8]) -> bool {
    if head.len() < 16 {
        return false;
    }
    let Ok(s) = std::str::from_utf8(&head[..head.len().min(512)]).or_else(|e| {
        // A multi-byte character cut at the end of the sniff is still text.
        std::str::from_utf8(&head[..e.valid_up_to()])
    }) else {
        return false;
    };
    let printable = s.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\r' || *c == '\t').count();
    s.len() >= 16 && printable * 100 >= s.chars().count() * 97 && s.contains(['\n', ' '])
}

/// The first bytes, asked for signatures.
#[derive(Clone, Copy)]
struct Head<'a>(&'a [u8]);

impl Head<'_> {
    fn starts(self, sig: &[u8]) -> bool {
        self.0.starts_with(sig)
    }

    /// `sig` at byte `off`.
    fn at(self, off: usize, sig: &[u8]) -> bool {
        self.0.get(off..off + sig.len()) == Some(sig)
    }
}

/// The containers only ffmpeg decodes here, by their signatures.
fn foreign(h: Head<'_>) -> Option<&'static str> {
    if h.starts(b"RIFF") && h.at(8, b"AVI ") {
        Some("an AVI container")
    } else if h.starts(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11") {
        Some("an ASF container (WMA, WMV)")
    } else if h.starts(b"FLV\x01") {
        Some("an FLV container")
    } else if h.starts(b"\0\0\x01\xba") {
        Some("an MPEG program stream")
    } else if h.at(0, b"G") && h.at(188, b"G") && h.at(376, b"G") {
        Some("an MPEG transport stream")
    } else {
        None
    }
}

/// An MPEG audio frame header (MP1/2/3) at the start.
fn is_mpeg_audio(h: &[u8]) -> bool {
    h.len() >= 4
        && h[0] == 0xff
        && h[1] & 0xe0 == 0xe0
        && (h[1] >> 3) & 3 != 1 // version not reserved
        && (h[1] >> 1) & 3 != 0 // layer not reserved
        && h[2] >> 4 != 0xf // bitrate not bad
        && (h[2] >> 2) & 3 != 3 // sample rate not reserved
}

/// An AAC ADTS header at the start.
fn is_adts(h: &[u8]) -> bool {
    h.len() >= 7 && h[0] == 0xff && h[1] & 0xf6 == 0xf0 && (h[2] >> 2) & 0xf < 13
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_known_by_its_bytes() {
        for head in [
            &b"RIFF\0\0\0\0WAVEfmt "[..],
            b"fLaC\0\0\0\x22",
            b"OggS\0\x02",
            b"ID3\x04\0\0",
            b"\x1a\x45\xdf\xa3\x9f",
            b"\0\0\0\x20ftypM4A ",
        ] {
            assert_eq!(sniff(head), Sniffed::Container, "{head:?}");
        }
        for head in [&b"\xff\xfb\x90\x64\0\0"[..], b"\xff\xf1\x50\x80\x02\x1f\xfc"] {
            assert_eq!(sniff(head), Sniffed::Audio, "{head:?}");
        }
    }

    #[test]
    fn containers_only_ffmpeg_decodes_are_named() {
        let mut ts = vec![0u8; 512];
        (0..3).for_each(|i| ts[i * 188] = b'G');
        for (head, named) in [
            (&b"RIFF\x24\x10\0\0AVI LIST"[..], "AVI"),
            (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9", "ASF"),
            (b"FLV\x01\x05\0\0\0\x09", "FLV"),
            (b"\0\0\x01\xba\x44\0\x04", "program stream"),
            (&ts, "transport stream"),
        ] {
            assert!(matches!(sniff(head), Sniffed::Foreign(f) if f.contains(named)), "{named}: {:?}", sniff(head));
        }
    }

    #[test]
    fn other_things_are_named() {
        let named = |h: &[u8]| match sniff(h) {
            Sniffed::NotAudio(what) => what,
            other => panic!("{h:?}: {other:?}"),
        };
        assert!(named(b"\n  <!DOCTYPE html><html><head>").contains("HTML"));
        assert!(named(b"<html>\n<body>not found</body>").contains("HTML"));
        assert!(named(b"MThd\0\0\0\x06\0\x01").contains("MIDI"));
        assert!(named(b"#EXTM3U\n#EXT-X-VERSION:3\n").contains("HLS"));
        assert!(named(b"\x89PNG\r\n\x1a\n").contains("image"));
        assert!(named(b"just some notes about the song\nline two\n").contains("text"));
    }

    #[test]
    fn raw_pcm_has_no_signature() {
        let pcm: Vec<u8> = (0..512u32).flat_map(|i| (((i as f32 * 0.1).sin() * 9000.0) as i16).to_le_bytes()).collect();
        assert_eq!(sniff(&pcm), Sniffed::Unknown);
        assert_eq!(sniff(&[0u8; 256]), Sniffed::Unknown, "silence");
    }
}
