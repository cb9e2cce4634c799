//! Telegram's update shapes as the loopback sends them, built with grammers' own TL
//! types: a bot developed on the loopback reads exactly what Telegram would send.

use grammers_tl_types as tl;

use crate::telegram::tl::CallRef;

/// `user` in a group call with audio `source`, or leaving it.
pub fn participant(user: i64, source: u32, left: bool) -> tl::enums::GroupCallParticipant {
    tl::types::GroupCallParticipant {
        muted: false,
        left,
        can_self_unmute: true,
        just_joined: false,
        versioned: true,
        min: false,
        muted_by_you: false,
        volume_by_admin: false,
        is_self: false,
        video_joined: false,
        peer: tl::types::PeerUser { user_id: user }.into(),
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
