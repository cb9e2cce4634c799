//! The recordings in progress, by call: who waits for each to end. A recording ends
//! in the media plane (stopped, capped, failed, or its call gone); its summary comes
//! back as a media event and goes to whoever stopped it and to the plugins.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::media::CallId;
use crate::media::record::RecordSummary;
use crate::telegram::ChatId;

/// What to record, paths already checked against the grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRequest {
    /// Each participant to an Ogg Opus file of their own in this folder.
    pub each: Option<PathBuf>,
    /// The mix to this WAV file.
    pub mix: Option<PathBuf>,
    pub max_duration: Duration,
    pub max_bytes: u64,
}

struct Active {
    chat: ChatId,
    waiting: Vec<oneshot::Sender<RecordSummary>>,
}

/// Recordings by the call they record.
#[derive(Default)]
pub struct Recordings {
    active: HashMap<CallId, Active>,
}

impl Recordings {
    /// Notes `call`'s recording as started; false if one already is.
    pub fn start(&mut self, call: CallId, chat: ChatId) -> bool {
        if self.active.contains_key(&call) {
            return false;
        }
        self.active.insert(call, Active { chat, waiting: Vec::new() });
        true
    }

    /// Whether no recording is running.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// Someone waits for `call`'s recording to end: its summary, once it has.
    pub fn wait(&mut self, call: CallId) -> Option<oneshot::Receiver<RecordSummary>> {
        let active = self.active.get_mut(&call)?;
        let (tx, rx) = oneshot::channel();
        active.waiting.push(tx);
        Some(rx)
    }

    /// `call`'s recording ended: the chat it was in, and whether it ended by itself
    /// (nobody stopped it; whoever did has the summary now).
    pub fn ended(&mut self, call: CallId, summary: &RecordSummary) -> Option<(ChatId, bool)> {
        let active = self.active.remove(&call)?;
        let by_itself = active.waiting.is_empty();
        for w in active.waiting {
            let _ = w.send(summary.clone());
        }
        Some((active.chat, by_itself))
    }
}
