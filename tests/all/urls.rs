//! URL sources against a local HTTP server the test runs: a progressive file, a live
//! stream with ICY headers, one that drops mid-stream (reconnected), 404, a web page, a
//! redirect checked against the grants, and a server too slow to keep up — while
//! another call keeps playing. Live sources played by several calls are fetched once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde_json::json;
use wasmcalls::calls::{HostEvent, dial};
use wasmcalls::media::shared::FeedStatus;
use wasmcalls::media::source::fetch::UrlPolicy;
use wasmcalls::media::source::{SourceSpec, open};
use wasmcalls::media::{Control, EncoderConfig, MediaEvent, PcmFormat};

use crate::support::*;

/// An MP3 with no Xing header (so copies of it concatenate into a clean stream).
fn mp3(seconds: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("t.wav");
    let pcm = tones(&[(440.0, 0.3), (660.0, 0.1)], seconds as f64, 44_100, 2);
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    pcm.iter().for_each(|s| w.write_sample(*s).unwrap());
    w.finalize().unwrap();
    let out = std::process::Command::new("lame")
        .args(["--quiet", "-t", "-b", "128"])
        .arg(&wav)
        .arg(dir.path().join("t.mp3"))
        .output()
        .expect("lame is needed for this test's fixtures; run `bash .ci/setup`");
    assert!(out.status.success());
    std::fs::read(dir.path().join("t.mp3")).unwrap()
}

/// `seconds` of 48 kHz stereo tone as a WAV file: 188 KiB a second.
fn wav(seconds: f64) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let spec =
        hound::WavSpec { channels: 2, sample_rate: 48_000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    tones(&[(440.0, 0.3)], seconds, 48_000, 2).iter().for_each(|s| w.write_sample(*s).unwrap());
    w.finalize().unwrap();
    out.into_inner()
}

/// A server with a route per behaviour; counts connections to `/drop`, and those to
/// `/radio` (all, and still open).
struct Server {
    addr: SocketAddr,
    drops: Arc<AtomicUsize>,
    radio: Arc<AtomicUsize>,
    radio_open: Arc<AtomicUsize>,
}

