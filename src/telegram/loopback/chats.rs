//! The loopback's simulated Telegram: the host's accounts (and a bot), chats with or
//! without a voice chat, the people in them ([`super::talk`], [`super::roster`]), and
//! the updates all of it produces. Every update is built as Telegram's TL and routed by
//! the same [`Router`] the MTProto side uses, once for each of our accounts that would
//! receive it — a member of the chat, or the bot — so what a plugin gets on the
//! loopback is what it would get from Telegram.

use std::collections::{HashMap, HashSet};

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

/// One of the host's accounts, as the loopback knows it.
pub(super) struct Member {
    pub(super) id: i64,
    /// The chats it is a member of; `None`: every chat.
    chats: Option<HashSet<ChatId>>,
    router: Router,
    updates: broadcast::Sender<Update>,
}

impl Member {
    pub(super) fn member_of(&self, chat: ChatId) -> bool {
        self.chats.as_ref().is_none_or(|c| c.contains(&chat))
    }
}

/// The accounts, their chats, and what happens in them.
pub(super) struct World {
    /// `None`: every chat id has an active call (the `play` command, tests).
    chats: Mutex<Option<HashMap<ChatId, Chat>>>,
    /// The host's accounts, in order; the first is the one chats are created by.
    pub(super) members: Vec<Member>,
    pub(super) me: i64,
    pub(super) bot: Option<Bot>,
    pub(super) talk: Mutex<Talk>,
    pub(super) roster: Mutex<Roster>,
}

impl World {
    pub(super) fn new(chats: Option<Vec<Chat>>, accounts: &[super::SimAccount], bot: Option<Bot>) -> Self {
        let bot_id = bot.as_ref().map(|b| b.id);
        let members = accounts
            .iter()
            .map(|a| Member {
                id: a.user_id,
                chats: a.chats.as_ref().map(|c| c.iter().copied().collect()),
                router: Router::new(a.user_id, bot_id),
                updates: broadcast::channel(1024).0,
            })
            .collect();
        World {
            chats: Mutex::new(chats.map(|v| v.into_iter().map(|c| (c.id, c)).collect())),
            members,
            me: accounts[0].user_id,
            bot,
            talk: Mutex::default(),
            roster: Mutex::default(),
        }
    }

    /// What `account` receives from now on.
    pub(super) fn subscribe(&self, account: usize) -> broadcast::Receiver<Update> {
        self.members[account].updates.subscribe()
    }

    /// Whether `user` is one of the host's accounts (or its bot).
    pub(super) fn is_ours(&self, user: i64) -> bool {
        self.members.iter().any(|m| m.id == user) || self.bot.as_ref().is_some_and(|b| b.id == user)
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

    /// The calls `account` is in, as the router looks them up.
    fn joined(&self, account: usize) -> Vec<JoinedCall> {
        self.roster
            .lock()
            .ours(account)
            .into_iter()
            .map(|(chat, ssrc)| JoinedCall { chat, call: call_of(chat), ssrc })
            .collect()
    }

    /// Delivers `update` about `chat` (with the `chats` Telegram sends along) as each
    /// account in `to` would receive it: the user accounts that are members of `chat`,
    /// the bot.
    pub(super) fn emit(&self, chat: ChatId, update: tl::enums::Update, chats: &[tl::enums::Chat], to: &[Account]) {
        for &seen_by in to {
            match seen_by {
                // One bot serves every account; the first carries what it sees.
                Account::Bot => self.deliver(0, &update, chats, seen_by),
                Account::User => {
                    for i in (0..self.members.len()).filter(|&i| self.members[i].member_of(chat)) {
                        self.deliver(i, &update, chats, seen_by);
                    }
                }
            }
        }
    }

    /// Delivers `update` to `account` only, as `seen_by` receives it.
    pub(super) fn deliver(&self, account: usize, update: &tl::enums::Update, chats: &[tl::enums::Chat], seen_by: Account) {
        let member = &self.members[account];
        for routed in member.router.route(update, chats, &self.joined(account), seen_by) {
            // No subscribers is fine: nobody is listening yet.
            let _ = member.updates.send(self.with_reply_media(routed));
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
            self.emit(chat, updates::active_call(peer_of(chat), call, 1), &[], &[Account::User]);
        } else {
            self.roster.lock().clear(chat);
            self.emit(chat, updates::discarded(Some(peer_of(chat)), call), &[], &[Account::User]);
        }
    }

    /// The account in the chat's call (else the first member) removed from the chat:
    /// `updateChannel` (or `updateChat`) with the chat sent along now forbidden to it.
    pub(super) fn kick(&self, chat: ChatId) {
        let account = self.in_call(chat).unwrap_or_else(|| self.first_member(chat));
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
                let _ = self.members[account].updates.send(Update::Kicked(chat));
                return;
            }
        };
        self.deliver(account, &update, &[forbidden], Account::User);
    }

    /// The account whose participant is in `chat`'s call, if any.
    fn in_call(&self, chat: ChatId) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.roster.lock().ours(i).iter().any(|(c, _)| *c == chat))
    }

    /// The first account that is a member of `chat` (the first account if none is).
    fn first_member(&self, chat: ChatId) -> usize {
        self.members.iter().position(|m| m.member_of(chat)).unwrap_or(0)
    }

    /// An invitation to `chat`'s call for the first of our accounts in the chat.
    pub(super) fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        let message_id = self.talk.lock().next_id(chat);
        let account = self.first_member(chat);
        let invited = vec![self.members[account].id];
        let update = updates::invitation(peer_of(chat), inviter, message_id, call_of(chat), invited);
        self.deliver(account, &update, &[], Account::User);
        Invite { chat, inviter, message_id }
    }

    /// Any JSON, delivered as a raw update to the accounts that are in its chat (each
    /// plugin sees it only for chats it may see).
    pub(super) fn raw(&self, update: serde_json::Value) {
        let chat = chat_of(&update, |_| None);
        for m in self.members.iter().filter(|m| chat.is_none_or(|c| m.member_of(c))) {
            let _ = m.updates.send(Update::Raw { json: update.clone(), chat });
        }
    }
}
