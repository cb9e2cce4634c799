//! WebRTC transport: the Telegram join handshake mapping and our sans-IO peer.

pub mod join;
pub mod peer;

pub use join::{JoinError, JoinParams, Setup, TransportAnswer};
pub use peer::{Consent, OutboundPeer, PeerError};
