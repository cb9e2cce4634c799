//! The loopback's simulated Telegram: an account, chats with or without an active
//! group call, and updates that scripts and tests inject (kicked, invited, call
//! ended, raw), each delivered both routed and as a raw JSON update.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::telegram::{ChatId, Invite, Update};

/// A simulated chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    /// Chat id, e.g. -1001185324811.
    pub id: ChatId,
    /// Shown in logs and `GET /chats`.
    #[serde(default)]
    pub title: String,
    /// Whether the chat has a voice chat running that can be joined.
    #[serde(default = "yes")]
    pub active_call: bool,
}

fn yes() -> bool {
    true
}

/// The account and its chats.
pub(super) struct World {
    /// `None`: every chat id has an active call (the `play` command, tests).
    chats: Mutex<Option<HashMap<ChatId, Chat>>>,
    updates: broadcast::Sender<Update>,
    next_message: Mutex<i32>,
}

impl World {
    pub(super) fn new(chats: Option<Vec<Chat>>) -> Self {
        World {
            chats: Mutex::new(chats.map(|v| v.into_iter().map(|c| (c.id, c)).collect())),
            updates: broadcast::channel(1024).0,
            next_message: Mutex::new(1),
        }
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    pub(super) fn has_active_call(&self, chat: ChatId) -> bool {
        match &*self.chats.lock().expect("chats lock") {
            None => true,
            Some(m) => m.get(&chat).is_some_and(|c| c.active_call),
        }
    }

    pub(super) fn chats(&self) -> Vec<Chat> {
        let guard = self.chats.lock().expect("chats lock");
        let mut v: Vec<Chat> = guard.as_ref().map(|m| m.values().cloned().collect()).unwrap_or_default();
        v.sort_by_key(|c| c.id);
        v
    }

    fn send(&self, routed: Option<Update>, raw: serde_json::Value) {
        // No subscribers is fine: nobody is listening yet.
        if let Some(u) = routed {
            let _ = self.updates.send(u);
        }
        let _ = self.updates.send(Update::Raw(raw));
    }

    /// Starts (or ends) the chat's voice chat.
    pub(super) fn set_call(&self, chat: ChatId, active: bool) {
        let mut guard = self.chats.lock().expect("chats lock");
        let map = guard.get_or_insert_with(HashMap::new);
        map.entry(chat).or_insert_with(|| Chat { id: chat, title: String::new(), active_call: active }).active_call =
            active;
        drop(guard);
        if active {
            self.send(None, serde_json::json!({ "_": "updateGroupCall", "chat_id": chat, "call": { "_": "groupCall", "id": chat.unsigned_abs() } }));
        } else {
            self.send(
                Some(Update::CallEnded(chat)),
                serde_json::json!({ "_": "updateGroupCall", "chat_id": chat, "call": { "_": "groupCallDiscarded", "id": chat.unsigned_abs() } }),
            );
        }
    }

    pub(super) fn kick(&self, chat: ChatId) {
        self.send(
            Some(Update::Kicked(chat)),
            serde_json::json!({ "_": "updateChannel", "channel_id": chat, "channel": { "_": "channelForbidden", "id": chat } }),
        );
    }

    pub(super) fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        let message_id = {
            let mut n = self.next_message.lock().expect("message lock");
            *n += 1;
            *n
        };
        let invite = Invite { chat, inviter, message_id };
        self.send(
            Some(Update::Invited(invite.clone())),
            serde_json::json!({ "_": "updateNewChannelMessage", "message": {
                "_": "messageService", "id": message_id, "peer_id": chat, "from_id": inviter,
                "action": { "_": "messageActionInviteToGroupCall", "users": [] } } }),
        );
        invite
    }

    pub(super) fn raw(&self, update: serde_json::Value) {
        self.send(None, update);
    }
}
