//! `wasmcalls test [SCENARIO…]`: scripted bot tests against the loopback, in-process.
//!
//! A scenario file names a config (the bot as it is deployed, with its grants) and
//! holds scenarios, each a list of steps. A step does one thing — a person says
//! something (optionally replying to an audio file they upload), presses a button,
//! joins or leaves the call; the chat is kicked or its voice chat ends; a custom API
//! request; waiting for a stream to end or for time to pass — and then checks what
//! the bot did: what it said (a pattern, `*` matching anything) and with which
//! buttons, which commands it issued, the call's state, the seconds the call heard,
//! the API's answer. Every scenario runs on a fresh host; each step waits until the
//! bots have handled everything it caused, so nothing is timed by sleeping.
//!
//! ```toml
//! config = "wasmcalls.toml"      # relative to this file
//! [[scenario]]
//! name = "plays what people ask for"
//! [[scenario.step]]
//! say = "/play media/bells.mp3"
//! bot_says = "🎵 Now playing: bells.mp3*"
//! buttons = ["pause", "skip", "stop"]
//! commands = ["join", "send"]
//! call = "playing"
//! ```
//!
//! Output is like `cargo test`'s; the exit status is non-zero on a failure, and
//! `--junit FILE` writes the results for CI.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use tokio::sync::broadcast;
use wasmcalls::app::App;
use wasmcalls::calls::{CallState, HostEvent};
use wasmcalls::config::Config;
use wasmcalls::media::source::fetch::glob;
use wasmcalls::runtime::Compiler;
use wasmcalls::telegram::TelegramOptions;
use wasmcalls::telegram::loopback::{DEFAULT_PERSON, File, Loopback, Posted, Upload};

#[derive(Args)]
pub struct TestArgs {
    /// Scenario files (default: every `*.test.toml` under `tests/`)
    scenarios: Vec<PathBuf>,
    /// Run them against this config instead of the one each file names
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the results as JUnit XML here
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Run only the scenarios whose name contains this
    #[arg(long)]
    filter: Option<String>,
}

/// Longest a step waits for what it caused.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    /// The bot's config, relative to this file.
    config: PathBuf,
    /// The chat steps happen in unless they say (default: the config's first loopback chat).
    chat: Option<i64>,
    /// Who says and presses unless a step says (default 424242).
    person: Option<i64>,
    #[serde(rename = "scenario")]
    scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[serde(default, rename = "step")]
    steps: Vec<Step>,
}

/// One step: at most one action, then any expectations.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Step {
    // Actions.
    say: Option<String>,
    reply_to_audio: Option<PathBuf>,
    voice: Option<bool>,
    from: Option<i64>,
    chat: Option<i64>,
    press: Option<String>,
    participant: Option<String>,
    user: Option<i64>,
    kick: Option<bool>,
    end_call: Option<bool>,
    start_call: Option<bool>,
    api: Option<toml::Value>,
    plugin: Option<String>,
    wait: Option<String>,
    sleep: Option<f64>,
    // Expectations.
    bot_says: Option<String>,
    buttons: Option<Vec<String>>,
    commands: Option<Vec<String>>,
    call: Option<String>,
    heard_at_least: Option<f64>,
    api_status: Option<u16>,
    api_body: Option<toml::Value>,
}

impl Step {
    /// How the step reads in a report: its action.
    fn describe(&self) -> String {
        if let Some(t) = &self.say {
            return format!("say {t:?}");
        }
        if let Some(d) = &self.press {
            return format!("press {d:?}");
        }
        if let Some(a) = &self.participant {
            return format!("participant {a}");
        }
        if let Some(w) = &self.wait {
            return format!("wait {w}");
        }
        if self.api.is_some() {
            return "api".into();
        }
        for (flag, name) in [(self.kick, "kick"), (self.end_call, "end_call"), (self.start_call, "start_call")] {
            if flag == Some(true) {
                return name.into();
            }
        }
        if let Some(s) = self.sleep {
            return format!("sleep {s} s");
        }
        "check".into()
    }
}

