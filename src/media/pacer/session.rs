//! One call inside a shard: its peer connection, socket, playing stream, and its
//! place on the shard's 20 ms grid.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use mio::net::UdpSocket;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::state::{RTCIceConnectionState, RTCPeerConnectionState};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use tokio::sync::oneshot;

use super::{CallId, Listener, MediaEvent, thread_cpu_time};
use crate::media::gain::Gain;
use crate::media::inbound::Inbound;
use crate::media::record::RecordTap;
use crate::media::stats::{CallStats, LATE_AFTER_US, LateCause, Percentiles, new_histogram};
use crate::media::stream::Stream;
use crate::transport::join::AUDIO_LEVEL_URI;
use crate::transport::peer::feed_datagram;
use crate::transport::tap::{Heard, TapHandle};

/// 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// RTP clock ticks per 20 ms grid slot at 48 kHz.
const TICKS_PER_FRAME: u64 = 960;
/// A frame due within this window is sent on the wake-up before its deadline: timer
/// wake-ups on a VM land 30–80 µs late, so aiming slightly early centres sends on
/// their deadlines instead of always trailing them.
pub const SEND_AHEAD: Duration = Duration::from_micros(50);
/// A frame cheaper than this never counts as the audio turning dearer: passing a
/// packet through or taking it from a shared feed varies by more than 2× at a few µs.
const JUMP_FLOOR_NS: u64 = 20_000;
/// Further behind than this, the grid is re-anchored instead of bursting frames out.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// One-byte RFC 6464 payloads (V bit unset), shared so no packet allocates for them.
static LEVEL_BYTES: [[u8; 1]; 128] = {
    let mut t = [[0u8; 1]; 128];
    let mut i = 0;
    while i < 128 {
        t[i][0] = i as u8;
        i += 1;
    }
    t
};

/// What was negotiated, read from the sender once connected.
#[derive(Clone, Copy)]
struct Negotiated {
    payload_type: u8,
    level_ext: Option<u8>,
}

enum Link {
    Connecting { deadline: Instant, ready: Option<oneshot::Sender<Result<(), String>>> },
    Connected(Negotiated),
    Lost,
}

pub struct Session {
    pub id: CallId,
    pub pc: RTCPeerConnection,
    pub socket: UdpSocket,
    pub local_addr: SocketAddr,
    sender: RTCRtpSenderId,
    ssrc: u32,
    link: Link,
    /// Tick 0 of its grid: its shard's epoch plus its phase, the call's offset inside the
    /// 20 ms period (calls are staggered, not fired together).
    origin: Instant,
    /// Which of the shard's phases it sits in.
    pub phase_slot: usize,
    /// The wake-up the shard has queued for it, with the entry's generation.
    pub scheduled: Option<(Instant, u64)>,
    /// Whether it is in the shard's queue of calls with a packet to prepare.
    pub encode_queued: bool,
    /// When the next packet is due, in 48 kHz ticks from the call's phase on the grid;
    /// the RTP timestamp derives from it, so a pause advances time without a burst or
    /// drift. Packets advance it by their own duration (10–60 ms for Opus passed
    /// through); (re)starts land on the 20 ms grid.
    ticks: u64,
    next_deadline: Option<Instant>,
    ts_base: u32,
    seq: u16,
    marker: bool,
    pub stream: Option<Box<Stream>>,
    paused: bool,
    gain: Gain,
    frames_sent: u64,
    /// Audio sent, in ticks (packets may last 10–60 ms).
    sent_ticks: u64,
    late_frames: u64,
    send_errors: u64,
    deviation: Histogram<u32>,
    /// Running mean of one frame's preparation, in ns (see [`CallStats::prepare_us`]).
    prepare_ns: f64,
    /// The last frame's preparation, in ns, until the shard looks ahead with it (see
    /// [`Session::encode_one`]).
    pub last_prepare_ns: u64,
    /// Wall time spent on this call in the shard's current window: encoding, sending,
    /// reading, timers.
    pub work_ns: u64,
    /// Audio sent in the current window, in ticks.
    window_ticks: u64,
    /// What admission counts this call as costing, in µs of CPU per 20 ms (see
    /// `admission`).
    pub claim_us: u32,
    /// Its stream has played a whole window since it started: `claim_us` is measured.
    pub measured: bool,
    pub rtc_deadline: Option<Instant>,
    /// Since when the far side has not answered, while the path is silent.
    silent_since: Option<Instant>,
    /// ICE's own state: a connection that does not come up says which step stuck.
    ice: RTCIceConnectionState,
    /// How long silence lasts before it is reported: when `silent_since` began.
    silent_after: Duration,
    /// The participants' streams the server forwards, as the tap captured them.
    heard: TapHandle,
    inbound: Inbound,
    /// Where what the call hears goes: a recorder, bridges into other calls.
    listeners: Vec<(Listener, RecordTap)>,
    /// Test-only fault injection: the next send panics.
    #[cfg(feature = "fault-injection")]
    poisoned: bool,
    /// Test-only fault injection: CPU burnt per frame prepared.
    #[cfg(feature = "fault-injection")]
    pub burden: Duration,
}

