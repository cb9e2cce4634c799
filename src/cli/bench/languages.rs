//! The same bot in Rust, Python and JavaScript, side by side in one run: the musicbot
//! of `examples/musicbot{,-py,-js}.toml`, built from its source when missing. For each:
//! component size, compile with Winch and Cranelift, load from the compile cache,
//! instantiate, event dispatch, memory per instance — and, for the interpreted
//! languages, a source edit → the new version serving, as `wasmcalls dev` runs it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use wasmcalls::calls::HostEvent;
use wasmcalls::runtime::build::build;
use wasmcalls::runtime::dev::{Source, watch_sources};
use wasmcalls::runtime::grants::Grants;
use wasmcalls::runtime::{CacheOptions, Capacity, Compiled, Compiler, PluginHost, PluginSpec};
use wasmcalls::telegram::{Account, Identity, Message};

use super::percentiles;
use crate::cli::new::Lang;

#[derive(Args)]
pub struct LanguagesArgs {
    /// Dispatches to time per event kind and language
    #[arg(long, default_value_t = 2000)]
    rounds: usize,
    /// Instances held at once to measure memory per instance
    #[arg(long, default_value_t = 8)]
    instances: usize,
    /// Source edits timed per interpreted language (0: skip)
    #[arg(long, default_value_t = 3)]
    edits: usize,
}

/// The bots compared: a name, and the example config that builds and runs it.
const BOTS: [(&str, &str); 3] = [
    ("Rust", "examples/musicbot.toml"),
    ("Python", "examples/musicbot-py.toml"),
    ("JavaScript", "examples/musicbot-js.toml"),
];

/// One language's figures.
struct Figures {
    language: &'static str,
    size: u64,
    winch: Duration,
    cranelift: Duration,
    cached: Duration,
    instantiate: (f64, f64),
    ignored: (f64, f64),
    command: (f64, f64),
    linear: usize,
    rss: u64,
}

pub async fn run(a: LanguagesArgs) -> Result<()> {
    let app = super::host("[host]\napi_port = 0\n", Path::new(".")).await?;
    let mut all = Vec::new();
    for (language, config) in BOTS {
        let (wasm, built) = component(config).await?;
        if let Some(took) = built {
            println!("built the {language} musicbot in {:.1} s", took.as_secs_f64());
        }
        all.push(measure(&app, language, &wasm, &a).await.with_context(|| format!("the {language} musicbot"))?);
    }
    app.shutdown().await;

    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1e3);
    let us = |(p50, p99): (f64, f64)| format!("{p50:.1} / {p99:.1} µs");
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(["musicbot", "size", "compile: Winch", "Cranelift", "cached load", "instantiate p50/p99"]);
    for f in &all {
        table.add_row([
            f.language.to_owned(),
            format!("{:.1} MiB", f.size as f64 / 1048576.0),
            ms(f.winch),
            ms(f.cranelift),
            format!("{:.1} ms", f.cached.as_secs_f64() * 1e3),
            us(f.instantiate),
        ]);
    }
    println!("wasmcalls languages bench: the musicbot in each language, Cranelift code unless said\n{table}");
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "musicbot",
        "plain text p50/p99",
        "/queue (1 command) p50/p99",
        "linear memory",
        "RSS per instance",
    ]);
    for f in &all {
        table.add_row([
            f.language.to_owned(),
            us(f.ignored),
            us(f.command),
            format!("{:.1} MiB", f.linear as f64 / 1048576.0),
            format!("{:.1} MiB", f.rss as f64 / 1024.0),
        ]);
    }
    println!("{table}");
    println!("  ({} dispatches of each; memory after on-start, {} instances held at once)", a.rounds, a.instances);

    for (language, lang) in [("Python", Lang::Python), ("JavaScript", Lang::Js)] {
        if a.edits == 0 {
            break;
        }
        let times = edit_to_serving(lang, a.edits).await.with_context(|| format!("editing a new {language} bot"))?;
        let (e2e, built): (Vec<_>, Vec<_>) = times.into_iter().unzip();
        let (e50, _, emax) = percentiles(e2e);
        let (b50, _, _) = percentiles(built);
        println!(
            "  {language}: a new bot's source saved → new version serving (dev: debounce, build, Winch compile, swap): p50 {:.2} s, max {:.2} s; the build {:.2} s of it",
            e50 / 1e6,
            emax / 1e6,
            b50 / 1e6
        );
    }
    Ok(())
}

