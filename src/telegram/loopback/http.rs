//! The loopback over HTTP, for the SFU seam: `POST /join?chat=<id>` with the join
//! JSON as body answers with the transport JSON, so a host in another process (or
//! another implementation entirely) can join the loopback exactly as it would an SFU.
//! `GET /calls` lists every participant with what it heard.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use axum::routing::{get, post};
use serde::Deserialize;

use super::Loopback;
use crate::telegram::{ChatId, TelegramError};

#[derive(Deserialize)]
struct JoinQuery {
    #[serde(default)]
    chat: ChatId,
}

/// Routes: `POST /join`, `GET /calls`.
pub fn router(loopback: Loopback) -> Router {
    Router::new().route("/join", post(join)).route("/calls", get(calls)).with_state(loopback)
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
