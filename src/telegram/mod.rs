//! The Telegram side of a group call, behind one trait: who answers our join JSON
//! with a transport. The embedded [`loopback`] is the default; [`sfu`] POSTs the join
//! JSON to an independent peer over HTTP; MTProto arrives as a third implementation.

pub mod loopback;
pub mod sfu;

use std::future::Future;
use std::pin::Pin;

use crate::transport::{JoinError, JoinParams, TransportAnswer};

/// A Telegram chat id (supergroups are negative, as in the seed API).
pub type ChatId = i64;

/// A boxed future, so backends can sit behind `dyn GroupCallServer`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Errors from the Telegram side.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("chat {0} has no active group call to join; start a voice chat in it first")]
    NoActiveGroupCall(ChatId),
    #[error(transparent)]
    Join(#[from] JoinError),
    #[error("loopback Telegram: {0}")]
    Loopback(String),
    #[error("the SFU at {url} failed: {reason}")]
    Sfu { url: String, reason: String },
}

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
    /// Every update, as JSON: `{"_": "<constructor>", …fields}`.
    Raw(serde_json::Value),
}

/// The Telegram side as the host sees it: group calls plus the account and its updates.
pub trait Backend: GroupCallServer {
    /// The account's own user id (`get_cache_id`).
    fn me(&self) -> Result<i64, TelegramError>;

    /// Updates from now on. A slow reader loses the oldest (and is told how many).
    fn updates(&self) -> tokio::sync::broadcast::Receiver<Update>;

    /// Lets a `dyn Backend` be used where a `dyn GroupCallServer` is expected.
    fn as_server(&self) -> &dyn GroupCallServer;
}

/// Whoever terminates our group call's media: Telegram, the loopback, or an SFU.
pub trait GroupCallServer: Send + Sync {
    /// `phone.joinGroupCall`: sends our join JSON, returns the transport to connect to.
    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>>;

    /// `phone.leaveGroupCall(source = ssrc)`.
    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>>;
}
