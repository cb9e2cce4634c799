//! The Telegram side of the handshake, as pure data: the join JSON we send in
//! `phone.joinGroupCall(params)`, the transport JSON Telegram answers with in
//! `updateGroupCallConnection.params`, and the SDP answer our WebRTC peer needs.
//!
//! Everything here is a pure function so the mapping is tested without a network
//! (see `../shared/reference/telegram-group-calls.md` for where the shapes come from).

use std::fmt::Write as _;
use std::io::Cursor;
use std::net::IpAddr;

use rtc::sdp::description::session::SessionDescription;
use serde::{Deserialize, Deserializer, Serialize};

/// URI of the RFC 6464 audio-level header extension; Telegram's speaking indicator reads it.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Opus payload type every Telegram client uses.
pub const OPUS_PAYLOAD_TYPE: u8 = 111;

/// Why a join could not be turned into a working transport.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error(
        "the group call answered in broadcast mode ({0}): it has no WebRTC transport to stream into; \
             only voice chats (not live streams/RTMP broadcasts) can be joined"
    )]
    Broadcast(&'static str),
    #[error(
        "the group call answer carried no WebRTC transport (`\"transport\": null`); \
             the call may have ended or the join was refused — try joining again"
    )]
    NoTransport,
    #[error("malformed group call answer: {0}")]
    Malformed(String),
    #[error("our own WebRTC offer is missing {0}; this is a bug in wasmcalls")]
    BadOffer(&'static str),
}

/// DTLS role of one side, as written in `fingerprints[].setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setup {
    /// DTLS client.
    Active,
    /// DTLS server.
    Passive,
    /// Either (only valid in an offer).
    Actpass,
}

impl Setup {
    /// The role the other side must take.
    pub fn complement(self) -> Setup {
        match self {
            Setup::Active => Setup::Passive,
            Setup::Passive | Setup::Actpass => Setup::Active,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Setup::Active => "active",
            Setup::Passive => "passive",
            Setup::Actpass => "actpass",
        }
    }
}

/// One DTLS certificate fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Hash function, e.g. `sha-256`.
    pub hash: String,
    /// The DTLS role of the side that owns this certificate.
    pub setup: Setup,
    /// Colon-separated upper-case hex.
    pub fingerprint: String,
}

/// `params.data` of `phone.joinGroupCall`: what Telegram needs to know about us.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinParams {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprints: Vec<Fingerprint>,
    /// Our audio SSRC as Telegram stores it: a signed 32-bit integer.
    pub ssrc: i32,
    /// Only video uses SSRC groups; always empty for audio.
    #[serde(rename = "ssrc-groups", default)]
    pub ssrc_groups: Vec<serde_json::Value>,
}

impl JoinParams {
    /// Builds the join JSON from our local SDP offer.
    ///
    /// `setup` is the DTLS role we will take; Telegram must answer with its complement.
    pub fn from_offer(offer_sdp: &str, ssrc: u32, setup: Setup) -> Result<Self, JoinError> {
        if ssrc == 0 {
            return Err(JoinError::BadOffer("a non-zero SSRC"));
        }
        let sd = parse_sdp(offer_sdp).map_err(|_| JoinError::BadOffer("valid SDP"))?;
        let ufrag = find_attr(&sd, "ice-ufrag").ok_or(JoinError::BadOffer("a=ice-ufrag"))?;
        let pwd = find_attr(&sd, "ice-pwd").ok_or(JoinError::BadOffer("a=ice-pwd"))?;
        let fp = find_attr(&sd, "fingerprint").ok_or(JoinError::BadOffer("a=fingerprint"))?;
        let (hash, fingerprint) = fp.split_once(' ').ok_or(JoinError::BadOffer("a well-formed a=fingerprint"))?;
        Ok(JoinParams {
            ufrag,
            pwd,
            fingerprints: vec![Fingerprint {
                hash: hash.to_owned(),
                setup,
                fingerprint: fingerprint.trim().to_owned(),
            }],
            ssrc: ssrc as i32,
            ssrc_groups: Vec::new(),
        })
    }

    /// The SSRC as the unsigned value RTP carries.
    pub fn ssrc_u32(&self) -> u32 {
        self.ssrc as u32
    }

