//! Every update here is built with grammers' TL types, serialized to the bytes
//! Telegram sends and parsed back before it is routed.

use grammers_tl_types::{self as tl, Deserializable, Serializable};
use serde_json::json;

use super::*;

const ME: i64 = 5_000_001;
const CHANNEL: i64 = 1_185_324_811;
const CHAT: ChatId = -1_001_185_324_811;
const CALL: CallRef = CallRef { id: 900, access_hash: 901 };
const SSRC: u32 = 0xdead_beef;

fn joined() -> Vec<JoinedCall> {
    vec![JoinedCall { chat: CHAT, call: CALL, ssrc: SSRC }]
}

/// `updates` as Telegram sends it: one `updates#74ae4240` container, through bytes.
fn wire(
    updates: Vec<tl::enums::Update>,
    chats: Vec<tl::enums::Chat>,
) -> (Vec<tl::enums::Update>, Vec<tl::enums::Chat>) {
    let sent: tl::enums::Updates = tl::types::Updates { updates, users: vec![], chats, date: 1, seq: 0 }.into();
    match tl::enums::Updates::from_bytes(&sent.to_bytes()).expect("Telegram's bytes parse back") {
        tl::enums::Updates::Updates(u) => (u.updates, u.chats),
        other => panic!("parsed into another shape: {other:?}"),
    }
}

/// Routes a batch; returns the routed events and how many raw ones came along.
fn route(updates: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) -> (Vec<Update>, Vec<serde_json::Value>) {
    let (updates, chats) = wire(updates, chats);
    let router = Router { me: ME };
    let (mut routed, mut raw) = (Vec::new(), Vec::new());
    for u in &updates {
        for out in router.route(u, &chats, &joined()) {
            match out {
                Update::Raw(j) => raw.push(j),
                other => routed.push(other),
            }
        }
    }
    (routed, raw)
}

fn channel_forbidden(id: i64) -> tl::enums::Chat {
    tl::types::ChannelForbidden {
        broadcast: false,
        megagroup: true,
        monoforum: false,
        id,
        access_hash: 7,
        title: "demo".into(),
        until_date: None,
    }
    .into()
}

fn participant(user: i64, source: u32, left: bool) -> tl::enums::GroupCallParticipant {
    tl::types::GroupCallParticipant {
        muted: false,
        left,
        can_self_unmute: true,
        just_joined: false,
        versioned: false,
        min: false,
        muted_by_you: false,
        volume_by_admin: false,
        is_self: user == ME,
        video_joined: false,
        peer: tl::types::PeerUser { user_id: user }.into(),
        date: 1,
        active_date: None,
        source: source as i32,
        volume: None,
        about: None,
        raise_hand_rating: None,
        video: None,
        presentation: None,
        paid_stars_total: None,
    }
    .into()
}

fn participants(list: Vec<tl::enums::GroupCallParticipant>) -> tl::enums::Update {
    tl::types::UpdateGroupCallParticipants { call: CALL.input(), participants: list, version: 2 }.into()
}

fn service(peer: tl::enums::Peer, action: tl::enums::MessageAction) -> tl::enums::Message {
    tl::types::MessageService {
        out: false,
        mentioned: true,
        media_unread: false,
        reactions_are_possible: false,
        silent: false,
        post: false,
        legacy: false,
        id: 321,
        from_id: Some(tl::types::PeerUser { user_id: 42 }.into()),
        peer_id: peer,
        saved_peer_id: None,
        reply_to: None,
        date: 1,
        action,
        reactions: None,
        ttl_period: None,
    }
    .into()
}

fn invite(users: Vec<i64>) -> tl::enums::MessageAction {
    tl::types::MessageActionInviteToGroupCall { call: CALL.input(), users }.into()
}

#[test]
fn removed_from_a_supergroup_is_kicked_once() {
    let (routed, raw) =
        route(vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()], vec![channel_forbidden(CHANNEL)]);
    assert_eq!(routed, vec![Update::Kicked(CHAT)]);
    assert_eq!(raw, vec![json!({ "_": "updateChannel", "channel_id": CHANNEL })]);
}

#[test]
fn removed_from_a_basic_group_is_kicked() {
    let forbidden: tl::enums::Chat = tl::types::ChatForbidden { id: 4242, title: "old".into() }.into();
    let (routed, _) = route(vec![tl::types::UpdateChat { chat_id: 4242 }.into()], vec![forbidden]);
    assert_eq!(routed, vec![Update::Kicked(-4242)]);
}

