//! Black-box tests of wasmcalls, against the embedded loopback Telegram.
//! One binary, one module per area (links once, runs in parallel).

mod accounts;
mod answers;
mod bot_account;
mod capacity;
mod chat;
mod cli;
mod deploy;
mod fake;
mod formats;
mod fuzz;
mod hearing;
mod hostile;
mod http;
mod inputs;
mod media;
mod musicbot;
mod network;
mod ntgcalls;
mod plugins;
mod reload;
mod sfu;
mod support;
mod telegram;
mod tenants;
mod ui;
mod urls;
