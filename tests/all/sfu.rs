//! The SFU seam: the host POSTs its join JSON to a URL and connects to whatever
//! transport comes back — here the loopback served over HTTP on port 0.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use wasmcalls::calls::{DialError, dial};
use wasmcalls::media::{Control, MediaEvent, MediaPlane, PacerConfig, PcmFormat};
use wasmcalls::telegram::TelegramError;
use wasmcalls::telegram::loopback::{Loopback, LoopbackOptions, control};
use wasmcalls::telegram::sfu::{Sfu, SfuOptions};
use wasmcalls::transport::JoinError;

use crate::support::*;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/join")
}

fn sfu(url: &str) -> Sfu {
    Sfu::new(&SfuOptions { url: url.to_owned(), bind_ip: "127.0.0.1".parse().unwrap() }).unwrap()
}

fn plane() -> MediaPlane {
    MediaPlane::start(PacerConfig { shards: 1, ..Default::default() }).unwrap().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_joined_through_the_http_seam_is_heard() {
    let loopback = Loopback::new(LoopbackOptions { keep_audio: true, ..Default::default() }).unwrap();
    let url = serve(control::router(loopback.clone())).await;
    let (media, mut events) = MediaPlane::start(PacerConfig { shards: 1, ..Default::default() }).unwrap();
    let dialed = dial(&media, &sfu(&url), -42, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap();
    let heard = loopback.call(dialed.ssrc).expect("the loopback received the join over HTTP");
    assert_eq!(heard.chat(), -42, "the chat id travels in the query string");

    let dir = tempfile::tempdir().unwrap();
    let path = write_raw(dir.path(), "t.raw", &tones(&[(440.0, 0.3)], 0.5, RATE, 2));
    let spec = wasmcalls::media::SourceSpec::File { path, raw: PcmFormat::stereo48() };
    let stream = media.open_stream(&spec, None, Default::default()).unwrap();
    media.control(dialed.call, Control::Play(stream)).unwrap();
    loop {
        match tokio::time::timeout(PATIENCE, events.recv()).await.unwrap().unwrap() {
            MediaEvent::StreamEnded { .. } => break,
            MediaEvent::Connected { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 25)).await.unwrap();
    assert_eq!(heard.stats().lost, 0);
}

/// A burst of joins at once — what a host restarting with its calls does — all connect,
/// the loopback answering them on two threads at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_joins_all_connect() {
    let loopback = Loopback::new(LoopbackOptions::default()).unwrap();
    let url = serve(control::router(loopback.clone())).await;
    let media = MediaPlane::start(PacerConfig::default()).unwrap().0;
    let (sfu, as_ourselves) = (sfu(&url), Default::default());
    let joins = (0..40).map(|i| dial(&media, &sfu, -100 - i, "127.0.0.1".parse().unwrap(), &as_ourselves));
    let dialed = tokio::time::timeout(PATIENCE, futures::future::join_all(joins)).await.expect("no join hangs");
    for d in &dialed {
        let d = d.as_ref().expect("every call in the burst connects");
        assert!(loopback.call(d.ssrc).is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_answer_fails_fast_with_a_clear_error() {
    let url = serve(Router::new().route("/join", post(|| async { r#"{"rtmp":{"url":"rtmps://x"}}"# }))).await;
    let media = plane();
    let started = std::time::Instant::now();
    let err = dial(&media, &sfu(&url), 1, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap_err();
    assert!(matches!(err, DialError::Telegram(TelegramError::Join(JoinError::Broadcast("rtmp")))), "{err:?}");
    assert!(err.to_string().contains("broadcast"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    assert_eq!(media.call_count(), 0, "nothing left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sfu_errors_name_the_url_and_status() {
    let router =
        Router::new().route("/join", post(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "overloaded") }));
    let url = serve(router).await;
    let err = dial(&plane(), &sfu(&url), 1, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&url) && msg.contains("503") && msg.contains("overloaded"), "{msg}");

    // Nothing listening at all: a port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = format!("http://127.0.0.1:{port}/join");
    let msg = dial(&plane(), &sfu(&dead), 1, "127.0.0.1".parse().unwrap(), &Default::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&dead) && msg.contains("request failed"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transport_nobody_answers_on_times_out_with_a_clear_error() {
    // A well-formed answer pointing at a UDP port where nothing speaks ICE.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let answer = format!(
        r#"{{"transport":{{"ufrag":"u","pwd":"0123456789abcdef012345","fingerprints":[{{"hash":"sha-256","setup":"passive","fingerprint":"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"}}],
            "candidates":[{{"generation":"0","component":"1","protocol":"udp","port":"{port}","ip":"127.0.0.1","foundation":"1","id":"1","priority":"2130706431","type":"host","network":"1"}}]}}}}"#
    );
    let url = serve(Router::new().route("/join", post(move || async move { answer }))).await;
    let (media, _) = MediaPlane::start(PacerConfig {
        shards: 1,
        connect_timeout: Duration::from_millis(1500),
        ..Default::default()
    })
    .unwrap();
    let err = dial(&media, &sfu(&url), 1, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap_err();
    assert!(err.to_string().contains("did not connect"), "{err}");
    assert_eq!(media.call_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loopback_rejects_a_malformed_join_with_400() {
    let url = serve(control::router(Loopback::new(LoopbackOptions::default()).unwrap())).await;
    let resp = reqwest::Client::new().post(&url).body("{not json").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert!(body["error"].as_str().unwrap().contains("join params"), "{body}");
}
