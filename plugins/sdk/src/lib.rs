//! Write a wasmcalls bot in Rust, on the `wasmcalls:bot@0.2.2` contract (`wit/v0.2`).
//!
//! Implement [`Bot`] on your bot's state — every handler takes `&mut self` and has a
//! default that does nothing — and export it with [`bot!`]. The host creates it with
//! `Default` before the first event:
//!
//! ```ignore
//! use wasmcalls_bot::{Bot, Message, chat};
//!
//! #[derive(Default)]
//! struct Echo { seen: u32 }
//!
//! impl Bot for Echo {
//!     fn on_message(&mut self, m: Message) {
//!         self.seen += 1;
//!         let _ = chat::reply(&m, &format!("#{}: {}", self.seen, m.text));
//!     }
//! }
//! wasmcalls_bot::bot!(Echo);
//! ```
//!
//! The commands are the contract's interfaces: [`calls`] (join, play, pause, …),
//! [`chat`] (send, edit, delete, answer button presses, member standing), [`audio`]
//! (record a call, bridge calls, hear a call's audio), [`config`]
//! (settings; [`settings`] reads them into your own type) and [`logging`] ([`log`]).
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the host loads.

extern crate self as wasmcalls_bot;

wit_bindgen::generate!({
    world: "bot-with-audio",
    path: "../../wit/v0.2",
    pub_export_macro: true,
    export_macro_name: "__export_bot",
    default_bindings_module: "wasmcalls_bot",
    runtime_path: "wasmcalls_bot::__rt",
});

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

pub use wasmcalls::bot::types::{
    ApiRequest, ApiResponse, Attachment, AudioBatch, ListenOptions, ListenTarget, Button, ButtonAction, CallState, CallStatus, CallbackQuery, ChatId, Command,
    Error, Identity, Invite, JoinOptions, LogLevel, MediaKind, MediaSource, MemberStatus, Message, MessageId,
    MessageMedia, NamedSource, Participant, ParticipantChange, ParticipantPage, RawPcm, RecordOptions, RecordTarget,
    RecordedFile, Recording, Reply, SendOptions, SentMessage, TelegramError, TextFormat, UserId,
};
pub use wasmcalls::bot::{audio, calls, config, logging};

/// Messages: the contract's `chat` interface, plus [`chat::reply`] and [`chat::Send`].
pub mod chat {
    pub use crate::wasmcalls::bot::chat::*;

    /// Sends `text` as a reply to `to`, in its chat.
    pub fn reply(to: &crate::Message, text: &str) -> Result<SentMessage, Error> {
        Send::new(to.chat, text).reply_to(to.id).send()
    }

    /// A message to send, built up: `Send::new(chat, "**hi**").markdown().buttons(rows).send()`.
    #[derive(Debug, Clone)]
    pub struct Send {
        chat: ChatId,
        text: String,
        options: SendOptions,
    }

    impl Send {
        pub fn new(chat: ChatId, text: &str) -> Send {
            Send { chat, text: text.to_owned(), options: SendOptions::default() }
        }

        /// Telegram's Markdown (`**bold**`, `__italic__`, `` `code` ``, `[text](url)`).
        pub fn markdown(mut self) -> Send {
            self.options.format = TextFormat::Markdown;
            self
        }

        /// Telegram's HTML subset.
        pub fn html(mut self) -> Send {
            self.options.format = TextFormat::Html;
            self
        }

        pub fn reply_to(mut self, message: MessageId) -> Send {
            self.options.reply_to = Some(message);
            self
        }

        /// Without a notification sound.
        pub fn silent(mut self) -> Send {
            self.options.silent = true;
            self
        }

        /// Rows of inline buttons (the bot account sends them).
        pub fn buttons(mut self, rows: Vec<Vec<crate::Button>>) -> Send {
            self.options.buttons = rows;
            self
        }

        pub fn send(self) -> Result<SentMessage, Error> {
            send(self.chat, &self.text, &self.options)
        }
    }
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions { format: TextFormat::Plain, reply_to: None, silent: false, buttons: Vec::new() }
    }
}

impl ListenOptions {
    /// 16 kHz mono in 200 ms batches: what speech recognisers take.
    pub fn speech() -> ListenOptions {
        ListenOptions { sample_rate: 16_000, channels: 1, batch_ms: 200 }
    }
}

