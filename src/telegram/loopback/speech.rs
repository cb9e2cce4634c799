//! Simulated people speaking in the loopback's calls.
//!
//! A speaker plays a file as a participant would speak: encoded to Opus in 20 ms
//! packets, each with its RFC 6464 audio level, under the source (SSRC) its owner
//! announced when joining. Telegram's media server forwards a speaker's packets to every
//! other participant unchanged, so the loopback sends each packet, as it is, to every
//! client connection in the chat ([`Spoken`] on one broadcast channel; each connection's
//! peer sends it through its tap).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rtc::rtp::header::{EXTENSION_PROFILE_ONE_BYTE, Header};
use rtc::rtp::packet::Packet;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::peer::LEVEL_EXT_ID;
use crate::media::gain::Gain;
use crate::media::source::{self, SourceSpec};
use crate::media::{EncoderConfig, Stream};
use crate::telegram::ChatId;
use crate::transport::join::OPUS_PAYLOAD_TYPE;

/// Packets in flight to the connections: a connection this far behind loses the oldest.
const BACKLOG: usize = 256;

/// One packet a speaker sent into `chat`'s call.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub chat: ChatId,
    pub packet: Packet,
}

/// The speakers talking now, and the channel their packets go out on.
pub(super) struct Speech {
    out: broadcast::Sender<Arc<Spoken>>,
    talking: Mutex<HashMap<(ChatId, i64), AbortHandle>>,
}

impl Default for Speech {
    fn default() -> Self {
        Speech { out: broadcast::Sender::new(BACKLOG), talking: Mutex::default() }
    }
}

impl Speech {
    /// What speakers say from now on, for one client connection.
    pub fn listen(&self) -> broadcast::Receiver<Arc<Spoken>> {
        self.out.subscribe()
    }

    /// `user` (sending under `ssrc`) says the audio of `file` in `chat`'s call,
    /// replacing whatever they were saying: how long it lasts, when the file says.
    /// `keep` lives as long as the speech (a temporary file holding an upload).
    pub async fn speak(
        &self,
        chat: ChatId,
        user: i64,
        ssrc: u32,
        file: PathBuf,
        keep: Option<tempfile::TempPath>,
    ) -> Result<Option<Duration>, String> {
        let spec = SourceSpec::File { path: file, raw: crate::media::PcmFormat::stereo48() };
        let opened = tokio::task::spawn_blocking(move || source::open(&spec, None))
            .await
            .map_err(|e| format!("opening the file panicked: {e}"))?
            .map_err(|e| e.to_string())?;
        let stream = Stream::new(0, opened, EncoderConfig::default()).map_err(|e| e.to_string())?;
        let length = stream.duration().map(|t| Duration::from_micros(t * 1000 / 48));
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            let _keep = keep;
            say(chat, ssrc, stream, out).await;
        });
        if let Some(before) = self.talking.lock().insert((chat, user), task.abort_handle()) {
            before.abort();
        }
        Ok(length)
    }

    /// `user` stops talking in `chat` (they left, or muted).
    pub fn hush(&self, chat: ChatId, user: i64) {
        if let Some(task) = self.talking.lock().remove(&(chat, user)) {
            task.abort();
        }
    }

    /// Everyone in `chat` stops talking (the call ended).
    pub fn hush_chat(&self, chat: ChatId) {
        self.talking.lock().retain(|(c, _), task| {
            if *c == chat {
                task.abort();
            }
            *c != chat
        });
    }
}

/// Sends `stream`'s packets on their deadlines until it ends.
async fn say(chat: ChatId, ssrc: u32, mut stream: Stream, out: broadcast::Sender<Arc<Spoken>>) {
    let mut gain = Gain::default();
    let (mut seq, mut timestamp): (u16, u32) = (rand::random(), rand::random());
    let start = tokio::time::Instant::now();
    let mut sent_ticks = 0u64;
    let mut marker = true;
    loop {
        if stream.front().is_none()
            && stream.wants_encode()
            && let Err(e) = stream.encode_next(&mut gain)
        {
            tracing::warn!(chat, ssrc, "loopback: a speaker's file stopped: {e}");
            return;
        }
        let Some(front) = stream.front() else {
            if stream.is_finished() {
                return;
            }
            continue;
        };
        let mut header = Header {
            version: 2,
            marker: std::mem::take(&mut marker),
            payload_type: OPUS_PAYLOAD_TYPE,
            sequence_number: seq,
            timestamp,
            ssrc,
            ..Default::default()
        };
        header.extension = true;
        header.extension_profile = EXTENSION_PROFILE_ONE_BYTE;
        let _ = header.set_extension(LEVEL_EXT_ID, Bytes::copy_from_slice(&[front.level.min(127)]));
        let packet = Packet { header, payload: Bytes::copy_from_slice(front.payload()) };
        let ticks = u64::from(front.ticks.max(1));
        tokio::time::sleep_until(start + Duration::from_micros(sent_ticks * 1000 / 48)).await;
        // Nobody listening is no error: the speaker talks on.
        let _ = out.send(Arc::new(Spoken { chat, packet }));
        stream.pop();
        seq = seq.wrapping_add(1);
        timestamp = timestamp.wrapping_add(ticks as u32);
        sent_ticks += ticks;
        if stream.is_finished() {
            return;
        }
    }
}
