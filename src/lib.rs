//! # wasmcalls
//!
//! A native host that joins Telegram group calls and streams audio into them, with
//! bot logic in sandboxed WASM components.
//!
//! The modules follow the data, which flows one way —
//! *event → plugin → command → call manager → media / Telegram*:
//!
//! - [`calls`] joins group calls end to end and owns call state.
//! - [`media`] is the real-time plane: raw PCM → gain → Opus → 20 ms pacer → RTP.
//! - [`transport`] is WebRTC: the Telegram join JSON ↔ SDP mapping and our sans-IO peer.
//! - [`telegram`] is the other side of a call: the embedded loopback Telegram (the
//!   default, so everything runs offline), an HTTP seam for independent SFUs, and MTProto.
//! - [`cli`] is the `wasmcalls` command.

pub mod app;
pub mod calls;
pub mod cli;
pub mod config;
pub mod dev;
pub mod http;
pub mod media;
pub mod metrics;
pub mod runtime;
pub mod telegram;
pub mod transport;
