use super::*;
use crate::transport::OutboundPeer;

/// The transport JSON shape from the reference notes (every candidate field a string).
const REFERENCE_ANSWER: &str = r#"{"transport":{"ufrag":"abcd","pwd":"0123456789abcdef0123456789",
  "fingerprints":[{"hash":"sha-256","setup":"passive","fingerprint":"AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99"}],
  "candidates":[{"generation":"0","component":"1","protocol":"udp","port":"32000",
                 "ip":"91.108.9.1","foundation":"1","id":"5c2a","priority":"2130706431",
                 "type":"host","network":"1"}]},
 "audio":{"payload-types":[{"id":111,"name":"opus","clockrate":48000,"channels":2,
                            "parameters":{"minptime":10,"useinbandfec":1},
                            "rtcp-fbs":[{"type":"transport-cc"}]}],
          "rtp-hdrexts":[{"id":1,"uri":"urn:ietf:params:rtp-hdrext:ssrc-audio-level"},
                         {"id":2,"uri":"http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"}]}}"#;

fn offer() -> String {
    OutboundPeer::new("127.0.0.1".parse().unwrap(), Default::default(), std::time::Duration::from_secs(10))
        .unwrap()
        .offer_sdp()
        .to_owned()
}

#[test]
fn join_params_come_from_the_offer() {
    let sdp = offer();
    let p = JoinParams::from_offer(&sdp, 0x1234_5678, Setup::Active).unwrap();
    assert!(sdp.contains(&format!("a=ice-ufrag:{}", p.ufrag)));
    assert!(sdp.contains(&format!("a=ice-pwd:{}", p.pwd)));
    assert_eq!(p.fingerprints.len(), 1);
    assert_eq!(p.fingerprints[0].hash, "sha-256");
    assert_eq!(p.fingerprints[0].setup, Setup::Active);
    assert!(sdp.contains(&p.fingerprints[0].fingerprint));
    assert_eq!(p.ssrc, 0x1234_5678);

    let json: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
    assert_eq!(json["ssrc-groups"], serde_json::json!([]));
    assert_eq!(json["fingerprints"][0]["setup"], "active");
    assert_eq!(JoinParams::parse(&p.to_json()).unwrap(), p);
}

