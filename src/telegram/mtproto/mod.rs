//! Real Telegram over MTProto, through a user account — bots cannot join group calls —
//! and, optionally, a bot account for the chat: only bots can put inline buttons under
//! a message and receive their presses.
//!
//! - [`rpc`]: the network seam (grammers' client, or a fake Telegram in tests) and
//!   error naming; `FLOOD_WAIT` is waited out by the user account's retry policy and
//!   returned at once by the bot's, whose sends the host paces itself.
//! - [`requests`]: the TL requests of calls and the checks on their answers;
//!   [`messages`] the requests of chatting.
//! - [`session`]: the SQLite sessions, `wasmcalls login`, `whoami`, connecting.
//! - Updates go through the shared [`Router`]: the user account's and the bot's.
//!
//! [`Mtproto`] ties them together behind the [`Telegram`] trait: a join finds the
//! chat's call (`channels.getFullChannel` / `messages.getFullChat`), sends our join
//! JSON (`phone.joinGroupCall`) and returns the transport from the answer's
//! `updateGroupCallConnection`; a keep-alive per call (`phone.checkGroupCall`)
//! rejoins when Telegram forgets our source.

pub mod messages;
pub mod requests;
pub mod rpc;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use grammers_session::types::PeerId;
use grammers_tl_types as tl;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use self::messages::{Delete, Fetch};
use self::requests::Checked;
use self::rpc::{Rpc, classify};
use super::messages::{
    Account, Bot, Identity, JoinOptions, MemberStatus, MessageId, Outgoing, Participant, ParticipantPage,
};
use super::router::{JoinedCall, Router};
use super::tl::read::{channel_member, chat_member, participant_of};
use super::tl::{CallRef, ChatKind};
use super::{BoxFuture, ChatId, Telegram, TelegramError, Update};
use crate::transport::join::Transport;
use crate::transport::{JoinParams, TransportAnswer};

/// The account and how the MTProto side behaves.
#[derive(Debug, Clone)]
pub struct MtprotoOptions {
    /// The application's id and hash from <https://my.telegram.org>.
    pub api_id: i32,
    pub api_hash: String,
    /// The SQLite session `wasmcalls login` writes (mode 0600).
    pub session: PathBuf,
    /// A bot's token (from @BotFather), for messages with buttons; `None`: the user
    /// account chats, without buttons.
    pub bot_token: Option<String>,
    /// The bot's own session, beside the user's.
    pub bot_session: PathBuf,
    /// Local address media sockets bind; default: this machine's address on its
    /// default route. Behind NAT nothing is needed: Telegram's ICE-lite servers learn
    /// the public address from our checks.
    pub media_ip: Option<IpAddr>,
    /// Between two `phone.checkGroupCall`s of one call.
    pub check_interval: Duration,
    /// Longest `FLOOD_WAIT` waited out before a request fails instead.
    pub max_flood_wait: Duration,
    /// Invite hashes to join with, by chat (calls that need one to speak).
    pub invite_hashes: HashMap<ChatId, String>,
}

impl Default for MtprotoOptions {
    fn default() -> Self {
        MtprotoOptions {
            api_id: 0,
            api_hash: String::new(),
            session: "wasmcalls.session".into(),
            bot_token: None,
            bot_session: "wasmcalls-bot.session".into(),
            media_ip: None,
            check_interval: Duration::from_secs(5),
            max_flood_wait: Duration::from_secs(120),
            invite_hashes: HashMap::new(),
        }
    }
}

/// Updates buffered for a slow reader before the oldest are dropped.
const UPDATE_BUFFER: usize = 1024;
/// Participants loaded after a join, so later changes are told apart from arrivals.
const SEED_PARTICIPANTS: u32 = 200;

/// Real Telegram through a user account (and a bot). Cloning shares it.
pub struct Mtproto<R: Rpc> {
    inner: Arc<Inner<R>>,
}

impl<R: Rpc> Clone for Mtproto<R> {
    fn clone(&self) -> Self {
        Mtproto { inner: self.inner.clone() }
    }
}

/// The bot account: its network side and who it is.
struct BotSide<R> {
    rpc: R,
    bot: Bot,
}

