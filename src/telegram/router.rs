//! Telegram's updates → the host's [`Update`]s, for both Telegram sides (the loopback
//! routes the TL it builds through here too, so its tests exercise this code).
//!
//! What the user account receives yields at most one routed event per update (kicked,
//! invited, call ended, a message, a participants change) and always its raw JSON, so
//! a plugin sees every update once through `on-raw-update` and the ones that matter
//! once more through their own handler. What the bot account receives yields only
//! messages and button presses (its raw updates would repeat the user's).

use std::collections::HashMap;

use grammers_tl_types as tl;
use parking_lot::Mutex;

use crate::telegram::messages::{Account, Participant, ParticipantChange};
use crate::telegram::tl::json::{chat_of, to_json};
use crate::telegram::tl::read::{callback_of, has_left, message_of, participant_of};
use crate::telegram::tl::{CallRef, chat_id_of};
use crate::telegram::{ChatId, Invite, Update};

/// A call we are in, as the router needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinedCall {
    pub chat: ChatId,
    pub call: CallRef,
    pub ssrc: u32,
}

/// Routes updates for our accounts.
#[derive(Debug, Default)]
pub struct Router {
    me: i64,
    bot: Option<i64>,
    /// Who each call we are in lists (call id → peer → participant). Telegram sends a
    /// participant's whole record on every change: what changed is what differs here.
    roster: Mutex<HashMap<i64, HashMap<i64, Participant>>>,
}

impl Router {
    /// A router for the user account `me` and the bot account `bot`, if any.
    pub fn new(me: i64, bot: Option<i64>) -> Router {
        Router { me, bot, roster: Mutex::default() }
    }

    /// The user account.
    pub fn me(&self) -> i64 {
        self.me
    }

    fn ours(&self) -> Vec<i64> {
        std::iter::once(self.me).chain(self.bot).collect()
    }

    /// Takes `list` as who `call` has now (after a join), without announcing it.
    pub fn seed(&self, call: CallRef, list: &[Participant]) {
        let mut roster = self.roster.lock();
        let known = roster.entry(call.id).or_default();
        for p in list {
            known.insert(p.peer, p.clone());
        }
    }

    /// Forgets who `call` has (we left it).
    pub fn forget(&self, call: CallRef) {
        self.roster.lock().remove(&call.id);
    }

    /// The events `update` means to `seen_by`; `chats` are the chats sent along with it
    /// (where a removed member finds its chat now `…Forbidden`), `joined` the calls we
    /// are in.
    pub fn route(
        &self,
        update: &tl::enums::Update,
        chats: &[tl::enums::Chat],
        joined: &[JoinedCall],
        seen_by: Account,
    ) -> Vec<Update> {
        let mut out = Vec::with_capacity(2);
        let ours = self.ours();
        if let Some(m) = message_of(update, seen_by).filter(|m| !ours.contains(&m.sender)) {
            out.push(Update::Message(Box::new(m)));
        }
        if seen_by == Account::Bot {
            out.extend(callback_of(update).map(Update::Callback));
            return out;
        }
        let routed = self.routed(update, chats, joined);
        let json = to_json(update);
        let chat = match &routed {
            Some(Update::Kicked(c) | Update::CallEnded(c)) => Some(*c),
            Some(Update::Invited(i)) => Some(i.chat),
            _ => chat_of(&json, |call| joined.iter().find(|j| j.call.id == call).map(|j| j.chat)),
        };
        if let Some(Update::Kicked(c) | Update::CallEnded(c)) = &routed
            && let Some(j) = joined.iter().find(|j| j.chat == *c)
        {
            self.forget(j.call);
        }
        out.extend(routed);
        out.extend(self.participants(update, joined));
        out.push(Update::Raw { json, chat });
        out
    }

