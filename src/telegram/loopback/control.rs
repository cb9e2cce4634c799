//! The loopback over HTTP. As an SFU: `POST /join?chat=<id>` with the join
//! JSON as body answers with the transport JSON, so a host in another process (or
//! another implementation entirely) can join the loopback exactly as it would an SFU.
//! `GET /calls` lists every participant with what it heard.
//!
//! Control, for scripts and tests (`wasmcalls loopback kick|invite|end-call|start-call|raw`):
//! `POST /chats/<id>/kick`, `POST /chats/<id>/invite?inviter=<user>`,
//! `POST /chats/<id>/start`, `POST /chats/<id>/end`, `POST /updates` (a JSON body,
//! delivered as a raw update), and `GET /chats`.
//!
//! People (`wasmcalls loopback say|press|participant|messages`):
//! `POST /chats/<id>/messages` `{"from", "text", "reply_to"}` → `{"id"}`;
//! `POST /chats/<id>/uploads?from=&name=&kind=audio|voice|document&caption=` with the
//! file as body → `{"id"}`; `POST /chats/<id>/press` `{"from", "message", "data"}` →
//! `{"query"}`; `POST /chats/<id>/participants` `{"action": "join|leave|mute|unmute",
//! "user"}`; `POST /chats/<id>/speak?user=&name=` with an audio file as body (the
//! person joins the call if need be and says it) → `{"seconds"}`;
//! `GET /chats/<id>/messages` (the transcript) and `GET /chats/<id>/participants`.
//! `GET /chats/<id>/audio`: what our participant in the call is heard saying, live, as
//! raw PCM (`audio/L16`, 48 kHz stereo) for as long as the client reads.
//!
//! The network (`wasmcalls loopback outage`): `POST /network/outage?seconds=<s>`
//! blackholes every call that passes through the fault relay from now on.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;

