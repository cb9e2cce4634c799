//! WebRTC transport: the Telegram join handshake mapping, our sans-IO peer, and the
//! tap that hears (or, in the loopback, speaks) the streams no SDP names.

pub mod join;
pub mod peer;
pub mod tap;

pub use join::{JoinError, JoinParams, Setup, TransportAnswer};
pub use peer::{Consent, OutboundPeer, PeerError};
