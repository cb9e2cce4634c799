//! Musicbot: what people expect of a Telegram music bot, on the v0.2 contract.
//!
//! In a chat it may talk in (`grants.messages`):
//! - `/play <file | url | source:arg>`, or `/play` replying to an audio file or voice
//!   note: plays it, or queues it behind what is playing;
//! - `/queue`: what is playing and what comes next;
//! - `/skip`, `/pause`, `/resume`, `/stop`, `/volume N` (0–200), `/seek SECONDS`:
//!   for the chat's admins (unless `admin_only = false`);
//! - a "now playing" message with ⏸ ⏭ ⏹ buttons that do the same and edit it.
//!
//! When the queue runs out it leaves the call. The queues survive a hot reload
//! (`save`/`restore`). With `autoplay` in its settings it starts playing those in
//! `chat` by itself — the README's demo.
//!
//! Settings: `chat` (the chat to autoplay in), `autoplay` (sources), `admin_only`
//! (default true).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use wasmcalls_bot::chat::{self, Send};
use wasmcalls_bot::{
    Bot, Button, CallbackQuery, ChatId, Error, Identity, JoinOptions, LogLevel, MediaKind, MediaSource, Message,
    MessageId, TextFormat, calls, log,
};

#[derive(Deserialize)]
struct Settings {
    #[serde(default)]
    chat: Option<ChatId>,
    #[serde(default)]
    autoplay: Vec<String>,
    #[serde(default = "yes")]
    admin_only: bool,
}

fn yes() -> bool {
    true
}

/// What to play, as it can be saved across a reload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
enum What {
    /// A file, URL or named source, as typed after `/play`.
    Typed(String),
    /// A message's audio.
    Message { chat: ChatId, message: MessageId },
}