/// Where a session's effects go: the shard's event channel, its totals, its trash.
pub struct Ctx<'a> {
    pub events: &'a tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    pub totals: &'a crate::media::stats::PacerTotals,
    /// Frames its calls sent late since the shard last looked: a load signal of its own.
    pub late: &'a std::cell::Cell<u64>,
    /// Where what the thread is done with goes to be freed (see [`super::Trash`]).
    pub trash: &'a super::Trash,
    /// What the thread did since it last slept, which a late frame is blamed on.
    pub turn: &'a std::cell::Cell<Turn>,
}

/// Where the pacer thread's time went since it last slept.
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    /// When the thread woke, how long after its timer, and its CPU time then.
    pub woke_at: Instant,
    pub woke_late: Duration,
    pub woke_cpu: Duration,
    /// CPU time on commands, on preparing frames and on datagrams since it woke.
    pub spent: [Duration; 3],
    /// When the sends now going out began.
    pub sends_from: Instant,
}

impl Turn {
    /// Indices into `spent`.
    pub const COMMANDS: usize = 0;
    pub const PREPARING: usize = 1;
    pub const DATAGRAMS: usize = 2;

    pub fn woke(woke_late: Duration, now: Instant, cpu: Duration) -> Turn {
        Turn { woke_at: now, woke_late, woke_cpu: cpu, spent: [Duration::ZERO; 3], sends_from: now }
    }

    /// What kept a frame due at `deadline` from going out before `sent_at` (the
    /// thread's CPU time then: `cpu`), whichever took longest: the thread not running
    /// (it woke late, or was preempted since), the sends ahead of it in this line, or
    /// the work before the line — which a frame due once the line had begun did not
    /// wait on. Ties go to not running.
    pub fn blame(&self, deadline: Instant, sent_at: Instant, cpu: Duration) -> LateCause {
        let ran = cpu.saturating_sub(self.woke_cpu);
        let not_running = self.woke_late + sent_at.saturating_duration_since(self.woke_at).saturating_sub(ran);
        let in_line = sent_at.saturating_duration_since(deadline.max(self.sends_from));
        let waited_before = deadline < self.sends_from;
        let [commands, preparing, datagrams] = if waited_before { self.spent } else { [Duration::ZERO; 3] };
        [
            (in_line, LateCause::Sends),
            (commands, LateCause::Commands),
            (preparing, LateCause::Preparing),
            (datagrams, LateCause::Datagrams),
            (not_running, LateCause::NotRunning),
        ]
        .into_iter()
        .max_by_key(|&(d, _)| d)
        .map_or(LateCause::NotRunning, |(_, cause)| cause)
    }
}

