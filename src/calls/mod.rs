//! Calls: the call manager — the single owner of call state — and the join
//! handshake it uses, and the chat side ([`chat`]). Commands from plugins come in;
//! media and Telegram happenings go out as [`HostEvent`]s.

pub mod chat;
mod dial;
mod error;
mod listening;
mod manager;
mod recording;
mod speakers;

pub use chat::Chats;
pub use dial::{DialError, Dialed, dial};
pub use error::CallError;
pub use listening::{AudioSink, Handed, HeardAudio, ListenRequest, ListenTarget};
pub use manager::{CallManager, CallState, CallStatus, HostEvent, ManagerOptions, Playable, RECOVERY_WINDOW};
pub use recording::RecordRequest;
