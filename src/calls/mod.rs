//! Calls: the call manager — the single owner of call state — and the join
//! handshake it uses. Commands from plugins come in; media and Telegram happenings
//! go out as [`HostEvent`]s.

mod dial;
mod error;
mod manager;

pub use dial::{DialError, Dialed, dial};
pub use error::CallError;
pub use manager::{CallManager, CallState, CallStatus, HostEvent, ManagerOptions};
