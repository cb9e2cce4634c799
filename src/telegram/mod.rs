//! The other side of a call — Telegram — behind one trait, [`Telegram`]: it takes our
//! join JSON and answers with a transport, lets us leave, names the accounts, lists and
//! mutes participants, sends and edits messages, and sends updates. Three sides
//! implement it:
//!
//! - [`loopback`]: the default, a local Telegram stand-in that terminates WebRTC and
//!   decodes what it hears, so everything runs offline;
//! - [`mtproto`]: real Telegram through a user account (grammers);
//! - [`sfu`]: the join JSON POSTed to an independent media server over HTTP.
//!
//! [`connect`] builds whichever the options name; `run`, `dev` and `play` all use it.
//! The loopback's and Telegram's accounts — one or several — are put behind
//! [`accounts::Accounts`], which picks the account each join goes through.
//! [`tl`] holds the TL shapes both Telegram implementations share; [`messages`] the
//! chat and participant records; [`error`] classifies what goes wrong, once. A side
//! without accounts (the SFU) keeps the trait's defaults, which say so.

pub mod accounts;
pub mod error;
pub mod loopback;
pub mod markdown;
pub mod messages;
pub mod mtproto;
pub mod router;
pub mod sfu;
pub mod tl;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

pub use error::TelegramError;
pub use messages::{
    Account, Attachment, CallbackQuery, Identity, JoinOptions, MemberStatus, Message, MessageId, Outgoing, Participant,
    ParticipantChange, ParticipantPage,
};

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
    /// Telegram moved the call to another media server: our connection leads nowhere
    /// now, and joining again connects to the new one.
    Moved { chat: ChatId, reason: String },
    /// A new message, as one of our accounts saw it (both may: the host keeps one).
    Message(Box<Message>),
    /// A button under one of the bot's messages was pressed.
    Callback(CallbackQuery),
    /// Who is in a call changed.
    Participants { chat: ChatId, changes: Vec<ParticipantChange> },
    /// Every update, as JSON: `{"_": "<constructor>", …fields}`, with the chat it
    /// concerns when it concerns one (plugins see only their granted chats' updates).
    Raw { json: serde_json::Value, chat: Option<ChatId> },
}

/// The other side of our calls, as the host sees it. Everything past joining and
/// leaving has a default that says this side has no account to do it with.
pub trait Telegram: Send + Sync {
    /// Which side this is, for status and logs: `loopback`, `telegram` or `sfu`.
    fn name(&self) -> &'static str;

    /// The account's own user id (`get_cache_id`).
    fn me(&self) -> Result<i64, TelegramError>;

    /// The accounts: the user that joins calls, and the bot that chats, if any.
    fn identity(&self) -> Result<Identity, TelegramError> {
        Ok(Identity { user: self.me()?, bot: None })
    }

    /// The name of the account holding `chat`'s call (`[[accounts]] name`), where a
    /// side has named accounts.
    fn account_of(&self, chat: ChatId) -> Option<String> {
        let _ = chat;
        None
    }

    /// The named accounts, in order, with how many calls each holds (none: the side
    /// has no named accounts).
    fn accounts(&self) -> Vec<(String, usize)> {
        Vec::new()
    }

    /// Updates from now on. A slow reader loses the oldest (and is told how many).
    fn updates(&self) -> tokio::sync::broadcast::Receiver<Update>;

    /// `phone.joinGroupCall`: sends our join JSON, returns the transport to connect to.
    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>>;

    /// `phone.leaveGroupCall(source = ssrc)`.
    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>>;

