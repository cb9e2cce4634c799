//! Our side of the WebRTC connection: a sans-IO `rtc` peer with one send-receive Opus
//! m-line — our track out; everyone else's streams in, through a [`Tap`] — bound to its
//! own UDP socket, driven by the media plane's pacer thread.
//!
//! Why sans-IO and not the async `webrtc` layer: measured on this class of machine,
//! driving `rtc::RTCPeerConnection` from one thread costs ~40 % less CPU and ~60 % less
//! memory per call, and lets one pacer thread own hundreds of connections without a
//! task, channel or timer per packet (see `../shared/reference/performance-notes.md`).

use parking_lot::Mutex;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MediaEngine};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::join::{AUDIO_LEVEL_URI, JoinError, JoinParams, OPUS_PAYLOAD_TYPE, Setup, TransportAnswer};
use super::tap::{self, Tap, TapHandle};

/// Errors while setting up our peer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("could not bind a UDP socket on {0}: {1}")]
    Bind(IpAddr, io::Error),
    #[error("WebRTC peer setup failed: {0}")]
    Rtc(#[from] rtc::shared::error::Error),
    #[error(transparent)]
    Join(#[from] JoinError),
}

/// The Opus codec as Telegram negotiates it: `opus/48000/2` even for mono content.
pub fn opus_codec() -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: OPUS_PAYLOAD_TYPE,
    }
}

/// A media engine with only Opus and the audio-level extension: exactly what a
/// Telegram voice chat negotiates, nothing more to offer or to process.
pub fn audio_media_engine() -> Result<MediaEngine, rtc::shared::error::Error> {
    let mut me = MediaEngine::default();
    me.register_codec(opus_codec(), RtpCodecKind::Audio)?;
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability { uri: AUDIO_LEVEL_URI.to_owned() },
        RtpCodecKind::Audio,
        None,
    )?;
    Ok(me)
}

/// One DTLS certificate for every connection of this process, renewed a day before
/// it expires. Generating a key pair per call cost CPU on every join and memory for
/// every call; Telegram only checks that the fingerprint we announce matches.
pub(crate) fn shared_certificate() -> Result<RTCCertificate, rtc::shared::error::Error> {
    static CERT: Mutex<Option<RTCCertificate>> = Mutex::new(None);
    let mut slot = CERT.lock();
    let fresh = |c: &RTCCertificate| c.expires > SystemTime::now() + Duration::from_secs(86_400);
    if let Some(cert) = slot.as_ref().filter(|c| fresh(c)) {
        return Ok(cert.clone());
    }
    let other = |e: &dyn std::fmt::Display| rtc::shared::error::Error::Other(format!("DTLS certificate: {e}"));
    let provider = rtc::crypto::default_provider().map_err(|e| other(&e))?;
    let params = CertificateParams::new(vec!["wasmcalls".to_owned()]).map_err(|e| other(&e))?;
    let cert = RTCCertificate::generate(provider.crypto(), rtc::crypto::SignatureScheme::EcdsaP256Sha256, params)?;
    *slot = Some(cert.clone());
    Ok(cert)
}

/// Picks an SSRC the way Telegram clients do: random, 31 bits, never zero.
pub fn random_ssrc() -> u32 {
    loop {
        let s = rand::random::<u32>() & 0x7fff_ffff;
        if s != 0 {
            return s;
        }
    }
}

/// How long the media path may stay silent. RFC 7675: consent to send expires 30 s
/// after the far side last answered; we call the path silent well before that, so
/// the call can say so (and be told when it comes back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consent {
    /// No answer to our checks for this long: the path is silent (ICE disconnected).
    pub silent_after: Duration,
    /// No answer for this long: consent has expired (ICE failed) and sending stops.
    pub expire_after: Duration,
}

impl Default for Consent {
    fn default() -> Self {
        Consent { silent_after: Duration::from_secs(5), expire_after: Duration::from_secs(30) }
    }
}

impl Consent {
    /// Consent checks often enough that one lost answer never reads as silence.
    fn check_interval(&self) -> Duration {
        (self.silent_after / 4).min(Duration::from_secs(2))
    }
}

/// Time between connectivity checks while connecting (rtc's default).
pub const CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// Connectivity checks to send before ICE gives the server's candidate up. rtc's
/// default, 7, gives up after 1.4 s: a media server busy for a moment (a burst of
/// joins) or a lossy path then lost the call for good, with ICE stuck in `checking`
/// until the join timed out. Telegram gives one candidate per address family, so
/// checks go on for as long as the join may take.
pub fn binding_requests(checks_for: Duration) -> u16 {
    (checks_for.as_millis() / CHECK_INTERVAL.as_millis()).clamp(7, u16::MAX as u128) as u16
}

