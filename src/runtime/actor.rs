//! One task per plugin: it owns the plugin's `Store` and instance and delivers
//! events one at a time, in order. A trap kills only the instance: the error is
//! logged with the plugin's name and the next event runs on a fresh instance from
//! the `InstancePre`, which first receives `on-start` again so it can re-read its
//! settings. Calls it started live on in the call manager.
//!
//! Limits ([`super::limits`]): an event that spends its CPU budget is interrupted
//! (a trap like any other); memory growth past the cap traps; restarts back off
//! (50 ms doubling to 5 s), and `max_traps` traps within the crash window disable
//! the plugin until the host restarts.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::exports::wasmcalls::bot::handler::{ApiRequest, ApiResponse};
use super::bindings::{Bot, BotPre, wasmcalls::bot::types::Invite};
use super::host::PluginState;
use super::limits::Limits;
use super::{Event, PluginError};
use crate::calls::CallManager;
use wasmtime::component::Instance;

/// Everything needed to make an instance of a plugin, shared by its actor and the
/// host (which builds a reload's new instance off the event path).
#[derive(Clone)]
pub(super) struct Recipe {
    pub name: Arc<str>,
    pub manager: CallManager,
    pub settings: Arc<str>,
    pub counters: Arc<super::PluginCounters>,
    pub limits: Limits,
    pub grants: Arc<super::grants::Grants>,
}

pub(super) struct Actor {
    pub recipe: Recipe,
    pub pre: BotPre<PluginState>,
}

impl std::ops::Deref for Actor {
    type Target = Recipe;
    fn deref(&self) -> &Recipe {
        &self.recipe
    }
}

pub(super) struct Live {
    store: Store<PluginState>,
    bot: Bot,
    instance: Instance,
}

/// The optional state-handover interface (`wit/bot.wit`).
const STATE_INTERFACE: &str = "wasmcalls:bot/state@0.1.0";

/// Drops an instance off the event path: tearing one down returns its memory, tables
/// and stack to the pool (~270 µs measured), which the next event need not wait for.
fn retire(instance: Option<Live>) {
    if let Some(old) = instance {
        tokio::task::spawn_blocking(move || drop(old));
    }
}

impl Actor {
    async fn instantiate(&self) -> Result<Live, PluginError> {
        self.recipe.instantiate(&self.pre).await
    }
}