    /// `phone.createGroupCall`: starts a voice chat in `chat`.
    fn create_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        let _ = chat;
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// `phone.discardGroupCall`: ends `chat`'s voice chat for everyone.
    fn discard_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        let _ = chat;
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// `phone.editGroupCallParticipant`: shows our participant (SSRC `ssrc`) muted or not.
    /// Where nobody lists participants (an SFU) there is nothing to show: `Ok`.
    fn set_muted(&self, chat: ChatId, ssrc: u32, muted: bool) -> BoxFuture<'_, Result<(), TelegramError>> {
        let _ = (chat, ssrc, muted);
        Box::pin(async { Ok(()) })
    }

    /// `phone.getGroupParticipants`: a page of `chat`'s call's participants.
    fn participants<'a>(
        &'a self,
        chat: ChatId,
        offset: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<ParticipantPage, TelegramError>> {
        let _ = (chat, offset, limit);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// `phone.getGroupParticipants` by source: who in `chat`'s call sends under `ssrc`,
    /// as Telegram's clients ask when a stream arrives from a source no update named.
    /// Where nobody lists participants (an SFU): `None`.
    fn participant_by_source(
        &self,
        chat: ChatId,
        ssrc: u32,
    ) -> BoxFuture<'_, Result<Option<Participant>, TelegramError>> {
        let _ = (chat, ssrc);
        Box::pin(async { Ok(None) })
    }

    /// Sends a message (by the bot account when there is one): its id.
    fn send<'a>(&'a self, chat: ChatId, message: &'a Outgoing) -> BoxFuture<'a, Result<MessageId, TelegramError>> {
        let _ = (chat, message);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// Replaces a message's text and buttons.
    fn edit<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        let _ = (chat, id, message);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// Deletes a message.
    fn delete(&self, chat: ChatId, id: MessageId) -> BoxFuture<'_, Result<(), TelegramError>> {
        let _ = (chat, id);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// Answers a button press; `text` shows as a notification, or an alert.
    fn answer_callback<'a>(
        &'a self,
        query: &'a str,
        text: Option<&'a str>,
        alert: bool,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        let _ = (query, text, alert);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// `user`'s standing in `chat`.
    fn member_status(&self, chat: ChatId, user: i64) -> BoxFuture<'_, Result<MemberStatus, TelegramError>> {
        let _ = (chat, user);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }

    /// Downloads the audio, voice note, video or document of message `id` in `chat`
    /// to `to`, refusing one larger than `max_bytes`: its size.
    fn download<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        to: &'a std::path::Path,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<u64, TelegramError>> {
        let _ = (chat, id, to, max_bytes);
        Box::pin(async move { Err(TelegramError::NoAccount(self.name())) })
    }
}

/// Which Telegram side to use, and how.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one, read once at start: boxing would buy nothing
pub enum TelegramOptions {
    Loopback(loopback::LoopbackOptions),
    /// Real Telegram through one or more accounts, named, in the config's order.
    Mtproto(Vec<(String, mtproto::MtprotoOptions)>),
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
    /// The accounts calls go through (none for an SFU).
    pub accounts: Option<accounts::Accounts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Connected {
    /// Any side, with media sockets bound on `media_ip` (tests put a fake Telegram here).
    pub fn new(telegram: Arc<dyn Telegram>, media_ip: IpAddr) -> Connected {
        Connected { telegram, media_ip, loopback: None, control: None, accounts: None, tasks: Vec::new() }
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
            let members = lb
                .accounts()
                .into_iter()
                .map(|(name, view)| accounts::Member { name, telegram: Arc::new(view) as Arc<dyn Telegram> })
                .collect();
            let mut connected = Connected::with_accounts(members, o.bind_ip);
            if let Some(addr) = o.control {
                let (bound, task) = lb.serve_control(addr).await?;
                tracing::info!("loopback control on http://{bound}");
                connected.control = Some(bound);
                connected.tasks.push(task);
            }
            connected.loopback = Some(lb);
            Ok(connected)
        }
        TelegramOptions::Mtproto(list) => {
            let first = &list.first().ok_or(TelegramError::NoAccount("telegram"))?.1;
            let media_ip = mtproto::session::media_ip(first);
            tracing::info!(%media_ip, "media sockets bind this address");
            let mut members = Vec::with_capacity(list.len());
            for (name, o) in list {
                let tg = mtproto::session::start(o).await.map_err(|e| match e {
                    TelegramError::NotLoggedIn(why) if list.len() > 1 => {
                        TelegramError::NotLoggedIn(format!("account {name}: {why}; `wasmcalls login --account {name}`"))
                    }
                    e => e,
                })?;
                tracing::info!(account = %name, "signed in");
                members.push(accounts::Member { name: name.clone(), telegram: Arc::new(tg) as Arc<dyn Telegram> });
            }
            Ok(Connected::with_accounts(members, media_ip))
        }
        TelegramOptions::Sfu(o) => Ok(Connected::new(Arc::new(sfu::Sfu::new(o)?), o.bind_ip)),
    }
}

impl Connected {
    /// The `members` behind one [`accounts::Accounts`].
    fn with_accounts(members: Vec<accounts::Member>, media_ip: IpAddr) -> Connected {
        let (accounts, tasks) = accounts::Accounts::new(members);
        let mut connected = Connected::new(Arc::new(accounts.clone()), media_ip);
        connected.accounts = Some(accounts);
        connected.tasks = tasks;
        connected
    }
}
