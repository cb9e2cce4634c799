//! The seam for independent media servers: POST the join JSON — exactly what would go
//! into `phone.joinGroupCall(params)` — to an SFU URL and take the response body as
//! the transport JSON Telegram would have sent in `updateGroupCallConnection`.
//!
//! Request: `POST <url>?chat=<chat id>` with `Content-Type: application/json` and the
//! join JSON as body. Response: 2xx with the transport JSON as body; anything else is
//! an error that quotes the status and the start of the body. An SFU has no account
//! and sends no updates.

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{BoxFuture, ChatId, JoinOptions, Telegram, TelegramError, Update};
use crate::transport::{JoinParams, TransportAnswer};

/// Where the SFU is.
#[derive(Debug, Clone)]
pub struct SfuOptions {
    pub url: String,
    /// The local address media sockets bind.
    pub bind_ip: IpAddr,
}

/// A media server reached over HTTP.
pub struct Sfu {
    url: String,
    client: reqwest::Client,
    /// Never sends: an SFU has no updates, but subscribers need a channel.
    updates: broadcast::Sender<Update>,
}

impl Sfu {
    pub fn new(opts: &SfuOptions) -> Result<Self, TelegramError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            // A join is one request per call: a few warm connections serve a wave of
            // joins; keeping one per call joined would cost ~11 KiB a call for nothing.
            .pool_max_idle_per_host(2)
            .build()
            .map_err(|e| TelegramError::Sfu { url: opts.url.clone(), reason: format!("no HTTP client: {e}") })?;
        Ok(Sfu { url: opts.url.clone(), client, updates: broadcast::channel(1).0 })
    }

    fn err(&self, reason: impl std::fmt::Display) -> TelegramError {
        TelegramError::Sfu { url: self.url.clone(), reason: reason.to_string() }
    }
}

impl Telegram for Sfu {
    fn name(&self) -> &'static str {
        "sfu"
    }

    fn me(&self) -> Result<i64, TelegramError> {
        Err(TelegramError::NoAccount("an SFU"))
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        self.updates.subscribe()
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
        _options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            let resp = self
                .client
                .post(&self.url)
                .query(&[("chat", chat)])
                .header("content-type", "application/json")
                .body(params.to_json())
                .send()
                .await
                .map_err(|e| self.err(format!("request failed: {e}")))?;
            let status = resp.status();
            let body = resp.text().await.map_err(|e| self.err(format!("reading the body: {e}")))?;
            if !status.is_success() {
                let head: String = body.chars().take(200).collect();
                return Err(self.err(format!("answered {status}: {head}")));
            }
            Ok(TransportAnswer::parse(&body)?)
        })
    }

    fn leave(&self, _chat: ChatId, _ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>> {
        // The seam carries joins only; an SFU sees the participant go when ICE stops.
        Box::pin(async { Ok(()) })
    }
}
