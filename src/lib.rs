//! # wasmcalls
//!
//! A native host that joins Telegram group calls and streams audio into them, with
//! bot logic in sandboxed WASM components. The `wasmcalls` command (the binary
//! target, `src/main.rs` and `src/cli/`) is built on this library's public API.
//!
//! The data flows one way — *event → plugin → command → call manager → media /
//! Telegram* — and a module only uses the ones below it:
//!
//! - [`config`] is the configuration as written: plain serde structs that import
//!   nothing of the host.
//! - [`app`] resolves a config into each part's options ([`app::options`]) and
//!   assembles the host from them.
//! - [`api`] is the HTTP API: `/api`, `/healthz`, `/metrics`, `/status`.
//! - [`runtime`] runs the plugins: engine and compile cache, one actor per plugin,
//!   grants and limits, builds, hot reload.
//! - [`calls`] joins group calls end to end and owns call state.
//! - [`media`] is the real-time plane: raw PCM → gain → Opus → 20 ms pacer → RTP.
//! - [`transport`] is WebRTC: the Telegram join JSON ↔ SDP mapping and our sans-IO peer.
//! - [`telegram`] is the other side of a call: the embedded loopback Telegram (the
//!   default, so everything runs offline), MTProto, and an HTTP seam for SFUs.
//! - [`metrics`] holds the lock-free counters every layer updates.

pub mod api;
pub mod app;
pub mod calls;
pub mod config;
pub mod media;
pub mod metrics;
pub mod runtime;
pub mod telegram;
pub mod transport;