struct Outcome {
    file: String,
    name: String,
    took: Duration,
    failure: Option<String>,
}

/// Some scenarios failed (the report says which).
#[derive(Debug, thiserror::Error)]
#[error("scenarios failed")]
pub struct Failed;

pub async fn run(args: TestArgs) -> Result<()> {
    let files = if args.scenarios.is_empty() { discover(Path::new("tests"))? } else { args.scenarios.clone() };
    if files.is_empty() {
        bail!("no scenarios: pass *.test.toml files, or keep them in tests/");
    }
    let mut plan = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let parsed: ScenarioFile = toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", f.display()))?;
        plan.push((f.clone(), parsed));
    }
    let total: usize = plan
        .iter()
        .map(|(_, s)| s.scenarios.iter().filter(|sc| args.filter.as_ref().is_none_or(|x| sc.name.contains(x))).count())
        .sum();
    println!("\nrunning {total} scenario{}", if total == 1 { "" } else { "s" });
    let t0 = Instant::now();
    let mut outcomes = Vec::new();
    // Each config's plugins are built before its first scenario only.
    let mut built = std::collections::HashSet::new();
    for (path, file) in &plan {
        let folder = path.parent().unwrap_or(Path::new("."));
        let config = args.config.clone().unwrap_or_else(|| folder.join(&file.config));
        for scenario in &file.scenarios {
            if args.filter.as_ref().is_some_and(|x| !scenario.name.contains(x)) {
                continue;
            }
            let started = Instant::now();
            let build = built.insert(config.clone());
            let failure = run_one(&config, folder, file, scenario, build).await.err().map(|e| format!("{e:#}"));
            let label = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into());
            println!("test {label}::{} ... {}", scenario.name, if failure.is_none() { "ok" } else { "FAILED" });
            outcomes.push(Outcome { file: label, name: scenario.name.clone(), took: started.elapsed(), failure });
        }
    }
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.failure.is_some()).collect();
    if !failed.is_empty() {
        println!("\nfailures:");
        for o in &failed {
            println!("\n---- {}::{} ----\n{}", o.file, o.name, o.failure.as_deref().unwrap_or_default());
        }
    }
    println!(
        "\ntest result: {}. {} passed; {} failed; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        outcomes.len() - failed.len(),
        failed.len(),
        t0.elapsed().as_secs_f64()
    );
    if let Some(junit) = &args.junit {
        std::fs::write(junit, junit_xml(&outcomes, t0.elapsed()))
            .with_context(|| format!("writing {}", junit.display()))?;
    }
    if failed.is_empty() { Ok(()) } else { Err(Failed.into()) }
}

/// Every `*.test.toml` under `dir`, sorted.
fn discover(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    if !dir.is_dir() {
        return Ok(found);
    }
    for entry in std::fs::read_dir(dir)? {
        let p = entry?.path();
        if p.is_dir() {
            found.extend(discover(&p)?);
        } else if p.to_string_lossy().ends_with(".test.toml") {
            found.push(p);
        }
    }
    found.sort();
    Ok(found)
}

fn junit_xml(outcomes: &[Outcome], took: Duration) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let failures = outcomes.iter().filter(|o| o.failure.is_some()).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"wasmcalls\" tests=\"{}\" failures=\"{failures}\" \
         time=\"{:.3}\">\n",
        outcomes.len(),
        took.as_secs_f64()
    );
    for o in outcomes {
        let _ = write!(
            x,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            esc(&o.file),
            esc(&o.name),
            o.took.as_secs_f64()
        );
        match &o.failure {
            None => x.push_str("/>\n"),
            Some(f) => {
                let first = f.lines().next().unwrap_or_default();
                let _ = write!(x, ">\n    <failure message=\"{}\">{}</failure>\n  </testcase>\n", esc(first), esc(f));
            }
        }
    }
    x.push_str("</testsuite>\n");
    x
}