impl Server {
    async fn start() -> Server {
        let file = Bytes::from(mp3(2));
        let big = Bytes::from(wav(6.0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (f1, f2, f3, f4) = (file.clone(), file.clone(), file.clone(), file.clone());
        let d = drops.clone();
        let (radio, radio_open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (r, ro, f5) = (radio.clone(), radio_open.clone(), file.clone());
        let router = Router::new()
            .route(
                "/radio.mp3",
                get(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                    let (f, open) = (f5.clone(), Open::new(ro.clone()));
                    async move { live_while(f, None, Some(open)) }
                }),
            )
            .route("/file.mp3", get(move || async move { ([(header::CONTENT_TYPE, "audio/mpeg")], f1) }))
            .route("/big.wav", get(move || async move { ([(header::CONTENT_TYPE, "audio/wav")], big) }))
            .route("/live.mp3", get(move || async move { live(f2, None) }))
            .route(
                "/drop.mp3",
                get(move || {
                    let first = d.fetch_add(1, Ordering::SeqCst) == 0;
                    let f = f3.clone();
                    // The first listener is cut off after ~3 s of audio, abruptly.
                    async move { live(f, first.then_some(48 * 1024)) }
                }),
            )
            .route("/slow.mp3", get(move || async move { slow(f4) }))
            .route("/missing.mp3", get(|| async { (StatusCode::NOT_FOUND, "no such song") }))
            .route(
                "/page.mp3",
                get(|| async {
                    ([(header::CONTENT_TYPE, "text/html")], "<!DOCTYPE html><html><body>Hi</body></html>")
                }),
            )
            .route("/moved.mp3", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/file.mp3")]) }))
            .route(
                "/metadata.mp3",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/latest/meta-data/")]) }),
            )
            .route(
                "/away.mp3",
                get(|| async { (StatusCode::FOUND, [(header::LOCATION, "http://127.0.0.2:1/x.mp3")]) }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server { addr, drops, radio, radio_open }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn spec(&self, path: &str) -> SourceSpec {
        let policy = UrlPolicy::granted(vec![format!("http://{}/*", self.addr)], 64 << 20);
        SourceSpec::Url { url: self.url(path), policy }
    }
}

/// Counts a response body while the client holds it open.
struct Open(Arc<AtomicUsize>);

impl Open {
    fn new(count: Arc<AtomicUsize>) -> Open {
        count.fetch_add(1, Ordering::SeqCst);
        Open(count)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An endless stream of `file` at about its real rate (a burst first, as Icecast does),
/// with ICY headers; cut off after `cut` bytes if given.
fn live(file: Bytes, cut: Option<usize>) -> Response {
    live_while(file, cut, None)
}

/// [`live`], holding `open` as long as the body is being read.
fn live_while(file: Bytes, cut: Option<usize>, open: Option<Open>) -> Response {
    let open = open.map(Arc::new);
    let chunks = futures::stream::unfold((0usize, 0usize), move |(at, sent)| {
        let (file, _open) = (file.clone(), open.clone());
        async move {
            if cut.is_some_and(|c| sent >= c) {
                return Some((Err(std::io::Error::other("the connection dropped")), (at, sent)));
            }
            // A 32 KiB burst, then 4 KiB every 250 ms (128 kb/s).
            if sent >= 32 * 1024 {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            let end = (at + 4096).min(file.len());
            let chunk = file.slice(at..end);
            let next = if end == file.len() { 0 } else { end };
            Some((Ok::<_, std::io::Error>(chunk), (next, sent + (end - at))))
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "audio/mpeg")
        .header("icy-name", "wasmcalls test radio")
        .body(Body::from_stream(chunks))
        .unwrap()
        .into_response()
}

/// A live stream sent at a third of the rate it plays at.
fn slow(file: Bytes) -> Response {
    let chunks = futures::stream::unfold(0usize, move |at| {
        let file = file.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let end = (at + 1400).min(file.len());
            Some((Ok::<_, std::io::Error>(file.slice(at..end)), if end == file.len() { 0 } else { end }))
        }
    });
    Response::builder().header("icy-name", "slow").body(Body::from_stream(chunks)).unwrap().into_response()
}

fn open_err(spec: &SourceSpec) -> String {
    tokio::task::block_in_place(|| open(spec, None)).err().expect("refused").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_progressive_file_plays_to_its_end() {
    let server = Server::start().await;
    let mut call = Call::join().await;
    let stream = tokio::task::block_in_place(|| {
        call.media.open_stream(&server.spec("/file.mp3"), None, EncoderConfig::default())
    })
    .unwrap();
    // Finite (a length), though this MP3 does not say how long it plays.
    assert!(!stream.info().live, "{:?}", stream.info());
    let id = stream.id();
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    call.play_to_end(id).await;
    let secs = call.heard.stats().timeline_samples as f64 / 48_000.0;
    assert!((1.9..2.2).contains(&secs), "{secs} s");
    let heard = left(&call.heard.audio());
    let f = tone_frequency(&heard[9600..48_000], RATE);
    assert!((f - 440.0).abs() < 30.0, "heard {f} Hz");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_stream_plays_on_and_one_that_drops_is_reconnected() {
    let server = Server::start().await;
    let mut call = Call::join().await;
    let stream = tokio::task::block_in_place(|| {
        call.media.open_stream(&server.spec("/drop.mp3"), None, EncoderConfig::default())
    })
    .unwrap();
    assert!(stream.info().live && stream.duration().is_none());
    call.media.control(call.dialed.call, Control::Play(stream)).unwrap();
    // Cut off after ~3 s; the call plays on through the reconnection, for 5 s in all.
    call.heard_packets(250).await;
    assert!(server.drops.load(Ordering::SeqCst) >= 2, "reconnected after the drop");
    assert_eq!(call.heard.stats().lost, 0);
    assert!(call.events.try_recv().is_err(), "a live stream does not end because it dropped");
    let stats = call.media.stats(call.dialed.call).await.unwrap();
    assert!(stats.duration.is_none() && stats.source.unwrap().live);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_are_named_errors() {
    let server = Server::start().await;
    assert!(open_err(&server.spec("/missing.mp3")).contains("404"));
    assert!(open_err(&server.spec("/page.mp3")).contains("web page"));
    // A redirect is followed, and checked against the grants again.
    tokio::task::block_in_place(|| open(&server.spec("/moved.mp3"), None)).unwrap();
    let e = open_err(&server.spec("/away.mp3"));
    assert!(e.contains("127.0.0.2") && e.contains("not among the URLs granted"), "{e}");
    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dead = SourceSpec::Url {
        url: format!("http://127.0.0.1:{port}/x.mp3"),
        policy: UrlPolicy::granted(vec![format!("http://127.0.0.1:{port}/*")], 1),
    };
    assert!(open_err(&dead).contains("cannot fetch"), "{}", open_err(&dead));
    // A finite file above the download cap.
    let small = SourceSpec::Url {
        url: server.url("/file.mp3"),
        policy: UrlPolicy::granted(vec![format!("http://{}/*", server.addr)], 1000),
    };
    assert!(open_err(&small).contains("download_mb"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_costs_its_own_call_silence_and_no_other_call_anything() {
    let server = Server::start().await;
    let mut call = Call::join().await;
    // Another call on the same media plane, playing a file.
    let other =
        dial(&call.media, &call.loopback, -200, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap();
    let other_heard = call.loopback.call(other.ssrc).unwrap();
    let path = write_raw(call.dir.path(), "long.raw", &tones(&[(500.0, 0.3)], 10.0, RATE, 2));
    let file = call
        .media
        .open_stream(&SourceSpec::File { path, raw: PcmFormat::stereo48() }, None, EncoderConfig::default())
        .unwrap();
    call.media.control(other.call, Control::Play(file)).unwrap();

    let slow = tokio::task::block_in_place(|| {
        call.media.open_stream(&server.spec("/slow.mp3"), None, EncoderConfig::default())
    })
    .unwrap();
    call.media.control(call.dialed.call, Control::Play(slow)).unwrap();
    call.heard_packets(100).await;
    let stats = call.media.stats(call.dialed.call).await.unwrap();
    assert!(stats.starved > 0, "silence while the server falls behind: {stats:?}");
    // The other call never missed a packet.
    tokio::time::timeout(PATIENCE, other_heard.wait_until(|s| s.packets >= 100)).await.unwrap();
    assert_eq!(other_heard.stats().lost, 0);
    assert!(!matches!(call.events.try_recv(), Ok(MediaEvent::StreamEnded { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_play_urls_they_are_granted_and_only_those() {
    let server = Server::start().await;
    let setup = Setup::new()
        .chat(-100)
        .plugin(Bot::testbot("t").grants(&format!("chats = \"all\", urls = [\"http://{}/file*\"]", server.addr)));
    let host = Host::start(&setup).await;
    let r = host.api("t", json!({ "cmd": "join", "chat": -100, "file": server.url("/file.mp3") })).await;
    assert_eq!(r, json!({ "ok": null }));
    let calls = host.api("t", json!({ "cmd": "calls" })).await;
    assert_eq!(calls[0]["file"], server.url("/file.mp3"));
    let r = host.api("t", json!({ "cmd": "change", "chat": -100, "file": server.url("/live.mp3") })).await;
    assert!(r["err"]["permission-denied"].as_str().unwrap().contains("grants.urls"), "{r}");
    // Redirected out of the grant: refused too.
    let r = host.api("t", json!({ "cmd": "change", "chat": -100, "file": server.url("/file-moved") })).await;
    assert!(r.get("err").is_some(), "{r}");
}

/// `limits.download_mb_per_hour`: past it, what is playing stops and the next URL is
/// refused, both naming the quota; files play on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_downloads_stop_at_its_hourly_quota_naming_it() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, 48_000, 2));
    let grants = format!("chats = \"all\", files = [\".\"], urls = [\"http://{}/*\"]", server.addr);
    let setup = Setup::new().plugin(Bot::testbot("t").grants(&grants).limits("download_mb_per_hour = 1"));
    let host = Host::start_in(dir, &setup).await;
    let mut events = host.app.events();

    // 6 s of WAV is 1.1 MiB: it stops partway, once the hour's MiB is spent.
    let r = host.api("t", json!({ "cmd": "join", "chat": -100, "file": server.url("/big.wav") })).await;
    assert_eq!(r, json!({ "ok": null }));
    host.event(&mut events, |e| *e == HostEvent::StreamEnd(-100)).await;
    let heard = host.loopback().participant(-100).await.stats();
    assert!(heard.packets < 290, "stopped before its 300 frames: {heard:?}");
    let r = host.api("t", json!({ "cmd": "change", "chat": -100, "file": server.url("/file.mp3") })).await;
    let why = r["err"]["other"].as_str().unwrap_or_default();
    assert!(why.contains("limits.download_mb_per_hour = 1"), "{r}");
    let r = host.api("t", json!({ "cmd": "change", "chat": -100, "file": "long.raw" })).await;
    assert_eq!(r, json!({ "ok": null }), "files are not downloads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_source_commands_run_only_for_plugins_granted_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("song.mp3"), mp3(1)).unwrap();
    let song = dir.path().join("song.mp3").display().to_string();
    let setup = Setup::new()
        .chat(-100)
        .chat(-101)
        .plugin(Bot::testbot("granted").grants("chats = \"all\", sources = [\"cat\"]"))
        .plugin(Bot::testbot("other").grants("chats = \"all\""))
        .table("[sources.cat]\ncommand = [\"cat\", \"{arg}\"]");
    let host = Host::start_in(dir, &setup).await;
    let r = host.api("granted", json!({ "cmd": "join", "chat": -100, "file": format!("cat:{song}") })).await;
    assert_eq!(r, json!({ "ok": null }));
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(-100)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 25)).await.unwrap();
    // Not granted the source: the name means nothing to it, and the path is no file it may read.
    let r = host.api("other", json!({ "cmd": "join", "chat": -101, "file": format!("cat:{song}") })).await;
    assert!(r["err"]["permission-denied"].is_string(), "{r}");
}

/// A plugin's URL grant never reaches loopback, private, link-local or metadata
/// addresses unless the operator names that host; checked on the resolved address,
/// on every redirect too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_never_reach_internal_addresses_unless_their_host_is_named() {
    let server = Server::start().await;
    let port = server.addr.port();
    let anywhere = |url: String| SourceSpec::Url { url, policy: UrlPolicy::granted(vec!["http://*".into()], 64 << 20) };
    for url in [
        format!("http://localhost:{port}/file.mp3"), // a name for a loopback address
        format!("http://127.0.0.1:{port}/file.mp3"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://10.0.0.1/x.mp3".to_owned(),
        "http://192.168.1.1/x.mp3".to_owned(),
        "http://[::1]/x.mp3".to_owned(),
        "http://[::ffff:127.0.0.1]/x.mp3".to_owned(),
    ] {
        let e = open_err(&anywhere(url.clone()));
        assert!(e.contains("refused") && e.contains("grants.urls"), "{url}: {e}");
    }
    // Named exactly, the operator's local server is allowed…
    tokio::task::block_in_place(|| open(&server.spec("/file.mp3"), None)).expect("a named host plays");
    // …but a redirect from it to the metadata service is not, though `http://*` matches.
    let named_and_anywhere = SourceSpec::Url {
        url: server.url("/metadata.mp3"),
        policy: UrlPolicy::granted(vec![format!("http://{}/*", server.addr), "http://*".into()], 64 << 20),
    };
    let e = open_err(&named_and_anywhere);
    assert!(e.contains("169.254.169.254") && e.contains("refused"), "{e}");
    // The operator's own `wasmcalls play` reaches what it likes.
    let operator = SourceSpec::Url { url: format!("http://localhost:{port}/file.mp3"), policy: UrlPolicy::operator() };
    tokio::task::block_in_place(|| open(&operator, None)).expect("the operator plays a local URL");
}

/// The host's own API is out of every plugin's reach, even with 127.0.0.1 named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_never_reach_the_hosts_own_api() {
    let setup =
        Setup::new().chat(-100).plugin(Bot::testbot("t").grants("chats = \"all\", urls = [\"http://127.0.0.1:*\"]"));
    let host = Host::start(&setup).await;
    let api = format!("http://127.0.0.1:{}/healthz", host.app.api.port());
    let r = host.api("t", json!({ "cmd": "join", "chat": -100, "file": api })).await;
    let e = r["err"]["permission-denied"].as_str().unwrap_or_default();
    assert!(e.contains("own API"), "{r}");
    assert!(host.app.manager.joined_chats().is_empty());
}

/// Polls `pred` (something with no event to await) until it holds, or panics.
async fn eventually(what: &str, mut pred: impl FnMut() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !pred() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what}"));
}

/// A radio played into two calls is fetched, decoded and encoded once; a call that
/// turns its volume down encodes its own copy while the other keeps the shared one;
/// the fetch ends when the last call stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_playing_one_live_url_share_one_fetch_and_encode() {
    let server = Server::start().await;
    let call = Call::join().await;
    let other =
        dial(&call.media, &call.loopback, -200, "127.0.0.1".parse().unwrap(), &Default::default()).await.unwrap();
    let other_heard = call.loopback.call(other.ssrc).unwrap();
    let open = |media: &wasmcalls::media::MediaPlane| {
        tokio::task::block_in_place(|| media.open_stream(&server.spec("/radio.mp3"), None, EncoderConfig::default()))
            .unwrap()
    };
    let first = open(&call.media);
    let second = open(&call.media);
    assert!(first.info().live && first.info().shared && second.info().shared, "{:?}", first.info());
    assert_eq!(server.radio.load(Ordering::SeqCst), 1, "one fetch for both calls");
    assert_eq!(call.media.feeds(), vec![FeedStatus { source: server.url("/radio.mp3"), listeners: 2 }]);
    // Another encoder setting is another encode.
    let slimmer = EncoderConfig { bitrate: Some(32_000), ..EncoderConfig::default() };
    let third =
        tokio::task::block_in_place(|| call.media.open_stream(&server.spec("/radio.mp3"), None, slimmer)).unwrap();
    assert_eq!(server.radio.load(Ordering::SeqCst), 2);
    drop(third);

    call.media.control(call.dialed.call, Control::Play(first)).unwrap();
    call.media.control(other.call, Control::Play(second)).unwrap();
    call.heard_packets(100).await;
    tokio::time::timeout(PATIENCE, other_heard.wait_until(|s| s.packets >= 100)).await.unwrap();
    for heard in [&call.heard, &other_heard] {
        let pcm = left(&heard.audio());
        let f = tone_frequency(&pcm[pcm.len() - 24_000..], RATE);
        assert!((f - 440.0).abs() < 40.0, "heard {f} Hz");
    }

    // At 25 % one call encodes its own copy, a quarter as loud; the other is untouched.
    call.media.control(call.dialed.call, Control::Volume(25)).unwrap();
    let at = call.heard.stats().packets;
    call.heard_packets(at + 100).await;
    tokio::time::timeout(PATIENCE, other_heard.wait_until(|s| s.packets >= at + 100)).await.unwrap();
    let loud = |heard: &wasmcalls::telegram::loopback::HeardCall| {
        let pcm = left(&heard.audio());
        rms(&pcm[pcm.len() - 24_000..])
    };
    let ratio = loud(&call.heard) / loud(&other_heard);
    assert!((0.15..0.35).contains(&ratio), "a quarter as loud: {ratio}");
    assert_eq!(call.heard.stats().lost + other_heard.stats().lost, 0);

    // One call stops: the other plays on from the same fetch; the last one ends it.
    call.media.control(call.dialed.call, Control::Stop).unwrap();
    eventually("one call left on the feed", || call.media.feeds().first().is_some_and(|f| f.listeners == 1)).await;
    let at = other_heard.stats().packets;
    tokio::time::timeout(PATIENCE, other_heard.wait_until(|s| s.packets >= at + 50)).await.unwrap();
    call.media.control(other.call, Control::Stop).unwrap();
    eventually("the feed stops", || call.media.feeds().is_empty()).await;
    eventually("the fetch is closed", || server.radio_open.load(Ordering::SeqCst) == 0).await;
    assert_eq!(server.radio.load(Ordering::SeqCst), 2);
}

/// A named source marked `live` runs once for every plugin call playing it with the
/// same argument; one that is not runs once per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_named_source_runs_once_for_all_its_calls() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("song.mp3"), mp3(30)).unwrap();
    let song = dir.path().join("song.mp3").display().to_string();
    let runs = dir.path().join("runs");
    // Logs each run, then sends the song at its real rate, as a radio relay does.
    let relay = |name: &str, live: bool| {
        format!(
            "[sources.{name}]\ncommand = [\"sh\", \"-c\", \"echo {name} >> {runs}; exec ffmpeg -nostdin -loglevel error -re -i \\\"$0\\\" -c copy -f mp3 -\", \"{{arg}}\"]\nlive = {live}\n",
            runs = runs.display()
        )
    };
    let setup = Setup::new()
        .chat(-100)
        .chat(-101)
        .chat(-102)
        .chat(-103)
        .plugin(Bot::testbot("radio").grants("chats = \"all\", sources = [\"relay\", \"each\"]"))
        .table(&(relay("relay", true) + &relay("each", false)));
    let host = Host::start_in(dir, &setup).await;
    for (chat, source) in [(-100, "relay"), (-101, "relay"), (-102, "each"), (-103, "each")] {
        let r = host.api("radio", json!({ "cmd": "join", "chat": chat, "file": format!("{source}:{song}") })).await;
        assert_eq!(r, json!({ "ok": null }), "{chat}");
    }
    for chat in [-100, -101, -102, -103] {
        let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(chat)).await.unwrap();
        tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 50)).await.unwrap();
        assert_eq!(heard.stats().lost, 0, "{chat}");
    }
    let log = std::fs::read_to_string(&runs).unwrap();
    assert_eq!(log.lines().filter(|l| *l == "relay").count(), 1, "{log}");
    assert_eq!(log.lines().filter(|l| *l == "each").count(), 2, "{log}");
    let feeds = host.app.media.feeds();
    assert_eq!(feeds.len(), 1, "{feeds:?}");
    assert_eq!(feeds[0].listeners, 2);
}