impl Recipe {
    /// A fresh instance in a fresh store, with the plugin's limits armed.
    pub(super) async fn instantiate(&self, pre: &BotPre<PluginState>) -> Result<Live, PluginError> {
        let state = PluginState::new(
            self.name.clone(),
            self.manager.clone(),
            self.settings.clone(),
            &self.limits,
            self.counters.logs_dropped.clone(),
            self.grants.clone(),
        );
        let mut store = Store::new(pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        let budget = self.limits.cpu_budget();
        store.epoch_deadline_callback(move |ctx| {
            // Each tick: yield to the executor, or stop an event past its budget.
            if ctx.data().cpu.guest_time() > budget {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.data_mut().cpu.begin();
        store.set_epoch_deadline(1);
        let failed = |e: wasmtime::Error| PluginError::Trap {
            name: self.name.to_string(),
            event: "instantiation",
            reason: e.root_cause().to_string(),
        };
        let instance = pre.instance_pre().instantiate_async(&mut store).await.map_err(failed)?;
        let bot = Bot::new(&mut store, &instance).map_err(failed)?;
        Ok(Live { store, bot, instance })
    }
}

impl Actor {
    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Event>) {
        let mut live: Option<Live> = None;
        // The id `on-start` was given: replayed to a fresh instance after a trap.
        let mut started: Option<i64> = None;
        let mut traps: VecDeque<Instant> = VecDeque::new();
        while let Some(event) = rx.recv().await {
            if self.counters.disabled.load(Ordering::Relaxed) {
                event.fail(PluginError::Disabled { name: self.name.to_string() });
                continue;
            }
            if live.is_none() && !traps.is_empty() {
                let window = Duration::from_secs(self.limits.crash_window_s as u64);
                while traps.front().is_some_and(|t| t.elapsed() > window) {
                    traps.pop_front();
                }
                if traps.len() >= self.limits.max_traps as usize {
                    self.counters.disabled.store(true, Ordering::Relaxed);
                    tracing::error!(
                        plugin = %self.name,
                        "disabled: {} traps within {} s; fix it and restart the host (its calls keep playing)",
                        traps.len(),
                        window.as_secs()
                    );
                    event.fail(PluginError::Disabled { name: self.name.to_string() });
                    continue;
                }
                tokio::time::sleep(self.limits.backoff(traps.len() as u32)).await;
            }
            if live.is_none() {
                match self.instantiate().await {
                    Ok(mut l) => {
                        if let Some(id) = started
                            && !matches!(event, Event::Start(_))
                            && self.deliver(&mut l, Event::Start(id)).await.is_err()
                        {
                            traps.push_back(Instant::now());
                            event.fail(PluginError::Gone { name: self.name.to_string() });
                            continue;
                        }
                        live = Some(l);
                    }
                    Err(e) => {
                        tracing::error!(plugin = %self.name, "{e}");
                        event.fail(e);
                        continue;
                    }
                }
            }
            if let Event::Swap(next, reply) = event {
                // Between two events: the one before finished on the old version, the
                // ones queued behind this go to whichever version is serving after it.
                let (pre, fresh) = *next;
                let r = self.swap(&mut live, pre, fresh, started).await;
                if r.is_ok() {
                    traps.clear();
                }
                let _ = reply.send(r);
                continue;
            }
            if let Event::Start(id) = event {
                started = Some(id);
            }
            let l = live.as_mut().expect("instantiated above");
            if self.deliver(l, event).await.is_err() {
                // The instance is dead after a trap; the next event gets a new one.
                retire(live.take());
                traps.push_back(Instant::now());
            }
        }
    }

    /// Runs one event on the instance; Err means it trapped (already logged and answered).
    async fn deliver(&self, l: &mut Live, event: Event) -> Result<(), ()> {
        l.store.data_mut().cpu.begin();
        l.store.set_epoch_deadline(1);
        let t0 = std::time::Instant::now();
        let r = self.deliver_inner(l, event).await;
        self.counters.latency.observe(t0.elapsed().as_secs_f64());
        r
    }

    async fn deliver_inner(&self, l: &mut Live, event: Event) -> Result<(), ()> {
        let h = l.bot.wasmcalls_bot_handler();
        let s = &mut l.store;
        let (what, result) = match event {
            Event::Start(id) => ("on-start", h.call_on_start(s, id).await.map(drop)),
            Event::StreamEnd(chat) => ("on-stream-end", h.call_on_stream_end(s, chat).await),
            Event::Kicked(chat) => ("on-kicked", h.call_on_kicked(s, chat).await),
            Event::Invite(i) => {
                let invite = Invite { chat: i.chat, inviter: i.inviter, message_id: i.message_id };
                ("on-group-call-invite", h.call_on_group_call_invite(s, invite).await)
            }
            Event::RawUpdate(json) => ("on-raw-update", h.call_on_raw_update(s, &json).await),
            // Handled by `run` before delivery; never reaches an instance.
            Event::Swap(_, reply) => {
                let _ = reply.send(Err(PluginError::Gone { name: self.name.to_string() }));
                return Ok(());
            }
            Event::Bench(rounds, reply) => {
                let r = self.bench(l, rounds).await;
                let ok = r.is_ok();
                let _ = reply.send(r);
                return if ok { Ok(()) } else { Err(()) };
            }
            Event::CustomApi(req, reply) => {
                let request = ApiRequest { path: req.path, body: req.body };
                match h.call_on_custom_api(s, &request).await {
                    Ok(ApiResponse { status, body }) => {
                        let _ = reply.send(Ok(super::ApiReply { status, body }));
                        ("on-custom-api", Ok(()))
                    }
                    Err(e) => {
                        let err = self.trapped("on-custom-api", &e);
                        let _ = reply.send(Err(err));
                        return Err(());
                    }
                }
            }
        };
        self.counters.delivered.fetch_add(1, Ordering::Relaxed);
        result.map_err(|e| {
            self.trapped(what, &e);
        })
    }

    /// Replaces the running version with `pre`, handing its state over when both sides
    /// speak the `state` interface. A new version that cannot be instantiated, or traps
    /// in `on-start`, never replaces the old one; a `restore` that traps falls back to a
    /// fresh start of the new version.
    async fn swap(
        &mut self,
        live: &mut Option<Live>,
        pre: BotPre<PluginState>,
        mut fresh: Live,
        started: Option<i64>,
    ) -> Result<super::SwapReport, PluginError> {
        let t0 = Instant::now();
        let saved = match live.as_mut() {
            Some(old) => self.call_state(old, "save", None).await.ok().flatten().filter(|b| !b.is_empty()),
            None => None,
        };
        let mut restored = false;
        if let Some(bytes) = saved {
            match self.call_state(&mut fresh, "restore", Some(bytes)).await {
                Ok(Some(_)) => restored = true,
                Ok(None) => {} // the new version has no `state`: it starts fresh
                Err(e) => {
                    tracing::warn!(plugin = %self.name, "the new version's restore failed ({e}); starting it fresh");
                    fresh = self.recipe.instantiate(&pre).await?;
                }
            }
        }
        if !restored && let Some(id) = started {
            let h = fresh.bot.wasmcalls_bot_handler();
            fresh.store.data_mut().cpu.begin();
            fresh.store.set_epoch_deadline(1);
            if let Err(e) = h.call_on_start(&mut fresh.store, id).await {
                return Err(PluginError::Trap {
                    name: self.name.to_string(),
                    event: "on-start",
                    reason: e.root_cause().to_string(),
                });
            }
        }
        self.pre = pre;
        retire(live.replace(fresh));
        self.counters.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(super::SwapReport { restored, prepare: Duration::ZERO, swap: t0.elapsed() })
    }

    /// Calls `save` (no argument) or `restore(bytes)` of the optional state interface.
    /// `Ok(None)`: the component does not export it.
    async fn call_state(&self, l: &mut Live, func: &str, arg: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, PluginError> {
        let Some(iface) = l.instance.get_export_index(&mut l.store, None, STATE_INTERFACE) else { return Ok(None) };
        let Some(index) = l.instance.get_export_index(&mut l.store, Some(&iface), func) else { return Ok(None) };
        let trap = |e: wasmtime::Error| PluginError::Trap {
            name: self.name.to_string(),
            event: if arg.is_some() { "restore" } else { "save" },
            reason: e.root_cause().to_string(),
        };
        l.store.data_mut().cpu.begin();
        l.store.set_epoch_deadline(1);
        match &arg {
            None => {
                let f = l.instance.get_typed_func::<(), (Vec<u8>,)>(&mut l.store, &index).map_err(trap)?;
                Ok(Some(f.call_async(&mut l.store, ()).await.map_err(trap)?.0))
            }
            Some(bytes) => {
                let f = l.instance.get_typed_func::<(Vec<u8>,), ()>(&mut l.store, &index).map_err(trap)?;
                f.call_async(&mut l.store, (bytes.clone(),)).await.map_err(trap)?;
                Ok(Some(Vec::new()))
            }
        }
    }

    async fn bench(&self, l: &mut Live, rounds: usize) -> Result<super::BenchReport, PluginError> {
        let mut report = super::BenchReport::default();
        let h = l.bot.wasmcalls_bot_handler();
        for _ in 0..rounds {
            let t = std::time::Instant::now();
            h.call_on_raw_update(&mut l.store, "ping").await.map_err(|e| self.trapped("on-raw-update", &e))?;
            report.dispatch.push(t.elapsed());
        }
        for _ in 0..rounds.min(1000) {
            let t = std::time::Instant::now();
            let fresh = self.instantiate().await?;
            report.instantiate.push(t.elapsed());
            drop(fresh);
        }
        Ok(report)
    }

    fn trapped(&self, event: &'static str, e: &wasmtime::Error) -> PluginError {
        let n = self.counters.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        let reason = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                format!("it used its CPU budget of {} ms for one event", self.limits.cpu_ms_per_event)
            }
            Some(Trap::StackOverflow) => "it overflowed its stack (unbounded recursion?)".to_owned(),
            _ if format!("{e:#}").contains("forcing trap when growing memory") => {
                format!("it reached its memory cap of {} MiB", self.limits.memory_mb)
            }
            // The trap's own message; the wasm backtrace would only fill the log.
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        let err = PluginError::Trap { name: self.name.to_string(), event, reason };
        tracing::error!(plugin = %self.name, restarts = n, "{err}; restarting it for the next event");
        err
    }
}
