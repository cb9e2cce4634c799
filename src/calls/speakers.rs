//! Who is behind each stream a call hears, and who is speaking.
//!
//! The media plane knows streams by SSRC; plugins know people by id. Participants
//! announce their SSRC (`source`) when they join, so most are known before they
//! speak; one that is not — joined before us, or announced in an update we missed — is
//! looked up by its source, as Telegram's clients do (`phone.getGroupParticipants`
//! with `sources`). Speaking comes from the audio level; Telegram does not list it, so
//! pages of participants get it from here.

use std::collections::{HashMap, HashSet};

use crate::telegram::{ChatId, ParticipantChange, ParticipantPage};

#[derive(Default)]
struct Call {
    /// SSRC → the participant sending under it.
    owners: HashMap<u32, i64>,
    speaking: HashSet<i64>,
}

/// Per joined chat: sources and speakers.
#[derive(Default)]
pub struct Speakers {
    calls: HashMap<ChatId, Call>,
}

impl Speakers {
    /// Learns sources from participants joining and forgets those leaving; what the
    /// plugin must also hear (a leaver who was speaking stops speaking first).
    pub fn learn(&mut self, chat: ChatId, changes: &[ParticipantChange]) -> Vec<ParticipantChange> {
        let call = self.calls.entry(chat).or_default();
        let mut stopped = Vec::new();
        for change in changes {
            match change {
                ParticipantChange::Joined(p) if !p.is_self => {
                    call.owners.insert(p.source, p.peer);
                }
                ParticipantChange::Left(peer) | ParticipantChange::Muted(peer) => {
                    if call.speaking.remove(peer) {
                        stopped.push(ParticipantChange::StoppedSpeaking(*peer));
                    }
                    if matches!(change, ParticipantChange::Left(_)) {
                        call.owners.retain(|_, p| p != peer);
                    }
                }
                _ => {}
            }
        }
        stopped
    }

    /// Who sends under `ssrc` in `chat`, if known.
    pub fn owner(&self, chat: ChatId, ssrc: u32) -> Option<i64> {
        self.calls.get(&chat)?.owners.get(&ssrc).copied()
    }

    /// Records who sends under `ssrc` (learnt by asking).
    pub fn set_owner(&mut self, chat: ChatId, ssrc: u32, peer: i64) {
        self.calls.entry(chat).or_default().owners.insert(ssrc, peer);
    }

    /// `peer` started or stopped speaking: the change, unless it was already so.
    pub fn set_speaking(&mut self, chat: ChatId, peer: i64, speaking: bool) -> Option<ParticipantChange> {
        let call = self.calls.entry(chat).or_default();
        let changed = if speaking { call.speaking.insert(peer) } else { call.speaking.remove(&peer) };
        let change =
            if speaking { ParticipantChange::StartedSpeaking(peer) } else { ParticipantChange::StoppedSpeaking(peer) };
        changed.then_some(change)
    }

    /// The other participants of `chat`'s call we know of (by the sources they announced).
    pub fn participants(&self, chat: ChatId) -> Vec<i64> {
        let mut v: Vec<i64> = self.calls.get(&chat).map(|c| c.owners.values().copied().collect()).unwrap_or_default();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Who in `chat`'s call is speaking now, by id.
    pub fn speaking(&self, chat: ChatId) -> Vec<i64> {
        let mut v: Vec<i64> = self.calls.get(&chat).map(|c| c.speaking.iter().copied().collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Marks who on `page` is speaking now.
    pub fn overlay(&self, chat: ChatId, page: &mut ParticipantPage) {
        let Some(call) = self.calls.get(&chat) else { return };
        for p in &mut page.participants {
            p.speaking = call.speaking.contains(&p.peer);
        }
    }

    /// The call is gone.
    pub fn forget(&mut self, chat: ChatId) {
        self.calls.remove(&chat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::Participant;

    fn person(peer: i64, source: u32) -> Participant {
        Participant { peer, source, muted: false, speaking: false, volume: 100, is_self: false }
    }

    #[test]
    fn sources_are_learnt_from_joins_and_a_leaver_stops_speaking() {
        let mut s = Speakers::default();
        s.learn(1, &[ParticipantChange::Joined(person(42, 7))]);
        assert_eq!(s.owner(1, 7), Some(42));
        assert_eq!(s.set_speaking(1, 42, true), Some(ParticipantChange::StartedSpeaking(42)));
        assert_eq!(s.set_speaking(1, 42, true), None, "already speaking");
        let mut page = ParticipantPage { participants: vec![person(42, 7)], next_offset: None, total: 1 };
        s.overlay(1, &mut page);
        assert!(page.participants[0].speaking);
        assert_eq!(s.learn(1, &[ParticipantChange::Left(42)]), vec![ParticipantChange::StoppedSpeaking(42)]);
        assert_eq!(s.owner(1, 7), None);
    }
}