/// The timestamp base of a grid starting at `to` that gives every instant the RTP
/// timestamp `base` gave it on a grid starting at `from` (timestamp = base + 48 kHz
/// ticks since the grid's start, modulo 2^32).
fn rebase(base: u32, from: Instant, to: Instant) -> u32 {
    let ticks = |d: Duration| crate::media::source::ticks(d) as u32;
    if to >= from { base.wrapping_add(ticks(to - from)) } else { base.wrapping_sub(ticks(from - to)) }
}

impl Session {
    pub fn new(
        id: CallId,
        peer: crate::transport::OutboundPeer,
        connect_timeout: Duration,
        ready: oneshot::Sender<Result<(), String>>,
    ) -> Self {
        Session {
            id,
            silent_since: None,
            ice: RTCIceConnectionState::New,
            silent_after: peer.consent.silent_after,
            heard: peer.heard,
            inbound: Inbound::default(),
            listeners: Vec::new(),
            pc: peer.pc,
            local_addr: peer.local_addr,
            socket: UdpSocket::from_std(peer.socket),
            sender: peer.sender,
            ssrc: peer.ssrc,
            link: Link::Connecting { deadline: Instant::now() + connect_timeout, ready: Some(ready) },
            // Set by `rehome` when a shard places it.
            origin: Instant::now(),
            phase_slot: 0,
            scheduled: None,
            encode_queued: false,
            ticks: 0,
            next_deadline: None,
            ts_base: rand::random(),
            seq: rand::random(),
            marker: true,
            stream: None,
            paused: false,
            gain: Gain::default(),
            frames_sent: 0,
            sent_ticks: 0,
            late_frames: 0,
            send_errors: 0,
            prepare_ns: 0.0,
            work_ns: 0,
            last_prepare_ns: 0,
            window_ticks: 0,
            claim_us: crate::media::cost::IDLE_US,
            measured: false,
            deviation: new_histogram(),
            rtc_deadline: None,
            #[cfg(feature = "fault-injection")]
            poisoned: false,
            #[cfg(feature = "fault-injection")]
            burden: Duration::ZERO,
        }
    }

    fn deadline_of(&self, ticks: u64) -> Instant {
        self.origin + Duration::from_nanos(ticks * 125_000 / 6)
    }

    /// The first grid slot at or after `at`, in ticks.
    fn grid_ticks(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        since.as_nanos().div_ceil(FRAME.as_nanos()) as u64 * TICKS_PER_FRAME
    }

    /// Puts it on a grid starting at `origin`, phase `slot` of its (new) shard. Its RTP
    /// clock runs on unbroken — the timestamp of any instant stays what it was — and it
    /// sends again from the first frame boundary there that is a frame away.
    pub fn rehome(&mut self, origin: Instant, slot: usize) {
        self.ts_base = rebase(self.ts_base, self.origin, origin);
        self.origin = origin;
        self.phase_slot = slot;
        self.scheduled = None;
        self.encode_queued = false;
        self.next_deadline = None;
    }

    /// When the packet it would prepare next is due: a packet ahead of the next send
    /// is due a frame later for each prepared before it. Preparing in this order puts a
    /// starting stream's first packet before any stream's second.
    pub fn prepare_by(&self) -> Option<Instant> {
        let ahead = self.stream.as_ref().map_or(0, |s| s.prepared() as u32);
        self.next_deadline.map(|d| d + FRAME * ahead)
    }

    /// The earliest instant this session needs the thread for anything.
    pub fn wake_at(&self) -> Option<Instant> {
        let connect = match self.link {
            Link::Connecting { deadline, .. } => Some(deadline),
            _ => None,
        };
        let send = self.next_deadline.map(|d| d.checked_sub(SEND_AHEAD).unwrap_or(d));
        [send, self.rtc_deadline, connect, self.inbound.next_expiry()].into_iter().flatten().min()
    }

