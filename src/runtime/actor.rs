//! One task per plugin: it owns the plugin's [`Instance`] and delivers events one at
//! a time, in order. A trap kills only the instance: the next event runs on a fresh
//! one, which first receives `on-start` again so it can re-read its settings. Calls
//! it started live on in the call manager.
//!
//! Limits ([`super::limits`]): an event that spends its CPU budget is interrupted
//! (a trap like any other); memory growth past the cap traps; restarts back off
//! (50 ms doubling to 5 s), and `max_traps` traps within the crash window disable
//! the plugin until the host restarts.
//!
//! Audio a plugin listens to waits in a queue of its own ([`super::Ears`]); the actor
//! takes from it only when no event waits, so audio never holds an event back.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::{Compiled, Event, Instance, PluginError, SwapReport, Tenant};
use crate::calls::HeardAudio;

pub(super) struct Actor {
    pub tenant: Tenant,
    pub compiled: Compiled,
}

/// Drops an instance off the event path: tearing one down returns its memory, tables
/// and stack to the pool (~270 µs measured), which the next event need not wait for.
fn retire(instance: Option<Instance>) {
    if let Some(old) = instance {
        tokio::task::spawn_blocking(move || drop(old));
    }
}

impl Actor {
    fn name(&self) -> String {
        self.tenant.name.to_string()
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Event>, mut audio: mpsc::Receiver<HeardAudio>) {
        *self.tenant.counters.version.lock() = self.compiled.version.clone();
        let mut live: Option<Instance> = None;
        // What `on-start` was given: replayed to a fresh instance after a trap.
        let mut started: Option<crate::telegram::Identity> = None;
        let mut traps: VecDeque<Instant> = VecDeque::new();
        loop {
            // Read afresh: a swap may bring new limits.
            let limits = self.tenant.limits;
            let event = tokio::select! {
                biased;
                event = rx.recv() => match event {
                    Some(event) => event,
                    None => break,
                },
                Some(heard) = audio.recv() => Event::Audio(heard),
            };
            if let Event::Barrier(reply) = event {
                let _ = reply.send(());
                continue;
            }
            if let Event::Enable = event {
                traps.clear();
                self.tenant.counters.disabled.store(false, Ordering::Relaxed);
                continue;
            }
            if let Event::Swap(next, reply) = event {
                // Between two events: the one before finished on the old version, the
                // ones queued behind this go to whichever version is serving after it.
                // A new version is a fresh start, even for a plugin disabled by traps.
                let (compiled, fresh, tenant) = *next;
                let old = tenant.map(|t| std::mem::replace(&mut self.tenant, t));
                let r = self.swap(&mut live, compiled, fresh, started.as_ref()).await;
                match (&r, old) {
                    (Ok(_), _) => {
                        traps.clear();
                        self.tenant.counters.disabled.store(false, Ordering::Relaxed);
                    }
                    (Err(_), Some(old)) => self.tenant = old,
                    (Err(_), None) => {}
                }
                let _ = reply.send(r);
                continue;
            }
            let counters = &self.tenant.counters;
            if counters.disabled.load(Ordering::Relaxed) {
                event.fail(PluginError::Disabled { name: self.name() });
                continue;
            }
            if live.is_none() && !traps.is_empty() {
                let window = Duration::from_secs(limits.crash_window_s as u64);
                while traps.front().is_some_and(|t| t.elapsed() > window) {
                    traps.pop_front();
                }
                if traps.len() >= limits.max_traps as usize {
                    counters.disabled.store(true, Ordering::Relaxed);
                    tracing::error!(
                        plugin = %self.tenant.name,
                        "disabled: {} traps within {} s; its calls keep playing — fix it and a new version (hot reload, \
                         the admin API) brings it back, or enable it through the admin API",
                        traps.len(),
                        window.as_secs()
                    );
                    event.fail(PluginError::Disabled { name: self.name() });
                    continue;
                }
                tokio::time::sleep(limits.backoff(traps.len() as u32)).await;
            }
            let mut instance = match live.take() {
                Some(i) => i,
                None => match Instance::new(&self.tenant, &self.compiled).await {
                    Ok(mut fresh) => {
                        if let Some(id) = &started
                            && !matches!(event, Event::Start(_))
                            && fresh.start(id).await.is_err()
                        {
                            traps.push_back(Instant::now());
                            event.fail(PluginError::Gone { name: self.name() });
                            continue;
                        }
                        fresh
                    }
                    Err(e) => {
                        tracing::error!(plugin = %self.tenant.name, "{e}");
                        event.fail(e);
                        continue;
                    }
                },
            };
            let delivered = match event {
                Event::Start(id) => {
                    let r = instance.start(&id).await;
                    started = Some(id);
                    r
                }
                Event::Host(ev) => instance.handle(&ev).await,
                Event::Audio(heard) => instance.hear(heard).await,
                Event::CustomApi(call, reply) => {
                    let r = instance.custom_api(call).await;
                    let ok = r.as_ref().map(drop).map_err(Clone::clone);
                    let _ = reply.send(r);
                    ok
                }
                // Answered before an instance is needed.
                Event::Barrier(_) | Event::Enable | Event::Swap(..) => Ok(()),
            };
            match delivered {
                Ok(()) => {
                    self.tenant.counters.memory.store(instance.linear_memory() as u64, Ordering::Relaxed);
                    live = Some(instance);
                }
                Err(_) => {
                    // The instance is dead after a trap; the next event gets a new one.
                    retire(Some(instance));
                    traps.push_back(Instant::now());
                }
            }
        }
    }

    /// Replaces the running version with `compiled`, handing its state over when both
    /// sides speak the `state` interface (an instance that is not running — after a
    /// trap, or before the first event — has none to hand). A new version that traps in
    /// `on-start` never replaces the old one; a `restore` that traps falls back to a
    /// fresh start of the new version.
    async fn swap(
        &mut self,
        live: &mut Option<Instance>,
        compiled: Compiled,
        mut fresh: Instance,
        started: Option<&crate::telegram::Identity>,
    ) -> Result<SwapReport, PluginError> {
        let t0 = Instant::now();
        let saved = match live.as_mut() {
            Some(old) => old.save().await.ok().flatten().filter(|b| !b.is_empty()),
            None => None,
        };
        let mut restored = false;
        if let Some(bytes) = saved {
            match fresh.restore(bytes).await {
                Ok(r) => restored = r, // false: the new version has no `state`, it starts fresh
                Err(e) => {
                    tracing::warn!(plugin = %self.tenant.name, "the new version's restore failed ({e}); starting it fresh");
                    fresh = Instance::new(&self.tenant, &compiled).await?;
                }
            }
        }
        if !restored && let Some(id) = started {
            fresh.start(id).await?;
        }
        *self.tenant.counters.version.lock() = compiled.version.clone();
        self.tenant.counters.memory.store(fresh.linear_memory() as u64, Ordering::Relaxed);
        self.compiled = compiled;
        retire(live.replace(fresh));
        self.tenant.counters.reloads.fetch_add(1, Ordering::Relaxed);
        Ok(SwapReport { restored, prepare: Duration::ZERO, swap: t0.elapsed() })
    }
}
