//! The call manager: the single owner of call state (joined, playing, paused, idle;
//! source, position, volume). Plugin commands go through it to the media plane and the
//! Telegram side; media events (stream ended, connection lost) and Telegram updates
//! (kicked, invited, call ended, raw) come out of it as [`HostEvent`]s, in order.
//!
//! Illegal transitions are errors, never panics: joining a chat without an active
//! call is `NoActiveGroupCall`, pausing a chat we are not in is `NotInCall`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};

use super::dial::{DialError, dial};
use super::error::CallError;
use crate::media::source::{SourceError, SourceInfo, SourceSpec, TICKS_PER_SECOND};
use crate::media::stream::StreamError;
use crate::media::{CallId, Control, EncoderConfig, MediaEvent, MediaPlane, Stream, StreamId};
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
    /// The file, URL or named source playing or paused, if any.
    pub source: Option<String>,
    /// What that source turned out to be (format, codec, live, passing through).
    pub media: Option<SourceInfo>,
    pub position_ms: u64,
    /// The source's length; `None` when it is live or does not say.
    pub duration_ms: Option<u64>,
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
    /// Relative file paths in sources are resolved against this folder.
    pub files_base: PathBuf,
}

/// A call we joined (or are joining), as the manager keeps it.
struct Joined {
    state: CallState,
    call: Option<CallId>,
    ssrc: u32,
    /// What plays (kept to reopen it at a seek).
    source: Option<SourceSpec>,
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

/// Milliseconds in 48 kHz ticks.
fn ms(ticks: u64) -> u64 {
    ticks * 1000 / TICKS_PER_SECOND
}

fn already_in(chat: ChatId) -> CallError {
    CallError::Other(format!("already in chat {chat}'s group call; use change-stream to play something else"))
}

/// The contract's variant for a source that cannot play.
fn source_error(e: StreamError) -> CallError {
    match e {
        StreamError::Source(e @ SourceError::NotGranted { .. }) => CallError::PermissionDenied(e.to_string()),
        StreamError::Source(e @ (SourceError::BadRate(_) | SourceError::BadChannels(_) | SourceError::Seek { .. })) => {
            CallError::InvalidArgument(e.to_string())
        }
        e => CallError::FileError(e.to_string()),
    }
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

    /// Opens a source off the async workers (it reads files and may wait on a server).
    async fn open(&self, source: &SourceSpec, from: Option<Duration>) -> Result<Box<Stream>, CallError> {
        let source = match source {
            SourceSpec::File { path, raw } => {
                SourceSpec::File { path: self.inner.options.files_base.join(path), raw: *raw }
            }
            other => other.clone(),
        };
        let (media, encoder) = (self.inner.media.clone(), self.inner.options.encoder);
        tokio::task::spawn_blocking(move || media.open_stream(&source, from, encoder))
            .await
            .map_err(|e| CallError::Internal(format!("opening the source panicked: {e}")))?
            .map_err(source_error)
    }

    /// `join_group_call`: joins `chat`'s call and plays `source`.
    pub async fn join(&self, chat: ChatId, source: SourceSpec) -> Result<(), CallError> {
        if self.inner.calls.lock().contains_key(&chat) {
            return Err(already_in(chat));
        }
        // Check the source before anything connects.
        let stream = self.open(&source, None).await?;
        {
            let mut calls = self.inner.calls.lock();
            if calls.contains_key(&chat) {
                return Err(already_in(chat));
            }
            calls.insert(
                chat,
                Joined {
                    state: CallState::Connecting,
                    call: None,
                    ssrc: 0,
                    source: Some(source.clone()),
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
        tracing::info!(chat, source = %source.describe(), "joined and playing");
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

    /// `change_stream`: the new source plays from the next frame, on the same connection.
    pub async fn change_stream(&self, chat: ChatId, source: SourceSpec) -> Result<(), CallError> {
        self.connected(chat, |_| Ok(()))?;
        let stream = self.open(&source, None).await?;
        let (call, ()) = self.connected(chat, |e| {
            e.stream = Some(stream.id());
            e.source = Some(source);
            if e.state != CallState::Paused {
                e.state = CallState::Playing;
            }
            Ok(())
        })?;
        self.control(call, Control::Play(stream))
    }

    /// The raw PCM format the call's source was stated in (the seed's `bitrate`), if it
    /// is a file: `change-stream` of the v0.1 contract keeps it.
    pub fn stated_format(&self, chat: ChatId) -> Option<crate::media::PcmFormat> {
        match self.inner.calls.lock().get(&chat)?.source.as_ref()? {
            SourceSpec::File { raw, .. } => Some(*raw),
            _ => None,
        }
    }

    /// Moves the playing source to `position` (files only): reopened there off the
    /// pacer, then swapped in at the next frame, on the same connection.
    pub async fn seek(&self, chat: ChatId, position: Duration) -> Result<(), CallError> {
        let (_, source) = self.connected(chat, |e| match (&e.source, e.stream) {
            (Some(s), Some(_)) => Ok(s.clone()),
            _ => Err(CallError::Other(format!("nothing is playing in chat {chat}"))),
        })?;
        let stream = self.open(&source, Some(position)).await?;
        let (call, ()) = self.connected(chat, |e| {
            e.stream = Some(stream.id());
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
                        source: e.stream.and(e.source.as_ref()).map(SourceSpec::describe),
                        media: None,
                        position_ms: 0,
                        duration_ms: None,
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
                status.position_ms = ms(s.position);
                status.duration_ms = s.duration.map(ms);
                status.media = s.source.map(|mut info| {
                    info.pass_through = s.passing_through;
                    info
                });
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
