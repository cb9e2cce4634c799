//! A receiver's jitter buffer over RTP sequence numbers: packets come out in order; one
//! that arrives behind a later one is put back in its place, and a gap is declared lost
//! only once the packet after it has waited the hold. Shared by the loopback (which
//! hears as Telegram's server would) and the host's listeners (recording, the mix).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How long a packet after a gap waits for the missing one. A packet may overtake the
/// one sent 20 ms before it by up to the path's jitter spread: 80 ms covers ±30 ms of
/// jitter with room, within what receivers' jitter buffers (NetEq) hold on such paths.
pub const JITTER_HOLD: Duration = Duration::from_millis(80);

/// A 16-bit RTP sequence number unwrapped to the one nearest `highest` (the highest
/// seen so far); the first starts one wrap up, so packets before it stay positive.
pub fn extend_seq(highest: Option<u64>, seq: u16) -> u64 {
    match highest {
        None => u64::from(seq) + (1 << 16),
        Some(hi) => {
            let d = i64::from(seq.wrapping_sub(hi as u16) as i16);
            (hi as i64 + d).max(0) as u64
        }
    }
}

/// What the buffer saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitterStats {
    /// Packets missing from the sequence (never arrived within the hold).
    pub lost: u64,
    /// Packets that arrived after their place was played, or twice.
    pub late: u64,
    /// Packets that arrived behind a later one and were put back in order.
    pub reordered: u64,
}

/// Packets `T` held by extended sequence number.
pub struct Jitter<T> {
    held: BTreeMap<u64, (T, Instant)>,
    /// The extended sequence number to release next, and the highest seen.
    next: Option<u64>,
    highest: Option<u64>,
    stats: JitterStats,
}

impl<T> Default for Jitter<T> {
    fn default() -> Self {
        Jitter { held: BTreeMap::new(), next: None, highest: None, stats: JitterStats::default() }
    }
}

impl<T> Jitter<T> {
    /// Takes a packet with RTP sequence number `seq` that arrived at `arrived`; false
    /// if it came too late (or twice) and was dropped.
    pub fn push(&mut self, seq: u16, item: T, arrived: Instant) -> bool {
        let ext = extend_seq(self.highest, seq);
        if self.highest.is_some_and(|hi| ext < hi) {
            self.stats.reordered += 1;
        }
        self.highest = Some(self.highest.map_or(ext, |hi| hi.max(ext)));
        if self.next.is_some_and(|next| ext < next) || self.held.contains_key(&ext) {
            self.stats.late += 1;
            return false;
        }
        self.held.insert(ext, (item, arrived));
        true
    }

    /// Hands out held packets in sequence through `f(packet, arrived, missing)`: the
    /// next one as soon as it is there; past a gap, once the packet after it has waited
    /// [`JITTER_HOLD`] by `now` — `missing` packets were lost just before it.
    pub fn release(&mut self, now: Instant, mut f: impl FnMut(T, Instant, u64)) {
        while let Some((&first, (_, arrived))) = self.held.first_key_value() {
            let next = self.next.unwrap_or(first);
            if first != next && now < *arrived + JITTER_HOLD {
                break;
            }
            let Some((_, (item, arrived))) = self.held.pop_first() else { break };
            let missing = first - next;
            self.stats.lost += missing;
            self.next = Some(first + 1);
            f(item, arrived, missing);
        }
    }

    /// When the packet waiting longest will be released, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.first_key_value().map(|(_, (_, arrived))| *arrived + JITTER_HOLD)
    }

    /// Packets held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn released(j: &mut Jitter<u16>, now: Instant) -> Vec<(u16, u64)> {
        let mut out = vec![];
        j.release(now, |p, _, missing| out.push((p, missing)));
        out
    }

    #[test]
    fn packets_come_out_in_order_and_a_gap_waits_for_the_hold() {
        let t0 = Instant::now();
        let mut j = Jitter::default();
        j.push(65_535, 65_535, t0);
        assert_eq!(released(&mut j, t0), vec![(65_535, 0)]);
        j.push(1, 1, t0); // 0 is missing
        assert!(released(&mut j, t0).is_empty(), "waits for 0");
        j.push(0, 0, t0 + Duration::from_millis(10));
        assert_eq!(released(&mut j, t0), vec![(0, 0), (1, 0)], "across the wrap, in order");
        assert_eq!(j.stats().reordered, 1);
        j.push(4, 4, t0);
        assert_eq!(j.next_due(), Some(t0 + JITTER_HOLD));
        assert_eq!(released(&mut j, t0 + JITTER_HOLD), vec![(4, 2)], "2 and 3 lost");
        assert!(!j.push(3, 3, t0), "too late");
        assert_eq!(j.stats(), JitterStats { lost: 2, late: 1, reordered: 2 });
    }
}
