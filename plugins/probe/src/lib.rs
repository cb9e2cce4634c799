//! A plugin for the host's tests of the v0.2 contract. Its custom API runs the
//! command the JSON body names and answers `{"ok": …}` or `{"err": {"<variant>": …}}`;
//! every event it receives is recorded and returned by `{"cmd": "events"}`; the audio
//! it listens to, by `{"cmd": "heard"}`.

use serde_json::{Value, json};
use wasmcalls_bot::{
    ApiRequest, ApiResponse, AudioBatch, Bot, Button, ButtonAction, CallStatus, CallbackQuery, ChatId, Error, Identity, Invite,
    JoinOptions, ListenOptions, ListenTarget, MediaKind, MediaSource, MemberStatus, Message, MessageMedia, NamedSource, ParticipantChange, RawPcm,
    RecordOptions, RecordTarget, Recording, SendOptions, TextFormat, audio, calls, chat, config,
};

#[derive(Default)]
struct Probe {
    events: Vec<Value>,
    /// Each audio batch heard (without its samples), and the samples by source
    /// ("mix" for the mix), up to [`HEARD_MAX`].
    batches: Vec<Value>,
    heard: std::collections::BTreeMap<String, Vec<i16>>,
    /// Milliseconds to spin per batch: a slow consumer.
    work_ms: u64,
}

/// Samples kept per source: 10 s of 48 kHz stereo.
const HEARD_MAX: usize = 960_000;

fn error_json(e: &Error) -> Value {
    match e {
        Error::NoActiveGroupCall(c) => json!({ "no-active-group-call": c }),
        Error::NotInCall(c) => json!({ "not-in-call": c }),
        Error::AlreadyInCall(c) => json!({ "already-in-call": c }),
        Error::StillConnecting(c) => json!({ "still-connecting": c }),
        Error::NothingPlaying(c) => json!({ "nothing-playing": c }),
        Error::RateLimited(s) => json!({ "rate-limited": s }),
        Error::ClientNotRunning => json!({ "client-not-running": null }),
        Error::NoClient(m) => json!({ "no-client": m }),
        Error::PermissionDenied(m) => json!({ "permission-denied": m }),
        Error::InvalidArgument(m) => json!({ "invalid-argument": m }),
        Error::SourceError(m) => json!({ "source-error": m }),
        Error::Telegram(t) => json!({ "telegram": { "code": t.code, "name": t.name } }),
        Error::Other(m) => json!({ "other": m }),
    }
}

fn answer<T: Into<Value>>(r: Result<T, Error>) -> Value {
    match r {
        Ok(v) => json!({ "ok": v.into() }),
        Err(e) => json!({ "err": error_json(&e) }),
    }
}

fn source(v: &Value) -> MediaSource {
    if let Some(p) = v["file"].as_str() {
        MediaSource::File(p.into())
    } else if let Some(u) = v["url"].as_str() {
        MediaSource::Url(u.into())
    } else if v["raw"].is_object() {
        let r = &v["raw"];
        MediaSource::Raw(RawPcm {
            path: r["path"].as_str().unwrap_or_default().into(),
            sample_rate: r["rate"].as_u64().unwrap_or(48000) as u32,
            channels: r["channels"].as_u64().unwrap_or(2) as u8,
        })
    } else if v["message"].is_object() {
        let m = &v["message"];
        MediaSource::Message(MessageMedia {
            chat: m["chat"].as_i64().unwrap_or_default(),
            message: m["id"].as_i64().unwrap_or_default() as i32,
        })
    } else {
        let n = &v["named"];
        MediaSource::Named(NamedSource {
            name: n["name"].as_str().unwrap_or_default().into(),
            argument: n["argument"].as_str().unwrap_or_default().into(),
        })
    }
}

fn format(v: &Value) -> TextFormat {
    match v.as_str() {
        Some("markdown") => TextFormat::Markdown,
        Some("html") => TextFormat::Html,
        _ => TextFormat::Plain,
    }
}

fn buttons(v: &Value) -> Vec<Vec<Button>> {
    let rows = v.as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|row| {
            row.as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|b| Button {
                    text: b["text"].as_str().unwrap_or_default().into(),
                    action: match b["url"].as_str() {
                        Some(u) => ButtonAction::Url(u.into()),
                        None => ButtonAction::Callback(b["data"].as_str().unwrap_or_default().into()),
                    },
                })
                .collect()
        })
        .collect()
}

fn kind(k: MediaKind) -> &'static str {
    match k {
        MediaKind::Audio => "audio",
        MediaKind::Voice => "voice",
        MediaKind::Document => "document",
        MediaKind::Video => "video",
    }
}

fn standing(s: MemberStatus) -> &'static str {
    match s {
        MemberStatus::Creator => "creator",
        MemberStatus::Administrator => "administrator",
        MemberStatus::Member => "member",
        MemberStatus::Restricted => "restricted",
        MemberStatus::Left => "left",
        MemberStatus::Banned => "banned",
    }
}

