//! A shard: one OS thread that owns a set of calls and paces all of them.
//!
//! Each loop: send what is due, run peer timers, take commands, then use the slack
//! before the next deadline to encode frames ahead; then sleep on epoll until the
//! timerfd (next deadline) or a socket (ICE/DTLS/RTCP) wakes it.
//!
//! A wake-up costs what is due, not how many calls the shard holds: each call's next
//! wake-up sits in a heap (entries it moved past are skipped when they surface), and
//! calls with a packet to prepare wait in a second heap, earliest send first. A call
//! is rescheduled whenever the loop touches it.
//!
//! A panic while handling one call — a peer library choking on hostile input, say —
//! is caught around that call alone: the call ends as connection-lost (its owner is
//! told, the totals count it) and every other call on the shard keeps time.

use std::any::Any;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use slab::Slab;

use super::admission::{self, COMPLEXITY_STEPS, Drift, Gauges, LATE_HOLD_WINDOWS};
use super::clock::{Timer, deadline_thread, is_realtime, thread_cpu_time};
use super::session::{Ctx, FRAME, Session, Turn};
use super::{CallId, Command, Control, MediaEvent, ShardReport};

const TIMER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
/// Calls are staggered over this many phases, 1 ms apart. Each phase is one wakeup
/// that sends its calls' frames back to back (~15 µs each), so a shard wakes at most
/// 1000 times a second however many calls it holds: per-call wakeups cost more in
/// context switches than the sends themselves.
const PHASE_SLOTS: usize = 20;
/// How often the thread measures how busy it is and what each call costs it.
const BUSY_WINDOW: Duration = Duration::from_secs(1);
/// How often, between those, it looks whether it ran out of time (see
/// [`admission::overloaded`]): the two frames prepared ahead.
const OUT_OF_TIME_WINDOW: Duration = Duration::from_millis(40);
/// A command that held the thread this long (wall time) delayed the calls due behind
/// it: logged (see [`SlowCommands`]).
const SLOW_COMMAND: Duration = Duration::from_millis(2);
/// The share of a window's frames (and the least number) that, gone late two
/// windows running, marks the thread short of CPU.
const LATE_SHARE: f64 = 0.005;
const LATE_MIN: u64 = 10;
/// Visiting order for filling phases: stride 7 (coprime to 20) keeps the first few
/// calls far apart.
fn phase_order() -> impl Iterator<Item = usize> {
    (0..PHASE_SLOTS).map(|k| (k * 7) % PHASE_SLOTS)
}

pub struct Shard {
    pub poll: Poll,
    pub cmds: Receiver<Command>,
    pub events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    /// Its load, for the handle's admission decisions and for `/status`.
    pub gauges: Arc<Gauges>,
    /// µs of CPU per 20 ms it may commit.
    pub budget_us: u32,
    pub totals: Arc<crate::media::stats::PacerTotals>,
    /// See [`super::PacerConfig::realtime_priority`].
    pub realtime_priority: u8,
    pub trash: super::Trash,
}

/// The calls a shard holds, and where each sits on the 20 ms grid.
struct Calls {
    /// Boxed: a session (its peer connection inline) is ~10 KiB, and a slab grows by
    /// doubling; the slab's spare room should cost pointers, not sessions.
    sessions: Slab<Box<Session>>,
    by_call: std::collections::HashMap<CallId, usize>,
    phase_load: [u32; PHASE_SLOTS],
    /// Calls whose handling panicked this turn, with the panic's message.
    crashed: Vec<(usize, String)>,
    /// Each call's next wake-up: (when, slab key, generation). An entry whose
    /// generation is not its call's current one is stale.
    wakes: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    generation: u64,
    /// Calls with a packet to prepare: (its send deadline, slab key).
    to_encode: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The calls due this turn; reused, so a turn of the loop allocates nothing.
    due: Vec<usize>,
    /// The thread's own cost beyond its calls' (the loop, polling), µs per 20 ms.
    overhead_us: u32,
    /// Work timed this window on calls since removed: theirs, not the loop's.
    departed_ns: u64,
    /// The encoders' complexity step.
    drift: Drift,
    /// A step [`Calls::look_ahead`] took, until its streams have each prepared a frame
    /// at the new complexity.
    step_ahead: Option<StepAhead>,
    /// Windows running in which frames went late.
    late_windows: u8,
}

