//! `/ui`: the dashboard, and `/events`, the host's events as they happen.
//!
//! The page, its script and its style are compiled into the binary (`ui/` in the
//! repository; no build step) and served with a policy that lets them reach this host
//! only. The page itself holds nothing secret and loads without the token; everything
//! it shows comes from the token-protected API (`/status`, `/events`, `/calls/…`,
//! `/loopback/…`, `/admin/…`), which it calls with the token the user gives it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::{ApiState, authorized, error};
use crate::calls::HostEvent;

const INDEX: &str = include_str!("../../ui/index.html");
const SCRIPT: &str = include_str!("../../ui/app.js");
const STYLE: &str = include_str!("../../ui/app.css");

/// Nothing but this host: no other origin for scripts, styles, images or requests.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub(super) fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/ui", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/ui/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route("/ui/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/ui/app.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/events", get(events))
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, kind),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        // The binary is the version: a new one serves new assets at once.
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (StatusCode::OK, headers, body).into_response()
}

/// Server-sent events: one per host event (`event: <kind>`, `data: <json>`), a
/// `lagged` one when a slow reader missed some, and a ping every 15 s.
async fn events(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let Some(rx) = state.events.get().map(broadcast::Sender::subscribe) else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the host is still starting");
    };
    Sse::new(stream(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).event(Event::default().event("ping")))
        .into_response()
}

fn stream(rx: broadcast::Receiver<HostEvent>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        let (kind, data) = match rx.recv().await {
            Ok(ev) => describe(&ev),
            Err(broadcast::error::RecvError::Lagged(n)) => ("lagged", json!({ "missed": n })),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(Event::default().event(kind).data(data.to_string())), rx))
    })
}

/// A host event as the dashboard shows it: its kind, and its fields as JSON.
pub fn describe(ev: &HostEvent) -> (&'static str, Value) {
    match ev {
        HostEvent::StreamEnd(chat) => ("stream-end", json!({ "chat": chat })),
        HostEvent::Kicked(chat) => ("kicked", json!({ "chat": chat })),
        HostEvent::CallEnded(chat) => ("call-ended", json!({ "chat": chat })),
        HostEvent::ConnectionLost { chat, reason } => ("connection-lost", json!({ "chat": chat, "reason": reason })),
        HostEvent::Invite(i) => ("invite", json!(i)),
        HostEvent::Message(m) => ("message", json!(**m)),
        HostEvent::Callback(q) => ("callback", json!(**q)),
        HostEvent::Participants { chat, changes } => ("participants", json!({ "chat": chat, "changes": **changes })),
        HostEvent::RecordingEnded { chat, summary } => ("recording-ended", json!({ "chat": chat, "summary": **summary })),
        HostEvent::RawUpdate { json, chat } => {
            let update = serde_json::from_str::<Value>(json).unwrap_or_else(|_| Value::String(json.clone()));
            ("raw-update", json!({ "chat": chat, "update": update }))
        }
    }
}
