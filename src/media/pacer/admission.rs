//! Admission control: a pacer thread takes on only what it can send on time.
//!
//! Each shard has a budget — a share of one core, in µs of CPU per 20 ms — and knows
//! what each of its calls costs it: a new stream's claim (`media::cost`) until it has
//! played a whole second, then what the shard measured it spending (its encoder, its
//! sends, its timers and what it hears, in thread CPU time). The handle admits a new
//! call or stream only onto a shard whose committed cost plus the claims still on
//! their way leave room for it; otherwise the work is refused by name, and the calls
//! already playing keep time.
//!
//! Encoders cost more when music turns into speech. A shard whose calls drift past
//! its budget lowers its encoders' complexity a step (10 → 6 → 3) each second it
//! stays over — at once, within the second, when its frames' costs say the next 20 ms
//! will be over or it runs out of time (see [`Drift::step_down_now`], [`overloaded`])
//! — refuses new streams while lowered, and raises it a step once what it measured the
//! step to save says raising fits (see [`Drift`]).
//!
//! Claims are only estimates until measured, so a burst of new streams is taken on a
//! part of the budget at a time (see [`UNMEASURED_PART`]).
//!
//! CPU time does not see everything: other processes on the machine, or a virtual CPU
//! that slows down, make frames late at a cost the budget calls affordable. Frames
//! going late are therefore a signal of their own: the shard steps complexity down as
//! if over budget, and takes no new work until [`LATE_HOLD_WINDOWS`] seconds have
//! passed with every frame on time.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};

use super::ShardLoad;

/// The complexities a shard steps its encoders through as its cost drifts up.
pub const COMPLEXITY_STEPS: [u8; 3] = [10, 6, 3];
/// A lowered shard raises its complexity a step once the cost it predicts for the
/// step up is below this share of its budget.
const RAISE_BELOW: f64 = 0.9;
/// What a step up is assumed to cost until a step down was measured: speech costs
/// 2.7× as much at complexity 10 as at 6 (257 against 94 µs a frame here).
const ASSUMED_STEP_RATIO: f64 = 3.0;
/// What is left, each second, of a measured saving beyond 1×: fades by half in ~10 s.
const RATIO_FADE: f64 = 0.93;
/// A shard takes on at most 1/this of its budget in streams not yet measured: claims
/// are calibrated once, on an idle thread, and a burst admitted at once on claims the
/// busy CPU does not honour would run late before it could be measured.
const UNMEASURED_PART: u32 = 2;
/// Seconds a shard whose frames went late refuses new work after the last late one.
pub const LATE_HOLD_WINDOWS: u8 = 5;

/// Whether a thread that used `cpu` of `wall` while playing streams has run out of
/// time now, not on average over a second: past the midpoint between its budget and a
/// whole core. What its frames' costs did not foresee (sends, handshakes, frames
/// encoded at their deadlines), looked at often enough for the frames prepared ahead.
pub fn overloaded(cpu: std::time::Duration, wall: std::time::Duration, budget_us: u32) -> bool {
    let budget_share = f64::from(budget_us) / 20_000.0;
    cpu.as_secs_f64() > wall.as_secs_f64() * (budget_share + 1.0) / 2.0
}

/// One shard's load, written by its thread and read by the handle.
#[derive(Default)]
pub struct Gauges {
    /// Calls it holds.
    pub calls: AtomicUsize,
    /// CPU per wall time over the last second, in millionths.
    pub busy: AtomicU32,
    /// What its calls cost, in µs of CPU per 20 ms: measured, or claimed until measured,
    /// plus the thread's own loop.
    pub committed: AtomicU32,
    /// Claims admitted by the handle that the thread has not taken in yet.
    pub pending: AtomicU32,
    /// Index into [`COMPLEXITY_STEPS`]: 0 while its cost is within budget.
    pub step: AtomicU8,
    /// Seconds left in which it takes no new work because its frames went late.
    pub late_hold: AtomicU8,
    /// Claims of its streams that have not yet played a whole second, in µs per 20 ms.
    pub unmeasured: AtomicU32,
    /// Its thread runs with real-time scheduling.
    pub realtime: AtomicBool,
}

impl Gauges {
    /// Committed and pending, in µs per 20 ms.
    pub fn load_us(&self) -> u32 {
        self.committed.load(Ordering::Relaxed).saturating_add(self.pending.load(Ordering::Relaxed))
    }

