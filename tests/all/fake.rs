//! A fake Telegram behind the MTProto side's `Rpc` seam. It reads every request back
//! from its TL bytes (as Telegram would), answers with TL bytes built from grammers'
//! types, remembers what it saw for the tests to check, and terminates media on the
//! loopback. Two of them stand in for the user account and the bot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use grammers_mtsender::{InvocationError, RpcError};
use grammers_session::types::{PeerAuth, PeerId, PeerRef};
use grammers_tl_types::{self as tl, Deserializable, Identifiable, Serializable};
use wasmcalls::telegram::Telegram;
use wasmcalls::telegram::loopback::updates as samples;
use wasmcalls::telegram::loopback::{Loopback, LoopbackOptions};
use wasmcalls::telegram::mtproto::rpc::Rpc;
use wasmcalls::telegram::mtproto::{Mtproto, MtprotoOptions};
use wasmcalls::telegram::tl::CallRef;
use wasmcalls::transport::JoinParams;

use crate::answers;
use crate::support::*;

pub const ME: i64 = 5_000_001;
/// A supergroup with a voice chat (`-100` + its bare id).
pub const CHANNEL: i64 = 1_185_324_811;
pub const CHAT: i64 = -1_001_185_324_811;
pub const CHANNEL_HASH: i64 = 0x5eed;
pub const CALL: CallRef = CallRef { id: 4_000_001, access_hash: 4_000_002 };
/// A basic group with a voice chat, and a supergroup without one.
pub const BASIC: i64 = 4242;
pub const BASIC_CALL: CallRef = CallRef { id: 4_000_003, access_hash: 4_000_004 };
/// The member `channels.getParticipant` knows, as an administrator.
pub const ADMIN: i64 = 424_242;
pub const QUIET_CHANNEL: i64 = 1_000_000_007;
pub const QUIET: i64 = -1_001_000_000_007;
/// The call a `phone.createGroupCall` starts in QUIET.
pub const QUIET_CALL: CallRef = CallRef { id: 4_000_005, access_hash: 4_000_006 };

