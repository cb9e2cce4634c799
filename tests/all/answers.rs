//! TL objects the fake Telegram answers with, built with grammers' own types.

use grammers_tl_types::{self as tl, Deserializable, Serializable};

/// An `updates` container with `list` and the `chats` sent along.
pub fn updates(list: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) -> tl::enums::Updates {
    wasmcalls::telegram::tl::container(list, chats)
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

/// An administrator's rights: managing calls, nothing else.
pub fn admin_rights() -> tl::enums::ChatAdminRights {
    tl::types::ChatAdminRights {
        change_info: false,
        post_messages: false,
        edit_messages: false,
        delete_messages: false,
        ban_users: false,
        invite_users: false,
        pin_messages: false,
        add_admins: false,
        anonymous: false,
        manage_call: true,
        other: false,
        manage_topics: false,
        post_stories: false,
        edit_stories: false,
        delete_stories: false,
        manage_direct_messages: false,
        manage_ranks: false,
        manage_linked_peers: false,
        manage_welcome_messages: false,
    }
    .into()
}
