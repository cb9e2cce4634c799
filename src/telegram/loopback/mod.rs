//! The loopback Telegram: a local stand-in for Telegram's group-call media server.
//!
//! It takes the same join JSON Telegram takes, answers with a Telegram-format
//! transport JSON (ICE-lite, string-typed candidates, audio and video sections), and
//! terminates the WebRTC connection with its own webrtc-rs peer ([`peer`]), which
//! accepts clients in either ICE role, as Telegram's media servers do, and decodes the
//! Opus it receives. What each call heard — decoded audio and packet counters — is
//! kept per call so the CLI can write it to a WAV and tests can compare it to the
//! source ([`recorder`]). Its account, chats and updates are simulated ([`chats`],
//! [`updates`]) and scripted over HTTP ([`control`]).

mod chats;
pub mod control;
mod peer;
mod recorder;
pub mod updates;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;

pub use chats::Chat;
pub use recorder::{HeardCall, HeardFrame, HeardStats};

use super::{BoxFuture, ChatId, Invite, Telegram, TelegramError, Update};
use crate::transport::{JoinParams, TransportAnswer};

/// How the loopback treats what it receives.
#[derive(Debug, Clone)]
pub struct LoopbackOptions {
    /// Address the loopback's media sockets bind to.
    pub bind_ip: IpAddr,
    /// Decode Opus (off only for load benchmarks, which count packets).
    pub decode: bool,
    /// Keep decoded audio in memory so tests can read it back.
    pub keep_audio: bool,
    /// Stream what each participant hears to `<dir>/chat<chat>-ssrc<ssrc>.wav`.
    pub record_dir: Option<PathBuf>,
    /// The simulated account's user id.
    pub user_id: i64,
    /// The simulated chats; `None` lets any chat id be joined.
    pub chats: Option<Vec<Chat>>,
    /// Where the HTTP control endpoint listens (kick, invite, end calls…), if anywhere.
    pub control: Option<SocketAddr>,
}

/// User id of the loopback's account unless configured.
pub const DEFAULT_USER_ID: i64 = 777_000_001;

impl Default for LoopbackOptions {
    fn default() -> Self {
        LoopbackOptions {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            decode: true,
            keep_audio: false,
            record_dir: None,
            user_id: DEFAULT_USER_ID,
            chats: None,
            control: None,
        }
    }
}

/// The embedded loopback Telegram. Cloning shares the same server.
#[derive(Clone)]
pub struct Loopback {
    inner: Arc<Inner>,
}

struct Inner {
    opts: LoopbackOptions,
    calls: Mutex<Vec<Arc<HeardCall>>>,
    world: chats::World,
    /// Bumped on every join, so callers can await a participant.
    joins: tokio::sync::watch::Sender<u64>,
}

impl Loopback {
    /// A loopback server; its peers run as tasks on the current tokio runtime. The
    /// record folder is created if missing.
    pub fn new(opts: LoopbackOptions) -> Result<Self, TelegramError> {
        if let Some(d) = &opts.record_dir {
            std::fs::create_dir_all(d).map_err(|e| {
                TelegramError::Loopback(format!("cannot create the record folder {}: {e}", d.display()))
            })?;
        }
        let world = chats::World::new(opts.chats.clone(), opts.user_id);
        let joins = tokio::sync::watch::Sender::new(0);
        Ok(Loopback { inner: Arc::new(Inner { opts, calls: Mutex::new(Vec::new()), world, joins }) })
    }

