//! The HTTP API. Seed-compatible `POST /api` (the default plugin's
//! `on-custom-api`, JSON in, JSON out) and `POST /api/<plugin>`; `GET /healthz` (the
//! process answers), `GET /readyz` (it takes new calls: not while draining), `GET
//! /metrics` (Prometheus text), `GET /status` (JSON for `wasmcalls status`); the
//! dashboard and its event stream ([`ui`]), controls over calls ([`calls`]), the
//! loopback's control endpoint under `/loopback/…` when the host runs on it, and the
//! operator's `/admin/…` ([`admin`]).
//!
//! Safe by default: bound to 127.0.0.1; another address needs a bearer token (the
//! config refuses otherwise). Bodies are capped, plugins get a deadline and a cap on
//! requests in flight, and every failure is a JSON body naming the cause — the host
//! never hangs or crashes on a request.

pub mod admin;
mod calls;
mod metrics;
pub mod ui;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::calls::{CallManager, CallStatus, HostEvent};
use crate::media::MediaPlane;
use crate::runtime::{ApiCall, PluginError, PluginHost, PluginStatus};

/// Plugin replies larger than this are refused (502): a plugin cannot make the host
/// buffer and send without bound.
pub const MAX_REPLY: usize = 1024 * 1024;

/// Where the API listens and what it allows (`[host]` in the config).
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// Address and port; port 0 picks a free one. Anything but loopback needs a token.
    pub listen: SocketAddr,
    /// Bearer token every request but `/healthz` and `/readyz` must carry, when set.
    pub token: Option<String>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// How long a plugin may take to answer.
    pub timeout: Duration,
    /// Requests one plugin may have in flight; more get 429.
    pub concurrency: usize,
    /// The plugin answering `POST /api`; `None`: the first with an API route.
    pub default_plugin: Option<String>,
    /// Bearer token of `/admin/…`; none: the admin API is off.
    pub admin_token: Option<String>,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 24859)),
            token: None,
            max_body: 64 * 1024,
            timeout: Duration::from_secs(5),
            concurrency: 8,
            default_plugin: None,
            admin_token: None,
        }
    }
}

/// What a host is doing: the body of `GET /status`, which `wasmcalls status` reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub telegram: TelegramStatus,
    pub plugins: Vec<PluginStatus>,
    pub calls: Vec<CallStatus>,
    pub frames_sent: u64,
    pub late_frames: u64,
    pub uptime_s: u64,
    /// Each pacer thread's calls and how busy it is.
    #[serde(default)]
    pub shards: Vec<crate::media::pacer::ShardLoad>,
    /// Live sources encoded once for the calls playing them.
    #[serde(default)]
    pub feeds: Vec<crate::media::shared::FeedStatus>,
    /// Whether `/admin/…` is on (the host has an admin token), so the dashboard can
    /// offer its plugin controls or say how to turn them on.
    #[serde(default)]
    pub admin_api: bool,
}

/// The Telegram side a host runs on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TelegramStatus {
    /// `loopback`, `telegram` or `sfu`.
    pub backend: String,
    /// The account's user id, if there is one.
    pub account: Option<i64>,
    /// The bot account's user id, if there is one.
    #[serde(default)]
    pub bot: Option<i64>,
}

/// What the handlers share.
pub struct ApiState {
    pub plugins: Arc<PluginHost>,
    pub manager: CallManager,
    pub media: Arc<MediaPlane>,
    pub options: ApiOptions,
    routes: parking_lot::RwLock<Routes>,
    /// What `/admin/…` changes, once the host has set it.
    admin: std::sync::OnceLock<Arc<dyn admin::Admin>>,
    /// The host's events, for `/events`, once the host has set them.
    events: std::sync::OnceLock<tokio::sync::broadcast::Sender<HostEvent>>,
    /// The loopback, whose control endpoint is served under `/loopback/…`.
    loopback: std::sync::OnceLock<crate::telegram::loopback::Loopback>,
    requests: Mutex<HashMap<u16, u64>>,
    started: Instant,
}

