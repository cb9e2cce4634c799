//! The call manager: the single owner of call state (joined, playing, paused, idle;
//! source, position, volume, muted). Plugin commands go through it to the media plane
//! and the Telegram side, chat commands through its [`Chats`]; media events (stream
//! ended, connection lost) and Telegram updates (kicked, invited, call ended,
//! messages, button presses, participants, raw) come out of it as [`HostEvent`]s, in
//! order.
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

use super::chat::Chats;
use super::dial::{DialError, dial};
use super::error::CallError;
use super::listening::{AudioSink, HeardAudio, ListenRequest, ListenTarget};
use super::recording::{RecordRequest, Recordings};
use super::speakers::Speakers;
use crate::media::inbound::InboundStats;
use crate::media::listen::ListenPlan;
use crate::media::record::{RecordPlan, RecordSummary};
use crate::media::source::{SourceError, SourceInfo, SourceSpec, TICKS_PER_SECOND};
use crate::media::stream::StreamError;
use crate::media::{CallId, Control, EncoderConfig, Listener, MediaError, MediaEvent, MediaPlane, Stream, StreamId};
use crate::telegram::{
    CallbackQuery, ChatId, Invite, JoinOptions, Message, ParticipantChange, ParticipantPage, Telegram, TelegramError,
    Update,
};

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
    /// The account the call goes through (`[[accounts]] name`), where there are named accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    pub state: CallState,
    /// The source playing or paused, as the plugin named it, if any.
    pub source: Option<String>,
    /// What that source turned out to be (format, codec, live, passing through).
    pub media: Option<SourceInfo>,
    pub position_ms: u64,
    /// The source's length; `None` when it is live or does not say.
    pub duration_ms: Option<u64>,
    pub volume: u16,
    /// Our participant shows as muted (the stream is paused meanwhile).
    pub muted: bool,
    /// The other participants' streams we hear, by SSRC.
    #[serde(default)]
    pub heard: Vec<InboundStats>,
    /// What preparing one frame costs its pacer thread, in µs (decode, resample,
    /// encode; or a packet passed through): the call's weight on the host.
    #[serde(default)]
    pub prepare_us: u32,
    /// How far from their deadlines its frames leave, 99th percentile over the call,
    /// in µs (early counts as much as late).
    #[serde(default)]
    pub send_p99_us: u64,
    /// The pacer thread sending it (0-based), once connected: calls move to another
    /// thread to play a stream their own has no room for.
    #[serde(default)]
    pub pacer_thread: Option<usize>,
    /// Who is speaking now.
    #[serde(default)]
    pub speaking: Vec<i64>,
    /// The other participants we know of (those that announced their source).
    #[serde(default)]
    pub participants: Vec<i64>,
}

/// What happened, for the plugins.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// The stream in the chat played to its end.
    StreamEnd(ChatId),
    /// We were removed from the chat (or our participant from its call): the call is gone.
    Kicked(ChatId),
    /// The chat's voice chat ended: the call is gone.
    CallEnded(ChatId),
    /// The call's connection was lost and could not be recovered: the call is gone.
    ConnectionLost {
        chat: ChatId,
        reason: String,
    },
    Invite(Invite),
    /// A new message (once, however many of our accounts saw it).
    Message(Arc<Message>),
    /// A button under one of the bot's messages was pressed.
    Callback(Arc<CallbackQuery>),
    /// Who is in the chat's call changed.
    Participants {
        chat: ChatId,
        changes: Arc<Vec<ParticipantChange>>,
    },
    /// A recording of the chat's call ended: what it wrote, and why it ended if it
    /// ended on its own (a cap, a file that could not be written).
    RecordingEnded {
        chat: ChatId,
        summary: Arc<RecordSummary>,
    },
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
    /// Where messages' media is downloaded to be played.
    pub media_cache: PathBuf,
    /// How long a call whose media path died keeps rejoining before its plugin hears
    /// it is lost ([`RECOVERY_WINDOW`] unless configured).
    pub recovery_window: Duration,
}

/// What a call plays, and how the plugin named it (status reports that name).
#[derive(Debug, Clone)]
pub struct Playable {
    pub spec: SourceSpec,
    pub label: String,
}