    /// A stream plays (not paused): it prepares a frame every period.
    pub fn playing(&self) -> bool {
        !self.paused && self.stream.is_some()
    }

    /// A stream playing (or about to) whose cost is still only its claim.
    pub fn unmeasured(&self) -> bool {
        self.playing() && !self.measured
    }

    pub fn wants_encode(&self) -> bool {
        !self.paused && self.stream.as_ref().is_some_and(|s| s.wants_encode())
    }

    /// Encodes one frame ahead; a failure ends the stream with its error. True when the
    /// frame cost over twice the running mean: the audio turned dearer (music to
    /// speech), likely for the shard's other calls on the same source too.
    pub fn encode_one(&mut self, ctx: &Ctx<'_>) -> bool {
        let Some(stream) = self.stream.as_mut() else { return false };
        let t0 = Instant::now();
        let r = stream.encode_next(&mut self.gain);
        #[cfg(feature = "fault-injection")]
        if !self.burden.is_zero() {
            let until = thread_cpu_time() + self.burden;
            while thread_cpu_time() < until {}
        }
        let elapsed = t0.elapsed().as_nanos() as u64;
        self.work_ns += elapsed;
        self.last_prepare_ns = elapsed;
        // A mean over ~32 frames: follows music turning to speech within a second.
        let ns = elapsed as f64;
        let jumped = self.prepare_ns > 0.0 && ns > 2.0 * self.prepare_ns && elapsed > JUMP_FLOOR_NS;
        self.prepare_ns = if self.prepare_ns == 0.0 { ns } else { self.prepare_ns + (ns - self.prepare_ns) / 32.0 };
        if let Err(e) = r {
            self.end_stream(ctx, Some(e.to_string()));
        }
        jumped
    }

    /// Settles [`Self::claim_us`] at the end of a window of `frames` 20 ms periods, from
    /// the work timed in it; `scale` turns wall time into the thread's CPU time.
    pub fn settle_claim(&mut self, scale: f64, frames: f64) {
        let measured = (self.work_ns as f64 * scale / frames / 1e3) as u32;
        let streaming = self.stream.is_some() && !self.paused;
        let whole = streaming && self.window_ticks as f64 >= 0.9 * frames * TICKS_PER_FRAME as f64;
        self.claim_us = super::admission::settle(self.claim_us, measured, whole, self.stream.is_some());
        self.measured |= whole;
        self.work_ns = 0;
        self.window_ticks = 0;
    }

    /// (Re)starts the grid when there is something to send and a link to send it on.
    fn schedule(&mut self, now: Instant) {
        let streaming = matches!(self.link, Link::Connected(_)) && self.stream.is_some() && !self.paused;
        if !streaming {
            self.next_deadline = None;
            return;
        }
        if self.next_deadline.is_some() {
            return;
        }
        // First slot at least one frame away: time to encode ahead without a late start.
        self.ticks = self.grid_ticks(now + FRAME);
        self.next_deadline = Some(self.deadline_of(self.ticks));
        self.marker = true;
    }

