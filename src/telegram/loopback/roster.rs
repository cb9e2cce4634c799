//! Who is in each of the loopback's calls: our own participants (one per join) and
//! simulated people joining, leaving and muting (`wasmcalls loopback participant …`).

use std::collections::HashMap;

use grammers_tl_types as tl;

use super::updates;
use crate::telegram::ChatId;
use crate::telegram::messages::{Participant, ParticipantPage};
use crate::telegram::tl::peer_of;

/// One participant of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// A user id, or the chat id of a channel spoken as.
    pub peer: i64,
    pub source: u32,
    pub muted: bool,
    /// Joined by us: which of the host's accounts (in [`super::LoopbackOptions::accounts`]'s order).
    pub account: Option<usize>,
}

impl Entry {
    /// As `updateGroupCallParticipants` lists it; `left` when it leaves.
    pub fn tl(&self, left: bool) -> tl::enums::GroupCallParticipant {
        updates::member(peer_of(self.peer), self.source, self.muted, left, self.account.is_some())
    }

    pub fn participant(&self) -> Participant {
        Participant {
            peer: self.peer,
            source: self.source,
            muted: self.muted,
            speaking: false,
            volume: 100,
            is_self: self.account.is_some(),
        }
    }
}

/// Every call's participants, in the order they joined.
#[derive(Default)]
pub(super) struct Roster {
    calls: HashMap<ChatId, Vec<Entry>>,
    /// Sources handed to simulated people (ours come from our joins).
    last_source: u32,
}

impl Roster {
    /// Adds (or, for the same peer, replaces) a participant.
    pub fn join(&mut self, chat: ChatId, entry: Entry) -> Entry {
        let list = self.calls.entry(chat).or_default();
        list.retain(|e| e.peer != entry.peer);
        list.push(entry.clone());
        entry
    }

    /// A simulated person joining with a source of their own.
    pub fn join_user(&mut self, chat: ChatId, user: i64, muted: bool) -> Entry {
        self.last_source += 1;
        let source = 0x5000_0000 + self.last_source;
        self.join(chat, Entry { peer: user, source, muted, account: None })
    }

    /// Removes `peer` from `chat`'s call: what it was.
    pub fn leave(&mut self, chat: ChatId, peer: i64) -> Option<Entry> {
        let list = self.calls.get_mut(&chat)?;
        let at = list.iter().position(|e| e.peer == peer)?;
        Some(list.remove(at))
    }

    /// Our participant with `source`, removed: where it was.
    pub fn leave_source(&mut self, source: u32) -> Option<(ChatId, Entry)> {
        for (chat, list) in &mut self.calls {
            if let Some(at) = list.iter().position(|e| e.account.is_some() && e.source == source) {
                return Some((*chat, list.remove(at)));
            }
        }
        None
    }

    /// Mutes or unmutes the participant `pred` picks: its new record, if it changed.
    pub fn set_muted(&mut self, chat: ChatId, muted: bool, pred: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let e = self.calls.get_mut(&chat)?.iter_mut().find(|e| pred(e))?;
        if e.muted == muted {
            return None;
        }
        e.muted = muted;
        Some(e.clone())
    }

    /// The participant of `chat`'s call sending under `source`.
    pub fn by_source(&self, chat: ChatId, source: u32) -> Option<Participant> {
        self.calls.get(&chat)?.iter().find(|e| e.source == source).map(Entry::participant)
    }

    /// Everyone leaves `chat`'s call (it ended, or we were removed).
    pub fn clear(&mut self, chat: ChatId) {
        self.calls.remove(&chat);
    }

    /// The calls the host's `account` is in: (chat, its source).
    pub fn ours(&self, account: usize) -> Vec<(ChatId, u32)> {
        let of = |e: &&Entry| e.account == Some(account);
        self.calls.iter().flat_map(|(c, l)| l.iter().filter(of).map(|e| (*c, e.source))).collect()
    }

    /// A page of `chat`'s participants from `offset` (an index, as Telegram's offset is
    /// an opaque string).
    pub fn page(&self, chat: ChatId, offset: Option<&str>, limit: u32) -> Result<ParticipantPage, String> {
        let list = self.calls.get(&chat).map(Vec::as_slice).unwrap_or_default();
        let from = match offset.filter(|o| !o.is_empty()) {
            None => 0,
            Some(o) => o.parse::<usize>().map_err(|_| format!("{o:?} is not an offset this call gave"))?,
        };
        let limit = limit.clamp(1, 1000) as usize;
        let participants: Vec<Participant> = list.iter().skip(from).take(limit).map(Entry::participant).collect();
        let next = from + participants.len();
        Ok(ParticipantPage {
            participants,
            next_offset: (next < list.len()).then(|| next.to_string()),
            total: list.len() as u32,
        })
    }
}