/// Plugins reachable at `/api/<name>`, with their in-flight limit, and the one `POST
/// /api` reaches.
#[derive(Default)]
struct Routes {
    by_name: HashMap<String, Arc<Semaphore>>,
    default: Option<String>,
}

impl ApiState {
    /// `routes`: plugins with an API route, in config order (the first is the default
    /// unless the options name another).
    pub fn new(
        plugins: Arc<PluginHost>,
        manager: CallManager,
        media: Arc<MediaPlane>,
        options: ApiOptions,
        routes: Vec<String>,
    ) -> Self {
        let state = ApiState {
            plugins,
            manager,
            media,
            options,
            routes: Default::default(),
            admin: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            loopback: std::sync::OnceLock::new(),
            requests: Mutex::new(HashMap::new()),
            started: Instant::now(),
        };
        state.set_routes(routes);
        state
    }

    /// The plugins with an API route now, in config order: a plugin added or removed
    /// while the host runs. Requests in flight to a plugin that stays keep its limit.
    pub fn set_routes(&self, names: Vec<String>) {
        let mut routes = self.routes.write();
        let default = self.options.default_plugin.clone().or_else(|| names.first().cloned());
        let by_name = names
            .into_iter()
            .map(|n| {
                let permits = routes.by_name.get(&n).cloned();
                let permits = permits.unwrap_or_else(|| Arc::new(Semaphore::new(self.options.concurrency)));
                (n, permits)
            })
            .collect();
        *routes = Routes { by_name, default };
    }

    /// Turns `/admin/…` on, served by `admin` (once; later calls are ignored).
    pub fn set_admin(&self, admin: Arc<dyn admin::Admin>) {
        let _ = self.admin.set(admin);
    }

    /// Streams the host's `events` on `/events` (once; later calls are ignored).
    pub fn set_events(&self, events: tokio::sync::broadcast::Sender<HostEvent>) {
        let _ = self.events.set(events);
    }

    /// Serves the loopback's control endpoint under `/loopback/…`, behind the API
    /// token, from routers built after this (once; later calls are ignored).
    pub fn set_loopback(&self, loopback: crate::telegram::loopback::Loopback) {
        let _ = self.loopback.set(loopback);
    }

    fn count(&self, status: StatusCode) {
        *self.requests.lock().entry(status.as_u16()).or_default() += 1;
    }
}

/// The router; `state` is shared by every request.
pub fn router(state: Arc<ApiState>) -> Router {
    let mut router = Router::new()
        .route("/api", post(api_default))
        .route("/api/{plugin}", post(api_named))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(admin::router())
        .merge(calls::router())
        .merge(ui::router())
        .route("/metrics", get(metrics_text))
        .route("/status", get(status))
        .with_state(state.clone());
    if let Some(lb) = state.loopback.get() {
        let control = crate::telegram::loopback::control::router(lb.clone())
            .layer(axum::middleware::from_fn_with_state(state, token_required));
        router = router.nest("/loopback", control);
    }
    router
}

/// Lets a request through only with the API token (when one is configured).
async fn token_required(
    State(state): State<Arc<ApiState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !authorized(&state, request.headers()) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    next.run(request).await
}

/// Serves `router(state)` on an already bound listener until the task is aborted.
pub fn spawn(listener: tokio::net::TcpListener, state: Arc<ApiState>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!("the HTTP API stopped: {e}");
        }
    })
}

/// A JSON error response.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], json!({ "error": message.to_string() }).to_string())
        .into_response()
}

fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.options.token else { return true };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

/// Compares without leaking where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_default(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Body) -> Response {
    let default = state.routes.read().default.clone();
    let Some(plugin) = default else {
        let r = error(StatusCode::NOT_FOUND, "no plugin answers /api: none is loaded with an API route");
        state.count(r.status());
        return r;
    };
    let r = call_plugin(&state, &plugin, "/api".to_owned(), headers, body).await;
    state.count(r.status());
    r
}

async fn api_named(
    State(state): State<Arc<ApiState>>,
    Path(plugin): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = format!("/api/{plugin}");
    let r = call_plugin(&state, &plugin, path, headers, body).await;
    state.count(r.status());
    r
}

