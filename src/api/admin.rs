//! `/admin/…`: the operator's API, apart from the bots' custom API and always behind
//! its own bearer token (`[host] admin_token`, or `WASMCALLS_ADMIN_TOKEN`); without
//! one it is off, whatever address the host listens on.
//!
//! ```text
//! GET    /admin/plugins                  what runs: state, counters, the calls each joined
//! PUT    /admin/plugins/{name}           add or replace it: the body is its [[plugins]]
//!                                        section, TOML or JSON (state handed over)
//! DELETE /admin/plugins/{name}           remove it; the calls it joined are left
//! POST   /admin/plugins/{name}/disable   refuse its events; its calls keep playing
//! POST   /admin/plugins/{name}/enable
//! POST   /admin/plugins/{name}/reload    re-read its component file (state handed over)
//! POST   /admin/reload                   re-read the config file, apply the difference
//! ```
//!
//! A change is all or nothing: what does not resolve or compile is refused with the
//! reason, and what was running keeps running.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::ApiState;

/// What the admin API changes: the host's tenants (implemented by the app, which
/// knows the config).
pub trait Admin: Send + Sync {
    /// Adds the plugin `name`, or replaces it, as its config `section` (TOML or JSON) says.
    fn put(&self, name: String, section: String) -> BoxFuture<'_, Result<Value, AdminError>>;
    /// Reloads the plugin `name` from its component file.
    fn reload_plugin(&self, name: String) -> BoxFuture<'_, Result<Value, AdminError>>;
    /// Removes the plugin `name`.
    fn remove(&self, name: String) -> BoxFuture<'_, Result<Value, AdminError>>;
    /// Re-reads the config file and applies what changed.
    fn reload(&self) -> BoxFuture<'_, Result<Value, AdminError>>;
}

/// Why a change was refused; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdminError {
    /// The request or the config it makes is wrong (400).
    #[error("{0}")]
    Invalid(String),
    /// No such plugin (404).
    #[error("{0}")]
    NotFound(String),
    /// A plugin could not be readied: unreadable, not a component, over the host's
    /// capacity (422).
    #[error("{0}")]
    Refused(String),
}

pub(super) fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/admin/plugins", get(list))
        .route("/admin/plugins/{name}", put(put_plugin).delete(delete_plugin))
        .route("/admin/plugins/{name}/disable", post(disable))
        .route("/admin/plugins/{name}/enable", post(enable))
        .route("/admin/plugins/{name}/reload", post(reload_plugin))
        .route("/admin/reload", post(reload))
}

fn answer(code: StatusCode, body: Value) -> Response {
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn refusal(e: AdminError) -> Response {
    let code = match e {
        AdminError::Invalid(_) => StatusCode::BAD_REQUEST,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    answer(code, json!({ "error": format!("{e}; nothing changed") }))
}

/// The admin API's answer when it is off or the token is missing or wrong; `None`
/// lets the request through.
fn guard(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &state.options.admin_token else {
        let why = "the admin API is off: set [host] admin_token (or WASMCALLS_ADMIN_TOKEN) to turn it on";
        return Some(answer(StatusCode::NOT_FOUND, json!({ "error": why })));
    };
    let given =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !given.is_some_and(|g| super::constant_time_eq(g.as_bytes(), token.as_bytes())) {
        let why = "missing or wrong admin token (send `Authorization: Bearer <admin_token>`)";
        return Some(answer(StatusCode::UNAUTHORIZED, json!({ "error": why })));
    }
    None
}

/// What serves `/admin/…` changes, or the answer while the host has none yet.
fn admin(state: &ApiState) -> Result<Arc<dyn Admin>, Box<Response>> {
    state.admin.get().cloned().ok_or_else(|| {
        Box::new(answer(StatusCode::SERVICE_UNAVAILABLE, json!({ "error": "the host is still starting; try again" })))
    })
}

async fn list(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    let live = state.manager.joined_chats();
    let joined: std::collections::HashMap<String, Vec<i64>> =
        state.plugins.counters().into_iter().map(|(name, c)| (name, c.live_calls(&live))).collect();
    let plugins: Vec<Value> = state
        .plugins
        .status()
        .into_iter()
        .map(|p| {
            let calls = joined.get(&p.name).cloned().unwrap_or_default();
            json!({
                "name": p.name,
                "state": if p.disabled { "disabled" } else { "running" },
                "calls": calls,
                "delivered": p.delivered,
                "restarts": p.restarts,
                "reloads": p.reloads,
                "queued": p.queued,
                "version": p.version,
                "memory_kib": p.memory_kib,
            })
        })
        .collect();
    answer(StatusCode::OK, json!({ "plugins": plugins }))
}

async fn put_plugin(
    State(state): State<Arc<ApiState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    let Ok(section) = String::from_utf8(body.to_vec()) else {
        return refusal(AdminError::Invalid("the body is not UTF-8 text (a TOML or JSON plugin section)".into()));
    };
    match admin(&state) {
        Ok(a) => a.put(name, section).await.map_or_else(refusal, |v| answer(StatusCode::OK, v)),
        Err(r) => *r,
    }
}

async fn delete_plugin(State(state): State<Arc<ApiState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    match admin(&state) {
        Ok(a) => a.remove(name).await.map_or_else(refusal, |v| answer(StatusCode::OK, v)),
        Err(r) => *r,
    }
}

async fn disable(State(state): State<Arc<ApiState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    match state.plugins.disable(&name) {
        Ok(()) => answer(StatusCode::OK, json!({ "disabled": name })),
        Err(e) => refusal(AdminError::NotFound(e.to_string())),
    }
}

async fn enable(State(state): State<Arc<ApiState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    match state.plugins.enable(&name) {
        Ok(()) => answer(StatusCode::OK, json!({ "enabled": name })),
        Err(e) => refusal(AdminError::NotFound(e.to_string())),
    }
}

async fn reload_plugin(State(state): State<Arc<ApiState>>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    match admin(&state) {
        Ok(a) => a.reload_plugin(name).await.map_or_else(refusal, |v| answer(StatusCode::OK, v)),
        Err(r) => *r,
    }
}

async fn reload(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(r) = guard(&state, &headers) {
        return r;
    }
    match admin(&state) {
        Ok(a) => a.reload().await.map_or_else(refusal, |v| answer(StatusCode::OK, v)),
        Err(r) => *r,
    }
}
