//! One instance of a plugin: its `Store` (with the plugin's limits armed) and the
//! component's bindings, for whichever contract version it speaks. Every call into
//! the plugin goes through here, and a trap comes back as a [`PluginError::Trap`]
//! naming its cause — CPU budget, memory cap, stack overflow, or the trap's own
//! message — without the wasm backtrace. After a trap the instance is dead: the
//! caller makes a fresh one.
//!
//! Events the v0.1 contract has no handler for reach a v0.1 plugin as they did: an
//! ended call or a lost connection as `on-kicked` (the loss preceded by a raw
//! `wasmcalls.connectionLost` update with its reason); messages, button presses and
//! participants only as the raw updates it already receives.

use std::sync::atomic::Ordering;
use std::time::Instant;

use wasmtime::{Store, Trap, UpdateDeadline};

use super::bindings::{v1, v2};
use super::host::PluginState;
use super::host::v2::events;
use super::limits::MemoryCapReached;
use super::{ApiCall, ApiReply, Compiled, PluginError, Pre, Tenant};
use crate::calls::{HeardAudio, HostEvent};
use crate::telegram::Identity;

/// The bindings of a live instance, by contract version.
enum Bot {
    V1(v1::Bot),
    V2(v2::Bot),
}

impl Bot {
    /// The optional state-handover interface of this version.
    fn state_interface(&self) -> &'static str {
        match self {
            Bot::V1(_) => "wasmcalls:bot/state@0.1.0",
            // Semver-compatible: a 0.2.0 plugin's `state@0.2.0` is found by this name too.
            Bot::V2(_) => "wasmcalls:bot/state@0.2.2",
        }
    }
}

