//! Telegram's TL objects read into the host's records: messages and their media,
//! button presses, call participants, member standings. Pure functions, shared by
//! both Telegram sides (the loopback routes the TL it builds through them too).

use grammers_tl_types as tl;

use super::chat_id_of;
use crate::telegram::messages::{
    Account, Attachment, CallbackQuery, MediaKind, MemberStatus, Message, Participant, Reply,
};

/// The user id of a `from_id`, if a user sent it (not a channel posting as itself).
fn user_of(peer: Option<&tl::enums::Peer>) -> Option<i64> {
    match peer? {
        tl::enums::Peer::User(u) => Some(u.user_id),
        _ => None,
    }
}

/// A new message in `update`, as `seen_by` saw it: not service messages, not edits.
/// A message without a sender user (a channel post) is not one a bot answers.
pub fn message_of(update: &tl::enums::Update, seen_by: Account) -> Option<Message> {
    let message = match update {
        tl::enums::Update::NewMessage(u) => &u.message,
        tl::enums::Update::NewChannelMessage(u) => &u.message,
        _ => return None,
    };
    let tl::enums::Message::Message(m) = message else { return None };
    // In a private chat the sender is the peer itself.
    let private_peer = match &m.peer_id {
        tl::enums::Peer::User(u) if !m.out => Some(u.user_id),
        _ => None,
    };
    let sender = user_of(m.from_id.as_ref()).or(private_peer)?;
    let reply_to = match &m.reply_to {
        Some(tl::enums::MessageReplyHeader::Header(h)) => {
            h.reply_to_msg_id.map(|id| Reply { message: id, media: h.reply_media.as_ref().and_then(attachment_of) })
        }
        _ => None,
    };
    Some(Message {
        chat: chat_id_of(&m.peer_id)?,
        id: m.id,
        sender,
        text: m.message.clone(),
        reply_to,
        media: m.media.as_ref().and_then(attachment_of),
        date: m.date as i64,
        seen_by,
    })
}

/// The audio, voice note, video or document a message carries.
pub fn attachment_of(media: &tl::enums::MessageMedia) -> Option<Attachment> {
    let tl::enums::MessageMedia::Document(d) = media else { return None };
    let Some(tl::enums::Document::Document(doc)) = &d.document else { return None };
    let mut a = Attachment {
        kind: if d.voice {
            MediaKind::Voice
        } else if d.video || d.round {
            MediaKind::Video
        } else {
            MediaKind::Document
        },
        file_name: None,
        mime_type: Some(doc.mime_type.clone()).filter(|m| !m.is_empty()),
        size: doc.size.max(0) as u64,
        duration_s: None,
        title: None,
        performer: None,
    };
    for attr in &doc.attributes {
        match attr {
            tl::enums::DocumentAttribute::Filename(f) => a.file_name = Some(f.file_name.clone()),
            tl::enums::DocumentAttribute::Audio(au) => {
                a.kind = if au.voice { MediaKind::Voice } else { MediaKind::Audio };
                a.duration_s = Some(au.duration.max(0) as u32);
                a.title = au.title.clone();
                a.performer = au.performer.clone();
            }
            tl::enums::DocumentAttribute::Video(v) => {
                a.kind = MediaKind::Video;
                a.duration_s = Some(v.duration.max(0.0) as u32);
            }
            _ => {}
        }
    }
    Some(a)
}

/// The document a message carries, as `upload.getFile` addresses it, and its size.
pub fn document_of(message: &tl::enums::Message) -> Option<(tl::types::Document, u64)> {
    let tl::enums::Message::Message(m) = message else { return None };
    let Some(tl::enums::MessageMedia::Document(d)) = &m.media else { return None };
    let Some(tl::enums::Document::Document(doc)) = &d.document else { return None };
    Some((doc.clone(), doc.size.max(0) as u64))
}

/// A button press in `update` (bots receive these).
pub fn callback_of(update: &tl::enums::Update) -> Option<CallbackQuery> {
    let tl::enums::Update::BotCallbackQuery(q) = update else { return None };
    Some(CallbackQuery {
        id: q.query_id.to_string(),
        chat: chat_id_of(&q.peer)?,
        message: q.msg_id,
        sender: q.user_id,
        data: q.data.as_deref().map(|d| String::from_utf8_lossy(d).into_owned()).unwrap_or_default(),
    })
}

/// A call participant as the contract describes one; `ours` are our accounts' ids.
/// `None` for a peer id no one can have.
pub fn participant_of(p: &tl::enums::GroupCallParticipant, ours: &[i64]) -> Option<Participant> {
    let tl::enums::GroupCallParticipant::Participant(p) = p;
    let peer = chat_id_of(&p.peer)?;
    Some(Participant {
        peer,
        source: p.source as u32,
        muted: p.muted,
        speaking: false,
        // Telegram's volume is in hundredths of a percent (10000 = 100 %).
        volume: p.volume.map_or(100, |v| (v.max(0) / 100).min(u16::MAX as i32) as u16),
        is_self: p.is_self || ours.contains(&peer),
    })
}

/// Whether a participant in an update has left.
pub fn has_left(p: &tl::enums::GroupCallParticipant) -> bool {
    let tl::enums::GroupCallParticipant::Participant(p) = p;
    p.left
}

/// A member's standing from `channels.getParticipant`'s answer.
pub fn channel_member(p: &tl::enums::ChannelParticipant) -> MemberStatus {
    use tl::enums::ChannelParticipant as P;
    match p {
        P::Creator(_) => MemberStatus::Creator,
        P::Admin(_) => MemberStatus::Administrator,
        P::Participant(_) | P::ParticipantSelf(_) => MemberStatus::Member,
        P::Banned(b) if b.left => MemberStatus::Left,
        P::Banned(b) => {
            let tl::enums::ChatBannedRights::Rights(r) = &b.banned_rights;
            if r.view_messages { MemberStatus::Banned } else { MemberStatus::Restricted }
        }
        P::Left(_) => MemberStatus::Left,
    }
}

/// A member's standing in a basic group, from its full chat's participants.
pub fn chat_member(participants: &tl::enums::ChatParticipants, user: i64) -> MemberStatus {
    let tl::enums::ChatParticipants::Participants(list) = participants else {
        // The account cannot see the list (it was removed): nobody it can vouch for.
        return MemberStatus::Left;
    };
    for p in &list.participants {
        use tl::enums::ChatParticipant as P;
        match p {
            P::Creator(c) if c.user_id == user => return MemberStatus::Creator,
            P::Admin(a) if a.user_id == user => return MemberStatus::Administrator,
            P::Participant(m) if m.user_id == user => return MemberStatus::Member,
            _ => {}
        }
    }
    MemberStatus::Left
}
