//! The TL requests a group call needs, and the checks on Telegram's answers — pure
//! functions, so the tests can hold them against expected TL values.
//!
//! Chat ids are the Bot API's (as in the seed API): `-100…` for supergroups and
//! channels, `-…` for basic groups.

use grammers_tl_types as tl;

use crate::telegram::tl::CallRef;
use crate::telegram::{ChatId, TelegramError};

/// `messages.getFullChat` for a basic group.
pub fn full_chat(bare: i64) -> tl::functions::messages::GetFullChat {
    tl::functions::messages::GetFullChat { chat_id: bare }
}

/// `channels.getFullChannel` for a supergroup or channel.
pub fn full_channel(bare: i64, access_hash: i64) -> tl::functions::channels::GetFullChannel {
    tl::functions::channels::GetFullChannel {
        channel: tl::types::InputChannel { channel_id: bare, access_hash }.into(),
    }
}

/// The chat's active group call, from either full-chat answer.
pub fn call_of(chat: ChatId, full: &tl::enums::messages::ChatFull) -> Result<CallRef, TelegramError> {
    let tl::enums::messages::ChatFull::Full(full) = full;
    let call = match &full.full_chat {
        tl::enums::ChatFull::Full(c) => &c.call,
        tl::enums::ChatFull::ChannelFull(c) => &c.call,
        // Communities group chats; they hold no call of their own.
        tl::enums::ChatFull::CommunityFull(_) => &None,
    };
    match call {
        None => Err(TelegramError::NoActiveGroupCall(chat)),
        Some(tl::enums::InputGroupCall::Call(c)) => Ok(CallRef { id: c.id, access_hash: c.access_hash }),
        Some(other) => Err(TelegramError::Unexpected {
            request: "the full chat",
            what: format!("chat {chat}'s call is referenced as {other:?}, not by id and access hash"),
        }),
    }
}

/// `phone.joinGroupCall`: as ourselves or `join_as`, muted or not, camera off, with the
/// join JSON.
pub fn join(
    call: CallRef,
    params_json: String,
    invite_hash: Option<String>,
    join_as: Option<tl::enums::InputPeer>,
    muted: bool,
) -> tl::functions::phone::JoinGroupCall {
    tl::functions::phone::JoinGroupCall {
        muted,
        video_stopped: true,
        call: call.input(),
        join_as: join_as.unwrap_or(tl::enums::InputPeer::PeerSelf),
        invite_hash,
        public_key: None,
        block: None,
        params: tl::types::DataJson { data: params_json }.into(),
    }
}

/// `phone.getGroupParticipants`: a page of the call's participants from `offset`.
pub fn participants(call: CallRef, offset: &str, limit: u32) -> tl::functions::phone::GetGroupParticipants {
    tl::functions::phone::GetGroupParticipants {
        call: call.input(),
        ids: Vec::new(),
        sources: Vec::new(),
        offset: offset.to_owned(),
        limit: limit.clamp(1, 1000) as i32,
    }
}

/// `phone.getGroupParticipants` for the one participant sending under `ssrc`.
pub fn participant_by_source(call: CallRef, ssrc: u32) -> tl::functions::phone::GetGroupParticipants {
    // Telegram's sources are the SSRC's bits as a signed int.
    tl::functions::phone::GetGroupParticipants { sources: vec![ssrc as i32], limit: 1, ..participants(call, "", 1) }
}

/// `phone.createGroupCall`: a voice chat in `peer`, now.
pub fn create_call(peer: tl::enums::InputPeer, random_id: i32) -> tl::functions::phone::CreateGroupCall {
    tl::functions::phone::CreateGroupCall { rtmp_stream: false, peer, random_id, title: None, schedule_date: None }
}

/// `phone.discardGroupCall`: ends the call for everyone.
pub fn discard_call(call: CallRef) -> tl::functions::phone::DiscardGroupCall {
    tl::functions::phone::DiscardGroupCall { call: call.input() }
}

/// `phone.editGroupCallParticipant`: mutes or unmutes `participant` (ourselves).
pub fn set_muted(
    call: CallRef,
    participant: tl::enums::InputPeer,
    muted: bool,
) -> tl::functions::phone::EditGroupCallParticipant {
    tl::functions::phone::EditGroupCallParticipant {
        call: call.input(),
        participant,
        muted: Some(muted),
        volume: None,
        raise_hand: None,
        video_stopped: None,
        video_paused: None,
        presentation_paused: None,
    }
}