    /// Makes the next send panic, as a library bug on hostile input would (tests only).
    #[cfg(feature = "fault-injection")]
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Sends every frame whose deadline has come.
    pub fn send_due(&mut self, ctx: &Ctx<'_>, now: Instant) {
        #[cfg(feature = "fault-injection")]
        if self.poisoned && self.next_deadline.is_some_and(|d| d <= now + SEND_AHEAD) {
            panic!("injected fault in call {}", self.id);
        }
        while let Some(deadline) = self.next_deadline {
            if deadline > now + SEND_AHEAD {
                return;
            }
            let Link::Connected(neg) = self.link else { return };
            let Some(stream) = self.stream.as_mut() else { return };
            let t0 = Instant::now();
            if stream.front().is_none() {
                // Encoding fell behind (or a shared frame is not out): do it now.
                if let Err(e) = stream.encode_due(&mut self.gain) {
                    self.end_stream(ctx, Some(e.to_string()));
                    return;
                }
            }
            let front = self
                .stream
                .as_ref()
                .and_then(|s| s.front())
                .map(|f| (Bytes::copy_from_slice(f.payload()), f.level, f.ticks as u64));
            let mut advance = TICKS_PER_FRAME;
            if let Some((payload, level, duration)) = front {
                advance = duration.max(1);
                let mut header = Header {
                    version: 2,
                    marker: std::mem::take(&mut self.marker),
                    payload_type: neg.payload_type,
                    sequence_number: self.seq,
                    timestamp: self.ts_base.wrapping_add(self.ticks as u32),
                    ssrc: self.ssrc,
                    ..Default::default()
                };
                if let Some(id) = neg.level_ext {
                    header.extension = true;
                    header.extension_profile = rtc::rtp::header::EXTENSION_PROFILE_ONE_BYTE;
                    let _ = header.set_extension(id, Bytes::from_static(&LEVEL_BYTES[level.min(127) as usize]));
                }
                let sent_at = Instant::now();
                let ok = self
                    .pc
                    .rtp_sender(self.sender)
                    .is_some_and(|mut s| s.write_rtp(sent_at, Packet { header, payload }).is_ok());
                if !ok {
                    self.send_errors += 1;
                }
                self.flush();
                self.seq = self.seq.wrapping_add(1);
                self.frames_sent += 1;
                self.sent_ticks += duration;
                let late = sent_at.saturating_duration_since(deadline).as_micros() as u64;
                let early = deadline.saturating_duration_since(sent_at).as_micros() as u64;
                let deviation = late.max(early).max(1);
                let _ = self.deviation.record(deviation);
                if late > LATE_AFTER_US {
                    self.late_frames += 1;
                    ctx.late.set(ctx.late.get() + 1);
                }
                let cause = (late > LATE_AFTER_US).then(|| ctx.turn.get().blame(deadline, sent_at, thread_cpu_time()));
                ctx.totals.observe(deviation, cause);
                if let Some(s) = self.stream.as_mut() {
                    s.pop();
                }
                self.window_ticks += duration;
            }
            self.work_ns += t0.elapsed().as_nanos() as u64;
            if self.stream.as_ref().is_some_and(|s| s.is_finished()) {
                self.end_stream(ctx, None);
                return;
            }
            self.ticks += advance;
            let mut next = self.deadline_of(self.ticks);
            if now.saturating_duration_since(next) > MAX_CATCH_UP {
                // Stalled (e.g. the process was stopped): skip the missed slots instead of
                // bursting them out. The RTP timestamp still advances with wall time.
                let skip_to = self.grid_ticks(now);
                let missed = skip_to.saturating_sub(self.ticks) / TICKS_PER_FRAME;
                self.late_frames += missed;
                ctx.late.set(ctx.late.get() + missed);
                self.ticks = skip_to;
                next = self.deadline_of(self.ticks);
                self.marker = true;
            }
            self.next_deadline = Some(next);
        }
    }

    fn end_stream(&mut self, ctx: &Ctx<'_>, error: Option<String>) {
        if let Some(stream) = self.stream.take() {
            // `take()` makes this the only place an end fires, so it fires once.
            let _ = ctx.events.send(MediaEvent::StreamEnded { call: self.id, stream: stream.id(), error });
            ctx.trash.throw(stream);
        }
        self.next_deadline = None;
    }

    pub fn play(&mut self, ctx: &Ctx<'_>, stream: Box<Stream>, now: Instant) {
        // A replaced stream never reports an end; the grid keeps running, so the new
        // file starts at the next frame boundary on the same SSRC. Until measured, the
        // call costs what the new stream was admitted for.
        self.claim_us = stream.claim_us();
        self.measured = false;
        if let Some(old) = self.stream.replace(stream) {
            ctx.trash.throw(old);
        }
        self.schedule(now);
    }

