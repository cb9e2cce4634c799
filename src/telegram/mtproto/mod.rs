//! Real Telegram over MTProto, through a user account (bots cannot join group calls).
//!
//! - [`rpc`]: the network seam (grammers' client, or a fake Telegram in tests) and
//!   error naming; `FLOOD_WAIT` is waited out by its retry policy.
//! - [`requests`]: the TL requests and the checks on their answers.
//! - [`router`]: updates → kicked / invited / call ended, plus every update as JSON.
//! - [`session`]: the SQLite session, `wasmcalls login`, `whoami`, connecting.
//!
//! [`Mtproto`] ties them together behind the [`Telegram`] trait: a join finds the
//! chat's call (`channels.getFullChannel` / `messages.getFullChat`), sends our join
//! JSON (`phone.joinGroupCall`) and returns the transport from the answer's
//! `updateGroupCallConnection`; a keep-alive per call (`phone.checkGroupCall`)
//! rejoins when Telegram forgets our source.

pub mod requests;
pub mod router;
pub mod rpc;
pub mod session;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::Duration;

use grammers_tl_types as tl;
use tokio::sync::broadcast;

use self::requests::Checked;
use self::router::{JoinedCall, Router};
use self::rpc::{Rpc, classify};
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
            media_ip: None,
            check_interval: Duration::from_secs(5),
            max_flood_wait: Duration::from_secs(120),
            invite_hashes: HashMap::new(),
        }
    }
}

/// Updates buffered for a slow reader before the oldest are dropped.
const UPDATE_BUFFER: usize = 1024;

/// Real Telegram through a user account. Cloning shares it.
pub struct Mtproto<R: Rpc> {
    inner: Arc<Inner<R>>,
}

impl<R: Rpc> Clone for Mtproto<R> {
    fn clone(&self) -> Self {
        Mtproto { inner: self.inner.clone() }
    }
}

struct Inner<R> {
    rpc: R,
    router: Router,
    opts: MtprotoOptions,
    joined: Mutex<HashMap<ChatId, Joined>>,
    updates: broadcast::Sender<Update>,
}

/// A call we are in: what the router needs, and what a rejoin resends.
struct Joined {
    call: JoinedCall,
    params: String,
    transport: Transport,
    keep_alive: tokio::task::AbortHandle,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.keep_alive.abort();
    }
}

impl<R: Rpc> Mtproto<R> {
    /// The side for account `me`, sending through `rpc`. Updates come in through
    /// [`Mtproto::feed`].
    pub fn new(rpc: R, me: i64, opts: MtprotoOptions) -> Self {
        let (updates, _) = broadcast::channel(UPDATE_BUFFER);
        Mtproto {
            inner: Arc::new(Inner { rpc, router: Router { me }, opts, joined: Mutex::new(HashMap::new()), updates }),
        }
    }

    /// The network side, for requests beyond group calls.
    pub fn rpc(&self) -> &R {
        &self.inner.rpc
    }

    /// Routes one batch of Telegram updates (with the chats sent along) to subscribers.
    pub fn feed(&self, updates: &[tl::enums::Update], chats: &[tl::enums::Chat]) {
        self.feed_about(updates, chats, None);
    }

    /// [`Mtproto::feed`], with the chat that updates naming none concern (a join's answer).
    fn feed_about(&self, updates: &[tl::enums::Update], chats: &[tl::enums::Chat], about: Option<ChatId>) {
        let joined = self.joined_calls();
        for u in updates {
            for mut routed in self.inner.router.route(u, chats, &joined) {
                if let Update::Raw { chat: chat @ None, .. } = &mut routed {
                    *chat = about;
                }
                // Gone on Telegram's side: stop checking it (the manager drops the media).
                if let Update::Kicked(chat) | Update::CallEnded(chat) = routed {
                    self.forget(chat);
                }
                let _ = self.inner.updates.send(routed);
            }
        }
    }