/// `phone.leaveGroupCall(source = ssrc)`.
pub fn leave(call: CallRef, ssrc: u32) -> tl::functions::phone::LeaveGroupCall {
    tl::functions::phone::LeaveGroupCall { call: call.input(), source: ssrc as i32 }
}

/// `phone.checkGroupCall`: which of our sources Telegram still has.
pub fn check(call: CallRef, ssrc: u32) -> tl::functions::phone::CheckGroupCall {
    tl::functions::phone::CheckGroupCall { call: call.input(), sources: vec![ssrc as i32] }
}

/// The updates an `Updates` answer carries, whatever its shape.
pub fn updates_in(updates: &tl::enums::Updates) -> Vec<&tl::enums::Update> {
    match updates {
        tl::enums::Updates::Updates(u) => u.updates.iter().collect(),
        tl::enums::Updates::Combined(u) => u.updates.iter().collect(),
        tl::enums::Updates::UpdateShort(u) => vec![&u.update],
        _ => Vec::new(),
    }
}

/// The transport JSON in a join answer's `updateGroupCallConnection` (the audio
/// one, not a screen-share's).
pub fn transport_of(updates: &tl::enums::Updates) -> Result<String, TelegramError> {
    updates_in(updates)
        .into_iter()
        .find_map(|u| match u {
            tl::enums::Update::GroupCallConnection(c) if !c.presentation => {
                let tl::enums::DataJson::Json(d) = &c.params;
                Some(d.data.clone())
            }
            _ => None,
        })
        .ok_or_else(|| TelegramError::Unexpected {
            request: "phone.joinGroupCall",
            what: "it carries no updateGroupCallConnection, so there is no transport to connect to".into(),
        })
}

/// What a keep-alive check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Telegram still has our source.
    Joined,
    /// Our source is gone (or duplicated): join again.
    Rejoin(String),
    /// The call no longer exists or we may not be in it.
    Ended(String),
    /// Could not ask (network, flood wait): try at the next tick.
    Unknown(String),
}

