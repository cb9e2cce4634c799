//! One call's mix played into another: a relay of a stage into other groups. A thread
//! takes the packets the `from` call hears (through the same queue a recorder uses)
//! and mixes them as [`Mix`] does; the `to` call's stream pulls its frames from that
//! mix ([`BridgeInput`], a live source), each time the next 20 ms, starting [`DELAY`]
//! behind the stage — so the two sides share one clock and no frame is skipped or
//! repeated. Silence when the stage is quiet; the end when the `from` call goes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::jitter::Jitter;
use super::loss::FRAME;
use super::record::RecordTap;
use super::record::mix::{CHANNELS, Timeline, Voices};
use super::source::{Frame, Input, Opened, PcmInput, SourceError, SourceInfo};
use crate::transport::tap::Heard;

/// How far behind the stage the `to` call plays: what the jitter buffer may hold back
/// (its hold, for a packet after a gap) fits inside it. With the `to` call's encoding
/// ahead, the bridge adds about 100 ms.
pub const DELAY: Duration = Duration::from_millis(80);

struct Shared {
    /// The mix so far; the bridge thread decodes outside the lock and only places here.
    mix: Timeline,
    origin: Instant,
    /// Where the `to` side has taken up to is set on its first pull.
    started: bool,
    /// The `from` call is gone.
    ended: bool,
}

/// Starts a bridge: the tap for the `from` call, and the source for the `to` call.
pub fn start() -> Result<(RecordTap, Opened), String> {
    let (tap, heard) = RecordTap::new();
    let origin = Instant::now();
    let shared = Arc::new(Mutex::new(Shared { mix: Timeline::default(), origin, started: false, ended: false }));
    let relay_shared = shared.clone();
    std::thread::Builder::new()
        .name("wasmcalls-bridge".into())
        .spawn(move || relay(heard, Voices::new(origin), relay_shared))
        .map_err(|e| format!("cannot start a bridge thread: {e}"))?;
    let info = SourceInfo {
        container: "bridge".into(),
        codec: "pcm".into(),
        sample_rate: 48_000,
        channels: 2,
        live: true,
        pass_through: false,
        shared: false,
    };
    let input = BridgeInput { shared };
    Ok((tap, Opened { input: Input::Pcm(Box::new(input)), info, duration: None, start: 0 }))
}

/// The bridge thread: packets through their jitter buffers into the mix, until the
/// `from` call's tap is dropped or nobody pulls from the mix any more.
fn relay(heard: Receiver<Heard>, mut voices: Voices, shared: Arc<Mutex<Shared>>) {
    let mut jitters: HashMap<u32, Jitter<Heard>> = HashMap::new();
    loop {
        let due = jitters.values().filter_map(Jitter::next_due).min();
        let wait = due.map_or(Duration::from_millis(100), |d| d.saturating_duration_since(Instant::now()));
        match heard.recv_timeout(wait) {
            Ok(h) => {
                let (ssrc, seq, at) = (h.packet.header.ssrc, h.packet.header.sequence_number, h.at);
                jitters.entry(ssrc).or_default().push(seq, h, at);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // The `to` stream holds the other reference: gone, the bridge is over.
        if Arc::strong_count(&shared) == 1 {
            return;
        }
        let now = Instant::now();
        for (ssrc, jitter) in &mut jitters {
            jitter.release(now, |h, at, missing| {
                let payload = &h.packet.payload;
                voices.decode(*ssrc, h.packet.header.timestamp, at, payload, missing, |at, pcm| {
                    shared.lock().mix.place(at, pcm)
                });
            });
        }
    }
    shared.lock().ended = true;
}

/// The `to` call's source: the next 20 ms of the mix at each pull.
struct BridgeInput {
    shared: Arc<Mutex<Shared>>,
}

impl PcmInput for BridgeInput {
    fn channels(&self) -> u8 {
        CHANNELS as u8
    }

    fn next_frame(&mut self, out: &mut [i16]) -> Result<Frame, SourceError> {
        let mut s = self.shared.lock();
        if s.ended {
            return Ok(Frame::End);
        }
        if !s.started {
            // Begin DELAY behind the stage; until the bridge is that old, silence.
            let now = (Instant::now().saturating_duration_since(s.origin).as_micros() as u64) * 48 / 1000;
            let delay = DELAY.as_millis() as u64 * 48;
            if now < delay {
                out.fill(0);
                return Ok(Frame::Audio(FRAME));
            }
            s.started = true;
            s.mix.take_until(now - delay, |_| {});
        }
        let until = s.mix.taken() + FRAME as u64;
        let mut i = 0;
        s.mix.take_until(until, |x| {
            if let Some(o) = out.get_mut(i) {
                *o = x;
            }
            i += 1;
        });
        Ok(Frame::Audio(FRAME))
    }
}
