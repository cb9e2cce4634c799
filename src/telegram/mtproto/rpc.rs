//! The one seam between our MTProto logic and the network: [`Rpc`] sends a TL
//! function and returns its answer. Production uses grammers' [`Client`]; the
//! offline tests put a fake Telegram behind it that reads our requests back from
//! their bytes. Also here: how grammers' errors become [`TelegramError`]s, and the
//! retry policy that waits out `FLOOD_WAIT`.

use std::collections::HashMap;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use grammers_client::Client;
use grammers_mtsender::{InvocationError, RetryContext, RetryPolicy};
use grammers_session::Session;
use grammers_session::storages::SqliteSession;
use grammers_session::types::{PeerId, PeerRef};
use grammers_tl_types as tl;

use super::messages::FileRef;
use crate::telegram::TelegramError;
use crate::telegram::error::refusal;

/// Sends TL functions to Telegram.
pub trait Rpc: Send + Sync + 'static {
    /// `request` → its answer, or grammers' error.
    fn invoke<R>(&self, request: &R) -> impl Future<Output = Result<R::Return, InvocationError>> + Send
    where
        R: tl::RemoteCall + Send + Sync;

    /// The session's reference (id + access hash) for `peer`, looking through the
    /// account's dialogs when the session has not seen it yet.
    fn peer_ref(&self, peer: PeerId) -> impl Future<Output = Result<Option<PeerRef>, InvocationError>> + Send;

    /// One chunk of `file` from `offset` (`upload.getFile`), from whichever data
    /// centre stores it.
    fn file_part(&self, file: &FileRef, offset: i64) -> impl Future<Output = Result<Vec<u8>, InvocationError>> + Send {
        let request = super::messages::file_part(file, offset);
        async move {
            match self.invoke(&request).await? {
                tl::enums::upload::File::File(f) => Ok(f.bytes),
                tl::enums::upload::File::CdnRedirect(_) => {
                    Err(InvocationError::Dropped("a CDN redirect, though CDNs were not offered"))
                }
            }
        }
    }
}

/// Real Telegram: grammers' client over its SQLite session.
#[derive(Clone)]
pub struct Grammers {
    pub client: Client,
    pub session: Arc<SqliteSession>,
    /// Chats the dialogs did not contain, and when we looked: a plugin asking again
    /// and again must not walk every dialog each time (Telegram would flood-wait us).
    missing: Arc<Mutex<HashMap<PeerId, Instant>>>,
}

/// How long a chat the account's dialogs lack is taken as unknown without looking again.
const MISSING_FOR: Duration = Duration::from_secs(60);

impl Grammers {
    pub fn new(client: Client, session: Arc<SqliteSession>) -> Self {
        Grammers { client, session, missing: Arc::default() }
    }
}

impl Rpc for Grammers {
    fn invoke<R>(&self, request: &R) -> impl Future<Output = Result<R::Return, InvocationError>> + Send
    where
        R: tl::RemoteCall + Send + Sync,
    {
        self.client.invoke(request)
    }

    async fn peer_ref(&self, peer: PeerId) -> Result<Option<PeerRef>, InvocationError> {
        if let Some(r) = self.session.peer_ref(peer).await.map_err(|e| InvocationError::Session(Box::new(e)))? {
            return Ok(Some(r));
        }
        if self.missing.lock().get(&peer).is_some_and(|t| t.elapsed() < MISSING_FOR) {
            return Ok(None);
        }
        // Walking the dialogs caches every chat they mention in the session.
        let mut dialogs = self.client.iter_dialogs();
        while let Some(d) = dialogs.next().await? {
            if d.peer().id() == peer {
                break;
            }
        }
        let found = self.session.peer_ref(peer).await.map_err(|e| InvocationError::Session(Box::new(e)))?;
        if found.is_none() {
            self.missing.lock().insert(peer, Instant::now());
        }
        Ok(found)
    }

    async fn file_part(&self, file: &FileRef, offset: i64) -> Result<Vec<u8>, InvocationError> {
        // grammers' download follows a file to its data centre (FILE_MIGRATE) and
        // carries the authorization there.
        let mut parts = self
            .client
            .iter_download(file)
            .chunk_size(super::messages::CHUNK)
            .skip_chunks((offset / super::messages::CHUNK as i64) as i32);
        Ok(parts.next().await?.unwrap_or_default())
    }
}

impl grammers_client::media::Downloadable for FileRef {
    fn to_raw_input_location(&self) -> Option<tl::enums::InputFileLocation> {
        Some(self.location.clone())
    }

    fn size(&self) -> Option<usize> {
        Some(self.size as usize)
    }

