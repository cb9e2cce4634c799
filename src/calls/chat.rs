//! Chatting, between the plugins and the Telegram side: messages out paced within
//! Telegram's limits, messages in kept once when both accounts see them, and a
//! message's media downloaded once into the media cache to be played.
//!
//! The media cache is per run: a message id names a message only on the Telegram
//! side that numbered it (the loopback starts again at 1; another account, another
//! host sharing the cache folder count their own), so each host downloads into a
//! folder of its own, removed when it stops; folders left by hosts that did not stop
//! cleanly go after a day.
//!
//! Telegram's limits (its bot FAQ): about one message a second in a chat, twenty a
//! minute in a group, thirty a second in all. A send that would break them waits up to
//! [`MAX_WAIT`]; longer, it fails at once with `RateLimited` and when to retry, as does
//! every send to a chat Telegram answered with `FLOOD_WAIT` until that has passed.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::error::CallError;
use crate::telegram::messages::{Account, Identity, MemberStatus, Message, MessageId, Outgoing, Recent};
use crate::telegram::{ChatId, Telegram, TelegramError};

/// Longest a send waits for its turn before it is refused as rate-limited.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
const PER_CHAT_GAP: Duration = Duration::from_secs(1);
const PER_GROUP_MINUTE: usize = 20;
const PER_SECOND_ALL: usize = 30;
/// Messages remembered to keep each once (both accounts may deliver it).
const SEEN: usize = 4096;

/// Sends and edits made, to keep to Telegram's limits.
#[derive(Default)]
struct Pacing {
    /// Per chat: when each send of the last minute was let through.
    chats: HashMap<ChatId, VecDeque<Instant>>,
    /// Every send of the last second.
    all: VecDeque<Instant>,
    /// Chats Telegram told to wait, until when.
    blocked: HashMap<ChatId, Instant>,
}

impl Pacing {
    /// When a send to `chat` may go, at the earliest, from `now`.
    fn earliest(&mut self, chat: ChatId, now: Instant) -> Instant {
        let minute = Duration::from_secs(60);
        let log = self.chats.entry(chat).or_default();
        while log.front().is_some_and(|t| now.duration_since(*t) >= minute) {
            log.pop_front();
        }
        while self.all.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            self.all.pop_front();
        }
        let mut at = now;
        if let Some(last) = log.back() {
            at = at.max(*last + PER_CHAT_GAP);
        }
        // Groups (negative ids) take twenty a minute; private chats only the gap.
        if chat < 0 && log.len() >= PER_GROUP_MINUTE {
            at = at.max(log[log.len() - PER_GROUP_MINUTE] + minute);
        }
        if self.all.len() >= PER_SECOND_ALL {
            at = at.max(self.all[self.all.len() - PER_SECOND_ALL] + Duration::from_secs(1));
        }
        if let Some(until) = self.blocked.get(&chat) {
            at = at.max(*until);
        }
        at
    }

    fn take(&mut self, chat: ChatId, at: Instant) {
        self.chats.entry(chat).or_default().push_back(at);
        self.all.push_back(at);
    }
}

/// The chat side of the host: shared by every plugin.
pub struct Chats {
    telegram: Arc<dyn Telegram>,
    pacing: Mutex<Pacing>,
    /// Messages seen, to keep each once.
    seen: Mutex<Recent<(ChatId, MessageId)>>,
    /// Where a message's media is downloaded to be played: this run's own folder.
    media: PathBuf,
    /// What this run downloaded: (chat, message) → file.
    downloaded: Mutex<HashMap<(ChatId, MessageId), PathBuf>>,
}

impl Drop for Chats {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.media);
    }
}

/// How long a run's media folder outlives a host that did not remove it.
const STALE: Duration = Duration::from_secs(24 * 3600);

/// Whole seconds to wait, at least one.
fn seconds(d: Duration) -> u32 {
    (d.as_secs_f64().ceil() as u32).max(1)
}

