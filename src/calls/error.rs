//! The errors a command can end in: PyTgCalls' five exceptions plus the host's own.
//! The plugin runtime maps them onto each contract's error variant (v0.2 has a case
//! for each; v0.1 folds the newer ones into `other` with the same words), except
//! [`CallError::Internal`], a host fault that traps instead.

use crate::media::MediaError;
use crate::telegram::{ChatId, TelegramError};

/// Why a call command failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// PyTgCalls' `JS_CORE_NOT_RUNNING`.
    #[error("the media core is not running")]
    HostCoreNotRunning,
    /// PyTgCalls' `PYROGRAM_CLIENT_IS_NOT_RUNNING`.
    #[error("the Telegram client is not running; check the connection or run `wasmcalls login`")]
    ClientNotRunning,
    /// PyTgCalls' `JOIN_ERROR`.
    #[error("chat {0} has no active group call to join; start a voice chat in it first")]
    NoActiveGroupCall(ChatId),
    /// PyTgCalls' `NOT_IN_GROUP`.
    #[error("not in chat {0}'s group call; join it first")]
    NotInCall(ChatId),
    /// PyTgCalls' `NEED_PYROGRAM_CLIENT`.
    #[error("no Telegram client is configured")]
    NoClient,
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The source cannot be played: missing, not audio, unreachable, damaged.
    #[error("file error: {0}")]
    FileError(String),
    #[error("already in chat {0}'s group call; play something else in it instead (play / change-stream)")]
    AlreadyInCall(ChatId),
    #[error("chat {0}'s call is still connecting; try again in a moment")]
    StillConnecting(ChatId),
    #[error("nothing is playing in chat {0}")]
    NothingPlaying(ChatId),
    /// Telegram's limits, kept by the host or told by Telegram (`FLOOD_WAIT`).
    #[error("rate-limited by Telegram's limits: retry in {0} s")]
    RateLimited(u32),
    /// Buttons (and answering their presses) need the bot account.
    #[error("{0}")]
    NoBot(String),
    /// Any other refusal by Telegram.
    #[error("Telegram refused it: {code} {name}")]
    Telegram { code: i32, name: String },
    /// No pacer thread has room to keep one more call or stream on time: the words
    /// say how much it needed and what is left.
    #[error("{0}")]
    Capacity(String),
    /// A quota the operator set on the plugin (`limits.max_calls` …): the words name it.
    #[error("quota: {0}")]
    Quota(String),
    /// The host is shutting down: calls in progress play on until it leaves them, new
    /// ones are refused.
    #[error(
        "draining: this host is shutting down and takes no new calls; join through another host or once it is back"
    )]
    Draining,
    #[error("{0}")]
    Other(String),
    /// A fault of the host, not of the command: never the plugin's problem to handle,
    /// so the runtime traps the plugin's call instead of returning it.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CallError {
    /// The contract's variant for a Telegram-side failure.
    pub fn from_telegram(e: TelegramError) -> CallError {
        match e {
            TelegramError::NoActiveGroupCall(c) => CallError::NoActiveGroupCall(c),
            // The client cannot act: no session, or Telegram out of reach.
            TelegramError::NotLoggedIn(_) | TelegramError::Network { .. } | TelegramError::Session { .. } => {
                CallError::ClientNotRunning
            }
            TelegramError::NoAccount(_) => CallError::NoClient,
            TelegramError::NoBot => CallError::NoBot(e.to_string()),
            TelegramError::NotAGroup(_) | TelegramError::UnknownChat(_) => CallError::InvalidArgument(e.to_string()),
            TelegramError::Forbidden { .. } | TelegramError::NoMemberAccount { .. } => {
                CallError::PermissionDenied(e.to_string())
            }
            TelegramError::FloodWait { seconds, .. } => CallError::RateLimited(seconds.max(1)),
            TelegramError::NoMessage { .. } => CallError::InvalidArgument(e.to_string()),
            TelegramError::NoMedia { .. } | TelegramError::TooLarge { .. } => CallError::FileError(e.to_string()),
            TelegramError::Rpc { code, name, .. } => CallError::Telegram { code, name },
            other => CallError::Other(other.to_string()),
        }
    }

    /// The contract's variant for a media-plane failure.
    pub fn from_media(e: MediaError) -> CallError {
        match e {
            MediaError::Down | MediaError::Spawn(_) => CallError::HostCoreNotRunning,
            // The manager knows a call the media plane does not: a bug of ours.
            e @ MediaError::UnknownCall(_) => CallError::Internal(e.to_string()),
            e @ MediaError::Capacity { .. } => CallError::Capacity(e.to_string()),
            other => CallError::Other(other.to_string()),
        }
    }
}
