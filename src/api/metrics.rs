//! `GET /metrics`: calls by state and by account, frames and late frames, pacing deviation,
//! plugin events / latency / traps / restarts / reloads, API requests by status.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;

use super::ApiState;
use crate::calls::CallState;
use crate::metrics::Exposition;

pub(super) fn render(state: &ApiState, requests: &HashMap<u16, u64>) -> String {
    let mut e = Exposition::default();

    let states = state.manager.states();
    e.family("wasmcalls_calls", "gauge", "Joined group calls, by state.");
    for (s, name) in [
        (CallState::Connecting, "connecting"),
        (CallState::Playing, "playing"),
        (CallState::Paused, "paused"),
        (CallState::Idle, "idle"),
    ] {
        let n = states.iter().filter(|x| **x == s).count();
        e.sample("wasmcalls_calls", &[("state", name)], n as f64);
    }

    let accounts = state.manager.accounts();
    if !accounts.is_empty() {
        e.family("wasmcalls_account_calls", "gauge", "Calls joined through each account.");
        for (name, n) in &accounts {
            e.sample("wasmcalls_account_calls", &[("account", name)], *n as f64);
        }
    }

    let t = state.media.totals();
    e.family("wasmcalls_frames_sent_total", "counter", "20 ms audio frames sent, over all calls.").sample(
        "wasmcalls_frames_sent_total",
        &[],
        t.frames_sent.load(Relaxed) as f64,
    );
    e.family("wasmcalls_late_frames_total", "counter", "Frames sent more than 5 ms after their deadline.").sample(
        "wasmcalls_late_frames_total",
        &[],
        t.late_frames.load(Relaxed) as f64,
    );
    e.family(
        "wasmcalls_late_frames_by_cause_total",
        "counter",
        "Late frames by what held their pacer thread up the longest before each: not_running (it woke after its \
         timer or was preempted), commands, preparing (reading, decoding, encoding ahead), datagrams, sends (the \
         frames sent before it in the same line).",
    );
    for cause in crate::media::stats::LateCause::ALL {
        e.sample("wasmcalls_late_frames_by_cause_total", &[("cause", cause.name())], t.late_because(cause) as f64);
    }
    let shards = state.media.shards();
    e.family("wasmcalls_shard_busy_ratio", "gauge", "A pacer thread's CPU time per wall time over the last second.");
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_busy_ratio", &[("shard", &i.to_string())], s.busy);
    }
    e.family("wasmcalls_shard_calls", "gauge", "Calls a pacer thread holds.");
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_calls", &[("shard", &i.to_string())], s.calls as f64);
    }
    e.family(
        "wasmcalls_shard_committed_ratio",
        "gauge",
        "What a pacer thread's calls cost or are admitted to cost, as a share of a core (admission keeps it under its budget).",
    );
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_committed_ratio", &[("shard", &i.to_string())], s.committed);
    }
    e.family(
        "wasmcalls_shard_complexity",
        "gauge",
        "The complexity a pacer thread's encoders are capped at: below 10 while their cost drifted past its budget.",
    );
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_complexity", &[("shard", &i.to_string())], f64::from(s.complexity));
    }
    e.family(
        "wasmcalls_shard_late_hold",
        "gauge",
        "1 while a pacer thread takes no new work because its frames went late though its budget had room.",
    );
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_late_hold", &[("shard", &i.to_string())], f64::from(u8::from(s.late_hold)));
    }
    e.family(
        "wasmcalls_shard_realtime",
        "gauge",
        "1 when a pacer thread runs with real-time scheduling; 0: frames can go late when the machine is busy.",
    );
    for (i, s) in shards.iter().enumerate() {
        e.sample("wasmcalls_shard_realtime", &[("shard", &i.to_string())], f64::from(u8::from(s.realtime)));
    }
    e.family(
        "wasmcalls_admission_refused_total",
        "counter",
        "Calls and streams refused because no pacer thread had room to keep them on time.",
    )
    .sample("wasmcalls_admission_refused_total", &[], t.admission_refused.load(Relaxed) as f64);
    e.family(
        "wasmcalls_calls_moved_total",
        "counter",
        "Calls moved to another pacer thread to play a stream their own had no room for.",
    )
    .sample("wasmcalls_calls_moved_total", &[], t.calls_moved.load(Relaxed) as f64);
    let feeds = state.media.feeds();
    e.family(
        "wasmcalls_shared_feeds",
        "gauge",
        "Live sources read, decoded and encoded once for every call playing them.",
    )
    .sample("wasmcalls_shared_feeds", &[], feeds.len() as f64);
    e.family("wasmcalls_shared_listeners", "gauge", "Calls playing a shared live source.").sample(
        "wasmcalls_shared_listeners",
        &[],
        feeds.iter().map(|f| f.listeners).sum::<usize>() as f64,
    );
    e.family("wasmcalls_heard_packets_total", "counter", "RTP packets heard from other participants, over all calls.")
        .sample("wasmcalls_heard_packets_total", &[], t.heard_packets.load(Relaxed) as f64);
    e.family("wasmcalls_call_crashes_total", "counter", "Calls dropped because handling them panicked.").sample(
        "wasmcalls_call_crashes_total",
        &[],
        t.call_crashes.load(Relaxed) as f64,
    );
    e.family("wasmcalls_pacing_deviation_seconds", "histogram", "|send time - deadline| per frame.").histogram(
        "wasmcalls_pacing_deviation_seconds",
        &[],
        &t.deviation,
    );

    let plugins = state.plugins.counters();
    e.family("wasmcalls_plugin_events_total", "counter", "Events a plugin handled without trapping.");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_events_total", &[("plugin", name)], c.delivered.load(Relaxed) as f64);
    }
    e.family("wasmcalls_plugin_event_duration_seconds", "histogram", "Time an event spent in the plugin.");
    for (name, c) in &plugins {
        e.histogram("wasmcalls_plugin_event_duration_seconds", &[("plugin", name)], &c.latency);
    }
    e.family("wasmcalls_plugin_traps_total", "counter", "Traps (panics, aborts) in a plugin.");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_traps_total", &[("plugin", name)], c.restarts.load(Relaxed) as f64);
    }
    e.family("wasmcalls_plugin_restarts_total", "counter", "Fresh instances made after a trap.");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_restarts_total", &[("plugin", name)], c.restarts.load(Relaxed) as f64);
    }
    e.family("wasmcalls_plugin_reloads_total", "counter", "Hot reloads of a plugin's component.");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_reloads_total", &[("plugin", name)], c.reloads.load(Relaxed) as f64);
    }
    e.family(
        "wasmcalls_plugin_audio_dropped_total",
        "counter",
        "Audio batches a plugin listening to calls had no room for (it was slower than the audio).",
    );
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_audio_dropped_total", &[("plugin", name)], c.audio_dropped.load(Relaxed) as f64);
    }
    let live = state.manager.joined_chats();
    e.family("wasmcalls_plugin_calls", "gauge", "Calls a plugin joined that are still joined.");
    for (name, c) in &plugins {
        let n = c.live_calls(&live).len();
        e.sample("wasmcalls_plugin_calls", &[("plugin", name)], n as f64);
    }
    e.family("wasmcalls_plugin_disabled", "gauge", "1 while a plugin is disabled (by traps or by the operator).");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_disabled", &[("plugin", name)], f64::from(u8::from(c.disabled.load(Relaxed))));
    }
    e.family("wasmcalls_plugin_quota_refused_total", "counter", "Commands a plugin's quotas refused.");
    for (name, c) in &plugins {
        e.sample("wasmcalls_plugin_quota_refused_total", &[("plugin", name)], c.quota_refused.load(Relaxed) as f64);
    }

    e.family("wasmcalls_api_requests_total", "counter", "Custom API requests, by response status.");
    let mut codes: Vec<_> = requests.iter().collect();
    codes.sort();
    for (code, n) in codes {
        e.sample("wasmcalls_api_requests_total", &[("status", &code.to_string())], *n as f64);
    }
    e.finish()
}
