//! The loopback's simulated Telegram: an account (and a bot), chats with or without a
//! voice chat, the people in them ([`super::talk`], [`super::roster`]), and the updates
//! all of it produces. Every update is built as Telegram's TL and routed by the same
//! [`Router`] the MTProto side uses, once for each of our accounts that would receive
//! it — so what a plugin gets on the loopback is what it would get from Telegram.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use grammers_tl_types as tl;

use super::roster::Roster;
use super::talk::Talk;
use super::updates;
use crate::telegram::messages::{Account, Bot, Message};
use crate::telegram::router::{JoinedCall, Router};
use crate::telegram::tl::json::chat_of;
use crate::telegram::tl::{CallRef, peer_of};
use crate::telegram::{ChatId, Invite, Update};

/// A simulated chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Chat {
    /// Chat id, e.g. -1001185324811.
    pub id: ChatId,
    /// Shown in logs and `GET /chats`.
    pub title: String,
    /// Whether the chat has a voice chat running that can be joined.
    pub active_call: bool,
    /// Users who are administrators of the chat (the account itself is its creator).
    pub admins: Vec<i64>,
}

impl Chat {
    pub fn new(id: ChatId, active_call: bool) -> Chat {
        Chat { id, title: String::new(), active_call, admins: Vec::new() }
    }
}

/// The loopback's call in `chat`: one per chat, numbered after it.
pub(super) fn call_of(chat: ChatId) -> CallRef {
    CallRef { id: chat.unsigned_abs() as i64, access_hash: 0x100b }
}

/// The account, its chats, and what happens in them.
pub(super) struct World {
    /// `None`: every chat id has an active call (the `play` command, tests).
    chats: Mutex<Option<HashMap<ChatId, Chat>>>,
    updates: broadcast::Sender<Update>,
    router: Router,
    pub(super) me: i64,
    pub(super) bot: Option<Bot>,
    pub(super) talk: Mutex<Talk>,
    pub(super) roster: Mutex<Roster>,
}

impl World {
    pub(super) fn new(chats: Option<Vec<Chat>>, me: i64, bot: Option<Bot>) -> Self {
        World {
            chats: Mutex::new(chats.map(|v| v.into_iter().map(|c| (c.id, c)).collect())),
            updates: broadcast::channel(1024).0,
            router: Router::new(me, bot.as_ref().map(|b| b.id)),
            me,
            bot,
            talk: Mutex::default(),
            roster: Mutex::default(),
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    pub(super) fn has_active_call(&self, chat: ChatId) -> bool {
        match &*self.chats.lock() {
            None => true,
            Some(m) => m.get(&chat).is_some_and(|c| c.active_call),
        }
    }

    /// Whether `chat` exists (any chat does when none are configured).
    pub(super) fn knows(&self, chat: ChatId) -> bool {
        self.chats.lock().as_ref().is_none_or(|m| m.contains_key(&chat))
    }

    pub(super) fn admins(&self, chat: ChatId) -> Vec<i64> {
        self.chats.lock().as_ref().and_then(|m| m.get(&chat)).map(|c| c.admins.clone()).unwrap_or_default()
    }

    pub(super) fn chats(&self) -> Vec<Chat> {
        let guard = self.chats.lock();
        let mut v: Vec<Chat> = guard.as_ref().map(|m| m.values().cloned().collect()).unwrap_or_default();
        v.sort_by_key(|c| c.id);
        v
    }

    /// The calls we are in, as the router looks them up.
    fn joined(&self) -> Vec<JoinedCall> {
        self.roster
            .lock()
            .ours()
            .into_iter()
            .map(|(chat, ssrc)| JoinedCall { chat, call: call_of(chat), ssrc })
            .collect()
    }

    /// Delivers `update` (with the `chats` Telegram sends along) as each account in
    /// `to` would receive it.
    pub(super) fn emit(&self, update: tl::enums::Update, chats: &[tl::enums::Chat], to: &[Account]) {
        let joined = self.joined();
        for &account in to {
            for routed in self.router.route(&update, chats, &joined, account) {
                // No subscribers is fine: nobody is listening yet.
                let _ = self.updates.send(self.with_reply_media(routed));
            }
        }
    }

    /// A reply's media, as the MTProto side fetches it for a message that replies.
    fn with_reply_media(&self, update: Update) -> Update {
        match update {
            Update::Message(mut m) => {
                if let Some(reply) = m.reply_to.as_mut().filter(|r| r.media.is_none()) {
                    reply.media = self.talk.lock().attachment(m.chat, reply.message);
                }
                Update::Message(m)
            }
            other => other,
        }
    }

    /// Who receives a message from `from` in `chat`: the account always; the bot
    /// (in privacy mode, as bots are by default) a command or a reply to it.
    pub(super) fn audience(&self, chat: ChatId, message: &Message) -> Vec<Account> {
        let mut to = vec![Account::User];
        if let Some(bot) = &self.bot
            && message.sender != bot.id
        {
            let to_bot = message.text.starts_with('/')
                || message.reply_to.as_ref().is_some_and(|r| self.talk.lock().sender(chat, r.message) == Some(bot.id));
            if to_bot {
                to.push(Account::Bot);
            }
        }
        to
    }

    /// Starts (or ends) the chat's voice chat.
    pub(super) fn set_call(&self, chat: ChatId, active: bool) {
        let mut guard = self.chats.lock();
        let map = guard.get_or_insert_with(HashMap::new);
        map.entry(chat).or_insert_with(|| Chat::new(chat, active)).active_call = active;
        drop(guard);
        let call = call_of(chat);
        if active {
            self.emit(updates::active_call(peer_of(chat), call, 1), &[], &[Account::User]);
        } else {
            self.roster.lock().clear(chat);
            self.emit(updates::discarded(Some(peer_of(chat)), call), &[], &[Account::User]);
        }
    }

    /// The account removed from the chat: `updateChannel` (or `updateChat`) with the
    /// chat sent along now forbidden to it.
    pub(super) fn kick(&self, chat: ChatId) {
        self.roster.lock().clear(chat);
        let (update, forbidden): (tl::enums::Update, tl::enums::Chat) = match peer_of(chat) {
            tl::enums::Peer::Channel(c) => (
                tl::types::UpdateChannel { channel_id: c.channel_id }.into(),
                tl::types::ChannelForbidden {
                    broadcast: false,
                    megagroup: true,
                    monoforum: false,
                    id: c.channel_id,
                    access_hash: 0x5eed,
                    title: String::new(),
                    until_date: None,
                }
                .into(),
            ),
            tl::enums::Peer::Chat(c) => (
                tl::types::UpdateChat { chat_id: c.chat_id }.into(),
                tl::types::ChatForbidden { id: c.chat_id, title: String::new() }.into(),
            ),
            tl::enums::Peer::User(_) => {
                // No group to be removed from; said plainly rather than as Telegram.
                let _ = self.updates.send(Update::Kicked(chat));
                return;
            }
        };
        self.emit(update, &[forbidden], &[Account::User]);
    }

    pub(super) fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        let message_id = self.talk.lock().next_id(chat);
        let update = updates::invitation(peer_of(chat), inviter, message_id, call_of(chat), vec![self.me]);
        self.emit(update, &[], &[Account::User]);
        Invite { chat, inviter, message_id }
    }

    /// Any JSON, delivered as a raw update to the plugins that may see its chat.
    pub(super) fn raw(&self, update: serde_json::Value) {
        let chat = chat_of(&update, |_| None);
        let _ = self.updates.send(Update::Raw { json: update, chat });
    }
}
