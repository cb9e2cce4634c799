//! Telegram's update shapes as the loopback sends them, built with grammers' own TL
//! types: a bot developed on the loopback reads exactly what Telegram would send.

use grammers_tl_types as tl;

use crate::telegram::tl::CallRef;

/// `user` in a group call with audio `source`, or leaving it.
pub fn participant(user: i64, source: u32, left: bool) -> tl::enums::GroupCallParticipant {
    member(tl::types::PeerUser { user_id: user }.into(), source, false, left, false)
}

/// `peer` in a group call with audio `source`: muted or not, leaving or not, ourselves
/// or not.
pub fn member(
    peer: tl::enums::Peer,
    source: u32,
    muted: bool,
    left: bool,
    is_self: bool,
) -> tl::enums::GroupCallParticipant {
    tl::types::GroupCallParticipant {
        muted,
        left,
        can_self_unmute: true,
        just_joined: false,
        versioned: true,
        min: false,
        muted_by_you: false,
        volume_by_admin: false,
        is_self,
        video_joined: false,
        peer,
        date: 1_700_000_000,
        active_date: None,
        source: source as i32,
        volume: Some(10_000),
        about: None,
        raise_hand_rating: None,
        video: None,
        presentation: None,
        paid_stars_total: None,
    }
    .into()
}

/// `updateGroupCallParticipants` for `call`.
pub fn participants(call: CallRef, list: Vec<tl::enums::GroupCallParticipant>) -> tl::enums::Update {
    tl::types::UpdateGroupCallParticipants { call: call.input(), participants: list, version: 2 }.into()
}

/// `inviter` invites `users` to `call` in the chat `peer`: a service message in the
/// update a channel (`updateNewChannelMessage`) or a basic group (`updateNewMessage`) gets.
pub fn invitation(
    peer: tl::enums::Peer,
    inviter: i64,
    message_id: i32,
    call: CallRef,
    users: Vec<i64>,
) -> tl::enums::Update {
    let in_channel = matches!(peer, tl::enums::Peer::Channel(_));
    let message: tl::enums::Message = tl::types::MessageService {
        out: false,
        mentioned: true,
        media_unread: false,
        reactions_are_possible: false,
        silent: false,
        post: false,
        legacy: false,
        id: message_id,
        from_id: Some(tl::types::PeerUser { user_id: inviter }.into()),
        peer_id: peer,
        saved_peer_id: None,
        reply_to: None,
        date: 1_700_000_000,
        action: tl::types::MessageActionInviteToGroupCall { call: call.input(), users }.into(),
        reactions: None,
        ttl_period: None,
    }
    .into();
    if in_channel {
        tl::types::UpdateNewChannelMessage { message, pts: 1, pts_count: 1 }.into()
    } else {
        tl::types::UpdateNewMessage { message, pts: 1, pts_count: 1 }.into()
    }
}

/// `updateGroupCall` with the call discarded; `peer` is the chat when Telegram says it.
pub fn discarded(peer: Option<tl::enums::Peer>, call: CallRef) -> tl::enums::Update {
    tl::types::UpdateGroupCall {
        live_story: false,
        peer,
        call: tl::types::GroupCallDiscarded { id: call.id, access_hash: call.access_hash, duration: 60 }.into(),
    }
    .into()
}

/// `updateGroupCall`: a voice chat running in `peer`.
pub fn active_call(peer: tl::enums::Peer, call: CallRef, participants: i32) -> tl::enums::Update {
    let running = tl::types::GroupCall {
        join_muted: false,
        can_change_join_muted: false,
        join_date_asc: false,
        schedule_start_subscribed: false,
        can_start_video: true,
        record_video_active: false,
        rtmp_stream: false,
        listeners_hidden: false,
        conference: false,
        creator: false,
        messages_enabled: false,
        can_change_messages_enabled: false,
        min: false,
        id: call.id,
        access_hash: call.access_hash,
        participants_count: participants,
        title: None,
        stream_dc_id: None,
        record_start_date: None,
        schedule_date: None,
        unmuted_video_count: None,
        unmuted_video_limit: 30,
        version: 1,
        invite_link: None,
        send_paid_messages_stars: None,
        default_send_as: None,
    };
    tl::types::UpdateGroupCall { live_story: false, peer: Some(peer), call: running.into() }.into()
}

/// Everything a chat message says, for [`message`].
#[derive(Debug, Clone, Default)]
pub struct Said {
    pub id: i32,
    pub from: i64,
    pub text: String,
    pub entities: Vec<tl::enums::MessageEntity>,
    pub reply_to: Option<i32>,
    pub media: Option<tl::enums::MessageMedia>,
    pub buttons: Option<tl::enums::ReplyMarkup>,
    pub date: i32,
    pub edited: Option<i32>,
    /// Sent by the account receiving it.
    pub out: bool,
}

