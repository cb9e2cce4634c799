//! The `wasmcalls` binary, run as the README runs it: from a project folder, with
//! relative paths.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

/// `wasmcalls` run in `project`.
fn wasmcalls(project: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmcalls"));
    c.current_dir(project).env("NO_COLOR", "1").env_remove("WASMCALLS_LOG");
    c
}

/// A project laid out like this repository: the config in `examples/`, plugins in
/// `plugins/`, media beside the config.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("examples/media")).unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    dir
}

#[test]
fn play_streams_a_file_and_writes_what_the_loopback_heard() {
    let dir = project();
    write_raw(dir.path(), "in.raw", &tones(&[(523.0, 0.3)], 1.0, RATE, 2));
    let out = wasmcalls(dir.path()).args(["play", "in.raw", "--record", "heard.wav"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sent 50 packets (1.0 s)"), "{stdout}");
    assert!(stdout.contains("loopback heard 50 packets, 0 lost"), "{stdout}");
    assert!(stdout.contains("p99"), "{stdout}");

    let reader = hound::WavReader::open(dir.path().join("heard.wav")).unwrap();
    assert_eq!(reader.spec().sample_rate, 48000);
    assert_eq!(reader.spec().channels, 2);
    assert_eq!(reader.duration(), 48000, "one second heard");
    let samples: Vec<f64> = reader.into_samples::<i16>().step_by(2).map(|s| s.unwrap() as f64).collect();
    let f = tone_frequency(&samples[4800..], RATE);
    assert!((f - 523.0).abs() < 10.0, "heard {f} Hz");
}

#[test]
fn play_explains_bad_input_and_exits_non_zero() {
    let dir = project();
    std::fs::write(dir.path().join("odd.raw"), [0u8; 3]).unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["play", "missing.raw"], "no such file"),
        (&["play", "odd.raw"], "not a whole number"),
        (&["play", "odd.raw", "--rate", "7"], "7 Hz is not a sample rate"),
    ];
    for (args, needle) in cases {
        let out = wasmcalls(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
    }
}

/// The jukebox demo as `examples/wasmcalls.toml` sets it up, in `dir`.
fn jukebox_demo(dir: &Path) {
    std::fs::copy(plugin("jukebox"), dir.join("plugins/jukebox.wasm")).unwrap();
    write_raw(&dir.join("examples/media"), "a.raw", &tones(&[(440.0, 0.3)], 0.4, RATE, 2));
    write_raw(&dir.join("examples/media"), "b.raw", &tones(&[(660.0, 0.3)], 0.4, RATE, 2));
    std::fs::write(
        dir.join("examples/wasmcalls.toml"),
        "[host]\napi_port = 0\ncache_dir = \"../.wasmcalls/cache\"\n[loopback]\nrecord_dir = \"../heard\"\n\
         [[loopback.chats]]\nid = -100\n\
         [[plugins]]\nname = \"jukebox\"\nwasm = \"../plugins/jukebox.wasm\"\n\
         settings = { chat = -100, bitrate = 48000, playlist = [\"media/a.raw\", \"media/b.raw\"] }\n\
         grants = { chats = [-100], files = [\"media\"] }\n",
    )
    .unwrap();
}

/// The README's demo as this repository has it — `examples/wasmcalls.toml` and its
/// media, the musicbot built — in `dir`, on free ports and without the build step.
fn musicbot_demo(dir: &Path) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let wasm = dir.join("plugins/target/wasm32-wasip2/release/musicbot.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    std::fs::copy(plugin("musicbot"), wasm).unwrap();
    for f in ["chimes.opus", "bells.mp3"] {
        std::fs::copy(repo.join("media").join(f), dir.join("examples/media").join(f)).unwrap();
    }
    let config = std::fs::read_to_string(repo.join("wasmcalls.toml")).unwrap();
    let config = config
        .replace("api_port = 24859", "api_port = 0")
        .replace("control = \"127.0.0.1:24860\"", "control = \"127.0.0.1:0\"")
        .replace("build = \"../plugins\"\n", "");
    assert!(config.contains("api_port = 0") && config.contains(":0\""), "the example config changed shape");
    std::fs::write(dir.join("examples/wasmcalls.toml"), config).unwrap();
}

/// The pacing bench plays its first call alone for a second before the others join: a
/// source shorter than that ends before the bench waits for the ends, and it used to
/// wait forever for the one it had already read past.
#[test]
fn the_pacing_bench_finishes_when_its_source_ends_before_every_call_plays() {
    let dir = project();
    let args =
        ["bench", "pacing", "--calls", "2", "--seconds", "1", "--source", "shared", "--ntgcalls", "0", "--ffmpeg", "0"];
    let mut child = wasmcalls(dir.path()).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
        tx.send(out).unwrap();
    });
    // A generous bound: a debug build joins, measures libopus and plays in seconds.
    let Ok(out) = rx.recv_timeout(Duration::from_secs(300)) else {
        child.kill().unwrap();
        panic!("the bench did not finish");
    };
    let status = child.wait().unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("streamed") && out.contains("0 packets lost"), "{out}");
}

