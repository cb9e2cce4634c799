//! Code hearing a call: what a listener asks for, checked once here, and the batches
//! it gets, each naming whose audio it is. The media plane cuts the batches
//! ([`crate::media::listen`]); the call manager knows who is behind each source.

use std::time::Duration;

use super::CallError;
use crate::telegram::ChatId;

pub use crate::media::listen::Handed;

/// Whose audio a listener hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenTarget {
    /// The call's mix, continuously.
    Mix,
    /// Every participant on their own, while they speak.
    Each,
    /// One participant (by user id), while they speak.
    Participant(i64),
}

/// A listener's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenRequest {
    pub target: ListenTarget,
    /// 8000, 12000, 16000, 24000 or 48000 Hz: what libopus decodes to directly.
    pub rate: u32,
    /// 1 or 2.
    pub channels: u8,
    /// Audio per batch: 20 ms to 1 s, a multiple of 20 ms.
    pub batch: Duration,
}

impl ListenRequest {
    /// Refuses a format libopus cannot decode to, or a batch that is not whole frames.
    pub fn check(&self) -> Result<(), CallError> {
        let bad = |m: String| Err(CallError::InvalidArgument(m));
        if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&self.rate) {
            return bad(format!("sample rate {} Hz: ask for 8000, 12000, 16000, 24000 or 48000", self.rate));
        }
        if !(1..=2).contains(&self.channels) {
            return bad(format!("{} channels: ask for 1 (mono) or 2 (stereo)", self.channels));
        }
        let ms = self.batch.as_millis();
        if !(20..=1000).contains(&ms) || !ms.is_multiple_of(20) {
            return bad(format!("batches of {ms} ms: ask for 20 to 1000 ms, a multiple of 20"));
        }
        Ok(())
    }
}

/// A stretch of a call's audio for a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeardAudio {
    pub chat: ChatId,
    /// Who spoke it, when known; none for the mix.
    pub user: Option<i64>,
    /// Their source; none for the mix.
    pub source: Option<u32>,
    /// Where it starts, in milliseconds since listening began.
    pub at_ms: u64,
    /// Interleaved 16-bit samples.
    pub pcm: Vec<i16>,
    /// Batches the listener's queue had no room for since the one before this.
    pub dropped: u32,
}

/// Where a listener's batches go: called off the async runtime, must not block.
pub type AudioSink = Box<dyn FnMut(HeardAudio) -> Handed + Send>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_libopus_decodes_to_in_whole_frames_is_accepted() {
        let ok =
            ListenRequest { target: ListenTarget::Mix, rate: 16_000, channels: 1, batch: Duration::from_millis(200) };
        assert!(ok.check().is_ok());
        for (bad, says) in [
            (ListenRequest { rate: 44_100, ..ok }, "44100 Hz"),
            (ListenRequest { channels: 3, ..ok }, "3 channels"),
            (ListenRequest { batch: Duration::from_millis(30), ..ok }, "30 ms"),
            (ListenRequest { batch: Duration::from_millis(2000), ..ok }, "2000 ms"),
        ] {
            let e = bad.check().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