    /// Serializes to the exact JSON string that goes into `DataJSON.data`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("JoinParams always serializes")
    }

    /// Parses a join JSON (what the loopback or an SFU receives).
    pub fn parse(json: &str) -> Result<Self, JoinError> {
        let p: JoinParams =
            serde_json::from_str(json).map_err(|e| JoinError::Malformed(format!("join params: {e}")))?;
        if p.ssrc == 0 {
            return Err(JoinError::Malformed("join params: ssrc must be non-zero".into()));
        }
        if p.fingerprints.is_empty() {
            return Err(JoinError::Malformed("join params: no DTLS fingerprint".into()));
        }
        sdp_safe("join params", &p.ufrag, &p.pwd, &p.fingerprints)?;
        Ok(p)
    }
}

/// An ICE candidate as Telegram writes it: every field a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    #[serde(deserialize_with = "string_or_number", default = "zero")]
    pub generation: String,
    #[serde(deserialize_with = "string_or_number")]
    pub component: String,
    pub protocol: String,
    #[serde(deserialize_with = "string_or_number")]
    pub port: String,
    pub ip: String,
    #[serde(deserialize_with = "string_or_number")]
    pub foundation: String,
    #[serde(deserialize_with = "string_or_number", default)]
    pub id: String,
    #[serde(deserialize_with = "string_or_number")]
    pub priority: String,
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(deserialize_with = "string_or_number", default = "one")]
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tcptype: Option<String>,
    #[serde(rename = "rel-addr", skip_serializing_if = "Option::is_none", default)]
    pub rel_addr: Option<String>,
    #[serde(
        rename = "rel-port",
        skip_serializing_if = "Option::is_none",
        default,
        deserialize_with = "opt_string_or_number"
    )]
    pub rel_port: Option<String>,
}

fn zero() -> String {
    "0".into()
}
fn one() -> String {
    "1".into()
}

/// Telegram writes numbers as strings; other SFUs may not. Accept both.
fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum S {
        S(String),
        N(serde_json::Number),
    }
    Ok(match S::deserialize(d)? {
        S::S(s) => s,
        S::N(n) => n.to_string(),
    })
}

fn opt_string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    string_or_number(d).map(Some)
}

/// `transport` of Telegram's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transport {
    pub ufrag: String,
    pub pwd: String,
    pub fingerprints: Vec<Fingerprint>,
    #[serde(default)]
    pub candidates: Vec<Candidate>,
}

/// One `audio.payload-types[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadType {
    pub id: u8,
    pub name: String,
    pub clockrate: u32,
    #[serde(default)]
    pub channels: u8,
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "rtcp-fbs", default)]
    pub rtcp_fbs: Vec<RtcpFb>,
}

/// One RTCP feedback mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcpFb {
    #[serde(rename = "type")]
    pub typ: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<String>,
}

/// One `audio.rtp-hdrexts[]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderExt {
    pub id: u8,
    pub uri: String,
}

/// `audio` or `video` of Telegram's answer: payload types and header extensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MediaParams {
    #[serde(rename = "payload-types", default)]
    pub payload_types: Vec<PayloadType>,
    #[serde(rename = "rtp-hdrexts", default)]
    pub rtp_hdrexts: Vec<HeaderExt>,
}

/// `updateGroupCallConnection.params.data`: how to reach Telegram's media server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportAnswer {
    pub transport: Transport,
    #[serde(default)]
    pub audio: MediaParams,
    /// Telegram always sends one; we send no video and ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<MediaParams>,
}