/// What [`Calls::look_ahead`] predicted when it stepped down: its `streams`' last
/// frames summed to `before_us`.
#[derive(Debug, Clone, Copy)]
struct StepAhead {
    before_us: u32,
    streams: usize,
}

fn panic_message(p: &(dyn Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Calls {
    /// Runs `f` on the session at `k`; a panic marks it crashed instead of unwinding
    /// the shard.
    fn guard<R>(&mut self, k: usize, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
        let s = self.sessions.get_mut(k)?;
        match catch_unwind(AssertUnwindSafe(|| f(s))) {
            Ok(r) => Some(r),
            Err(p) => {
                self.crashed.push((k, panic_message(p.as_ref())));
                None
            }
        }
    }

    /// Queues what the session at `k` needs next, after the loop touched it: its
    /// wake-up, if that moved, and a packet to prepare, if it wants one.
    fn touched(&mut self, k: usize) {
        let Some(s) = self.sessions.get_mut(k) else { return };
        let at = s.wake_at();
        if at != s.scheduled.map(|(t, _)| t) {
            s.scheduled = at.map(|t| {
                self.generation += 1;
                self.wakes.push(Reverse((t, k, self.generation)));
                (t, self.generation)
            });
        }
        if !s.encode_queued && s.wants_encode() {
            s.encode_queued = true;
            let by = s.prepare_by().unwrap_or_else(|| Instant::now() + FRAME * 10);
            self.to_encode.push(Reverse((by, k)));
        }
    }

    /// The earliest wake-up queued, dropping stale entries on the way.
    fn next_wake(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, k, generation))) = self.wakes.peek() {
            if self.sessions.get(k).and_then(|s| s.scheduled).is_some_and(|(_, g)| g == generation) {
                return Some(t);
            }
            self.wakes.pop();
        }
        None
    }

    /// Moves the calls whose wake-up has come into `self.due`.
    fn take_due(&mut self, now: Instant) {
        self.due.clear();
        while let Some(t) = self.next_wake() {
            if t > now {
                break;
            }
            let Some(Reverse((_, k, _))) = self.wakes.pop() else { break };
            if let Some(s) = self.sessions.get_mut(k) {
                s.scheduled = None;
                self.due.push(k);
            }
        }
    }

    /// Puts a call on the shard: in its least loaded phase, its socket on the poll.
    fn place(&mut self, mut s: Box<Session>, registry: &Registry, epoch: Instant) {
        let entry = self.sessions.vacant_entry();
        let k = entry.key();
        let slot = phase_order().min_by_key(|&i| self.phase_load[i]).unwrap_or(0);
        self.phase_load[slot] += 1;
        s.rehome(epoch + FRAME / PHASE_SLOTS as u32 * slot as u32, slot);
        if let Err(e) = registry.register(&mut s.socket, Token(k), Interest::READABLE) {
            tracing::error!(call = s.id, "pacer: cannot register socket: {e}");
        }
        self.by_call.insert(s.id, k);
        entry.insert(s);
        self.touched(k);
    }

    /// Takes a call out of the shard: its socket off the poll, its phase freed.
    fn remove(&mut self, k: usize, registry: &Registry) -> Option<Box<Session>> {
        if !self.sessions.contains(k) {
            return None;
        }
        let mut s = self.sessions.remove(k);
        self.departed_ns += s.work_ns;
        self.by_call.remove(&s.id);
        self.phase_load[s.phase_slot] -= 1;
        let _ = registry.deregister(&mut s.socket);
        Some(s)
    }

    /// What the calls cost, as the handle weighs new work against it.
    fn commit(&self, gauges: &Gauges) {
        let claims: u32 = self.sessions.iter().map(|(_, s)| s.claim_us).sum();
        let unmeasured: u32 = self.sessions.iter().filter(|(_, s)| s.unmeasured()).map(|(_, s)| s.claim_us).sum();
        gauges.committed.store(claims.saturating_add(self.overhead_us), Ordering::Relaxed);
        gauges.unmeasured.store(unmeasured, Ordering::Relaxed);
        gauges.calls.store(self.sessions.len(), Ordering::Relaxed);
    }

    /// After a window of `wall` in which the thread used `cpu`: each call's cost
    /// measured, its claim settled; the complexity stepped if the total drifted past
    /// the budget.
    fn account(&mut self, cpu: Duration, wall: Duration, gauges: &Gauges, budget_us: u32, late: u64) {
        let frames = wall.as_secs_f64() / FRAME.as_secs_f64();
        let worked = self.sessions.iter().map(|(_, s)| s.work_ns).sum::<u64>() + std::mem::take(&mut self.departed_ns);
        let cpu_ns = cpu.as_nanos() as f64;
        // Work is timed by the wall clock: a preempted thread's is scaled back to CPU.
        let scale = if worked as f64 > cpu_ns { cpu_ns / worked as f64 } else { 1.0 };
        for (_, s) in self.sessions.iter_mut() {
            s.settle_claim(scale, frames);
        }
        self.overhead_us = ((cpu_ns - worked as f64 * scale).max(0.0) / frames / 1e3) as u32;
        self.commit(gauges);
        // A late frame now and then, or one stall, is the scheduler's; a share of them
        // second after second is a thread that does not get the CPU its budget counts on.
        let share = LATE_SHARE * frames * self.sessions.len() as f64;
        let late_now = late >= LATE_MIN && late as f64 >= share;
        self.late_windows = if late_now { self.late_windows.saturating_add(1) } else { 0 };
        let late = self.late_windows >= 2;
        let held = gauges.late_hold.load(Ordering::Relaxed);
        if late {
            if held == 0 {
                tracing::warn!(
                    "pacer: frames went late (other processes, a slower CPU or dearer work took the time): no new \
                     work until they keep time for {LATE_HOLD_WINDOWS} s"
                );
            }
            gauges.late_hold.store(LATE_HOLD_WINDOWS, Ordering::Relaxed);
        } else if held > 0 {
            gauges.late_hold.store(held - 1, Ordering::Relaxed);
        }
        let was = self.drift.step();
        let step = if self.has_streams() {
            self.drift.after_window(per_frame_us(cpu, wall), budget_us, late)
        } else {
            self.drift.idle();
            0
        };
        self.stepped(was, step, gauges);
    }

    /// Any call has a stream (paused or not): there are encoders to step.
    fn has_streams(&self) -> bool {
        self.sessions.iter().any(|(_, s)| s.stream.is_some())
    }

    /// Between windows: a thread out of time (see [`admission::overloaded`]) lowers
    /// its encoders' complexity now, before the frames prepared ahead run out.
    fn look_for_overload(&mut self, cpu: Duration, wall: Duration, gauges: &Gauges, budget_us: u32) {
        if !self.has_streams() || !admission::overloaded(cpu, wall, budget_us) {
            return;
        }
        let was = self.drift.step();
        let step = self.drift.step_down_now(per_frame_us(cpu, wall));
        self.stepped(was, step, gauges);
    }

    /// After a frame that cost over twice its call's mean: what the shard's streams
    /// will cost in the next 20 ms, each at what its last frame cost, and a step down
    /// now if that is past the budget — within a frame of the audio turning dearer,
    /// while the frames prepared ahead still cover the sends. The step's frames are
    /// then looked at afresh. Calls on the same music turn dearer together: judged
    /// each second only, the second the bench's music turned ~4× dearer sent 2,813 of
    /// its 5,000 frames late (`bench pacing --calls 100`); looking at the thread's CPU
    /// every 40 ms instead, 253 and 367; with this, 0.
    fn look_ahead(&mut self, gauges: &Gauges, budget_us: u32) {
        let (streams, ahead_us, _) = self.next_frames();
        if ahead_us <= budget_us {
            return;
        }
        let was = self.drift.step();
        let step = self.drift.step_down_ahead();
        self.stepped(was, step, gauges);
        if step != was {
            for (_, s) in self.sessions.iter_mut() {
                s.last_prepare_ns = 0;
            }
            self.step_ahead = Some(StepAhead { before_us: ahead_us, streams });
        }
    }

    /// After a frame, while a step [`Calls::look_ahead`] took is unmeasured: once each
    /// of its streams has prepared a frame at the new complexity, what the step saved
    /// is those frames over the ones it predicted from. Streams started or ended since
    /// make the sums unlike: that step goes unmeasured.
    fn measure_step_ahead(&mut self) {
        let Some(ahead) = self.step_ahead else { return };
        let (streams, after_us, all_prepared) = self.next_frames();
        if streams != ahead.streams {
            self.step_ahead = None;
        } else if all_prepared {
            self.drift.saved(ahead.before_us, after_us);
            self.step_ahead = None;
        }
    }

    /// The playing streams: how many, their last frames' cost summed (µs), and whether
    /// each has one since the last reset.
    fn next_frames(&self) -> (usize, u32, bool) {
        let (mut streams, mut ns, mut all) = (0, 0u64, true);
        for (_, s) in self.sessions.iter().filter(|(_, s)| s.playing()) {
            streams += 1;
            ns += s.last_prepare_ns;
            all &= s.last_prepare_ns > 0;
        }
        (streams, (ns / 1_000) as u32, all)
    }

    /// The encoders told of a complexity step from `was` to `step`, if it moved.
    fn stepped(&mut self, was: usize, step: usize, gauges: &Gauges) {
        if step != was {
            // Whatever step look_ahead was measuring, this one replaces it.
            self.step_ahead = None;
            let complexity = COMPLEXITY_STEPS[step];
            if step > was {
                tracing::warn!(
                    complexity,
                    "pacer: its calls cost more than its budget (encoders turned dearer, music to speech?): \
                     complexity lowered to keep time; new streams go elsewhere or are refused"
                );
            } else {
                tracing::info!(complexity, "pacer: back within budget; complexity raised");
            }
            gauges.step.store(step as u8, Ordering::Relaxed);
            for (_, s) in self.sessions.iter_mut() {
                if let Some(stream) = s.stream.as_mut() {
                    stream.cap_complexity(complexity);
                }
            }
        }
    }

    /// Ends the calls that panicked: each is reported lost and dropped; the rest play on.
    fn bury(&mut self, ctx: &Ctx<'_>, registry: &Registry, report: &mut ShardReport, gauges: &Gauges) {
        if self.crashed.is_empty() {
            return;
        }
        for (k, why) in std::mem::take(&mut self.crashed) {
            let Some(mut s) = self.remove(k, registry) else { continue };
            ctx.totals.call_crashes.fetch_add(1, Ordering::Relaxed);
            let call = s.id;
            tracing::error!(
                call,
                "pacer: handling this call panicked ({why}); the call is dropped, the others play on"
            );
            let reason = format!("internal error while handling the call (a bug; please report it): {why}");
            // Whatever state the session is in, it is not trusted again: tell its owner,
            // then drop it — each step guarded, as the session may be broken.
            let told = catch_unwind(AssertUnwindSafe(|| s.abandon(ctx, reason.clone())));
            if told.is_err() {
                let _ = ctx.events.send(MediaEvent::ConnectionLost { call, reason });
            }
            if let Ok(stats) = catch_unwind(AssertUnwindSafe(|| s.stats())) {
                report.absorb(&stats);
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(s)));
        }
        self.commit(gauges);
    }
}

