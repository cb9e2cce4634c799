//! One instance of a plugin: its `Store` (with the plugin's limits armed) and the
//! component's bindings. Every call into the plugin goes through here, and a trap
//! comes back as a [`PluginError::Trap`] naming its cause — CPU budget, memory cap,
//! stack overflow, or the trap's own message — without the wasm backtrace. After a
//! trap the instance is dead: the caller makes a fresh one.

use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::Bot;
use super::bindings::exports::wasmcalls::bot::handler::{ApiRequest, ApiResponse};
use super::bindings::wasmcalls::bot::types::Invite;
use super::host::PluginState;
use super::limits::MemoryCapReached;
use super::{ApiCall, ApiReply, Compiled, PluginError, Tenant};
use crate::calls::HostEvent;

/// The optional state-handover interface (`wit/v0.1/bot.wit`).
const STATE_INTERFACE: &str = "wasmcalls:bot/state@0.1.0";

/// A live instance of a plugin.
pub struct Instance {
    store: Store<PluginState>,
    bot: Bot,
    instance: wasmtime::component::Instance,
    tenant: Tenant,
}

impl Instance {
    /// A fresh instance in a fresh store, with the tenant's limits armed.
    pub(super) async fn new(tenant: &Tenant, compiled: &Compiled) -> Result<Instance, PluginError> {
        let mut store = Store::new(compiled.pre.engine(), PluginState::new(tenant));
        store.limiter(|s| &mut s.memory);
        let budget = tenant.limits.cpu_budget();
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
            name: tenant.name.to_string(),
            event: "instantiation",
            reason: e.root_cause().to_string(),
        };
        let instance = compiled.pre.instance_pre().instantiate_async(&mut store).await.map_err(failed)?;
        let bot = Bot::new(&mut store, &instance).map_err(failed)?;
        Ok(Instance { store, bot, instance, tenant: tenant.clone() })
    }

    /// Restarts the CPU meter for one call into the plugin.
    fn arm(&mut self) {
        self.store.data_mut().cpu.begin();
        self.store.set_epoch_deadline(1);
    }

    /// Runs one call into the plugin, timed and counted; a trap is logged and named.
    async fn run<T>(
        &mut self,
        event: &'static str,
        call: impl AsyncFnOnce(&mut Self) -> wasmtime::Result<T>,
    ) -> Result<T, PluginError> {
        self.arm();
        let t0 = Instant::now();
        let r = call(self).await;
        let counters = &self.tenant.counters;
        counters.latency.observe(t0.elapsed().as_secs_f64());
        match r {
            Ok(v) => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => Err(self.trapped(event, &e)),
        }
    }

    /// `on-start(my-id)`.
    pub async fn start(&mut self, my_id: i64) -> Result<(), PluginError> {
        self.run("on-start", async |i| i.bot.wasmcalls_bot_handler().call_on_start(&mut i.store, my_id).await).await
    }

    /// Delivers a host event to its handler.
    pub async fn handle(&mut self, ev: &HostEvent) -> Result<(), PluginError> {
        match ev {
            HostEvent::StreamEnd(chat) => {
                let chat = *chat;
                self.run("on-stream-end", async move |i| {
                    i.bot.wasmcalls_bot_handler().call_on_stream_end(&mut i.store, chat).await
                })
                .await
            }
            HostEvent::Kicked(chat) => {
                let chat = *chat;
                self.run("on-kicked", async move |i| {
                    i.bot.wasmcalls_bot_handler().call_on_kicked(&mut i.store, chat).await
                })
                .await
            }
            HostEvent::Invite(inv) => {
                let invite = Invite { chat: inv.chat, inviter: inv.inviter, message_id: inv.message_id };
                self.run("on-group-call-invite", async move |i| {
                    i.bot.wasmcalls_bot_handler().call_on_group_call_invite(&mut i.store, invite).await
                })
                .await
            }
            HostEvent::RawUpdate { json, .. } => {
                self.run("on-raw-update", async |i| {
                    i.bot.wasmcalls_bot_handler().call_on_raw_update(&mut i.store, json).await
                })
                .await
            }
        }
    }

    /// `on-custom-api(request)` and the plugin's answer.
    pub async fn custom_api(&mut self, call: ApiCall) -> Result<ApiReply, PluginError> {
        let request = ApiRequest { path: call.path, body: call.body };
        let ApiResponse { status, body } = self
            .run("on-custom-api", async |i| {
                i.bot.wasmcalls_bot_handler().call_on_custom_api(&mut i.store, &request).await
            })
            .await?;
        Ok(ApiReply { status, body })
    }

    /// The state to hand to a new version (`None`: the plugin has no `state` interface).
    pub(super) async fn save(&mut self) -> Result<Option<Vec<u8>>, PluginError> {
        let Some(index) = self.state_func("save") else { return Ok(None) };
        let f = self
            .instance
            .get_typed_func::<(), (Vec<u8>,)>(&mut self.store, &index)
            .map_err(|e| self.trapped("save", &e))?;
        let (saved,) = self.run("save", async move |i| f.call_async(&mut i.store, ()).await).await?;
        Ok(Some(saved))
    }

    /// Hands a predecessor's state over; false when the plugin has no `state` interface.
    pub(super) async fn restore(&mut self, state: Vec<u8>) -> Result<bool, PluginError> {
        let Some(index) = self.state_func("restore") else { return Ok(false) };
        let f = self
            .instance
            .get_typed_func::<(Vec<u8>,), ()>(&mut self.store, &index)
            .map_err(|e| self.trapped("restore", &e))?;
        self.run("restore", async move |i| f.call_async(&mut i.store, (state,)).await).await?;
        Ok(true)
    }

    fn state_func(&mut self, name: &str) -> Option<wasmtime::component::ComponentExportIndex> {
        let iface = self.instance.get_export_index(&mut self.store, None, STATE_INTERFACE)?;
        self.instance.get_export_index(&mut self.store, Some(&iface), name)
    }

    /// Names a trap's cause, logs it with the plugin's name, and counts the restart it
    /// will cost.
    fn trapped(&self, event: &'static str, e: &wasmtime::Error) -> PluginError {
        let counters = &self.tenant.counters;
        let n = counters.restarts.fetch_add(1, Ordering::Relaxed) + 1;
        let limits = &self.tenant.limits;
        let reason = if let Some(cap) = e.downcast_ref::<MemoryCapReached>() {
            cap.to_string()
        } else {
            match e.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => {
                    format!("it used its CPU budget of {} ms for one event", limits.cpu_ms_per_event)
                }
                Some(Trap::StackOverflow) => "it overflowed its stack (unbounded recursion?)".to_owned(),
                // The trap's own message; the wasm backtrace would only fill the log.
                Some(trap) => trap.to_string(),
                None => e.root_cause().to_string(),
            }
        };
        let name = self.tenant.name.to_string();
        let err = PluginError::Trap { name, event, reason };
        tracing::error!(plugin = %self.tenant.name, restarts = n, "{err}; restarting it for the next event");
        err
    }
}