/// Reads a `phone.checkGroupCall` result for our `ssrc`.
pub fn checked(result: Result<Vec<i32>, TelegramError>, ssrc: u32) -> Checked {
    match result {
        Ok(sources) if sources.contains(&(ssrc as i32)) => Checked::Joined,
        Ok(_) => Checked::Rejoin(format!("Telegram no longer lists our source {ssrc}")),
        Err(e @ TelegramError::SsrcTaken { .. }) => Checked::Rejoin(e.to_string()),
        Err(e @ (TelegramError::CallGone { .. } | TelegramError::Forbidden { .. } | TelegramError::NotLoggedIn(_))) => {
            Checked::Ended(e.to_string())
        }
        Err(e) => Checked::Unknown(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use tl::Identifiable;

    use super::*;
    use crate::telegram::tl::{container, read_back, through_the_wire};

    const CALL: CallRef = CallRef { id: 0x1122_3344_5566, access_hash: -42 };

    #[test]
    fn join_is_as_self_unmuted_with_our_json() {
        let json = r#"{"ufrag":"u","pwd":"p","fingerprints":[],"ssrc":5,"ssrc-groups":[]}"#;
        let req = join(CALL, json.into(), Some("hash".into()), None, false);
        assert_eq!(tl::functions::phone::JoinGroupCall::CONSTRUCTOR_ID, 0x8fb5_3057, "phone.joinGroupCall#8fb53057");
        let back = read_back(&req);
        assert_eq!(
            back,
            tl::functions::phone::JoinGroupCall {
                muted: false,
                video_stopped: true,
                call: tl::enums::InputGroupCall::Call(tl::types::InputGroupCall { id: CALL.id, access_hash: -42 }),
                join_as: tl::enums::InputPeer::PeerSelf,
                invite_hash: Some("hash".into()),
                public_key: None,
                block: None,
                params: tl::enums::DataJson::Json(tl::types::DataJson { data: json.into() }),
            }
        );
    }

    #[test]
    fn joining_as_a_channel_muted_says_so() {
        let channel: tl::enums::InputPeer = tl::types::InputPeerChannel { channel_id: 77, access_hash: 78 }.into();
        let back = read_back(&join(CALL, "{}".into(), None, Some(channel.clone()), true));
        assert!(back.muted && back.video_stopped);
        assert_eq!(back.join_as, channel);
        assert_eq!(back.invite_hash, None);
    }

    #[test]
    fn call_management_requests_read_back() {
        let page = read_back(&participants(CALL, "next", 5000));
        assert_eq!((page.offset.as_str(), page.limit, page.call), ("next", 1000, CALL.input()));
        assert!(page.ids.is_empty() && page.sources.is_empty(), "every participant, not a lookup");
        let peer: tl::enums::InputPeer = tl::types::InputPeerChat { chat_id: 4242 }.into();
        let created = read_back(&create_call(peer.clone(), 99));
        assert_eq!((created.peer, created.random_id, created.rtmp_stream), (peer, 99, false));
        assert_eq!(read_back(&discard_call(CALL)).call, CALL.input());
        let muted = read_back(&set_muted(CALL, tl::enums::InputPeer::PeerSelf, true));
        assert_eq!((muted.muted, muted.volume), (Some(true), None));
        assert_eq!(read_back(&set_muted(CALL, tl::enums::InputPeer::PeerSelf, false)).muted, Some(false));
    }

    #[test]
    fn leave_and_check_carry_our_source_as_a_signed_int() {
        let ssrc = 0x9000_0001u32; // above i32::MAX: sent as its two's complement
        let leave = read_back(&leave(CALL, ssrc));
        assert_eq!(leave.source, ssrc as i32);
        assert_eq!(leave.call, CALL.input());
        let check = read_back(&check(CALL, 7));
        assert_eq!(check.sources, vec![7]);
        let full = read_back(&full_channel(1185324811, 99));
        assert_eq!(full.channel, tl::types::InputChannel { channel_id: 1185324811, access_hash: 99 }.into());
        assert_eq!(read_back(&full_chat(4242)).chat_id, 4242);
    }

    fn updates(list: Vec<tl::enums::Update>) -> tl::enums::Updates {
        let (list, _) = through_the_wire(&container(list, vec![]));
        container(list, vec![])
    }

    fn connection(presentation: bool, data: &str) -> tl::enums::Update {
        tl::types::UpdateGroupCallConnection { presentation, params: tl::types::DataJson { data: data.into() }.into() }
            .into()
    }

    #[test]
    fn the_transport_comes_from_the_audio_connection_update() {
        let u = updates(vec![connection(true, "{\"screen\":1}"), connection(false, "{\"transport\":{}}")]);
        assert_eq!(transport_of(&u).unwrap(), "{\"transport\":{}}");
        let short: tl::enums::Updates = tl::types::UpdateShort { update: connection(false, "{}"), date: 0 }.into();
        assert_eq!(transport_of(&short).unwrap(), "{}");
        let err = transport_of(&updates(vec![])).unwrap_err();
        assert!(err.to_string().contains("no updateGroupCallConnection"), "{err}");
        assert!(transport_of(&tl::enums::Updates::TooLong).is_err());
    }

    #[test]
    fn keep_alive_results_are_read() {
        assert_eq!(checked(Ok(vec![5]), 5), Checked::Joined);
        assert!(matches!(checked(Ok(vec![]), 5), Checked::Rejoin(_)));
        let rpc = |name: &str| crate::telegram::error::refusal("phone.checkGroupCall", 400, name, None);
        assert!(matches!(checked(Err(rpc("GROUPCALL_SSRC_DUPLICATE_MUCH")), 5), Checked::Rejoin(_)));
        assert!(matches!(checked(Err(rpc("GROUPCALL_INVALID")), 5), Checked::Ended(_)));
        assert!(matches!(checked(Err(rpc("CHANNEL_PRIVATE")), 5), Checked::Ended(_)));
        let net = TelegramError::Network { request: "phone.checkGroupCall", reason: "reset".into() };
        assert!(matches!(checked(Err(net), 5), Checked::Unknown(_)));
    }
}
