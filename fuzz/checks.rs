//! What each fuzz target checks, one function per target, shared by the fuzz
//! targets (`fuzz_targets/*.rs`) and by the normal test suite, which runs every input
//! kept in `fuzz/corpus/` and `fuzz/regressions/` through the same checks
//! (`tests/all/fuzz.rs`). A check returns quietly for input it refuses and panics on a
//! bug.

#![allow(dead_code)] // each fuzz target uses one check

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use grammers_tl_types::{self as tl, Deserializable};
use rtc::sdp::description::session::SessionDescription;
use wasmcalls::media::gain::Gain;
use wasmcalls::media::source::decoded::open_file;
use wasmcalls::media::source::opus::Packet;
use wasmcalls::media::source::sniff::{Sniffed, sniff};
use wasmcalls::media::source::{Frame, Input};
use wasmcalls::telegram::loopback::offer_from_join;
use wasmcalls::telegram::messages::Account;
use wasmcalls::telegram::mtproto::requests::updates_in;
use wasmcalls::telegram::router::{JoinedCall, Router};
use wasmcalls::telegram::tl::CallRef;
use wasmcalls::transport::{JoinParams, OutboundPeer, Setup, TransportAnswer};

/// Parses an SDP we built; `lines` are line prefixes it must hold exactly once each,
/// so a value from outside cannot have added lines of its own.
fn parse_sdp(sdp: &str, lines: &[&str]) -> SessionDescription {
    for prefix in lines {
        let n = sdp.split("\r\n").filter(|l| l.starts_with(prefix)).count();
        assert_eq!(n, 1, "{prefix} appears {n} times:\n{sdp}");
    }
    assert!(!sdp.contains('\n') || sdp.split("\r\n").all(|l| !l.contains(['\r', '\n'])), "a bare line break:\n{sdp}");
    SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
        .unwrap_or_else(|e| panic!("an SDP we built does not parse ({e}):\n{sdp}"))
}

/// The lines our SDPs carry once.
const ONCE: [&str; 7] = ["v=", "m=", "a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:", "a=setup:", "a=rtpmap:"];

/// A private folder for one process's files.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmcalls-fuzz-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The join JSON the loopback takes (what Telegram's server receives), and the SDP
/// offer it builds from it: whatever parses yields an offer that parses back with one
/// audio m-line carrying exactly the client's ICE credentials — a value in the JSON
/// never adds lines to the SDP.
pub fn join_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(params) = JoinParams::parse(text) else { return };
    for lite in [false, true] {
        let sdp = offer_from_join(&params, lite);
        let parsed = parse_sdp(&sdp, &ONCE);
        assert_eq!(parsed.media_descriptions.len(), 1, "{sdp}");
        let m = &parsed.media_descriptions[0];
        assert_eq!(m.attribute("ice-ufrag").flatten(), Some(params.ufrag.as_str()), "{sdp}");
        assert_eq!(m.attribute("ice-pwd").flatten(), Some(params.pwd.as_str()), "{sdp}");
    }
}

/// Telegram's transport JSON (the answer to our join) and the SDP answer our peer is
/// given from it: whatever parses yields an answer that parses back with one audio
/// m-line and the transport's ICE credentials unchanged.
pub fn transport_json(data: &[u8]) {
    static OFFER: OnceLock<String> = OnceLock::new();
    let offer = OFFER.get_or_init(|| {
        OutboundPeer::new("127.0.0.1".parse().unwrap(), Default::default(), std::time::Duration::from_secs(10))
            .unwrap()
            .offer_sdp()
            .to_owned()
    });
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(answer) = TransportAnswer::parse(text) else { return };
    let Ok(sdp) = answer.to_answer_sdp(offer, Setup::Active) else { return };
    let parsed = parse_sdp(&sdp, &ONCE);
    let udp = answer.transport.candidates.iter().filter(|c| c.protocol.eq_ignore_ascii_case("udp")).count();
    assert_eq!(sdp.matches("\r\na=candidate:").count(), udp, "{sdp}");
    let audio: Vec<_> = parsed.media_descriptions.iter().filter(|m| m.media_name.media == "audio").collect();
    assert_eq!(audio.len(), 1, "{sdp}");
    let ufrag = audio[0].attribute("ice-ufrag").flatten().or_else(|| parsed.attribute("ice-ufrag").map(String::as_str));
    assert_eq!(ufrag, Some(answer.transport.ufrag.as_str()), "{sdp}");
}

