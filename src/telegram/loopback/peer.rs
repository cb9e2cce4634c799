//! The loopback's side of each call, behaving as Telegram's media servers do.
//!
//! It answers the join JSON at once — ICE credentials, DTLS fingerprint and a host
//! candidate, plus the audio and video sections Telegram always sends — and builds
//! its WebRTC peer when the client's first connectivity check arrives, because only
//! then does it know which ICE role the client took:
//!
//! - a *controlling* client that nominates (webrtc-rs, browsers, our own client):
//!   the loopback is an ICE-lite controlled agent and takes the nomination;
//! - a *controlled* client that never nominates (Telegram's native clients: tgcalls,
//!   NTgCalls — they treat the server as ICE-lite): the loopback takes the
//!   controlling role itself and nominates the pair the client's checks opened.
//!   Answering such a client with 487 Role Conflict, or waiting for a nomination
//!   that never comes, fails it about half the time; Telegram's servers never do.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::sansio::Protocol;
use rtc::stun::attributes::{ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING};
use rtc::stun::message::{CLASS_REQUEST, METHOD_BINDING, Message, is_stun_message};
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

use super::LoopbackOptions;
use super::recorder::HeardCall;
use super::speech::Spoken;
use crate::telegram::TelegramError;
use crate::transport::JoinParams;
use crate::transport::join::{
    AUDIO_LEVEL_URI, Candidate, Fingerprint, HeaderExt, MediaParams, OPUS_PAYLOAD_TYPE, PayloadType, RtcpFb, Setup,
    Transport, TransportAnswer,
};
use crate::transport::peer::{
    CHECK_INTERVAL, add_host_candidate, audio_media_engine, binding_requests, feed_datagram, shared_certificate,
};
use crate::transport::tap::{self, Tap, TapHandle};

/// How long the loopback keeps checking a client that has not answered yet.
const CONNECT_WAIT: Duration = Duration::from_secs(10);

/// Audio-level extension id, as Telegram numbers it.
pub(super) const LEVEL_EXT_ID: u8 = 1;

fn rtc_err(e: impl std::fmt::Display) -> TelegramError {
    TelegramError::Loopback(format!("could not accept the join: {e}"))
}

/// ICE credentials of one loopback participant, fixed before its peer exists.
#[derive(Clone)]
struct Credentials {
    ufrag: String,
    pwd: String,
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}

/// The SDP offer Telegram's server reconstructs from a join JSON: the client's ICE
/// credentials, fingerprint and SSRC on one Opus m-line. `client_is_lite` marks the
/// client as an ICE-lite agent, which makes our peer the controlling one.
pub fn offer_from_join(p: &JoinParams, client_is_lite: bool) -> String {
    let fp = &p.fingerprints[0];
    let setup = match fp.setup {
        Setup::Active => "active",
        Setup::Passive => "passive",
        Setup::Actpass => "actpass",
    };
    let lite = if client_is_lite { "a=ice-lite\r\n" } else { "" };
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n{lite}\
         m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PAYLOAD_TYPE}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{} {}\r\na=setup:{setup}\r\n\
         a=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\na=fmtp:{OPUS_PAYLOAD_TYPE} minptime=10;useinbandfec=1\r\n\
         a=extmap:{LEVEL_EXT_ID} {AUDIO_LEVEL_URI}\r\na=rtcp-mux\r\na=sendrecv\r\n\
         a=msid:wasmcalls audio\r\na=ssrc:{} cname:wasmcalls\r\n",
        p.ufrag,
        p.pwd,
        fp.hash,
        fp.fingerprint,
        p.ssrc_u32()
    );
    s
}

/// The audio section of Telegram's answer: Opus 111 with in-band FEC, transport-cc,
/// and the audio-level extension.
fn audio_section() -> MediaParams {
    let mut params = serde_json::Map::new();
    params.insert("minptime".into(), 10.into());
    params.insert("useinbandfec".into(), 1.into());
    MediaParams {
        payload_types: vec![PayloadType {
            id: OPUS_PAYLOAD_TYPE,
            name: "opus".into(),
            clockrate: 48000,
            channels: 2,
            parameters: params,
            rtcp_fbs: vec![RtcpFb { typ: "transport-cc".into(), subtype: None }],
        }],
        rtp_hdrexts: vec![HeaderExt { id: LEVEL_EXT_ID, uri: AUDIO_LEVEL_URI.into() }],
    }
}

