//! Telegram's updates → the host's [`Update`]s. Each TL update yields at most one
//! routed event (kicked, invited, call ended) and always its raw JSON, so a plugin
//! sees every update once through `on-raw-update` and the ones that matter once more
//! through their own handler.

use grammers_tl_types as tl;

use crate::telegram::tl::json::{chat_of, to_json};
use crate::telegram::tl::{CallRef, chat_id_of};
use crate::telegram::{ChatId, Invite, Update};

/// A call we are in, as the router needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinedCall {
    pub chat: ChatId,
    pub call: CallRef,
    pub ssrc: u32,
}

/// Routes updates for the account `me`.
#[derive(Debug, Clone, Copy)]
pub struct Router {
    pub me: i64,
}

impl Router {
    /// The events `update` means; `chats` are the chats sent along with it (where a
    /// removed member finds its chat now `…Forbidden`), `joined` the calls we are in.
    pub fn route(&self, update: &tl::enums::Update, chats: &[tl::enums::Chat], joined: &[JoinedCall]) -> Vec<Update> {
        let mut out = Vec::with_capacity(2);
        let routed = self.routed(update, chats, joined);
        let json = to_json(update);
        let chat = match &routed {
            Some(Update::Kicked(c) | Update::CallEnded(c)) => Some(*c),
            Some(Update::Invited(i)) => Some(i.chat),
            _ => chat_of(&json, |call| joined.iter().find(|j| j.call.id == call).map(|j| j.chat)),
        };
        out.extend(routed);
        out.push(Update::Raw { json, chat });
        out
    }

    fn routed(&self, update: &tl::enums::Update, chats: &[tl::enums::Chat], joined: &[JoinedCall]) -> Option<Update> {
        use tl::enums::Update as U;
        match update {
            U::Channel(u) => chats
                .iter()
                .any(|c| matches!(c, tl::enums::Chat::ChannelForbidden(f) if f.id == u.channel_id))
                .then(|| Update::Kicked(chat_id_of(&tl::types::PeerChannel { channel_id: u.channel_id }.into()))),
            U::Chat(u) => chats
                .iter()
                .any(|c| matches!(c, tl::enums::Chat::Forbidden(f) if f.id == u.chat_id))
                .then(|| Update::Kicked(chat_id_of(&tl::types::PeerChat { chat_id: u.chat_id }.into()))),
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
                    Some(peer) => chat_id_of(peer),
                    None => joined.iter().find(|j| j.call.id == d.id)?.chat,
                };
                Some(Update::CallEnded(chat))
            }
            U::NewMessage(tl::types::UpdateNewMessage { message, .. })
            | U::NewChannelMessage(tl::types::UpdateNewChannelMessage { message, .. }) => self.invite(message),
            _ => None,
        }
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
        Some(Update::Invited(Invite { chat: chat_id_of(&m.peer_id), inviter, message_id: m.id }))
    }
}

#[cfg(test)]
mod tests;
