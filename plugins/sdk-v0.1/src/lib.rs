//! Write a wasmcalls bot in Rust.
//!
//! Implement [`Bot`] — every event has a default that does nothing, so a bot writes
//! only the handlers it needs — and export it with [`bot!`]:
//!
//! ```ignore
//! use wasmcalls_bot::{Bot, calls};
//!
//! struct Hello;
//! impl Bot for Hello {
//!     fn on_start(my_id: i64) {
//!         calls::log(wasmcalls_bot::LogLevel::Info, &format!("hello from {my_id}"));
//!     }
//! }
//! wasmcalls_bot::bot!(Hello);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component the host loads.

extern crate self as wasmcalls_bot;

wit_bindgen::generate!({
    world: "bot-with-state",
    path: "../../wit/v0.1",
    pub_export_macro: true,
    export_macro_name: "__export_bot",
    default_bindings_module: "wasmcalls_bot",
    runtime_path: "wasmcalls_bot::__rt",
});

#[doc(hidden)]
pub use wit_bindgen::rt as __rt;

/// The commands: `calls::join_group_call(chat, "song.raw", 48000)` and the rest.
pub use wasmcalls::bot::calls;
pub use wasmcalls::bot::types::{ApiRequest, ApiResponse, CallError, CallState, CallStatus, ChatId, Invite, LogLevel};

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

/// A bot's event handlers. Every method has a default, so implement only what the
/// bot reacts to.
pub trait Bot {
    /// The host is running; `my_id` is the account's Telegram user id.
    fn on_start(my_id: i64) {
        let _ = my_id;
    }
    /// The stream in `chat` played to its end (exactly once per stream).
    fn on_stream_end(chat: ChatId) {
        let _ = chat;
    }
    /// We were removed from `chat`, or its group call ended.
    fn on_kicked(chat: ChatId) {
        let _ = chat;
    }
    /// Someone invited us to a group call.
    fn on_group_call_invite(invite: Invite) {
        let _ = invite;
    }
    /// A custom HTTP API request. The default answers 404: this bot has no API.
    fn on_custom_api(request: ApiRequest) -> ApiResponse {
        let _ = request;
        ApiResponse { status: 404, body: r#"{"error":"this plugin has no custom API"}"#.into() }
    }
    /// A Telegram update, as JSON.
    fn on_raw_update(update: String) {
        let _ = update;
    }
    /// On hot reload, the state to hand to the new version. The default hands over
    /// nothing, and the new version starts fresh with `on_start`.
    fn save() -> Vec<u8> {
        Vec::new()
    }
    /// In the new version, instead of `on_start`: what the old version saved.
    fn restore(state: Vec<u8>) {
        let _ = state;
    }
}

/// Logs a line through the host, prefixed with the plugin's name.
pub fn log(level: LogLevel, message: impl AsRef<str>) {
    calls::log(level, message.as_ref());
}

/// Exports a type implementing [`Bot`] as this component's `handler`.
#[macro_export]
macro_rules! bot {
    ($bot:ty) => {
        #[doc(hidden)]
        pub struct __WasmcallsBot;
        impl $crate::exports::wasmcalls::bot::handler::Guest for __WasmcallsBot {
            fn on_start(my_id: i64) {
                <$bot as $crate::Bot>::on_start(my_id)
            }
            fn on_stream_end(chat: $crate::ChatId) {
                <$bot as $crate::Bot>::on_stream_end(chat)
            }
            fn on_kicked(chat: $crate::ChatId) {
                <$bot as $crate::Bot>::on_kicked(chat)
            }
            fn on_group_call_invite(invite: $crate::Invite) {
                <$bot as $crate::Bot>::on_group_call_invite(invite)
            }
            fn on_custom_api(request: $crate::ApiRequest) -> $crate::ApiResponse {
                <$bot as $crate::Bot>::on_custom_api(request)
            }
            fn on_raw_update(update: String) {
                <$bot as $crate::Bot>::on_raw_update(update)
            }
        }
        impl $crate::exports::wasmcalls::bot::state::Guest for __WasmcallsBot {
            fn save() -> Vec<u8> {
                <$bot as $crate::Bot>::save()
            }
            fn restore(state: Vec<u8>) {
                <$bot as $crate::Bot>::restore(state)
            }
        }
        $crate::__export_bot!(__WasmcallsBot with_types_in $crate);
    };
}