    /// The thread took in a claim the handle admitted.
    pub fn taken_in(&self, claim_us: u32) {
        // Saturating: a claim is never taken in twice, but a wrap would refuse everything.
        let _ = self.pending.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(p.saturating_sub(claim_us)));
    }

    pub fn snapshot(&self, budget_us: u32) -> ShardLoad {
        ShardLoad {
            calls: self.calls.load(Ordering::Relaxed),
            busy: f64::from(self.busy.load(Ordering::Relaxed)) / 1e6,
            committed: f64::from(self.load_us()) / 20_000.0,
            budget: f64::from(budget_us) / 20_000.0,
            complexity: COMPLEXITY_STEPS[usize::from(self.step.load(Ordering::Relaxed)).min(2)],
            late_hold: self.late_hold.load(Ordering::Relaxed) > 0,
            realtime: self.realtime.load(Ordering::Relaxed),
        }
    }
}

/// Why `claim_us` more does not fit on a shard, if it does not.
pub fn refusal(g: &Gauges, claim_us: u32, replacing_us: u32, budget_us: u32) -> Option<String> {
    if g.late_hold.load(Ordering::Relaxed) > 0 && claim_us > replacing_us {
        return Some(format!(
            "its frames went late in the last {LATE_HOLD_WINDOWS} s though its budget had room (other \
             processes or a slower CPU took the time); it takes new work once they keep time again"
        ));
    }
    if g.step.load(Ordering::Relaxed) > 0 && claim_us > super::super::cost::IDLE_US {
        return Some("its encoders already run at lowered complexity to keep time".into());
    }
    let fresh = g.unmeasured.load(Ordering::Relaxed).saturating_add(g.pending.load(Ordering::Relaxed));
    if claim_us > super::super::cost::IDLE_US
        && fresh > 0
        && fresh.saturating_add(claim_us) > budget_us / UNMEASURED_PART
    {
        return Some(format!(
            "it is still measuring what its newest streams cost ({fresh} µs per 20 ms of claims not yet measured); \
             try again in a second"
        ));
    }
    let after = g.load_us().saturating_sub(replacing_us).saturating_add(claim_us);
    (after > budget_us).then(|| {
        format!(
            "it would need {claim_us} µs of CPU per 20 ms and has {} µs left of its {budget_us} µs budget",
            budget_us.saturating_sub(g.load_us().saturating_sub(replacing_us))
        )
    })
}

/// A call's claim after a second of measurement. Once it streamed the whole second:
/// at once up to a dearer measurement, and only slowly down to a cheaper one — a
/// second of a pause in speech costs a third of a second of talk, and room admitted
/// in it would not be there when the talk resumes. Never below its claim while it is
/// starting or paused (the admitted reservation holds); what it spends when idle.
pub fn settle(claim_us: u32, measured_us: u32, streamed_whole_window: bool, has_stream: bool) -> u32 {
    match (streamed_whole_window, has_stream) {
        (true, _) if measured_us >= claim_us => measured_us,
        (true, _) => claim_us - (claim_us - measured_us).div_ceil(SETTLE_DOWN),
        (false, true) => claim_us.max(measured_us),
        (false, false) => measured_us,
    }
}

/// A cheaper measurement moves a claim down by this fraction of the difference a
/// second: ~10 s to settle, longer than the quiet stretches of speech or music.
const SETTLE_DOWN: u32 = 8;

/// A shard's complexity step, and what each step down was measured to save: how much
/// a step saves depends on what is encoded (speech at 10 costs 2.7× what it costs at
/// 6, music far less), so raising predicts the cost from the measured ratio instead of
/// raising into the overload it just left. It judges by what the thread measured
/// spending in the window, not by the committed claims, which come down only slowly
/// and would make a step look like it saved nothing.
#[derive(Debug, Default)]
pub struct Drift {
    step: usize,
    /// Cost before over after each step down (`ratio[k]`: step k over step k + 1).
    ratio: [Option<f64>; COMPLEXITY_STEPS.len() - 1],
    /// What the thread spent just before the last step down, until the first window
    /// after it.
    before: Option<u32>,
    /// Stepped down within the current window: its end mixes the load before and after
    /// the step, so it neither measures the step nor judges the load again.
    stepped_within: bool,
}

impl Drift {
    /// Index into [`COMPLEXITY_STEPS`].
    pub fn step(&self) -> usize {
        self.step
    }

    /// A thread playing no stream has no encoder to lower: what it spends is connection
    /// work (ICE, DTLS handshakes), and a step kept from before would refuse the next
    /// stream for nothing. It starts afresh.
    pub fn idle(&mut self) {
        *self = Drift::default();
    }

    /// Steps down at once (see [`overloaded`]) from a thread that spent `spent_us` per
    /// 20 ms since its last look; the next whole window measures what the step saved.
    pub fn step_down_now(&mut self, spent_us: u32) -> usize {
        self.step_down_within(Some(spent_us))
    }