/// A chat message (`message`), as Telegram sends it in `peer`.
pub fn message(peer: tl::enums::Peer, said: Said) -> tl::enums::Message {
    tl::types::Message {
        out: said.out,
        mentioned: false,
        media_unread: false,
        silent: false,
        post: false,
        from_scheduled: false,
        legacy: false,
        edit_hide: false,
        pinned: false,
        noforwards: false,
        invert_media: false,
        offline: false,
        video_processing_pending: false,
        paid_suggested_post_stars: false,
        paid_suggested_post_ton: false,
        id: said.id,
        from_id: Some(tl::types::PeerUser { user_id: said.from }.into()),
        from_boosts_applied: None,
        from_rank: None,
        peer_id: peer,
        saved_peer_id: None,
        fwd_from: None,
        via_bot_id: None,
        via_business_bot_id: None,
        guestchat_via_from: None,
        reply_to: said.reply_to.map(|id| {
            tl::types::MessageReplyHeader {
                reply_to_scheduled: false,
                forum_topic: false,
                quote: false,
                reply_to_ephemeral: false,
                reply_to_msg_id: Some(id),
                reply_to_peer_id: None,
                reply_from: None,
                reply_media: None,
                reply_to_top_id: None,
                quote_text: None,
                quote_entities: None,
                quote_offset: None,
                todo_item_id: None,
                poll_option: None,
            }
            .into()
        }),
        date: said.date,
        message: said.text,
        media: said.media,
        reply_markup: said.buttons,
        entities: (!said.entities.is_empty()).then_some(said.entities),
        views: None,
        forwards: None,
        replies: None,
        edit_date: said.edited,
        post_author: None,
        grouped_id: None,
        reactions: None,
        restriction_reason: None,
        ttl_period: None,
        quick_reply_shortcut_id: None,
        effect: None,
        factcheck: None,
        report_delivery_until_date: None,
        paid_message_stars: None,
        suggested_post: None,
        schedule_repeat_period: None,
        summary_from_language: None,
        rich_message: None,
    }
    .into()
}

/// A new message in `peer`: `updateNewChannelMessage` in a channel, else `updateNewMessage`.
pub fn new_message(peer: tl::enums::Peer, said: Said) -> tl::enums::Update {
    let in_channel = matches!(peer, tl::enums::Peer::Channel(_));
    let message = message(peer, said);
    if in_channel {
        tl::types::UpdateNewChannelMessage { message, pts: 1, pts_count: 1 }.into()
    } else {
        tl::types::UpdateNewMessage { message, pts: 1, pts_count: 1 }.into()
    }
}

/// An edited message in `peer`.
pub fn edited_message(peer: tl::enums::Peer, said: Said) -> tl::enums::Update {
    let in_channel = matches!(peer, tl::enums::Peer::Channel(_));
    let message = message(peer, said);
    if in_channel {
        tl::types::UpdateEditChannelMessage { message, pts: 1, pts_count: 1 }.into()
    } else {
        tl::types::UpdateEditMessage { message, pts: 1, pts_count: 1 }.into()
    }
}

/// Messages `ids` deleted in `peer`.
pub fn deleted_messages(peer: tl::enums::Peer, ids: Vec<i32>) -> tl::enums::Update {
    match peer {
        tl::enums::Peer::Channel(c) => {
            tl::types::UpdateDeleteChannelMessages { channel_id: c.channel_id, messages: ids, pts: 1, pts_count: 1 }
                .into()
        }
        _ => tl::types::UpdateDeleteMessages { messages: ids, pts: 1, pts_count: 1 }.into(),
    }
}

/// What an uploaded file is, for [`document`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upload {
    Audio,
    Voice,
    Document,
}

/// A file as a message's media (`messageMediaDocument`): `id` names it for downloads.
pub fn document(id: i64, name: &str, mime: &str, size: u64, kind: Upload, duration_s: u32) -> tl::enums::MessageMedia {
    let mut attributes: Vec<tl::enums::DocumentAttribute> =
        vec![tl::types::DocumentAttributeFilename { file_name: name.to_owned() }.into()];
    if kind != Upload::Document {
        let title = std::path::Path::new(name).file_stem().map(|s| s.to_string_lossy().into_owned());
        attributes.push(
            tl::types::DocumentAttributeAudio {
                voice: kind == Upload::Voice,
                duration: duration_s as i32,
                title: if kind == Upload::Audio { title } else { None },
                performer: None,
                waveform: None,
            }
            .into(),
        );
    }
    tl::types::MessageMediaDocument {
        nopremium: false,
        spoiler: false,
        video: false,
        round: false,
        voice: kind == Upload::Voice,
        document: Some(
            tl::types::Document {
                id,
                access_hash: id ^ 0x5eed,
                file_reference: vec![1, 2, 3],
                date: 1_700_000_000,
                mime_type: mime.to_owned(),
                size: size as i64,
                thumbs: None,
                video_thumbs: None,
                dc_id: 2,
                attributes,
            }
            .into(),
        ),
        alt_documents: None,
        video_cover: None,
        video_timestamp: None,
        ttl_seconds: None,
    }
    .into()
}

/// Inline buttons (`replyInlineMarkup`).
pub fn inline_buttons(rows: &[Vec<crate::telegram::messages::Button>]) -> tl::enums::ReplyMarkup {
    use crate::telegram::messages::ButtonAction;
    let rows = rows
        .iter()
        .map(|row| {
            tl::types::KeyboardInlineButtonRow {
                buttons: row
                    .iter()
                    .map(|b| {
                        let r#type: tl::enums::InlineButtonType = match &b.action {
                            ButtonAction::Callback(d) => tl::types::InlineButtonTypeCallback {
                                requires_password: false,
                                data: d.clone().into_bytes(),
                            }
                            .into(),
                            ButtonAction::Url(u) => tl::types::InlineButtonTypeUrl { url: u.clone() }.into(),
                        };
                        tl::types::KeyboardInlineButton { style: None, text: b.text.clone(), r#type }.into()
                    })
                    .collect(),
            }
            .into()
        })
        .collect();
    tl::types::ReplyInlineMarkup { force_reply: false, rows }.into()
}

/// A press on a button under message `msg_id` in `peer` (`updateBotCallbackQuery`).
pub fn callback_query(query_id: i64, user: i64, peer: tl::enums::Peer, msg_id: i32, data: &str) -> tl::enums::Update {
    tl::types::UpdateBotCallbackQuery {
        query_id,
        user_id: user,
        peer,
        msg_id,
        chat_instance: 1,
        data: Some(data.as_bytes().to_vec()),
        game_short_name: None,
    }
    .into()
}
