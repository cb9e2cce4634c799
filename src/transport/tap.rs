//! A tap on the RTP crossing a peer connection, beneath the tracks `rtc` knows of.
//!
//! Telegram's media server forwards every speaking participant's audio over our one
//! connection, each stream under the SSRC its owner announced in a participants
//! update — SSRCs no SDP ever names. `rtc` binds at most one undeclared SSRC to an
//! m-line and drops the rest; Telegram's native clients (tgcalls) demultiplex by SSRC
//! below their media channels, and so does the [`Tap`]: it sits in the interceptor
//! chain, where every packet passes decrypted whatever its SSRC, and hands RTP to its
//! owner. The host *captures* what it hears there; the loopback *injects* what its
//! simulated speakers say, which SRTP then encrypts like any packet of the connection.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use rtc::interceptor::{AttributedPacket, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;
use rtc::shared::{TransportContext, TransportProtocol};

/// Captured packets kept for the owner: ~2.5 s of five speakers. The host drains after
/// every datagram it feeds, so this bounds only a stalled owner.
const HEARD_CAP: usize = 256;
/// Packets waiting to be sent: ~1 s of five speakers, should the peer not flush.
const INJECT_CAP: usize = 256;

/// One RTP packet heard, with when it arrived.
pub struct Heard {
    pub at: Instant,
    pub packet: rtc::rtp::Packet,
}

#[derive(Default)]
struct Shared {
    heard: Mutex<VecDeque<Heard>>,
    injected: Mutex<VecDeque<TaggedPacket>>,
    /// Packets dropped because a queue was full.
    dropped: AtomicU64,
}

impl Shared {
    fn push<T>(&self, queue: &Mutex<VecDeque<T>>, cap: usize, item: T) {
        let mut q = queue.lock();
        if q.len() >= cap {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(item);
    }
}

/// The interceptor; [`Tap::capturing`] or [`Tap::injecting`] builds it with its handle.
pub struct Tap {
    shared: Arc<Shared>,
    /// Take incoming RTP out of the chain (the host) or let it pass (the loopback,
    /// whose recorder reads its client's track).
    capture: bool,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

/// The owner's side of a [`Tap`].
#[derive(Clone)]
pub struct TapHandle {
    shared: Arc<Shared>,
}

impl Tap {
    /// A tap that takes every incoming RTP packet for its owner.
    pub fn capturing() -> (Tap, TapHandle) {
        Tap::new(true)
    }

    /// A tap that lets incoming RTP pass and sends what its owner injects.
    pub fn injecting() -> (Tap, TapHandle) {
        Tap::new(false)
    }

    fn new(capture: bool) -> (Tap, TapHandle) {
        let shared = Arc::new(Shared::default());
        let tap = Tap { shared: shared.clone(), capture, reads: VecDeque::new(), writes: VecDeque::new() };
        (tap, TapHandle { shared })
    }
}

impl TapHandle {
    /// Hands every packet heard since the last call to `f`, oldest first.
    pub fn drain(&self, mut f: impl FnMut(Heard)) {
        // Swap the queue out so `f` runs without the lock.
        let mut taken = std::mem::take(&mut *self.shared.heard.lock());
        for h in taken.drain(..) {
            f(h);
        }
        // Hand the allocation back for the next batch.
        let mut q = self.shared.heard.lock();
        if q.is_empty() {
            *q = taken;
        }
    }

    /// Queues `packet` to be sent to `peer` from `local` on the peer's next flush.
    pub fn inject(&self, local: SocketAddr, peer: SocketAddr, packet: rtc::rtp::Packet) {
        let tagged = TaggedPacket {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: local,
                peer_addr: peer,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: AttributedPacket::new(Packet::Rtp(packet)),
        };
        self.shared.push(&self.shared.injected, INJECT_CAP, tagged);
    }

    /// Packets lost to a full queue since the tap was built.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for Tap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        match msg.message.packet {
            Packet::Rtp(packet) if self.capture => {
                self.shared.push(&self.shared.heard, HEARD_CAP, Heard { at: msg.now, packet });
            }
            _ => self.reads.push_back(msg),
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        pop_front(&mut self.reads)
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        // The chain polls for writes on every flush of the peer: injected packets leave
        // on the flush after they were queued.
        pop_front(&mut self.writes).or_else(|| self.shared.injected.lock().pop_front())
    }
}

/// Pops the front of one of the tap's queues and, once it is empty, gives back what it
/// grew to. The queues live as long as the call, and a `VecDeque` keeps its capacity:
/// four packets from the first push, ~1.8 KiB a call held empty. A packet passing
/// through then costs an allocation, as in `rtc`'s own queues (patched the same way in
/// `vendor/rtc`).
fn pop_front(queue: &mut VecDeque<TaggedPacket>) -> Option<TaggedPacket> {
    let front = queue.pop_front();
    if queue.is_empty() && queue.capacity() > 0 {
        queue.shrink_to_fit();
    }
    front
}

impl Interceptor for Tap {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

/// Where the tap sits in the chain: after the stock interceptors on the way in, so
/// receiver reports still count what it captures; before them on the way out.
pub const SLOT: rtc::interceptor::Slot = rtc::interceptor::Slot::Custom(20_000);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_queue_gives_back_its_room_and_keeps_its_order() {
        let (mut tap, handle) = Tap::capturing();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // A burst: five packets written before the chain flushes.
        for seq in 0..5u16 {
            let mut packet = rtc::rtp::Packet::default();
            packet.header.sequence_number = seq;
            handle.inject(addr, addr, packet);
            let injected = handle.shared.injected.lock().pop_front().unwrap();
            tap.handle_write(injected).unwrap();
        }
        assert!(tap.writes.capacity() >= 5);
        let order: Vec<u16> = std::iter::from_fn(|| tap.poll_write())
            .map(|p| match p.message.packet {
                Packet::Rtp(rtp) => rtp.header.sequence_number,
                _ => unreachable!("only RTP was written"),
            })
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4]);
        assert_eq!(tap.writes.capacity(), 0, "the burst's room is given back");
    }
}