struct Inner<R> {
    rpc: R,
    bot: Option<BotSide<R>>,
    router: Router,
    opts: MtprotoOptions,
    joined: Mutex<HashMap<ChatId, Joined>>,
    updates: broadcast::Sender<Update>,
    /// The last message each person sent in each chat, as each account saw it: how a
    /// request names a user whose access hash the session lacks.
    seen: Mutex<HashMap<(Account, ChatId, i64), MessageId>>,
}

/// A call we are in: what the router needs, and what a rejoin resends.
struct Joined {
    call: JoinedCall,
    params: String,
    transport: Transport,
    /// Who we speak as (`inputPeerSelf`, or a channel).
    join_as: tl::enums::InputPeer,
    options: JoinOptions,
    keep_alive: tokio::task::AbortHandle,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

impl<R: Rpc> Mtproto<R> {
    /// The side for user account `me`, sending through `rpc`, without a bot.
    pub fn new(rpc: R, me: i64, opts: MtprotoOptions) -> Self {
        Self::build(rpc, me, None, opts)
    }

    /// The side for user account `me` and `bot`, each sending through its own rpc.
    pub fn with_bot(rpc: R, me: i64, bot_rpc: R, bot: Bot, opts: MtprotoOptions) -> Self {
        Self::build(rpc, me, Some(BotSide { rpc: bot_rpc, bot }), opts)
    }

    fn build(rpc: R, me: i64, bot: Option<BotSide<R>>, opts: MtprotoOptions) -> Self {
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        let router = Router::new(me, bot.as_ref().map(|b| b.bot.id));
        Mtproto {
            inner: Arc::new(Inner {
                rpc,
                bot,
                router,
                opts,
                joined: Mutex::new(HashMap::new()),
                updates,
                seen: Mutex::default(),
            }),
        }
    }

    /// The user account's network side, for requests beyond these.
    pub fn rpc(&self) -> &R {
        &self.inner.rpc
    }

    /// Routes one batch of the user account's updates (with the chats sent along).
    pub async fn feed(&self, updates: &[tl::enums::Update], chats: &[tl::enums::Chat]) {
        self.feed_as(Account::User, updates, chats, None).await;
    }

    /// Routes one batch of the bot's updates: its messages and button presses.
    pub async fn feed_bot(&self, updates: &[tl::enums::Update], chats: &[tl::enums::Chat]) {
        self.feed_as(Account::Bot, updates, chats, None).await;
    }

    /// Routes updates as `account` saw them, with the chat that updates naming none
    /// concern (a join's answer). A message that replies gets the replied-to
    /// message's media, fetched, as plugins play "the audio this replies to".
    async fn feed_as(
        &self,
        account: Account,
        updates: &[tl::enums::Update],
        chats: &[tl::enums::Chat],
        about: Option<ChatId>,
    ) {
        let joined = self.joined_calls();
        for u in updates {
            for mut routed in self.inner.router.route(u, chats, &joined, account) {
                match &mut routed {
                    Update::Raw { chat: chat @ None, .. } => *chat = about,
                    // Gone on Telegram's side: stop checking it (the manager drops the media).
                    Update::Kicked(chat) | Update::CallEnded(chat) => {
                        self.forget(*chat);
                    }
                    Update::Message(m) => {
                        self.inner.seen.lock().insert((account, m.chat, m.sender), m.id);
                        if let Some(reply) = m.reply_to.as_mut().filter(|r| r.media.is_none()) {
                            reply.media = self.replied_media(account, m.chat, reply.message).await;
                        }
                    }
                    _ => {}
                }
                let _ = self.inner.updates.send(routed);
            }
        }
    }

    /// The media of message `id` in `chat`, fetched as `account`; `None` if it has none
    /// or cannot be fetched (logged: the message is still delivered).
    async fn replied_media(&self, account: Account, chat: ChatId, id: MessageId) -> Option<super::Attachment> {
        match self.fetch_message(account, chat, id).await {
            Ok(Some(tl::enums::Message::Message(m))) => m.media.as_ref().and_then(super::tl::read::attachment_of),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(chat, id, "the replied-to message could not be fetched: {e}");
                None
            }
        }
    }

    /// The calls we are in.
    pub fn joined_calls(&self) -> Vec<JoinedCall> {
        self.inner.joined.lock().values().map(|j| j.call).collect()
    }

