//! The HTTP surface, with real requests against a running host on the loopback.

use serde_json::{Value, json};
use wasmcalls::calls::HostEvent;

use crate::support::*;

const CHAT: i64 = -1001185324811;

/// A host on the loopback with CHAT, `host` lines in `[host]`, and a testbot `t`.
fn config(host: &[&str]) -> Setup {
    host.iter().fold(Setup::new().chat(CHAT), |s, l| s.host(l))
}

/// A testbot with a CPU budget above its longest spin, so the API's deadline fires first.
fn patient(name: &str) -> Bot {
    Bot::testbot(name).all().limits("cpu_ms_per_event = 5000")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_round_trip_and_per_plugin_routes() {
    let juke = Bot::jukebox().settings(&format!("chat = {CHAT}, autostart = false, playlist = []")).all();
    let setup =
        config(&[]).plugin(juke).plugin(Bot::testbot("t").all()).plugin(Bot::testbot("quiet").line("api = false"));
    let host = Host::start(&setup).await;
    // PyTgCalls: POST http://127.0.0.1:<port>/api with a JSON body, a JSON dict back.
    let r = post(&host, "/api", r#"{"action":"status"}"#, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["calls"], json!([]), "the first plugin (jukebox) answered: {}", r.body);
    let r = post(&host, "/api/t", r#"{"cmd":"echo","x":[1,2]}"#, None).await;
    assert_eq!((r.status, r.body["x"].clone()), (200, json!([1, 2])));
    // The plugin's own status code comes through.
    let r = post(&host, "/api/t", r#"{"cmd":"reply","status":418,"body":"{\"teapot\":true}"}"#, None).await;
    assert_eq!((r.status, r.body), (418, json!({ "teapot": true })));
    for path in ["/api/nobody", "/api/quiet"] {
        let r = post(&host, path, "{}", None).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body["error"].as_str().unwrap().contains("answers API requests"), "{}", r.body);
    }
    let (code, body) = get(&host, "/healthz", None).await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["plugins"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_when_configured() {
    let host = Host::start(&config(&["api_token = \"s3cret\""]).plugin(Bot::testbot("t").all())).await;
    for token in [None, Some("wrong"), Some("s3cre")] {
        let r = post(&host, "/api", r#"{"cmd":"echo"}"#, token).await;
        assert_eq!(r.status, 401, "{token:?}");
        assert!(r.body["error"].as_str().unwrap().contains("bearer token"));
    }
    assert_eq!(post(&host, "/api", r#"{"cmd":"echo"}"#, Some("s3cret")).await.status, 200);
    assert_eq!(get(&host, "/metrics", None).await.0, 401);
    assert_eq!(get(&host, "/status", Some("nope")).await.0, 401);
    assert_eq!(get(&host, "/metrics", Some("s3cret")).await.0, 200);
    assert_eq!(get(&host, "/healthz", None).await.0, 200, "health needs no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_has_its_status_and_a_json_error() {
    let host = Host::start(&config(&["api_max_body = 1024", "api_timeout_ms = 300"]).plugin(patient("t"))).await;
    let cases: [(&str, String, u16, &str); 6] = [
        ("malformed JSON", "{not json".into(), 400, "not JSON"),
        ("oversized body", format!("{{\"pad\":\"{}\"}}", "x".repeat(2000)), 413, "larger than 1024"),
        ("a trap", r#"{"cmd":"trap"}"#.into(), 502, "trapped"),
        ("a non-JSON reply", r#"{"cmd":"reply","body":"plain text"}"#.into(), 502, "not JSON"),
        ("a multi-megabyte reply", r#"{"cmd":"big","bytes":2000000}"#.into(), 502, "capped"),
        // Last: until the sandbox cancels timed-out events, the plugin stays busy
        // until its handler returns, and later requests queue behind it.
        ("a slow plugin", r#"{"cmd":"spin","ms":1500}"#.into(), 504, "did not answer within 300 ms"),
    ];
    for (what, body, status, needle) in cases {
        let r = post(&host, "/api/t", &body, None).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        let msg = r.body["error"].as_str().unwrap_or_else(|| panic!("{what}: no error field in {}", r.body));
        assert!(msg.contains(needle), "{what}: {msg:?} lacks {needle:?}");
    }
    // Nothing stuck: the host answers at once, and the plugin once its handler is done.
    assert_eq!(get(&host, "/healthz", None).await.0, 200);
    assert_eq!(host.api("t", json!({ "cmd": "echo", "ok": 1 })).await["ok"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_a_plugins_concurrency_get_429() {
    let host = Host::start(&config(&["api_concurrency = 1"]).plugin(patient("t"))).await;
    let body = r#"{"cmd":"spin","ms":300}"#;
    let replies = futures::future::join_all((0..5).map(|_| post(&host, "/api/t", body, None))).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy = replies.iter().filter(|r| r.status == 429).count();
    assert!(ok >= 1 && busy >= 1 && ok + busy == 5, "ok {ok}, busy {busy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move_when_audio_plays() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "a.raw", &tones(&[(440.0, 0.3)], 0.5, RATE, 2));
    let host = Host::start_in(dir, &config(&[]).plugin(Bot::testbot("t").all())).await;
    let scrape = || async {
        let (code, text) = get(&host, "/metrics", None).await;
        assert_eq!(code, 200);
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("metrics do not parse: {e}\n{text}"))
    };
    let value = |s: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>| -> f64 {
        s.samples
            .iter()
            .find(|x| x.metric == name && label.is_none_or(|(k, v)| x.labels.get(k) == Some(v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no sample {name} {label:?}"))
    };
    let before = scrape().await;
    assert_eq!(value(&before, "wasmcalls_frames_sent_total", None), 0.0);

    let mut events = host.app.events();
    let r = post(&host, "/api/t", &json!({ "cmd": "join", "chat": CHAT, "file": "a.raw" }).to_string(), None).await;
    assert_eq!(r.body, json!({ "ok": null }));
    host.event(&mut events, |e| *e == HostEvent::StreamEnd(CHAT)).await;

    let after = scrape().await;
    assert_eq!(value(&after, "wasmcalls_frames_sent_total", None), 25.0, "0.5 s is 25 frames");
    // Lateness depends on the machine's load; that it is exported is what is tested here.
    let late = value(&after, "wasmcalls_late_frames_total", None);
    // Each late frame is blamed on one cause: the causes add up to the total.
    let causes = ["not_running", "commands", "preparing", "datagrams", "sends"];
    let blamed: f64 =
        causes.iter().map(|&c| value(&after, "wasmcalls_late_frames_by_cause_total", Some(("cause", c)))).sum();
    assert_eq!(blamed, late);
    assert_eq!(value(&after, "wasmcalls_calls", Some(("state", "idle"))), 1.0);
    // Which pacer thread holds the call, and how busy each is (a load, not a timing).
    let gauges = |name: &str| -> Vec<f64> {
        let of = |x: &prometheus_parse::Sample| match x.value {
            prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        };
        after.samples.iter().filter(|x| x.metric == name).map(of).collect()
    };
    let held: f64 = gauges("wasmcalls_shard_calls").iter().sum();
    assert_eq!(held, 1.0, "one call, on one of the pacer threads");
    assert_eq!(value(&after, "wasmcalls_calls_moved_total", None), 0.0, "where it joined: its stream had room");
    assert!(gauges("wasmcalls_shard_busy_ratio").iter().all(|b| (0.0..=1.5).contains(b)));
    assert!(value(&after, "wasmcalls_plugin_events_total", Some(("plugin", "t"))) >= 2.0);
    assert_eq!(value(&after, "wasmcalls_plugin_traps_total", Some(("plugin", "t"))), 0.0);
    assert!(value(&after, "wasmcalls_api_requests_total", Some(("status", "200"))) >= 1.0);
    let deviation = after
        .samples
        .iter()
        .find(|s| s.metric == "wasmcalls_pacing_deviation_seconds")
        .expect("the pacing histogram is there");
    match &deviation.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 25.0, "every frame observed: {buckets:?}")
        }
        other => panic!("pacing deviation is not a histogram: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasmcalls_status_prints_plugins_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 10.0, RATE, 2));
    let host = Host::start_in(dir, &config(&[]).plugin(Bot::testbot("t").all())).await;
    let r = post(&host, "/api/t", &json!({ "cmd": "join", "chat": CHAT, "file": "long.raw" }).to_string(), None).await;
    assert_eq!(r.body, json!({ "ok": null }));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
        .args(["status", "--url", &format!("http://{}", host.app.api)])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("PLUGIN") && stdout.lines().any(|l| l.trim_start_matches(['│', ' ']).starts_with("t ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&CHAT.to_string()) && stdout.contains("playing") && stdout.contains("long.raw"),
        "{stdout}"
    );
    assert!(stdout.contains("/0:10"), "duration shown: {stdout}");
    let account = wasmcalls::telegram::loopback::DEFAULT_USER_ID;
    assert!(stdout.contains(&format!("telegram: loopback, account {account}")), "{stdout}");
    assert!(stdout.contains("pacer threads: "), "each pacer thread's load: {stdout}");
    // The call's weight on its thread, once it has prepared a frame (the join returns
    // once audio flows).
    let (code, body) = get(&host, "/status", None).await;
    assert_eq!(code, 200);
    let status: Value = serde_json::from_str(&body).unwrap();
    assert!(status["calls"][0]["prepare_us"].as_u64().unwrap() > 0, "{status}");
    assert!(status["calls"][0]["pacer_thread"].is_u64(), "and the thread sending it: {status}");
}