impl From<SourceSpec> for Playable {
    fn from(spec: SourceSpec) -> Playable {
        Playable { label: spec.describe(), spec }
    }
}

/// A call we joined (or are joining), as the manager keeps it.
struct Joined {
    state: CallState,
    call: Option<CallId>,
    ssrc: u32,
    /// What plays (kept to reopen it at a seek).
    source: Option<Playable>,
    stream: Option<StreamId>,
    volume: u16,
    muted: bool,
    /// How it joined, to join the same way again after a lost path.
    options: JoinOptions,
    /// The chat whose call it plays, while bridged.
    bridged_from: Option<ChatId>,
}

impl Joined {
    /// What played is over (it ended, or was skipped): the call idles, unbridged.
    fn stream_over(&mut self) {
        self.stream = None;
        self.state = CallState::Idle;
        self.bridged_from = None;
    }
}

/// How long a call whose media path went silent for good keeps trying to rejoin
/// before its plugin is told the connection is lost, unless configured
/// (`[host] recovery_window_s`): a minute covers a server move or a phone changing
/// networks; longer keeps a dead call listed as playing.
pub const RECOVERY_WINDOW: Duration = Duration::from_secs(60);

struct Inner {
    media: Arc<MediaPlane>,
    telegram: Arc<dyn Telegram>,
    options: ManagerOptions,
    calls: Mutex<HashMap<ChatId, Joined>>,
    events: mpsc::UnboundedSender<HostEvent>,
    chats: Chats,
    speakers: Arc<Mutex<Speakers>>,
    recordings: Mutex<Recordings>,
    /// Told each time a recording ends, for [`CallManager::recordings_finished`].
    recording_ended: tokio::sync::Notify,
    /// Set once the host is shutting down: joins are refused.
    draining: std::sync::atomic::AtomicBool,
}

/// Milliseconds in 48 kHz ticks.
fn ms(ticks: u64) -> u64 {
    ticks * 1000 / TICKS_PER_SECOND
}