    /// Steps down at once on a prediction: the streams' last frames, summed, cost past
    /// the budget. What the step saves is measured the same way, frames over frames, by
    /// [`Drift::saved`]: the thread's CPU in the next window also counts sends and
    /// reads, which the prediction does not, and would make the step look like it
    /// saved less than it did — and the shard raise back into the overload.
    pub fn step_down_ahead(&mut self) -> usize {
        self.step_down_within(None)
    }

    fn step_down_within(&mut self, before: Option<u32>) -> usize {
        if self.step + 1 < COMPLEXITY_STEPS.len() {
            self.before = before;
            self.step += 1;
            self.stepped_within = true;
        }
        self.step
    }

    /// What the last step down saved: the same streams' frames cost `before_us` at the
    /// step above and `after_us` at this one.
    pub fn saved(&mut self, before_us: u32, after_us: u32) {
        if self.step > 0 {
            self.ratio[self.step - 1] = Some(saving(before_us, after_us));
        }
    }

    /// The step after a second in which the thread spent `spent_us` of `budget_us` (per
    /// 20 ms) and frames went `late` or not.
    pub fn after_window(&mut self, spent_us: u32, budget_us: u32, late: bool) -> usize {
        if std::mem::take(&mut self.stepped_within) {
            return self.step;
        }
        if let Some(before) = self.before.take() {
            self.ratio[self.step - 1] = Some(saving(before, spent_us));
        } else {
            // A saving measured while the load itself changed (calls left, a source
            // went quiet) says too much; old measures fade, so a lowered shard tries the
            // step up again in the end, and measures again if it must come back down.
            for r in self.ratio.iter_mut().flatten() {
                *r = 1.0 + (*r - 1.0) * RATIO_FADE;
            }
        }
        if (spent_us > budget_us || late) && self.step + 1 < COMPLEXITY_STEPS.len() {
            self.before = Some(spent_us);
            self.step += 1;
        } else if self.step > 0 && !late {
            let ratio = self.ratio[self.step - 1].unwrap_or(ASSUMED_STEP_RATIO);
            if f64::from(spent_us) * ratio < f64::from(budget_us) * RAISE_BELOW {
                self.step -= 1;
            }
        }
        self.step
    }
}

