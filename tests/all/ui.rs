//! The dashboard (`/ui`): its API through HTTP, and the page itself in a real
//! headless Chromium (Debian's, driven by `tests/ui/dashboard.mjs` with playwright-core;
//! `bash .ci/setup` installs both).

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::*;

const CHAT: i64 = -1_001_185_324_811;
const TOKEN: &str = "ui-s3cret";
const ADMIN: &str = "ui-adm1n";

/// `media/long.mp3` (60 s) the demo plays, `media/one.mp3` (3 s) to `/play`.
fn media(dir: &Path) {
    let m = dir.join("media");
    std::fs::create_dir_all(&m).unwrap();
    for (name, seconds, hz) in [("long", "60", "440"), ("one", "3", "523")] {
        let wav = format!("{name}.wav");
        tool("sox", &["-n", "-r", "44100", "-c", "2", &wav, "synth", seconds, "sine", hz, "vol", "0.5"], &m);
        tool("lame", &["--quiet", &wav, &format!("{name}.mp3")], &m);
    }
}

/// `GET path` with the token, its body left to be read as it comes.
async fn open(host: &Host, path: &str) -> reqwest::Response {
    let url = format!("http://{}{path}", host.app.api);
    reqwest::Client::new().get(url).bearer_auth(TOKEN).send().await.unwrap()
}

/// The demo: the musicbot autoplaying into the demo chat, `host` a line in `[host]`.
fn demo(host: &str) -> Setup {
    let bot = Bot::at("musicbot", plugin("musicbot").to_str().unwrap())
        .settings(&format!("chat = {CHAT}, autoplay = [\"media/long.mp3\"]"))
        .grants(&format!("chats = [{CHAT}], files = [\"media\"], messages = true"));
    Setup::new().chat(CHAT).admin(CHAT, 424_242).plugin(bot).host(host)
}