/// Our outbound peer before it is handed to the pacer.
pub struct OutboundPeer {
    pub pc: RTCPeerConnection,
    pub socket: UdpSocket,
    pub local_addr: SocketAddr,
    pub sender: RTCRtpSenderId,
    pub ssrc: u32,
    /// The consent timing the peer was built with.
    pub consent: Consent,
    /// What the far side sends us: every participant's stream, by SSRC.
    pub heard: TapHandle,
    offer_sdp: String,
    setup: Setup,
}

impl OutboundPeer {
    /// Binds a socket on `bind_ip`, creates the peer and its local offer. Checks to the
    /// server's candidate go on for `checks_for` (the time a connection may take).
    pub fn new(bind_ip: IpAddr, consent: Consent, checks_for: Duration) -> Result<Self, PeerError> {
        let socket = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).map_err(|e| PeerError::Bind(bind_ip, e))?;
        let local_addr = socket.local_addr().map_err(|e| PeerError::Bind(bind_ip, e))?;
        let now = Instant::now();
        let me = audio_media_engine()?;
        // RTCP reports only: Telegram neither NACKs audio nor needs simulcast. The tap
        // takes the participants' streams the server forwards.
        let (tap, heard) = Tap::capturing();
        let registry = configure_rtcp_reports(Registry::new()).with(tap::SLOT, tap);
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().with_certificates(vec![shared_certificate()?]).build())
            .with_setting_engine(
                SettingEngineBuilder::new()
                    .with_ice_timeouts(
                        Some(consent.silent_after),
                        Some(consent.expire_after.saturating_sub(consent.silent_after)),
                        Some(consent.check_interval()),
                    )
                    .with_ice_connection_attempts(Some(CHECK_INTERVAL), Some(binding_requests(checks_for)))
                    .build(),
            )
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .build(now)?;

        let ssrc = random_ssrc();
        let track = MediaStreamTrack::new(
            "wasmcalls".to_owned(),
            format!("audio-{ssrc}"),
            "audio".to_owned(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                codec: opus_codec().rtp_codec,
                ..Default::default()
            }],
        );
        pc.add_transceiver_from_track(
            track,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendrecv,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
        let sender = pc.get_senders().next().ok_or(rtc::shared::error::Error::ErrRTPSenderNotExisted)?;

        add_host_candidate(&mut pc, local_addr)?;

        let offer = pc.create_offer(None)?;
        let offer_sdp = offer.sdp.clone();
        pc.set_local_description(now, offer)?;
        Ok(OutboundPeer { pc, socket, local_addr, sender, ssrc, consent, heard, offer_sdp, setup: Setup::Active })
    }

    /// The join JSON for `phone.joinGroupCall`. We take the DTLS client role, as
    /// browser-style clients do.
    pub fn join_params(&self) -> Result<JoinParams, JoinError> {
        JoinParams::from_offer(&self.offer_sdp, self.ssrc, self.setup)
    }

    /// Applies Telegram's transport answer; ICE and DTLS start on the next drive.
    pub fn apply_answer(&mut self, answer: &TransportAnswer) -> Result<(), PeerError> {
        let sdp = answer.to_answer_sdp(&self.offer_sdp, self.setup)?;
        self.pc.set_remote_description(Instant::now(), RTCSessionDescription::answer(sdp)?)?;
        Ok(())
    }

    /// Our local offer, for diagnostics and tests.
    pub fn offer_sdp(&self) -> &str {
        &self.offer_sdp
    }
}

/// Announces the UDP socket at `addr` as the peer's one host candidate.
pub fn add_host_candidate(pc: &mut RTCPeerConnection, addr: SocketAddr) -> Result<(), rtc::shared::error::Error> {
    let candidate = CandidateHostConfig {
        base_config: CandidateConfig {
            network: "udp".to_owned(),
            address: addr.ip().to_string(),
            port: addr.port(),
            component: 1,
            ..Default::default()
        },
        ..Default::default()
    }
    .new_candidate_host()?;
    pc.add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)
}

/// Sends everything the peer wants on the wire. Errors are per-datagram and
/// transient on UDP (e.g. ICMP unreachable); they are counted by the caller.
pub fn flush_writes(pc: &mut RTCPeerConnection, socket: &UdpSocket) -> usize {
    let mut failed = 0;
    while let Some(out) = pc.poll_write() {
        if socket.send_to(&out.message, out.transport.peer_addr).is_err() {
            failed += 1;
        }
    }
    failed
}

/// Feeds one received datagram to the peer.
pub fn feed_datagram(
    pc: &mut RTCPeerConnection,
    local_addr: SocketAddr,
    peer_addr: SocketAddr,
    data: &[u8],
    now: Instant,
) -> Result<(), rtc::shared::error::Error> {
    pc.handle_read(TaggedBytesMut {
        now,
        transport: TransportContext { local_addr, peer_addr, ecn: None, transport_protocol: TransportProtocol::UDP },
        message: BytesMut::from(data),
    })
}
