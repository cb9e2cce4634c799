//! A shard: one OS thread that owns a set of calls and paces all of them.
//!
//! Each loop: send what is due, run peer timers, take commands, then use the slack
//! before the next deadline to encode frames ahead; then sleep on epoll until the
//! timerfd (next deadline) or a socket (ICE/DTLS/RTCP) wakes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::clock::{Timer, precise_timer_slack, thread_cpu_time};
use super::session::{Ctx, FRAME, Session};
use super::{Command, Control, MediaEvent, ShardReport};

const TIMER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
/// Calls are staggered over this many phases, 1 ms apart. Each phase is one wakeup
/// that sends its calls' frames back to back (~15 µs each), so a shard wakes at most
/// 1000 times a second however many calls it holds: per-call wakeups cost more in
/// context switches than the sends themselves.
const PHASE_SLOTS: usize = 20;
/// Visiting order for filling phases: stride 7 (coprime to 20) keeps the first few
/// calls far apart.
fn phase_order() -> impl Iterator<Item = usize> {
    (0..PHASE_SLOTS).map(|k| (k * 7) % PHASE_SLOTS)
}

pub struct Shard {
    pub poll: Poll,
    pub cmds: Receiver<Command>,
    pub events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    pub load: Arc<AtomicUsize>,
    pub totals: Arc<crate::media::stats::PacerTotals>,
}

impl Shard {
    pub fn run(mut self) -> ShardReport {
        precise_timer_slack();
        let timer = match Timer::new() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("pacer: cannot create timerfd: {e}");
                return ShardReport::default();
            }
        };
        if let Err(e) = self.poll.registry().register(
            &mut SourceFd(&std::os::fd::AsRawFd::as_raw_fd(&timer)),
            TIMER,
            Interest::READABLE,
        ) {
            tracing::error!("pacer: cannot register timerfd: {e}");
            return ShardReport::default();
        }
        let epoch = Instant::now();
        let mut sessions: Slab<Session> = Slab::new();
        let mut by_call = std::collections::HashMap::new();
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 2048];
        let mut phase_load = [0u32; PHASE_SLOTS];
        let mut encode_cost = EncodeCost::default();
        let cpu_start = thread_cpu_time();
        let mut report = ShardReport::default();
        let ctx = Ctx { events: &self.events, epoch, totals: &self.totals };

        'run: loop {
            let now = Instant::now();
            for (_, s) in sessions.iter_mut() {
                s.send_due(&ctx, now);
            }
            for (_, s) in sessions.iter_mut() {
                s.on_timer(&ctx, now);
            }

            loop {
                match self.cmds.try_recv() {
                    Ok(Command::Add { call, peer, connect_timeout, ready }) => {
                        let entry = sessions.vacant_entry();
                        let token = Token(entry.key());
                        if let Err(e) = peer.socket.set_nonblocking(true) {
                            let _ = ready.send(Err(format!("socket: {e}")));
                            continue;
                        }
                        let slot = phase_order().min_by_key(|&i| phase_load[i]).unwrap_or(0);
                        phase_load[slot] += 1;
                        let phase = FRAME / PHASE_SLOTS as u32 * slot as u32;
                        let mut s = Session::new(call, *peer, phase, connect_timeout, ready);
                        s.phase_slot = slot;
                        if let Err(e) = self.poll.registry().register(&mut s.socket, token, Interest::READABLE) {
                            tracing::error!(call, "pacer: cannot register socket: {e}");
                        }
                        // Kick ICE: the first checks leave on the next turn of the loop.
                        s.rtc_deadline = Some(Instant::now());
                        by_call.insert(call, entry.key());
                        entry.insert(s);
                        self.load.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Command::Control { call, control }) => {
                        let Some(s) = by_call.get(&call).and_then(|&k| sessions.get_mut(k)) else { continue };
                        let now = Instant::now();
                        match control {
                            Control::Play(stream) => s.play(&ctx, stream, now),
                            Control::Pause => s.pause(),
                            Control::Resume => s.resume(&ctx, now),
                            Control::Volume(v) => s.set_volume(v),
                            Control::Stop => s.stop(),
                        }
                    }
                    Ok(Command::Stats { call, reply }) => {
                        let stats = by_call.get(&call).and_then(|&k| sessions.get(k)).map(Session::stats);
                        let _ = reply.send(stats);
                    }
                    Ok(Command::Remove { call, reply }) => {
                        if let Some(k) = by_call.remove(&call) {
                            let mut s = sessions.remove(k);
                            phase_load[s.phase_slot] -= 1;
                            let _ = self.poll.registry().deregister(&mut s.socket);
                            s.close();
                            report.absorb(&s.stats());
                            self.load.fetch_sub(1, Ordering::Relaxed);
                        }
                        if let Some(reply) = reply {
                            let _ = reply.send(());
                        }
                    }
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }

            // Encode ahead while the next send is far enough away not to be delayed.
            loop {
                let now = Instant::now();
                let next_send = sessions.iter().filter_map(|(_, s)| s.next_deadline()).min();
                if next_send.is_some_and(|d| d.saturating_duration_since(now) < encode_cost.guard()) {
                    break;
                }
                let pick = sessions
                    .iter()
                    .filter(|(_, s)| s.wants_encode())
                    .min_by_key(|(_, s)| s.next_deadline().unwrap_or(now + FRAME * 10))
                    .map(|(k, _)| k);
                let Some(k) = pick else { break };
                let t0 = Instant::now();
                sessions[k].encode_one(&ctx);
                encode_cost.observe(t0.elapsed());
            }

            let wake = sessions.iter().filter_map(|(_, s)| s.wake_at()).min();
            let now = Instant::now();
            if wake.is_some_and(|w| w <= now) {
                continue;
            }
            if let Some(w) = wake {
                let _ = timer.arm(w);
            }
            // With nothing scheduled the thread sleeps until a command or datagram.
            if let Err(e) =
                self.poll.poll(&mut events, if wake.is_some() { None } else { Some(Duration::from_secs(1)) })
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                tracing::error!("pacer: poll failed: {e}");
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    TIMER => timer.drain(),
                    WAKER => {}
                    Token(k) => {
                        if let Some(s) = sessions.get_mut(k) {
                            s.on_readable(&ctx, &mut buf);
                        }
                    }
                }
            }
        }

        for (_, mut s) in sessions {
            s.close();
            report.absorb(&s.stats());
        }
        report.cpu = thread_cpu_time() - cpu_start;
        report
    }
}

/// Running estimate of one encode's cost: encoding is only started when the next
/// deadline is at least a few encodes away, so it never delays a send.
#[derive(Default)]
struct EncodeCost {
    ewma_ns: f64,
}

impl EncodeCost {
    fn observe(&mut self, d: Duration) {
        let ns = d.as_nanos() as f64;
        self.ewma_ns = if self.ewma_ns == 0.0 { ns } else { self.ewma_ns * 0.95 + ns * 0.05 };
    }

    /// Room needed before the next send to start an encode. Tight on purpose: with
    /// sends 1 ms apart, a generous margin (3×) left no room for ~300 µs speech
    /// encodes, which then ran at their deadlines instead, late.
    fn guard(&self) -> Duration {
        Duration::from_nanos((self.ewma_ns * 1.5) as u64 + 30_000).max(Duration::from_micros(100))
    }
}
