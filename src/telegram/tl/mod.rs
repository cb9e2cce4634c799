//! Telegram's TL objects as both Telegram sides use them: chat ids ↔ TL peers, call
//! references, and TL → JSON for `on-raw-update` ([`json`]).
//!
//! Chat ids are the Bot API's (as in the seed API): `-100…` for supergroups and
//! channels, `-…` for basic groups, positive for users.

pub mod json;
pub mod read;

use grammers_session::types::{PeerId, PeerKind};
use grammers_tl_types as tl;

use super::{ChatId, TelegramError};

/// A group call as Telegram addresses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRef {
    pub id: i64,
    pub access_hash: i64,
}

impl CallRef {
    pub fn input(self) -> tl::enums::InputGroupCall {
        tl::types::InputGroupCall { id: self.id, access_hash: self.access_hash }.into()
    }
}

/// Which full-chat request finds a chat's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatKind {
    /// Supergroup or channel: `channels.getFullChannel`, needs the access hash.
    Channel { bare: i64 },
    /// Basic group: `messages.getFullChat`.
    Chat { bare: i64 },
}

/// Where `chat` lives; user ids and out-of-range ids are refused.
pub fn chat_kind(chat: ChatId) -> Result<(PeerId, ChatKind), TelegramError> {
    let peer = PeerId::from_bot_api_dialog_id(chat).ok_or(TelegramError::NotAGroup(chat))?;
    let bare = peer.bare_id().ok_or(TelegramError::NotAGroup(chat))?;
    match peer.kind() {
        PeerKind::Channel => Ok((peer, ChatKind::Channel { bare })),
        PeerKind::Chat => Ok((peer, ChatKind::Chat { bare })),
        PeerKind::User => Err(TelegramError::NotAGroup(chat)),
    }
}

/// The Bot API chat id of a TL peer (the inverse of [`peer_of`]); `None` for an id no
/// chat can have (Telegram never sends one; a malformed update might, and grammers'
/// own conversion asserts on it).
pub fn chat_id_of(peer: &tl::enums::Peer) -> Option<ChatId> {
    match peer {
        tl::enums::Peer::User(u) => (u.user_id > 0).then_some(u.user_id),
        tl::enums::Peer::Chat(c) => (c.chat_id > 0 && c.chat_id < 1_000_000_000_000).then(|| -c.chat_id),
        tl::enums::Peer::Channel(c) => {
            (c.channel_id > 0).then(|| 1_000_000_000_000i64.checked_add(c.channel_id)).flatten().map(|v| -v)
        }
    }
}

/// The TL peer of a Bot API chat id (`-100…` channel, `-…` basic group, else a user).
pub fn peer_of(chat: ChatId) -> tl::enums::Peer {
    match chat_kind(chat) {
        Ok((_, ChatKind::Channel { bare })) => tl::types::PeerChannel { channel_id: bare }.into(),
        Ok((_, ChatKind::Chat { bare })) => tl::types::PeerChat { chat_id: bare }.into(),
        Err(_) => tl::types::PeerUser { user_id: chat }.into(),
    }
}

/// An `updates` container carrying `list`, with the `chats` sent along.
pub fn container(list: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) -> tl::enums::Updates {
    tl::types::Updates { updates: list, users: vec![], chats, date: 1_700_000_000, seq: 0 }.into()
}

/// A request as Telegram reads it: its constructor id, then its body, parsed back.
#[cfg(test)]
pub(crate) fn read_back<F: tl::RemoteCall + tl::Identifiable + tl::Deserializable>(request: &F) -> F {
    let bytes = tl::Serializable::to_bytes(request);
    assert_eq!(bytes[..4], F::CONSTRUCTOR_ID.to_le_bytes(), "constructor id first");
    F::from_bytes(&bytes[4..]).expect("the body parses back")
}

/// `updates` serialized to Telegram's bytes and parsed back: its updates and chats.
#[cfg(test)]
pub(crate) fn through_the_wire(updates: &tl::enums::Updates) -> (Vec<tl::enums::Update>, Vec<tl::enums::Chat>) {
    use tl::{Deserializable, Serializable};
    match tl::enums::Updates::from_bytes(&updates.to_bytes()).expect("Telegram's bytes parse back") {
        tl::enums::Updates::Updates(u) => (u.updates, u.chats),
        tl::enums::Updates::Combined(u) => (u.updates, u.chats),
        other => panic!("not a container of updates: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_ids_resolve_like_the_bot_api() {
        assert_eq!(chat_kind(-1001185324811).unwrap().1, ChatKind::Channel { bare: 1185324811 });
        assert_eq!(chat_kind(-4242).unwrap().1, ChatKind::Chat { bare: 4242 });
        assert!(matches!(chat_kind(777000).unwrap_err(), TelegramError::NotAGroup(777000)));
        assert!(matches!(chat_kind(0).unwrap_err(), TelegramError::NotAGroup(0)));
        for chat in [-1001185324811, -4242] {
            assert_eq!(chat_id_of(&peer_of(chat)), Some(chat));
        }
        assert_eq!(peer_of(777), tl::types::PeerUser { user_id: 777 }.into());
        // Ids no chat can have (found by fuzzing `tl_updates`): none, not a panic or a
        // wrapped-around id.
        for peer in [
            tl::types::PeerChannel { channel_id: i64::MAX }.into(),
            tl::types::PeerChannel { channel_id: -5 }.into(),
            tl::types::PeerChat { chat_id: i64::MIN }.into(),
            tl::types::PeerUser { user_id: 0 }.into(),
        ] {
            assert_eq!(chat_id_of(&peer), None, "{peer:?}");
        }
    }
}