/// A scenario's host and what the steps need of it.
struct Stage {
    app: App,
    loopback: Loopback,
    events: broadcast::Receiver<HostEvent>,
    /// The plugins, in config order.
    plugins: Vec<String>,
    /// Who the bot is (its messages are what `bot_says` looks at).
    bot: i64,
    chat: i64,
    person: i64,
    /// Where uploads are found.
    folder: PathBuf,
}

async fn run_one(config: &Path, folder: &Path, file: &ScenarioFile, scenario: &Scenario, build: bool) -> Result<()> {
    let mut options = wasmcalls::app::resolve(&Config::load(config)?)?;
    if !build {
        for p in &mut options.plugins {
            p.build = None;
        }
    }
    // A fresh host of its own: any free port, no control endpoint, no recordings.
    options.api.listen = "127.0.0.1:0".parse()?;
    let TelegramOptions::Loopback(l) = &mut options.telegram else {
        bail!("{}: scenarios run on the loopback; this config has [telegram]", config.display());
    };
    l.control = None;
    l.record_dir = None;
    let first_chat = l.chats.as_ref().and_then(|c| c.first().map(|c| c.id));
    // Fast to compile, as `dev`: scenarios are about behaviour, not speed.
    options.compiler.get_or_insert(Compiler::Winch);
    let plugins: Vec<String> = options.plugins.iter().map(|p| p.spec.name.clone()).collect();
    let app = App::start(&options).await?;
    if let Some((name, e)) = app.failed().next() {
        bail!("plugin {name} did not load: {e}");
    }
    let loopback = app.loopback.clone().ok_or_else(|| anyhow!("the host has no loopback"))?;
    let me = wasmcalls::telegram::Telegram::identity(&loopback)?;
    let mut stage = Stage {
        events: app.events(),
        loopback,
        plugins,
        bot: me.bot.map_or(me.user, |b| b.id),
        chat: file.chat.or(first_chat).ok_or_else(|| anyhow!("name a chat: `chat = …` in the scenario file"))?,
        person: file.person.unwrap_or(DEFAULT_PERSON),
        folder: folder.to_path_buf(),
        app,
    };
    stage.settle().await?;
    for (i, step) in scenario.steps.iter().enumerate() {
        stage.step(step).await.with_context(|| format!("step {} ({})", i + 1, step.describe()))?;
    }
    stage.app.shutdown().await;
    Ok(())
}

impl Stage {
    /// Waits until every plugin has handled what it has been sent.
    async fn settle(&self) -> Result<()> {
        for p in &self.plugins {
            tokio::time::timeout(PATIENCE, self.app.plugins.settled(p))
                .await
                .map_err(|_| anyhow!("plugin {p} is still busy after {PATIENCE:?}"))??;
        }
        Ok(())
    }