impl Chats {
    /// The chat side, downloading into a folder of its own under `media_cache`.
    pub fn new(telegram: Arc<dyn Telegram>, media_cache: PathBuf) -> Chats {
        if let Ok(entries) = std::fs::read_dir(&media_cache) {
            for e in entries.flatten() {
                let old = e.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a > STALE));
                if old && e.file_name().to_string_lossy().starts_with("run-") {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let media = media_cache.join(format!("run-{}-{:08x}", std::process::id(), rand::random::<u32>()));
        Chats { telegram, pacing: Mutex::default(), seen: Mutex::new(Recent::new(SEEN)), media, downloaded: Mutex::default() }
    }

    /// The accounts chatting: the user account, and the bot if there is one.
    pub fn identity(&self) -> Result<Identity, CallError> {
        self.telegram.identity().map_err(CallError::from_telegram)
    }

    /// Whether a message should reach the plugins: each once, and in basic groups and
    /// private chats — where each account numbers messages its own way — only as the
    /// account that answers sees it, so a reply names the message it means.
    pub fn admit(&self, m: &Message) -> bool {
        let shared_ids = m.chat <= -1_000_000_000_000;
        if !shared_ids {
            let bot = self.telegram.identity().is_ok_and(|i| i.bot.is_some());
            let answering = if bot { Account::Bot } else { Account::User };
            if m.seen_by != answering {
                return false;
            }
        }
        self.seen.lock().first((m.chat, m.id))
    }

    /// Waits for `chat`'s turn to be sent to, or says how long to wait.
    async fn turn(&self, chat: ChatId) -> Result<(), CallError> {
        let now = Instant::now();
        let at = {
            let mut p = self.pacing.lock();
            let at = p.earliest(chat, now);
            if at.duration_since(now) > MAX_WAIT {
                return Err(CallError::RateLimited(seconds(at.duration_since(now))));
            }
            // Reserved now, so sends racing for the same turn queue behind it.
            p.take(chat, at);
            at
        };
        tokio::time::sleep_until(at.into()).await;
        Ok(())
    }

    /// A Telegram answer, with `FLOOD_WAIT` remembered for the chat.
    fn answered<T>(&self, chat: ChatId, r: Result<T, TelegramError>) -> Result<T, CallError> {
        if let Err(TelegramError::FloodWait { seconds, .. }) = &r {
            let until = Instant::now() + Duration::from_secs((*seconds).max(1) as u64);
            self.pacing.lock().blocked.insert(chat, until);
        }
        r.map_err(CallError::from_telegram)
    }

    /// Sends a message: its id.
    pub async fn send(&self, chat: ChatId, message: &Outgoing) -> Result<MessageId, CallError> {
        message.check().map_err(CallError::InvalidArgument)?;
        self.turn(chat).await?;
        let r = self.telegram.send(chat, message).await;
        self.answered(chat, r)
    }

    /// Replaces a message's text and buttons.
    pub async fn edit(&self, chat: ChatId, id: MessageId, message: &Outgoing) -> Result<(), CallError> {
        message.check().map_err(CallError::InvalidArgument)?;
        self.turn(chat).await?;
        let r = self.telegram.edit(chat, id, message).await;
        self.answered(chat, r)
    }

    /// Deletes a message (not paced: deleting adds nothing to a chat).
    pub async fn delete(&self, chat: ChatId, id: MessageId) -> Result<(), CallError> {
        let r = self.telegram.delete(chat, id).await;
        self.answered(chat, r)
    }

    /// Answers a button press.
    pub async fn answer_callback(&self, query: &str, text: Option<&str>, alert: bool) -> Result<(), CallError> {
        if text.is_some_and(|t| t.chars().count() > 200) {
            return Err(CallError::InvalidArgument("a callback answer takes at most 200 characters".into()));
        }
        self.telegram.answer_callback(query, text, alert).await.map_err(CallError::from_telegram)
    }

    /// `user`'s standing in `chat`.
    pub async fn member_status(&self, chat: ChatId, user: i64) -> Result<MemberStatus, CallError> {
        self.telegram.member_status(chat, user).await.map_err(CallError::from_telegram)
    }

    /// The media of message `id` in `chat`, downloaded (once) into the media cache, at
    /// most `max_bytes`: the file to play.
    pub async fn fetch_media(&self, chat: ChatId, id: MessageId, max_bytes: u64) -> Result<PathBuf, CallError> {
        let path = self.media.join(format!("chat{chat}-msg{id}"));
        let known = self.downloaded.lock().get(&(chat, id)).cloned();
        if let Some(p) = known
            && tokio::fs::metadata(&p).await.is_ok_and(|m| m.len() <= max_bytes)
        {
            return Ok(p);
        }
        tokio::fs::create_dir_all(&self.media).await.map_err(|e| cache_error(&self.media, e))?;
        // Written aside and renamed: a half-written download is never played.
        let part = self.media.join(format!("chat{chat}-msg{id}.{}.part", rand::random::<u32>()));
        let r = self.telegram.download(chat, id, &part, max_bytes).await;
        if let Err(e) = r {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(match e {
                e @ (TelegramError::NoMessage { .. }
                | TelegramError::NoMedia { .. }
                | TelegramError::TooLarge { .. }) => CallError::FileError(e.to_string()),
                e => CallError::from_telegram(e),
            });
        }
        tokio::fs::rename(&part, &path).await.map_err(|e| cache_error(&path, e))?;
        self.downloaded.lock().insert((chat, id), path.clone());
        Ok(path)
    }
}

fn cache_error(path: &Path, e: std::io::Error) -> CallError {
    CallError::Internal(format!("the media cache {} cannot be written: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_keep_a_second_apart_per_chat_and_twenty_a_minute_per_group() {
        let mut p = Pacing::default();
        let t0 = Instant::now();
        assert_eq!(p.earliest(-1, t0), t0);
        p.take(-1, t0);
        assert_eq!(p.earliest(-1, t0), t0 + PER_CHAT_GAP, "a second after the last");
        assert_eq!(p.earliest(-2, t0), t0, "another chat is free");
        let mut t = t0;
        for _ in 1..PER_GROUP_MINUTE {
            t = p.earliest(-1, t);
            p.take(-1, t);
        }
        let next = p.earliest(-1, t);
        assert_eq!(next, t0 + Duration::from_secs(60), "the twenty-first waits for the minute");
        let mut q = Pacing::default();
        for i in 0..PER_SECOND_ALL as i64 {
            q.take(-100 - i, t0);
        }
        assert_eq!(q.earliest(-999, t0), t0 + Duration::from_secs(1), "thirty a second in all");
        q.blocked.insert(-5, t0 + Duration::from_secs(30));
        assert_eq!(q.earliest(-5, t0 + Duration::from_secs(2)), t0 + Duration::from_secs(30), "FLOOD_WAIT kept");
    }
}
