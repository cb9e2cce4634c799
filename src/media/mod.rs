//! The media plane: any audio source → 48 kHz PCM → gain → Opus (or the source's own
//! Opus, passed through) → pacing → RTP on a WebRTC peer.
//!
//! One module per stage: [`source`] opens files, URLs and commands and decodes them,
//! [`resample`] converts to 48 kHz, [`gain`] applies volume, [`encoder`] and [`decoder`] wrap libopus,
//! [`stream`] keeps packets prepared ahead, [`shared`] encodes a live source once for
//! every call playing it, [`pacer`] sends them on time, [`stats`] measures how on time.
//! The other way, [`inbound`] keeps what each call hears: the participants' streams,
//! their counters and who is speaking; [`record`] writes them down, each participant's
//! own packets or the call's mix; [`bridge`] plays one call's mix into another;
//! [`listen`] hands it to code as PCM batches.

pub mod bridge;
pub mod cost;
pub mod decoder;
pub mod encoder;
pub mod gain;
pub mod inbound;
pub mod jitter;
pub mod listen;
pub mod loss;
pub mod pacer;
pub mod record;
pub mod resample;
pub mod shared;
pub mod source;
pub mod stats;
pub mod stream;

pub use encoder::EncoderConfig;
pub use pacer::{CallId, Control, Listener, MediaError, MediaEvent, MediaPlane, PacerConfig, ShardLoad};
pub use source::{PcmFormat, SourceError, SourceInfo, SourceSpec};
pub use stats::CallStats;
pub use stream::{Stream, StreamError, StreamId};
