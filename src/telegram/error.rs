//! What can go wrong on the Telegram side, classified once, here: the rest of the
//! host matches these variants and never an RPC error's text.

use super::ChatId;
use crate::transport::JoinError;

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
    /// Another participant already uses our audio SSRC (`GROUPCALL_SSRC_DUPLICATE_MUCH`).
    #[error("Telegram refused {request}: another participant uses our audio SSRC; join again for a new one")]
    SsrcTaken { request: &'static str },
    /// The account may not do this here: not a member, not an admin, banned from the call.
    #[error("Telegram refused {request}: {name}{}", hint(name))]
    Forbidden { request: &'static str, name: String },
    /// The call no longer exists, or no longer has us (`GROUPCALL_*`).
    #[error("Telegram refused {request}: {name}{}", hint(name))]
    CallGone { request: &'static str, name: String },
    /// Any other refusal.
    #[error("Telegram refused {request}: {code} {name}{}", hint(name))]
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
    /// None of the accounts a join may go through is a member of the chat.
    #[error("{}", no_member(*chat, accounts))]
    NoMemberAccount { chat: ChatId, accounts: String },
    /// The session file could not be opened or written.
    #[error("the Telegram session {path}: {reason}")]
    Session { path: std::path::PathBuf, reason: String },
    /// This side has no account (an SFU only terminates media).
    #[error("{0} has no Telegram account behind it")]
    NoAccount(&'static str),
    /// Inline buttons (and answering their presses) need a bot account.
    #[error("inline buttons need a bot account; set telegram.bot_token and run `wasmcalls login`")]
    NoBot,
    /// The message is not there (deleted, or never seen by the account).
    #[error("message {id} in chat {chat} cannot be found")]
    NoMessage { chat: ChatId, id: i32 },
    /// The message has no audio, voice note, video or document to play.
    #[error("message {id} in chat {chat} has no audio, voice note, video or document")]
    NoMedia { chat: ChatId, id: i32 },
    /// A message's media is larger than the plugin may download.
    #[error("message {id} in chat {chat} carries {size} bytes; the plugin may download {cap} (limits.download_mb)")]
    TooLarge { chat: ChatId, id: i32, size: u64, cap: u64 },
}

/// RPC error names meaning the session no longer authorizes anything.
const LOGGED_OUT: &[&str] = &[
    "AUTH_KEY_UNREGISTERED",
    "AUTH_KEY_INVALID",
    "SESSION_REVOKED",
    "SESSION_EXPIRED",
    "USER_DEACTIVATED",
    "USER_DEACTIVATED_BAN",
];

/// Classifies a refusal Telegram sent for `request`: `code` and `name` as in its
/// `rpc_error` (`name` without grammers' split-off number).
pub fn refusal(request: &'static str, code: i32, name: &str, value: Option<u32>) -> TelegramError {
    let bare = name;
    let name = match value {
        // grammers moves the digits out of the name: FLOOD_WAIT_31 → FLOOD_WAIT + 31.
        Some(v) => format!("{bare} ({v})"),
        None => bare.to_owned(),
    };
    if code == 401 || LOGGED_OUT.contains(&bare) {
        return TelegramError::NotLoggedIn(format!("{request}: {code} {bare}"));
    }
    if code == 420 {
        return TelegramError::FloodWait { request, seconds: value.unwrap_or(0) };
    }
    match bare {
        "GROUPCALL_SSRC_DUPLICATE_MUCH" => TelegramError::SsrcTaken { request },
        "CHAT_ADMIN_REQUIRED" | "CHANNEL_PRIVATE" | "CHAT_FORBIDDEN" | "GROUPCALL_FORBIDDEN" => {
            TelegramError::Forbidden { request, name }
        }
        n if n.ends_with("_FORBIDDEN") => TelegramError::Forbidden { request, name },
        n if n.starts_with("GROUPCALL_") || n == "PARTICIPANT_JOIN_MISSING" => {
            TelegramError::CallGone { request, name }
        }
        _ => TelegramError::Rpc { request, code, name },
    }
}

/// What to do about the refusals a group call meets most, after a dash ("" if unknown).
fn hint(name: &str) -> &'static str {
    match name.split(' ').next().unwrap_or(name) {
        "CHANNEL_PRIVATE" | "CHAT_FORBIDDEN" | "CHANNEL_INVALID" | "PEER_ID_INVALID" => {
            " — the account is not a member of this chat; join it with the account first"
        }
        "GROUPCALL_FORBIDDEN" => " — the account may not join this call (removed from it, or the call is restricted)",
        "GROUPCALL_INVALID" | "GROUPCALL_ALREADY_DISCARDED" => " — the call has ended; join the chat's new call",
        "GROUPCALL_JOIN_MISSING" | "PARTICIPANT_JOIN_MISSING" => " — Telegram no longer has us in the call; join again",
        "CHAT_ADMIN_REQUIRED" => " — this needs admin rights in the chat",
        "INVITE_HASH_INVALID" | "INVITE_HASH_EXPIRED" => " — fix or remove telegram.invite_hashes for this chat",
        "JOIN_AS_PEER_INVALID" => " — the account cannot speak in this call as itself",
        "DATA_JSON_INVALID" => " — Telegram rejected our join JSON; please report this with the log",
        _ => "",
    }
}

fn no_member(chat: ChatId, accounts: &str) -> String {
    if accounts.is_empty() {
        return format!("no account may join chat {chat}: the plugin's grants.accounts names none of [[accounts]]");
    }
    format!(
        "none of the accounts this join may use ({accounts}) is a member of chat {chat}; add one to the group, \
         or grant the plugin an account that is (grants.accounts)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_once() {
        let r = |code, name| refusal("phone.joinGroupCall", code, name, None);
        assert!(matches!(r(401, "AUTH_KEY_UNREGISTERED"), TelegramError::NotLoggedIn(_)));
        assert!(matches!(r(406, "SESSION_REVOKED"), TelegramError::NotLoggedIn(_)));
        assert!(matches!(refusal("x", 420, "FLOOD_WAIT", Some(600)), TelegramError::FloodWait { seconds: 600, .. }));
        assert!(matches!(r(400, "GROUPCALL_SSRC_DUPLICATE_MUCH"), TelegramError::SsrcTaken { .. }));
        for name in ["CHAT_ADMIN_REQUIRED", "CHANNEL_PRIVATE", "CHAT_WRITE_FORBIDDEN", "GROUPCALL_FORBIDDEN"] {
            assert!(matches!(r(403, name), TelegramError::Forbidden { .. }), "{name}");
        }
        for name in ["GROUPCALL_INVALID", "GROUPCALL_JOIN_MISSING", "PARTICIPANT_JOIN_MISSING"] {
            assert!(matches!(r(400, name), TelegramError::CallGone { .. }), "{name}");
        }
        assert_eq!(r(400, "SOMETHING_NEW").to_string(), "Telegram refused phone.joinGroupCall: 400 SOMETHING_NEW");
    }

    #[test]
    fn refusals_say_what_to_do() {
        let e = refusal("channels.getFullChannel", 406, "CHANNEL_PRIVATE", None);
        assert!(e.to_string().ends_with("not a member of this chat; join it with the account first"), "{e}");
        let e = refusal("phone.joinGroupCall", 400, "GROUPCALL_SSRC_DUPLICATE_MUCH", None);
        assert!(e.to_string().contains("another participant uses our audio SSRC"), "{e}");
    }
}
