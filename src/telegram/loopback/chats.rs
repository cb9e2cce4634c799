//! The loopback's simulated Telegram: an account, chats with or without an active
//! group call, and updates that scripts and tests inject (kicked, invited, call
//! ended, raw), each delivered both routed and as a raw JSON update.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::broadcast;

use grammers_tl_types as tl;

use super::updates;
use crate::telegram::tl::json::{chat_of, to_json};
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
}

/// The loopback's call in `chat`: one per chat, numbered after it.
fn call_of(chat: ChatId) -> CallRef {
    CallRef { id: chat.unsigned_abs() as i64, access_hash: 0x100b }
}

/// The account and its chats.
pub(super) struct World {
    /// `None`: every chat id has an active call (the `play` command, tests).
    chats: Mutex<Option<HashMap<ChatId, Chat>>>,
    updates: broadcast::Sender<Update>,
    next_message: Mutex<i32>,
    /// The account, named in invitations.
    me: i64,
}

impl World {
    pub(super) fn new(chats: Option<Vec<Chat>>, me: i64) -> Self {
        World {
            chats: Mutex::new(chats.map(|v| v.into_iter().map(|c| (c.id, c)).collect())),
            updates: broadcast::channel(1024).0,
            next_message: Mutex::new(1),
            me,
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

    pub(super) fn chats(&self) -> Vec<Chat> {
        let guard = self.chats.lock();
        let mut v: Vec<Chat> = guard.as_ref().map(|m| m.values().cloned().collect()).unwrap_or_default();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Sends the routed event, then the update as Telegram would, as raw JSON.
    fn send(&self, routed: Option<Update>, chat: ChatId, update: tl::enums::Update) {
        // No subscribers is fine: nobody is listening yet.
        if let Some(u) = routed {
            let _ = self.updates.send(u);
        }
        let _ = self.updates.send(Update::Raw { json: to_json(&update), chat: Some(chat) });
    }

    /// Starts (or ends) the chat's voice chat.
    pub(super) fn set_call(&self, chat: ChatId, active: bool) {
        let mut guard = self.chats.lock();
        let map = guard.get_or_insert_with(HashMap::new);
        map.entry(chat).or_insert_with(|| Chat { id: chat, title: String::new(), active_call: active }).active_call =
            active;
        drop(guard);
        let call = call_of(chat);
        if active {
            self.send(None, chat, updates::active_call(peer_of(chat), call, 1));
        } else {
            self.send(Some(Update::CallEnded(chat)), chat, updates::discarded(Some(peer_of(chat)), call));
        }
    }

    /// The account removed from the chat: `updateChannel` (or `updateChat`) whose chat
    /// is now forbidden to it.
    pub(super) fn kick(&self, chat: ChatId) {
        let update = match peer_of(chat) {
            tl::enums::Peer::Channel(c) => tl::types::UpdateChannel { channel_id: c.channel_id }.into(),
            tl::enums::Peer::Chat(c) => tl::types::UpdateChat { chat_id: c.chat_id }.into(),
            tl::enums::Peer::User(u) => tl::types::UpdateChat { chat_id: u.user_id }.into(),
        };
        self.send(Some(Update::Kicked(chat)), chat, update);
    }

    pub(super) fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        let message_id = {
            let mut n = self.next_message.lock();
            *n += 1;
            *n
        };
        let invite = Invite { chat, inviter, message_id };
        let update = updates::invitation(peer_of(chat), inviter, message_id, call_of(chat), vec![self.me]);
        self.send(Some(Update::Invited(invite.clone())), chat, update);
        invite
    }

    /// Any JSON, delivered as a raw update to the plugins that may see its chat.
    pub(super) fn raw(&self, update: serde_json::Value) {
        let chat = chat_of(&update, |_| None);
        let _ = self.updates.send(Update::Raw { json: update, chat });
    }
}