    /// Serves the control endpoint ([`control`]) on `addr`: the address it listens on,
    /// and the task serving it.
    pub async fn serve_control(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), TelegramError> {
        let fail =
            |e: std::io::Error| TelegramError::Loopback(format!("loopback.control: cannot listen on {addr}: {e}"));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
        let bound = listener.local_addr().map_err(fail)?;
        let router = control::router(self.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("loopback control endpoint stopped: {e}");
            }
        });
        Ok((bound, task))
    }

    /// Answers one join JSON (a string, exactly as Telegram receives it) with a
    /// transport JSON string, and starts the peer that will receive the call.
    pub async fn join_json(&self, chat: ChatId, params_json: &str) -> Result<String, TelegramError> {
        let params = JoinParams::parse(params_json)?;
        Ok(self.join_params(chat, &params).await?.to_json())
    }

    async fn join_params(&self, chat: ChatId, params: &JoinParams) -> Result<TransportAnswer, TelegramError> {
        if !self.inner.world.has_active_call(chat) {
            return Err(TelegramError::NoActiveGroupCall(chat));
        }
        // A rejoin with the same SSRC replaces the old participant, as Telegram does.
        self.drop_ssrc(params.ssrc_u32());
        let heard = Arc::new(HeardCall::new(chat, params.ssrc_u32(), &self.inner.opts));
        if let Some(dir) = &self.inner.opts.record_dir {
            let path = dir.join(format!("chat{chat}-ssrc{}.wav", params.ssrc_u32()));
            heard
                .record_to(&path)
                .map_err(|e| TelegramError::Loopback(format!("cannot record to {}: {e}", path.display())))?;
        }
        let answer = peer::spawn(params, &self.inner.opts, heard.clone()).await?;
        self.inner.calls.lock().push(heard);
        self.inner.joins.send_modify(|n| *n += 1);
        Ok(answer)
    }

    fn drop_ssrc(&self, ssrc: u32) {
        self.hang_up_where(|c| c.ssrc() == ssrc);
    }

    /// Disconnects and forgets every participant matching `pred`.
    fn hang_up_where(&self, pred: impl Fn(&HeardCall) -> bool) {
        self.inner.calls.lock().retain(|c| {
            if pred(c) {
                c.hang_up();
                return false;
            }
            true
        });
    }

    /// The participant that joined with `ssrc`, if any.
    pub fn call(&self, ssrc: u32) -> Option<Arc<HeardCall>> {
        self.inner.calls.lock().iter().find(|c| c.ssrc() == ssrc).cloned()
    }

    /// Every participant that joined, in order.
    pub fn calls(&self) -> Vec<Arc<HeardCall>> {
        self.inner.calls.lock().clone()
    }

    /// Waits until someone is in `chat`'s call and returns that participant.
    pub async fn participant(&self, chat: ChatId) -> Arc<HeardCall> {
        let mut rx = self.inner.joins.subscribe();
        loop {
            if let Some(c) = self.calls().into_iter().rev().find(|c| c.chat() == chat) {
                return c;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The simulated chats (empty when any chat may be joined).
    pub fn chats(&self) -> Vec<Chat> {
        self.inner.world.chats()
    }

    fn hang_up_chat(&self, chat: ChatId) {
        self.hang_up_where(|c| c.chat() == chat);
    }

    /// Removes the account from `chat`: its participant is dropped and a kicked
    /// update (`updateChannel` with `channelForbidden`) goes out.
    pub fn kick(&self, chat: ChatId) {
        self.hang_up_chat(chat);
        self.inner.world.kick(chat);
    }

    /// Sends an invitation to `chat`'s group call from `inviter`.
    pub fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        self.inner.world.invite(chat, inviter)
    }

    /// Starts a voice chat in `chat`.
    pub fn start_call(&self, chat: ChatId) {
        self.inner.world.set_call(chat, true);
    }

    /// Ends `chat`'s voice chat (`groupCallDiscarded`): participants are dropped.
    pub fn end_call(&self, chat: ChatId) {
        self.hang_up_chat(chat);
        self.inner.world.set_call(chat, false);
    }

    /// Sends an arbitrary update, delivered only as raw JSON.
    pub fn raw_update(&self, update: serde_json::Value) {
        self.inner.world.raw(update);
    }
}

impl Telegram for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn me(&self) -> Result<i64, TelegramError> {
        Ok(self.inner.opts.user_id)
    }

    fn updates(&self) -> tokio::sync::broadcast::Receiver<Update> {
        self.inner.world.subscribe()
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            // Round-trip through the wire format, exactly what Telegram would parse.
            let json = self.join_json(chat, &params.to_json()).await?;
            Ok(TransportAnswer::parse(&json)?)
        })
    }

    fn leave(&self, _chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            if let Some(c) = self.call(ssrc) {
                c.hang_up();
            }
            Ok(())
        })
    }
}