/// A step's ratio of cost before over after; a step never costs more.
fn saving(before_us: u32, after_us: u32) -> f64 {
    (f64::from(before_us) / f64::from(after_us.max(1))).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_thread_forgets_its_steps() {
        let mut d = Drift::default();
        assert_eq!(d.after_window(30_000, 14_000, false), 1);
        d.idle();
        assert_eq!(d.step(), 0);
        assert_eq!(d.after_window(10_000, 14_000, false), 0, "and measures afresh");
    }

    #[test]
    fn a_stream_fits_only_within_the_budget_counting_what_is_on_its_way() {
        let g = Gauges::default();
        g.committed.store(10_000, Ordering::Relaxed);
        assert!(refusal(&g, 4_000, 0, 14_000).is_none());
        g.pending.store(1_000, Ordering::Relaxed);
        let why = refusal(&g, 4_000, 0, 14_000).unwrap();
        assert!(why.contains("4000 µs") && why.contains("3000 µs left"), "{why}");
        // Replacing a stream frees what it claimed.
        assert!(refusal(&g, 4_000, 2_000, 14_000).is_none());
        g.taken_in(5_000);
        assert_eq!(g.pending.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_burst_of_unmeasured_streams_is_taken_on_half_the_budget_at_a_time() {
        let g = Gauges::default();
        assert!(refusal(&g, 9_000, 0, 14_000).is_none(), "the first always fits if the budget allows");
        g.unmeasured.store(6_000, Ordering::Relaxed);
        assert!(refusal(&g, 1_000, 0, 14_000).is_none());
        let why = refusal(&g, 2_000, 0, 14_000).unwrap();
        assert!(why.contains("still measuring") && why.contains("6000 µs"), "{why}");
        assert!(refusal(&g, crate::media::cost::IDLE_US, 0, 14_000).is_none(), "calls still join");
    }

    #[test]
    fn a_lowered_shard_takes_calls_but_no_new_streams() {
        let g = Gauges::default();
        g.step.store(1, Ordering::Relaxed);
        assert!(refusal(&g, 300, 0, 14_000).unwrap().contains("lowered complexity"));
        assert!(refusal(&g, crate::media::cost::IDLE_US, 0, 14_000).is_none());
    }

    #[test]
    fn complexity_steps_down_over_budget_and_up_only_when_the_measured_saving_says_it_fits() {
        let mut d = Drift::default();
        assert_eq!(d.after_window(15_000, 14_000, false), 1);
        // Speech: the step saved 2.7×, so raising now would overload again.
        assert_eq!(d.after_window(5_500, 14_000, false), 1);
        assert_eq!(d.after_window(5_500, 14_000, false), 1);
        // Calls left: back at 10 the rest fits.
        assert_eq!(d.after_window(4_000, 14_000, false), 0);
        assert_eq!(d.after_window(11_000, 14_000, false), 0);
    }

    #[test]
    fn a_thread_out_of_time_steps_down_at_once_and_measures_the_step_over_the_next_whole_window() {
        let ms = std::time::Duration::from_millis;
        // 70 % of a core: out of time past 85 %.
        assert!(!overloaded(ms(80), ms(100), 14_000), "over budget, not out of time: the second judges");
        assert!(overloaded(ms(90), ms(100), 14_000));
        let mut d = Drift::default();
        assert_eq!(d.step_down_now(18_000), 1);
        assert_eq!(d.step_down_now(18_000), 2, "still out of time 100 ms on");
        assert_eq!(d.step_down_now(18_000), 2, "nothing lower");
        assert_eq!(d.after_window(12_000, 14_000, false), 2, "the window of the steps judges nothing");
        // The next whole one measures the last step: 18,000 → 6,000 saved 3×, so back
        // at 6 the cost would be 18,000 again: it stays.
        assert_eq!(d.after_window(6_000, 14_000, false), 2);
    }

    #[test]
    fn a_step_taken_on_a_prediction_is_measured_frames_over_frames() {
        let mut d = Drift::default();
        assert_eq!(d.step_down_ahead(), 1);
        d.saved(12_000, 4_000);
        assert_eq!(d.after_window(7_000, 14_000, false), 1, "the window of the step judges nothing");
        // Frames 4,000 and sends 3,000: measured against the thread's CPU the step would
        // look like 12,000 / 7,000 = 1.7×, predict 12,000 back at 10 and raise into
        // 3,000 + 12,000 = 15,000. Frames over frames, 3×: it holds.
        assert_eq!(d.after_window(7_000, 14_000, false), 1);
        assert_eq!(d.after_window(3_000, 14_000, false), 0, "calls left: now it fits");
    }

    #[test]
    fn late_frames_step_complexity_down_and_hold_new_work_within_budget() {
        let mut d = Drift::default();
        assert_eq!(d.after_window(5_000, 14_000, true), 1, "late though within budget");
        assert_eq!(d.after_window(3_000, 14_000, true), 2);
        assert_eq!(d.after_window(2_000, 14_000, true), 2, "no step below the last");
        assert_eq!(d.after_window(1_000, 14_000, false), 1, "on time again: back up");
        let g = Gauges::default();
        g.late_hold.store(LATE_HOLD_WINDOWS, Ordering::Relaxed);
        assert!(refusal(&g, crate::media::cost::IDLE_US, 0, 14_000).unwrap().contains("went late"));
        assert!(refusal(&g, 300, 300, 14_000).is_none(), "a stream no dearer than the one it replaces");
    }

    #[test]
    fn a_step_that_saves_nothing_is_undone_as_soon_as_the_cost_falls() {
        let mut d = Drift::default();
        assert_eq!(d.after_window(20_000, 14_000, false), 1);
        assert_eq!(d.after_window(20_000, 14_000, false), 2, "not the encoders: lowered further");
        assert_eq!(d.after_window(20_000, 14_000, false), 2, "nothing lower");
        assert_eq!(d.after_window(6_000, 14_000, false), 1);
        assert_eq!(d.after_window(6_000, 14_000, false), 0);
    }

    #[test]
    fn a_saving_measured_while_the_load_fell_fades_and_the_step_is_tried_again() {
        let mut d = Drift::default();
        assert_eq!(d.after_window(15_000, 14_000, false), 1);
        // Calls left in the same second: the step looks like it saved 2.1×.
        assert_eq!(d.after_window(7_000, 14_000, false), 1);
        let mut windows = 1;
        while d.after_window(7_000, 14_000, false) == 1 {
            windows += 1;
            assert!(windows < 60, "never tried the step up again");
        }
        assert!(windows >= 4, "not at once: {windows}");
    }

    #[test]
    fn claims_hold_until_a_whole_second_was_measured() {
        assert_eq!(settle(300, 450, true, true), 450, "drifted up: at once");
        // Measured cheaper (music, or a pause): down slowly, to it in the end.
        let mut claim = 300;
        for _ in 0..3 {
            claim = settle(claim, 120, true, true);
        }
        assert!((200..300).contains(&claim), "{claim}");
        for _ in 0..60 {
            claim = settle(claim, 120, true, true);
        }
        assert_eq!(claim, 120);
        assert_eq!(settle(300, 40, false, true), 300, "started mid-window, or paused");
        assert_eq!(settle(300, 3, false, false), 3, "stopped");
    }
}
