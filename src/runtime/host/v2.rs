//! The v0.2 contract's imports (`wit/v0.2`): `calls` forwarded to the call manager,
//! `chat` to its chat side (paced, and only where `grants.messages` allows), `config`
//! and `logging`. Every argument is checked against the grants before anything runs.

use std::time::{Duration, Instant};

use super::{Level, PluginState, host_fault};
use crate::calls::{CallError, CallState, CallStatus, Handed, ListenRequest, ListenTarget, Playable, RecordRequest};
use crate::media::record::RecordSummary;
use crate::media::{PcmFormat, SourceSpec};
use crate::runtime::bindings::v2::wasmcalls::bot::{audio, calls, chat, config, logging, types};
use crate::telegram::messages::{self as m, ButtonAction, Outgoing};

/// How a v0.2 command failed, as the bindings see it: a contract `error` returns to
/// the plugin, a host fault traps it.
#[derive(Debug)]
pub enum Refusal {
    Refused(types::Error),
    Fault(wasmtime::Error),
}

impl From<CallError> for Refusal {
    fn from(e: CallError) -> Self {
        use types::Error as W;
        Refusal::Refused(match e {
            CallError::Internal(m) => return Refusal::Fault(host_fault(&m)),
            CallError::HostCoreNotRunning => W::Other(e.to_string()),
            CallError::ClientNotRunning => W::ClientNotRunning,
            CallError::NoActiveGroupCall(c) => W::NoActiveGroupCall(c),
            CallError::NotInCall(c) => W::NotInCall(c),
            CallError::NoClient => W::NoClient(e.to_string()),
            CallError::NoBot(m) => W::NoClient(m),
            CallError::PermissionDenied(m) => W::PermissionDenied(m),
            CallError::InvalidArgument(m) => W::InvalidArgument(m),
            CallError::FileError(m) => W::SourceError(m),
            CallError::AlreadyInCall(c) => W::AlreadyInCall(c),
            CallError::StillConnecting(c) => W::StillConnecting(c),
            CallError::NothingPlaying(c) => W::NothingPlaying(c),
            CallError::RateLimited(s) => W::RateLimited(s),
            CallError::Telegram { code, name } => W::Telegram(types::TelegramError { code, name }),
            // A case of its own would break every 0.2.x guest's linking (wasmtime checks
            // a variant's cases exactly); the words start with "capacity:".
            CallError::Capacity(m) | CallError::Other(m) => W::Other(m),
            e @ (CallError::Draining | CallError::Quota(_)) => W::Other(e.to_string()),
        })
    }
}

impl PluginState {
    /// A v0.2 command's result: logged, and a contract error returned or a fault trapped.
    fn v2<T>(&self, command: &str, chat: i64, r: Result<T, CallError>) -> Result<T, Refusal> {
        self.logged(command, chat, &r);
        r.map_err(Refusal::from)
    }

    /// A grant check's verdict on `command`: a refusal is logged and recorded.
    fn granted(&self, command: &str, chat: i64, check: Result<(), CallError>) -> Result<(), Refusal> {
        check.map_err(|e| {
            self.denied(command, chat, &e);
            e.into()
        })
    }

    /// Checks a command naming `chat` against the grants.
    fn may_call(&self, command: &str, chat: i64) -> Result<(), Refusal> {
        self.granted(command, chat, self.chat(chat))
    }

    /// Checks a chat command naming `chat` against `grants.messages`.
    fn may_chat(&self, command: &str, chat: i64) -> Result<(), Refusal> {
        self.granted(command, chat, self.grants.check_messages(&self.name, chat))
    }