impl Default for RecordOptions {
    /// Within the operator's caps.
    fn default() -> Self {
        RecordOptions { max_seconds: None, max_mb: None }
    }
}

impl Default for JoinOptions {
    /// As the account itself, unmuted, into a voice chat that is already running.
    fn default() -> Self {
        JoinOptions { join_as: None, invite_hash: None, start_muted: false, create_if_missing: false }
    }
}

impl Button {
    /// A button that sends the bot a callback query with `data` (at most 64 bytes).
    pub fn callback(text: &str, data: &str) -> Button {
        Button { text: text.to_owned(), action: ButtonAction::Callback(data.to_owned()) }
    }

    /// A button that opens `url`.
    pub fn url(text: &str, url: &str) -> Button {
        Button { text: text.to_owned(), action: ButtonAction::Url(url.to_owned()) }
    }
}

impl MediaSource {
    /// A file in a folder granted to the plugin.
    pub fn file(path: &str) -> MediaSource {
        MediaSource::File(path.to_owned())
    }

    /// The audio of a message (a user's upload).
    pub fn message(chat: ChatId, message: MessageId) -> MediaSource {
        MediaSource::Message(MessageMedia { chat, message })
    }

    /// What a user typed after `/play`: a URL, `name:argument` for an operator's named
    /// source, or a file path.
    pub fn parse(text: &str) -> MediaSource {
        let text = text.trim();
        if text.starts_with("http://") || text.starts_with("https://") {
            return MediaSource::Url(text.to_owned());
        }
        match text.split_once(':') {
            Some((name, argument))
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                MediaSource::Named(NamedSource { name: name.to_owned(), argument: argument.to_owned() })
            }
            _ => MediaSource::File(text.to_owned()),
        }
    }
}

impl MemberStatus {
    /// May manage the chat.
    pub fn is_admin(&self) -> bool {
        matches!(self, MemberStatus::Creator | MemberStatus::Administrator)
    }
}

impl CallState {
    /// The state's WIT name: `connecting`, `playing`, `paused` or `idle`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallState::Connecting => "connecting",
            CallState::Playing => "playing",
            CallState::Paused => "paused",
            CallState::Idle => "idle",
        }
    }
}

/// The plugin's settings (`[plugins.settings]`), read into `T`.
pub fn settings<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&config::settings()).map_err(|e| format!("the plugin's settings do not fit: {e}"))
}

/// Logs a line through the host, prefixed with the plugin's name.
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    logging::log(level, message.as_ref());
}

/// A bot's event handlers, on its own state. Every method has a default, so
/// implement only what the bot reacts to.
pub trait Bot: Default + 'static {
    /// The host is running; `me` are the accounts it acts through.
    fn on_start(&mut self, me: Identity) {
        let _ = me;
    }
    /// A new message in a chat the bot may chat in (`grants.messages`).
    fn on_message(&mut self, message: Message) {
        let _ = message;
    }
    /// A button under one of the bot's messages was pressed; answer it with
    /// [`chat::answer_callback`].
    fn on_callback_query(&mut self, query: CallbackQuery) {
        let _ = query;
    }
    /// The stream in `chat` played to its end (exactly once per source).
    fn on_stream_end(&mut self, chat: ChatId) {
        let _ = chat;
    }
    /// Who is in `chat`'s call changed.
    fn on_participants(&mut self, chat: ChatId, changes: Vec<ParticipantChange>) {
        let _ = (chat, changes);
    }
    /// We were removed from `chat`, or from its call.
    fn on_kicked(&mut self, chat: ChatId) {
        let _ = chat;
    }
    /// `chat`'s voice chat ended.
    fn on_call_ended(&mut self, chat: ChatId) {
        let _ = chat;
    }
    /// `chat`'s call lost its connection for good.
    fn on_connection_lost(&mut self, chat: ChatId, reason: String) {
        let _ = (chat, reason);
    }
    /// Someone invited us to a group call.
    fn on_group_call_invite(&mut self, invite: Invite) {
        let _ = invite;
    }
    /// A request to the bot's HTTP API. The default answers 404: this bot has none.
    fn on_custom_api(&mut self, request: ApiRequest) -> ApiResponse {
        let _ = request;
        ApiResponse { status: 404, body: r#"{"error":"this plugin has no custom API"}"#.into() }
    }
    /// Any Telegram update about a granted chat, as JSON.
    fn on_raw_update(&mut self, update: String) {
        let _ = update;
    }
    /// On hot reload, the state to hand to the new version. The default hands over
    /// nothing, and the new version starts fresh with `on_start`.
    fn save(&mut self) -> Vec<u8> {
        Vec::new()
    }
    /// In the new version, instead of `on_start`: what the old version saved.
    fn restore(&mut self, state: Vec<u8>) {
        let _ = state;
    }
    /// A recording of `chat`'s call ended by itself (a cap, a file that could not be
    /// written, its call gone): what it wrote, and `recording.error` why.
    fn on_recording_ended(&mut self, chat: ChatId, recording: Recording) {
        let _ = (chat, recording);
    }
    /// A batch of `chat`'s call's audio, after [`audio::listen`] (needs the operator's
    /// `grants.audio`). Handle it quickly: batches that arrive faster than they are
    /// handled are dropped, and the next batch's `dropped` says how many.
    fn on_audio(&mut self, chat: ChatId, batch: AudioBatch) {
        let _ = (chat, batch);
    }
}