/// Returns once the demo's audio reaches the loopback (so its call is joined and playing).
async fn demo_playing(host: &Host) {
    tokio::time::timeout(PATIENCE, async {
        let heard = host.loopback().participant(CHAT).await;
        heard.wait_until(|s| s.packets > 0).await;
    })
    .await
    .expect("the demo plays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_and_steers_the_demo_call_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let speak = dir.path().join("media/one.mp3");
    let host = Host::start_in(dir, &demo(&format!("admin_token = {ADMIN:?}"))).await;
    demo_playing(&host).await;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let artifacts = root.join("target/ui-artifacts");
    let script = root.join("tests/ui/dashboard.mjs");
    assert!(
        root.join("tests/ui/node_modules/playwright-core").exists(),
        "playwright-core is missing: run `bash .ci/setup` (npm ci in tests/ui)"
    );
    let run = tokio::process::Command::new("node")
        .arg(&script)
        .arg(format!("http://{}", host.app.api))
        .arg(&artifacts)
        .env("CHAT", CHAT.to_string())
        .env("PLAY", "/play media/one.mp3")
        .env("REPLY", "one")
        .env("SPEAK", &speak)
        .env("ADMIN", ADMIN)
        .env("JITTER_HOLD_MS", wasmcalls::media::jitter::JITTER_HOLD.as_millis().to_string())
        .current_dir(root)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), run).await.expect("the browser test ends").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the dashboard test failed (screenshots in {}):\n{stdout}\n{stderr}",
        artifacts.display()
    );
    assert!(stdout.contains("step: done"), "{stdout}");
    // The figure, for whoever reads the test's output (`--nocapture`).
    if let Some(line) = stdout.lines().find(|l| l.starts_with("listen delay")) {
        println!("{line}");
    }
    for shot in ["calls.png", "console.png", "phone.png"] {
        assert!(artifacts.join(shot).exists(), "{shot} kept");
    }
    // What the page did, the host did.
    let said: Vec<_> = host.loopback().transcript(CHAT).into_iter().map(|p| p.text).collect();
    assert!(said.iter().any(|t| t == "/play media/one.mp3"), "{said:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_its_controls_answer_only_with_the_token() {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let host = Host::start_in(dir, &demo(&format!("api_token = {TOKEN:?}"))).await;
    demo_playing(&host).await;

    // The page holds nothing secret; what it shows needs the token.
    let page = reqwest::get(format!("http://{}/ui", host.app.api)).await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.starts_with("default-src 'self'"), "only this host: {policy}");
    assert!(page.text().await.unwrap().contains("/ui/app.js"));
    for path in ["/events", "/loopback/chats", &format!("/loopback/chats/{CHAT}/messages")] {
        assert_eq!(get(&host, path, None).await.0, 401, "{path} without the token");
    }
    let pause = format!("/calls/{CHAT}/pause");
    assert_eq!(post(&host, &pause, "", None).await.status, 401);
    assert_eq!(post(&host, &pause, "", Some("wrong")).await.status, 401);

    // Each plugin's version (its component's hash) and memory.
    let (_, status) = get(&host, "/status", Some(TOKEN)).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["admin_api"], false, "no admin token, no admin API: the page says how to turn it on");
    let musicbot = &status["plugins"][0];
    let version = musicbot["version"].as_str().unwrap();
    assert!(version.len() == 12 && version.chars().all(|c| c.is_ascii_hexdigit()), "{musicbot}");
    assert!(musicbot["memory_kib"].as_u64().unwrap() > 0, "{musicbot}");

    // With it: the controls act on the call, and say why when they cannot.
    assert_eq!(post(&host, &pause, "", Some(TOKEN)).await.body, json!({ "ok": true }));
    let state = || async { host.app.manager.calls().await[0].state };
    assert_eq!(state().await, wasmcalls::calls::CallState::Paused);
    let volume = format!("/calls/{CHAT}/volume");
    assert_eq!(post(&host, &volume, r#"{"volume": 50}"#, Some(TOKEN)).await.body, json!({ "ok": true }));
    assert_eq!(host.app.manager.calls().await[0].volume, 50);
    let r = post(&host, &volume, r#"{"volume": 500}"#, Some(TOKEN)).await;
    assert!(r.status == 409 && r.body["error"].as_str().unwrap().contains("above 200"), "{}", r.body);
    assert_eq!(post(&host, &volume, "loud", Some(TOKEN)).await.status, 400);
    let r = post(&host, &format!("/calls/{CHAT}/dance"), "", Some(TOKEN)).await;
    assert!(r.status == 404 && r.body["error"].as_str().unwrap().contains("pause, resume, skip"), "{}", r.body);
    assert_eq!(post(&host, "/calls/-5/pause", "", Some(TOKEN)).await.status, 404, "no call there");
    assert_eq!(post(&host, &format!("/calls/{CHAT}/resume"), "", Some(TOKEN)).await.status, 200);

    // Listen: what the call is heard saying, live, as raw PCM.
    let mut audio = open(&host, &format!("/loopback/chats/{CHAT}/audio")).await;
    assert_eq!(audio.headers()["content-type"], "audio/L16; rate=48000; channels=2");
    let mut pcm = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        while pcm.len() < 48_000 * 4 / 5 {
            pcm.extend(audio.chunk().await.unwrap().expect("the audio keeps coming"));
        }
    })
    .await
    .expect("200 ms of audio");
    let peak = pcm.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]).unsigned_abs()).max().unwrap();
    assert!(peak > 4000, "a tone at half volume, not silence: peak {peak}");
    drop(audio);

    // Skip ends what plays as if it had ended: the plugin hears it, and /events says so.
    let mut events = open(&host, "/events").await;
    assert_eq!(events.status(), 200);
    assert_eq!(post(&host, &format!("/calls/{CHAT}/skip"), "", Some(TOKEN)).await.status, 200);
    let mut seen = String::new();
    tokio::time::timeout(PATIENCE, async {
        while !seen.contains("event: stream-end") {
            let chunk = events.chunk().await.unwrap().expect("the stream stays open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no stream-end on /events: {seen}"));
    assert!(seen.contains(&format!("data: {{\"chat\":{CHAT}}}")), "{seen}");

    // The loopback console is the loopback's control endpoint, on this port.
    let said = reqwest::Client::new()
        .post(format!("http://{}/loopback/chats/{CHAT}/messages", host.app.api))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(json!({ "text": "hi" }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(said.status(), 200);
    let (code, transcript) = get(&host, &format!("/loopback/chats/{CHAT}/messages"), Some(TOKEN)).await;
    assert!(code == 200 && transcript.contains("\"hi\""), "{transcript}");
}