    /// What a `media-source` names, as the grants allow it; a message's media is
    /// downloaded first (host time, not the plugin's).
    async fn playable(&mut self, source: types::MediaSource) -> Result<Playable, CallError> {
        let name = self.name.clone();
        let g = &self.grants;
        Ok(match source {
            types::MediaSource::File(p) => {
                Playable { label: p.clone(), spec: g.file_source(&name, &p, PcmFormat::stereo48())? }
            }
            types::MediaSource::Url(u) => Playable { label: u.clone(), spec: g.url_source(&name, &u)? },
            types::MediaSource::Raw(r) => {
                let format =
                    PcmFormat::new(r.sample_rate, r.channels).map_err(|e| CallError::InvalidArgument(e.to_string()))?;
                Playable { label: r.path.clone(), spec: g.file_source(&name, &r.path, format)? }
            }
            types::MediaSource::Named(n) => Playable {
                label: format!("{}:{}", n.name, n.argument),
                spec: g.named_source(&name, &n.name, &n.argument)?,
            },
            types::MediaSource::Message(msg) => {
                g.check_messages(&name, msg.chat)?;
                self.counters.meter.check().map_err(|e| self.quota_refused(e))?;
                let t0 = Instant::now();
                let path = self.manager.chats().fetch_media(msg.chat, msg.message, self.download_max).await;
                self.host_since(t0);
                if let Ok(p) = &path {
                    self.counters.meter.took(std::fs::metadata(p).map_or(0, |m| m.len()));
                }
                Playable {
                    label: format!("message {} in chat {}", msg.message, msg.chat),
                    spec: SourceSpec::File { path: path?, raw: PcmFormat::stereo48() },
                }
            }
        })
    }

    /// The calls among `list` the plugin may see, for the contract.
    fn granted_v2(&self, list: Vec<CallStatus>) -> Vec<types::CallStatus> {
        list.into_iter().filter(|c| self.grants.chat_allowed(c.chat)).map(status_to_wit).collect()
    }
}

fn status_to_wit(s: CallStatus) -> types::CallStatus {
    types::CallStatus {
        chat: s.chat,
        state: match s.state {
            CallState::Connecting => types::CallState::Connecting,
            CallState::Playing => types::CallState::Playing,
            CallState::Paused => types::CallState::Paused,
            CallState::Idle => types::CallState::Idle,
        },
        source: s.source,
        position_ms: s.position_ms,
        duration_ms: s.duration_ms,
        volume: s.volume,
        muted: s.muted,
    }
}

fn participant_to_wit(p: m::Participant) -> types::Participant {
    types::Participant {
        peer: p.peer,
        source: p.source,
        muted: p.muted,
        speaking: p.speaking,
        volume: p.volume,
        is_self: p.is_self,
    }
}

/// The contract's records for the events the runtime delivers.
pub(crate) mod events {
    use super::*;
    use crate::telegram::messages::{Command, ParticipantChange};

    pub fn identity(i: &m::Identity) -> types::Identity {
        types::Identity { user: i.user, bot: i.bot.as_ref().map(|b| b.id) }
    }

    fn attachment(a: &m::Attachment) -> types::Attachment {
        types::Attachment {
            kind: match a.kind {
                m::MediaKind::Audio => types::MediaKind::Audio,
                m::MediaKind::Voice => types::MediaKind::Voice,
                m::MediaKind::Document => types::MediaKind::Document,
                m::MediaKind::Video => types::MediaKind::Video,
            },
            file_name: a.file_name.clone(),
            mime_type: a.mime_type.clone(),
            size: a.size,
            duration_s: a.duration_s,
            title: a.title.clone(),
            performer: a.performer.clone(),
        }
    }

    /// A message, its command read as addressed to `bot` (our bot's username).
    pub fn message(msg: &m::Message, bot: Option<&str>) -> types::Message {
        types::Message {
            chat: msg.chat,
            id: msg.id,
            sender: msg.sender,
            text: msg.text.clone(),
            command: Command::parse(&msg.text, bot).map(|c| types::Command { name: c.name, args: c.args }),
            reply_to: msg
                .reply_to
                .as_ref()
                .map(|r| types::Reply { message: r.message, media: r.media.as_ref().map(attachment) }),
            media: msg.media.as_ref().map(attachment),
            date: msg.date,
        }
    }

