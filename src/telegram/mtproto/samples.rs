//! TL objects as Telegram sends them, built with grammers' own types: what the
//! loopback Telegram sends its plugins (so they see Telegram's shapes), and the
//! tests, the fake Telegram in `tests/` and `wasmcalls bench updates`.

use grammers_tl_types::{self as tl, Deserializable, Serializable};

use super::requests::{CallRef, ChatKind};

/// The TL peer of a Bot API chat id (`-100…` channel, `-…` basic group, else a user).
pub fn peer_of(chat: i64) -> tl::enums::Peer {
    match super::requests::chat_kind(chat) {
        Ok((_, ChatKind::Channel { bare })) => tl::types::PeerChannel { channel_id: bare }.into(),
        Ok((_, ChatKind::Chat { bare })) => tl::types::PeerChat { chat_id: bare }.into(),
        Err(_) => tl::types::PeerUser { user_id: chat }.into(),
    }
}

/// An `updates` container with `list` and the `chats` sent along.
pub fn updates(list: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) -> tl::enums::Updates {
    tl::types::Updates { updates: list, users: vec![], chats, date: 1_700_000_000, seq: 0 }.into()
}

/// `updates` serialized to the bytes Telegram sends and parsed back: its updates and chats.
pub fn through_the_wire(updates: &tl::enums::Updates) -> (Vec<tl::enums::Update>, Vec<tl::enums::Chat>) {
    match tl::enums::Updates::from_bytes(&updates.to_bytes()).expect("Telegram's bytes parse back") {
        tl::enums::Updates::Updates(u) => (u.updates, u.chats),
        tl::enums::Updates::Combined(u) => (u.updates, u.chats),
        other => panic!("not a container of updates: {other:?}"),
    }
}

/// `updateGroupCallConnection` carrying a transport JSON (audio, not screen sharing).
pub fn connection(data: &str) -> tl::enums::Update {
    tl::types::UpdateGroupCallConnection {
        presentation: false,
        params: tl::types::DataJson { data: data.into() }.into(),
    }
    .into()
}

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

/// A supergroup as a removed member sees it.
pub fn channel_forbidden(id: i64, access_hash: i64) -> tl::enums::Chat {
    tl::types::ChannelForbidden {
        broadcast: false,
        megagroup: true,
        monoforum: false,
        id,
        access_hash,
        title: "demo".into(),
        until_date: None,
    }
    .into()
}

/// `messages.chatFull` around a full chat.
pub fn full(chat: tl::enums::ChatFull) -> tl::enums::messages::ChatFull {
    tl::types::messages::ChatFull { full_chat: chat, chats: vec![], users: vec![] }.into()
}

fn notify() -> tl::enums::PeerNotifySettings {
    tl::types::PeerNotifySettings {
        show_previews: None,
        silent: None,
        mute_until: None,
        ios_sound: None,
        android_sound: None,
        other_sound: None,
        stories_muted: None,
        stories_hide_sender: None,
        stories_ios_sound: None,
        stories_android_sound: None,
        stories_other_sound: None,
    }
    .into()
}

/// A basic group's full chat (`chatFull`), with `call` if a voice chat runs.
pub fn chat_full(id: i64, call: Option<tl::enums::InputGroupCall>) -> tl::enums::ChatFull {
    tl::types::ChatFull {
        can_set_username: false,
        has_scheduled: false,
        translations_disabled: false,
        has_welcome_messages: false,
        id,
        about: String::new(),
        participants: tl::types::ChatParticipantsForbidden { chat_id: id, self_participant: None }.into(),
        chat_photo: None,
        notify_settings: notify(),
        exported_invite: None,
        bot_info: None,
        pinned_msg_id: None,
        folder_id: None,
        call,
        ttl_period: None,
        groupcall_default_join_as: None,
        theme_emoticon: None,
        requests_pending: None,
        recent_requesters: None,
        available_reactions: None,
        reactions_limit: None,
    }
    .into()
}

/// A supergroup's full chat (`channelFull`), with `call` if a voice chat runs.
pub fn channel_full(id: i64, call: Option<tl::enums::InputGroupCall>) -> tl::enums::ChatFull {
    tl::types::ChannelFull {
        can_view_participants: false,
        can_set_username: false,
        can_set_stickers: false,
        hidden_prehistory: false,
        can_set_location: false,
        has_scheduled: false,
        can_view_stats: false,
        blocked: false,
        can_delete_channel: false,
        antispam: false,
        participants_hidden: false,
        translations_disabled: false,
        stories_pinned_available: false,
        view_forum_as_messages: false,
        restricted_sponsored: false,
        can_view_revenue: false,
        paid_media_allowed: false,
        can_view_stars_revenue: false,
        paid_reactions_available: false,
        stargifts_available: false,
        paid_messages_available: false,
        has_welcome_messages: false,
        id,
        about: String::new(),
        participants_count: Some(3),
        admins_count: None,
        kicked_count: None,
        banned_count: None,
        online_count: None,
        read_inbox_max_id: 0,
        read_outbox_max_id: 0,
        unread_count: 0,
        chat_photo: tl::types::PhotoEmpty { id: 0 }.into(),
        notify_settings: notify(),
        exported_invite: None,
        bot_info: vec![],
        migrated_from_chat_id: None,
        migrated_from_max_id: None,
        pinned_msg_id: None,
        stickerset: None,
        available_min_id: None,
        folder_id: None,
        linked_chat_id: None,
        location: None,
        slowmode_seconds: None,
        slowmode_next_send_date: None,
        stats_dc: None,
        pts: 1,
        call,
        ttl_period: None,
        pending_suggestions: None,
        groupcall_default_join_as: None,
        theme_emoticon: None,
        requests_pending: None,
        recent_requesters: None,
        default_send_as: None,
        available_reactions: None,
        reactions_limit: None,
        stories: None,
        wallpaper: None,
        boosts_applied: None,
        boosts_unrestrict: None,
        emojiset: None,
        bot_verification: None,
        stargifts_count: None,
        send_paid_messages_stars: None,
        main_tab: None,
        guard_bot_id: None,
    }
    .into()
}
