//! What a call hears: the streams Telegram's server forwards to us, one per speaking
//! participant, each under the SSRC its owner announced. Each stream keeps its packet
//! counters and whether its owner is speaking, read from the RFC 6464 audio level every
//! packet carries — nothing is decoded for that.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::rtp::Packet;

use super::jitter::extend_seq;
use serde::{Deserialize, Serialize};

/// Louder than this (in -dBov, RFC 6464's unit) is speech. Speech sits around -20 to
/// -35 dBov RMS; room noise and a muted microphone's comfort noise below -50.
pub const SPEAKING_LEVEL: u8 = 45;
/// Speaking lasts this long after the last loud packet, so the pauses between words
/// do not make the indicator flicker (Telegram's apps keep it for about as long).
pub const SPEAKING_HOLD: Duration = Duration::from_millis(1500);
/// A stream silent this long is forgotten (its owner left, or stopped sending).
pub const FORGET_AFTER: Duration = Duration::from_secs(30);

/// A change in who is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Speaking {
    pub ssrc: u32,
    pub speaking: bool,
}

/// Counters of one incoming stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundStats {
    pub ssrc: u32,
    pub packets: u64,
    /// Packets missing from the sequence (never arrived, or not yet).
    pub lost: u64,
    pub speaking: bool,
    /// The last audio level, in -dBov (127: silence).
    pub level: u8,
}

struct Incoming {
    packets: u64,
    /// Highest sequence number seen, extended past wrap-around.
    highest: Option<u64>,
    /// Packets the sequence expected: `highest - first + 1`.
    first: u64,
    last_at: Instant,
    level: u8,
    loud_until: Option<Instant>,
    speaking: bool,
}

impl Incoming {
    fn new(at: Instant) -> Self {
        Incoming { packets: 0, highest: None, first: 0, last_at: at, level: 127, loud_until: None, speaking: false }
    }

    fn lost(&self) -> u64 {
        self.highest.map_or(0, |h| (h - self.first + 1).saturating_sub(self.packets))
    }
}

/// Every stream one call hears.
#[derive(Default)]
pub struct Inbound {
    streams: HashMap<u32, Incoming>,
    packets: u64,
}

impl Inbound {
    /// Takes one packet heard at `at`; `level_ext` is the negotiated audio-level
    /// extension id. A change of speaking state, if the packet made one.
    pub fn on_packet(&mut self, at: Instant, packet: &Packet, level_ext: Option<u8>) -> Option<Speaking> {
        self.packets += 1;
        let ssrc = packet.header.ssrc;
        let s = self.streams.entry(ssrc).or_insert_with(|| Incoming::new(at));
        let seq = extend_seq(s.highest, packet.header.sequence_number);
        if s.highest.is_none() {
            s.first = seq;
        }
        s.highest = Some(s.highest.map_or(seq, |h| h.max(seq)));
        s.first = s.first.min(seq);
        s.packets += 1;
        s.last_at = at;
        let level =
            level_ext.and_then(|id| packet.header.get_extension(id)).and_then(|b| b.first().copied()).map(|b| b & 0x7f);
        if let Some(level) = level {
            s.level = level;
            if level <= SPEAKING_LEVEL {
                s.loud_until = Some(at + SPEAKING_HOLD);
                if !s.speaking {
                    s.speaking = true;
                    return Some(Speaking { ssrc, speaking: true });
                }
            }
        }
        None
    }

    /// Ends the speaking of streams quiet for [`SPEAKING_HOLD`] and forgets those silent
    /// for [`FORGET_AFTER`]: each change, through `f`.
    pub fn expire(&mut self, now: Instant, mut f: impl FnMut(Speaking)) {
        self.streams.retain(|&ssrc, s| {
            if s.speaking && s.loud_until.is_some_and(|t| t <= now) {
                s.speaking = false;
                f(Speaking { ssrc, speaking: false });
            }
            now.saturating_duration_since(s.last_at) < FORGET_AFTER
        });
    }

    /// When [`Inbound::expire`] has something to do next.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.streams
            .values()
            .map(|s| if s.speaking { s.loud_until.unwrap_or(s.last_at) } else { s.last_at + FORGET_AFTER })
            .min()
    }

    /// Packets heard since the call began, from every stream.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Each stream's counters, by SSRC.
    pub fn stats(&self) -> Vec<InboundStats> {
        let mut v: Vec<InboundStats> = self
            .streams
            .iter()
            .map(|(&ssrc, s)| InboundStats {
                ssrc,
                packets: s.packets,
                lost: s.lost(),
                speaking: s.speaking,
                level: s.level,
            })
            .collect();
        v.sort_by_key(|s| s.ssrc);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rtc::rtp::header::{EXTENSION_PROFILE_ONE_BYTE, Header};

    fn packet(ssrc: u32, seq: u16, level: u8) -> Packet {
        let mut header = Header { version: 2, ssrc, sequence_number: seq, ..Default::default() };
        header.extension = true;
        header.extension_profile = EXTENSION_PROFILE_ONE_BYTE;
        header.set_extension(1, Bytes::copy_from_slice(&[level])).unwrap();
        Packet { header, payload: Bytes::from_static(&[0xf8]) }
    }

    #[test]
    fn loud_packets_start_speaking_and_quiet_ends_it_after_the_hold() {
        let t0 = Instant::now();
        let mut inb = Inbound::default();
        assert_eq!(inb.on_packet(t0, &packet(7, 1, 127), Some(1)), None, "silence is not speech");
        let started = inb.on_packet(t0, &packet(7, 2, 30), Some(1));
        assert_eq!(started, Some(Speaking { ssrc: 7, speaking: true }));
        assert_eq!(inb.on_packet(t0, &packet(7, 3, 25), Some(1)), None, "once");
        // A quiet packet does not end it at once; the hold does.
        inb.on_packet(t0 + Duration::from_millis(500), &packet(7, 4, 90), Some(1));
        let mut changes = vec![];
        inb.expire(t0 + Duration::from_millis(1000), |c| changes.push(c));
        assert!(changes.is_empty());
        assert_eq!(inb.next_expiry(), Some(t0 + SPEAKING_HOLD));
        inb.expire(t0 + SPEAKING_HOLD, |c| changes.push(c));
        assert_eq!(changes, vec![Speaking { ssrc: 7, speaking: false }]);
        // Without a level (no extension negotiated) nothing is known.
        assert_eq!(inb.on_packet(t0, &packet(8, 1, 0), None), None);
    }

    #[test]
    fn losses_are_counted_across_wrap_around_and_silent_streams_are_forgotten() {
        let t0 = Instant::now();
        let mut inb = Inbound::default();
        for seq in [65_533u16, 65_534, 1, 2, 0] {
            inb.on_packet(t0, &packet(9, seq, 127), Some(1));
        }
        let s = &inb.stats()[0];
        assert_eq!((s.packets, s.lost), (5, 1), "65535 never came; 0 came late");
        inb.expire(t0 + FORGET_AFTER, |_| {});
        assert!(inb.stats().is_empty());
        assert_eq!(inb.packets(), 5);
    }
}
