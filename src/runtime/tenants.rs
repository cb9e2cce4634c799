//! Tenants changed while the host runs: a plugin added, replaced (new component,
//! settings, grants or limits — its state handed over), disabled, enabled or removed,
//! without touching any other plugin or its calls.
//!
//! Changes come in two steps so a batch (a config reload) is all or nothing: every
//! plugin is [`PluginHost::prepare`]d first — read, compiled, linked, instantiated once
//! — and only when all of them are ready are they added or swapped in.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{Compiled, Event, Instance, Plugin, PluginError, PluginHost, PluginSpec, SwapReport};
use crate::calls::HeardAudio;
use crate::telegram::Identity;

/// A plugin ready to be added, or swapped in for the one of its name.
pub struct Prepared {
    tenant: super::Tenant,
    compiled: Compiled,
    fresh: Instance,
    /// For a new plugin: its event queue's length and its audio queue.
    new: Option<(usize, mpsc::Receiver<HeardAudio>)>,
    prepared_in: std::time::Duration,
}

impl Prepared {
    pub fn name(&self) -> &str {
        &self.tenant.name
    }

    /// Whether it is a new plugin rather than a new version of a running one.
    pub fn is_new(&self) -> bool {
        self.new.is_some()
    }
}

impl PluginHost {
    /// Readies `spec` to be added (no plugin of its name runs) or swapped in (one
    /// does: it keeps its counters and the audio it listens to). Nothing changes yet.
    pub async fn prepare(&self, spec: &PluginSpec) -> Result<Prepared, PluginError> {
        let t0 = Instant::now();
        let running = self.with_plugin(&spec.name, |p| (p.tenant.counters.clone(), p.tenant.ears.clone())).ok();
        let (tenant, new) = match running {
            Some((counters, ears)) => {
                self.admit_memory(spec)?;
                (self.tenant_with(spec, counters, ears), None)
            }
            None => {
                self.admit(spec)?;
                let (tenant, audio) = self.tenant(spec);
                (tenant, Some((spec.limits.queue.max(1), audio)))
            }
        };
        let compiled = self.compile(&spec.name, &spec.wasm).await?;
        let fresh = Instance::new(&tenant, &compiled).await?;
        Ok(Prepared { tenant, compiled, fresh, new, prepared_in: t0.elapsed() })
    }

    /// Adds a prepared new plugin, started with the host's accounts if the host has
    /// started; or swaps a new version in. A plugin of the same name added meanwhile
    /// is refused.
    pub async fn commit(&self, p: Prepared) -> Result<SwapReport, PluginError> {
        let Prepared { tenant, compiled, fresh, new, prepared_in } = p;
        let name = tenant.name.to_string();
        let Some((queue, audio)) = new else {
            let report = self.ask(&name, |reply| Event::Swap(Box::new((compiled, fresh, Some(tenant.clone()))), reply));
            let mut report = report.await?;
            report.prepare = prepared_in;
            // Dispatch reads grants from here: the new ones from the next event on.
            if let Some(entry) = self.plugins.lock().iter_mut().find(|e| *e.tenant.name == *name) {
                entry.tenant = tenant;
            }
            tracing::info!(plugin = %name, restored = report.restored, "replaced: new version, settings, grants and limits");
            return Ok(report);
        };
        // Instantiated once to prove it can be; the actor makes its own at the first event.
        drop(fresh);
        let (tx, rx) = mpsc::channel(queue);
        {
            let mut plugins = self.plugins.lock();
            if plugins.iter().any(|e| *e.tenant.name == *name) {
                return Err(PluginError::Duplicate(name));
            }
            tokio::spawn(super::actor::Actor { tenant: tenant.clone(), compiled }.run(rx, audio));
            let plugin = Plugin { tx, tenant };
            if let Some(me) = self.me.lock().clone() {
                Self::send(&plugin, Event::Start(me));
            }
            plugins.push(plugin);
        }
        tracing::info!(plugin = %name, "added ({:.1} ms to prepare)", prepared_in.as_secs_f64() * 1e3);
        Ok(SwapReport { restored: false, prepare: prepared_in, swap: Default::default() })
    }

    /// Removes `plugin`: it gets no more events, its queued ones are dropped, and the
    /// calls it joined are left (other plugins' calls are untouched). The chats it left.
    pub async fn remove(&self, plugin: &str) -> Result<Vec<i64>, PluginError> {
        let removed = {
            let mut plugins = self.plugins.lock();
            let at = plugins.iter().position(|p| &*p.tenant.name == plugin);
            at.map(|i| plugins.remove(i)).ok_or_else(|| PluginError::Unknown(plugin.to_owned()))?
        };
        // Its actor ends with the queue's last sender; the instance goes with it.
        let chats: Vec<i64> = std::mem::take(&mut *removed.tenant.counters.joined.lock()).into_iter().collect();
        drop(removed);
        let joined = self.manager.joined_chats();
        let mut left = Vec::new();
        for chat in chats.into_iter().filter(|c| joined.contains(c)) {
            match self.manager.leave(chat).await {
                Ok(()) => left.push(chat),
                Err(e) => tracing::warn!(plugin, chat, "leaving the removed plugin's call failed: {e}"),
            }
        }
        tracing::info!(plugin, "removed; left its calls in {left:?}");
        Ok(left)
    }

    /// Stops delivering `plugin` events (each is refused as `disabled`); its calls
    /// keep playing.
    pub fn disable(&self, plugin: &str) -> Result<(), PluginError> {
        self.with_plugin(plugin, |p| p.tenant.counters.disabled.store(true, Ordering::Relaxed))?;
        tracing::info!(plugin, "disabled by the operator; its calls keep playing");
        Ok(())
    }

    /// Delivers `plugin` events again, with a clean record of traps: after the
    /// events queued before this, which are refused while it is disabled.
    pub fn enable(&self, plugin: &str) -> Result<(), PluginError> {
        self.with_plugin(plugin, |p| Self::send(p, Event::Enable))?;
        tracing::info!(plugin, "enabled by the operator");
        Ok(())
    }

    /// The names of the plugins running, in load order.
    pub fn names(&self) -> Vec<String> {
        self.plugins.lock().iter().map(|p| p.tenant.name.to_string()).collect()
    }

    /// Started plugins get `on-start` with these accounts; remembered for plugins
    /// added later.
    pub(super) fn remember_start(&self, me: &Identity) {
        *self.me.lock() = Some(me.clone());
    }
}
