//! The loopback's side of each call: an ICE-lite webrtc-rs peer that answers the
//! join JSON the way Telegram's media server does, and a task that receives RTP.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::interceptor::Registry;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::sansio::Protocol;
use tokio::net::UdpSocket;

use super::LoopbackOptions;
use super::recorder::HeardCall;
use crate::telegram::TelegramError;
use crate::transport::JoinParams;
use crate::transport::join::{
    AUDIO_LEVEL_URI, AudioParams, Candidate, Fingerprint, HeaderExt, OPUS_PAYLOAD_TYPE, PayloadType, RtcpFb, Setup,
    Transport, TransportAnswer, find_attr, parse_sdp,
};
use crate::transport::peer::{add_host_candidate, audio_media_engine, feed_datagram};

/// Audio-level extension id, as Telegram numbers it.
const LEVEL_EXT_ID: u8 = 1;

fn rtc_err(e: impl std::fmt::Display) -> TelegramError {
    TelegramError::Loopback(format!("could not accept the join: {e}"))
}

/// The SDP offer Telegram's server reconstructs from a join JSON: the client's ICE
/// credentials, fingerprint and SSRC on one send-only Opus m-line.
pub(super) fn offer_from_join(p: &JoinParams) -> String {
    let fp = &p.fingerprints[0];
    let setup = match fp.setup {
        Setup::Active => "active",
        Setup::Passive => "passive",
        Setup::Actpass => "actpass",
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF {OPUS_PAYLOAD_TYPE}\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:{} {}\r\na=setup:{setup}\r\n\
         a=rtpmap:{OPUS_PAYLOAD_TYPE} opus/48000/2\r\na=fmtp:{OPUS_PAYLOAD_TYPE} minptime=10;useinbandfec=1\r\n\
         a=extmap:{LEVEL_EXT_ID} {AUDIO_LEVEL_URI}\r\na=rtcp-mux\r\na=sendonly\r\n\
         a=msid:wasmcalls audio\r\na=ssrc:{} cname:wasmcalls\r\n",
        p.ufrag,
        p.pwd,
        fp.hash,
        fp.fingerprint,
        p.ssrc_u32()
    );
    s
}

/// Builds the peer for one join, returns Telegram's answer, and starts receiving.
pub(super) async fn spawn(
    params: &JoinParams,
    opts: &LoopbackOptions,
    heard: Arc<HeardCall>,
) -> Result<TransportAnswer, TelegramError> {
    let socket = UdpSocket::bind(SocketAddr::new(opts.bind_ip, 0)).await.map_err(rtc_err)?;
    let local = socket.local_addr().map_err(rtc_err)?;
    let client_setup = params.fingerprints[0].setup;
    let our_role = if client_setup == Setup::Passive { RTCDtlsRole::Client } else { RTCDtlsRole::Server };
    let now = Instant::now();
    let mut pc = RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_setting_engine(SettingEngineBuilder::new().with_lite(true).with_answering_dtls_role(our_role).build())
        .with_media_engine(audio_media_engine().map_err(rtc_err)?)
        .with_interceptor_registry(configure_rtcp_reports(Registry::new()))
        .build(now)
        .map_err(rtc_err)?;
    let offer = RTCSessionDescription::offer(offer_from_join(params)).map_err(rtc_err)?;
    pc.set_remote_description(now, offer).map_err(rtc_err)?;
    add_host_candidate(&mut pc, local).map_err(rtc_err)?;
    let answer = pc.create_answer(None).map_err(rtc_err)?;
    let answer_sdp = answer.sdp.clone();
    pc.set_local_description(now, answer).map_err(rtc_err)?;

    let sd = parse_sdp(&answer_sdp).map_err(rtc_err)?;
    let attr = |k| find_attr(&sd, k).ok_or_else(|| rtc_err(format!("answer lacks a={k}")));
    let fp = attr("fingerprint")?;
    let (hash, fingerprint) = fp.split_once(' ').ok_or_else(|| rtc_err("bad fingerprint"))?;
    let transport = TransportAnswer {
        transport: Transport {
            ufrag: attr("ice-ufrag")?,
            pwd: attr("ice-pwd")?,
            fingerprints: vec![Fingerprint {
                hash: hash.to_owned(),
                setup: client_setup.complement(),
                fingerprint: fingerprint.to_owned(),
            }],
            candidates: vec![Candidate {
                generation: "0".into(),
                component: "1".into(),
                protocol: "udp".into(),
                port: local.port().to_string(),
                ip: local.ip().to_string(),
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
        audio: AudioParams {
            payload_types: vec![PayloadType {
                id: OPUS_PAYLOAD_TYPE,
                name: "opus".into(),
                clockrate: 48000,
                channels: 2,
                parameters: serde_json::from_str(r#"{"minptime":10,"useinbandfec":1}"#).expect("static JSON"),
                rtcp_fbs: vec![RtcpFb { typ: "transport-cc".into(), subtype: None }],
            }],
            rtp_hdrexts: vec![HeaderExt { id: LEVEL_EXT_ID, uri: AUDIO_LEVEL_URI.into() }],
        },
    };
    tokio::spawn(receive(pc, socket, local, heard));
    Ok(transport)
}

/// Hands the RTP packets the peer has decrypted to the recorder.
fn take_packets(pc: &mut RTCPeerConnection, heard: &HeardCall, arrived: Instant) {
    while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
        if let RTCMessage::RtpPacket(_, packet) = message {
            heard.on_rtp(&packet, arrived);
        }
    }
}

/// The receive loop of one loopback participant.
async fn receive(mut pc: RTCPeerConnection, socket: UdpSocket, local: SocketAddr, heard: Arc<HeardCall>) {
    let mut buf = vec![0u8; 2048];
    let mut arrived = Instant::now();
    let hang_up = heard.hang_up_signal();
    loop {
        while let Some(out) = pc.poll_write() {
            let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
        }
        while let Some(ev) = pc.poll_event() {
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = ev {
                heard.on_state(state.to_string());
            }
        }
        take_packets(&mut pc, &heard, arrived);
        let wait = pc.poll_timeout().map_or(Duration::from_secs(1), |t| t.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = hang_up.notified() => {
                // What was sent before the leave is already queued: hear it before closing.
                while let Ok((n, from)) = socket.try_recv_from(&mut buf) {
                    arrived = Instant::now();
                    let _ = feed_datagram(&mut pc, local, from, &buf[..n], arrived);
                    take_packets(&mut pc, &heard, arrived);
                }
                break;
            }
            _ = tokio::time::sleep(wait) => {
                let _ = pc.handle_timeout(Instant::now());
            }
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = r {
                    arrived = Instant::now();
                    let _ = feed_datagram(&mut pc, local, from, &buf[..n], arrived);
                }
            }
        }
    }
    let _ = pc.close();
    while let Some(out) = pc.poll_write() {
        let _ = socket.send_to(&out.message, out.transport.peer_addr).await;
    }
    if let Err(e) = heard.finish_recording() {
        tracing::warn!(ssrc = heard.ssrc(), "loopback: closing the recording failed: {e}");
    }
    heard.on_state("left".into());
}