    fn dc_id(&self) -> Option<i32> {
        Some(self.dc)
    }
}

/// Names `e` for `request` (a TL function name such as `phone.joinGroupCall`).
pub fn classify(request: &'static str, e: InvocationError) -> TelegramError {
    match e {
        InvocationError::Rpc(rpc) => refusal(request, rpc.code, &rpc.name, rpc.value),
        InvocationError::Deserialize(d) => TelegramError::Unexpected { request, what: d.to_string() },
        InvocationError::Session(s) => TelegramError::Network { request, reason: format!("session storage: {s}") },
        other => TelegramError::Network { request, reason: other.to_string() },
    }
}

/// Waits out `FLOOD_WAIT_X` up to a limit (logged, so an operator sees why a join
/// is slow), and retries a dropped connection a few times, a second apart.
pub struct FloodPolicy {
    pub max_wait: Duration,
}

/// Connection errors retried before a request fails.
const IO_RETRIES: u32 = 3;

impl RetryPolicy for FloodPolicy {
    fn should_retry(&self, ctx: &RetryContext) -> ControlFlow<(), Duration> {
        match &ctx.error {
            InvocationError::Rpc(rpc) if rpc.code == 420 => {
                let wait = Duration::from_secs(rpc.value.unwrap_or(1).into());
                if ctx.slept_so_far + wait > self.max_wait {
                    tracing::warn!(
                        "Telegram asks to wait {} s ({}); that is beyond telegram.max_flood_wait_s, giving up",
                        wait.as_secs(),
                        rpc.name
                    );
                    return ControlFlow::Break(());
                }
                tracing::warn!("Telegram asks to wait {} s ({}); waiting, then retrying", wait.as_secs(), rpc.name);
                ControlFlow::Continue(wait)
            }
            InvocationError::Io(e) if ctx.fail_count.get() <= IO_RETRIES => {
                tracing::warn!("connection to Telegram failed ({e}); reconnecting in 1 s");
                ControlFlow::Continue(Duration::from_secs(1))
            }
            _ => ControlFlow::Break(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use grammers_mtsender::RpcError;

    use super::*;

    fn rpc(code: i32, message: &str) -> InvocationError {
        InvocationError::Rpc(RpcError::from(tl::types::RpcError { error_code: code, error_message: message.into() }))
    }

    fn ctx(error: InvocationError, fail_count: u32, slept: u64) -> RetryContext {
        RetryContext {
            fail_count: NonZeroU32::new(fail_count).unwrap(),
            slept_so_far: Duration::from_secs(slept),
            error,
        }
    }

    #[test]
    fn flood_waits_are_waited_out_up_to_the_limit() {
        let p = FloodPolicy { max_wait: Duration::from_secs(120) };
        assert_eq!(
            p.should_retry(&ctx(rpc(420, "FLOOD_WAIT_31"), 1, 0)),
            ControlFlow::Continue(Duration::from_secs(31))
        );
        assert_eq!(p.should_retry(&ctx(rpc(420, "FLOOD_WAIT_31"), 2, 100)), ControlFlow::Break(()));
        assert_eq!(p.should_retry(&ctx(rpc(420, "FLOOD_WAIT_3600"), 1, 0)), ControlFlow::Break(()));
        assert_eq!(p.should_retry(&ctx(rpc(400, "GROUPCALL_INVALID"), 1, 0)), ControlFlow::Break(()));
        let io = || InvocationError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(p.should_retry(&ctx(io(), 3, 2)), ControlFlow::Continue(Duration::from_secs(1)));
        assert_eq!(p.should_retry(&ctx(io(), 4, 3)), ControlFlow::Break(()));
    }

    #[test]
    fn errors_are_named() {
        let e = classify("phone.joinGroupCall", rpc(401, "AUTH_KEY_UNREGISTERED"));
        assert!(matches!(e, TelegramError::NotLoggedIn(_)) && e.to_string().contains("wasmcalls login"), "{e}");
        let e = classify("phone.joinGroupCall", rpc(420, "FLOOD_WAIT_600"));
        assert!(matches!(e, TelegramError::FloodWait { seconds: 600, .. }), "{e}");
        let e = classify("phone.joinGroupCall", rpc(400, "GROUPCALL_SSRC_DUPLICATE_MUCH"));
        assert!(matches!(e, TelegramError::SsrcTaken { .. }), "{e}");
        let e = classify("phone.leaveGroupCall", InvocationError::Dropped("the client stopped"));
        assert!(matches!(e, TelegramError::Network { .. }), "{e}");
    }
}