    pub fn callback(q: &m::CallbackQuery) -> types::CallbackQuery {
        types::CallbackQuery {
            id: q.id.clone(),
            chat: q.chat,
            message: q.message,
            sender: q.sender,
            data: q.data.clone(),
        }
    }

    pub fn changes(list: &[ParticipantChange]) -> Vec<types::ParticipantChange> {
        list.iter()
            .map(|c| match c {
                ParticipantChange::Joined(p) => types::ParticipantChange::Joined(participant_to_wit(p.clone())),
                ParticipantChange::Left(p) => types::ParticipantChange::Left(*p),
                ParticipantChange::Muted(p) => types::ParticipantChange::Muted(*p),
                ParticipantChange::Unmuted(p) => types::ParticipantChange::Unmuted(*p),
                ParticipantChange::StartedSpeaking(p) => types::ParticipantChange::StartedSpeaking(*p),
                ParticipantChange::StoppedSpeaking(p) => types::ParticipantChange::StoppedSpeaking(*p),
            })
            .collect()
    }
}

impl types::Host for PluginState {
    fn convert_error(&mut self, err: Refusal) -> wasmtime::Result<types::Error> {
        match err {
            Refusal::Refused(e) => Ok(e),
            Refusal::Fault(e) => Err(self.fault(e)),
        }
    }
}

impl calls::Host for PluginState {
    async fn join(
        &mut self,
        chat: i64,
        source: types::MediaSource,
        options: types::JoinOptions,
    ) -> Result<(), Refusal> {
        self.may_call("join", chat)?;
        self.granted("join", chat, self.quota_calls(chat))?;
        if let Some(channel) = options.join_as
            && channel > -1_000_000_000_000
        {
            let e = CallError::InvalidArgument(format!("join-as {channel} is not a channel id (-100…)"));
            return self.v2("join", chat, Err(e));
        }
        let t0 = Instant::now();
        let r = match self.playable(source).await {
            Ok(source) => {
                let options = m::JoinOptions {
                    join_as: options.join_as,
                    invite_hash: options.invite_hash.filter(|h| !h.is_empty()),
                    start_muted: options.start_muted,
                    create_if_missing: options.create_if_missing,
                    accounts: self.grants.accounts().to_vec(),
                };
                self.manager.join_with(chat, source, &options).await
            }
            Err(e) => Err(e),
        };
        self.host_since(t0);
        if r.is_ok() {
            self.counters.joined.lock().insert(chat);
        }
        self.v2("join", chat, r)
    }

    async fn leave(&mut self, chat: i64, close: bool) -> Result<(), Refusal> {
        self.may_call("leave", chat)?;
        let t0 = Instant::now();
        let r = if close { self.manager.leave_and_close(chat).await } else { self.manager.leave(chat).await };
        self.host_since(t0);
        self.counters.joined.lock().remove(&chat);
        self.v2("leave", chat, r)
    }

    async fn play(&mut self, chat: i64, source: types::MediaSource) -> Result<(), Refusal> {
        self.may_call("play", chat)?;
        let t0 = Instant::now();
        let r = match self.playable(source).await {
            Ok(source) => self.manager.change_stream(chat, source).await,
            Err(e) => Err(e),
        };
        self.host_since(t0);
        self.v2("play", chat, r)
    }

    async fn pause(&mut self, chat: i64) -> Result<(), Refusal> {
        self.may_call("pause", chat)?;
        let r = self.manager.pause(chat);
        self.v2("pause", chat, r)
    }

    async fn resume(&mut self, chat: i64) -> Result<(), Refusal> {
        self.may_call("resume", chat)?;
        let r = self.manager.resume(chat);
        self.v2("resume", chat, r)
    }

    async fn mute(&mut self, chat: i64) -> Result<(), Refusal> {
        self.may_call("mute", chat)?;
        let t0 = Instant::now();
        let r = self.manager.set_muted(chat, true).await;
        self.host_since(t0);
        self.v2("mute", chat, r)
    }

