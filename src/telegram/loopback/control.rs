//! The loopback over HTTP. As an SFU: `POST /join?chat=<id>` with the join
//! JSON as body answers with the transport JSON, so a host in another process (or
//! another implementation entirely) can join the loopback exactly as it would an SFU.
//! `GET /calls` lists every participant with what it heard.
//!
//! Control, for scripts and tests (`wasmcalls loopback kick|invite|end-call|start-call|raw`):
//! `POST /chats/<id>/kick`, `POST /chats/<id>/invite?inviter=<user>`,
//! `POST /chats/<id>/start`, `POST /chats/<id>/end`, `POST /updates` (a JSON body,
//! delivered as a raw update), and `GET /chats`.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::Loopback;
use crate::telegram::{ChatId, TelegramError};

#[derive(Deserialize)]
struct JoinQuery {
    #[serde(default)]
    chat: ChatId,
}

/// Routes: `POST /join`, `GET /calls`, and the control routes above.
pub fn router(loopback: Loopback) -> Router {
    Router::new()
        .route("/join", post(join))
        .route("/calls", get(calls))
        .route("/chats", get(chats))
        .route("/chats/{id}/kick", post(kick))
        .route("/chats/{id}/invite", post(invite))
        .route("/chats/{id}/start", post(start))
        .route("/chats/{id}/end", post(end))
        .route("/updates", post(raw))
        .with_state(loopback)
}

async fn chats(State(lb): State<Loopback>) -> Json<serde_json::Value> {
    Json(serde_json::json!(lb.chats()))
}

async fn kick(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> StatusCode {
    lb.kick(chat);
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct InviteQuery {
    #[serde(default = "default_inviter")]
    inviter: i64,
}

fn default_inviter() -> i64 {
    1
}

async fn invite(
    State(lb): State<Loopback>,
    Path(chat): Path<ChatId>,
    Query(q): Query<InviteQuery>,
) -> Json<crate::telegram::Invite> {
    Json(lb.invite(chat, q.inviter))
}

async fn start(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> StatusCode {
    lb.start_call(chat);
    StatusCode::NO_CONTENT
}

async fn end(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> StatusCode {
    lb.end_call(chat);
    StatusCode::NO_CONTENT
}

async fn raw(State(lb): State<Loopback>, body: String) -> (StatusCode, String) {
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => {
            lb.raw_update(v);
            (StatusCode::NO_CONTENT, String::new())
        }
        Err(e) => {
            (StatusCode::BAD_REQUEST, serde_json::json!({ "error": format!("body is not JSON: {e}") }).to_string())
        }
    }
}

async fn calls(State(lb): State<Loopback>) -> Json<serde_json::Value> {
    let list: Vec<_> = lb
        .calls()
        .iter()
        .map(|c| serde_json::json!({ "chat": c.chat(), "ssrc": c.ssrc(), "heard": c.stats() }))
        .collect();
    Json(serde_json::Value::Array(list))
}

async fn join(State(lb): State<Loopback>, Query(q): Query<JoinQuery>, body: String) -> (StatusCode, String) {
    match lb.join_json(q.chat, &body).await {
        Ok(transport) => (StatusCode::OK, transport),
        Err(e @ TelegramError::Join(_)) => (StatusCode::BAD_REQUEST, error_json(&e)),
        Err(e @ TelegramError::NoActiveGroupCall(_)) => (StatusCode::NOT_FOUND, error_json(&e)),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, error_json(&e)),
    }
}

fn error_json(e: &TelegramError) -> String {
    serde_json::json!({ "error": e.to_string() }).to_string()
}
