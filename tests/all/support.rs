//! Shared test helpers: signals, a joined call on the loopback, and audio comparison.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use wasmcalls::calls::{Dialed, dial};
use wasmcalls::media::{EncoderConfig, MediaEvent, MediaPlane, PacerConfig, PcmFormat, Stream};
use wasmcalls::telegram::loopback::{HeardCall, Loopback, LoopbackOptions};

/// Generous bound for anything awaited; reaching it is a failure, not a wait.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub const RATE: u32 = 48000;

/// A sum of tones, `seconds` long, interleaved for `channels`.
pub fn tones(freqs: &[(f64, f64)], seconds: f64, rate: u32, channels: u8) -> Vec<i16> {
    let n = (seconds * rate as f64) as usize;
    let mut out = Vec::with_capacity(n * channels as usize);
    for i in 0..n {
        let t = i as f64 / rate as f64;
        let v: f64 = freqs.iter().map(|(f, a)| a * (2.0 * std::f64::consts::PI * f * t).sin()).sum();
        let s = (v * 32767.0) as i16;
        for _ in 0..channels {
            out.push(s);
        }
    }
    out
}

/// A linear chirp from `f0` to `f1` Hz: every instant has its own frequency, so a
/// misplaced, repeated or missing stretch shows up in the comparison.
pub fn chirp(f0: f64, f1: f64, seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * RATE as f64) as usize;
    let k = (f1 - f0) / seconds;
    let mut out = Vec::with_capacity(n * 2);
    for i in 0..n {
        let t = i as f64 / RATE as f64;
        let s = (amplitude * 32767.0 * (2.0 * std::f64::consts::PI * (f0 * t + 0.5 * k * t * t)).sin()) as i16;
        out.push(s);
        out.push(-s / 2); // distinct channels
    }
    out
}

