//! The call manager: the single owner of call state (joined, playing, paused, idle;
//! file, position, volume). Plugin commands go through it to the media plane and the
//! Telegram side; media events (stream ended, connection lost) and Telegram updates
//! (kicked, invited, call ended, raw) come out of it as [`HostEvent`]s, in order.
//!
//! Illegal transitions are errors, never panics: joining a chat without an active
//! call is `NoActiveGroupCall`, pausing a chat we are not in is `NotInCall`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use tokio::sync::{broadcast, mpsc};

use super::dial::{DialError, dial};
use super::error::CallError;
use crate::media::source::SourceError;
use crate::media::stream::StreamError;
use crate::media::{CallId, Control, EncoderConfig, MediaEvent, MediaPlane, PcmFormat, StreamId};
use crate::telegram::{ChatId, Invite, Telegram, Update};

/// What a joined call is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    Connecting,
    Playing,
    Paused,
    Idle,
}

/// A snapshot of one joined call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallStatus {
    pub chat: ChatId,
    pub state: CallState,
    pub file: Option<PathBuf>,
    pub position_ms: u64,
    pub duration_ms: u64,
    pub volume: u16,
}

/// What happened, for the plugins.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// The stream in the chat played to its end.
    StreamEnd(ChatId),
    /// We were removed from the chat, its call ended, or its connection was lost:
    /// the call is gone.
    Kicked(ChatId),
    Invite(Invite),
    /// A Telegram update as JSON, and the chat it concerns if any.
    RawUpdate {
        json: String,
        chat: Option<ChatId>,
    },
}

/// Settings the manager needs.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// Address our media sockets bind to.
    pub bind_ip: IpAddr,
    /// Port of the custom HTTP API (`get-port-server`).
    pub api_port: u16,
    pub encoder: EncoderConfig,
    /// Relative file paths in commands are resolved against this folder.
    pub files_base: PathBuf,
}

/// A call we joined (or are joining), as the manager keeps it.
struct Joined {
    state: CallState,
    call: Option<CallId>,
    ssrc: u32,
    format: PcmFormat,
    file: Option<PathBuf>,
    stream: Option<StreamId>,
    volume: u16,
}

struct Inner {
    media: Arc<MediaPlane>,
    telegram: Arc<dyn Telegram>,
    options: ManagerOptions,
    calls: Mutex<HashMap<ChatId, Joined>>,
    events: mpsc::UnboundedSender<HostEvent>,
}

/// Handle to the call manager; clones share it.
#[derive(Clone)]
pub struct CallManager {
    inner: Arc<Inner>,
}

impl CallManager {
    /// Starts the manager; it takes the media plane's events and Telegram's updates.
    pub fn start(
        media: Arc<MediaPlane>,
        media_events: mpsc::UnboundedReceiver<MediaEvent>,
        telegram: Arc<dyn Telegram>,
        options: ManagerOptions,
    ) -> (CallManager, mpsc::UnboundedReceiver<HostEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let updates = telegram.updates();
        let manager = CallManager {
            inner: Arc::new(Inner { media, telegram, options, calls: Mutex::new(HashMap::new()), events: tx }),
        };
        tokio::spawn(manager.clone().pump(media_events, updates));
        (manager, rx)
    }

