//! Joining a group call end to end — offer, join JSON, Telegram's transport,
//! ICE/DTLS — and handing the connected call to the media plane.

use std::net::IpAddr;

use crate::media::{CallId, MediaError, MediaPlane};
use crate::telegram::{ChatId, JoinOptions, Telegram, TelegramError};
use crate::transport::{OutboundPeer, PeerError};

/// Why a join failed, at whichever step.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// A joined call: its media-plane id and the SSRC Telegram knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dialed {
    pub call: CallId,
    pub ssrc: u32,
}

/// Joins `chat`'s group call through `telegram` and waits until media can flow.
pub async fn dial(
    media: &MediaPlane,
    telegram: &dyn Telegram,
    chat: ChatId,
    bind_ip: IpAddr,
    options: &JoinOptions,
) -> Result<Dialed, DialError> {
    let mut peer = OutboundPeer::new(bind_ip, media.consent(), media.connect_timeout())?;
    let params = peer.join_params().map_err(PeerError::from)?;
    let answer = match telegram.join(chat, &params, options).await {
        // Another participant holds our random SSRC: a fresh peer draws a new one.
        Err(TelegramError::SsrcTaken { .. }) => {
            tracing::warn!(chat, ssrc = peer.ssrc, "Telegram says our SSRC is taken; joining with a new one");
            peer = OutboundPeer::new(bind_ip, media.consent(), media.connect_timeout())?;
            let params = peer.join_params().map_err(PeerError::from)?;
            telegram.join(chat, &params, options).await?
        }
        other => other?,
    };
    let ssrc = peer.ssrc;
    let connected = match peer.apply_answer(&answer) {
        Ok(()) => media.connect(peer).await.map_err(DialError::from),
        Err(e) => Err(e.into()),
    };
    match connected {
        Ok(call) => Ok(Dialed { call, ssrc }),
        Err(e) => {
            // Telegram has us as a participant: do not leave a ghost behind.
            if let Err(le) = telegram.leave(chat, ssrc).await {
                tracing::warn!(chat, "leaving after a failed connection failed too: {le}");
            }
            Err(e)
        }
    }
}