#[test]
fn ssrc_is_sent_as_signed_int32_and_never_zero() {
    let p = JoinParams::from_offer(&offer(), 0xdead_beef, Setup::Active).unwrap();
    assert_eq!(p.ssrc, 0xdead_beef_u32 as i32);
    assert!(p.ssrc < 0);
    assert_eq!(p.ssrc_u32(), 0xdead_beef);
    assert!(JoinParams::from_offer(&offer(), 0, Setup::Active).is_err());
    assert!(JoinParams::parse(r#"{"ufrag":"a","pwd":"b","fingerprints":[{"hash":"sha-256","setup":"active","fingerprint":"AA"}],"ssrc":0}"#).is_err());
}

#[test]
fn random_ssrcs_fit_31_bits_and_are_non_zero() {
    for _ in 0..1000 {
        let s = crate::transport::peer::random_ssrc();
        assert!(s != 0 && s <= 0x7fff_ffff);
    }
}

#[test]
fn reference_answer_becomes_an_ice_lite_sdp_answer() {
    let offer = offer();
    let a = TransportAnswer::parse(REFERENCE_ANSWER).unwrap();
    let sdp = a.to_answer_sdp(&offer, Setup::Active).unwrap();
    let mid = find_attr(&parse_sdp(&offer).unwrap(), "mid").unwrap();
    for line in [
        "a=ice-lite".to_owned(),
        format!("a=group:BUNDLE {mid}"),
        format!("a=mid:{mid}"),
        "a=ice-ufrag:abcd".to_owned(),
        "a=ice-pwd:0123456789abcdef0123456789".to_owned(),
        "a=fingerprint:sha-256 AA:BB:CC".to_owned(),
        "a=setup:passive".to_owned(),
        "a=candidate:1 1 udp 2130706431 91.108.9.1 32000 typ host generation 0".to_owned(),
        "a=end-of-candidates".to_owned(),
        "a=rtpmap:111 opus/48000/2".to_owned(),
        "a=fmtp:111 minptime=10;useinbandfec=1".to_owned(),
        "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned(),
        "a=rtcp-mux".to_owned(),
        "a=sendrecv".to_owned(),
    ] {
        assert!(sdp.contains(&line), "answer lacks {line:?}:\n{sdp}");
    }
    // abs-send-time was not in our offer, so it must not appear in the answer.
    assert!(!sdp.contains("abs-send-time"), "{sdp}");
    // Nor transport-cc feedback, which we do not offer.
    assert!(!sdp.contains("transport-cc"), "{sdp}");
    // And the answer parses as SDP.
    parse_sdp(&sdp).unwrap();
}

#[test]
fn numeric_candidate_fields_are_accepted_too() {
    let json = REFERENCE_ANSWER
        .replace(r#""port":"32000""#, r#""port":32000"#)
        .replace(r#""priority":"2130706431""#, r#""priority":2130706431"#);
    let a = TransportAnswer::parse(&json).unwrap();
    assert_eq!(a.transport.candidates[0].port, "32000");
}

#[test]
fn optional_candidate_fields_reach_the_sdp() {
    let json = REFERENCE_ANSWER
        .replace(r#""network":"1"}"#, r#""network":"1","rel-addr":"10.0.0.1","rel-port":"5000","tcptype":"passive"}"#)
        .replace(r#""type":"host""#, r#""type":"srflx""#);
    let a = TransportAnswer::parse(&json).unwrap();
    let sdp = a.to_answer_sdp(&offer(), Setup::Active).unwrap();
    assert!(sdp.contains("typ srflx raddr 10.0.0.1 rport 5000 generation 0"), "{sdp}");
}

#[test]
fn broadcast_answers_are_named_errors() {
    assert_eq!(TransportAnswer::parse(r#"{"stream":true}"#), Err(JoinError::Broadcast("stream")));
    assert_eq!(TransportAnswer::parse(r#"{"rtmp":{"url":"x"}}"#), Err(JoinError::Broadcast("rtmp")));
    let msg = JoinError::Broadcast("rtmp").to_string();
    assert!(msg.contains("broadcast"), "{msg}");
}

#[test]
fn null_or_missing_transport_is_a_named_error() {
    assert_eq!(TransportAnswer::parse(r#"{"transport":null}"#), Err(JoinError::NoTransport));
    assert_eq!(TransportAnswer::parse(r#"{}"#), Err(JoinError::NoTransport));
}

#[test]
fn malformed_answers_say_what_is_wrong() {
    let cases = [
        ("not json", "not JSON"),
        ("[1,2]", "expected a JSON object"),
        (r#"{"transport":{"ufrag":"a"}}"#, "pwd"),
        (&REFERENCE_ANSWER.replace("91.108.9.1", "not-an-ip"), "candidates[0].ip"),
        (&REFERENCE_ANSWER.replace(r#""port":"32000""#, r#""port":"99999""#), "candidates[0].port"),
        (&REFERENCE_ANSWER.replace(r#""protocol":"udp""#, r#""protocol":"tcp""#), "no UDP candidate"),
        (&REFERENCE_ANSWER.replace(r#""ufrag":"abcd""#, r#""ufrag":"""#), "empty ICE ufrag"),
    ];
    for (json, needle) in cases {
        match TransportAnswer::parse(json) {
            Err(JoinError::Malformed(m)) => assert!(m.contains(needle), "{needle:?} not in {m:?}"),
            other => panic!("{json}: expected Malformed({needle}), got {other:?}"),
        }
    }
}

#[test]
fn both_sides_cannot_take_the_same_dtls_role() {
    let json = REFERENCE_ANSWER.replace(r#""setup":"passive""#, r#""setup":"active""#);
    let a = TransportAnswer::parse(&json).unwrap();
    let err = a.to_answer_sdp(&offer(), Setup::Active).unwrap_err();
    assert!(err.to_string().contains("same DTLS role"), "{err}");
    // The native-client convention (we passive, Telegram active) maps too.
    let sdp = a.to_answer_sdp(&offer(), Setup::Passive).unwrap();
    assert!(sdp.contains("a=setup:active"));
}

#[test]
fn answer_without_audio_section_falls_back_to_telegram_defaults() {
    let v: serde_json::Value = serde_json::from_str(REFERENCE_ANSWER).unwrap();
    let json = serde_json::json!({ "transport": v["transport"] }).to_string();
    let sdp = TransportAnswer::parse(&json).unwrap().to_answer_sdp(&offer(), Setup::Active).unwrap();
    assert!(sdp.contains("a=rtpmap:111 opus/48000/2"));
    assert!(sdp.contains("a=fmtp:111 minptime=10;useinbandfec=1"));
}

#[test]
fn transport_answer_round_trips_through_json() {
    let a = TransportAnswer::parse(REFERENCE_ANSWER).unwrap();
    assert_eq!(TransportAnswer::parse(&a.to_json()).unwrap(), a);
}