/// The contract's variant for a source that cannot play.
fn source_error(e: StreamError) -> CallError {
    match e {
        StreamError::Source(e @ (SourceError::NotGranted { .. } | SourceError::Forbidden { .. })) => {
            CallError::PermissionDenied(e.to_string())
        }
        StreamError::Source(e @ (SourceError::BadRate(_) | SourceError::BadChannels(_) | SourceError::Seek { .. })) => {
            CallError::InvalidArgument(e.to_string())
        }
        StreamError::Source(SourceError::Quota(why)) => CallError::Quota(why),
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
        let chats = Chats::new(telegram.clone(), options.media_cache.clone());
        let manager = CallManager {
            inner: Arc::new(Inner {
                media,
                telegram,
                options,
                calls: Mutex::new(HashMap::new()),
                events: tx,
                chats,
                speakers: Arc::default(),
                recordings: Mutex::default(),
                recording_ended: tokio::sync::Notify::new(),
                draining: Default::default(),
            }),
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
                            e.stream_over();
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
            MediaEvent::ConsentExpired { call, silent } => {
                let Some(chat) = self.chat_of(call) else {
                    return;
                };
                // Rejoining takes seconds: off the event loop, so other calls' events flow.
                let manager = self.clone();
                let why = format!("the media path gave no answer for {:.0} s", silent.as_secs_f64());
                tokio::spawn(async move { manager.rejoin(chat, call, silent, why).await });
            }
            MediaEvent::Recovered { call, outage } => {
                let Some(chat) = self.chat_of(call) else {
                    return;
                };
                let ms = outage.as_millis() as u64;
                tracing::warn!(chat, "the media path was silent for {ms} ms and came back; the call played on");
                self.recovered(chat, ms, false);
            }
            MediaEvent::RecordingEnded { call, summary } => {
                let ended = self.inner.recordings.lock().ended(call, &summary);
                self.inner.recording_ended.notify_waiters();
                let Some((chat, by_itself)) = ended else {
                    return;
                };
                match &summary.error {
                    Some(e) => tracing::warn!(chat, "recording ended: {e}"),
                    None => tracing::info!(chat, files = summary.files.len(), "recording ended"),
                }
                // Whoever stopped it has the summary; an end nobody asked for is news.
                if by_itself {
                    self.emit(HostEvent::RecordingEnded { chat, summary: Arc::new(summary) });
                }
            }
            MediaEvent::Speaking { call, ssrc, speaking } => {
                let Some(chat) = self.chat_of(call) else {
                    return;
                };
                let known = self.inner.speakers.lock().owner(chat, ssrc);
                match known {
                    Some(peer) => self.speaking(chat, peer, speaking),
                    // Asking Telegram takes a round trip: off the event loop.
                    None => {
                        let manager = self.clone();
                        tokio::spawn(async move { manager.speaking_unknown(chat, ssrc, speaking).await });
                    }
                }
            }
        }
    }

    fn speaking(&self, chat: ChatId, peer: i64, speaking: bool) {
        let change = self.inner.speakers.lock().set_speaking(chat, peer, speaking);
        if let Some(change) = change {
            self.emit(HostEvent::Participants { chat, changes: Arc::new(vec![change]) });
        }
    }

    /// A stream whose source no participants update announced: who it is, from Telegram.
    async fn speaking_unknown(&self, chat: ChatId, ssrc: u32, speaking: bool) {
        match self.inner.telegram.participant_by_source(chat, ssrc).await {
            Ok(Some(p)) => {
                self.inner.speakers.lock().set_owner(chat, ssrc, p.peer);
                self.speaking(chat, p.peer, speaking);
            }
            Ok(None) => tracing::debug!(chat, ssrc, "a stream from a source nobody in the call has"),
            Err(e) => tracing::debug!(chat, ssrc, "could not look up who sends source {ssrc}: {e}"),
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
                    self.emit(HostEvent::CallEnded(chat));
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
            Update::Moved { chat, reason } => {
                let Some(call) = self.inner.calls.lock().get(&chat).and_then(|e| e.call) else {
                    return;
                };
                let manager = self.clone();
                tokio::spawn(async move { manager.rejoin(chat, call, Duration::ZERO, reason).await });
            }
            Update::Message(m) => {
                if self.inner.chats.admit(&m) {
                    self.emit(HostEvent::Message(Arc::new(*m)));
                }
            }
            Update::Callback(q) => self.emit(HostEvent::Callback(Arc::new(q))),
            Update::Participants { chat, changes } => {
                // Someone speaking who leaves (or is muted) stops speaking first.
                let mut all = self.inner.speakers.lock().learn(chat, &changes);
                all.extend(changes);
                self.emit(HostEvent::Participants { chat, changes: Arc::new(all) })
            }
            Update::Raw { json, chat } => self.emit(HostEvent::RawUpdate { json: json.to_string(), chat }),
        }
    }

    /// The call's media path went silent for good (for `silent`), or Telegram moved
    /// the call (`why` says which): join again, the same way, and play on from where
    /// the stream was, for up to the recovery window; the plugins hear a
    /// `wasmcalls.connectionRecovered` raw update — or, when the window passes, that
    /// the connection is lost.
    async fn rejoin(&self, chat: ChatId, old: CallId, silent: Duration, why: String) {
        let lost_at = tokio::time::Instant::now();
        let position = self.inner.media.stats(old).await.ok().filter(|s| s.stream.is_some()).map(|s| s.position);
        let Some((ssrc, options)) = ({
            let mut calls = self.inner.calls.lock();
            calls.get_mut(&chat).filter(|e| e.call == Some(old)).map(|e| {
                e.call = None;
                (e.ssrc, e.options.clone())
            })
        }) else {
            return; // left meanwhile
        };
        tracing::warn!(chat, "{why}: rejoining");
        self.inner.media.remove(old).await;
        // Telegram still lists our old source: leave it, or it lingers as a ghost.
        let _ = self.inner.telegram.leave(chat, ssrc).await;
        let dialed = loop {
            match self.dial(chat, &options).await {
                Ok(d) => break d,
                Err(e)
                    if lost_at.elapsed() < self.inner.options.recovery_window
                        && self.inner.calls.lock().contains_key(&chat) =>
                {
                    tracing::warn!(chat, "rejoining failed ({e}); trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => {
                    let reason = format!("{why}, and rejoining failed for {} s: {e}", lost_at.elapsed().as_secs());
                    if self.inner.calls.lock().remove(&chat).is_some() {
                        tracing::warn!(chat, "call connection lost: {reason}");
                        self.emit(HostEvent::ConnectionLost { chat, reason });
                    }
                    return;
                }
            }
        };
        // What played goes on from where it was (a live source from now).
        let playing = {
            let calls = self.inner.calls.lock();
            calls.get(&chat).map(|e| (e.source.clone().filter(|_| e.stream.is_some()), e.state, e.volume))
        };
        let Some((source, state, volume)) = playing else {
            // Left while rejoining.
            self.inner.media.remove(dialed.call).await;
            let _ = self.inner.telegram.leave(chat, dialed.ssrc).await;
            return;
        };
        let stream = match source {
            Some(s) => {
                let from = position.map(|p| Duration::from_secs_f64(p as f64 / TICKS_PER_SECOND as f64));
                match self.open(&s.spec, from).await {
                    Ok(st) => Some(st),
                    Err(_) => self.open(&s.spec, None).await.ok(),
                }
            }
            None => None,
        };
        if let Some(e) = self.inner.calls.lock().get_mut(&chat) {
            e.call = Some(dialed.call);
            e.ssrc = dialed.ssrc;
            e.stream = stream.as_ref().map(|s| s.id());
        }
        if state == CallState::Paused {
            let _ = self.control(dialed.call, Control::Pause);
        }
        if volume != 100 {
            let _ = self.control(dialed.call, Control::Volume(volume));
        }
        if let Some(stream) = stream
            && let Err(e) = self.control(dialed.call, Control::Play(stream))
        {
            // The call is back; what it played did not fit on its pacer thread again.
            tracing::warn!(chat, "rejoined, but the stream could not resume: {e}");
            if let Some(e) = self.inner.calls.lock().get_mut(&chat) {
                e.stream = None;
                e.state = if e.state == CallState::Paused { CallState::Paused } else { CallState::Idle };
            }
        }
        let outage_ms = (silent + lost_at.elapsed()).as_millis() as u64;
        tracing::warn!(chat, "rejoined after {outage_ms} ms without a media path; playing on");
        self.recovered(chat, outage_ms, true);
    }

    /// Tells the plugins a call's media path came back after `outage_ms` — by itself, or
    /// by a rejoin. Not a contract event (the call never stopped): a raw update, so a
    /// bot that cares — one that apologises in the chat, say — can.
    fn recovered(&self, chat: ChatId, outage_ms: u64, rejoined: bool) {
        let json = serde_json::json!({
            "_": "wasmcalls.connectionRecovered", "chat_id": chat, "outage_ms": outage_ms, "rejoined": rejoined,
        });
        self.emit(HostEvent::RawUpdate { json: json.to_string(), chat: Some(chat) });
    }

    /// The call's media or its Telegram membership is gone: forget it and tell the
    /// plugins why.
    async fn lost(&self, chat: ChatId, reason: String) {
        tracing::warn!(chat, "call connection lost: {reason}");
        if let Some(ssrc) = self.drop_call(chat).await {
            // Media is gone but Telegram may still list us: leave, or we linger as a ghost.
            if let Err(e) = self.inner.telegram.leave(chat, ssrc).await {
                tracing::debug!(chat, "leaving after the loss: {e}");
            }
        }
        self.emit(HostEvent::ConnectionLost { chat, reason });
    }

    /// Forgets a call whose other side is gone; its SSRC if there was one.
    async fn drop_call(&self, chat: ChatId) -> Option<u32> {
        let entry = self.inner.calls.lock().remove(&chat)?;
        self.inner.speakers.lock().forget(chat);
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
    pub async fn join(&self, chat: ChatId, source: impl Into<Playable>) -> Result<(), CallError> {
        self.join_with(chat, source, &JoinOptions::default()).await
    }

    /// Joins `chat`'s call as `options` say — as a channel, with an invite hash, muted,
    /// starting the voice chat if there is none — and plays `source` (paused while
    /// muted).
    pub async fn join_with(
        &self,
        chat: ChatId,
        source: impl Into<Playable>,
        options: &JoinOptions,
    ) -> Result<(), CallError> {
        let source = source.into();
        if self.draining() {
            return Err(CallError::Draining);
        }
        if self.inner.calls.lock().contains_key(&chat) {
            return Err(CallError::AlreadyInCall(chat));
        }
        // Check the source, and that the host has room for it, before anything connects.
        let stream = self.open(&source.spec, None).await?;
        self.inner.media.admits(stream.claim_us()).map_err(CallError::from_media)?;
        {
            let mut calls = self.inner.calls.lock();
            if calls.contains_key(&chat) {
                return Err(CallError::AlreadyInCall(chat));
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
                    muted: options.start_muted,
                    options: options.clone(),
                    bridged_from: None,
                },
            );
        }
        let dialed = match self.dial(chat, options).await {
            Ok(d) => d,
            Err(e) => {
                self.inner.calls.lock().remove(&chat);
                return Err(e);
            }
        };
        let still_wanted = {
            let mut calls = self.inner.calls.lock();
            match calls.get_mut(&chat) {
                Some(e) => {
                    e.call = Some(dialed.call);
                    e.ssrc = dialed.ssrc;
                    e.state = if options.start_muted { CallState::Paused } else { CallState::Playing };
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
        if options.start_muted {
            self.control(dialed.call, Control::Pause)?;
        }
        if let Err(e) = self.inner.media.control(dialed.call, Control::Play(stream)) {
            // Room went to another join meanwhile: leave rather than sit silent.
            tracing::warn!(chat, "joined, but the stream was refused: {e}; leaving");
            if let Some(ssrc) = self.drop_call(chat).await {
                let _ = self.inner.telegram.leave(chat, ssrc).await;
            }
            return Err(CallError::from_media(e));
        }
        let account = self.inner.telegram.account_of(chat).unwrap_or_default();
        tracing::info!(chat, %account, source = %source.label, muted = options.start_muted, "joined and playing");
        Ok(())
    }

    /// Dials `chat`'s call, starting a voice chat first if asked and there is none.
    async fn dial(&self, chat: ChatId, options: &JoinOptions) -> Result<super::Dialed, CallError> {
        let (media, telegram, ip) = (&self.inner.media, self.inner.telegram.as_ref(), self.inner.options.bind_ip);
        let mut dialed = dial(media, telegram, chat, ip, options).await;
        if options.create_if_missing && matches!(dialed, Err(DialError::Telegram(TelegramError::NoActiveGroupCall(_))))
        {
            tracing::info!(chat, "no voice chat: starting one");
            telegram.create_call(chat).await.map_err(CallError::from_telegram)?;
            dialed = dial(media, telegram, chat, ip, options).await;
        }
        dialed.map_err(|e| {
            // The plugin gets the contract's variant; the log keeps the whole story.
            tracing::warn!(chat, "joining failed: {e}");
            match e {
                DialError::Telegram(e) => CallError::from_telegram(e),
                DialError::Media(e @ MediaError::Capacity { .. }) => CallError::from_media(e),
                other => CallError::Other(format!("joining chat {chat} failed: {other}")),
            }
        })
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

    /// Leaves `chat`'s call and ends its voice chat for everyone (admins only).
    pub async fn leave_and_close(&self, chat: ChatId) -> Result<(), CallError> {
        self.leave(chat).await?;
        self.inner.telegram.discard_call(chat).await.map_err(CallError::from_telegram)
    }

    /// Shows our participant muted (or not) and pauses (or resumes) the stream, which
    /// keeps its place.
    pub async fn set_muted(&self, chat: ChatId, muted: bool) -> Result<(), CallError> {
        let (call, ssrc) = self.connected(chat, |e| {
            e.muted = muted;
            if muted && e.state == CallState::Playing {
                e.state = CallState::Paused;
            } else if !muted && e.state == CallState::Paused {
                e.state = if e.stream.is_some() { CallState::Playing } else { CallState::Idle };
            }
            Ok(e.ssrc)
        })?;
        self.control(call, if muted { Control::Pause } else { Control::Resume })?;
        self.inner.telegram.set_muted(chat, ssrc, muted).await.map_err(CallError::from_telegram)
    }

    /// Records `chat`'s call as `request` says until stopped, capped, or the call ends.
    pub async fn record(&self, chat: ChatId, request: RecordRequest) -> Result<(), CallError> {
        let call = self.connected_call(chat)?;
        if request.each.is_none() && request.mix.is_none() {
            return Err(CallError::InvalidArgument(
                "a recording needs a folder for each participant or a mix file".into(),
            ));
        }
        // Participants' files are named by who they are, when known by the first packet.
        let speakers = self.inner.speakers.clone();
        let name = move |ssrc: u32| match speakers.lock().owner(chat, ssrc) {
            Some(peer) => format!("{peer}-{ssrc}"),
            None => format!("source-{ssrc}"),
        };
        let plan = RecordPlan {
            each: request.each.map(|folder| (folder, Box::new(name) as crate::media::record::Namer)),
            mix: request.mix,
            max_duration: request.max_duration,
            max_bytes: request.max_bytes,
        };
        // Registered first: a recording that fails at once still finds its entry.
        if !self.inner.recordings.lock().start(call, chat) {
            return Err(CallError::InvalidArgument(format!(
                "chat {chat}'s call is being recorded already: stop that recording first"
            )));
        }
        if let Err(e) = self.inner.media.record(call, plan).await {
            let _ = self.inner.recordings.lock().ended(call, &RecordSummary::default());
            return Err(match e {
                crate::media::MediaError::Record(m) => CallError::InvalidArgument(m),
                e => CallError::Internal(e.to_string()),
            });
        }
        tracing::info!(chat, "recording");
        Ok(())
    }

    /// Stops recording `chat`'s call: what was written.
    pub async fn stop_record(&self, chat: ChatId) -> Result<RecordSummary, CallError> {
        let call = self.connected_call(chat)?;
        let done = self
            .inner
            .recordings
            .lock()
            .wait(call)
            .ok_or_else(|| CallError::InvalidArgument(format!("chat {chat}'s call is not being recorded")))?;
        self.control(call, Control::Listen(Listener::Recording, None))?;
        // The recorder writes out what its jitter buffers hold and closes its files.
        tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .map_err(|_| CallError::Internal("the recorder did not finish within 10 s".into()))?
            .map_err(|_| CallError::Internal("the recorder stopped without a summary".into()))
    }

    /// Hands `chat`'s call's audio to `deliver` as `request` says, as listener `id`
    /// (one per call: a second replaces the first), until [`CallManager::unlisten`] or
    /// the call ends. Returns once nothing said after it is missed.
    pub async fn listen(
        &self,
        chat: ChatId,
        id: u64,
        request: ListenRequest,
        mut deliver: AudioSink,
    ) -> Result<(), CallError> {
        request.check()?;
        let call = self.connected_call(chat)?;
        let wanted: Box<dyn Fn(u32) -> bool + Send> = match request.target {
            ListenTarget::Participant(user) => {
                let speakers = self.inner.speakers.clone();
                Box::new(move |ssrc| speakers.lock().owner(chat, ssrc) == Some(user))
            }
            ListenTarget::Mix | ListenTarget::Each => Box::new(|_| true),
        };
        let plan = ListenPlan {
            mix: request.target == ListenTarget::Mix,
            wanted,
            rate: request.rate,
            channels: request.channels.into(),
            batch: request.batch,
        };
        let speakers = self.inner.speakers.clone();
        let sink = Box::new(move |b: crate::media::listen::Batch| {
            let user = b.source.and_then(|s| speakers.lock().owner(chat, s));
            let (source, at_ms, pcm, dropped) = (b.source, b.at_ms, b.pcm, b.dropped);
            deliver(HeardAudio { chat, user, source, at_ms, pcm, dropped })
        });
        self.inner.media.listen(call, id, plan, sink).await.map_err(CallError::from_media)?;
        tracing::info!(chat, listener = id, "listening");
        Ok(())
    }

    /// Stops listener `id` hearing `chat`'s call.
    pub fn unlisten(&self, chat: ChatId, id: u64) -> Result<(), CallError> {
        let call = self.connected_call(chat)?;
        self.inner.media.unlisten(call, id).map_err(CallError::from_media)
    }

    /// The media call of `chat`, once connected.
    fn connected_call(&self, chat: ChatId) -> Result<CallId, CallError> {
        let calls = self.inner.calls.lock();
        let e = calls.get(&chat).ok_or(CallError::NotInCall(chat))?;
        e.call.ok_or(CallError::StillConnecting(chat))
    }

    /// A page of `chat`'s call's participants.
    pub async fn participants(
        &self,
        chat: ChatId,
        offset: Option<&str>,
        limit: u32,
    ) -> Result<ParticipantPage, CallError> {
        let mut page = self.inner.telegram.participants(chat, offset, limit).await.map_err(CallError::from_telegram)?;
        self.inner.speakers.lock().overlay(chat, &mut page);
        Ok(page)
    }

    /// The chat side: sending, editing, members, messages' media.
    pub fn chats(&self) -> &Chats {
        &self.inner.chats
    }

    /// Applies `f` to a connected call's entry and returns its media id.
    fn connected<R>(
        &self,
        chat: ChatId,
        f: impl FnOnce(&mut Joined) -> Result<R, CallError>,
    ) -> Result<(CallId, R), CallError> {
        let mut calls = self.inner.calls.lock();
        let e = calls.get_mut(&chat).ok_or(CallError::NotInCall(chat))?;
        let call = e.call.ok_or(CallError::StillConnecting(chat))?;
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
            _ => Err(CallError::NothingPlaying(chat)),
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

    /// Ends what plays now as if it had played to its end: the plugin hears
    /// `on-stream-end` and plays its next (a dashboard's or operator's skip).
    pub fn skip(&self, chat: ChatId) -> Result<(), CallError> {
        let (call, ()) = self.connected(chat, |e| match e.stream {
            Some(_) => {
                e.stream_over();
                Ok(())
            }
            None => Err(CallError::NothingPlaying(chat)),
        })?;
        self.control(call, Control::Stop)?;
        tracing::info!(chat, "skipped");
        self.emit(HostEvent::StreamEnd(chat));
        Ok(())
    }

    /// `change_stream`: the new source plays from the next frame, on the same connection.
    pub async fn change_stream(&self, chat: ChatId, source: impl Into<Playable>) -> Result<(), CallError> {
        let source = source.into();
        self.connected(chat, |_| Ok(()))?;
        let stream = self.open(&source.spec, None).await?;
        self.replace_stream(chat, stream, |e| {
            e.source = Some(source);
            // A bridge's stream replaced ends the bridge (its thread sees it go).
            e.bridged_from = None;
            if e.state != CallState::Paused {
                e.state = CallState::Playing;
            }
        })
    }

    /// Plays `stream` in `chat`'s call in place of what it plays, with `update` applied
    /// to the call's record. Refused — no room on the call's pacer thread — the old
    /// stream plays on and the record is as it was.
    fn replace_stream(
        &self,
        chat: ChatId,
        stream: Box<Stream>,
        update: impl FnOnce(&mut Joined),
    ) -> Result<(), CallError> {
        let id = stream.id();
        let (call, before) = self.connected(chat, |e| {
            let before = (e.state, e.source.clone(), e.stream, e.bridged_from);
            e.stream = Some(id);
            update(e);
            Ok(before)
        })?;
        self.control(call, Control::Play(stream)).inspect_err(|_| {
            if let Some(e) = self.inner.calls.lock().get_mut(&chat)
                && e.stream == Some(id)
            {
                (e.state, e.source, e.stream, e.bridged_from) = before;
            }
        })
    }

    /// Plays `from`'s call, mixed, into `to`'s in place of what `to` plays, until
    /// [`CallManager::unbridge`], another `play` in `to`, or `from`'s call ends (`to`'s
    /// stream then ends).
    pub async fn bridge(&self, from: ChatId, to: ChatId) -> Result<(), CallError> {
        if from == to {
            return Err(CallError::InvalidArgument(format!("chat {from} cannot be bridged into itself")));
        }
        let from_call = self.connected_call(from)?;
        let to_call = self.connected_call(to)?;
        let stream = self
            .inner
            .media
            .bridge(from_call, to_call, self.inner.options.encoder)
            .await
            .map_err(CallError::from_media)?;
        self.connected(to, |e| {
            e.stream = Some(stream);
            e.source = None;
            e.bridged_from = Some(from);
            if e.state != CallState::Paused {
                e.state = CallState::Playing;
            }
            Ok(())
        })?;
        tracing::info!(from, to, "bridged");
        Ok(())
    }

    /// Ends the bridge into `to`: it plays nothing.
    pub fn unbridge(&self, to: ChatId) -> Result<(), CallError> {
        let (to_call, from) = self.connected(to, |e| {
            let from = e
                .bridged_from
                .take()
                .ok_or_else(|| CallError::InvalidArgument(format!("chat {to}'s call plays no bridge")))?;
            e.stream = None;
            if e.state != CallState::Paused {
                e.state = CallState::Idle;
            }
            Ok(from)
        })?;
        let from_call = self.inner.calls.lock().get(&from).and_then(|e| e.call);
        match from_call {
            Some(from_call) => self.inner.media.unbridge(from_call, to_call).map_err(CallError::from_media),
            None => self.control(to_call, Control::Stop),
        }
    }

    /// The raw PCM format the call's source was stated in (the seed's `bitrate`), if it
    /// is a file: `change-stream` of the v0.1 contract keeps it.
    pub fn stated_format(&self, chat: ChatId) -> Option<crate::media::PcmFormat> {
        match &self.inner.calls.lock().get(&chat)?.source.as_ref()?.spec {
            SourceSpec::File { raw, .. } => Some(*raw),
            _ => None,
        }
    }

    /// Moves the playing source to `position` (files only): reopened there off the
    /// pacer, then swapped in at the next frame, on the same connection.
    pub async fn seek(&self, chat: ChatId, position: Duration) -> Result<(), CallError> {
        let (_, source) = self.connected(chat, |e| match (&e.source, e.stream) {
            (Some(s), Some(_)) => Ok(s.spec.clone()),
            _ => Err(CallError::NothingPlaying(chat)),
        })?;
        let stream = self.open(&source, Some(position)).await?;
        self.replace_stream(chat, stream, |_| {})
    }

    /// `calls`: every joined call.
    pub async fn calls(&self) -> Vec<CallStatus> {
        let snapshot: Vec<(ChatId, CallStatus, Option<CallId>)> = {
            let calls = self.inner.calls.lock();
            let speakers = self.inner.speakers.lock();
            calls
                .iter()
                .map(|(chat, e)| {
                    let status = CallStatus {
                        chat: *chat,
                        account: self.inner.telegram.account_of(*chat),
                        state: e.state,
                        source: match e.bridged_from {
                            Some(from) => Some(format!("bridge from {from}")),
                            None => e.stream.and(e.source.as_ref()).map(|s| s.label.clone()),
                        },
                        media: None,
                        position_ms: 0,
                        duration_ms: None,
                        volume: e.volume,
                        muted: e.muted,
                        heard: Vec::new(),
                        prepare_us: 0,
                        send_p99_us: 0,
                        pacer_thread: None,
                        speaking: speakers.speaking(*chat),
                        participants: speakers.participants(*chat),
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
                status.heard = s.heard;
                status.prepare_us = s.prepare_us.round() as u32;
                status.send_p99_us = s.deviation.p99_us;
                status.pacer_thread = self.inner.media.thread_of(call);
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

    /// The named accounts calls go through, with how many calls each holds.
    pub fn accounts(&self) -> Vec<(String, usize)> {
        self.inner.telegram.accounts()
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

    /// Makes every frame `chat`'s call prepares cost `per_frame` more CPU (tests only):
    /// an encoder turning dearer, for admission control's drift handling.
    #[cfg(feature = "fault-injection")]
    pub fn inject_cost(&self, chat: ChatId, per_frame: Duration) -> Result<(), CallError> {
        let (call, ()) = self.connected(chat, |_| Ok(()))?;
        self.control(call, Control::InjectCost(per_frame))
    }

    /// Leaves every call (on shutdown).
    pub async fn leave_all(&self) {
        for chat in self.joined_chats() {
            let _ = self.leave(chat).await;
        }
    }

    /// Refuses joins from now on ([`CallError::Draining`]); the calls in progress go on.
    pub fn drain(&self) {
        self.inner.draining.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the host is shutting down.
    pub fn draining(&self) -> bool {
        self.inner.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until no recording is running: each has closed its files, which are then
    /// complete on disk.
    pub async fn recordings_finished(&self) {
        loop {
            let ended = self.inner.recording_ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so an end between the look and the wait wakes it.
            ended.as_mut().enable();
            if self.inner.recordings.lock().is_empty() {
                return;
            }
            ended.await;
        }
    }
}