use super::{DEFAULT_PERSON, File, Loopback, MAX_UPLOAD, Upload};
use crate::telegram::{ChatId, Telegram, TelegramError};

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
        .route("/network/outage", post(outage))
        .route("/network/move", post(move_media))
        .route("/chats/{id}/messages", post(say).get(transcript))
        .route("/chats/{id}/uploads", post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/chats/{id}/press", post(press))
        .route("/chats/{id}/participants", post(people).get(participants))
        .route("/chats/{id}/speak", post(speak).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
        .route("/chats/{id}/audio", get(audio))
        .with_state(loopback)
}

type Answer = (StatusCode, Json<serde_json::Value>);

fn refused(e: impl std::fmt::Display) -> Answer {
    (StatusCode::BAD_REQUEST, Json(serde_json::json!({ "error": e.to_string() })))
}

fn person() -> i64 {
    DEFAULT_PERSON
}

#[derive(Deserialize)]
struct Say {
    #[serde(default = "person")]
    from: i64,
    text: String,
    reply_to: Option<i32>,
}

async fn say(State(lb): State<Loopback>, Path(chat): Path<ChatId>, Json(s): Json<Say>) -> Answer {
    match lb.say(chat, s.from, &s.text, s.reply_to) {
        Ok(id) => (StatusCode::OK, Json(serde_json::json!({ "id": id }))),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct UploadQuery {
    #[serde(default = "person")]
    from: i64,
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    caption: String,
}

/// The MIME type Telegram would record for a file named `name`.
pub fn mime_of(name: &str) -> &'static str {
    match name.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
        Some("mp3") => "audio/mpeg",
        Some("ogg" | "oga" | "opus") => "audio/ogg",
        Some("flac") => "audio/flac",
        Some("wav") => "audio/x-wav",
        Some("m4a" | "aac") => "audio/mp4",
        Some("webm") => "audio/webm",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

async fn upload(
    State(lb): State<Loopback>,
    Path(chat): Path<ChatId>,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Answer {
    let kind = match q.kind.as_deref() {
        None | Some("audio") => Upload::Audio,
        Some("voice") => Upload::Voice,
        Some("document") => Upload::Document,
        Some(other) => return refused(format!("kind {other:?}: write audio, voice or document")),
    };
    let file = File { mime: mime_of(&q.name).to_owned(), name: q.name, kind, bytes: Arc::new(body.to_vec()) };
    match lb.upload(chat, q.from, file, &q.caption) {
        Ok(id) => (StatusCode::OK, Json(serde_json::json!({ "id": id }))),
        Err(e) => refused(e),
    }
}

async fn transcript(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> Json<serde_json::Value> {
    Json(serde_json::json!(lb.transcript(chat)))
}

#[derive(Deserialize)]
struct Press {
    #[serde(default = "person")]
    from: i64,
    message: i32,
    data: String,
}

async fn press(State(lb): State<Loopback>, Path(chat): Path<ChatId>, Json(p): Json<Press>) -> Answer {
    match lb.press(chat, p.message, p.from, &p.data) {
        Ok(query) => (StatusCode::OK, Json(serde_json::json!({ "query": query }))),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct People {
    action: String,
    #[serde(default = "person")]
    user: i64,
}

async fn people(State(lb): State<Loopback>, Path(chat): Path<ChatId>, Json(p): Json<People>) -> Answer {
    let r = match p.action.as_str() {
        "join" => lb.person_joins(chat, p.user, false),
        "leave" => lb.person_leaves(chat, p.user),
        "mute" => lb.person_mutes(chat, p.user, true),
        "unmute" => lb.person_mutes(chat, p.user, false),
        other => Err(format!("action {other:?}: write join, leave, mute or unmute")),
    };
    match r {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({}))),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
struct SpeakQuery {
    #[serde(default = "person")]
    user: i64,
    name: String,
}

async fn speak(
    State(lb): State<Loopback>,
    Path(chat): Path<ChatId>,
    Query(q): Query<SpeakQuery>,
    body: Bytes,
) -> Answer {
    match lb.speak_bytes(chat, q.user, &q.name, &body).await {
        Ok(length) => (StatusCode::OK, Json(serde_json::json!({ "seconds": length.map(|d| d.as_secs_f64()) }))),
        Err(e) => refused(e),
    }
}

async fn participants(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> Answer {
    match lb.participants(chat, None, 1000).await {
        Ok(page) => (StatusCode::OK, Json(serde_json::json!(page.participants))),
        Err(e) => refused(e),
    }
}

/// What the host's participant in the chat's call is heard saying, live: raw 48 kHz
/// stereo 16-bit little-endian PCM for as long as the client reads (the dashboard's
/// Listen).
async fn audio(State(lb): State<Loopback>, Path(chat): Path<ChatId>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(call) = lb.calls().into_iter().rev().find(|c| c.chat() == chat && !c.left()) else {
        return refused(format!("nobody of ours is in chat {chat}'s call to listen to")).into_response();
    };
    let frames = futures::stream::unfold(call.listen(), |mut rx| async move {
        let pcm = rx.recv().await?;
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(bytes)), rx))
    });
    let headers = [(axum::http::header::CONTENT_TYPE, "audio/L16; rate=48000; channels=2")];
    (headers, axum::body::Body::from_stream(frames)).into_response()
}

async fn chats(State(lb): State<Loopback>) -> Json<serde_json::Value> {
    Json(serde_json::json!(lb.chats()))
}

#[derive(Deserialize)]
struct OutageQuery {
    seconds: f64,
}

async fn outage(State(lb): State<Loopback>, Query(q): Query<OutageQuery>) -> (StatusCode, String) {
    if !lb.faulty() {
        let why = "no call passes through the fault relay: configure [loopback.faults] (or loopback serve --delay 1ms)";
        return (StatusCode::CONFLICT, why.into());
    }
    match std::time::Duration::try_from_secs_f64(q.seconds) {
        Ok(len) if q.seconds > 0.0 => {
            lb.outage(len);
            (StatusCode::NO_CONTENT, String::new())
        }
        _ => (StatusCode::BAD_REQUEST, format!("seconds = {}: give a positive number of seconds", q.seconds)),
    }
}

async fn move_media(State(lb): State<Loopback>) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "moved": lb.move_media() }))
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