    async fn unmute(&mut self, chat: i64) -> Result<(), Refusal> {
        self.may_call("unmute", chat)?;
        let t0 = Instant::now();
        let r = self.manager.set_muted(chat, false).await;
        self.host_since(t0);
        self.v2("unmute", chat, r)
    }

    async fn seek(&mut self, chat: i64, position_ms: u64) -> Result<(), Refusal> {
        self.may_call("seek", chat)?;
        let t0 = Instant::now();
        let r = self.manager.seek(chat, Duration::from_millis(position_ms)).await;
        self.host_since(t0);
        self.v2("seek", chat, r)
    }

    async fn set_volume(&mut self, chat: i64, percent: u16) -> Result<(), Refusal> {
        self.may_call("set-volume", chat)?;
        let r = self.manager.set_volume(chat, percent);
        self.v2("set-volume", chat, r)
    }

    async fn status(&mut self, chat: i64) -> wasmtime::Result<Option<types::CallStatus>> {
        if !self.grants.chat_allowed(chat) {
            return Ok(None);
        }
        let t0 = Instant::now();
        let all = self.manager.calls().await;
        self.host_since(t0);
        Ok(all.into_iter().find(|c| c.chat == chat).map(status_to_wit))
    }

    async fn joined(&mut self) -> wasmtime::Result<Vec<types::CallStatus>> {
        let t0 = Instant::now();
        let all = self.manager.calls().await;
        self.host_since(t0);
        Ok(self.granted_v2(all))
    }

    async fn participants(
        &mut self,
        chat: i64,
        offset: Option<String>,
        limit: u32,
    ) -> Result<types::ParticipantPage, Refusal> {
        self.may_call("participants", chat)?;
        let t0 = Instant::now();
        let r = self.manager.participants(chat, offset.as_deref(), limit).await;
        self.host_since(t0);
        let page = r.map_err(Refusal::from)?;
        Ok(types::ParticipantPage {
            participants: page.participants.into_iter().map(participant_to_wit).collect(),
            next_offset: page.next_offset,
            total: page.total,
        })
    }
}

fn format_of(f: types::TextFormat) -> m::TextFormat {
    match f {
        types::TextFormat::Plain => m::TextFormat::Plain,
        types::TextFormat::Markdown => m::TextFormat::Markdown,
        types::TextFormat::Html => m::TextFormat::Html,
    }
}

fn buttons_of(rows: Vec<Vec<types::Button>>) -> Vec<Vec<m::Button>> {
    rows.into_iter()
        .map(|row| {
            row.into_iter()
                .map(|b| m::Button {
                    text: b.text,
                    action: match b.action {
                        types::ButtonAction::Callback(d) => ButtonAction::Callback(d),
                        types::ButtonAction::Url(u) => ButtonAction::Url(u),
                    },
                })
                .collect()
        })
        .collect()
}

impl audio::Host for PluginState {
    async fn record(
        &mut self,
        chat: i64,
        target: types::RecordTarget,
        options: types::RecordOptions,
    ) -> Result<(), Refusal> {
        self.may_call("record", chat)?;
        let (cap_s, cap_mb) = self.record_caps;
        let over = |what: &str, asked: u32, cap: u32| {
            CallError::InvalidArgument(format!("{what} {asked} is over the operator's cap of {cap} (limits.record_*)"))
        };
        let checked = match &target {
            types::RecordTarget::Mix(p) if !p.ends_with(".wav") && !p.ends_with(".flac") => Err(
                CallError::InvalidArgument(format!("{p:?}: the mix is written as WAV or FLAC; name it .wav or .flac")),
            ),
            types::RecordTarget::Mix(p) => self.grants.check_recording(&self.name, p, true),
            types::RecordTarget::Each(p) => self.grants.check_recording(&self.name, p, false),
        };
        let request = checked.and_then(|path| {
            let (each, mix) = match target {
                types::RecordTarget::Mix(_) => (None, Some(path)),
                types::RecordTarget::Each(_) => (Some(path), None),
            };
            let seconds = options.max_seconds.unwrap_or(cap_s);
            let mb = options.max_mb.unwrap_or(cap_mb);
            if seconds > cap_s {
                return Err(over("max-seconds", seconds, cap_s));
            }
            if mb > cap_mb {
                return Err(over("max-mb", mb, cap_mb));
            }
            Ok(RecordRequest {
                each,
                mix,
                max_duration: Duration::from_secs(seconds.into()),
                max_bytes: u64::from(mb) << 20,
            })
        });
        let r = match request {
            Ok(request) => {
                let t0 = Instant::now();
                let r = self.manager.record(chat, request).await;
                self.host_since(t0);
                r
            }
            Err(e) => Err(e),
        };
        self.v2("record", chat, r)
    }