    /// Waits for the next event matching `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&HostEvent) -> bool) -> Result<()> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.events.recv().await {
                    Ok(ev) if pred(&ev) => return Ok(()),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Err(anyhow!("the host stopped")),
                }
            }
        })
        .await
        .map_err(|_| anyhow!("{what} did not happen within {PATIENCE:?}"))?
    }

    async fn step(&mut self, s: &Step) -> Result<()> {
        let chat = s.chat.unwrap_or(self.chat);
        let before: HashMap<i32, Posted> = self.loopback.transcript(chat).into_iter().map(|p| (p.id, p)).collect();
        let commands_before: HashMap<String, usize> = self
            .plugins
            .iter()
            .map(|p| (p.clone(), self.app.plugins.commands(p).map(|c| c.len()).unwrap_or(0)))
            .collect();
        let mut api_answer = None;
        self.act(s, chat, &mut api_answer).await?;
        self.settle().await?;
        self.check(s, chat, &before, &commands_before, api_answer).await
    }

    async fn act(&mut self, s: &Step, chat: i64, api_answer: &mut Option<(u16, serde_json::Value)>) -> Result<()> {
        let from = s.from.unwrap_or(self.person);
        if let Some(text) = &s.say {
            let mut reply_to = None;
            if let Some(audio) = &s.reply_to_audio {
                let path = self.folder.join(audio);
                let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                let name = audio.file_name().map_or("audio".into(), |n| n.to_string_lossy().into_owned());
                let kind = if s.voice == Some(true) { Upload::Voice } else { Upload::Audio };
                let mime = wasmcalls::telegram::loopback::control::mime_of(&name);
                let file = File { name, mime: mime.into(), kind, bytes: Arc::new(bytes) };
                let id = self.loopback.upload(chat, from, file, "").map_err(|e| anyhow!(e))?;
                self.until("the upload", |e| matches!(e, HostEvent::Message(m) if m.id == id && m.chat == chat))
                    .await?;
                reply_to = Some(id);
            }
            let id = self.loopback.say(chat, from, text, reply_to).map_err(|e| anyhow!(e))?;
            return self
                .until("the message", |e| matches!(e, HostEvent::Message(m) if m.id == id && m.chat == chat))
                .await;
        }
        if let Some(data) = &s.press {
            let message = self
                .loopback
                .transcript(chat)
                .into_iter()
                .rev()
                .find(|p| !p.deleted && p.buttons.iter().flatten().any(|b| b.data.as_deref() == Some(data.as_str())))
                .ok_or_else(|| anyhow!("no message in chat {chat} has a button with data {data:?}"))?;
            let query = self.loopback.press(chat, message.id, from, data).map_err(|e| anyhow!(e))?;
            return self.until("the button press", |e| matches!(e, HostEvent::Callback(q) if q.id == query)).await;
        }
        if let Some(action) = &s.participant {
            let user = s.user.unwrap_or(self.person);
            match action.as_str() {
                "join" => self.loopback.person_joins(chat, user, false),
                "leave" => self.loopback.person_leaves(chat, user),
                "mute" => self.loopback.person_mutes(chat, user, true),
                "unmute" => self.loopback.person_mutes(chat, user, false),
                other => return Err(anyhow!("participant {other:?}: write join, leave, mute or unmute")),
            }
            .map_err(|e| anyhow!(e))?;
            return Ok(());
        }
        if s.kick == Some(true) {
            self.loopback.kick(chat);
            return self.until("the kick", |e| matches!(e, HostEvent::RawUpdate { json, .. } if json.contains("Forbidden") || json.contains("updateChannel") || json.contains("updateChat"))).await;
        }
        if s.end_call == Some(true) {
            self.loopback.end_call(chat);
            return self
                .until(
                    "the end of the call",
                    |e| matches!(e, HostEvent::RawUpdate { json, .. } if json.contains("groupCallDiscarded")),
                )
                .await;
        }
        if s.start_call == Some(true) {
            self.loopback.start_call(chat);
            return self
                .until(
                    "the start of the call",
                    |e| matches!(e, HostEvent::RawUpdate { json, .. } if json.contains("updateGroupCall")),
                )
                .await;
        }
        if let Some(body) = &s.api {
            let plugin =
                s.plugin.clone().or_else(|| self.plugins.first().cloned()).ok_or_else(|| anyhow!("no plugin"))?;
            let json = serde_json::to_value(body)?;
            let call = wasmcalls::runtime::ApiCall { path: format!("/api/{plugin}"), body: json.to_string() };
            let reply = self.app.plugins.custom_api(&plugin, call).await?;
            let body = serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::String(reply.body));
            *api_answer = Some((reply.status, body));
            return Ok(());
        }
        if let Some(w) = &s.wait {
            return match w.as_str() {
                "stream_end" => self.until("the stream's end", |e| *e == HostEvent::StreamEnd(chat)).await,
                other => Err(anyhow!("wait {other:?}: write stream_end")),
            };
        }
        if let Some(secs) = s.sleep {
            // The one timed step: for scenarios about what happens as time passes.
            tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
        }
        Ok(())
    }

    async fn check(
        &self,
        s: &Step,
        chat: i64,
        before: &HashMap<i32, Posted>,
        commands_before: &HashMap<String, usize>,
        api_answer: Option<(u16, serde_json::Value)>,
    ) -> Result<()> {
        // What the bot posted or edited during the step.
        let said: Vec<Posted> = self
            .loopback
            .transcript(chat)
            .into_iter()
            .filter(|p| p.from == self.bot)
            .filter(|p| before.get(&p.id).is_none_or(|b| b.text != p.text || b.buttons != p.buttons))
            .collect();
        if let Some(pattern) = &s.bot_says {
            let Some(hit) = said.iter().rev().find(|p| glob(pattern, &p.text)) else {
                let texts: Vec<&str> = said.iter().map(|p| p.text.as_str()).collect();
                bail!("expected the bot to say {pattern:?}; it said {texts:?}");
            };
            if let Some(want) = &s.buttons {
                let got: Vec<String> = hit.buttons.iter().flatten().filter_map(|b| b.data.clone()).collect();
                if &got != want {
                    bail!("expected buttons {want:?} under {:?}; they are {got:?}", hit.text);
                }
            }
        } else if s.buttons.is_some() {
            bail!("`buttons` checks the message `bot_says` names: add bot_says");
        }
        if let Some(want) = &s.commands {
            let mut issued = Vec::new();
            for p in &self.plugins {
                let all = self.app.plugins.commands(p)?;
                issued.extend(all.into_iter().skip(commands_before.get(p).copied().unwrap_or(0)).map(|c| c.command));
            }
            let mut rest = issued.iter();
            if !want.iter().all(|w| rest.any(|c| c == w)) {
                bail!("expected the commands {want:?} in that order; the bot issued {issued:?}");
            }
        }
        if let Some(want) = &s.call {
            let calls = self.app.manager.calls().await;
            let state = calls.iter().find(|c| c.chat == chat).map(|c| c.state);
            let got = match state {
                None => "none",
                Some(CallState::Connecting) => "connecting",
                Some(CallState::Playing) => "playing",
                Some(CallState::Paused) => "paused",
                Some(CallState::Idle) => "idle",
            };
            if got != want {
                bail!("expected the call to be {want}; it is {got}");
            }
        }
        if let Some(secs) = s.heard_at_least {
            let heard = self
                .loopback
                .calls()
                .into_iter()
                .filter(|c| c.chat() == chat)
                .map(|c| c.stats().timeline_samples)
                .sum::<u64>() as f64
                / 48_000.0;
            if heard < secs {
                bail!("expected at least {secs} s heard in the call; it heard {heard:.2} s");
            }
        }
        if s.api_status.is_some() || s.api_body.is_some() {
            let (status, body) = api_answer.ok_or_else(|| anyhow!("api_status and api_body check an `api` step"))?;
            let want = s.api_status.unwrap_or(200);
            if status != want {
                bail!("expected the API to answer {want}; it answered {status}: {body}");
            }
            if let Some(want) = &s.api_body {
                let want = serde_json::to_value(want)?;
                if !subset(&want, &body) {
                    bail!("expected the API's answer to contain {want}; it is {body}");
                }
            }
        }
        Ok(())
    }
}

/// Whether every field of `want` is in `got`, recursively (lists compared whole).
fn subset(want: &serde_json::Value, got: &serde_json::Value) -> bool {
    match (want, got) {
        (serde_json::Value::Object(w), serde_json::Value::Object(g)) => {
            w.iter().all(|(k, v)| g.get(k).is_some_and(|gv| subset(v, gv)))
        }
        (w, g) => w == g,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_globs() {
        // The pattern language of URL grants, over whole messages.
        assert!(glob("🎵 Now playing: *", "🎵 Now playing: x\nmore"));
        assert!(glob("*Queued #1*", "➕ Queued #1: **x**"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXcYb"));
        assert!(!glob("ab*ba", "aba"), "the two ends may not overlap");
    }

    #[test]
    fn api_bodies_match_by_subset() {
        let got = serde_json::json!({ "state": "playing", "queue": [1, 2], "x": { "y": 1, "z": 2 } });
        assert!(subset(&serde_json::json!({ "state": "playing", "x": { "y": 1 } }), &got));
        assert!(!subset(&serde_json::json!({ "queue": [1] }), &got));
    }
}