/// The component an example config loads, built first if it is not there yet.
async fn component(config: &str) -> Result<(PathBuf, Option<Duration>)> {
    let options = options(Path::new(config))?;
    let plan = options.plugins.into_iter().next().context("the example has no plugin")?;
    if plan.spec.wasm.exists() {
        return Ok((plan.spec.wasm, None));
    }
    let b = plan.build.with_context(|| {
        format!("{} is missing and {config} does not say how to build it", plan.spec.wasm.display())
    })?;
    let t = Instant::now();
    build(&plan.spec.name, &b).await.context("run `bash .ci/setup` first: it installs the Python and JS toolchains")?;
    Ok((plan.spec.wasm, Some(t.elapsed())))
}

fn options(config: &Path) -> Result<wasmcalls::app::HostOptions> {
    let text = std::fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let config = wasmcalls::config::Config::parse(&text, config.parent().unwrap_or(Path::new(".")))?;
    Ok(wasmcalls::app::resolve(&config)?)
}

/// A plugin host compiling with `compiler` into `cache`.
fn plugin_host(app: &wasmcalls::app::App, compiler: Compiler, cache: &Path) -> Result<PluginHost> {
    let cache = CacheOptions { dir: Some(cache.into()), ..Default::default() };
    Ok(PluginHost::new(app.manager.clone(), cache, Capacity { compiler, ..Default::default() })?)
}

async fn timed_compile(host: &PluginHost, wasm: &Path) -> Result<(Compiled, Duration)> {
    let t = Instant::now();
    let c = host.compile("bench", wasm).await?;
    Ok((c, t.elapsed()))
}

fn me() -> Identity {
    Identity {
        user: 777000001,
        bot: Some(wasmcalls::telegram::messages::Bot { id: 777000002, username: "benchbot".into() }),
    }
}

fn message(text: &str) -> HostEvent {
    HostEvent::Message(Arc::new(Message {
        chat: -1001185324811,
        id: 1,
        sender: 424242,
        text: text.into(),
        reply_to: None,
        media: None,
        date: 0,
        seen_by: Account::User,
    }))
}

async fn measure(app: &wasmcalls::app::App, language: &'static str, wasm: &Path, a: &LanguagesArgs) -> Result<Figures> {
    let size = std::fs::metadata(wasm)?.len();
    let (winch_cache, cranelift_cache) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let (_, winch) = timed_compile(&plugin_host(app, Compiler::Winch, winch_cache.path())?, wasm).await?;
    let (_, cranelift) = timed_compile(&plugin_host(app, Compiler::Cranelift, cranelift_cache.path())?, wasm).await?;
    let host = plugin_host(app, Compiler::Cranelift, cranelift_cache.path())?;
    let (compiled, cached) = timed_compile(&host, wasm).await?;

    // Chat commands are not granted: `/queue`'s answer is refused at the host, one
    // cheap command, with no pacing or Telegram in the figure.
    let spec = PluginSpec {
        name: "bench".into(),
        wasm: wasm.into(),
        settings: serde_json::json!({}),
        limits: Default::default(),
        grants: Grants::all_chats(Path::new(".")),
    };
    let mut instantiate = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let i = host.instantiate(&spec, &compiled).await?;
        instantiate.push(t.elapsed());
        drop(i);
    }

    // Memory: instances alive at once, each started.
    let instances = a.instances.max(1);
    let before = super::Resident::of_self().total;
    let mut live = Vec::new();
    for _ in 0..instances {
        let mut i = host.instantiate(&spec, &compiled).await?;
        i.start(&me()).await?;
        live.push(i);
    }
    let rss = super::Resident::of_self().total.saturating_sub(before) / instances as u64;
    let linear = live[0].linear_memory();
    let mut instance = live.pop().expect("at least one instance");
    drop(live);

    let mut dispatch = async |ev: &HostEvent| -> Result<(f64, f64)> {
        for _ in 0..a.rounds / 10 {
            instance.handle(ev).await?; // warm-up
        }
        let mut times = Vec::with_capacity(a.rounds);
        for _ in 0..a.rounds {
            let t = Instant::now();
            instance.handle(ev).await?;
            times.push(t.elapsed());
        }
        Ok(p50_p99(times))
    };
    let ignored = dispatch(&message("nice song")).await?;
    let command = dispatch(&message("/queue")).await?;
    Ok(Figures {
        language,
        size,
        winch,
        cranelift,
        cached,
        instantiate: p50_p99(instantiate),
        ignored,
        command,
        linear,
        rss,
    })
}