    async fn bridge(&mut self, from: i64, to: i64) -> Result<(), Refusal> {
        self.may_call("bridge", from)?;
        self.may_call("bridge", to)?;
        let t0 = Instant::now();
        let r = self.manager.bridge(from, to).await;
        self.host_since(t0);
        self.v2("bridge", to, r)
    }

    async fn unbridge(&mut self, to: i64) -> Result<(), Refusal> {
        self.may_call("unbridge", to)?;
        let r = self.manager.unbridge(to);
        self.v2("unbridge", to, r)
    }

    async fn listen(
        &mut self,
        chat: i64,
        target: types::ListenTarget,
        options: types::ListenOptions,
    ) -> Result<(), Refusal> {
        self.may_call("listen", chat)?;
        self.granted("listen", chat, self.grants.check_audio(&self.name))?;
        if !self.hears_audio {
            let e = CallError::InvalidArgument(format!(
                "plugin {} exports no audio-events.on-audio to hear with: build the bot-with-audio world (the SDKs do)",
                self.name
            ));
            return self.v2("listen", chat, Err(e));
        }
        let request = ListenRequest {
            target: match target {
                types::ListenTarget::Mix => ListenTarget::Mix,
                types::ListenTarget::Each => ListenTarget::Each,
                types::ListenTarget::Participant(user) => ListenTarget::Participant(user),
            },
            rate: options.sample_rate,
            channels: options.channels,
            batch: Duration::from_millis(options.batch_ms.into()),
        };
        let (tx, counters) = (self.ears.tx.clone(), self.counters.clone());
        // On the listener's thread: never waits for the plugin.
        let sink = Box::new(move |heard| match tx.try_send(heard) {
            Ok(()) => Handed::Taken,
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                counters.audio_dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Handed::Full
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Handed::Closed,
        });
        let t0 = Instant::now();
        let r = self.manager.listen(chat, self.ears.id, request, sink).await;
        self.host_since(t0);
        self.v2("listen", chat, r)
    }

    async fn unlisten(&mut self, chat: i64) -> Result<(), Refusal> {
        self.may_call("unlisten", chat)?;
        let r = self.manager.unlisten(chat, self.ears.id);
        self.v2("unlisten", chat, r)
    }

    async fn stop_record(&mut self, chat: i64) -> Result<types::Recording, Refusal> {
        self.may_call("stop-record", chat)?;
        let t0 = Instant::now();
        let r = self.manager.stop_record(chat).await;
        self.host_since(t0);
        let summary = self.v2("stop-record", chat, r)?;
        Ok(recording_to_wit(&self.grants, &summary))
    }
}

/// A recording's summary for the contract, with paths as the plugin named them.
pub(crate) fn recording_to_wit(grants: &crate::runtime::grants::Grants, s: &RecordSummary) -> types::Recording {
    types::Recording {
        files: s
            .files
            .iter()
            .map(|f| types::RecordedFile {
                path: grants.as_named(&f.path),
                source: f.ssrc,
                duration_ms: f.duration_ms,
                bytes: f.bytes,
            })
            .collect(),
        lost: s.lost,
        dropped: s.dropped,
        error: s.error.clone(),
    }
}

