//! Jukebox: on start, joins its configured chat and plays a playlist; on each
//! stream end plays the next item, and leaves after the last; forgets a chat it is
//! kicked from; joins when invited. Its custom API answers `status` and takes
//! `play`, `pause`, `resume`, `skip` and `volume`.
//!
//! Settings (from the host's `[plugins.settings]`):
//! `chat` (chat id), `playlist` (raw s16le stereo files), `bitrate` (their sample
//! rate, default 48000), `autostart` (default true).

use std::cell::RefCell;

use serde::Deserialize;
use serde_json::{Value, json};
use wasmcalls_bot::{ApiRequest, ApiResponse, Bot, CallError, ChatId, Invite, LogLevel, calls, log};

#[derive(Deserialize, Default)]
struct Settings {
    #[serde(default)]
    chat: Option<ChatId>,
    #[serde(default)]
    playlist: Vec<String>,
    #[serde(default = "default_bitrate")]
    bitrate: u32,
    #[serde(default = "yes")]
    autostart: bool,
}

fn default_bitrate() -> u32 {
    48000
}
fn yes() -> bool {
    true
}

#[derive(Default)]
struct State {
    settings: Settings,
    /// The chat we are playing in, and which playlist item.
    playing: Option<(ChatId, usize)>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

fn track(i: usize) -> Option<String> {
    with(|s| s.settings.playlist.get(i).cloned())
}

/// Starts the playlist from item `i` in `chat`: joins, or switches if already there.
fn play_from(chat: ChatId, i: usize) -> Result<(), CallError> {
    let file = track(i).ok_or_else(|| CallError::InvalidArgument(format!("the playlist has no item {i}")))?;
    let bitrate = with(|s| s.settings.bitrate);
    let already = with(|s| s.playing.is_some_and(|(c, _)| c == chat));
    if already {
        calls::change_stream(chat, &file)?;
    } else {
        calls::join_group_call(chat, &file, bitrate)?;
    }
    with(|s| s.playing = Some((chat, i)));
    log(LogLevel::Info, format!("playing {file} in {chat}"));
    Ok(())
}

struct Jukebox;

impl Bot for Jukebox {
    /// On hot reload the new version keeps playing where this one was.
    fn save() -> Vec<u8> {
        with(|s| json!({ "playing": s.playing }).to_string().into_bytes())
    }

    fn restore(state: Vec<u8>) {
        let settings: Settings = serde_json::from_str(&calls::settings()).unwrap_or_default();
        let saved: Value = serde_json::from_slice(&state).unwrap_or(Value::Null);
        let playing = serde_json::from_value(saved["playing"].clone()).unwrap_or(None);
        with(|s| {
            s.settings = settings;
            s.playing = playing;
        });
        log(LogLevel::Info, format!("reloaded; still playing {playing:?}"));
    }

    fn on_start(my_id: i64) {
        let settings: Settings = match serde_json::from_str(&calls::settings()) {
            Ok(s) => s,
            Err(e) => {
                log(LogLevel::Error, format!("bad settings, jukebox stays idle: {e}"));
                return;
            }
        };
        let autostart = settings.autostart.then_some(settings.chat).flatten();
        with(|s| s.settings = settings);
        log(LogLevel::Info, format!("jukebox ready as user {my_id}"));
        if let Some(chat) = autostart
            && let Err(e) = play_from(chat, 0)
        {
            log(LogLevel::Error, format!("could not start in {chat}: {e}"));
        }
    }

    fn on_stream_end(chat: ChatId) {
        let Some((ours, i)) = with(|s| s.playing) else { return };
        if ours != chat {
            return;
        }
        if track(i + 1).is_some() {
            if let Err(e) = play_from(chat, i + 1) {
                log(LogLevel::Error, format!("next track failed: {e}"));
            }
        } else {
            log(LogLevel::Info, format!("playlist finished in {chat}, leaving"));
            with(|s| s.playing = None);
            if let Err(e) = calls::leave_group_call(chat) {
                log(LogLevel::Warn, format!("leave failed: {e}"));
            }
        }
    }

    fn on_kicked(chat: ChatId) {
        with(|s| {
            if s.playing.is_some_and(|(c, _)| c == chat) {
                s.playing = None;
            }
        });
        log(LogLevel::Warn, format!("removed from {chat}; forgetting it"));
    }

    fn on_group_call_invite(invite: Invite) {
        log(LogLevel::Info, format!("invited to {} by {}", invite.chat, invite.inviter));
        if let Err(e) = play_from(invite.chat, 0) {
            log(LogLevel::Error, format!("could not join {}: {e}", invite.chat));
        }
    }

    fn on_custom_api(request: ApiRequest) -> ApiResponse {
        let body: Value = match serde_json::from_str(&request.body) {
            Ok(v) => v,
            Err(e) => return reply(400, json!({ "error": format!("body is not JSON: {e}") })),
        };
        let action = body["action"].as_str().unwrap_or("status");
        let chat = body["chat"].as_i64().or_else(|| with(|s| s.playing.map(|(c, _)| c).or(s.settings.chat)));
        let result = match (action, chat) {
            ("status", _) => return reply(200, status()),
            (_, None) => return reply(400, json!({ "error": "no chat: pass \"chat\" or configure one" })),
            ("play", Some(chat)) => play_from(chat, body["index"].as_u64().unwrap_or(0) as usize),
            ("pause", Some(chat)) => calls::pause_stream(chat),
            ("resume", Some(chat)) => calls::resume_stream(chat),
            ("skip", Some(chat)) => {
                let next = with(|s| s.playing.map_or(0, |(_, i)| i + 1));
                play_from(chat, next)
            }
            ("volume", Some(chat)) => match body["volume"].as_u64() {
                Some(v) if v <= 200 => calls::change_volume_call(chat, v as u16),
                _ => return reply(400, json!({ "error": "volume must be 0–200" })),
            },
            (other, _) => return reply(400, json!({ "error": format!("unknown action {other:?}") })),
        };
        match result {
            Ok(()) => reply(200, status()),
            Err(e) => reply(409, json!({ "error": e.to_string() })),
        }
    }
}

fn status() -> Value {
    let calls: Vec<Value> = calls::calls()
        .into_iter()
        .map(|c| {
            json!({
                "chat": c.chat,
                "state": c.state.as_str(),
                "file": c.file,
                "position_ms": c.position_ms,
                "duration_ms": c.duration_ms,
                "volume": c.volume,
            })
        })
        .collect();
    let (chat, index) = with(|s| s.playing).map_or((None, None), |(c, i)| (Some(c), Some(i)));
    json!({ "chat": chat, "index": index, "track": index.and_then(track), "calls": calls })
}

fn reply(status: u16, body: Value) -> ApiResponse {
    ApiResponse { status, body: body.to_string() }
}

wasmcalls_bot::bot!(Jukebox);
