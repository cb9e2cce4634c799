//! The other side of a call — Telegram — behind one trait, [`Telegram`]: it takes our
//! join JSON and answers with a transport, lets us leave, names the account, and
//! sends updates. Three sides implement it:
//!
//! - [`loopback`]: the default, a local Telegram stand-in that terminates WebRTC and
//!   decodes what it hears, so everything runs offline;
//! - [`mtproto`]: real Telegram through a user account (grammers);
//! - [`sfu`]: the join JSON POSTed to an independent media server over HTTP.
//!
//! [`connect`] builds whichever the options name; `run`, `dev` and `play` all use it.
//! [`tl`] holds the TL shapes both Telegram implementations share; [`error`]
//! classifies what goes wrong, once.

pub mod error;
pub mod loopback;
pub mod mtproto;
pub mod sfu;
pub mod tl;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

pub use error::TelegramError;

use crate::transport::{JoinParams, TransportAnswer};

/// A Telegram chat id (supergroups are negative, as in the seed API).
pub type ChatId = i64;

/// A boxed future, so sides can sit behind `dyn Telegram`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An invitation to a group call (`messageActionInviteToGroupCall`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Invite {
    pub chat: ChatId,
    pub inviter: i64,
    pub message_id: i32,
}

/// What the Telegram side tells the host, already routed by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// We were removed from the chat (or our participant left the call).
    Kicked(ChatId),
    /// Someone invited us to a group call.
    Invited(Invite),
    /// The chat's group call was discarded.
    CallEnded(ChatId),
    /// Telegram dropped us from the call and a rejoin could not keep the connection.
    Lost { chat: ChatId, reason: String },
    /// Every update, as JSON: `{"_": "<constructor>", …fields}`, with the chat it
    /// concerns when it concerns one (plugins see only their granted chats' updates).
    Raw { json: serde_json::Value, chat: Option<ChatId> },
}

/// The other side of our calls, as the host sees it.
pub trait Telegram: Send + Sync {
    /// Which side this is, for status and logs: `loopback`, `telegram` or `sfu`.
    fn name(&self) -> &'static str;

    /// The account's own user id (`get_cache_id`).
    fn me(&self) -> Result<i64, TelegramError>;

    /// Updates from now on. A slow reader loses the oldest (and is told how many).
    fn updates(&self) -> tokio::sync::broadcast::Receiver<Update>;

    /// `phone.joinGroupCall`: sends our join JSON, returns the transport to connect to.
    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>>;

    /// `phone.leaveGroupCall(source = ssrc)`.
    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>>;
}

/// Which Telegram side to use, and how.
#[derive(Debug, Clone)]
pub enum TelegramOptions {
    Loopback(loopback::LoopbackOptions),
    Mtproto(mtproto::MtprotoOptions),
    Sfu(sfu::SfuOptions),
}

/// A Telegram side, connected: what the host needs to place calls through it.
pub struct Connected {
    pub telegram: Arc<dyn Telegram>,
    /// The local address media sockets bind.
    pub media_ip: IpAddr,
    /// The loopback, when that is the side (tests and `play --record` read what it heard).
    pub loopback: Option<loopback::Loopback>,
    /// Where the loopback's control endpoint listens, if it has one.
    pub control: Option<SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connected {
    /// Any side, with media sockets bound on `media_ip` (tests put a fake Telegram here).
    pub fn new(telegram: Arc<dyn Telegram>, media_ip: IpAddr) -> Connected {
        Connected { telegram, media_ip, loopback: None, control: None, tasks: Vec::new() }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Builds and connects the side `options` names.
pub async fn connect(options: &TelegramOptions) -> Result<Connected, TelegramError> {
    match options {
        TelegramOptions::Loopback(o) => {
            let lb = loopback::Loopback::new(o.clone())?;
            let mut connected = Connected::new(Arc::new(lb.clone()), o.bind_ip);
            if let Some(addr) = o.control {
                let (bound, task) = lb.serve_control(addr).await?;
                tracing::info!("loopback control on http://{bound}");
                connected.control = Some(bound);
                connected.tasks.push(task);
            }
            connected.loopback = Some(lb);
            Ok(connected)
        }
        TelegramOptions::Mtproto(o) => {
            let media_ip = mtproto::session::media_ip(o);
            tracing::info!(%media_ip, "media sockets bind this address");
            let tg = mtproto::session::start(o).await?;
            Ok(Connected::new(Arc::new(tg), media_ip))
        }
        TelegramOptions::Sfu(o) => Ok(Connected::new(Arc::new(sfu::Sfu::new(o)?), o.bind_ip)),
    }
}