impl chat::Host for PluginState {
    async fn send(
        &mut self,
        chat: i64,
        text: String,
        options: types::SendOptions,
    ) -> Result<types::SentMessage, Refusal> {
        self.may_chat("send", chat)?;
        self.granted("send", chat, self.quota_message())?;
        let message = Outgoing {
            text,
            format: format_of(options.format),
            reply_to: options.reply_to,
            silent: options.silent,
            buttons: buttons_of(options.buttons),
        };
        let t0 = Instant::now();
        let r = self.manager.chats().send(chat, &message).await;
        self.host_since(t0);
        let id = self.v2("send", chat, r)?;
        Ok(types::SentMessage { chat, message: id })
    }

    async fn edit(
        &mut self,
        chat: i64,
        message: i32,
        text: String,
        format: types::TextFormat,
        buttons: Vec<Vec<types::Button>>,
    ) -> Result<(), Refusal> {
        self.may_chat("edit", chat)?;
        self.granted("edit", chat, self.quota_message())?;
        let out = Outgoing { text, format: format_of(format), buttons: buttons_of(buttons), ..Default::default() };
        let t0 = Instant::now();
        let r = self.manager.chats().edit(chat, message, &out).await;
        self.host_since(t0);
        self.v2("edit", chat, r)
    }

    async fn delete(&mut self, chat: i64, message: i32) -> Result<(), Refusal> {
        self.may_chat("delete", chat)?;
        let t0 = Instant::now();
        let r = self.manager.chats().delete(chat, message).await;
        self.host_since(t0);
        self.v2("delete", chat, r)
    }

    async fn answer_callback(&mut self, id: String, text: Option<String>, alert: bool) -> Result<(), Refusal> {
        // A query is answered only by a plugin it was delivered to.
        if !self.queries.contains(&id) {
            let e =
                CallError::PermissionDenied(format!("callback query {id} was not delivered to plugin {}", self.name));
            return self.v2("answer-callback", 0, Err(e));
        }
        let t0 = Instant::now();
        let r = self.manager.chats().answer_callback(&id, text.as_deref(), alert).await;
        self.host_since(t0);
        self.v2("answer-callback", 0, r)
    }

    async fn member(&mut self, chat: i64, user: i64) -> Result<types::MemberStatus, Refusal> {
        self.may_chat("member", chat)?;
        let t0 = Instant::now();
        let r = self.manager.chats().member_status(chat, user).await;
        self.host_since(t0);
        Ok(match r.map_err(Refusal::from)? {
            m::MemberStatus::Creator => types::MemberStatus::Creator,
            m::MemberStatus::Administrator => types::MemberStatus::Administrator,
            m::MemberStatus::Member => types::MemberStatus::Member,
            m::MemberStatus::Restricted => types::MemberStatus::Restricted,
            m::MemberStatus::Left => types::MemberStatus::Left,
            m::MemberStatus::Banned => types::MemberStatus::Banned,
        })
    }
}

impl config::Host for PluginState {
    async fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.settings.to_string())
    }

    async fn get_string(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.setting(&key).and_then(|v| match v {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }))
    }

    async fn get_int(&mut self, key: String) -> wasmtime::Result<Option<i64>> {
        Ok(self.setting(&key).and_then(|v| v.as_i64()))
    }

    async fn get_bool(&mut self, key: String) -> wasmtime::Result<Option<bool>> {
        Ok(self.setting(&key).and_then(|v| v.as_bool()))
    }

    async fn api_port(&mut self) -> wasmtime::Result<u16> {
        Ok(self.manager.api_port())
    }
}

impl PluginState {
    /// One setting's value.
    fn setting(&self, key: &str) -> Option<serde_json::Value> {
        let all: serde_json::Value = serde_json::from_str(&self.settings).ok()?;
        all.get(key).cloned()
    }
}

impl logging::Host for PluginState {
    async fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types::LogLevel::Trace => Level::Trace,
            types::LogLevel::Debug => Level::Debug,
            types::LogLevel::Info => Level::Info,
            types::LogLevel::Warn => Level::Warn,
            types::LogLevel::Error => Level::Error,
        };
        self.log_line(level, &message);
        Ok(())
    }
}
