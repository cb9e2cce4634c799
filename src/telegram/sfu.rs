//! The seam for independent peers: POST the join JSON — exactly what would go into
//! `phone.joinGroupCall(params)` — to an SFU URL and take the response body as the
//! transport JSON Telegram would have sent in `updateGroupCallConnection`.
//!
//! Request: `POST <url>?chat=<chat id>` with `Content-Type: application/json` and the
//! join JSON as body. Response: 2xx with the transport JSON as body; anything else is
//! an error that quotes the status and the start of the body.

use std::time::Duration;

use super::{BoxFuture, ChatId, GroupCallServer, TelegramError};
use crate::transport::{JoinParams, TransportAnswer};

/// A group-call server reached over HTTP.
pub struct SfuServer {
    url: String,
    client: reqwest::Client,
}

impl SfuServer {
    pub fn new(url: impl Into<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client always builds");
        SfuServer { url: url.into(), client }
    }

    fn err(&self, reason: impl std::fmt::Display) -> TelegramError {
        TelegramError::Sfu { url: self.url.clone(), reason: reason.to_string() }
    }
}

impl GroupCallServer for SfuServer {
    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
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