/// Exports a type implementing [`Bot`] (and `Default`) as this component's handler.
#[macro_export]
macro_rules! bot {
    ($bot:ty) => {
        #[doc(hidden)]
        pub struct __WasmcallsBot;

        std::thread_local! {
            static __WASMCALLS_BOT: std::cell::RefCell<Option<$bot>> = const { std::cell::RefCell::new(None) };
        }

        /// Runs `f` on the bot, made with `Default` before its first event.
        fn __with_bot<R>(f: impl FnOnce(&mut $bot) -> R) -> R {
            __WASMCALLS_BOT.with(|b| f(b.borrow_mut().get_or_insert_with(<$bot as Default>::default)))
        }

        impl $crate::exports::wasmcalls::bot::handler::Guest for __WasmcallsBot {
            fn on_start(me: $crate::Identity) {
                __with_bot(|b| $crate::Bot::on_start(b, me))
            }
            fn on_message(message: $crate::Message) {
                __with_bot(|b| $crate::Bot::on_message(b, message))
            }
            fn on_callback_query(query: $crate::CallbackQuery) {
                __with_bot(|b| $crate::Bot::on_callback_query(b, query))
            }
            fn on_stream_end(chat: $crate::ChatId) {
                __with_bot(|b| $crate::Bot::on_stream_end(b, chat))
            }
            fn on_participants(chat: $crate::ChatId, changes: Vec<$crate::ParticipantChange>) {
                __with_bot(|b| $crate::Bot::on_participants(b, chat, changes))
            }
            fn on_kicked(chat: $crate::ChatId) {
                __with_bot(|b| $crate::Bot::on_kicked(b, chat))
            }
            fn on_call_ended(chat: $crate::ChatId) {
                __with_bot(|b| $crate::Bot::on_call_ended(b, chat))
            }
            fn on_connection_lost(chat: $crate::ChatId, reason: String) {
                __with_bot(|b| $crate::Bot::on_connection_lost(b, chat, reason))
            }
            fn on_group_call_invite(invite: $crate::Invite) {
                __with_bot(|b| $crate::Bot::on_group_call_invite(b, invite))
            }
            fn on_custom_api(request: $crate::ApiRequest) -> $crate::ApiResponse {
                __with_bot(|b| $crate::Bot::on_custom_api(b, request))
            }
            fn on_raw_update(update: String) {
                __with_bot(|b| $crate::Bot::on_raw_update(b, update))
            }
        }
        impl $crate::exports::wasmcalls::bot::audio_events::Guest for __WasmcallsBot {
            fn on_recording_ended(chat: $crate::ChatId, recording: $crate::Recording) {
                __with_bot(|b| $crate::Bot::on_recording_ended(b, chat, recording))
            }
            fn on_audio(chat: $crate::ChatId, batch: $crate::AudioBatch) {
                __with_bot(|b| $crate::Bot::on_audio(b, chat, batch))
            }
        }
        impl $crate::exports::wasmcalls::bot::state::Guest for __WasmcallsBot {
            fn save() -> Vec<u8> {
                __with_bot(|b| $crate::Bot::save(b))
            }
            fn restore(state: Vec<u8>) {
                __with_bot(|b| $crate::Bot::restore(b, state))
            }
        }
        $crate::__export_bot!(__WasmcallsBot with_types_in $crate);
    };
}