impl TransportAnswer {
    /// Parses and validates Telegram's answer, with an error that says what is wrong.
    pub fn parse(json: &str) -> Result<Self, JoinError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| JoinError::Malformed(format!("not JSON: {e}")))?;
        let obj = value.as_object().ok_or_else(|| JoinError::Malformed("expected a JSON object".into()))?;
        match obj.get("transport") {
            None | Some(serde_json::Value::Null) => {
                if obj.contains_key("rtmp") {
                    return Err(JoinError::Broadcast("rtmp"));
                }
                if obj.contains_key("stream") {
                    return Err(JoinError::Broadcast("stream"));
                }
                return Err(JoinError::NoTransport);
            }
            Some(_) => {}
        }
        let answer: TransportAnswer =
            serde_json::from_value(value).map_err(|e| JoinError::Malformed(format!("transport: {e}")))?;
        answer.validate()?;
        Ok(answer)
    }

    fn validate(&self) -> Result<(), JoinError> {
        let t = &self.transport;
        if t.ufrag.is_empty() || t.pwd.is_empty() {
            return Err(JoinError::Malformed("transport: empty ICE ufrag or pwd".into()));
        }
        if t.fingerprints.is_empty() {
            return Err(JoinError::Malformed("transport: no DTLS fingerprint".into()));
        }
        sdp_safe("transport", &t.ufrag, &t.pwd, &t.fingerprints)?;
        for (i, c) in t.candidates.iter().enumerate() {
            let bad = |field: &str, v: &str| {
                JoinError::Malformed(format!("transport.candidates[{i}].{field} = {v:?} is not valid"))
            };
            c.ip.parse::<IpAddr>().map_err(|_| bad("ip", &c.ip))?;
            c.port.parse::<u16>().map_err(|_| bad("port", &c.port))?;
            c.priority.parse::<u32>().map_err(|_| bad("priority", &c.priority))?;
            c.component.parse::<u16>().map_err(|_| bad("component", &c.component))?;
            c.generation.parse::<u32>().map_err(|_| bad("generation", &c.generation))?;
            check(is_ice_chars(&c.foundation) && c.foundation.len() <= 32, || bad("foundation", &c.foundation))?;
            check(is_token(&c.protocol), || bad("protocol", &c.protocol))?;
            check(is_token(&c.typ), || bad("type", &c.typ))?;
            if let Some(ra) = &c.rel_addr {
                ra.parse::<IpAddr>().map_err(|_| bad("rel-addr", ra))?;
            }
            if let Some(rp) = &c.rel_port {
                rp.parse::<u16>().map_err(|_| bad("rel-port", rp))?;
            }
        }
        for p in self.audio.payload_types.iter().filter(|p| p.name.eq_ignore_ascii_case("opus")) {
            for (k, v) in &p.parameters {
                let ok = is_token(k)
                    && match v {
                        serde_json::Value::String(s) => is_token(s),
                        serde_json::Value::Number(_) | serde_json::Value::Bool(_) => true,
                        _ => false,
                    };
                check(ok, || JoinError::Malformed(format!("audio: Opus parameter {k:?} = {v} is not valid")))?;
            }
        }
        if !t.candidates.iter().any(|c| c.protocol.eq_ignore_ascii_case("udp")) {
            return Err(JoinError::Malformed("transport: no UDP candidate to connect to".into()));
        }
        Ok(())
    }

    /// Serializes to the JSON Telegram would send.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("TransportAnswer always serializes")
    }

    /// Builds the remote SDP answer for our peer from our own offer and this transport.
    ///
    /// `our_setup` is the role we announced in the join JSON; the answer takes the one
    /// Telegram states, which must be its complement.
    pub fn to_answer_sdp(&self, offer_sdp: &str, our_setup: Setup) -> Result<String, JoinError> {
        let offer = parse_sdp(offer_sdp).map_err(|_| JoinError::BadOffer("valid SDP"))?;
        let media = offer
            .media_descriptions
            .iter()
            .find(|m| m.media_name.media == "audio")
            .ok_or(JoinError::BadOffer("an audio m-line"))?;
        let mid = media.attribute("mid").flatten().ok_or(JoinError::BadOffer("a=mid"))?.to_owned();
        let offered_ext: Vec<(String, String)> = media
            .attributes
            .iter()
            .filter(|a| a.key == "extmap")
            .filter_map(|a| a.value.as_deref())
            .filter_map(|v| v.split_once(' ').map(|(id, uri)| (id.to_owned(), uri.to_owned())))
            .collect();
        let offered_twcc = media
            .attributes
            .iter()
            .any(|a| a.key == "rtcp-fb" && a.value.as_deref().is_some_and(|v| v.ends_with("transport-cc")));

        let fp = &self.transport.fingerprints[0];
        let their_setup = match fp.setup {
            Setup::Actpass => our_setup.complement(),
            s => s,
        };
        if their_setup != our_setup.complement() {
            return Err(JoinError::Malformed(format!(
                "transport.fingerprints[0].setup is {:?} but we asked to be {:?}; \
                 both sides cannot take the same DTLS role",
                their_setup.as_str(),
                our_setup.as_str()
            )));
        }

        let opus = self.audio.payload_types.iter().find(|p| p.name.eq_ignore_ascii_case("opus"));
        let pt = opus.map_or(OPUS_PAYLOAD_TYPE, |p| p.id);
        let fmtp = opus
            .filter(|p| !p.parameters.is_empty())
            .map(|p| {
                p.parameters
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k}={s}"),
                        other => format!("{k}={other}"),
                    })
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_else(|| "minptime=10;useinbandfec=1".to_owned());
        let twcc = offered_twcc && opus.is_some_and(|p| p.rtcp_fbs.iter().any(|f| f.typ == "transport-cc"));

        let mut s = String::with_capacity(1024);
        let session_id = u32::from_be_bytes(mid_hash(&self.transport.ufrag));
        // `write!` to a String cannot fail.
        let _ = write!(
            s,
            "v=0\r\no=- {session_id} 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
             a=group:BUNDLE {mid}\r\na=ice-lite\r\n\
             m=audio 1 UDP/TLS/RTP/SAVPF {pt}\r\nc=IN IP4 0.0.0.0\r\n\
             a=mid:{mid}\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\n\
             a=fingerprint:{} {}\r\na=setup:{}\r\n",
            self.transport.ufrag,
            self.transport.pwd,
            fp.hash,
            fp.fingerprint,
            their_setup.as_str()
        );
        for c in &self.transport.candidates {
            if !c.protocol.eq_ignore_ascii_case("udp") {
                continue; // the media plane only speaks UDP
            }
            let _ = write!(
                s,
                "a=candidate:{} {} {} {} {} {} typ {}",
                c.foundation, c.component, c.protocol, c.priority, c.ip, c.port, c.typ
            );
            if let (Some(ra), Some(rp)) = (&c.rel_addr, &c.rel_port) {
                let _ = write!(s, " raddr {ra} rport {rp}");
            }
            let _ = write!(s, " generation {}\r\n", c.generation);
        }
        let _ = write!(s, "a=end-of-candidates\r\na=rtpmap:{pt} opus/48000/2\r\na=fmtp:{pt} {fmtp}\r\na=rtcp-mux\r\n");
        if twcc {
            let _ = write!(s, "a=rtcp-fb:{pt} transport-cc\r\n");
        }
        // Only extensions we offered may appear in the answer; Telegram's id wins.
        for ext in &self.audio.rtp_hdrexts {
            if offered_ext.iter().any(|(_, uri)| *uri == ext.uri) {
                let _ = write!(s, "a=extmap:{} {}\r\n", ext.id, ext.uri);
            }
        }
        // Telegram's server takes our audio and forwards everyone else's to us.
        s.push_str("a=sendrecv\r\n");
        Ok(s)
    }
}