    /// The network side that acts as `account`.
    fn rpc_of(&self, account: Account) -> &R {
        match (account, &self.inner.bot) {
            (Account::Bot, Some(b)) => &b.rpc,
            _ => &self.inner.rpc,
        }
    }

    /// The account that chats: the bot when there is one.
    fn chatter(&self) -> Account {
        if self.inner.bot.is_some() { Account::Bot } else { Account::User }
    }

    /// `chat` as `account`'s requests name it, and its channel if it is one.
    async fn input_chat(
        &self,
        account: Account,
        chat: ChatId,
    ) -> Result<(tl::enums::InputPeer, Option<tl::enums::InputChannel>), TelegramError> {
        let (peer, kind) = super::tl::chat_kind(chat)?;
        match kind {
            ChatKind::Chat { bare } => Ok((tl::types::InputPeerChat { chat_id: bare }.into(), None)),
            ChatKind::Channel { bare } => {
                let found = self
                    .rpc_of(account)
                    .peer_ref(peer)
                    .await
                    .map_err(|e| classify("messages.getDialogs", e))?
                    .ok_or(TelegramError::UnknownChat(chat))?;
                let hash = found.auth.hash();
                Ok((
                    tl::types::InputPeerChannel { channel_id: bare, access_hash: hash }.into(),
                    Some(tl::types::InputChannel { channel_id: bare, access_hash: hash }.into()),
                ))
            }
        }
    }

    /// `chat`'s active group call.
    pub async fn find_call(&self, chat: ChatId) -> Result<CallRef, TelegramError> {
        if let Some(j) = self.inner.joined.lock().get(&chat) {
            return Ok(j.call.call);
        }
        let full = self.full_chat(Account::User, chat).await?;
        requests::call_of(chat, &full)
    }

    async fn full_chat(&self, account: Account, chat: ChatId) -> Result<tl::enums::messages::ChatFull, TelegramError> {
        let (_, kind) = super::tl::chat_kind(chat)?;
        match kind {
            ChatKind::Chat { bare } => {
                self.invoke_as(account, "messages.getFullChat", &requests::full_chat(bare)).await
            }
            ChatKind::Channel { bare } => {
                let (_, channel) = self.input_chat(account, chat).await?;
                let Some(tl::enums::InputChannel::Channel(c)) = channel else {
                    return Err(TelegramError::UnknownChat(chat));
                };
                self.invoke_as(account, "channels.getFullChannel", &requests::full_channel(bare, c.access_hash)).await
            }
        }
    }