/// The TOML config as `wasmcalls check` reads it: parsed, then resolved (paths made
/// canonical under a real folder); refused with a message, never a panic.
pub fn config_toml(data: &[u8]) {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = scratch("config");
        std::fs::create_dir_all(d.join("plugins")).unwrap();
        d
    });
    let Ok(text) = std::str::from_utf8(data) else { return };
    match wasmcalls::config::Config::parse(text, dir) {
        Ok(config) => {
            if let Err(e) = wasmcalls::app::resolve(&config) {
                let _ = e.to_string();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// Telegram's updates as they come off the wire: TL bytes read, then routed for the
/// account and the bot (into events and raw JSON) by a router that is in one call.
pub fn tl_updates(data: &[u8]) {
    let Ok(updates) = tl::enums::Updates::from_bytes(data) else { return };
    let chats: &[tl::enums::Chat] = match &updates {
        tl::enums::Updates::Updates(u) => &u.chats,
        tl::enums::Updates::Combined(u) => &u.chats,
        _ => &[],
    };
    let router = Router::new(777, Some(778));
    let joined = [JoinedCall { chat: -1001, call: CallRef { id: 1, access_hash: 2 }, ssrc: 3 }];
    for update in updates_in(&updates) {
        for seen_by in [Account::User, Account::Bot] {
            for event in router.route(update, chats, &joined, seen_by) {
                let _ = format!("{event:?}");
            }
        }
    }
}

/// Any bytes as an audio file: sniffed, demuxed and decoded (or passed through, for
/// Opus) as a file source is, for up to 10 s of frames. (The ffmpeg fallback for what
/// symphonia refuses is ffmpeg's parser, not ours, and is left out.)
pub fn media_bytes(data: &[u8]) {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    // An extension symphonia is asked to try, not one that means raw PCM.
    let path = FILE.get_or_init(|| scratch("media").join("input.audio"));
    if let Sniffed::NotAudio(_) = sniff(&data[..data.len().min(512)]) {
        return;
    }
    std::fs::write(path, data).unwrap();
    let Ok(opened) = open_file(path, None) else { return };
    match opened.input {
        Input::Pcm(mut pcm) => {
            let mut frame = vec![0i16; 960 * pcm.channels() as usize];
            for _ in 0..500 {
                if !matches!(pcm.next_frame(&mut frame), Ok(Frame::Audio(_) | Frame::Starved)) {
                    break;
                }
            }
        }
        Input::Opus(mut opus) => {
            let (mut gain, mut packet) = (Gain::default(), Packet::empty());
            for _ in 0..500 {
                if !matches!(opus.next_packet(&mut gain, &mut packet), Ok(true)) {
                    break;
                }
            }
        }
    }
}

/// HTTP requests from outside, through the routers the host serves: `/api` (the host's
/// checks, then the test bot, which runs the commands it is sent, so bodies reach the
/// call manager through the contract) and the loopback's control endpoint (people's
/// messages, presses, participants, raw updates, outages).
pub struct Http {
    // Dropped in this order: the host, then the runtime it runs on.
    _app: wasmcalls::app::App,
    api: axum::Router,
    control: axum::Router,
    rt: tokio::runtime::Runtime,
}

/// The chat the fixture's bot may use.
const CHAT: i64 = -1001;

/// The test bot's commands that exist to be hostile (trap, spin, loop, hoard memory):
/// the sandbox tests and `bench hostile` cover them; here they would only be timeouts.
const HOSTILE: [&str; 7] = ["trap", "spin", "loop", "alloc", "recurse", "flood", "big"];

impl Http {
    /// A host on the loopback with the test bot (`wasm`) granted one chat and a folder.
    pub fn new(wasm: &Path) -> Http {
        let dir = scratch("http");
        std::fs::write(dir.join("a.raw"), vec![0u8; 48_000 * 4 / 10]).unwrap();
        let toml = format!(
            "[host]\napi_port = 0\nlog = \"off\"\n[[loopback.chats]]\nid = {CHAT}\nactive_call = true\n\
             [[plugins]]\nname = \"t\"\nwasm = {wasm:?}\ngrants = {{ chats = [{CHAT}], files = [\".\"] }}\n"
        );
        let config = wasmcalls::config::Config::parse(&toml, &dir).expect("the config parses");
        let options = wasmcalls::app::resolve(&config).expect("the config resolves");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let app = rt.block_on(wasmcalls::app::App::start(&options)).expect("the host starts");
        if let Some((name, e)) = app.failed().next() {
            panic!("plugin {name} did not load ({e}); build it first (fuzz/README.md)");
        }
        let state = wasmcalls::api::ApiState::new(
            app.plugins.clone(),
            app.manager.clone(),
            app.media.clone(),
            options.api.clone(),
            vec!["t".into()],
        );
        let api = wasmcalls::api::router(Arc::new(state));
        let control = wasmcalls::telegram::loopback::control::router(app.loopback.clone().expect("on the loopback"));
        Http { _app: app, api, control, rt }
    }

    /// One request made of `data`: its route, content type and body. Every request is
    /// answered; the control endpoint never answers with a server error.
    pub fn request(&self, data: &[u8]) {
        use axum::body::Body;
        use axum::http::{Method, Request};
        use tower::ServiceExt;
        let mut u = arbitrary::Unstructured::new(data);
        let (Ok(route), Ok(chat), Ok(text), Ok(json_type)) =
            (u.int_in_range(0..=10u8), u.arbitrary::<i64>(), u.arbitrary::<String>(), u.arbitrary::<bool>())
        else {
            return;
        };
        let body = u.take_rest().to_vec();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body)
            && v.get("cmd").and_then(|c| c.as_str()).is_some_and(|c| HOSTILE.contains(&c))
        {
            return;
        }
        let chat = if chat % 2 == 0 { CHAT } else { chat };
        let (to_api, method, uri) = match route {
            0 => (true, Method::POST, "/api".to_owned()),
            1 => (true, Method::POST, format!("/api/{}", enc(&text))),
            2 => (true, Method::GET, "/status".to_owned()),
            3 => (false, Method::POST, format!("/chats/{chat}/messages")),
            4 => (false, Method::POST, format!("/chats/{chat}/press")),
            5 => (false, Method::POST, format!("/chats/{chat}/participants")),
            6 => (false, Method::GET, format!("/chats/{chat}/messages")),
            7 => (false, Method::GET, format!("/chats/{chat}/participants")),
            8 => (false, Method::POST, format!("/chats/{chat}/invite?inviter={}", enc(&text))),
            9 => (false, Method::POST, "/updates".to_owned()),
            _ => (false, Method::POST, format!("/network/outage?seconds={}", enc(&text))),
        };
        let mut req = Request::builder().method(method).uri(uri);
        if json_type {
            req = req.header("content-type", "application/json");
        }
        let Ok(req) = req.body(Body::from(body)) else { return };
        let service = if to_api { self.api.clone() } else { self.control.clone() };
        let response = self.rt.block_on(service.oneshot(req)).expect("the routers are infallible");
        assert!(to_api || !response.status().is_server_error(), "the control endpoint failed: {response:?}");
    }
}

/// Percent-encodes all but unreserved characters, so any string fits in a URI.
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
