//! The v0.1 contract's imports (`wit/v0.1`): PyTgCalls' API, forwarded to the call
//! manager. Its `bitrate` argument is PyTgCalls' name for a raw file's *sample rate*;
//! it is called that here, at the contract's edge, and `sample_rate` inside.

use std::time::Instant;

use super::{Level, PluginState};
use crate::calls::{CallError, CallState, CallStatus};
use crate::runtime::bindings::v1::wasmcalls::bot::{calls, types};

/// How a v0.1 command failed, as the bindings see it: what the contract can say
/// returns to the plugin as its `call-error`; a fault of the host itself traps the
/// plugin rather than passing a made-up error off as the plugin's problem.
#[derive(Debug)]
pub enum Refusal {
    Refused(types::CallError),
    Fault(wasmtime::Error),
}

impl From<CallError> for Refusal {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Internal(m) => Refusal::Fault(super::host_fault(&m)),
            e => Refusal::Refused(to_wit(e)),
        }
    }
}

/// The v0.1 `call-error` for `e`; what v0.1 has no case for is `other`, in words.
fn to_wit(e: CallError) -> types::CallError {
    use types::CallError as W;
    match e {
        CallError::HostCoreNotRunning => W::HostCoreNotRunning,
        CallError::ClientNotRunning => W::ClientNotRunning,
        CallError::NoActiveGroupCall(c) => W::NoActiveGroupCall(c),
        CallError::NotInCall(c) => W::NotInCall(c),
        CallError::NoClient => W::NoClient,
        CallError::PermissionDenied(m) => W::PermissionDenied(m),
        CallError::InvalidArgument(m) => W::InvalidArgument(m),
        CallError::FileError(m) => W::FileError(m),
        e @ (CallError::AlreadyInCall(_)
        | CallError::StillConnecting(_)
        | CallError::NothingPlaying(_)
        | CallError::RateLimited(_)
        | CallError::NoBot(_)
        | CallError::Telegram { .. }) => W::Other(e.to_string()),
        CallError::Capacity(m) | CallError::Other(m) | CallError::Internal(m) => W::Other(m),
        e @ (CallError::Draining | CallError::Quota(_)) => W::Other(e.to_string()),
    }
}

fn status_to_wit(s: CallStatus) -> types::CallStatus {
    types::CallStatus {
        chat: s.chat,
        state: match s.state {
            CallState::Connecting => types::CallState::Connecting,
            CallState::Playing => types::CallState::Playing,
            CallState::Paused => types::CallState::Paused,
            CallState::Idle => types::CallState::Idle,
        },
        file: s.source,
        position_ms: s.position_ms,
        // The v0.1 record has no "unknown": 0, as for a call with nothing playing.
        duration_ms: s.duration_ms.unwrap_or(0),
        volume: s.volume,
    }
}

impl PluginState {
    /// The calls among `list` the plugin may see, for the contract; host time since `t0`.
    fn granted_v1(&mut self, list: Vec<CallStatus>, t0: Instant) -> Vec<types::CallStatus> {
        let r = list.into_iter().filter(|c| self.grants.chat_allowed(c.chat)).map(status_to_wit).collect();
        self.host_since(t0);
        r
    }

    /// A v0.1 command's result: logged, and a contract error returned or a fault trapped.
    fn v1<T>(&self, command: &str, chat: i64, r: Result<T, CallError>) -> Result<T, Refusal> {
        self.logged(command, chat, &r);
        r.map_err(Refusal::from)
    }

    /// A refusal by the grants, logged.
    fn refuse<T>(&self, command: &str, chat: i64, e: CallError) -> Result<T, Refusal> {
        self.denied(command, chat, &e);
        Err(e.into())
    }
}

impl types::Host for PluginState {
    fn convert_call_error(&mut self, err: Refusal) -> wasmtime::Result<types::CallError> {
        match err {
            Refusal::Refused(e) => Ok(e),
            Refusal::Fault(e) => Err(self.fault(e)),
        }
    }
}