#[test]
fn run_plays_the_musicbot_demo_and_exits_when_idle() {
    let dir = project();
    musicbot_demo(dir.path());
    let out = wasmcalls(dir.path()).args(["run", "examples/wasmcalls.toml", "--exit-when-idle"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plugin musicbot:") && stdout.contains(" 0 restarts"), "{stdout}");
    // chimes.opus (6 s) then bells.mp3 (2 s), in one call.
    let heard = stdout.lines().find(|l| l.starts_with("loopback heard chat -1001185324811")).unwrap_or_default();
    assert!(heard.contains(", 0 lost, 8.0 s of audio"), "{stdout}");
    assert!(stderr.contains("musicbot ready"), "the plugin's log reaches the host log: {stderr}");
    let wavs: Vec<_> = std::fs::read_dir(dir.path().join("heard")).unwrap().collect();
    assert_eq!(wavs.len(), 1, "one recording for the one participant");
    assert!(dir.path().join(".wasmcalls/cache").read_dir().unwrap().next().is_some(), "compiled code was cached");
}

#[test]
fn people_talk_to_the_running_demo_through_the_loopback_commands() {
    let dir = project();
    musicbot_demo(dir.path());
    std::fs::copy(dir.path().join("examples/media/bells.mp3"), dir.path().join("song.mp3")).unwrap();
    let host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["run", "examples/wasmcalls.toml"]);
        c
    });
    let control = host.seen.iter().find_map(|l| l.split("loopback control on ").nth(1)).unwrap().trim().to_owned();
    let loopback = |args: &[&str]| {
        let out = wasmcalls(dir.path()).arg("loopback").args(args).args(["--url", &control]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let chat = "-1001185324811";
    // As the README shows it: a person replies `/play` to an audio file they upload.
    let said = loopback(&["say", "--chat", chat, "--from", "424242", "/play", "--reply-to-audio", "song.mp3"]);
    assert!(said.contains("\"uploaded\"") && said.contains("\"id\""), "{said}");
    // The bot answers (the autoplay queue is playing, so the song is queued behind it);
    // another process: polled, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    let answered = |t: &str| t.lines().any(|l| l.contains("\"from\":777000002") && l.contains("song"));
    let transcript = loop {
        let t = loopback(&["messages", "--chat", chat]);
        if answered(&t) || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<Value> = transcript.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let now = lines.iter().find(|m| m["text"].as_str().is_some_and(|t| t.starts_with("🎵 Now playing"))).unwrap();
    assert_eq!(now["from"], 777000002, "{transcript}");
    assert_eq!(now["buttons"][0][0]["data"], "pause", "{transcript}");
    assert!(
        lines.iter().any(|m| m["from"] == 777000002 && m["text"].as_str().unwrap().contains("song")),
        "{transcript}"
    );
    // A person presses ⏸ under the now-playing message.
    let id = now["id"].to_string();
    let pressed = loopback(&["press", "--chat", chat, "--message", &id, "--data", "pause"]);
    assert!(pressed.contains("\"query\""), "{pressed}");
    loopback(&["participant", "join", "--chat", chat, "--user", "515151"]);
    // He says something: the bot's call hears it (tests/all/hearing.rs follows it there).
    let spoke = loopback(&["participant", "speak", "--chat", chat, "--user", "515151", "song.mp3"]);
    assert!(spoke.contains("515151 is speaking in chat -1001185324811"), "{spoke}");
    let err = wasmcalls(dir.path())
        .args(["loopback", "participant", "speak", "--chat", chat, "examples/wasmcalls.toml", "--url", &control])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(!err.status.success() && stderr.contains("wasmcalls.toml: ") && stderr.contains("not audio"), "{stderr}");
    let err =
        wasmcalls(dir.path()).args(["loopback", "say", "--chat", "-5", "hi", "--url", &control]).output().unwrap();
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("no chat -5"), "{}", String::from_utf8_lossy(&err.stderr));
}

#[test]
fn check_says_what_would_start_and_exits_zero() {
    let dir = project();
    jukebox_demo(dir.path());
    let out = wasmcalls(dir.path()).args(["check", "examples/wasmcalls.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let root = dir.path().canonicalize().unwrap();
    assert!(stdout.contains("telegram: the loopback"), "{stdout}");
    assert!(
        stdout.contains(&format!("plugin jukebox: {} (present)", root.join("plugins/jukebox.wasm").display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "may command and hear: -100; may stream and read (read-only): {}",
            root.join("examples/media").display()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("1000 ms of CPU per event, 64 MiB of memory"), "{stdout}");
    assert!(stdout.contains("examples/wasmcalls.toml is good"), "{stdout}");
    assert!(!dir.path().join(".wasmcalls").exists() && !dir.path().join("heard").exists(), "nothing started");
}

#[test]
fn run_and_check_explain_a_bad_config_with_its_key_and_line() {
    let dir = project();
    let cases = [
        ("[host]\napi_port = 1\nport = 2\n", "line 3", "port"),
        (
            "[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\ngrants = { files = [\"nowhere\"] }\n",
            "line 4",
            "plugins[0].grants.files",
        ),
        (
            "[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\n[plugins.limits]\nmemory_mb = 0\n",
            "line 5",
            "plugins[0].limits.memory_mb",
        ),
        (
            "[loopback.faults]
jitter = \"30\"
",
            "line 2",
            "loopback.faults.jitter",
        ),
    ];
    for (text, line, key) in cases {
        std::fs::write(dir.path().join("examples/bad.toml"), text).unwrap();
        for cmd in ["run", "check"] {
            let out = wasmcalls(dir.path()).args([cmd, "examples/bad.toml"]).output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{cmd} accepted {text}");
            assert!(
                stderr.contains("examples/bad.toml") && stderr.contains(line) && stderr.contains(key),
                "{cmd}: {stderr}"
            );
        }
    }
    let out = wasmcalls(dir.path()).args(["run", "examples/absent.toml"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn telegram_commands_say_to_log_in_first() {
    let dir = project();
    std::fs::write(
        dir.path().join("examples/tg.toml"),
        "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\nsession = \"state/me.session\"\n",
    )
    .unwrap();
    write_raw(dir.path(), "in.raw", &tones(&[(523.0, 0.3)], 0.2, RATE, 2));
    let cases: [&[&str]; 3] = [
        &["run", "examples/tg.toml"],
        &["whoami", "examples/tg.toml"],
        &["play", "in.raw", "--telegram", "examples/tg.toml"],
    ];
    for args in cases {
        let out = wasmcalls(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} without a session must fail");
        assert!(stderr.contains("run `wasmcalls login`") && stderr.contains("me.session"), "{args:?}: {stderr}");
    }
    assert!(!dir.path().join("examples/state/me.session").exists(), "nothing is created before login");

    // Several accounts: each its own session; commands about one say which.
    std::fs::write(
        dir.path().join("examples/two.toml"),
        "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\n\
         [[accounts]]\nname = \"a1\"\n[[accounts]]\nname = \"a2\"\nsession = \"state/two.session\"\n",
    )
    .unwrap();
    let cases: [(&[&str], &[&str]); 4] = [
        (&["whoami", "examples/two.toml"], &["several accounts (a1, a2)", "--account NAME"]),
        (&["login", "examples/two.toml", "--account", "a3"], &["no account \"a3\"", "a1, a2"]),
        (&["whoami", "examples/two.toml", "--account", "a2"], &["run `wasmcalls login`", "two.session"]),
        (&["run", "examples/two.toml"], &["account a1", "login --account a1", "a1.session"]),
    ];
    for (args, says) in cases {
        let out = wasmcalls(dir.path()).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && says.iter().all(|s| stderr.contains(s)), "{args:?}: {stderr}");
    }
    let out = wasmcalls(dir.path()).args(["check", "examples/two.toml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("account a2: MTProto") && stdout.contains("login --account a2"), "{stdout}");

    // login on a config without [telegram] says what to add.
    std::fs::write(dir.path().join("examples/plain.toml"), "").unwrap();
    let out = wasmcalls(dir.path()).args(["login", "examples/plain.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no [telegram] section") && stderr.contains("my.telegram.org"),
        "{stderr}"
    );
}

/// A running `wasmcalls run|dev`, its log and output read line by line; killed when
/// dropped.
struct Running {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
    api: String,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.env("WASMCALLS_LOG", "info").stderr(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        let (tx, log) = mpsc::channel();
        let out: [Box<dyn std::io::Read + Send>; 2] =
            [Box::new(child.stderr.take().unwrap()), Box::new(child.stdout.take().unwrap())];
        for pipe in out {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut r = Running { child, log, seen: Vec::new(), api: String::new() };
        let line = r.wait_for("custom API on http://");
        // Up to the end of the word: a JSON log line closes its string after it.
        let url = line.split("custom API on ").nth(1).unwrap().split(['"', ' ']).next().unwrap();
        r.api = url.to_owned();
        // Logged once every watcher is up.
        r.wait_for("wasmcalls is running");
        r
    }

    /// The next log line containing `needle` (every line read is kept for messages).
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no {needle:?} in the log:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// GETs `path` on the host's HTTP port: the status and the JSON body.
    fn get(&self, path: &str) -> (u16, Value) {
        let url = self.api.replace("/api", path);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new().get(&url).send().await.unwrap();
            (r.status().as_u16(), serde_json::from_str(&r.text().await.unwrap()).unwrap())
        })
    }

    /// Waits for the process to exit (a minute at most) and reads the rest of its output.
    fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            match self.log.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.seen.push(line),
                Err(_) => assert!(Instant::now() < deadline, "it did not exit:\n{}", self.seen.join("\n")),
            }
        };
        // Both pipes close with the process: read to their ends.
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        status
    }

    /// POSTs `body` to the plugin `name`'s API.
    fn api(&self, name: &str, body: Value) -> Value {
        let url = self.api.replace("/api", &format!("/api/{name}"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let r = reqwest::Client::new().post(&url).body(body.to_string()).send().await.unwrap();
            serde_json::from_str(&r.text().await.unwrap()).unwrap()
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A testbot project: `examples/bot.toml` loading `../plugins/bot.wasm`.
fn testbot_project(dir: &Path, extra: &str) -> PathBuf {
    let wasm = dir.join("plugins/bot.wasm");
    std::fs::copy(plugin("testbot"), &wasm).unwrap();
    std::fs::write(
        dir.join("examples/bot.toml"),
        format!("[host]\napi_port = 0\n[[plugins]]\nname = \"bot\"\nwasm = \"../plugins/bot.wasm\"\n{extra}"),
    )
    .unwrap();
    wasm
}

/// The testbot with a custom section appended: a new version that behaves the same.
fn new_version(tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(plugin("testbot")).unwrap();
    let name = b"wasmcalls-test-version";
    bytes.push(0);
    bytes.push((1 + name.len() + tag.len()) as u8);
    bytes.push(name.len() as u8);
    bytes.extend(name);
    bytes.extend(tag.as_bytes());
    bytes
}

#[test]
fn run_with_a_relative_config_reloads_a_replaced_wasm() {
    let dir = project();
    let wasm = testbot_project(dir.path(), "");
    let mut host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["run", "examples/bot.toml"]);
        c
    });
    for _ in 0..2 {
        host.api("bot", json!({ "cmd": "count" }));
    }
    // Replaced by rename, as build tools do.
    let tmp = dir.path().join("plugins/bot.wasm.tmp");
    std::fs::write(&tmp, new_version("v2")).unwrap();
    std::fs::rename(&tmp, &wasm).unwrap();
    host.wait_for("reloaded");
    assert_eq!(host.api("bot", json!({ "cmd": "count" })), json!(3), "the new version took the count over");
}

#[test]
fn dev_with_a_relative_config_rebuilds_on_save_and_serves_the_new_version() {
    let dir = project();
    let src = dir.path().join("plugins/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("bot.txt"), "v1").unwrap();
    std::fs::write(dir.path().join("plugins/next.wasm"), new_version("v1")).unwrap();
    // The "compiler": copies the next version into place, atomically.
    let build = "build = \"../plugins/src\"\nbuild_command = \"cp ../next.wasm ../bot.wasm.tmp && mv ../bot.wasm.tmp ../bot.wasm\"\n";
    testbot_project(dir.path(), build);
    let mut host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["dev", "examples/bot.toml"]);
        c
    });
    assert_eq!(host.api("bot", json!({ "cmd": "count" })), json!(1));
    std::fs::write(dir.path().join("plugins/next.wasm"), new_version("v2")).unwrap();
    std::fs::write(src.join("bot.txt"), "v2").unwrap(); // the save
    host.wait_for("rebuilding bot");
    host.wait_for("reloaded");
    assert_eq!(host.api("bot", json!({ "cmd": "count" })), json!(2), "the new version serves, with the state");
}

/// The project's toolchains on the PATH, as a developer who ran `bash .ci/setup` has them.
fn with_toolchains(mut c: Command) -> Command {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = format!("{}:{}", repo.join(".venv/bin").display(), std::env::var("PATH").unwrap_or_default());
    c.env("PATH", path);
    c
}

#[test]
fn new_projects_in_every_language_pass_their_own_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    for lang in ["rust", "python", "js"] {
        let name = format!("radio-{lang}");
        let out = wasmcalls(dir.path()).args(["new", &name, "--lang", lang]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let project = dir.path().join(&name);
        for f in ["wasmcalls.toml", "tests/bot.test.toml", "wit/bot.wit", "media/chimes.opus"] {
            assert!(project.join(f).exists(), "{lang}: {f}");
        }
        // Run in the project, as its README line says: `wasmcalls test`.
        let out = with_toolchains(wasmcalls(&project)).arg("test").output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test result: ok. 2 passed; 0 failed"),
            "{lang}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let again = wasmcalls(dir.path()).args(["new", "radio-js", "--lang", "js"]).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let bad = wasmcalls(dir.path()).args(["new", "My Bot"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("lowercase"));
}

#[test]
fn the_musicbot_scenarios_pass_in_every_language() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = tempfile::tempdir().unwrap();
    for config in ["musicbot", "musicbot-py", "musicbot-js"] {
        let junit = reports.path().join(format!("{config}.xml"));
        let out = with_toolchains(wasmcalls(repo))
            .args(["test", "examples/musicbot.test.toml", "--config", &format!("examples/{config}.toml"), "--junit"])
            .arg(&junit)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{config}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("test result: ok. 3 passed; 0 failed"), "{config}: {stdout}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        assert!(xml.contains("tests=\"3\" failures=\"0\""), "{xml}");
    }
}

#[test]
fn a_failing_scenario_names_its_step_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = wasmcalls(dir.path()).args(["new", "bot", "--lang", "js"]).output().unwrap();
    assert!(out.status.success());
    let project = dir.path().join("bot");
    std::fs::write(
        project.join("tests/wrong.test.toml"),
        "config = \"../wasmcalls.toml\"\n[[scenario]]\nname = \"expects the wrong answer\"\n\
         [[scenario.step]]\nsay = \"/play media/chimes.opus\"\nbot_says = \"never said\"\n",
    )
    .unwrap();
    let out = wasmcalls(&project).args(["test", "--junit", "report.xml"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("test wrong.test.toml::expects the wrong answer ... FAILED"), "{stdout}");
    assert!(
        stdout.contains("step 1 (say \"/play media/chimes.opus\"): expected the bot to say \"never said\"; it said [\"▶ Playing media/chimes.opus\"]"),
        "{stdout}"
    );
    assert!(stdout.contains("test result: FAILED. 2 passed; 1 failed"), "{stdout}");
    let xml = std::fs::read_to_string(project.join("report.xml")).unwrap();
    assert!(xml.contains("failures=\"1\"") && xml.contains("<failure message=\"step 1"), "{xml}");
}

#[test]
fn a_host_killed_mid_recording_leaves_ogg_files_that_play_up_to_then() {
    let dir = project();
    std::fs::copy(plugin("probe"), dir.path().join("plugins/probe.wasm")).unwrap();
    std::fs::create_dir_all(dir.path().join("examples/rec")).unwrap();
    let media = dir.path().join("examples/media");
    write_raw(&media, "long.raw", &tones(&[(440.0, 0.3)], 60.0, RATE, 2));
    let voice = chirp(200.0, 2400.0, 20.0, 0.3);
    write_raw(&media, "voice.raw", &voice);
    std::fs::write(
        dir.path().join("examples/wasmcalls.toml"),
        "[host]\napi_port = 0\ncache_dir = \"../.wasmcalls/cache\"\n[loopback]\ncontrol = \"127.0.0.1:0\"\n\
         [[loopback.chats]]\nid = -100\n\
         [[plugins]]\nname = \"p\"\nwasm = \"../plugins/probe.wasm\"\n\
         grants = { chats = [-100], files = [\"media\"], recordings = [\"rec\"] }\n",
    )
    .unwrap();
    let mut host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["run", "examples/wasmcalls.toml"]);
        c
    });
    let control = host.seen.iter().find_map(|l| l.split("loopback control on ").nth(1)).unwrap().trim().to_owned();
    let join = json!({ "cmd": "join", "chat": -100, "source": { "file": "media/long.raw" } });
    assert_eq!(host.api("p", join), json!({ "ok": null }));
    assert_eq!(host.api("p", json!({ "cmd": "record", "chat": -100, "each": "rec" })), json!({ "ok": null }));
    let out = wasmcalls(dir.path())
        .args(["loopback", "participant", "speak", "--chat", "-100", "--user", "424242", "examples/media/voice.raw"])
        .args(["--url", &control])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Killed (no chance to close anything) once a few seconds are on disk: the file
    // grows by a page a second, so its size says how far it got.
    let rec = dir.path().join("examples/rec");
    let deadline = Instant::now() + Duration::from_secs(60);
    let file = loop {
        let f = std::fs::read_dir(&rec)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "ogg"));
        if let Some(f) = f.filter(|f| std::fs::metadata(f).map_or(0, |m| m.len()) > 40_000) {
            break f;
        }
        assert!(Instant::now() < deadline, "the recording did not grow: {:?}", host.seen);
        std::thread::sleep(Duration::from_millis(100));
    };
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    let heard = decoded(&file);
    let seconds = heard.len() as f64 / 2.0 / RATE as f64;
    assert!(seconds >= 2.0, "it plays up to its last page: {seconds:.1} s");
    let sent = left(&voice[..heard.len().min(voice.len())]);
    let (mean, _) = wasmcalls::media::loss::window_correlations(&sent, &left(&heard));
    assert!(mean >= 0.9, "and it is what was said: mean window correlation {mean:.3} over {seconds:.1} s");
}

