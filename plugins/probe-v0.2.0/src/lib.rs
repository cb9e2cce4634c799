//! A plugin built against `wasmcalls:bot@0.2.0` exactly as it was released (the WIT in
//! `wit/` is frozen): it joins when its custom API says so and records the events it
//! gets, so the host's tests show a 0.2.0 component still links and runs.

use std::cell::RefCell;

use serde_json::{Value, json};

wit_bindgen::generate!({ world: "bot", path: "wit" });

use exports::wasmcalls::bot::handler::Guest;
use wasmcalls::bot::calls;
use wasmcalls::bot::types::{
    ApiRequest, ApiResponse, CallbackQuery, ChatId, Identity, Invite, JoinOptions, MediaSource, Message,
    ParticipantChange,
};

thread_local! {
    static EVENTS: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
}

fn record(event: Value) {
    EVENTS.with(|e| e.borrow_mut().push(event));
}

struct Probe;

impl Guest for Probe {
    fn on_start(me: Identity) {
        record(json!({ "on-start": me.user }));
    }
    fn on_message(_: Message) {}
    fn on_callback_query(_: CallbackQuery) {}
    fn on_stream_end(chat: ChatId) {
        record(json!({ "on-stream-end": chat }));
    }
    fn on_participants(chat: ChatId, changes: Vec<ParticipantChange>) {
        for c in changes {
            if let ParticipantChange::StartedSpeaking(p) = c {
                record(json!({ "started-speaking": { "chat": chat, "peer": p } }));
            }
        }
    }
    fn on_kicked(_: ChatId) {}
    fn on_call_ended(_: ChatId) {}
    fn on_connection_lost(_: ChatId, _: String) {}
    fn on_group_call_invite(_: Invite) {}
    fn on_custom_api(request: ApiRequest) -> ApiResponse {
        let cmd: Value = serde_json::from_str(&request.body).unwrap_or_default();
        let answer = match cmd["cmd"].as_str() {
            Some("join") => {
                let options =
                    JoinOptions { join_as: None, invite_hash: None, start_muted: false, create_if_missing: false };
                let source = MediaSource::File(cmd["file"].as_str().unwrap_or_default().to_owned());
                match calls::join(cmd["chat"].as_i64().unwrap_or_default(), &source, &options) {
                    Ok(()) => json!({ "ok": null }),
                    Err(e) => json!({ "err": format!("{e:?}") }),
                }
            }
            Some("events") => EVENTS.with(|e| json!(e.borrow().clone())),
            _ => json!({ "err": "unknown command" }),
        };
        ApiResponse { status: 200, body: answer.to_string() }
    }
    fn on_raw_update(_: String) {}
}

export!(Probe);
