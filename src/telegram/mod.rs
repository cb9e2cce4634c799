//! The Telegram side of a group call, behind one trait: who answers our join JSON
//! with a transport. The embedded [`loopback`] is the default; [`sfu`] POSTs the join
//! JSON to an independent peer over HTTP; [`mtproto`] is real Telegram through a user
//! account (grammers), chosen when the config has a `[telegram]` section.

pub mod loopback;
pub mod mtproto;
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
    /// No usable session: never logged in, or Telegram revoked it.
    #[error("not logged in to Telegram ({0}); run `wasmcalls login` with this config")]
    NotLoggedIn(String),
    /// Telegram asked us to wait longer than we are willing to.
    #[error("Telegram asks to wait {seconds} s before {request} again (FLOOD_WAIT); try later")]
    FloodWait { request: &'static str, seconds: u32 },
    /// Telegram refused a request.
    #[error("Telegram refused {request}: {code} {name}{}", mtproto::rpc::hint(name))]
    Rpc { request: &'static str, code: i32, name: String },
    /// Telegram could not be reached (or the client stopped).
    #[error("cannot reach Telegram for {request}: {reason}")]
    Network { request: &'static str, reason: String },
    /// Telegram answered something we cannot use.
    #[error("Telegram's answer to {request} is unusable: {what}")]
    Unexpected { request: &'static str, what: String },
    /// Group calls live in groups and channels; a user id has none.
    #[error("{0} is a user id, not a group or channel; group calls live in groups (-…) and channels (-100…)")]
    NotAGroup(ChatId),
    /// The account does not know the chat (not a member, or never seen).
    #[error("chat {0} is not among this account's chats; join the group with the account first")]
    UnknownChat(ChatId),
    /// The session file could not be opened or written.
    #[error("the Telegram session {path}: {reason}")]
    Session { path: std::path::PathBuf, reason: String },
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
    /// Telegram dropped us from the call and a rejoin could not keep the connection.
    Lost { chat: ChatId, reason: String },
    /// Every update, as JSON: `{"_": "<constructor>", …fields}`, with the chat it
    /// concerns when it concerns one (plugins see only their granted chats' updates).
    Raw { json: serde_json::Value, chat: Option<ChatId> },
}

/// The Telegram side as the host sees it: group calls plus the account and its updates.
pub trait Backend: GroupCallServer {
    /// Which Telegram this is, for status and logs: `loopback` or `telegram`.
    fn name(&self) -> &'static str;

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