    async fn invoke<Q>(&self, name: &'static str, request: &Q) -> Result<Q::Return, TelegramError>
    where
        Q: tl::RemoteCall + Send + Sync,
    {
        self.invoke_as(Account::User, name, request).await
    }

    async fn invoke_as<Q>(&self, account: Account, name: &'static str, request: &Q) -> Result<Q::Return, TelegramError>
    where
        Q: tl::RemoteCall + Send + Sync,
    {
        self.rpc_of(account).invoke(request).await.map_err(|e| classify(name, e))
    }

    /// `phone.joinGroupCall` → the transport to connect to; the answer's updates are fed on.
    async fn send_join(
        &self,
        chat: ChatId,
        call: CallRef,
        params: &str,
        join_as: &tl::enums::InputPeer,
        options: &JoinOptions,
    ) -> Result<TransportAnswer, TelegramError> {
        let hash = options.invite_hash.clone().or_else(|| self.inner.opts.invite_hashes.get(&chat).cloned());
        let as_peer = (*join_as != tl::enums::InputPeer::PeerSelf).then(|| join_as.clone());
        let request = requests::join(call, params.to_owned(), hash, as_peer, options.start_muted);
        let answer = self.invoke("phone.joinGroupCall", &request).await?;
        let transport = requests::transport_of(&answer)?;
        let chats = match &answer {
            tl::enums::Updates::Updates(u) => u.chats.as_slice(),
            tl::enums::Updates::Combined(u) => u.chats.as_slice(),
            _ => &[],
        };
        let updates: Vec<tl::enums::Update> = requests::updates_in(&answer).into_iter().cloned().collect();
        self.feed_as(Account::User, &updates, chats, Some(chat)).await;
        Ok(TransportAnswer::parse(&transport)?)
    }

    fn forget(&self, chat: ChatId) -> Option<JoinedCall> {
        let gone = self.inner.joined.lock().remove(&chat).map(|j| j.call);
        if let Some(j) = gone {
            self.inner.router.forget(j.call);
        }
        gone
    }

    /// Loads who is in `call` after a join, so the router tells changes from arrivals.
    async fn seed(&self, call: CallRef) {
        match self.invoke("phone.getGroupParticipants", &requests::participants(call, "", SEED_PARTICIPANTS)).await {
            Ok(tl::enums::phone::GroupParticipants::Participants(p)) => {
                let ours = [self.inner.router.me()];
                let list: Vec<_> = p.participants.iter().filter_map(|x| participant_of(x, &ours)).collect();
                self.inner.router.seed(call, &list);
            }
            Err(e) => tracing::debug!(call = call.id, "participants not loaded after the join: {e}"),
        }
    }

    /// Message `id` in `chat`, as `account` sees it.
    async fn fetch_message(
        &self,
        account: Account,
        chat: ChatId,
        id: MessageId,
    ) -> Result<Option<tl::enums::Message>, TelegramError> {
        let (_, channel) = self.input_chat(account, chat).await?;
        let answer = match messages::fetch(channel, &[id]) {
            Fetch::Channel(r) => self.invoke_as(account, "channels.getMessages", &r).await?,
            Fetch::Other(r) => self.invoke_as(account, "messages.getMessages", &r).await?,
        };
        Ok(messages::message_in(&answer, id))
    }

    /// `user` as `account`'s requests can name them.
    async fn input_user(
        &self,
        account: Account,
        chat: ChatId,
        user: i64,
    ) -> Result<tl::enums::InputPeer, TelegramError> {
        let hash = match PeerId::user(user) {
            Some(peer) => self
                .rpc_of(account)
                .peer_ref(peer)
                .await
                .map_err(|e| classify("users.getUsers", e))?
                .map(|r| r.auth.hash()),
            None => None,
        };
        let seen = self.inner.seen.lock().get(&(account, chat, user)).copied();
        let seen_in = match seen {
            Some(msg) => Some((self.input_chat(account, chat).await?.0, msg)),
            None => None,
        };
        messages::user_peer(user, hash, seen_in)
    }
}

impl<R: Rpc> Telegram for Mtproto<R> {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn me(&self) -> Result<i64, TelegramError> {
        Ok(self.inner.router.me())
    }

    fn identity(&self) -> Result<Identity, TelegramError> {
        Ok(Identity { user: self.inner.router.me(), bot: self.inner.bot.as_ref().map(|b| b.bot.clone()) })
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            let call = self.find_call(chat).await?;
            let join_as = match options.join_as {
                None => tl::enums::InputPeer::PeerSelf,
                Some(channel) => self.input_chat(Account::User, channel).await?.0,
            };
            let ssrc = params.ssrc as u32;
            let params = params.to_json();
            let answer = self.send_join(chat, call, &params, &join_as, options).await?;
            let joined = JoinedCall { chat, call, ssrc };
            let keep_alive =
                tokio::spawn(keep_alive(Arc::downgrade(&self.inner), chat, self.inner.opts.check_interval));
            let entry = Joined {
                call: joined,
                params,
                transport: answer.transport.clone(),
                join_as,
                options: options.clone(),
                keep_alive: keep_alive.abort_handle(),
            };
            self.inner.joined.lock().insert(chat, entry);
            self.seed(call).await;
            tracing::info!(chat, call = call.id, ssrc, "joined the group call on Telegram");
            Ok(answer)
        })
    }

    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let call = match self.forget(chat) {
                Some(j) => j.call,
                // Not joined as far as we know (a failed join): still tell Telegram.
                None => self.find_call(chat).await?,
            };
            self.invoke("phone.leaveGroupCall", &requests::leave(call, ssrc)).await?;
            Ok(())
        })
    }

    fn create_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let (peer, _) = self.input_chat(Account::User, chat).await?;
            self.invoke("phone.createGroupCall", &requests::create_call(peer, rand::random())).await?;
            Ok(())
        })
    }

    fn discard_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let call = self.find_call(chat).await?;
            self.forget(chat);
            self.invoke("phone.discardGroupCall", &requests::discard_call(call)).await?;
            Ok(())
        })
    }

    fn set_muted(&self, chat: ChatId, _ssrc: u32, muted: bool) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let (call, join_as) = {
                let joined = self.inner.joined.lock();
                let j = joined.get(&chat).ok_or(TelegramError::NoActiveGroupCall(chat))?;
                (j.call.call, j.join_as.clone())
            };
            self.invoke("phone.editGroupCallParticipant", &requests::set_muted(call, join_as, muted)).await?;
            Ok(())
        })
    }

    fn participants<'a>(
        &'a self,
        chat: ChatId,
        offset: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<ParticipantPage, TelegramError>> {
        Box::pin(async move {
            let call = self.find_call(chat).await?;
            let request = requests::participants(call, offset.unwrap_or(""), limit);
            let tl::enums::phone::GroupParticipants::Participants(p) =
                self.invoke("phone.getGroupParticipants", &request).await?;
            let ours = [self.inner.router.me()];
            Ok(ParticipantPage {
                participants: p.participants.iter().filter_map(|x| participant_of(x, &ours)).collect(),
                next_offset: Some(p.next_offset).filter(|o| !o.is_empty()),
                total: p.count.max(0) as u32,
            })
        })
    }

    fn participant_by_source(
        &self,
        chat: ChatId,
        ssrc: u32,
    ) -> BoxFuture<'_, Result<Option<Participant>, TelegramError>> {
        Box::pin(async move {
            let call = self.find_call(chat).await?;
            let request = requests::participant_by_source(call, ssrc);
            let tl::enums::phone::GroupParticipants::Participants(p) =
                self.invoke("phone.getGroupParticipants", &request).await?;
            let ours = [self.inner.router.me()];
            Ok(p.participants.iter().filter_map(|x| participant_of(x, &ours)).find(|x| x.source == ssrc))
        })
    }

    fn send<'a>(&'a self, chat: ChatId, message: &'a Outgoing) -> BoxFuture<'a, Result<MessageId, TelegramError>> {
        Box::pin(async move {
            let account = self.chatter();
            if account == Account::User && !message.buttons.is_empty() {
                return Err(TelegramError::NoBot);
            }
            let (peer, _) = self.input_chat(account, chat).await?;
            let random_id: i64 = rand::random();
            let answer =
                self.invoke_as(account, "messages.sendMessage", &messages::send(peer, message, random_id)).await?;
            messages::sent_id(&answer, random_id)
        })
    }

    fn edit<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        Box::pin(async move {
            let account = self.chatter();
            if account == Account::User && !message.buttons.is_empty() {
                return Err(TelegramError::NoBot);
            }
            let (peer, _) = self.input_chat(account, chat).await?;
            self.invoke_as(account, "messages.editMessage", &messages::edit(peer, id, message)).await?;
            Ok(())
        })
    }

    fn delete(&self, chat: ChatId, id: MessageId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let account = self.chatter();
            let (_, channel) = self.input_chat(account, chat).await?;
            match messages::delete(channel, vec![id]) {
                Delete::Channel(r) => self.invoke_as(account, "channels.deleteMessages", &r).await.map(drop),
                Delete::Other(r) => self.invoke_as(account, "messages.deleteMessages", &r).await.map(drop),
            }
        })
    }

    fn answer_callback<'a>(
        &'a self,
        query: &'a str,
        text: Option<&'a str>,
        alert: bool,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        Box::pin(async move {
            if self.inner.bot.is_none() {
                return Err(TelegramError::NoBot);
            }
            let request = messages::answer(query, text, alert)?;
            self.invoke_as(Account::Bot, "messages.setBotCallbackAnswer", &request).await?;
            Ok(())
        })
    }

    fn member_status(&self, chat: ChatId, user: i64) -> BoxFuture<'_, Result<MemberStatus, TelegramError>> {
        Box::pin(async move {
            let account = self.chatter();
            let (_, kind) = super::tl::chat_kind(chat)?;
            if let ChatKind::Chat { .. } = kind {
                let tl::enums::messages::ChatFull::Full(full) = self.full_chat(account, chat).await?;
                return Ok(match &full.full_chat {
                    tl::enums::ChatFull::Full(c) => chat_member(&c.participants, user),
                    _ => MemberStatus::Left,
                });
            }
            let (_, channel) = self.input_chat(account, chat).await?;
            let channel = channel.ok_or(TelegramError::UnknownChat(chat))?;
            let who = self.input_user(account, chat, user).await?;
            match self.invoke_as(account, "channels.getParticipant", &messages::member(channel, who)).await {
                Ok(tl::enums::channels::ChannelParticipant::Participant(p)) => Ok(channel_member(&p.participant)),
                Err(TelegramError::Rpc { name, .. }) if name == "USER_NOT_PARTICIPANT" => Ok(MemberStatus::Left),
                Err(e) => Err(e),
            }
        })
    }

    fn download<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        to: &'a Path,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<u64, TelegramError>> {
        Box::pin(async move {
            let account = self.chatter();
            let message = self.fetch_message(account, chat, id).await?;
            let file = messages::file_of(chat, id, message.as_ref())?;
            if file.size > max_bytes {
                return Err(TelegramError::TooLarge { chat, id, size: file.size, cap: max_bytes });
            }
            let failed = |e: std::io::Error| TelegramError::Session {
                path: to.to_path_buf(),
                reason: format!("cannot write the download: {e}"),
            };
            let mut out = tokio::fs::File::create(to).await.map_err(failed)?;
            let mut offset = 0u64;
            while offset < file.size {
                let part = self
                    .rpc_of(account)
                    .file_part(&file, offset as i64)
                    .await
                    .map_err(|e| classify("upload.getFile", e))?;
                if part.is_empty() {
                    break;
                }
                offset += part.len() as u64;
                if offset > max_bytes {
                    return Err(TelegramError::TooLarge { chat, id, size: offset, cap: max_bytes });
                }
                out.write_all(&part).await.map_err(failed)?;
                if part.len() < messages::CHUNK as usize {
                    break;
                }
            }
            out.flush().await.map_err(failed)?;
            Ok(offset)
        })
    }
}