fn status_json(s: &CallStatus) -> Value {
    json!({
        "chat": s.chat, "state": s.state.as_str(), "source": s.source, "position_ms": s.position_ms,
        "duration_ms": s.duration_ms, "volume": s.volume, "muted": s.muted,
    })
}

fn change_json(c: &ParticipantChange) -> Value {
    match c {
        ParticipantChange::Joined(p) => json!({ "joined": { "peer": p.peer, "muted": p.muted, "is_self": p.is_self } }),
        ParticipantChange::Left(p) => json!({ "left": p }),
        ParticipantChange::Muted(p) => json!({ "muted": p }),
        ParticipantChange::Unmuted(p) => json!({ "unmuted": p }),
        ParticipantChange::StartedSpeaking(p) => json!({ "started-speaking": p }),
        ParticipantChange::StoppedSpeaking(p) => json!({ "stopped-speaking": p }),
    }
}

fn recording_json(r: &Recording) -> Value {
    json!({
        "files": r.files.iter().map(|f| json!({ "path": f.path, "source": f.source, "duration_ms": f.duration_ms, "bytes": f.bytes })).collect::<Vec<_>>(),
        "lost": r.lost, "dropped": r.dropped, "error": r.error,
    })
}

fn run(cmd: &Value) -> Value {
    let c = |k: &str| cmd[k].as_i64().unwrap_or_default();
    let chat: ChatId = c("chat");
    match cmd["cmd"].as_str().unwrap_or_default() {
        "join" => {
            let o = &cmd["options"];
            let options = JoinOptions {
                join_as: o["join_as"].as_i64(),
                invite_hash: o["invite_hash"].as_str().map(str::to_owned),
                start_muted: o["start_muted"].as_bool().unwrap_or(false),
                create_if_missing: o["create"].as_bool().unwrap_or(false),
            };
            answer(calls::join(chat, &source(&cmd["source"]), &options).map(|()| Value::Null))
        }
        "leave" => answer(calls::leave(chat, cmd["close"].as_bool().unwrap_or(false)).map(|()| Value::Null)),
        "play" => answer(calls::play(chat, &source(&cmd["source"])).map(|()| Value::Null)),
        "pause" => answer(calls::pause(chat).map(|()| Value::Null)),
        "resume" => answer(calls::resume(chat).map(|()| Value::Null)),
        "mute" => answer(calls::mute(chat).map(|()| Value::Null)),
        "unmute" => answer(calls::unmute(chat).map(|()| Value::Null)),
        "seek" => answer(calls::seek(chat, c("ms") as u64).map(|()| Value::Null)),
        "volume" => answer(calls::set_volume(chat, c("percent") as u16).map(|()| Value::Null)),
        "status" => json!({ "ok": calls::status(chat).as_ref().map(status_json) }),
        "joined" => json!({ "ok": calls::joined().iter().map(status_json).collect::<Vec<_>>() }),
        "participants" => answer(
            calls::participants(chat, cmd["offset"].as_str(), cmd["limit"].as_u64().unwrap_or(100) as u32).map(|p| {
                json!({
                    "participants": p.participants.iter().map(|x| json!({ "peer": x.peer, "muted": x.muted, "speaking": x.speaking, "is_self": x.is_self, "volume": x.volume })).collect::<Vec<_>>(),
                    "next_offset": p.next_offset,
                    "total": p.total,
                })
            }),
        ),
        "send" => {
            let options = SendOptions {
                format: format(&cmd["format"]),
                reply_to: cmd["reply_to"].as_i64().map(|r| r as i32),
                silent: cmd["silent"].as_bool().unwrap_or(false),
                buttons: buttons(&cmd["buttons"]),
            };
            answer(chat::send(chat, cmd["text"].as_str().unwrap_or_default(), &options).map(|m| json!(m.message)))
        }
        "edit" => {
            let text = cmd["text"].as_str().unwrap_or_default();
            let r = chat::edit(chat, c("message") as i32, text, format(&cmd["format"]), &buttons(&cmd["buttons"]));
            answer(r.map(|()| Value::Null))
        }
        "delete" => answer(chat::delete(chat, c("message") as i32).map(|()| Value::Null)),
        "answer" => {
            let text = cmd["text"].as_str();
            answer(chat::answer_callback(cmd["id"].as_str().unwrap_or_default(), text, cmd["alert"].as_bool().unwrap_or(false)).map(|()| Value::Null))
        }
        "member" => answer(chat::member(chat, c("user")).map(|s| json!(standing(s)))),
        "record" => {
            let target = match (cmd["mix"].as_str(), cmd["each"].as_str()) {
                (Some(m), _) => RecordTarget::Mix(m.to_owned()),
                (None, e) => RecordTarget::Each(e.unwrap_or_default().to_owned()),
            };
            let options = RecordOptions {
                max_seconds: cmd["max_seconds"].as_u64().map(|s| s as u32),
                max_mb: cmd["max_mb"].as_u64().map(|m| m as u32),
            };
            answer(audio::record(chat, &target, options).map(|()| Value::Null))
        }
        "stop-record" => answer(audio::stop_record(chat).map(|r| recording_json(&r))),
        "bridge" => answer(audio::bridge(c("from"), chat).map(|()| Value::Null)),
        "unbridge" => answer(audio::unbridge(chat).map(|()| Value::Null)),
        "listen" => {
            let target = match (&cmd["target"], cmd["user"].as_i64()) {
                (_, Some(user)) => ListenTarget::Participant(user),
                (t, None) if t == "each" => ListenTarget::Each,
                _ => ListenTarget::Mix,
            };
            let options = ListenOptions {
                sample_rate: cmd["rate"].as_u64().unwrap_or(48_000) as u32,
                channels: cmd["channels"].as_u64().unwrap_or(2) as u8,
                batch_ms: cmd["batch_ms"].as_u64().unwrap_or(100) as u32,
            };
            answer(audio::listen(chat, target, options).map(|()| Value::Null))
        }
        "unlisten" => answer(audio::unlisten(chat).map(|()| Value::Null)),
        "settings" => json!({ "ok": config::settings() }),
        "get" => {
            let key = cmd["key"].as_str().unwrap_or_default();
            json!({ "ok": { "string": config::get_string(key), "int": config::get_int(key), "bool": config::get_bool(key) } })
        }
        other => json!({ "err": { "unknown-command": other } }),
    }
}