    pub fn stop(&mut self, ctx: &Ctx<'_>) {
        if let Some(old) = self.stream.take() {
            ctx.trash.throw(old);
        }
        self.next_deadline = None;
    }

    pub fn pause(&mut self) {
        self.paused = true;
        self.next_deadline = None;
    }

    pub fn resume(&mut self, now: Instant) {
        if self.paused {
            self.paused = false;
            self.schedule(now);
        }
    }

    /// Starts (or, with `None`, ends) handing what the call hears to `who`.
    pub fn listen(&mut self, who: Listener, tap: Option<RecordTap>) {
        self.listeners.retain(|(w, _)| *w != who);
        if let Some(tap) = tap {
            self.listeners.push((who, tap));
        }
    }

    pub fn set_volume(&mut self, percent: u16) {
        self.gain.set_percent(percent);
    }

    /// Sends what the peer has queued.
    pub fn flush(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            if self.socket.send_to(&out.message, out.transport.peer_addr).is_err() {
                self.send_errors += 1;
            }
        }
    }

    /// Reads every pending datagram into the peer.
    pub fn on_readable(&mut self, ctx: &Ctx<'_>, buf: &mut [u8]) {
        let t0 = Instant::now();
        loop {
            match self.socket.recv_from(buf) {
                Ok((n, from)) => {
                    let _ = feed_datagram(&mut self.pc, self.local_addr, from, &buf[..n], Instant::now());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => break, // ICMP errors surface here; ICE decides if the path is dead
            }
        }
        self.after_io(ctx, Instant::now());
        self.work_ns += t0.elapsed().as_nanos() as u64;
    }

    /// Runs the peer's timers if due, and ends the speaking of the quiet.
    pub fn on_timer(&mut self, ctx: &Ctx<'_>, now: Instant) {
        if self.inbound.next_expiry().is_some_and(|t| t <= now) {
            let call = self.id;
            self.inbound.expire(now, |s| {
                let _ = ctx.events.send(MediaEvent::Speaking { call, ssrc: s.ssrc, speaking: s.speaking });
            });
        }
        if self.rtc_deadline.is_some_and(|d| d <= now) {
            let t0 = Instant::now();
            let _ = self.pc.handle_timeout(now);
            self.after_io(ctx, now);
            self.work_ns += t0.elapsed().as_nanos() as u64;
        }
        if let Link::Connecting { deadline, ready } = &mut self.link
            && *deadline <= now
        {
            if let Some(ready) = ready.take() {
                let why = match self.ice {
                    RTCIceConnectionState::Connected | RTCIceConnectionState::Completed => {
                        "ICE connected but the DTLS handshake did not finish: the media server stopped answering \
                         mid-handshake (is it overloaded?)"
                    }
                    _ => {
                        "no answer to ICE checks: the media server is unreachable over UDP (check firewalls, or \
                         that the loopback/SFU is running)"
                    }
                };
                let _ = ready.send(Err(format!("ICE/DTLS did not connect in time (ICE {}): {why}", self.ice)));
            }
            self.link = Link::Lost;
        }
    }

    /// After any input: flush output, consume events and inbound messages, re-read the timer.
    fn after_io(&mut self, ctx: &Ctx<'_>, now: Instant) {
        self.flush();
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => self.on_state(ctx, state, now),
                RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) => self.ice = state,
                _ => {}
            }
        }
        // RTCP from the far side (receiver reports) is consumed by interceptors; drain it.
        while self.pc.poll_read().is_some() {}
        self.take_heard(ctx);
        self.rtc_deadline = self.pc.poll_timeout();
    }

    /// What the tap captured: each participant's packets, and who started speaking.
    fn take_heard(&mut self, ctx: &Ctx<'_>) {
        let level_ext = match self.link {
            Link::Connected(neg) => neg.level_ext,
            _ => None,
        };
        let (call, inbound, listeners) = (self.id, &mut self.inbound, &mut self.listeners);
        self.heard.drain(|h| {
            ctx.totals.heard_packets.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(s) = inbound.on_packet(h.at, &h.packet, level_ext) {
                let _ = ctx.events.send(MediaEvent::Speaking { call, ssrc: s.ssrc, speaking: s.speaking });
            }
            // A listener that ended on its own (a cap, a failed write) lets go here.
            if let Some(((_, last), rest)) = listeners.split_last_mut() {
                let mut gone = Vec::new();
                for (i, (_, tap)) in rest.iter().enumerate() {
                    if !tap.offer(Heard { at: h.at, packet: h.packet.clone() }) {
                        gone.push(i);
                    }
                }
                if !last.offer(h) {
                    gone.push(rest.len());
                }
                for i in gone.into_iter().rev() {
                    listeners.remove(i);
                }
            }
        });
    }

    fn on_state(&mut self, ctx: &Ctx<'_>, state: RTCPeerConnectionState, now: Instant) {
        match state {
            // Back after a silence: the same connection, nothing to renegotiate; the
            // stream kept its pace meanwhile (what was sent into the silence is lost).
            RTCPeerConnectionState::Connected if matches!(self.link, Link::Connected(_)) => {
                if let Some(since) = self.silent_since.take() {
                    let outage = now.saturating_duration_since(since);
                    let _ = ctx.events.send(MediaEvent::Recovered { call: self.id, outage });
                }
            }
            RTCPeerConnectionState::Disconnected if matches!(self.link, Link::Connected(_)) => {
                // The far side's last answer came `silent_after` ago.
                self.silent_since.get_or_insert(now.checked_sub(self.silent_after).unwrap_or(now));
            }
            RTCPeerConnectionState::Failed if self.silent_since.is_some() => {
                let silent = self.silent_since.map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
                // Sending stops here; whether to rejoin is the owner's call.
                self.link = Link::Lost;
                self.next_deadline = None;
                let _ = ctx.events.send(MediaEvent::ConsentExpired { call: self.id, silent });
            }
            RTCPeerConnectionState::Connected => {
                let Some(neg) = self.negotiated() else {
                    self.fail(ctx, "connected, but no Opus codec was negotiated".into());
                    return;
                };
                if let Link::Connecting { ready, .. } = &mut self.link
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(Ok(()));
                }
                self.link = Link::Connected(neg);
                let _ = ctx.events.send(MediaEvent::Connected { call: self.id });
                self.schedule(now);
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                self.fail(ctx, format!("WebRTC connection {state}"));
            }
            _ => {}
        }
    }

    /// Gives the call up: whoever waits for it connecting, or owns it once connected,
    /// is told why.
    pub fn abandon(&mut self, ctx: &Ctx<'_>, reason: String) {
        self.fail(ctx, reason);
    }

    fn fail(&mut self, ctx: &Ctx<'_>, reason: String) {
        match std::mem::replace(&mut self.link, Link::Lost) {
            Link::Connecting { ready: Some(ready), .. } => {
                let _ = ready.send(Err(reason));
            }
            Link::Lost => {}
            _ => {
                let _ = ctx.events.send(MediaEvent::ConnectionLost { call: self.id, reason });
            }
        }
        self.next_deadline = None;
    }

    fn negotiated(&mut self) -> Option<Negotiated> {
        let mut sender = self.pc.rtp_sender(self.sender)?;
        let params = sender.get_parameters();
        let payload_type = params.rtp_parameters.codecs.first()?.payload_type;
        let level_ext =
            params.rtp_parameters.header_extensions.iter().find(|h| h.uri == AUDIO_LEVEL_URI).map(|h| h.id as u8);
        Some(Negotiated { payload_type, level_ext })
    }

    pub fn stats(&self) -> CallStats {
        CallStats {
            ssrc: self.ssrc,
            connected: matches!(self.link, Link::Connected(_)),
            paused: self.paused,
            stream: self.stream.as_ref().map(|s| s.id()),
            position: self.stream.as_ref().map_or(0, |s| s.position()),
            duration: self.stream.as_ref().and_then(|s| s.duration()),
            source: self.stream.as_ref().map(|s| s.info().clone()),
            passing_through: self.stream.as_ref().is_some_and(|s| s.passing_through()),
            skipped: self.stream.as_ref().map_or(0, |s| s.skipped()),
            starved: self.stream.as_ref().map_or(0, |s| s.starved()),
            volume: self.gain.percent(),
            heard_packets: self.inbound.packets(),
            heard: self.inbound.stats(),
            frames_sent: self.frames_sent,
            sent_ticks: self.sent_ticks,
            late_frames: self.late_frames,
            send_errors: self.send_errors,
            deviation: Percentiles::of(&self.deviation),
            prepare_us: self.prepare_ns / 1e3,
        }
    }

    pub fn close(&mut self) {
        let _ = self.pc.close();
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::{LateCause, Turn, rebase};
    use std::time::{Duration, Instant};

    #[test]
    fn a_call_moved_to_another_grid_keeps_its_rtp_clock() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // The timestamp of an instant on a grid from `origin` with base `base`.
        let stamp = |base: u32, origin: Instant, at: Instant| {
            base.wrapping_add(crate::media::source::ticks(at - origin) as u32)
        };
        let (old, base) = (t0 + ms(7), u32::MAX - 100);
        let at = t0 + ms(1_000);
        for new in [t0 + ms(3), t0 + ms(19), old] {
            let moved = rebase(base, old, new);
            assert_eq!(stamp(moved, new, at), stamp(base, old, at), "the same instant, the same timestamp");
        }
        // 12 ms between the grids' starts is 576 ticks, across the wrap.
        assert_eq!(rebase(base, old, old + ms(12)), base.wrapping_add(576));
        assert_eq!(rebase(5, old + ms(12), old), 5u32.wrapping_sub(576));
    }

    #[test]
    fn a_late_frame_is_blamed_on_the_longest_hold_up_before_it() {
        let ms = Duration::from_millis;
        // The thread woke 1 ms late, ran 2, 7 and 3 ms of commands, preparing and
        // datagrams, and began its sends at `line`, 12 ms after waking.
        let (woke, cpu0) = (Instant::now(), ms(100));
        let line = woke + ms(12);
        let mut turn = Turn::woke(ms(1), woke, cpu0);
        turn.sends_from = line;
        turn.spent = [ms(2), ms(7), ms(3)];
        // The CPU time at a send `at` after waking, preempted for `lost` of it.
        let cpu = |at: Duration, lost: Duration| cpu0 + at - lost;
        let due = woke - ms(1);
        assert_eq!(turn.blame(due, line + ms(4), cpu(ms(16), ms(0))), LateCause::Preparing);
        let waited_in_line = turn.blame(due, line + ms(20), cpu(ms(32), ms(0)));
        assert_eq!(waited_in_line, LateCause::Sends, "the sends ahead of it took longer");
        let due_in_line = turn.blame(line + ms(1), line + ms(7), cpu(ms(19), ms(0)));
        assert_eq!(due_in_line, LateCause::Sends, "due once the line had begun");
        let preempted = turn.blame(due, line + ms(4), cpu(ms(16), ms(9)));
        assert_eq!(preempted, LateCause::NotRunning, "off the CPU for 9 ms, plus the late wake-up");
        let slept_through = Turn { woke_late: ms(12), ..turn };
        assert_eq!(slept_through.blame(due, line + ms(4), cpu(ms(16), ms(0))), LateCause::NotRunning);
        turn.spent[0] = ms(30);
        assert_eq!(turn.blame(due, line, cpu(ms(12), ms(0))), LateCause::Commands);
    }
}
