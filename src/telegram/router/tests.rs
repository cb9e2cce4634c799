//! Every update here is built with grammers' TL types, serialized to the bytes
//! Telegram sends and parsed back before it is routed.

use grammers_tl_types as tl;
use serde_json::json;

use super::*;
use crate::telegram::loopback::updates::{discarded, invitation, participant, participants};
use crate::telegram::tl::{container as updates, through_the_wire};

/// A supergroup as a removed member sees it.
fn channel_forbidden(id: i64, access_hash: i64) -> tl::enums::Chat {
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

const ME: i64 = 5_000_001;
const CHANNEL: i64 = 1_185_324_811;
const CHAT: ChatId = -1_001_185_324_811;
const CALL: CallRef = CallRef { id: 900, access_hash: 901 };
const SSRC: u32 = 0xdead_beef;

fn joined() -> Vec<JoinedCall> {
    vec![JoinedCall { chat: CHAT, call: CALL, ssrc: SSRC }]
}

/// Routes a batch that went through the wire; returns the routed events and the raw ones.
fn route(list: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) -> (Vec<Update>, Vec<serde_json::Value>) {
    let (list, chats) = through_the_wire(&updates(list, chats));
    let router = Router::new(ME, None);
    let (mut routed, mut raw) = (Vec::new(), Vec::new());
    for u in &list {
        for out in router.route(u, &chats, &joined(), Account::User) {
            match out {
                Update::Raw { json, .. } => raw.push(json),
                // Participant changes have tests of their own.
                Update::Participants { .. } => {}
                other => routed.push(other),
            }
        }
    }
    (routed, raw)
}

fn channel(id: i64) -> tl::enums::Peer {
    tl::types::PeerChannel { channel_id: id }.into()
}

#[test]
fn removed_from_a_supergroup_is_kicked_once() {
    let (routed, raw) =
        route(vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()], vec![channel_forbidden(CHANNEL, 7)]);
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
        route(vec![tl::types::UpdateChannel { channel_id: CHANNEL }.into()], vec![channel_forbidden(1, 7)]);
    assert!(routed.is_empty());
    assert_eq!(raw.len(), 1);
}

#[test]
fn our_participant_leaving_is_kicked_but_an_old_source_or_someone_else_is_not() {
    let (routed, _) = route(vec![participants(CALL, vec![participant(ME, SSRC, true)])], vec![]);
    assert_eq!(routed, vec![Update::Kicked(CHAT)]);
    let (routed, raw) = route(
        vec![participants(
            CALL,
            vec![participant(ME, 17, true), participant(99, SSRC, true), participant(ME, SSRC, false)],
        )],
        vec![],
    );
    assert!(routed.is_empty(), "{routed:?}");
    assert_eq!(raw[0]["participants"].as_array().unwrap().len(), 3);
    assert_eq!(raw[0]["participants"][0]["_"], "groupCallParticipant");
}

#[test]
fn a_discarded_call_ends_the_call_by_its_peer_or_by_our_join() {
    let other = |id: i64| CallRef { id, access_hash: 1 };
    let (routed, raw) = route(vec![discarded(Some(tl::types::PeerChat { chat_id: 77 }.into()), other(5))], vec![]);
    assert_eq!(routed, vec![Update::CallEnded(-77)]);
    assert_eq!(raw[0]["call"]["_"], "groupCallDiscarded");
    let (routed, _) = route(vec![discarded(None, CALL)], vec![]);
    assert_eq!(routed, vec![Update::CallEnded(CHAT)]);
    // A call we know nothing about, with no peer: nothing to end.
    let (routed, raw) = route(vec![discarded(None, other(12345))], vec![]);
    assert!(routed.is_empty());
    assert_eq!(raw.len(), 1);
}

#[test]
fn an_invitation_naming_us_is_an_invite() {
    let (routed, raw) = route(vec![invitation(channel(CHANNEL), 42, 321, CALL, vec![ME, 8])], vec![]);
    assert_eq!(routed, vec![Update::Invited(Invite { chat: CHAT, inviter: 42, message_id: 321 })]);
    assert_eq!(raw[0]["_"], "updateNewChannelMessage");
    assert_eq!(raw[0]["message"]["action"]["_"], "messageActionInviteToGroupCall");

    let basic = invitation(tl::types::PeerChat { chat_id: 4242 }.into(), 42, 321, CALL, vec![ME]);
    let (routed, raw) = route(vec![basic], vec![]);
    assert_eq!(routed, vec![Update::Invited(Invite { chat: -4242, inviter: 42, message_id: 321 })]);
    assert_eq!(raw[0]["_"], "updateNewMessage");

    // Someone else invited: raw only.
    let (routed, raw) = route(vec![invitation(channel(CHANNEL), 42, 322, CALL, vec![8])], vec![]);
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
            discarded(None, CallRef { id: 1, access_hash: 1 }),      // a call we are not in
            tl::enums::Update::Config,
        ],
        vec![],
    );
    assert!(routed.is_empty(), "{routed:?}");
    let names: Vec<_> = raw.iter().map(|r| r["_"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["updateUserName", "updateChannel", "updateGroupCall", "updateConfig"]);
}