    fn routed(&self, update: &tl::enums::Update, chats: &[tl::enums::Chat], joined: &[JoinedCall]) -> Option<Update> {
        use tl::enums::Update as U;
        match update {
            U::Channel(u) => chats
                .iter()
                .any(|c| matches!(c, tl::enums::Chat::ChannelForbidden(f) if f.id == u.channel_id))
                .then(|| chat_id_of(&tl::types::PeerChannel { channel_id: u.channel_id }.into()))
                .flatten()
                .map(Update::Kicked),
            U::Chat(u) => chats
                .iter()
                .any(|c| matches!(c, tl::enums::Chat::Forbidden(f) if f.id == u.chat_id))
                .then(|| chat_id_of(&tl::types::PeerChat { chat_id: u.chat_id }.into()))
                .flatten()
                .map(Update::Kicked),
            U::GroupCallParticipants(u) => {
                let tl::enums::InputGroupCall::Call(call) = &u.call else {
                    return None;
                };
                let ours = joined.iter().find(|j| j.call.id == call.id)?;
                // Our participant leaving with our current source; an older source
                // leaving is the trace of a rejoin, not news.
                u.participants
                    .iter()
                    .any(|p| {
                        let tl::enums::GroupCallParticipant::Participant(p) = p;
                        p.left && p.source == ours.ssrc as i32 && self.is_me(&p.peer)
                    })
                    .then_some(Update::Kicked(ours.chat))
            }
            U::GroupCall(u) => {
                let tl::enums::GroupCall::Discarded(d) = &u.call else {
                    return None;
                };
                let chat = match &u.peer {
                    Some(peer) => chat_id_of(peer)?,
                    None => joined.iter().find(|j| j.call.id == d.id)?.chat,
                };
                Some(Update::CallEnded(chat))
            }
            U::NewMessage(tl::types::UpdateNewMessage { message, .. })
            | U::NewChannelMessage(tl::types::UpdateNewChannelMessage { message, .. }) => self.invite(message),
            _ => None,
        }
    }

    /// Who joined, left or was muted in a call we are in, against what we knew.
    fn participants(&self, update: &tl::enums::Update, joined: &[JoinedCall]) -> Option<Update> {
        let tl::enums::Update::GroupCallParticipants(u) = update else { return None };
        let tl::enums::InputGroupCall::Call(call) = &u.call else { return None };
        let j = joined.iter().find(|j| j.call.id == call.id)?;
        let ours = self.ours();
        let mut roster = self.roster.lock();
        let known = roster.entry(call.id).or_default();
        let mut changes = Vec::new();
        for p in &u.participants {
            let Some(now) = participant_of(p, &ours) else { continue };
            if has_left(p) {
                // Only the source that is current: an old one leaving is a rejoin's trace.
                if known.get(&now.peer).is_some_and(|k| k.source == now.source) || !known.contains_key(&now.peer) {
                    known.remove(&now.peer);
                    changes.push(ParticipantChange::Left(now.peer));
                }
                continue;
            }
            match known.insert(now.peer, now.clone()) {
                None => changes.push(ParticipantChange::Joined(now)),
                Some(before) if before.muted != now.muted => changes.push(if now.muted {
                    ParticipantChange::Muted(now.peer)
                } else {
                    ParticipantChange::Unmuted(now.peer)
                }),
                Some(_) => {}
            }
        }
        (!changes.is_empty()).then_some(Update::Participants { chat: j.chat, changes })
    }

    fn is_me(&self, peer: &tl::enums::Peer) -> bool {
        matches!(peer, tl::enums::Peer::User(u) if u.user_id == self.me)
    }

    /// `messageActionInviteToGroupCall` naming us.
    fn invite(&self, message: &tl::enums::Message) -> Option<Update> {
        let tl::enums::Message::Service(m) = message else {
            return None;
        };
        let tl::enums::MessageAction::InviteToGroupCall(a) = &m.action else {
            return None;
        };
        if !a.users.contains(&self.me) {
            return None;
        }
        let inviter = match &m.from_id {
            Some(tl::enums::Peer::User(u)) => u.user_id,
            _ => 0,
        };
        Some(Update::Invited(Invite { chat: chat_id_of(&m.peer_id)?, inviter, message_id: m.id }))
    }
}

#[cfg(test)]
mod tests;