pub fn write_raw(dir: &Path, name: &str, pcm: &[i16]) -> PathBuf {
    let path = dir.join(name);
    let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Left channel of interleaved stereo.
pub fn left(pcm: &[i16]) -> Vec<f64> {
    pcm.chunks_exact(2).map(|c| c[0] as f64).collect()
}

pub use wasmcalls::media::loss::correlation;

/// Aligns `heard` to `sent` (codec delay: best lag in `0..max_lag` on the first 0.5 s),
/// then returns the worst normalized correlation over 0.25 s windows, each refined by
/// ±8 samples. Perceptual coding shifts phase slightly at high frequencies, which the
/// refinement absorbs; a missing or repeated 20 ms frame (960 samples) it cannot.
pub fn worst_window_correlation(sent: &[f64], heard: &[f64], max_lag: usize) -> (f64, usize) {
    const W: usize = 12_000;
    let first = &sent[..W.min(sent.len())];
    let lag = (0..max_lag)
        .max_by(|&a, &b| {
            let ca = correlation(first, heard.get(a..).unwrap_or(&[]));
            let cb = correlation(first, heard.get(b..).unwrap_or(&[]));
            ca.total_cmp(&cb)
        })
        .unwrap();
    let mut worst = f64::MAX;
    let mut start = 0;
    while start + W <= sent.len() && start + lag + W + 8 <= heard.len() {
        let x = &sent[start..start + W];
        let best = (lag.saturating_sub(8)..=lag + 8)
            .map(|l| correlation(x, &heard[start + l..start + l + W]))
            .fold(f64::MIN, f64::max);
        worst = worst.min(best);
        start += W;
    }
    (worst, lag)
}

/// A file decoded by ffmpeg to 48 kHz stereo s16le (as a player would play it).
pub fn decoded(path: &std::path::Path) -> Vec<i16> {
    let mut ffmpeg = std::process::Command::new("ffmpeg");
    ffmpeg.args(["-v", "error"]);
    if path.extension().is_some_and(|e| e == "ogg") {
        // libopus decodes, as players do (ffmpeg's own Opus decoder differs from it).
        ffmpeg.args(["-c:a", "libopus"]);
    }
    let out = ffmpeg
        .arg("-i")
        .arg(path)
        .args(["-f", "s16le", "-ac", "2", "-ar", "48000", "-"])
        .output()
        .expect("ffmpeg runs (.ci/setup installs it)");
    assert!(out.status.success(), "{}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// Root mean square of a slice.
pub fn rms(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// Frequency of a pure tone from its zero crossings.
pub fn tone_frequency(x: &[f64], rate: u32) -> f64 {
    let crossings = x.windows(2).filter(|w| (w[0] < 0.0) != (w[1] < 0.0)).count();
    crossings as f64 / 2.0 / (x.len() as f64 / rate as f64)
}

/// A call joined on a fresh loopback, ready to play.
pub struct Call {
    pub media: Arc<MediaPlane>,
    pub events: UnboundedReceiver<MediaEvent>,
    pub loopback: Loopback,
    pub dialed: Dialed,
    pub heard: Arc<HeardCall>,
    #[allow(dead_code)] // held so the folder outlives the host
    pub dir: tempfile::TempDir,
}

impl Call {
    pub async fn join() -> Call {
        Call::join_on(LoopbackOptions { keep_audio: true, ..Default::default() }).await
    }

    /// A call on a loopback with these options (faults on the path, …).
    pub async fn join_on(options: LoopbackOptions) -> Call {
        Call::join_with(options, PacerConfig { shards: 1, ..Default::default() }).await
    }

    /// A call on a loopback with these options, from a media plane with this config.
    pub async fn join_with(options: LoopbackOptions, pacer: PacerConfig) -> Call {
        let (media, events) = MediaPlane::start(pacer).unwrap();
        let loopback = Loopback::new(options).unwrap();
        let dialed = dial(&media, &loopback, -100, "127.0.0.1".parse().unwrap(), &Default::default())
            .await
            .expect("joins the loopback call");
        let heard = loopback.call(dialed.ssrc).expect("the loopback knows the participant");
        let mut events = events;
        assert_eq!(events.recv().await, Some(MediaEvent::Connected { call: dialed.call }));
        Call { media: Arc::new(media), events, loopback, dialed, heard, dir: tempfile::tempdir().unwrap() }
    }

    pub fn stream(&self, name: &str, pcm: &[i16], format: PcmFormat) -> Box<Stream> {
        let path = write_raw(self.dir.path(), name, pcm);
        let spec = wasmcalls::media::SourceSpec::File { path, raw: format };
        self.media.open_stream(&spec, None, EncoderConfig::default()).unwrap()
    }

    /// The next media event, or a panic after PATIENCE.
    pub async fn next_event(&mut self) -> MediaEvent {
        tokio::time::timeout(PATIENCE, self.events.recv()).await.expect("a media event in time").unwrap()
    }

    /// Waits until the loopback has received `n` packets.
    pub async fn heard_packets(&self, n: u64) {
        tokio::time::timeout(PATIENCE, self.heard.wait_until(|s| s.packets >= n))
            .await
            .unwrap_or_else(|_| panic!("the loopback did not hear {n} packets: {:?}", self.heard.stats()));
    }

    /// Waits for the end of `stream` and for every frame sent to arrive.
    pub async fn play_to_end(&mut self, stream_id: u64) {
        match self.next_event().await {
            MediaEvent::StreamEnded { stream, error: None, .. } => assert_eq!(stream, stream_id),
            other => panic!("expected the end of stream {stream_id}, got {other:?}"),
        }
        let sent = self.media.stats(self.dialed.call).await.unwrap().frames_sent;
        self.heard_packets(sent).await;
    }
}

/// The example and test plugins, built once per test run for wasm32-wasip2.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins");
        let out = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR") // the plugins' own target/, as the configs name it
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(root.join("target/wasm32-wasip2/release"))
    });
    match dir {
        Ok(d) => d.join(format!("{name}.wasm")),
        Err(e) => panic!(
            "building the plugins failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{e}"
        ),
    }
}

/// The repository's root.
fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A compile cache shared by every test of a run (and the next run): the Python and
/// JavaScript bots are compiled into it once, not once per test.
pub fn shared_cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// The host lines a test of a Python or JavaScript bot adds: the baseline compiler
/// (as `wasmcalls dev` uses) and the shared cache its component was compiled into.
pub fn shared_compile() -> [String; 2] {
    ["compiler = \"winch\"".to_owned(), format!("cache_dir = {:?}", shared_cache())]
}

/// Runs a build tool; what it says on failure is in the panic.
fn build_with(program: &Path, args: &[&str], setup_hint: &str) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{} cannot run ({e}): {setup_hint}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiles `wasm` into the shared cache as the test hosts will load it.
fn precompile(wasm: &Path) {
    let capacity = wasmcalls::runtime::Capacity { compiler: wasmcalls::runtime::Compiler::Winch, ..Default::default() };
    let cache = wasmcalls::runtime::CacheOptions { dir: Some(shared_cache()), ..Default::default() };
    wasmcalls::runtime::precompile(wasm, cache, capacity).expect("the component compiles");
}

/// Runs `build` (given the output path) unless `out` was built this test run — each
/// toolchain with its own record, so Python and JavaScript builds run side by side —
/// then compiles the component into the shared cache.
fn built_once(built: &std::sync::Mutex<Vec<PathBuf>>, out: PathBuf, build: impl FnOnce(&str)) -> PathBuf {
    let mut built = built.lock().unwrap();
    if !built.contains(&out) {
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        build(out.to_str().unwrap());
        precompile(&out);
        built.push(out.clone());
    }
    out
}

/// A Python bot (`plugins/<name>/app.py` with the SDK in `sdk/python`), built with the
/// project's componentize-py once per test run and compiled into the shared cache.
pub fn python_bot(name: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let app = format!("plugins/{name}");
    built_once(&BUILT, repo().join(format!("plugins/target/python/{name}.wasm")), |out| {
        build_with(
            &repo().join(".venv/bin/componentize-py"),
            &[
                "-d",
                "wit/v0.2",
                "-w",
                "bot-with-audio",
                "componentize",
                "app",
                "-p",
                &app,
                "-p",
                "sdk/python",
                "-o",
                out,
            ],
            "run `bash .ci/setup` (it installs componentize-py in .venv)",
        )
    })
}

/// A JavaScript bot (`plugins/<name>/bot.js` with the SDK in `sdk/js`), built with
/// the project's componentize-qjs once per test run and compiled into the shared cache.
pub fn js_bot(name: &'static str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let js = format!("plugins/{name}/bot.js");
    built_once(&BUILT, repo().join(format!("plugins/target/js/{name}.wasm")), |out| {
        build_with(
            &repo().join("sdk/js/node_modules/.bin/componentize-qjs"),
            &["--wit", "wit/v0.2", "-n", "bot-with-audio", "--js", &js, "--module-root", ".", "--sync", "-o", out],
            "run `bash .ci/setup` (it installs componentize-qjs in sdk/js/node_modules)",
        )
    })
}

/// Runs a fixture tool, or fails saying how to get it.
pub fn tool(program: &str, args: &[&str], dir: &Path) {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed to make this test's fixtures ({e}); run `bash .ci/setup`"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test's configuration, written as a user writes it: a `[host]` with a free API
/// port, loopback chats, and plugins.
#[derive(Clone, Default)]
pub struct Setup {
    host: Vec<String>,
    loopback: Vec<String>,
    chats: Vec<(i64, bool)>,
    admins: Vec<(i64, i64)>,
    plugins: Vec<Bot>,
    /// Top-level tables written after everything else (`[sources.NAME]` …).
    tables: Vec<String>,
}

impl Setup {
    pub fn new() -> Setup {
        Setup::default()
    }

    /// A line in `[host]` (`api_port = 0` unless one sets it).
    pub fn host(mut self, line: &str) -> Setup {
        self.host.push(line.to_owned());
        self
    }

    /// A line in `[loopback]` (`bot_id = 0` …).
    pub fn loopback(mut self, line: &str) -> Setup {
        self.loopback.push(line.to_owned());
        self
    }

    /// `user` administers loopback chat `chat` (added with [`Setup::chat`]).
    pub fn admin(mut self, chat: i64, user: i64) -> Setup {
        self.admins.push((chat, user));
        self
    }

    /// A loopback chat with a voice chat running.
    pub fn chat(mut self, id: i64) -> Setup {
        self.chats.push((id, true));
        self
    }

    /// A loopback chat without a voice chat.
    pub fn quiet_chat(mut self, id: i64) -> Setup {
        self.chats.push((id, false));
        self
    }

    pub fn plugin(mut self, bot: Bot) -> Setup {
        self.plugins.push(bot);
        self
    }

    /// A top-level table, as written (e.g. `[sources.cat]\ncommand = […]`).
    pub fn table(mut self, text: &str) -> Setup {
        self.tables.push(text.to_owned());
        self
    }

    /// The TOML text.
    pub fn toml(&self) -> String {
        let mut s = String::from("[host]\n");
        if !self.host.iter().any(|l| l.starts_with("api_port")) {
            // Tests run in parallel: every host gets its own free API port.
            s += "api_port = 0\n";
        }
        for l in &self.host {
            s += &format!("{l}\n");
        }
        if !self.loopback.is_empty() {
            s += "[loopback]\n";
            for l in &self.loopback {
                s += &format!("{l}\n");
            }
        }
        for (id, active) in &self.chats {
            let admins: Vec<String> = self.admins.iter().filter(|(c, _)| c == id).map(|(_, u)| u.to_string()).collect();
            s += &format!("[[loopback.chats]]\nid = {id}\nactive_call = {active}\nadmins = [{}]\n", admins.join(", "));
        }
        for p in &self.plugins {
            s += &format!("[[plugins]]\nname = \"{}\"\nwasm = {}\n", p.name, p.wasm);
            for l in &p.lines {
                s += &format!("{l}\n");
            }
        }
        for t in &self.tables {
            s += &format!("{t}\n");
        }
        s
    }
}

/// One `[[plugins]]` of a [`Setup`].
#[derive(Clone)]
pub struct Bot {
    name: String,
    /// As written in TOML (quoted).
    wasm: String,
    lines: Vec<String>,
}

impl Bot {
    /// The test plugin (runs any command over its custom API).
    pub fn testbot(name: &str) -> Bot {
        Bot { name: name.into(), wasm: format!("{:?}", plugin("testbot")), lines: vec![] }
    }

    /// The v0.2 test plugin (runs any command over its custom API, records events).
    pub fn probe(name: &str) -> Bot {
        Bot { name: name.into(), wasm: format!("{:?}", plugin("probe")), lines: vec![] }
    }

    /// A plugin built on the frozen 0.2.0 contract (joins, records events).
    pub fn probe_v0_2_0(name: &str) -> Bot {
        Bot { name: name.into(), wasm: format!("{:?}", plugin("probe_v0_2_0")), lines: vec![] }
    }

    /// The example jukebox.
    pub fn jukebox() -> Bot {
        Bot { name: "jukebox".into(), wasm: format!("{:?}", plugin("jukebox")), lines: vec![] }
    }

    /// A plugin loaded from `wasm`, relative to the config's folder.
    pub fn at(name: &str, wasm: &str) -> Bot {
        Bot { name: name.into(), wasm: format!("{wasm:?}"), lines: vec![] }
    }

    /// `settings = { … }`.
    pub fn settings(self, inline: &str) -> Bot {
        self.line(&format!("settings = {{ {inline} }}"))
    }

    /// `grants = { … }`.
    pub fn grants(self, inline: &str) -> Bot {
        self.line(&format!("grants = {{ {inline} }}"))
    }

    /// Every chat and the config's folder: for tests about calls, not grants.
    pub fn all(self) -> Bot {
        self.grants("chats = \"all\", files = [\".\"]")
    }

    /// `limits = { … }`.
    pub fn limits(self, inline: &str) -> Bot {
        self.line(&format!("limits = {{ {inline} }}"))
    }

    /// Any other line of the plugin's table.
    pub fn line(mut self, line: &str) -> Bot {
        self.lines.push(line.to_owned());
        self
    }
}

/// A host started from a [`Setup`] written into a temp dir.
pub struct Host {
    pub app: wasmcalls::app::App,
    #[allow(dead_code)] // held so the folder outlives the host
    pub dir: tempfile::TempDir,
}

impl Host {
    pub async fn start(setup: &Setup) -> Host {
        Host::start_in(tempfile::tempdir().unwrap(), setup).await
    }

    pub async fn start_in(dir: tempfile::TempDir, setup: &Setup) -> Host {
        let app = wasmcalls::app::App::start(&Host::options(&dir, setup)).await.expect("host starts");
        Host { app, dir }
    }

    /// Starts a host on another Telegram side (media sockets on 127.0.0.1).
    pub async fn start_on(
        dir: tempfile::TempDir,
        setup: &Setup,
        telegram: std::sync::Arc<dyn wasmcalls::telegram::Telegram>,
    ) -> Host {
        let side = wasmcalls::telegram::Connected::new(telegram, std::net::IpAddr::from([127, 0, 0, 1]));
        let app = wasmcalls::app::App::start_on(&Host::options(&dir, setup), side).await.expect("host starts");
        Host { app, dir }
    }

    /// Starts a host from the setup written to `wasmcalls.toml` in `dir`, as `wasmcalls
    /// run` starts from a file (a reload re-reads it).
    pub async fn start_from_file(dir: tempfile::TempDir, setup: &Setup) -> Host {
        let file = dir.path().join("wasmcalls.toml");
        std::fs::write(&file, setup.toml()).unwrap();
        let config = wasmcalls::config::Config::load(&file).expect("test config parses");
        let options = wasmcalls::app::resolve(&config).expect("test config resolves");
        let app = wasmcalls::app::App::start(&options).await.expect("host starts");
        Host { app, dir }
    }

    /// The options a setup resolves to in `dir`.
    pub fn options(dir: &tempfile::TempDir, setup: &Setup) -> wasmcalls::app::HostOptions {
        let config = wasmcalls::config::Config::parse(&setup.toml(), dir.path()).expect("test config parses");
        wasmcalls::app::resolve(&config).expect("test config resolves")
    }

    /// The loopback this host runs on.
    pub fn loopback(&self) -> &Loopback {
        self.app.loopback.as_ref().expect("the test host runs on the loopback")
    }

    /// Calls a plugin's custom API with a JSON body and parses the JSON answer.
    pub async fn api(&self, plugin: &str, body: serde_json::Value) -> serde_json::Value {
        let reply = self
            .app
            .plugins
            .custom_api(plugin, wasmcalls::runtime::ApiCall { path: format!("/api/{plugin}"), body: body.to_string() })
            .await
            .unwrap_or_else(|e| panic!("{plugin} did not answer: {e}"));
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{plugin} answered non-JSON {:?}: {e}", reply.body))
    }

    /// Waits for the next host event matching `pred`.
    pub async fn event(
        &self,
        rx: &mut tokio::sync::broadcast::Receiver<wasmcalls::calls::HostEvent>,
        pred: impl Fn(&wasmcalls::calls::HostEvent) -> bool,
    ) -> wasmcalls::calls::HostEvent {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let ev = rx.recv().await.expect("event tap open");
                if pred(&ev) {
                    return ev;
                }
            }
        })
        .await
        .expect("the event arrived in time")
    }
}

/// A JSON answer of the host's HTTP port.
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

/// `method path` on the host's HTTP port with `body` and, if given, a bearer token;
/// the answer must be JSON.
pub async fn request(host: &Host, method: reqwest::Method, path: &str, body: &str, token: Option<&str>) -> Reply {
    let mut req =
        reqwest::Client::new().request(method, format!("http://{}{path}", host.app.api)).body(body.to_owned());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.expect("the host answers");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} answered {status} with non-JSON {text:?}: {e}"));
    Reply { status, body }
}

/// `POST path` (see [`request`]).
pub async fn post(host: &Host, path: &str, body: &str, token: Option<&str>) -> Reply {
    request(host, reqwest::Method::POST, path, body, token).await
}

/// `GET path`: the status and the body as text.
pub async fn get(host: &Host, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("http://{}{path}", host.app.api));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}