impl Bot for Probe {
    fn on_start(&mut self, me: Identity) {
        self.events.push(json!({ "on-start": { "user": me.user, "bot": me.bot } }));
    }
    fn on_message(&mut self, m: Message) {
        self.events.push(json!({ "on-message": {
            "chat": m.chat, "id": m.id, "sender": m.sender, "text": m.text,
            "command": m.command.as_ref().map(|c| json!({ "name": c.name, "args": c.args })),
            "reply_to": m.reply_to.as_ref().map(|r| json!({ "message": r.message, "media": r.media.as_ref().map(|a| json!({ "kind": kind(a.kind), "file_name": a.file_name, "size": a.size, "title": a.title })) })),
        } }));
    }
    fn on_callback_query(&mut self, q: CallbackQuery) {
        self.events.push(json!({ "on-callback-query": { "id": q.id, "chat": q.chat, "message": q.message, "sender": q.sender, "data": q.data } }));
    }
    fn on_stream_end(&mut self, chat: ChatId) {
        self.events.push(json!({ "on-stream-end": chat }));
    }
    fn on_audio(&mut self, chat: ChatId, batch: AudioBatch) {
        let spin = std::time::Instant::now();
        while spin.elapsed().as_millis() < u128::from(self.work_ms) {
            std::hint::spin_loop();
        }
        self.batches.push(json!({
            "chat": chat, "user": batch.user, "source": batch.source, "at_ms": batch.at_ms,
            "samples": batch.pcm.len(), "dropped": batch.dropped,
        }));
        let key = batch.source.map_or_else(|| "mix".to_owned(), |s| s.to_string());
        let kept = self.heard.entry(key).or_default();
        let room = HEARD_MAX.saturating_sub(kept.len()).min(batch.pcm.len());
        kept.extend_from_slice(&batch.pcm[..room]);
    }
    fn on_recording_ended(&mut self, chat: ChatId, recording: Recording) {
        self.events.push(json!({ "on-recording-ended": { "chat": chat, "recording": recording_json(&recording) } }));
    }
    fn on_participants(&mut self, chat: ChatId, changes: Vec<ParticipantChange>) {
        self.events.push(json!({ "on-participants": { "chat": chat, "changes": changes.iter().map(change_json).collect::<Vec<_>>() } }));
    }
    fn on_kicked(&mut self, chat: ChatId) {
        self.events.push(json!({ "on-kicked": chat }));
    }
    fn on_call_ended(&mut self, chat: ChatId) {
        self.events.push(json!({ "on-call-ended": chat }));
    }
    fn on_connection_lost(&mut self, chat: ChatId, reason: String) {
        self.events.push(json!({ "on-connection-lost": { "chat": chat, "reason": reason } }));
    }
    fn on_group_call_invite(&mut self, invite: Invite) {
        self.events.push(json!({ "on-group-call-invite": { "chat": invite.chat, "inviter": invite.inviter } }));
    }
    fn on_raw_update(&mut self, update: String) {
        let kind = serde_json::from_str::<Value>(&update).ok().and_then(|v| v["_"].as_str().map(str::to_owned));
        self.events.push(json!({ "on-raw-update": kind }));
    }
    fn on_custom_api(&mut self, request: ApiRequest) -> ApiResponse {
        let cmd: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        let body = match cmd["cmd"].as_str() {
            Some("events") => json!(self.events),
            Some("heard") => json!({ "batches": self.batches, "pcm": self.heard }),
            Some("listen") => {
                self.work_ms = cmd["work_ms"].as_u64().unwrap_or(0);
                run(&cmd)
            }
            _ => run(&cmd),
        };
        ApiResponse { status: 200, body: body.to_string() }
    }
}

wasmcalls_bot::bot!(Probe);