/// Checks every `every` that Telegram still has our source; rejoins when it does not.
/// Ends when the call is left (the handle is aborted) or the MTProto side is dropped.
async fn keep_alive<R: Rpc>(inner: Weak<Inner<R>>, chat: ChatId, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let tg = Mtproto { inner };
        let Some(call) = tg.joined_calls().into_iter().find(|c| c.chat == chat) else {
            return;
        };
        let result = tg.invoke("phone.checkGroupCall", &requests::check(call.call, call.ssrc)).await;
        let lost = match requests::checked(result, call.ssrc) {
            Checked::Joined => continue,
            Checked::Unknown(reason) => {
                tracing::warn!(chat, "keep-alive could not check the call ({reason}); trying again in {every:?}");
                continue;
            }
            Checked::Ended(reason) => reason,
            Checked::Rejoin(reason) => {
                tracing::warn!(chat, "{reason}: rejoining");
                match rejoin(&tg, chat, call).await {
                    Ok(Rejoined::Same) => {
                        tracing::info!(chat, "rejoined with the same connection");
                        continue;
                    }
                    // The host connects to the new server (a join of its own, which
                    // starts another keep-alive); this one is done.
                    Ok(Rejoined::Moved) => {
                        let reason = "Telegram moved the call to another media server".to_owned();
                        let _ = tg.inner.updates.send(Update::Moved { chat, reason });
                        return;
                    }
                    Err(e) => e,
                }
            }
        };
        if tg.forget(chat).is_some() {
            let _ = tg.inner.updates.send(Update::Lost { chat, reason: lost });
        }
        return;
    }
}

/// What sending our join again found.
enum Rejoined {
    /// Telegram answered with the transport we are connected to: nothing to do.
    Same,
    /// It answered with another media server's: the connection must be made anew.
    Moved,
}

/// Sends our join again, same source and credentials. (No leave first: Telegram would
/// announce our source as left, which reads as a kick.)
async fn rejoin<R: Rpc>(tg: &Mtproto<R>, chat: ChatId, call: JoinedCall) -> Result<Rejoined, String> {
    let (params, transport, join_as, options) = {
        let joined = tg.inner.joined.lock();
        let j = joined.get(&chat).ok_or("left meanwhile")?;
        (j.params.clone(), j.transport.clone(), j.join_as.clone(), j.options.clone())
    };
    let answer = tg
        .send_join(chat, call.call, &params, &join_as, &options)
        .await
        .map_err(|e| format!("rejoining failed: {e}"))?;
    Ok(if answer.transport == transport { Rejoined::Same } else { Rejoined::Moved })
}