/// The CPU a thread that used `cpu` over `wall` spent per 20 ms period, in µs.
fn per_frame_us(cpu: Duration, wall: Duration) -> u32 {
    (cpu.as_secs_f64() * 1e6 / (wall.as_secs_f64() / FRAME.as_secs_f64())) as u32
}

/// Commands that held the thread past [`SLOW_COMMAND`], reported once a window: frames
/// blamed on `commands` then name what took the time (a 30-minute soak sent five late
/// behind one turn's commands, and nothing said which), and whether it was the
/// command's own work or the thread kept off the CPU meanwhile (the VM's stolen time).
#[derive(Default)]
struct SlowCommands {
    slowest: Option<(Took, &'static str)>,
    count: u32,
}

/// A command's wall and CPU time.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Duration,
}

/// A command begun: when, the thread's CPU time then, its name.
type Begun = (Instant, Duration, &'static str);

impl SlowCommands {
    /// Ends the command begun as `started`, if any.
    fn ended(&mut self, started: Option<Begun>) {
        let Some((at, cpu_from, name)) = started else { return };
        let wall = at.elapsed();
        if wall >= SLOW_COMMAND {
            self.count += 1;
            let cpu = thread_cpu_time().saturating_sub(cpu_from);
            if self.slowest.is_none_or(|(longest, _)| wall > longest.wall) {
                self.slowest = Some((Took { wall, cpu }, name));
            }
        }
    }

    /// Logs the window's slow commands, if any, and starts the next window.
    fn report(&mut self) {
        if let Some((took, command)) = self.slowest.take() {
            let count = std::mem::take(&mut self.count);
            tracing::warn!(
                command,
                took_us = took.wall.as_micros() as u64,
                cpu_us = took.cpu.as_micros() as u64,
                count,
                "pacer: commands held the thread over {} ms (on the CPU for cpu_us of it, the rest not \
                 running); the calls due behind them waited",
                SLOW_COMMAND.as_millis()
            );
        }
    }
}

impl Shard {
    pub fn run(mut self) -> ShardReport {
        deadline_thread(self.realtime_priority);
        self.gauges.realtime.store(is_realtime(), Ordering::Relaxed);
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
        let mut calls = Calls {
            sessions: Slab::new(),
            by_call: std::collections::HashMap::new(),
            phase_load: [0; PHASE_SLOTS],
            crashed: Vec::new(),
            wakes: BinaryHeap::new(),
            generation: 0,
            to_encode: BinaryHeap::new(),
            due: Vec::new(),
            overhead_us: 0,
            departed_ns: 0,
            drift: Drift::default(),
            step_ahead: None,
            late_windows: 0,
        };
        // Commands held for calls on their way here from another shard, and those to
        // run before the queue's next: an arrived call's held ones, in order.
        let mut expected: std::collections::HashMap<CallId, Vec<Command>> = std::collections::HashMap::new();
        let mut replay: std::collections::VecDeque<Command> = std::collections::VecDeque::new();
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 2048];
        let mut encode_cost = EncodeCost::default();
        let cpu_start = thread_cpu_time();
        let mut window = (Instant::now(), cpu_start);
        let mut glance = window;
        let mut slow = SlowCommands::default();
        let mut report = ShardReport::default();
        let late = std::cell::Cell::new(0);
        let turn = std::cell::Cell::new(Turn::woke(Duration::ZERO, Instant::now(), thread_cpu_time()));
        // The CPU time an activity took since `from` (a CPU time read before it), which
        // a late frame may be blamed on. Read only around an activity that ran: the
        // clock is a system call, and most turns are a timer's wake-up and sends.
        let spend = |activity: usize, from: Duration| {
            let mut t = turn.get();
            t.spent[activity] += thread_cpu_time().saturating_sub(from);
            turn.set(t);
        };
        let ctx = Ctx { events: &self.events, totals: &self.totals, late: &late, trash: &self.trash, turn: &turn };

        'run: loop {
            let now = Instant::now();
            if now.duration_since(window.0) >= BUSY_WINDOW {
                let cpu = thread_cpu_time();
                let (spent, wall) = (cpu - window.1, now.duration_since(window.0));
                self.gauges.busy.store((spent.as_secs_f64() / wall.as_secs_f64() * 1e6) as u32, Ordering::Relaxed);
                calls.account(spent, wall, &self.gauges, self.budget_us, late.replace(0));
                window = (now, cpu);
                glance = window;
                slow.report();
            } else if now.duration_since(glance.0) >= OUT_OF_TIME_WINDOW {
                let cpu = thread_cpu_time();
                calls.look_for_overload(cpu - glance.1, now.duration_since(glance.0), &self.gauges, self.budget_us);
                glance = (now, cpu);
            }
            calls.take_due(now);
            turn.set(Turn { sends_from: now, ..turn.get() });
            let due = std::mem::take(&mut calls.due);
            for &k in &due {
                calls.guard(k, |s| {
                    s.send_due(&ctx, now);
                    s.on_timer(&ctx, now);
                });
                calls.touched(k);
            }
            calls.due = due;

            // Claims taken in from the handle's pending ones: released only once the
            // calls holding them are committed, so admission never sees a claim in
            // neither place (it admitted past its limits while this loop drained).
            let (mut changed, mut taken_in, mut commands_from) = (false, 0u32, None);
            let mut started = None;
            loop {
                slow.ended(started.take());
                let cmd = replay.pop_front().map_or_else(|| self.cmds.try_recv(), Ok);
                started = cmd.as_ref().ok().map(|c| (Instant::now(), thread_cpu_time(), c.name()));
                if cmd.is_ok() && commands_from.is_none() {
                    commands_from = Some(thread_cpu_time());
                }
                changed |= cmd.is_ok();
                let cmd = match cmd {
                    Ok(c) => match c.call().and_then(|call| expected.get_mut(&call)) {
                        Some(held) => {
                            held.push(c);
                            continue;
                        }
                        None => Ok(c),
                    },
                    Err(e) => Err(e),
                };
                match cmd {
                    Ok(Command::Add { call, peer, connect_timeout, ready }) => {
                        taken_in += super::IDLE_US;
                        if let Err(e) = peer.socket.set_nonblocking(true) {
                            let _ = ready.send(Err(format!("socket: {e}")));
                            continue;
                        }
                        let mut s = Box::new(Session::new(call, *peer, connect_timeout, ready));
                        // Kick ICE: the first checks leave on the next turn of the loop.
                        s.rtc_deadline = Some(Instant::now());
                        calls.place(s, self.poll.registry(), epoch);
                    }
                    Ok(Command::Control { call, control }) => {
                        if let Control::Play(stream) = &control {
                            taken_in += stream.claim_us();
                        }
                        let Some(&k) = calls.by_call.get(&call) else { continue };
                        let now = Instant::now();
                        let cap = COMPLEXITY_STEPS[calls.drift.step()];
                        calls.guard(k, |s| match control {
                            Control::Play(mut stream) => {
                                if cap < COMPLEXITY_STEPS[0] {
                                    stream.cap_complexity(cap);
                                }
                                s.play(&ctx, stream, now)
                            }
                            Control::Pause => s.pause(),
                            Control::Resume => s.resume(now),
                            Control::Volume(v) => s.set_volume(v),
                            Control::Stop => s.stop(&ctx),
                            Control::Listen(who, tap) => s.listen(who, tap),
                            #[cfg(feature = "fault-injection")]
                            Control::InjectPanic => s.poison(),
                            #[cfg(feature = "fault-injection")]
                            Control::InjectCost(d) => s.burden = d,
                        });
                        calls.touched(k);
                    }
                    Ok(Command::Stats { call, reply }) => {
                        let stats = calls.by_call.get(&call).copied().and_then(|k| calls.guard(k, |s| s.stats()));
                        let _ = reply.send(stats);
                    }
                    Ok(Command::Remove { call, reply }) => {
                        if let Some(k) = calls.by_call.get(&call).copied() {
                            calls.guard(k, Session::close);
                            if let Some(s) = calls.remove(k, self.poll.registry()) {
                                report.absorb(&s.stats());
                                self.trash.throw(s);
                            }
                        }
                        if let Some(reply) = reply {
                            let _ = reply.send(());
                        }
                    }
                    Ok(Command::Expect { call }) => {
                        expected.insert(call, Vec::new());
                    }
                    Ok(Command::Move { call, to, play }) => {
                        let session =
                            calls.by_call.get(&call).copied().and_then(|k| calls.remove(k, self.poll.registry()));
                        if to.send(Command::Adopt { call, session, play }).is_err() {
                            tracing::error!(
                                call,
                                "pacer: the thread a call was moving to has stopped; the call is dropped"
                            );
                        }
                    }
                    Ok(Command::Adopt { call, session, play }) => {
                        if let Some(s) = session {
                            calls.place(s, self.poll.registry(), epoch);
                        }
                        // Played as if sent here (its claim taken in; dropped if the call
                        // had gone), then what was sent here for it meanwhile.
                        replay.push_back(Command::Control { call, control: Control::Play(play) });
                        replay.extend(expected.remove(&call).unwrap_or_default());
                    }
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => break 'run,
                    Err(TryRecvError::Empty) => break,
                }
            }
            if changed {
                calls.commit(&self.gauges);
                self.gauges.taken_in(taken_in);
            }
            if let Some(from) = commands_from {
                spend(Turn::COMMANDS, from);
            }

            // Encode ahead, earliest send first, while the next wake-up is far enough
            // away not to be delayed.
            let mut preparing_from = None;
            loop {
                let now = Instant::now();
                if calls.next_wake().is_some_and(|d| d.saturating_duration_since(now) < encode_cost.guard()) {
                    break;
                }
                let Some(Reverse((_, k))) = calls.to_encode.pop() else { break };
                let Some(s) = calls.sessions.get_mut(k) else { continue };
                s.encode_queued = false;
                if !s.wants_encode() {
                    continue;
                }
                preparing_from.get_or_insert_with(thread_cpu_time);
                let t0 = Instant::now();
                let jumped = calls.guard(k, |s| s.encode_one(&ctx)) == Some(true);
                encode_cost.observe(t0.elapsed());
                if jumped {
                    calls.look_ahead(&self.gauges, self.budget_us);
                } else {
                    calls.measure_step_ahead();
                }
                calls.touched(k);
                if !calls.crashed.is_empty() {
                    calls.bury(&ctx, self.poll.registry(), &mut report, &self.gauges);
                }
            }
            if let Some(from) = preparing_from {
                spend(Turn::PREPARING, from);
            }
            calls.bury(&ctx, self.poll.registry(), &mut report, &self.gauges);

            let wake = calls.next_wake();
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
            let (woke, woke_cpu) = (Instant::now(), thread_cpu_time());
            turn.set(Turn::woke(wake.map_or(Duration::ZERO, |w| woke.saturating_duration_since(w)), woke, woke_cpu));
            let mut heard = false;
            for ev in events.iter() {
                match ev.token() {
                    TIMER => timer.drain(),
                    WAKER => {}
                    Token(k) => {
                        calls.guard(k, |s| s.on_readable(&ctx, &mut buf));
                        calls.touched(k);
                        heard = true;
                    }
                }
            }
            if heard {
                spend(Turn::DATAGRAMS, woke_cpu);
            }
            calls.bury(&ctx, self.poll.registry(), &mut report, &self.gauges);
        }

        for (_, mut s) in calls.sessions {
            if catch_unwind(AssertUnwindSafe(|| s.close())).is_ok() {
                report.absorb(&s.stats());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_command_past_two_ms_is_kept_by_name_until_the_window_reports() {
        let mut slow = SlowCommands::default();
        let begun = |ms, name| Some((Instant::now() - Duration::from_millis(ms), thread_cpu_time(), name));
        slow.ended(None);
        slow.ended(begun(3, "add"));
        slow.ended(begun(9, "play"));
        slow.ended(begun(4, "remove"));
        assert_eq!(slow.count, 3);
        let (play, name) = slow.slowest.unwrap();
        assert_eq!(name, "play");
        assert!(play.cpu < play.wall, "the 9 ms were not spent on the CPU here");
        slow.report();
        assert!(slow.slowest.is_none() && slow.count == 0, "the next window starts empty");
    }
}
