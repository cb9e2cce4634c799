//! The media plane: raw PCM → gain → Opus → 20 ms pacing → RTP on a WebRTC peer.
//!
//! One module per stage: [`source`] reads files, [`gain`] applies volume, [`encoder`]
//! wraps libopus, [`stream`] keeps frames encoded ahead, [`pacer`] sends them on time,
//! [`stats`] measures how on time.

pub mod encoder;
pub mod gain;
pub mod pacer;
pub mod source;
pub mod stats;
pub mod stream;

pub use encoder::EncoderConfig;
pub use pacer::{CallId, Control, MediaError, MediaEvent, MediaPlane, PacerConfig};
pub use source::PcmFormat;
pub use stats::CallStats;
pub use stream::{Stream, StreamId};