#[test]
fn sigterm_drains_then_leaves_every_call_closes_recordings_and_exits_zero_logging_json() {
    let dir = project();
    std::fs::copy(plugin("probe"), dir.path().join("plugins/probe.wasm")).unwrap();
    std::fs::create_dir_all(dir.path().join("examples/rec")).unwrap();
    write_raw(&dir.path().join("examples/media"), "long.raw", &tones(&[(440.0, 0.3)], 60.0, RATE, 2));
    std::fs::write(
        dir.path().join("examples/wasmcalls.toml"),
        "[host]\napi_port = 0\ncache_dir = \"../.wasmcalls/cache\"\ndrain_grace_s = 1\nlog_format = \"json\"\n\
         [[loopback.chats]]\nid = -100\n[[loopback.chats]]\nid = -101\n\
         [[plugins]]\nname = \"p\"\nwasm = \"../plugins/probe.wasm\"\n\
         grants = { chats = [-100, -101], files = [\"media\"], recordings = [\"rec\"] }\n",
    )
    .unwrap();
    let mut host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["run", "examples/wasmcalls.toml"]);
        c
    });
    assert_eq!(host.get("/readyz"), (200, json!({ "ready": true })));
    let join = |chat: i64| json!({ "cmd": "join", "chat": chat, "source": { "file": "media/long.raw" } });
    assert_eq!(host.api("p", join(-100)), json!({ "ok": null }));
    assert_eq!(host.api("p", json!({ "cmd": "record", "chat": -100, "mix": "rec/mix.wav" })), json!({ "ok": null }));

    // SAFETY: signalling our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(host.child.id() as i32, libc::SIGTERM) }, 0);
    let said = host.wait_for("draining");
    let said: Value = serde_json::from_str(&said).expect("log_format = \"json\": a JSON object a line");
    assert_eq!(said["level"], "INFO", "{said}");
    let (code, body) = host.get("/readyz");
    assert_eq!(code, 503, "not ready from the moment it drains: {body}");
    let refused = host.api("p", join(-101));
    let why = refused["err"]["other"].as_str().unwrap_or_default();
    assert!(why.starts_with("draining:"), "a new call is refused, saying why: {refused}");

    let status = host.exit();
    let log = host.seen.join("\n");
    assert!(status.success(), "exits 0: {status}\n{log}");
    assert!(log.contains("grace over: leaving 1 call"), "{log}");
    let heard = host.seen.iter().find(|l| l.starts_with("loopback heard chat -100")).expect("a summary line");
    assert!(heard.ends_with("; left"), "the loopback saw the call leave: {heard}");
    // The mix's WAV header was written when the recording closed: it says how long it is.
    let wav = hound::WavReader::open(dir.path().join("examples/rec/mix.wav")).unwrap();
    assert!(wav.duration() > 0 && wav.len() as usize == wav.into_samples::<i16>().count(), "a complete WAV");
}