/// Everything from the other side that is written into an SDP line must be what its
/// grammar allows there — above all no line breaks or spaces, which would let a
/// malformed (or hostile) answer add lines of its own to our session.
fn sdp_safe(what: &str, ufrag: &str, pwd: &str, fingerprints: &[Fingerprint]) -> Result<(), JoinError> {
    let bad = |field: &str, v: &str| JoinError::Malformed(format!("{what}: {field} = {v:?} is not valid"));
    check(is_ice_chars(ufrag), || bad("ufrag", ufrag))?;
    check(is_ice_chars(pwd), || bad("pwd", pwd))?;
    for (i, f) in fingerprints.iter().enumerate() {
        check(is_token(&f.hash), || bad(&format!("fingerprints[{i}].hash"), &f.hash))?;
        let hex = f.fingerprint.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        check(hex && !f.fingerprint.is_empty() && f.fingerprint.len() <= 256, || {
            bad(&format!("fingerprints[{i}].fingerprint"), &f.fingerprint)
        })?;
    }
    Ok(())
}

fn check(ok: bool, err: impl FnOnce() -> JoinError) -> Result<(), JoinError> {
    if ok { Ok(()) } else { Err(err()) }
}

/// RFC 8839 `ice-char`s (ALPHA, DIGIT, `+`, `/`): ufrag, pwd and foundation.
fn is_ice_chars(v: &str) -> bool {
    !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// An RFC 4566 `token`: hash names, transport and candidate types, fmtp keys and values.
fn is_token(v: &str) -> bool {
    !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`{|}~".contains(&b))
}

fn mid_hash(s: &str) -> [u8; 4] {
    // A stable, non-cryptographic session id derived from the remote ufrag.
    let mut h: u32 = 2166136261;
    for b in s.bytes() {
        h = (h ^ b as u32).wrapping_mul(16777619);
    }
    (h & 0x7fff_ffff).to_be_bytes()
}

pub(crate) fn parse_sdp(sdp: &str) -> Result<SessionDescription, rtc::shared::error::Error> {
    SessionDescription::unmarshal(&mut Cursor::new(sdp.as_bytes()))
}

/// Finds an attribute at media level first, then at session level.
pub(crate) fn find_attr(sd: &SessionDescription, key: &str) -> Option<String> {
    sd.media_descriptions
        .iter()
        .find_map(|m| m.attribute(key).flatten().map(str::to_owned))
        .or_else(|| sd.attribute(key).cloned())
}

#[cfg(test)]
mod tests;