fn p50_p99(v: Vec<Duration>) -> (f64, f64) {
    let (p50, p99, _) = percentiles(v);
    (p50, p99)
}

/// A project as `wasmcalls new` makes it, served as `wasmcalls dev` serves it (Winch,
/// the source watcher), its source saved `edits` times: (saved → new version
/// serving, saved → build done). The toolchains are the project's pinned ones.
async fn edit_to_serving(lang: Lang, edits: usize) -> Result<Vec<(Duration, Duration)>> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("bot");
    crate::cli::new::scaffold(&root, "bot", lang)?;
    let config = root.join("wasmcalls.toml");
    let venv = Path::new(".venv/bin/componentize-py").canonicalize().ok();
    let mut text = std::fs::read_to_string(&config)?
        .replace("api_port = 24859", "api_port = 0")
        .replace("control = \"127.0.0.1:24860\"", "");
    if let Some(venv) = venv {
        text = text.replace("\"componentize-py ", &format!("\"{} ", venv.display()));
    }
    std::fs::write(&config, text)?;
    let mut options = options(&config)?;
    options.compiler = Some(Compiler::Winch);
    let plan = options.plugins.first().context("the project has no plugin")?.clone();
    let b = plan.build.clone().context("the project has no build")?;
    build(&plan.spec.name, &b).await?;

    let app = wasmcalls::app::App::start(&options).await?;
    if let Some((name, e)) = app.failed().next() {
        anyhow::bail!("plugin {name} did not load: {e}");
    }
    let mut reloads = app.plugins.reloads();
    let (report, mut rebuilt) = tokio::sync::mpsc::unbounded_channel();
    let source = Source { plugin: plan.spec.name.clone(), build: b, wasm: plan.spec.wasm.clone() };
    let _watch = watch_sources(vec![source], report)?;
    let (file, comment) = match lang {
        Lang::Python => ("app.py", "#"),
        _ => ("bot.js", "//"),
    };
    let file = root.join(file);
    let mut times = Vec::new();
    for n in 0..edits {
        let text = std::fs::read_to_string(&file)? + &format!("\n{comment} edit {n}\n");
        let t0 = Instant::now();
        std::fs::write(&file, text)?;
        let built =
            tokio::time::timeout(Duration::from_secs(180), rebuilt.recv()).await?.context("the watcher stopped")?;
        built.result.map_err(|e| anyhow::anyhow!(e))?;
        let built_at = t0.elapsed();
        let (_, r) = tokio::time::timeout(Duration::from_secs(180), reloads.recv()).await??;
        r?;
        times.push((t0.elapsed(), built_at));
    }
    app.shutdown().await;
    Ok(times)
}