impl calls::Host for PluginState {
    async fn join_group_call(&mut self, chat: i64, file_path: String, bitrate: u32) -> Result<(), Refusal> {
        let sample_rate = bitrate;
        let source = match self
            .chat(chat)
            .and_then(|()| self.quota_calls(chat))
            .and_then(|()| self.grants.source(&self.name, &file_path, sample_rate))
        {
            Ok(s) => s,
            Err(e) => return self.refuse("join-group-call", chat, e),
        };
        let t0 = Instant::now();
        let options = crate::telegram::JoinOptions { accounts: self.grants.accounts().to_vec(), ..Default::default() };
        let r = self.manager.join_with(chat, source, &options).await;
        self.host_since(t0);
        if r.is_ok() {
            self.counters.joined.lock().insert(chat);
        }
        self.v1("join-group-call", chat, r)
    }

    async fn leave_group_call(&mut self, chat: i64) -> Result<(), Refusal> {
        if let Err(e) = self.chat(chat) {
            return self.refuse("leave-group-call", chat, e);
        }
        let t0 = Instant::now();
        let r = self.manager.leave(chat).await;
        self.host_since(t0);
        self.counters.joined.lock().remove(&chat);
        self.v1("leave-group-call", chat, r)
    }

    async fn change_volume_call(&mut self, chat: i64, volume: u16) -> Result<(), Refusal> {
        if let Err(e) = self.chat(chat) {
            return self.refuse("change-volume-call", chat, e);
        }
        let r = self.manager.set_volume(chat, volume);
        self.v1("change-volume-call", chat, r)
    }

    async fn pause_stream(&mut self, chat: i64) -> Result<(), Refusal> {
        if let Err(e) = self.chat(chat) {
            return self.refuse("pause-stream", chat, e);
        }
        let r = self.manager.pause(chat);
        self.v1("pause-stream", chat, r)
    }

    async fn resume_stream(&mut self, chat: i64) -> Result<(), Refusal> {
        if let Err(e) = self.chat(chat) {
            return self.refuse("resume-stream", chat, e);
        }
        let r = self.manager.resume(chat);
        self.v1("resume-stream", chat, r)
    }

    async fn change_stream(&mut self, chat: i64, file_path: String) -> Result<(), Refusal> {
        // v0.1 states a raw file's sample rate at the join; a change keeps it.
        let rate = self.manager.stated_format(chat).map_or(48_000, |f| f.rate());
        let source = match self.chat(chat).and_then(|()| self.grants.source(&self.name, &file_path, rate)) {
            Ok(s) => s,
            Err(e) => return self.refuse("change-stream", chat, e),
        };
        let t0 = Instant::now();
        let r = self.manager.change_stream(chat, source).await;
        self.host_since(t0);
        self.v1("change-stream", chat, r)
    }

    async fn calls(&mut self) -> wasmtime::Result<Vec<types::CallStatus>> {
        let t0 = Instant::now();
        let all = self.manager.calls().await;
        Ok(self.granted_v1(all, t0))
    }

    async fn active_calls(&mut self) -> wasmtime::Result<Vec<types::CallStatus>> {
        let t0 = Instant::now();
        let playing = self.manager.active_calls().await;
        Ok(self.granted_v1(playing, t0))
    }

    async fn get_cache_id(&mut self) -> Result<i64, Refusal> {
        self.manager.my_id().map_err(Refusal::from)
    }

    async fn get_port_server(&mut self) -> wasmtime::Result<u16> {
        Ok(self.manager.api_port())
    }

    async fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.settings.to_string())
    }

    async fn log(&mut self, level: types::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            types::LogLevel::Trace => Level::Trace,
            types::LogLevel::Debug => Level::Debug,
            types::LogLevel::Info => Level::Info,
            types::LogLevel::Warn => Level::Warn,
            types::LogLevel::Error => Level::Error,
        };
        self.log_line(level, &message);
        Ok(())
    }
}
