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

/// Whoever terminates our group call's media: Telegram, the loopback, or an SFU.
pub trait GroupCallServer: Send + Sync {
    /// `phone.joinGroupCall`: sends our join JSON, returns the transport to connect to.
    fn join<'a>(&'a self, chat: ChatId, params: &'a JoinParams) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>>;

    /// `phone.leaveGroupCall(source = ssrc)`.
    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>>;
}
