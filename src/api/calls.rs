//! `/calls/{chat}/…`: the host's own controls over a call, for the dashboard and
//! scripts — what a plugin can do to its calls, done from outside it. Behind the API
//! token like the rest.
//!
//! ```text
//! POST /calls/{chat}/pause     pause what plays (it keeps its place)
//! POST /calls/{chat}/resume
//! POST /calls/{chat}/skip      end what plays now, as if it had played to its end:
//!                              the plugin hears on-stream-end and plays its next
//! POST /calls/{chat}/volume    {"volume": 0–200}
//! POST /calls/{chat}/leave
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::{ApiState, authorized, error};
use crate::calls::CallError;
use crate::telegram::ChatId;

pub(super) fn router() -> Router<Arc<ApiState>> {
    Router::new().route("/calls/{chat}/{action}", post(control))
}

async fn control(
    State(state): State<Arc<ApiState>>,
    Path((chat, action)): Path<(ChatId, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let r = act(&state, chat, &action, &headers, &body).await;
    state.count(r.status());
    r
}

async fn act(state: &ApiState, chat: ChatId, action: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if !authorized(state, headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let m = &state.manager;
    let done = match action {
        "pause" => m.pause(chat),
        "resume" => m.resume(chat),
        "skip" => m.skip(chat),
        "leave" => m.leave(chat).await,
        "volume" => match serde_json::from_slice::<serde_json::Value>(body).ok().and_then(|v| v["volume"].as_u64()) {
            Some(v) => m.set_volume(chat, v.min(u16::MAX as u64) as u16),
            None => return error(StatusCode::BAD_REQUEST, "send {\"volume\": 0–200}"),
        },
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no call control {other:?}: pause, resume, skip, volume or leave"),
            );
        }
    };
    match done {
        Ok(()) => (StatusCode::OK, axum::Json(json!({ "ok": true }))).into_response(),
        Err(e @ CallError::NotInCall(_)) => error(StatusCode::NOT_FOUND, e),
        Err(e @ (CallError::InvalidArgument(_) | CallError::NothingPlaying(_) | CallError::StillConnecting(_))) => {
            error(StatusCode::CONFLICT, e)
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