#[test]
fn a_channel_update_for_a_chat_we_are_still_in_is_only_raw() {
    // Same update, but the channel comes along forbidden under another id.
    let (routed, raw) =
        route(vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()], vec![channel_forbidden(1)]);
    assert!(routed.is_empty());
    assert_eq!(raw.len(), 1);
}

#[test]
fn our_participant_leaving_is_kicked_but_an_old_source_or_someone_else_is_not() {
    let (routed, _) = route(vec![participants(vec![participant(ME, SSRC, true)])], vec![]);
    assert_eq!(routed, vec![Update::Kicked(CHAT)]);
    let (routed, raw) = route(
        vec![participants(vec![participant(ME, 17, true), participant(99, SSRC, true), participant(ME, SSRC, false)])],
        vec![],
    );
    assert!(routed.is_empty(), "{routed:?}");
    assert_eq!(raw[0]["participants"].as_array().unwrap().len(), 3);
    assert_eq!(raw[0]["participants"][0]["_"], "groupCallParticipant");
}

#[test]
fn a_discarded_call_ends_the_call_by_its_peer_or_by_our_join() {
    let discarded = |peer: Option<tl::enums::Peer>, id: i64| -> tl::enums::Update {
        tl::types::UpdateGroupCall {
            live_story: false,
            peer,
            call: tl::types::GroupCallDiscarded { id, access_hash: 1, duration: 60 }.into(),
        }
        .into()
    };
    let (routed, raw) = route(vec![discarded(Some(tl::types::PeerChat { chat_id: 77 }.into()), 5)], vec![]);
    assert_eq!(routed, vec![Update::CallEnded(-77)]);
    assert_eq!(raw[0]["call"]["_"], "groupCallDiscarded");
    let (routed, _) = route(vec![discarded(None, CALL.id)], vec![]);
    assert_eq!(routed, vec![Update::CallEnded(CHAT)]);
    // A call we know nothing about, with no peer: nothing to end.
    let (routed, raw) = route(vec![discarded(None, 12345)], vec![]);
    assert!(routed.is_empty());
    assert_eq!(raw.len(), 1);
}

#[test]
fn an_invitation_naming_us_is_an_invite() {
    let peer: tl::enums::Peer = tl::types::PeerChannel { channel_id: CHANNEL }.into();
    let msg = service(peer.clone(), invite(vec![ME, 8]));
    let (routed, raw) =
        route(vec![tl::types::UpdateNewChannelMessage { message: msg, pts: 1, pts_count: 1 }.into()], vec![]);
    assert_eq!(routed, vec![Update::Invited(Invite { chat: CHAT, inviter: 42, message_id: 321 })]);
    assert_eq!(raw[0]["message"]["action"]["_"], "messageActionInviteToGroupCall");

    let basic = service(tl::types::PeerChat { chat_id: 4242 }.into(), invite(vec![ME]));
    let (routed, _) = route(vec![tl::types::UpdateNewMessage { message: basic, pts: 1, pts_count: 1 }.into()], vec![]);
    assert_eq!(routed, vec![Update::Invited(Invite { chat: -4242, inviter: 42, message_id: 321 })]);

    // Someone else invited: raw only.
    let other = service(peer, invite(vec![8]));
    let (routed, raw) =
        route(vec![tl::types::UpdateNewChannelMessage { message: other, pts: 2, pts_count: 1 }.into()], vec![]);
    assert!(routed.is_empty());
    assert_eq!(raw.len(), 1);
}

#[test]
fn unrelated_updates_reach_only_raw_each_once() {
    let (routed, raw) = route(
        vec![
            tl::types::UpdateUserName { user_id: 3, first_name: "A".into(), last_name: "B".into(), usernames: vec![] }
                .into(),
            tl::types::UpdateChannel { channel_id: CHANNEL }.into(), // no forbidden chat along
            tl::types::UpdateGroupCall {
                live_story: false,
                peer: None,
                call: tl::types::GroupCallDiscarded { id: 1, access_hash: 1, duration: 1 }.into(),
            }
            .into(),
            tl::enums::Update::Config,
        ],
        vec![],
    );
    assert!(routed.is_empty(), "{routed:?}");
    let names: Vec<_> = raw.iter().map(|r| r["_"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["updateUserName", "updateChannel", "updateGroupCall", "updateConfig"]);
}