/// The video section Telegram's answer always carries, camera or not: VP8 with its
/// retransmission payload, and the usual header extensions. Native clients refuse an
/// answer without it.
fn video_section() -> MediaParams {
    let fbs = ["goog-remb", "transport-cc", "ccm fir", "nack", "nack pli"].map(|f| {
        let (typ, subtype) = f.split_once(' ').map_or((f, None), |(t, s)| (t, Some(s.to_owned())));
        RtcpFb { typ: typ.into(), subtype }
    });
    let mut apt = serde_json::Map::new();
    apt.insert("apt".into(), 100.into());
    let ext = |id, uri: &str| HeaderExt { id, uri: uri.into() };
    MediaParams {
        payload_types: vec![
            PayloadType {
                id: 100,
                name: "VP8".into(),
                clockrate: 90000,
                channels: 0,
                parameters: serde_json::Map::new(),
                rtcp_fbs: fbs.to_vec(),
            },
            PayloadType {
                id: 101,
                name: "rtx".into(),
                clockrate: 90000,
                channels: 0,
                parameters: apt,
                rtcp_fbs: vec![],
            },
        ],
        rtp_hdrexts: vec![
            ext(2, "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
            ext(3, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"),
            ext(13, "urn:3gpp:video-orientation"),
        ],
    }
}

/// Binds the participant's socket, answers the join as Telegram would, and starts the
/// task that will accept its connection and forward it what `speech` says in its chat.
pub(super) async fn spawn(
    params: &JoinParams,
    opts: &LoopbackOptions,
    outages: Arc<super::faults::Outages>,
    heard: Arc<HeardCall>,
    speech: broadcast::Receiver<Arc<Spoken>>,
) -> Result<TransportAnswer, TelegramError> {
    let socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0)).await.map_err(rtc_err)?;
    let local = socket.local_addr().map_err(rtc_err)?;
    // With faults configured, the client is given a relay that impairs the path.
    let relay_stop = Arc::new(tokio::sync::Notify::new());
    let advertised = if opts.faults.any() {
        let (addr, _) = super::faults::relay(opts.bind_ip, local, opts.faults.clone(), outages, relay_stop.clone())
            .await
            .map_err(rtc_err)?;
        addr
    } else {
        local
    };
    let cert = shared_certificate().map_err(rtc_err)?;
    let provider = rtc::crypto::default_provider().map_err(rtc_err)?;
    let fingerprint = cert.get_fingerprints(provider.crypto()).map_err(rtc_err)?.into_iter().next();
    let fingerprint = fingerprint.ok_or_else(|| rtc_err("the certificate has no fingerprint"))?;
    let creds = Credentials { ufrag: random_token(8), pwd: random_token(24) };
    let client_setup = params.fingerprints[0].setup;
    let transport = TransportAnswer {
        transport: Transport {
            ufrag: creds.ufrag.clone(),
            pwd: creds.pwd.clone(),
            fingerprints: vec![Fingerprint {
                hash: fingerprint.algorithm,
                setup: client_setup.complement(),
                fingerprint: fingerprint.value.to_uppercase(),
            }],
            candidates: vec![Candidate {
                generation: "0".into(),
                component: "1".into(),
                protocol: "udp".into(),
                port: advertised.port().to_string(),
                ip: advertised.ip().to_string(),
                foundation: "1".into(),
                id: format!("{:x}", rand::random::<u32>()),
                priority: "2130706431".into(),
                typ: "host".into(),
                network: "1".into(),
                tcptype: None,
                rel_addr: None,
                rel_port: None,
            }],
        },
        audio: audio_section(),
        video: Some(video_section()),
    };
    let accept = Accept { params: params.clone(), creds, cert, local };
    tokio::spawn(async move {
        receive(accept, socket, heard, speech).await;
        relay_stop.notify_one();
    });
    Ok(transport)
}

/// Everything needed to build the peer once the client's role is known.
struct Accept {
    params: JoinParams,
    creds: Credentials,
    cert: RTCCertificate,
    local: SocketAddr,
}

/// The ICE role a connectivity check announces: `Some(true)` for a controlling client.
fn client_role(datagram: &[u8]) -> Option<bool> {
    if !is_stun_message(datagram) {
        return None;
    }
    let mut m = Message::new();
    m.unmarshal_binary(datagram).ok()?;
    if m.typ.method != METHOD_BINDING || m.typ.class != CLASS_REQUEST {
        return None;
    }
    if m.contains(ATTR_ICE_CONTROLLING) {
        Some(true)
    } else if m.contains(ATTR_ICE_CONTROLLED) {
        Some(false)
    } else {
        None
    }
}

impl Accept {
    /// The loopback's peer for a client that is controlling (or not), and the tap that
    /// sends the client what other participants say.
    fn build(&self, client_controlling: bool) -> Result<(RTCPeerConnection, TapHandle), TelegramError> {
        let now = Instant::now();
        let (tap, speak) = Tap::injecting();
        // DTLS: whichever role the client did not take.
        let our_dtls =
            if self.params.fingerprints[0].setup == Setup::Passive { RTCDtlsRole::Client } else { RTCDtlsRole::Server };
        let engine = SettingEngineBuilder::new()
            // Lite (and so controlled) for a controlling client; a full, controlling
            // agent for a controlled one — rtc makes us controlling when the remote is lite.
            .with_lite(client_controlling)
            .with_ice_credentials(self.creds.ufrag.clone(), self.creds.pwd.clone())
            .with_answering_dtls_role(our_dtls)
            // The client is known only from its checks (peer-reflexive): nominate at once.
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            .with_host_acceptance_min_wait(Some(Duration::ZERO))
            // A client slow to answer (a burst of joins) is checked as long as a
            // server's join waits, not rtc's 1.4 s.
            .with_ice_connection_attempts(Some(CHECK_INTERVAL), Some(binding_requests(CONNECT_WAIT)))
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![self.cert.clone()]).build())
            .with_setting_engine(engine)
            .with_media_engine(audio_media_engine().map_err(rtc_err)?)
            .with_interceptor_registry(configure_rtcp_reports(Registry::new()).with(tap::SLOT, tap))
            .build(now)
            .map_err(rtc_err)?;
        let offer =
            RTCSessionDescription::offer(offer_from_join(&self.params, !client_controlling)).map_err(rtc_err)?;
        pc.set_remote_description(now, offer).map_err(rtc_err)?;
        add_host_candidate(&mut pc, self.local).map_err(rtc_err)?;
        let answer = pc.create_answer(None).map_err(rtc_err)?;
        pc.set_local_description(now, answer).map_err(rtc_err)?;
        Ok((pc, speak))
    }
}