/// What the fake Telegram saw, and how it will answer.
#[derive(Default)]
pub struct FakeState {
    pub joins: Vec<tl::functions::phone::JoinGroupCall>,
    pub leaves: Vec<tl::functions::phone::LeaveGroupCall>,
    pub checks: Vec<tl::functions::phone::CheckGroupCall>,
    pub full_channels: Vec<tl::functions::channels::GetFullChannel>,
    /// Transport JSON handed out per source, so a rejoin gets the same one.
    pub transports: HashMap<i32, String>,
    /// Sources the calls still list (cleared to make the keep-alive rejoin).
    pub sources: Vec<i32>,
    /// Replaces the next join answer.
    pub next_join: Option<tl::enums::Updates>,
    /// Refuses the next join with this RPC error (code, message).
    pub refuse_join: Option<(i32, &'static str)>,
    /// Chat and call management, as asked.
    pub created: Vec<tl::functions::phone::CreateGroupCall>,
    pub discarded: Vec<tl::functions::phone::DiscardGroupCall>,
    pub mutes: Vec<tl::functions::phone::EditGroupCallParticipant>,
    pub pages: Vec<tl::functions::phone::GetGroupParticipants>,
    /// Chatting, as asked (of the bot's fake).
    pub sent: Vec<tl::functions::messages::SendMessage>,
    pub edits: Vec<tl::functions::messages::EditMessage>,
    pub answers: Vec<tl::functions::messages::SetBotCallbackAnswer>,
    pub members: Vec<tl::functions::channels::GetParticipant>,
    pub fetched: Vec<tl::functions::channels::GetMessages>,
    pub file_parts: Vec<tl::functions::upload::GetFile>,
    /// Refuses the next `messages.sendMessage` with this RPC error.
    pub refuse_send: Option<(i32, &'static str)>,
    /// Messages `channels.getMessages` finds, with their documents' bytes by document id.
    pub messages: HashMap<i32, tl::enums::Message>,
    pub files: HashMap<i64, Vec<u8>>,
    pub last_sent: i32,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub loopback: Loopback,
    pub state: Arc<Mutex<FakeState>>,
    /// Bumped on every request, so a test can await what the fake saw.
    pub requests: tokio::sync::watch::Sender<u64>,
}

impl FakeTelegram {
    pub fn new() -> FakeTelegram {
        FakeTelegram {
            loopback: Loopback::new(LoopbackOptions::default()).unwrap(),
            state: Arc::default(),
            requests: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn seen<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Waits until what the fake saw satisfies `pred`.
    pub async fn until(&self, pred: impl Fn(&FakeState) -> bool) {
        let mut rx = self.requests.subscribe();
        tokio::time::timeout(PATIENCE, async {
            while !self.seen(|s| pred(s)) {
                rx.changed().await.expect("the fake lives as long as the test");
            }
        })
        .await
        .expect("the fake Telegram saw it in time");
    }

    async fn answer(&self, id: u32, body: &[u8]) -> Result<Vec<u8>, InvocationError> {
        use tl::functions::{channels, messages, phone};
        Ok(match id {
            channels::GetFullChannel::CONSTRUCTOR_ID => {
                let req = channels::GetFullChannel::from_bytes(body).expect("getFullChannel parses");
                self.seen(|s| s.full_channels.push(req.clone()));
                let tl::enums::InputChannel::Channel(c) = &req.channel else {
                    return Err(rpc(400, "CHANNEL_INVALID"));
                };
                if c.access_hash != CHANNEL_HASH {
                    return Err(rpc(400, "CHANNEL_INVALID"));
                }
                let created = self.seen(|s| !s.created.is_empty());
                let call = match c.channel_id {
                    CHANNEL => Some(CALL.input()),
                    QUIET_CHANNEL if created => Some(QUIET_CALL.input()),
                    _ => None,
                };
                answers::full(answers::channel_full(c.channel_id, call)).to_bytes()
            }
            messages::GetFullChat::CONSTRUCTOR_ID => {
                let req = messages::GetFullChat::from_bytes(body).expect("getFullChat parses");
                answers::full(answers::chat_full(req.chat_id, (req.chat_id == BASIC).then(|| BASIC_CALL.input())))
                    .to_bytes()
            }
            phone::JoinGroupCall::CONSTRUCTOR_ID => {
                let req = phone::JoinGroupCall::from_bytes(body).expect("joinGroupCall parses");
                let tl::enums::DataJson::Json(params) = &req.params;
                let ssrc = JoinParams::parse(&params.data).expect("the join JSON is ours").ssrc;
                let chat = if req.call == CALL.input() {
                    CHAT
                } else if req.call == QUIET_CALL.input() {
                    QUIET
                } else {
                    -BASIC
                };
                self.seen(|s| s.joins.push(req.clone()));
                if let Some((code, message)) = self.seen(|s| s.refuse_join.take()) {
                    return Err(rpc(code, message));
                }
                if let Some(answer) = self.seen(|s| s.next_join.take()) {
                    return Ok(answer.to_bytes());
                }
                let known = self.seen(|s| s.transports.get(&ssrc).cloned());
                let transport = match known {
                    Some(t) => t,
                    None => {
                        let t = self.loopback.join_json(chat, &params.data).await.expect("the loopback answers");
                        self.seen(|s| s.transports.insert(ssrc, t.clone()));
                        t
                    }
                };
                self.seen(|s| s.sources.push(ssrc));
                updates(vec![answers::connection(&transport)]).to_bytes()
            }
            phone::LeaveGroupCall::CONSTRUCTOR_ID => {
                let req = phone::LeaveGroupCall::from_bytes(body).expect("leaveGroupCall parses");
                self.seen(|s| {
                    s.sources.retain(|x| *x != req.source);
                    s.leaves.push(req.clone());
                });
                let chat = if req.call == CALL.input() { CHAT } else { -BASIC };
                self.loopback.leave(chat, req.source as u32).await.unwrap();
                updates(vec![]).to_bytes()
            }
            phone::CheckGroupCall::CONSTRUCTOR_ID => {
                let req = phone::CheckGroupCall::from_bytes(body).expect("checkGroupCall parses");
                let listed: Vec<i32> = self.seen(|s| {
                    s.checks.push(req.clone());
                    req.sources.iter().copied().filter(|x| s.sources.contains(x)).collect()
                });
                listed.to_bytes()
            }
            phone::CreateGroupCall::CONSTRUCTOR_ID => {
                let req = phone::CreateGroupCall::from_bytes(body).expect("createGroupCall parses");
                self.seen(|s| s.created.push(req));
                updates(vec![]).to_bytes()
            }
            phone::DiscardGroupCall::CONSTRUCTOR_ID => {
                let req = phone::DiscardGroupCall::from_bytes(body).expect("discardGroupCall parses");
                self.seen(|s| s.discarded.push(req));
                updates(vec![]).to_bytes()
            }
            phone::EditGroupCallParticipant::CONSTRUCTOR_ID => {
                let req = phone::EditGroupCallParticipant::from_bytes(body).expect("editGroupCallParticipant parses");
                self.seen(|s| s.mutes.push(req));
                updates(vec![]).to_bytes()
            }
            phone::GetGroupParticipants::CONSTRUCTOR_ID => {
                let req = phone::GetGroupParticipants::from_bytes(body).expect("getGroupParticipants parses");
                self.seen(|s| s.pages.push(req.clone()));
                // Three people; pages of `limit`, the offset an index as a string.
                let all = [1001, 1002, 1003];
                let from: usize = req.offset.parse().unwrap_or(0);
                let page: Vec<_> = all.iter().skip(from).take(req.limit as usize).copied().collect();
                let next = from + page.len();
                tl::enums::phone::GroupParticipants::Participants(tl::types::phone::GroupParticipants {
                    count: all.len() as i32,
                    participants: page.iter().map(|&u| samples::participant(u, u as u32, false)).collect(),
                    next_offset: if next < all.len() { next.to_string() } else { String::new() },
                    chats: vec![],
                    users: vec![],
                    version: 1,
                })
                .to_bytes()
            }
            messages::SendMessage::CONSTRUCTOR_ID => {
                let req = messages::SendMessage::from_bytes(body).expect("sendMessage parses");
                self.seen(|s| s.sent.push(req.clone()));
                if let Some((code, message)) = self.seen(|s| s.refuse_send.take()) {
                    return Err(rpc(code, message));
                }
                let id = self.seen(|s| {
                    s.last_sent += 1;
                    s.last_sent
                });
                updates(vec![tl::types::UpdateMessageId { id, random_id: req.random_id }.into()]).to_bytes()
            }
            messages::EditMessage::CONSTRUCTOR_ID => {
                let req = messages::EditMessage::from_bytes(body).expect("editMessage parses");
                self.seen(|s| s.edits.push(req));
                updates(vec![]).to_bytes()
            }
            messages::SetBotCallbackAnswer::CONSTRUCTOR_ID => {
                let req = messages::SetBotCallbackAnswer::from_bytes(body).expect("setBotCallbackAnswer parses");
                self.seen(|s| s.answers.push(req));
                true.to_bytes()
            }
            channels::GetParticipant::CONSTRUCTOR_ID => {
                let req = channels::GetParticipant::from_bytes(body).expect("getParticipant parses");
                self.seen(|s| s.members.push(req.clone()));
                let user = match &req.participant {
                    tl::enums::InputPeer::UserFromMessage(u) => u.user_id,
                    tl::enums::InputPeer::User(u) => u.user_id,
                    _ => return Err(rpc(400, "PARTICIPANT_ID_INVALID")),
                };
                if user != ADMIN {
                    return Err(rpc(400, "USER_NOT_PARTICIPANT"));
                }
                let admin = tl::types::ChannelParticipantAdmin {
                    can_edit: false,
                    is_self: false,
                    user_id: user,
                    inviter_id: None,
                    promoted_by: 1,
                    date: 0,
                    admin_rights: answers::admin_rights(),
                    rank: None,
                };
                tl::enums::channels::ChannelParticipant::Participant(tl::types::channels::ChannelParticipant {
                    participant: admin.into(),
                    chats: vec![],
                    users: vec![],
                })
                .to_bytes()
            }
            channels::GetMessages::CONSTRUCTOR_ID => {
                let req = channels::GetMessages::from_bytes(body).expect("getMessages parses");
                self.seen(|s| s.fetched.push(req.clone()));
                let found: Vec<tl::enums::Message> = req
                    .id
                    .iter()
                    .filter_map(|m| match m {
                        tl::enums::InputMessage::Id(i) => self.seen(|s| s.messages.get(&i.id).cloned()),
                        _ => None,
                    })
                    .collect();
                tl::enums::messages::Messages::ChannelMessages(tl::types::messages::ChannelMessages {
                    inexact: false,
                    pts: 1,
                    count: found.len() as i32,
                    offset_id_offset: None,
                    messages: found,
                    topics: vec![],
                    chats: vec![],
                    users: vec![],
                })
                .to_bytes()
            }
            tl::functions::upload::GetFile::CONSTRUCTOR_ID => {
                let req = tl::functions::upload::GetFile::from_bytes(body).expect("getFile parses");
                self.seen(|s| s.file_parts.push(req.clone()));
                let tl::enums::InputFileLocation::InputDocumentFileLocation(loc) = &req.location else {
                    return Err(rpc(400, "LOCATION_INVALID"));
                };
                let Some(bytes) = self.seen(|s| s.files.get(&loc.id).cloned()) else {
                    return Err(rpc(400, "FILE_ID_INVALID"));
                };
                if req.offset % req.limit as i64 != 0 || (1 << 20) % req.limit != 0 {
                    return Err(rpc(400, "LIMIT_INVALID"));
                }
                let from = (req.offset as usize).min(bytes.len());
                let to = (from + req.limit as usize).min(bytes.len());
                tl::enums::upload::File::File(tl::types::upload::File {
                    r#type: tl::types::storage::FileUnknown {}.into(),
                    mtime: 0,
                    bytes: bytes[from..to].to_vec(),
                })
                .to_bytes()
            }
            other => return Err(rpc(400, &format!("FAKE_DOES_NOT_KNOW_{other:08x}"))),
        })
    }
}

impl Rpc for FakeTelegram {
    async fn invoke<R>(&self, request: &R) -> Result<R::Return, InvocationError>
    where
        R: tl::RemoteCall + Send + Sync,
    {
        let bytes = request.to_bytes();
        let id = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        let answer = self.answer(id, &bytes[4..]).await;
        self.requests.send_modify(|n| *n += 1);
        let answer = answer?;
        Ok(R::Return::from_bytes(&answer).expect("the fake's answer parses as the request's return type"))
    }

    async fn peer_ref(&self, peer: PeerId) -> Result<Option<PeerRef>, InvocationError> {
        let known = [PeerId::channel(CHANNEL).unwrap(), PeerId::channel(QUIET_CHANNEL).unwrap()];
        Ok(known.contains(&peer).then(|| PeerRef { id: peer, auth: PeerAuth::from_hash(CHANNEL_HASH) }))
    }
}

pub fn rpc(code: i32, message: &str) -> InvocationError {
    InvocationError::Rpc(RpcError::from(tl::types::RpcError { error_code: code, error_message: message.into() }))
}

pub fn updates(list: Vec<tl::enums::Update>) -> tl::enums::Updates {
    answers::updates(list, vec![])
}

/// Updates as Telegram pushes them: through their bytes, then into the MTProto side.
pub async fn push(tg: &Mtproto<FakeTelegram>, list: Vec<tl::enums::Update>, chats: Vec<tl::enums::Chat>) {
    let (updates, chats) = answers::through_the_wire(&answers::updates(list, chats));
    tg.feed(&updates, &chats).await;
}

pub fn options(check_every: Duration) -> MtprotoOptions {
    MtprotoOptions { check_interval: check_every, ..Default::default() }
}