    /// The calls we are in.
    pub fn joined_calls(&self) -> Vec<JoinedCall> {
        self.inner.joined.lock().values().map(|j| j.call).collect()
    }

    /// `chat`'s active group call.
    pub async fn find_call(&self, chat: ChatId) -> Result<CallRef, TelegramError> {
        let (peer, kind) = super::tl::chat_kind(chat)?;
        let full = match kind {
            ChatKind::Chat { bare } => self.invoke("messages.getFullChat", &requests::full_chat(bare)).await?,
            ChatKind::Channel { bare } => {
                let peer = self
                    .inner
                    .rpc
                    .peer_ref(peer)
                    .await
                    .map_err(|e| classify("messages.getDialogs", e))?
                    .ok_or(TelegramError::UnknownChat(chat))?;
                let request = requests::full_channel(bare, peer.auth.hash());
                self.invoke("channels.getFullChannel", &request).await?
            }
        };
        requests::call_of(chat, &full)
    }

    async fn invoke<Q>(&self, name: &'static str, request: &Q) -> Result<Q::Return, TelegramError>
    where
        Q: tl::RemoteCall + Send + Sync,
    {
        self.inner.rpc.invoke(request).await.map_err(|e| classify(name, e))
    }

    /// `phone.joinGroupCall` → the transport to connect to; the answer's updates are fed on.
    async fn send_join(&self, chat: ChatId, call: CallRef, params: &str) -> Result<TransportAnswer, TelegramError> {
        let hash = self.inner.opts.invite_hashes.get(&chat).cloned();
        let answer = self.invoke("phone.joinGroupCall", &requests::join(call, params.to_owned(), hash)).await?;
        let transport = requests::transport_of(&answer)?;
        let chats = match &answer {
            tl::enums::Updates::Updates(u) => u.chats.as_slice(),
            tl::enums::Updates::Combined(u) => u.chats.as_slice(),
            _ => &[],
        };
        let updates: Vec<tl::enums::Update> = requests::updates_in(&answer).into_iter().cloned().collect();
        self.feed_about(&updates, chats, Some(chat));
        Ok(TransportAnswer::parse(&transport)?)
    }

    fn forget(&self, chat: ChatId) -> Option<JoinedCall> {
        self.inner.joined.lock().remove(&chat).map(|j| j.call)
    }
}

impl<R: Rpc> Telegram for Mtproto<R> {
    fn name(&self) -> &'static str {
        "telegram"
    }

    fn me(&self) -> Result<i64, TelegramError> {
        Ok(self.inner.router.me)
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            let call = self.find_call(chat).await?;
            let ssrc = params.ssrc as u32;
            let params = params.to_json();
            let answer = self.send_join(chat, call, &params).await?;
            let joined = JoinedCall { chat, call, ssrc };
            let keep_alive =
                tokio::spawn(keep_alive(Arc::downgrade(&self.inner), chat, self.inner.opts.check_interval));
            let entry = Joined {
                call: joined,
                params,
                transport: answer.transport.clone(),
                keep_alive: keep_alive.abort_handle(),
            };
            self.inner.joined.lock().insert(chat, entry);
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
                    Ok(()) => {
                        tracing::info!(chat, "rejoined with the same connection");
                        continue;
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

/// Sends our join again, same source and credentials; fine if Telegram answers with
/// the transport we are connected to. (No leave first: Telegram would announce our
/// source as left, which reads as a kick.)
async fn rejoin<R: Rpc>(tg: &Mtproto<R>, chat: ChatId, call: JoinedCall) -> Result<(), String> {
    let (params, transport) = {
        let joined = tg.inner.joined.lock();
        let j = joined.get(&chat).ok_or("left meanwhile")?;
        (j.params.clone(), j.transport.clone())
    };
    let answer = tg.send_join(chat, call.call, &params).await.map_err(|e| format!("rejoining failed: {e}"))?;
    if answer.transport != transport {
        return Err("Telegram moved the call to another media server; join again".into());
    }
    Ok(())
}
