//! The flagship musicbot end to end on the loopback, in each language it is written in
//! — Rust, Python and JavaScript, the same behaviour — people type commands and press
//! buttons; the test reads the chat's transcript and what the call heard.

use std::path::Path;

use wasmcalls::calls::HostEvent;
use wasmcalls::runtime::ApiCall;
use wasmcalls::telegram::loopback::{DEFAULT_BOT_ID, File, Posted, Upload};

use crate::support::*;

const CHAT: i64 = -1_001_185_324_811;
const ALICE: i64 = 424_242;
const BOB: i64 = 515_151;

/// `media/one.mp3` (2 s), `media/two.opus` (12 s) and `song.mp3` (60 s) to upload. The
/// long ones are long so that a slow bot on a loaded machine (CI's two cores, a JavaScript
/// component) still has them playing when it handles the commands sent while they play:
/// the test seeks near the end of `two.opus`, so waiting for its end stays short.
fn media(dir: &Path) {
    let m = dir.join("media");
    std::fs::create_dir_all(&m).unwrap();
    tool("sox", &["-n", "-r", "44100", "-c", "2", "one.wav", "synth", "2", "sine", "523", "vol", "0.5"], &m);
    tool("lame", &["--quiet", "one.wav", "one.mp3"], &m);
    tool(
        "sox",
        &["-n", "-r", "48000", "-c", "2", "-b", "16", "two.wav", "synth", "12", "sine", "660", "vol", "0.5"],
        &m,
    );
    tool("opusenc", &["--quiet", "two.wav", "two.opus"], &m);
    tool("sox", &["-n", "-r", "44100", "-c", "2", "song.wav", "synth", "60", "sine", "440", "vol", "0.5"], dir);
    tool("lame", &["--quiet", "song.wav", "song.mp3"], dir);
}

/// The musicbot's three implementations.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn wasm(self) -> std::path::PathBuf {
        match self {
            Lang::Rust => plugin("musicbot"),
            Lang::Python => python_bot("musicbot-py"),
            Lang::Js => js_bot("musicbot-js"),
        }
    }
}

/// The demo chat (Alice administers it) and the musicbot in `lang`.
fn setup(lang: Lang) -> Setup {
    let wasm = lang.wasm();
    let bot = Bot::at("musicbot", wasm.to_str().unwrap())
        .grants(&format!("chats = [{CHAT}], files = [\"media\"], messages = true"));
    let mut s = Setup::new().chat(CHAT).admin(CHAT, ALICE).plugin(bot);
    if lang != Lang::Rust {
        for line in shared_compile() {
            s = s.host(&line);
        }
    }
    s
}

/// Each scenario once per language.
macro_rules! in_every_language {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rust() {
                super::$scenario(Lang::Rust).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn python() {
                super::$scenario(Lang::Python).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn javascript() {
                super::$scenario(Lang::Js).await
            }
        }
    )*};
}

in_every_language!(
    people_play_queue_and_control_the_music_by_command_and_button,
    stop_leaves_and_bad_requests_are_answered,
    the_queue_survives_a_hot_reload
);

/// Waits until the musicbot has handled everything before this call (its events run
/// in order; a custom API request queues behind them).
async fn settled(host: &Host) {
    let call = ApiCall { path: "/api/musicbot".into(), body: "{}".into() };
    host.app.plugins.custom_api("musicbot", call).await.expect("the musicbot answers");
}

/// The bot's messages in the transcript.
fn from_bot(host: &Host) -> Vec<Posted> {
    host.loopback().transcript(CHAT).into_iter().filter(|p| p.from == DEFAULT_BOT_ID).collect()
}

fn last_from_bot(host: &Host) -> Posted {
    from_bot(host).pop().expect("the bot said something")
}

/// A person says something; returns once the musicbot has acted on it.
async fn say(host: &Host, from: i64, text: &str, reply_to: Option<i32>) {
    let mut events = host.app.events();
    let id = host.loopback().say(CHAT, from, text, reply_to).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == id)).await;
    settled(host).await;
}

/// A person presses a button; returns once the musicbot has acted on it.
async fn press(host: &Host, message: i32, from: i64, data: &str) -> String {
    let mut events = host.app.events();
    let query = host.loopback().press(CHAT, message, from, data).unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Callback(q) if q.id == query)).await;
    settled(host).await;
    query
}