async fn call_plugin(state: &ApiState, plugin: &str, path: String, headers: HeaderMap, body: Body) -> Response {
    if !authorized(state, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (send `Authorization: Bearer <api_token>`)",
        );
    }
    let permits = state.routes.read().by_name.get(plugin).cloned();
    let Some(permits) = permits else {
        return error(StatusCode::NOT_FOUND, format!("no plugin {plugin:?} answers API requests"));
    };
    let bytes: Bytes = match axum::body::to_bytes(body, state.options.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", state.options.max_body),
            );
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(_) => return error(StatusCode::BAD_REQUEST, "the body is not UTF-8 JSON"),
    };
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        return error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}"));
    }
    let Ok(_permit) = permits.try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("plugin {plugin} already has {} requests in flight; retry later", state.options.concurrency),
        );
    };
    let call = ApiCall { path, body: text.to_owned() };
    let reply = match tokio::time::timeout(state.options.timeout, state.plugins.custom_api(plugin, call)).await {
        Err(_) => {
            return error(
                StatusCode::GATEWAY_TIMEOUT,
                format!("plugin {plugin} did not answer within {} ms", state.options.timeout.as_millis()),
            );
        }
        Ok(Err(e @ PluginError::Unknown(_))) => return error(StatusCode::NOT_FOUND, e),
        Ok(Err(e @ (PluginError::QueueFull { .. } | PluginError::Disabled { .. }))) => {
            return error(StatusCode::SERVICE_UNAVAILABLE, e);
        }
        Ok(Err(e)) => return error(StatusCode::BAD_GATEWAY, e),
        Ok(Ok(reply)) => reply,
    };
    if reply.body.len() > MAX_REPLY {
        return error(
            StatusCode::BAD_GATEWAY,
            format!("plugin {plugin} answered {} bytes; replies are capped at {MAX_REPLY}", reply.body.len()),
        );
    }
    if serde_json::from_str::<serde_json::Value>(&reply.body).is_err() {
        return error(StatusCode::BAD_GATEWAY, format!("plugin {plugin} answered with a body that is not JSON"));
    }
    let Ok(status) = StatusCode::from_u16(reply.status) else {
        return error(StatusCode::BAD_GATEWAY, format!("plugin {plugin} answered with status {}", reply.status));
    };
    (status, [(header::CONTENT_TYPE, "application/json")], reply.body).into_response()
}

async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    let body = json!({
        "status": "ok",
        "plugins": state.plugins.status().len(),
        "calls": state.manager.states().len(),
        "uptime_s": state.started.elapsed().as_secs(),
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// 200 while the host takes new calls; 503 from the moment it starts draining, so a
/// load balancer or Kubernetes sends no more work its way. Open like `/healthz`: probes
/// carry no token.
async fn readyz(State(state): State<Arc<ApiState>>) -> Response {
    let (code, body) = if state.manager.draining() {
        (StatusCode::SERVICE_UNAVAILABLE, json!({ "ready": false, "why": "draining: the host is shutting down" }))
    } else {
        (StatusCode::OK, json!({ "ready": true }))
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn metrics_text(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let requests = state.requests.lock().clone();
    let text = metrics::render(&state, &requests);
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn status(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let totals = state.media.totals();
    let body = Status {
        telegram: TelegramStatus {
            backend: state.manager.telegram_name().to_owned(),
            account: state.manager.my_id().ok(),
            bot: state.manager.chats().identity().ok().and_then(|i| i.bot).map(|b| b.id),
        },
        plugins: state.plugins.status(),
        calls: state.manager.calls().await,
        frames_sent: totals.frames_sent.load(std::sync::atomic::Ordering::Relaxed),
        late_frames: totals.late_frames.load(std::sync::atomic::Ordering::Relaxed),
        uptime_s: state.started.elapsed().as_secs(),
        shards: state.media.shards(),
        feeds: state.media.feeds(),
        admin_api: state.options.admin_token.is_some(),
    };
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Where the API listens, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!("http://{addr}/api")
}