/// The optional interface that hears how recordings end (since 0.2.1) and the audio
/// the plugin listens to (since 0.2.2); a 0.2.1 plugin's is found by this name too.
const AUDIO_EVENTS: &str = "wasmcalls:bot/audio-events@0.2.2";

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
        let mut store = Store::new(compiled.engine(), PluginState::new(tenant));
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
        // The plugin's own start code trapping is its fault; anything else (the
        // instance pool full, the kernel refusing memory) is the host's.
        let failed = |e: wasmtime::Error| {
            let (name, reason) = (tenant.name.to_string(), e.root_cause().to_string());
            if e.is::<Trap>() || e.is::<MemoryCapReached>() {
                PluginError::Trap { name, event: "instantiation", reason }
            } else {
                PluginError::Instantiate { name, reason }
            }
        };
        let (instance, bot) = match &compiled.pre {
            Pre::V1(pre) => {
                let instance = pre.instance_pre().instantiate_async(&mut store).await.map_err(failed)?;
                (instance, Bot::V1(v1::Bot::new(&mut store, &instance).map_err(failed)?))
            }
            Pre::V2(pre) => {
                let instance = pre.instance_pre().instantiate_async(&mut store).await.map_err(failed)?;
                (instance, Bot::V2(v2::Bot::new(&mut store, &instance).map_err(failed)?))
            }
        };
        let mut live = Instance { store, bot, instance, tenant: tenant.clone() };
        // `audio.listen` is refused, by name, to a plugin with nowhere to hear it.
        live.store.data_mut().hears_audio = live.export_func(AUDIO_EVENTS, "on-audio").is_some();
        Ok(live)
    }

    /// Bytes of linear memory the instance holds (every core memory of the component).
    pub fn linear_memory(&self) -> usize {
        self.store.data().memory.in_use()
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

    /// `on-start`: the accounts the host acts through (v0.1: the user account's id).
    pub async fn start(&mut self, me: &Identity) -> Result<(), PluginError> {
        let ident = events::identity(me);
        self.run("on-start", async |i| match &i.bot {
            Bot::V1(b) => b.wasmcalls_bot_handler().call_on_start(&mut i.store, me.user).await,
            Bot::V2(b) => b.wasmcalls_bot_handler().call_on_start(&mut i.store, ident).await,
        })
        .await
    }

    /// Delivers a host event to its handler.
    pub async fn handle(&mut self, ev: &HostEvent) -> Result<(), PluginError> {
        match self.bot {
            Bot::V1(_) => self.handle_v1(ev).await,
            Bot::V2(_) => self.handle_v2(ev).await,
        }
    }

    async fn handle_v1(&mut self, ev: &HostEvent) -> Result<(), PluginError> {
        use v1::wasmcalls::bot::types::Invite;
        macro_rules! call {
            ($event:literal, $method:ident $(, $arg:expr)*) => {
                self.run($event, async |i| {
                    let Bot::V1(b) = &i.bot else { unreachable!("a v0.1 instance") };
                    b.wasmcalls_bot_handler().$method(&mut i.store $(, $arg)*).await
                })
                .await
            };
        }
        match ev {
            HostEvent::StreamEnd(chat) => call!("on-stream-end", call_on_stream_end, *chat),
            HostEvent::Kicked(chat) | HostEvent::CallEnded(chat) => call!("on-kicked", call_on_kicked, *chat),
            HostEvent::ConnectionLost { chat, reason } => {
                let json = serde_json::json!({ "_": "wasmcalls.connectionLost", "chat_id": chat, "reason": reason });
                let json = json.to_string();
                call!("on-raw-update", call_on_raw_update, &json)?;
                call!("on-kicked", call_on_kicked, *chat)
            }
            HostEvent::Invite(inv) => {
                let invite = Invite { chat: inv.chat, inviter: inv.inviter, message_id: inv.message_id };
                call!("on-group-call-invite", call_on_group_call_invite, invite)
            }
            HostEvent::RawUpdate { json, .. } => call!("on-raw-update", call_on_raw_update, json),
            HostEvent::Message(_)
            | HostEvent::Callback(_)
            | HostEvent::Participants { .. }
            | HostEvent::RecordingEnded { .. } => Ok(()),
        }
    }

    async fn handle_v2(&mut self, ev: &HostEvent) -> Result<(), PluginError> {
        use v2::wasmcalls::bot::types::Invite;
        macro_rules! call {
            ($event:literal, $method:ident $(, $arg:expr)*) => {
                self.run($event, async |i| {
                    let Bot::V2(b) = &i.bot else { unreachable!("a v0.2 instance") };
                    b.wasmcalls_bot_handler().$method(&mut i.store $(, $arg)*).await
                })
                .await
            };
        }
        match ev {
            HostEvent::StreamEnd(chat) => call!("on-stream-end", call_on_stream_end, *chat),
            HostEvent::Kicked(chat) => call!("on-kicked", call_on_kicked, *chat),
            HostEvent::CallEnded(chat) => call!("on-call-ended", call_on_call_ended, *chat),
            HostEvent::ConnectionLost { chat, reason } => {
                call!("on-connection-lost", call_on_connection_lost, *chat, reason)
            }
            HostEvent::Invite(inv) => {
                let invite = Invite { chat: inv.chat, inviter: inv.inviter, message_id: inv.message_id };
                call!("on-group-call-invite", call_on_group_call_invite, invite)
            }
            HostEvent::Message(msg) => {
                let bot = self.tenant.manager.chats().identity().ok().and_then(|i| i.bot).map(|b| b.username);
                let message = events::message(msg, bot.as_deref());
                call!("on-message", call_on_message, &message)
            }
            HostEvent::Callback(q) => {
                self.store.data_mut().delivered_query(&q.id);
                let query = events::callback(q);
                call!("on-callback-query", call_on_callback_query, &query)
            }
            HostEvent::Participants { chat, changes } => {
                let changes = events::changes(changes);
                call!("on-participants", call_on_participants, *chat, &changes)
            }
            HostEvent::RawUpdate { json, .. } => call!("on-raw-update", call_on_raw_update, json),
            HostEvent::RecordingEnded { chat, summary } => {
                // Optional (`audio-events`, since 0.2.1): a plugin without it has the log.
                let Some(index) = self.export_func(AUDIO_EVENTS, "on-recording-ended") else { return Ok(()) };
                let recording = crate::runtime::host::v2::recording_to_wit(&self.tenant.grants, summary);
                let f = self
                    .instance
                    .get_typed_func::<(i64, v2::wasmcalls::bot::types::Recording), ()>(&mut self.store, &index)
                    .map_err(|e| self.trapped("on-recording-ended", &e))?;
                let chat = *chat;
                self.run("on-recording-ended", async move |i| f.call_async(&mut i.store, (chat, recording)).await).await
            }
        }
    }

    /// A batch of a call's audio the plugin listens to (`audio-events.on-audio`).
    pub async fn hear(&mut self, heard: HeardAudio) -> Result<(), PluginError> {
        // A version reloaded without `on-audio` has nowhere to hear: its batches are let go.
        let Some(index) = self.export_func(AUDIO_EVENTS, "on-audio") else { return Ok(()) };
        let f = self
            .instance
            .get_typed_func::<(i64, v2::wasmcalls::bot::types::AudioBatch), ()>(&mut self.store, &index)
            .map_err(|e| self.trapped("on-audio", &e))?;
        let batch = v2::wasmcalls::bot::types::AudioBatch {
            user: heard.user,
            source: heard.source,
            at_ms: heard.at_ms,
            pcm: heard.pcm,
            dropped: heard.dropped,
        };
        let chat = heard.chat;
        self.run("on-audio", async move |i| f.call_async(&mut i.store, (chat, batch)).await).await
    }

    /// `on-custom-api(request)` and the plugin's answer.
    pub async fn custom_api(&mut self, call: ApiCall) -> Result<ApiReply, PluginError> {
        match &self.bot {
            Bot::V1(_) => {
                let request = v1::exports::wasmcalls::bot::handler::ApiRequest { path: call.path, body: call.body };
                let r = self
                    .run("on-custom-api", async |i| {
                        let Bot::V1(b) = &i.bot else { unreachable!("a v0.1 instance") };
                        b.wasmcalls_bot_handler().call_on_custom_api(&mut i.store, &request).await
                    })
                    .await?;
                Ok(ApiReply { status: r.status, body: r.body })
            }
            Bot::V2(_) => {
                let request = v2::wasmcalls::bot::types::ApiRequest { path: call.path, body: call.body };
                let r = self
                    .run("on-custom-api", async |i| {
                        let Bot::V2(b) = &i.bot else { unreachable!("a v0.2 instance") };
                        b.wasmcalls_bot_handler().call_on_custom_api(&mut i.store, &request).await
                    })
                    .await?;
                Ok(ApiReply { status: r.status, body: r.body })
            }
        }
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
        self.export_func(self.bot.state_interface(), name)
    }

    /// A function of an optional exported interface, if the plugin exports it.
    fn export_func(&mut self, interface: &str, name: &str) -> Option<wasmtime::component::ComponentExportIndex> {
        let iface = self.instance.get_export_index(&mut self.store, None, interface)?;
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