impl What {
    fn source(&self) -> MediaSource {
        match self {
            What::Typed(t) => MediaSource::parse(t),
            What::Message { chat, message } => MediaSource::message(*chat, *message),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Track {
    what: What,
    title: String,
    /// Who asked for it (0: the bot itself).
    by: i64,
}

/// One chat's player.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Player {
    now: Option<Track>,
    queue: VecDeque<Track>,
    paused: bool,
    /// The "now playing" message, edited as things change.
    message: Option<MessageId>,
}

#[derive(Default, Serialize, Deserialize)]
struct MusicBot {
    players: BTreeMap<ChatId, Player>,
    #[serde(skip)]
    admin_only: bool,
}

/// The buttons under the "now playing" message.
fn buttons(paused: bool) -> Vec<Vec<Button>> {
    let toggle = if paused { Button::callback("▶ Resume", "resume") } else { Button::callback("⏸ Pause", "pause") };
    vec![vec![toggle, Button::callback("⏭ Skip", "skip"), Button::callback("⏹ Stop", "stop")]]
}

fn by(user: i64) -> String {
    if user == 0 { String::new() } else { format!("\nRequested by `{user}`") }
}

fn say(chat: ChatId, text: &str) {
    if let Err(e) = Send::new(chat, text).markdown().send() {
        log(LogLevel::Warn, format!("cannot say {text:?} in {chat}: {e}"));
    }
}

fn answer(to: &Message, text: &str) {
    if let Err(e) = Send::new(to.chat, text).markdown().reply_to(to.id).send() {
        log(LogLevel::Warn, format!("cannot answer in {}: {e}", to.chat));
    }
}

impl MusicBot {
    fn player(&mut self, chat: ChatId) -> &mut Player {
        self.players.entry(chat).or_default()
    }

    /// The "now playing" text for `chat`.
    fn now_text(&self, chat: ChatId) -> String {
        let Some(p) = self.players.get(&chat) else { return "Nothing is playing.".into() };
        match &p.now {
            None => "Nothing is playing.".into(),
            Some(t) => {
                let state = if p.paused { "⏸ Paused" } else { "🎵 Now playing" };
                let next = match p.queue.len() {
                    0 => String::new(),
                    n => format!("\n{n} more in the queue"),
                };
                format!("{state}: **{}**{}{next}", t.title, by(t.by))
            }
        }
    }

    /// Posts a fresh "now playing" message (the old one loses its buttons).
    fn announce(&mut self, chat: ChatId) {
        self.retire(chat, None);
        let text = self.now_text(chat);
        let paused = self.player(chat).paused;
        match Send::new(chat, &text).markdown().buttons(buttons(paused)).send() {
            Ok(sent) => self.player(chat).message = Some(sent.message),
            Err(e) => log(LogLevel::Warn, format!("cannot post the now-playing message in {chat}: {e}")),
        }
    }

    /// Brings the "now playing" message up to date.
    fn refresh(&mut self, chat: ChatId) {
        let Some(id) = self.players.get(&chat).and_then(|p| p.message) else { return };
        let text = self.now_text(chat);
        let paused = self.player(chat).paused;
        match chat::edit(chat, id, &text, TextFormat::Markdown, &buttons(paused)) {
            // Telegram refuses an edit that changes nothing: nothing to do.
            Ok(()) | Err(Error::Telegram(_)) => {}
            Err(e) => log(LogLevel::Warn, format!("cannot update the now-playing message in {chat}: {e}")),
        }
    }

    /// Turns the "now playing" message into a last word, without buttons.
    fn retire(&mut self, chat: ChatId, last: Option<&str>) {
        let Some(id) = self.player(chat).message.take() else { return };
        let text = last.map_or_else(|| self.now_text(chat), str::to_owned);
        let _ = chat::edit(chat, id, &text, TextFormat::Markdown, &[]);
    }

    /// Plays `track` now in `chat`: joins the call, or switches what it plays.
    fn start(&mut self, chat: ChatId, track: Track) -> Result<(), Error> {
        let source = track.what.source();
        match calls::status(chat) {
            Some(status) => {
                calls::play(chat, &source)?;
                // A paused call stays paused across `play`: the new track should sound.
                if status.state == wasmcalls_bot::CallState::Paused {
                    calls::resume(chat)?;
                }
            }
            None => calls::join(chat, &source, &JoinOptions::default())?,
        }
        let p = self.player(chat);
        p.now = Some(track);
        p.paused = false;
        self.announce(chat);
        Ok(())
    }

    /// Plays the next queued track, or leaves when there is none.
    fn next(&mut self, chat: ChatId) {
        loop {
            let Some(track) = self.player(chat).queue.pop_front() else {
                self.player(chat).now = None;
                self.retire(chat, Some("✅ The queue is finished."));
                let _ = calls::leave(chat, false);
                self.players.remove(&chat);
                return;
            };
            match self.start(chat, track.clone()) {
                Ok(()) => return,
                Err(e) => say(chat, &format!("⚠️ Skipping **{}**: {e}", track.title)),
            }
        }
    }

    /// `/play`, with what to play in `args` or in the message it replies to.
    fn play(&mut self, m: &Message, args: &str) {
        let track = if !args.is_empty() {
            let title = args.rsplit('/').next().unwrap_or(args).to_owned();
            Track { what: What::Typed(args.to_owned()), title, by: m.sender }
        } else if let Some(reply) = m.reply_to.as_ref().filter(|r| r.media.is_some()) {
            let media = reply.media.as_ref().expect("filtered on media");
            if media.kind == MediaKind::Document && !media.mime_type.as_deref().is_some_and(|t| t.starts_with("audio/"))
            {
                return answer(m, "That file is not audio.");
            }
            let title =
                media.title.clone().or_else(|| media.file_name.clone()).unwrap_or_else(|| {
                    if media.kind == MediaKind::Voice { "a voice note".into() } else { "audio".into() }
                });
            Track { what: What::Message { chat: m.chat, message: reply.message }, title, by: m.sender }
        } else {
            return answer(m, "Usage: `/play <file or URL>`, or reply `/play` to an audio file or voice note.");
        };
        let busy = self.players.get(&m.chat).is_some_and(|p| p.now.is_some());
        if busy {
            let title = track.title.clone();
            let p = self.player(m.chat);
            p.queue.push_back(track);
            let n = p.queue.len();
            answer(m, &format!("➕ Queued #{n}: **{title}**"));
            self.refresh(m.chat);
            return;
        }
        if let Err(e) = self.start(m.chat, track) {
            let why = match e {
                Error::NoActiveGroupCall(_) => "there is no voice chat here; start one and try again".to_owned(),
                e => e.to_string(),
            };
            self.players.remove(&m.chat);
            answer(m, &format!("⚠️ Cannot play that: {why}"));
        }
    }

    fn queue(&self, m: &Message) {
        let Some(p) = self.players.get(&m.chat).filter(|p| p.now.is_some()) else {
            return answer(m, "The queue is empty.");
        };
        let mut text = self.now_text(m.chat);
        for (i, t) in p.queue.iter().enumerate() {
            text += &format!("\n{}. {}", i + 1, t.title);
        }
        answer(m, &text);
    }

    /// Whether `user` may control playback in `chat`.
    fn allowed(&self, chat: ChatId, user: i64) -> bool {
        !self.admin_only || chat::member(chat, user).is_ok_and(|s| s.is_admin())
    }

    /// A control, from a command or a button: what to tell the user.
    fn control(&mut self, chat: ChatId, what: &str, arg: &str) -> String {
        let playing = self.players.get(&chat).is_some_and(|p| p.now.is_some());
        if !playing {
            return "Nothing is playing.".into();
        }
        let r = match what {
            "pause" => calls::pause(chat).map(|()| {
                self.player(chat).paused = true;
                "⏸ Paused.".to_owned()
            }),
            "resume" => calls::resume(chat).map(|()| {
                self.player(chat).paused = false;
                "▶ Resumed.".to_owned()
            }),
            "skip" => {
                self.next(chat);
                Ok("⏭ Skipped.".to_owned())
            }
            "stop" => {
                self.player(chat).queue.clear();
                self.player(chat).now = None;
                self.retire(chat, Some("⏹ Stopped."));
                self.players.remove(&chat);
                calls::leave(chat, false).map(|()| "⏹ Stopped.".to_owned())
            }
            "volume" => match arg.trim_end_matches('%').parse::<u16>() {
                Ok(v) if v <= 200 => calls::set_volume(chat, v).map(|()| format!("🔊 Volume {v} %.")),
                _ => return "Usage: `/volume N`, N from 0 to 200.".into(),
            },
            "seek" => match arg.parse::<f64>() {
                Ok(s) if s >= 0.0 => calls::seek(chat, (s * 1000.0) as u64).map(|()| format!("⏩ Moved to {s} s.")),
                _ => return "Usage: `/seek SECONDS`.".into(),
            },
            _ => return format!("I do not know {what}."),
        };
        if what != "skip" && what != "stop" {
            self.refresh(chat);
        }
        r.unwrap_or_else(|e| format!("⚠️ {e}"))
    }
}

impl Bot for MusicBot {
    fn on_start(&mut self, me: Identity) {
        let settings: Settings = match wasmcalls_bot::settings() {
            Ok(s) => s,
            Err(e) => return log(LogLevel::Error, e),
        };
        self.admin_only = settings.admin_only;
        log(LogLevel::Info, format!("musicbot ready (account {}, bot {:?})", me.user, me.bot));
        let Some(chat) = settings.chat.filter(|_| !settings.autoplay.is_empty()) else { return };
        let mut tracks = settings.autoplay.into_iter().map(|s| {
            let title = s.rsplit('/').next().unwrap_or(&s).to_owned();
            Track { what: What::Typed(s), title, by: 0 }
        });
        let Some(first) = tracks.next() else { return };
        self.player(chat).queue.extend(tracks);
        if let Err(e) = self.start(chat, first) {
            log(LogLevel::Error, format!("autoplay in {chat} failed: {e}"));
            self.players.remove(&chat);
        }
    }

    fn on_message(&mut self, m: Message) {
        let Some(cmd) = m.command.clone() else { return };
        match cmd.name.as_str() {
            "play" => self.play(&m, &cmd.args),
            "queue" => self.queue(&m),
            "skip" | "pause" | "resume" | "stop" | "volume" | "seek" => {
                if !self.allowed(m.chat, m.sender) {
                    return answer(&m, "Only the chat's admins can do that.");
                }
                let said = self.control(m.chat, &cmd.name, &cmd.args);
                answer(&m, &said);
            }
            _ => {}
        }
    }

    fn on_callback_query(&mut self, q: CallbackQuery) {
        let text = if !self.allowed(q.chat, q.sender) {
            "Only the chat's admins can do that.".to_owned()
        } else if self.players.get(&q.chat).and_then(|p| p.message) != Some(q.message) {
            "That message is old; use the newest one.".to_owned()
        } else {
            self.control(q.chat, &q.data, "")
        };
        if let Err(e) = chat::answer_callback(&q.id, Some(&text), false) {
            log(LogLevel::Warn, format!("cannot answer a button press: {e}"));
        }
    }

    fn on_stream_end(&mut self, chat: ChatId) {
        self.next(chat);
    }

    fn on_kicked(&mut self, chat: ChatId) {
        self.players.remove(&chat);
    }

    fn on_call_ended(&mut self, chat: ChatId) {
        self.players.remove(&chat);
    }

    fn on_connection_lost(&mut self, chat: ChatId, reason: String) {
        self.retire(chat, Some("⚠️ Lost the call's connection."));
        self.players.remove(&chat);
        log(LogLevel::Warn, format!("lost the call in {chat}: {reason}"));
    }

    fn save(&mut self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn restore(&mut self, state: Vec<u8>) {
        let admin_only = wasmcalls_bot::settings::<Settings>().map_or(true, |s| s.admin_only);
        match serde_json::from_slice::<MusicBot>(&state) {
            Ok(saved) => *self = MusicBot { admin_only, ..saved },
            Err(e) => {
                log(LogLevel::Warn, format!("the previous version's queues are unreadable ({e}); starting empty"))
            }
        }
    }
}

wasmcalls_bot::bot!(MusicBot);