/// Hands the RTP packets the peer has decrypted to the recorder.
fn take_packets(pc: &mut RTCPeerConnection, heard: &HeardCall, arrived: Instant) {
    while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
        if let RTCMessage::RtpPacket(_, packet) = message {
            heard.on_rtp(&packet, arrived);
        }
    }
}

/// Sends what the peer has queued and reports its state changes; `connected` follows
/// them.
async fn flush(pc: &mut RTCPeerConnection, socket: &UdpSocket, heard: &HeardCall, connected: &mut bool) {
    while let Some(out) = pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
    while let Some(ev) = pc.poll_event() {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = ev {
            *connected = state == RTCPeerConnectionState::Connected;
            heard.on_state(state.to_string());
        }
    }
}

/// The next packet said in any chat (a connection that fell behind skips what it
/// missed, as a lossy network would); never, once the loopback is gone.
async fn next_said(speech: &mut broadcast::Receiver<Arc<Spoken>>) -> Arc<Spoken> {
    loop {
        match speech.recv().await {
            Ok(said) => return said,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
        }
    }
}

/// The receive loop of one loopback participant: what the client sends is heard;
/// what others in its chat say is sent to it.
async fn receive(
    accept: Accept,
    socket: UdpSocket,
    heard: Arc<HeardCall>,
    mut speech: broadcast::Receiver<Arc<Spoken>>,
) {
    let mut pc: Option<(RTCPeerConnection, TapHandle)> = None;
    let mut buf = vec![0u8; 2048];
    let mut arrived = Instant::now();
    let hang_up = heard.hang_up_signal();
    let (mut connected, mut client) = (false, None);
    loop {
        if let Some((pc, _)) = pc.as_mut() {
            flush(pc, &socket, &heard, &mut connected).await;
            take_packets(pc, &heard, arrived);
        }
        let now = Instant::now();
        let release = heard.release_due(now);
        let wake = pc.as_mut().and_then(|(pc, _)| pc.poll_timeout()).into_iter().chain(release).min();
        let wait = wake.map_or(Duration::from_secs(1), |t| t.saturating_duration_since(now));
        tokio::select! {
            _ = hang_up.notified() => {
                // What was sent before the leave is already queued: hear it before closing.
                while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
                    arrived = Instant::now();
                    if let Some((pc, _)) = pc.as_mut() {
                        let _ = feed_datagram(pc, accept.local, from, &buf[..n], arrived);
                        take_packets(pc, &heard, arrived);
                    }
                }
                heard.flush();
                break;
            }
            _ = tokio::time::sleep(wait) => {
                if let Some((pc, _)) = pc.as_mut() {
                    let _ = pc.handle_timeout(Instant::now());
                }
            }
            said = next_said(&mut speech) => {
                // Forwarded as Telegram's server forwards: the packet as the speaker
                // sent it, once the client's connection is up.
                if let (true, true, Some((_, tap)), Some(to)) = (said.chat == heard.chat(), connected, pc.as_ref(), client) {
                    tap.inject(accept.local, to, said.packet.clone());
                }
            }
            r = socket.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { continue };
                arrived = Instant::now();
                client = Some(from);
                if pc.is_none() {
                    // Nothing but the client's first check tells its ICE role.
                    let Some(controlling) = client_role(&buf[..n]) else { continue };
                    match accept.build(controlling) {
                        Ok(built) => pc = Some(built),
                        Err(e) => {
                            tracing::warn!(ssrc = heard.ssrc(), "loopback: {e}");
                            heard.on_state("failed".into());
                            break;
                        }
                    }
                }
                if let Some((pc, _)) = pc.as_mut() {
                    let _ = feed_datagram(pc, accept.local, from, &buf[..n], arrived);
                }
            }
        }
    }
    if let Some((mut pc, _)) = pc {
        let _ = pc.close();
        flush(&mut pc, &socket, &heard, &mut connected).await;
    }
    if let Err(e) = heard.finish_recording() {
        tracing::warn!(ssrc = heard.ssrc(), "loopback: closing the recording failed: {e}");
    }
    heard.on_state("left".into());
}