async fn people_play_queue_and_control_the_music_by_command_and_button(lang: Lang) {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let song = std::fs::read(dir.path().join("song.mp3")).unwrap();
    let host = Host::start_in(dir, &setup(lang)).await;
    let mut events = host.app.events();
    let lb = host.loopback();

    // Alice replies `/play` to an audio file she uploads.
    let file = File { name: "song.mp3".into(), mime: "audio/mpeg".into(), kind: Upload::Audio, bytes: song.into() };
    let upload = lb.upload(CHAT, ALICE, file, "").unwrap();
    host.event(&mut events, |e| matches!(e, HostEvent::Message(m) if m.id == upload)).await;
    say(&host, ALICE, "/play", Some(upload)).await;
    let now = last_from_bot(&host);
    assert!(now.text.starts_with("🎵 Now playing: song"), "{now:?}");
    let data: Vec<_> = now.buttons[0].iter().map(|b| b.data.clone().unwrap()).collect();
    assert_eq!(data, ["pause", "skip", "stop"]);
    let heard = lb.participant(CHAT).await;

    // Bob queues a file; `/queue` lists it.
    say(&host, BOB, "/play media/two.opus", None).await;
    assert!(last_from_bot(&host).text.contains("Queued #1: two.opus"), "{:?}", last_from_bot(&host));
    say(&host, BOB, "/queue", None).await;
    assert!(last_from_bot(&host).text.contains("1. two.opus"), "{:?}", last_from_bot(&host));
    // Controls are for admins.
    say(&host, BOB, "/skip", None).await;
    assert_eq!(last_from_bot(&host).text, "Only the chat's admins can do that.");
    let q = press(&host, now.id, BOB, "pause").await;
    let pressed = lb.transcript(CHAT).into_iter().find(|p| p.id == now.id).unwrap().presses.pop().unwrap();
    assert_eq!((pressed.query, pressed.answer.as_deref()), (q, Some("Only the chat's admins can do that.")));

    // Alice pauses with the button: the message says so and its button turns to resume.
    press(&host, now.id, ALICE, "pause").await;
    let edited = lb.transcript(CHAT).into_iter().find(|p| p.id == now.id).unwrap();
    assert!(edited.edited && edited.text.starts_with("⏸ Paused: song"), "{edited:?}");
    assert_eq!(edited.buttons[0][0].data.as_deref(), Some("resume"));
    assert_eq!(edited.presses.last().unwrap().answer.as_deref(), Some("⏸ Paused."));
    press(&host, now.id, ALICE, "resume").await;
    say(&host, ALICE, "/volume 150", None).await;
    assert_eq!(last_from_bot(&host).text, "🔊 Volume 150 %.");
    say(&host, ALICE, "/volume 300", None).await;
    assert!(last_from_bot(&host).text.starts_with("Usage"));

    // Skip: the queued file plays, with a fresh now-playing message.
    press(&host, now.id, ALICE, "skip").await;
    let next = from_bot(&host).into_iter().rev().find(|p| p.text.starts_with("🎵 Now playing")).unwrap();
    assert!(next.text.contains("two.opus") && next.id != now.id, "{next:?}");
    say(&host, ALICE, "/seek 10", None).await;
    assert_eq!(last_from_bot(&host).text, "⏩ Moved to 10 s.");
    // The queue runs out: the bot says so and leaves the call.
    host.event(&mut events, |e| *e == HostEvent::StreamEnd(CHAT)).await;
    settled(&host).await;
    assert!(host.app.manager.joined_chats().is_empty(), "left when the queue ran out");
    let done = lb.transcript(CHAT).into_iter().find(|p| p.id == next.id).unwrap();
    assert!(done.text.contains("The queue is finished") && done.buttons.is_empty(), "{done:?}");
    assert!(heard.stats().timeline_samples > 48_000, "the call heard the music: {:?}", heard.stats());
}

async fn stop_leaves_and_bad_requests_are_answered(lang: Lang) {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let host = Host::start_in(dir, &setup(lang)).await;
    say(&host, ALICE, "/play", None).await;
    assert!(last_from_bot(&host).text.starts_with("Usage"), "{:?}", last_from_bot(&host));
    say(&host, ALICE, "/play media/nope.mp3", None).await;
    assert!(last_from_bot(&host).text.contains("Cannot play that"), "{:?}", last_from_bot(&host));
    say(&host, ALICE, "/play ../secret.mp3", None).await;
    assert!(last_from_bot(&host).text.contains(".."), "{:?}", last_from_bot(&host));
    // The 12 s file, so it still plays when a slow bot handles `/stop`.
    say(&host, ALICE, "/play media/two.opus", None).await;
    assert!(last_from_bot(&host).text.starts_with("🎵 Now playing: two.opus"));
    say(&host, ALICE, "/stop", None).await;
    assert_eq!(last_from_bot(&host).text, "⏹ Stopped.");
    assert!(host.app.manager.joined_chats().is_empty());
    say(&host, ALICE, "/skip", None).await;
    assert_eq!(last_from_bot(&host).text, "Nothing is playing.");
}

async fn the_queue_survives_a_hot_reload(lang: Lang) {
    let dir = tempfile::tempdir().unwrap();
    media(dir.path());
    let host = Host::start_in(dir, &setup(lang)).await;
    say(&host, ALICE, "/play media/two.opus", None).await;
    say(&host, ALICE, "/play media/one.mp3", None).await;
    // Paused, so a slow reload (a busy machine) cannot let the 3 s track end first.
    say(&host, ALICE, "/pause", None).await;
    let report = host.app.plugins.reload("musicbot", &lang.wasm()).await.unwrap();
    assert!(report.restored, "the new version took the queue over");
    say(&host, ALICE, "/queue", None).await;
    let q = last_from_bot(&host).text;
    assert!(q.contains("two.opus") && q.contains("1. one.mp3"), "{q}");
}