#[test]
fn wasmcalls_reload_and_sighup_apply_the_edited_config_or_keep_the_running_one() {
    let dir = project();
    std::fs::copy(plugin("testbot"), dir.path().join("plugins/bot.wasm")).unwrap();
    let config = dir.path().join("examples/bot.toml");
    let one =
        "[host]\napi_port = 0\nadmin_token = \"t0ken\"\n[[plugins]]\nname = \"bot\"\nwasm = \"../plugins/bot.wasm\"\n";
    std::fs::write(&config, one).unwrap();
    let mut host = Running::start({
        let mut c = wasmcalls(dir.path());
        c.args(["run", "examples/bot.toml"]);
        c
    });
    let two = format!("{one}[[plugins]]\nname = \"two\"\nwasm = \"../plugins/bot.wasm\"\n");
    std::fs::write(&config, &two).unwrap();
    let base = host.api.trim_end_matches("/api").to_owned();
    let out =
        wasmcalls(dir.path()).args(["reload", "--url", &base]).env("WASMCALLS_ADMIN_TOKEN", "t0ken").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("added: two") && stdout.contains("unchanged: bot"), "{stdout}");
    assert_eq!(host.api("two", json!({ "cmd": "count" })), json!(1));

    // A config that does not resolve: refused whole on SIGHUP, the running one kept.
    std::fs::write(&config, format!("{two}limits = {{ memory_mb = 0 }}\n")).unwrap();
    // SAFETY: signalling our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(host.child.id() as i32, libc::SIGHUP) }, 0);
    let refused = host.wait_for("config reload refused");
    assert!(refused.contains("memory_mb"), "{refused}");
    assert_eq!(host.api("two", json!({ "cmd": "count" })), json!(2));
    // And the wrong token is refused, saying so.
    let out = wasmcalls(dir.path()).args(["reload", "--url", &base, "--token", "nope"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("admin token"));
}