    /// Turns media events and Telegram updates into state changes and host events.
    async fn pump(self, mut media: mpsc::UnboundedReceiver<MediaEvent>, mut updates: broadcast::Receiver<Update>) {
        loop {
            tokio::select! {
                ev = media.recv() => match ev {
                    Some(ev) => self.on_media(ev).await,
                    None => break,
                },
                u = updates.recv() => match u {
                    Ok(u) => self.on_update(u).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("{n} Telegram updates were dropped: the host fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }

    fn emit(&self, ev: HostEvent) {
        let _ = self.inner.events.send(ev);
    }

    fn chat_of(&self, call: CallId) -> Option<ChatId> {
        let calls = self.inner.calls.lock();
        calls.iter().find(|(_, e)| e.call == Some(call)).map(|(c, _)| *c)
    }

    async fn on_media(&self, ev: MediaEvent) {
        match ev {
            MediaEvent::Connected { .. } => {}
            MediaEvent::StreamEnded { call, stream, error } => {
                let Some(chat) = self.chat_of(call) else {
                    return;
                };
                let ended = {
                    let mut calls = self.inner.calls.lock();
                    match calls.get_mut(&chat) {
                        Some(e) if e.stream == Some(stream) => {
                            e.stream = None;
                            e.state = CallState::Idle;
                            true
                        }
                        _ => false, // a replaced stream: its end is not news
                    }
                };
                if let Some(error) = error {
                    tracing::warn!(chat, "stream stopped early: {error}");
                }
                if ended {
                    tracing::info!(chat, "stream ended");
                    self.emit(HostEvent::StreamEnd(chat));
                }
            }
            MediaEvent::ConnectionLost { call, reason } => {
                let Some(chat) = self.chat_of(call) else {
                    return;
                };
                self.lost(chat, reason).await;
            }
        }
    }

    async fn on_update(&self, u: Update) {
        match u {
            Update::Kicked(chat) => {
                tracing::warn!(chat, "kicked");
                self.drop_call(chat).await;
                self.emit(HostEvent::Kicked(chat));
            }
            Update::CallEnded(chat) => {
                if self.drop_call(chat).await.is_some() {
                    tracing::info!(chat, "group call ended");
                    self.emit(HostEvent::Kicked(chat));
                }
            }
            Update::Invited(invite) => {
                tracing::info!(chat = invite.chat, inviter = invite.inviter, "invited");
                self.emit(HostEvent::Invite(invite));
            }
            Update::Lost { chat, reason } => {
                if self.inner.calls.lock().contains_key(&chat) {
                    self.lost(chat, reason).await;
                }
            }
            Update::Raw { json, chat } => self.emit(HostEvent::RawUpdate { json: json.to_string(), chat }),
        }
    }

    /// The call's media or its Telegram membership is gone: forget it and tell the
    /// plugins (a raw `wasmcalls.connectionLost` with the reason, then on-kicked).
    async fn lost(&self, chat: ChatId, reason: String) {
        tracing::warn!(chat, "call connection lost: {reason}");
        if let Some(ssrc) = self.drop_call(chat).await {
            // Media is gone but Telegram may still list us: leave, or we linger as a ghost.
            if let Err(e) = self.inner.telegram.leave(chat, ssrc).await {
                tracing::debug!(chat, "leaving after the loss: {e}");
            }
        }
        let json = serde_json::json!({ "_": "wasmcalls.connectionLost", "chat_id": chat, "reason": reason });
        self.emit(HostEvent::RawUpdate { json: json.to_string(), chat: Some(chat) });
        self.emit(HostEvent::Kicked(chat));
    }

    /// Forgets a call whose other side is gone; its SSRC if there was one.
    async fn drop_call(&self, chat: ChatId) -> Option<u32> {
        let entry = self.inner.calls.lock().remove(&chat)?;
        if let Some(call) = entry.call {
            self.inner.media.remove(call).await;
        }
        Some(entry.ssrc)
    }

    fn open(&self, path: &Path, format: PcmFormat) -> Result<Box<crate::media::Stream>, CallError> {
        let path = self.inner.options.files_base.join(path);
        self.inner.media.open_stream(&path, format, self.inner.options.encoder).map_err(|e| match e {
            StreamError::Source(e @ (SourceError::RateTooHigh(_) | SourceError::UnsupportedRate(_))) => {
                CallError::InvalidArgument(e.to_string())
            }
            e => CallError::FileError(e.to_string()),
        })
    }

    /// `join_group_call`: joins `chat`'s call and plays `file` (raw s16le stereo at
    /// `sample_rate` Hz).
    pub async fn join(&self, chat: ChatId, file: &Path, sample_rate: u32) -> Result<(), CallError> {
        let format = PcmFormat::new(sample_rate, 2).map_err(|e| CallError::InvalidArgument(e.to_string()))?;
        // Check the file before anything connects.
        let stream = self.open(file, format)?;
        {
            let mut calls = self.inner.calls.lock();
            if calls.contains_key(&chat) {
                return Err(CallError::Other(format!(
                    "already in chat {chat}'s group call; use change-stream to play something else"
                )));
            }
            calls.insert(
                chat,
                Joined {
                    state: CallState::Connecting,
                    call: None,
                    ssrc: 0,
                    format,
                    file: Some(file.to_path_buf()),
                    stream: Some(stream.id()),
                    volume: 100,
                },
            );
        }
        let dialed = dial(&self.inner.media, self.inner.telegram.as_ref(), chat, self.inner.options.bind_ip).await;
        let dialed = match dialed {
            Ok(d) => d,
            Err(e) => {
                self.inner.calls.lock().remove(&chat);
                // The plugin gets the contract's variant; the log keeps the whole story.
                tracing::warn!(chat, "joining failed: {e}");
                return Err(match e {
                    DialError::Telegram(e) => CallError::from_telegram(e),
                    other => CallError::Other(format!("joining chat {chat} failed: {other}")),
                });
            }
        };
        let still_wanted = {
            let mut calls = self.inner.calls.lock();
            match calls.get_mut(&chat) {
                Some(e) => {
                    e.call = Some(dialed.call);
                    e.ssrc = dialed.ssrc;
                    e.state = CallState::Playing;
                    true
                }
                None => false,
            }
        };
        if !still_wanted {
            // Left (or kicked) while the connection was being set up.
            self.inner.media.remove(dialed.call).await;
            let _ = self.inner.telegram.leave(chat, dialed.ssrc).await;
            return Err(CallError::NotInCall(chat));
        }
        self.inner.media.control(dialed.call, Control::Play(stream)).map_err(CallError::from_media)?;
        tracing::info!(chat, file = %file.display(), "joined and playing");
        Ok(())
    }

    /// `leave_group_call`.
    pub async fn leave(&self, chat: ChatId) -> Result<(), CallError> {
        let entry = self.inner.calls.lock().remove(&chat).ok_or(CallError::NotInCall(chat))?;
        if let Some(call) = entry.call {
            self.inner.media.remove(call).await;
        }
        if let Err(e) = self.inner.telegram.leave(chat, entry.ssrc).await {
            tracing::warn!(chat, "leaving on the Telegram side failed: {e}");
        }
        tracing::info!(chat, "left");
        Ok(())
    }

    /// Applies `f` to a connected call's entry and returns its media id.
    fn connected<R>(
        &self,
        chat: ChatId,
        f: impl FnOnce(&mut Joined) -> Result<R, CallError>,
    ) -> Result<(CallId, R), CallError> {
        let mut calls = self.inner.calls.lock();
        let e = calls.get_mut(&chat).ok_or(CallError::NotInCall(chat))?;
        let call = e.call.ok_or_else(|| CallError::Other(format!("chat {chat}'s call is still connecting")))?;
        Ok((call, f(e)?))
    }

    fn control(&self, call: CallId, c: Control) -> Result<(), CallError> {
        self.inner.media.control(call, c).map_err(CallError::from_media)
    }

    /// `change_volume_call`: 0–200 %.
    pub fn set_volume(&self, chat: ChatId, volume: u16) -> Result<(), CallError> {
        if volume > 200 {
            return Err(CallError::InvalidArgument(format!("volume {volume} is above 200 %")));
        }
        let (call, ()) = self.connected(chat, |e| {
            e.volume = volume;
            Ok(())
        })?;
        self.control(call, Control::Volume(volume))
    }

    /// `pause_stream`.
    pub fn pause(&self, chat: ChatId) -> Result<(), CallError> {
        let (call, ()) = self.connected(chat, |e| match e.state {
            CallState::Playing | CallState::Paused => {
                e.state = CallState::Paused;
                Ok(())
            }
            _ => Err(CallError::Other(format!("nothing is playing in chat {chat}"))),
        })?;
        self.control(call, Control::Pause)
    }

    /// `resume_stream`.
    pub fn resume(&self, chat: ChatId) -> Result<(), CallError> {
        let (call, ()) = self.connected(chat, |e| {
            if e.state == CallState::Paused {
                e.state = if e.stream.is_some() { CallState::Playing } else { CallState::Idle };
            }
            Ok(())
        })?;
        self.control(call, Control::Resume)
    }

    /// `change_stream`: the new file plays from the next frame, on the same connection.
    pub fn change_stream(&self, chat: ChatId, file: &Path) -> Result<(), CallError> {
        let format = {
            let calls = self.inner.calls.lock();
            calls.get(&chat).ok_or(CallError::NotInCall(chat))?.format
        };
        let stream = self.open(file, format)?;
        let (call, ()) = self.connected(chat, |e| {
            e.stream = Some(stream.id());
            e.file = Some(file.to_path_buf());
            if e.state != CallState::Paused {
                e.state = CallState::Playing;
            }
            Ok(())
        })?;
        self.control(call, Control::Play(stream))
    }

    /// `calls`: every joined call.
    pub async fn calls(&self) -> Vec<CallStatus> {
        let snapshot: Vec<(ChatId, CallStatus, Option<CallId>)> = {
            let calls = self.inner.calls.lock();
            calls
                .iter()
                .map(|(chat, e)| {
                    let status = CallStatus {
                        chat: *chat,
                        state: e.state,
                        file: e.stream.and(e.file.clone()),
                        position_ms: 0,
                        duration_ms: 0,
                        volume: e.volume,
                    };
                    (*chat, status, e.call)
                })
                .collect()
        };
        let mut out = Vec::with_capacity(snapshot.len());
        for (_, mut status, call) in snapshot {
            if let Some(call) = call
                && let Ok(s) = self.inner.media.stats(call).await
            {
                status.position_ms = s.position_frames * 20;
                status.duration_ms = s.total_frames * 20;
            }
            out.push(status);
        }
        out.sort_by_key(|s| s.chat);
        out
    }

    /// `active_calls`: the joined calls that are playing.
    pub async fn active_calls(&self) -> Vec<CallStatus> {
        self.calls().await.into_iter().filter(|c| c.state == CallState::Playing).collect()
    }

    /// `get_cache_id`: the account's own user id.
    pub fn my_id(&self) -> Result<i64, CallError> {
        self.inner.telegram.me().map_err(CallError::from_telegram)
    }

    /// Which Telegram the calls go to (`loopback` or `telegram`).
    pub fn telegram_name(&self) -> &'static str {
        self.inner.telegram.name()
    }

    /// `get_port_server`: the custom API's port.
    pub fn api_port(&self) -> u16 {
        self.inner.options.api_port
    }

    /// Every call's state, without asking the media plane (cheap; for metrics).
    pub fn states(&self) -> Vec<CallState> {
        self.inner.calls.lock().values().map(|e| e.state).collect()
    }

    /// Chats with a joined (or joining) call.
    pub fn joined_chats(&self) -> Vec<ChatId> {
        let mut v: Vec<ChatId> = self.inner.calls.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Makes the handling of `chat`'s call panic on its pacer shard (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn inject_fault(&self, chat: ChatId) -> Result<(), CallError> {
        let (call, ()) = self.connected(chat, |_| Ok(()))?;
        self.control(call, Control::InjectPanic)
    }

    /// Leaves every call (on shutdown).
    pub async fn leave_all(&self) {
        for chat in self.joined_chats() {
            let _ = self.leave(chat).await;
        }
    }
}
