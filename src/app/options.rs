//! The one step from a parsed [`Config`] to what each part of the host takes: API
//! options, the Telegram side's options, each plugin's spec (with its grants checked
//! against the file system and its limits validated) and how to build it, the compile
//! cache. Defaults are filled here from each part's own `Default`. Every path is made
//! absolute and canonical against the config file's folder, once, here — so a config
//! named by a relative path behaves exactly like one named by an absolute path (the
//! file watchers compare these paths with what the file system reports).
//!
//! `wasmcalls check` runs only this step (after parsing) and prints the result.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::api::ApiOptions;
use crate::calls::RECOVERY_WINDOW;
use crate::config::{ChatsConfig, Config, KeyPath, LimitsConfig, MessagesConfig, PluginConfig};
use crate::media::PacerConfig;
use crate::media::source::fetch::UrlPolicy;
use crate::runtime::build::{Build, BuildCommand};
use crate::runtime::grants::{ChatGrant, Grants, GrantsError, MessagesGrant, NamedSource};
use crate::runtime::limits::{Limits, LimitsError};
use crate::runtime::{CacheOptions, Compiler, PluginSpec};
use crate::telegram::TelegramOptions;
use crate::telegram::loopback::faults::{Faults, parse_duration, parse_outage, parse_percent};
use crate::telegram::loopback::{
    Chat, DEFAULT_BOT_ID, DEFAULT_BOT_USERNAME, DEFAULT_USER_ID, LoopbackOptions, MAIN_ACCOUNT, SimAccount,
};
use crate::telegram::messages::Bot;
use crate::telegram::mtproto::MtprotoOptions;

/// Everything a host is started with.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The config these options were resolved from (a reload compares against it).
    pub config: Config,
    /// The config file's folder, canonical: relative paths were resolved against it.
    pub folder: PathBuf,
    /// The log filter.
    pub log: String,
    /// How log lines are written.
    pub log_format: LogFormat,
    /// How long SIGTERM lets calls end by themselves before leaving them.
    pub drain_grace: Duration,
    pub api: ApiOptions,
    pub telegram: TelegramOptions,
    pub plugins: Vec<PluginPlan>,
    pub cache: CacheOptions,
    /// Reload a plugin when its `.wasm` changes.
    pub hot_reload: bool,
    pub pacer: PacerConfig,
    /// Where messages' media is downloaded to be played: `<cache_dir>/media`.
    pub media_cache: PathBuf,
    /// The compiler the config names; `None`: the command's default (Cranelift for
    /// `run`, Winch for `dev`).
    pub compiler: Option<Compiler>,
    /// How long a call whose media path died keeps rejoining before its plugin is told.
    pub recovery_window: Duration,
    /// Plugins the host has room for, and the largest memory cap one may have,
    /// counting those added while it runs.
    pub max_plugins: usize,
    pub max_plugin_memory_mb: u32,
}

/// How log lines are written (`[host] log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// For people: one line each, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object a line (time, level, target, fields), for log collectors.
    Json,
}

/// Calls get this long to end by themselves on SIGTERM unless configured.
pub const DRAIN_GRACE: Duration = Duration::from_secs(20);

/// One plugin: what to load, how to build it first, whether the API reaches it.
#[derive(Debug, Clone)]
pub struct PluginPlan {
    pub spec: PluginSpec,
    pub build: Option<Build>,
    /// Whether `POST /api/<name>` reaches it.
    pub api: bool,
}

/// A config that parses but cannot be used, with the key that is wrong and its line.
#[derive(Debug, thiserror::Error)]
pub struct ResolveError {
    pub file: String,
    pub key: KeyPath,
    pub line: Option<usize>,
    pub problem: Problem,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ", line {l}")?;
        }
        write!(f, ": {}: {}", self.key, self.problem)
    }
}

/// What is wrong with a key's value.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("the config's folder cannot be used: {0}")]
    Folder(std::io::Error),
    #[error(
        "{0} exposes the API beyond this machine: set host.api_token too (clients then send `Authorization: Bearer <token>`)"
    )]
    PublicApi(IpAddr),
    #[error("{0:?} names no plugin in this file")]
    NoSuchPlugin(String),
    #[error("must be above 0")]
    Zero,
    #[error("{0} is not a share of a core: write a percentage above 0 and at most 100 (default 70)")]
    Percent(f64),
    #[error("{0:?} is not a log format: write \"text\" (the default) or \"json\"")]
    LogFormat(String),
    #[error("{0} is not a real-time priority: write 1 to 99 (default 10), or 0 for normal scheduling")]
    Priority(u8),
    #[error(
        "api_id must be a positive number and api_hash 32 hex digits, both from https://my.telegram.org → API development tools"
    )]
    Credentials,
    #[error("{0:?} is not a chat id (e.g. \"-1001185324811\")")]
    InviteKey(String),
    #[error("{0:?} must be 1–64 letters, digits, '-' or '_' (it is used in URLs and logs)")]
    PluginName(String),
    #[error("two plugins are named {0:?}; names must be unique")]
    DuplicatePlugin(String),
    #[error("two accounts are named {0:?}; names must be unique")]
    DuplicateAccount(String),
    #[error("{0:?} names no [[accounts]] entry in this file")]
    NoSuchAccount(String),
    #[error("is for {0}; this config {1}")]
    WrongSide(&'static str, &'static str),
    #[error("with [[accounts]], each account's session and bot go in its own entry; move this key there")]
    AccountKeyInTelegram,
    #[error("user {0} is two accounts; give each its own user_id")]
    SharedUserId(i64),
    #[error("{0:?}: write a list of chat ids or \"all\"")]
    ChatsWord(String),
    #[error(transparent)]
    Grants(#[from] GrantsError),
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error("cannot be handed to the plugin as JSON: {0}")]
    Settings(String),
    #[error("{0:?} names no [sources.{0}] in this file")]
    NoSuchSource(String),
    #[error("the command is empty; write the program and its arguments, e.g. [\"yt-dlp\", \"-o\", \"-\", \"{{url}}\"]")]
    EmptyCommand,
    #[error("{0:?} is not a URL pattern: it must start with http:// or https://")]
    UrlPattern(String),
    #[error("chat {0} is not in grants.chats; grant the chat first")]
    MessagesChat(i64),
    #[error("a bot token looks like 123456:ABC…, as @BotFather gives it")]
    BotToken,
    #[error("{0:?}: write \"cranelift\" (optimising) or \"winch\" (fast to compile)")]
    Compiler(String),
    #[error("{0}")]
    Fault(String),
}

/// Resolves a parsed config into the options of each part of the host.
pub fn resolve(config: &Config) -> Result<HostOptions, ResolveError> {
    let fail = |key: KeyPath, problem: Problem| ResolveError {
        file: config.file_name(),
        line: config.line_of(&key),
        key,
        problem,
    };
    let folder = config.source.folder.canonicalize().map_err(|e| fail(KeyPath::default(), Problem::Folder(e)))?;
    let h = &config.host;

    let defaults = ApiOptions::default();
    let bind = h.api_bind.unwrap_or(defaults.listen.ip());
    let token = h.api_token.clone().filter(|t| !t.is_empty());
    if !bind.is_loopback() && token.is_none() {
        return Err(fail(KeyPath::of("host.api_bind"), Problem::PublicApi(bind)));
    }
    for (key, zero) in [
        ("host.api_concurrency", h.api_concurrency == Some(0)),
        ("host.api_timeout_ms", h.api_timeout_ms == Some(0)),
        ("host.api_max_body", h.api_max_body == Some(0)),
        ("host.cache_max_mb", h.cache_max_mb == Some(0)),
        ("host.pacer_shards", h.pacer_shards == Some(0)),
    ] {
        if zero {
            return Err(fail(KeyPath::of(key), Problem::Zero));
        }
    }
    if let Some(p) = h.shard_budget_percent
        && !(p > 0.0 && p <= 100.0)
    {
        return Err(fail(KeyPath::of("host.shard_budget_percent"), Problem::Percent(p)));
    }
    let log_format = match h.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => return Err(fail(KeyPath::of("host.log_format"), Problem::LogFormat(other.to_owned()))),
    };
    if let Some(p) = h.realtime_priority
        && p > 99
    {
        return Err(fail(KeyPath::of("host.realtime_priority"), Problem::Priority(p)));
    }
    if let Some(d) = &h.default_plugin
        && !config.plugins.iter().any(|p| &p.name == d)
    {
        return Err(fail(KeyPath::of("host.default_plugin"), Problem::NoSuchPlugin(d.clone())));
    }
    let api = ApiOptions {
        listen: SocketAddr::new(bind, h.api_port.unwrap_or(defaults.listen.port())),
        token,
        max_body: h.api_max_body.unwrap_or(defaults.max_body),
        timeout: h.api_timeout_ms.map_or(defaults.timeout, Duration::from_millis),
        concurrency: h.api_concurrency.unwrap_or(defaults.concurrency),
        default_plugin: h.default_plugin.clone(),
        admin_token: h.admin_token.clone().filter(|t| !t.is_empty()),
    };

    let telegram = telegram(config, &folder).map_err(|(k, p)| fail(k, p))?;
    let mut names = HashSet::new();
    for (i, a) in config.accounts.iter().enumerate() {
        if !valid_name(&a.name) {
            return Err(fail(KeyPath::account(i, "name"), Problem::PluginName(a.name.clone())));
        }
        if !names.insert(a.name.as_str()) {
            return Err(fail(KeyPath::account(i, "name"), Problem::DuplicateAccount(a.name.clone())));
        }
    }

    let mut seen = HashSet::new();
    let mut plugins = Vec::new();
    for (i, p) in config.plugins.iter().enumerate() {
        if !valid_name(&p.name) {
            return Err(fail(KeyPath::plugin(i, "name"), Problem::PluginName(p.name.clone())));
        }
        if !seen.insert(&p.name) {
            return Err(fail(KeyPath::plugin(i, "name"), Problem::DuplicatePlugin(p.name.clone())));
        }
        plugins.push(plugin(i, p, config, &folder).map_err(|(k, e)| fail(k, e))?);
    }
    for (name, src) in &config.sources {
        if src.command.is_empty() {
            return Err(fail(KeyPath::of(&format!("sources.{name}.command")), Problem::EmptyCommand));
        }
    }

    let compiler = match h.compiler.as_deref() {
        None => None,
        Some("cranelift") => Some(Compiler::Cranelift),
        Some("winch") => Some(Compiler::Winch),
        Some(other) => return Err(fail(KeyPath::of("host.compiler"), Problem::Compiler(other.to_owned()))),
    };
    let cache_dir = absolute(&folder, h.cache_dir.as_deref().unwrap_or(Path::new(".wasmcalls/cache")));
    let cache_defaults = CacheOptions::default();
    let max_plugins = h.max_plugins.unwrap_or(16).max(plugins.len());
    let largest = plugins.iter().map(|p| p.spec.limits.memory_mb).max().unwrap_or(0);
    let max_plugin_memory_mb = h.max_plugin_memory_mb.unwrap_or(64).max(largest);
    Ok(HostOptions {
        config: config.clone(),
        log: h.log.clone().unwrap_or_else(|| "info".into()),
        log_format,
        drain_grace: h.drain_grace_s.map_or(DRAIN_GRACE, Duration::from_secs),
        api,
        telegram,
        plugins,
        media_cache: cache_dir.join("media"),
        compiler,
        cache: CacheOptions {
            dir: Some(cache_dir),
            max_bytes: h.cache_max_mb.map_or(cache_defaults.max_bytes, |mb| mb << 20),
        },
        hot_reload: h.hot_reload.unwrap_or(true),
        pacer: PacerConfig {
            shards: h.pacer_shards.unwrap_or(PacerConfig::default().shards),
            budget_percent: h.shard_budget_percent.unwrap_or(crate::media::pacer::BUDGET_PERCENT),
            realtime_priority: h.realtime_priority.unwrap_or(crate::media::pacer::REALTIME_PRIORITY),
            ..PacerConfig::default()
        },
        recovery_window: h.recovery_window_s.map_or(RECOVERY_WINDOW, Duration::from_secs),
        max_plugins,
        max_plugin_memory_mb,
        folder,
    })
}

type Failure = (KeyPath, Problem);

/// `[loopback.faults]`, each value parsed as the `loopback serve` flags are.
fn faults(f: &crate::config::FaultsConfig) -> Result<Faults, Failure> {
    let key = |k: &str| KeyPath::of(&format!("loopback.faults.{k}"));
    fn value<T: Default>(key: KeyPath, v: &Option<String>, parse: fn(&str) -> Result<T, String>) -> Result<T, Failure> {
        v.as_deref().map(parse).transpose().map_err(|e| (key, Problem::Fault(e))).map(Option::unwrap_or_default)
    }
    Ok(Faults {
        loss: value(key("loss"), &f.loss, parse_percent)?,
        delay: value(key("delay"), &f.delay, parse_duration)?,
        jitter: value(key("jitter"), &f.jitter, parse_duration)?,
        reorder: value(key("reorder"), &f.reorder, parse_percent)?,
        duplicate: value(key("duplicate"), &f.duplicate, parse_percent)?,
        outages: f
            .outages
            .iter()
            .map(|o| parse_outage(o))
            .collect::<Result<_, _>>()
            .map_err(|e| (key("outages"), Problem::Fault(e)))?,
        seed: f.seed.unwrap_or_else(rand::random),
    })
}

/// A name used in URLs, logs and metric labels: 1–64 letters, digits, `-` or `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `[[accounts]]` on the loopback: simulated accounts, each in its chats.
fn loopback_accounts(config: &Config) -> Result<Vec<SimAccount>, Failure> {
    let mut ids = HashSet::new();
    let mut out = Vec::with_capacity(config.accounts.len());
    for (i, a) in config.accounts.iter().enumerate() {
        let real = [
            ("api_id", a.api_id.is_some()),
            ("api_hash", a.api_hash.is_some()),
            ("session", a.session.is_some()),
            ("bot_token", a.bot_token.is_some()),
            ("bot_session", a.bot_session.is_some()),
        ];
        if let Some((key, _)) = real.iter().find(|(_, set)| *set) {
            return Err((KeyPath::account(i, key), Problem::WrongSide("real Telegram", "has no [telegram] section")));
        }
        // Numbered after the loopback's account, so a config naming none still works.
        let user_id = a.user_id.unwrap_or(config.loopback.user_id.unwrap_or(DEFAULT_USER_ID) + 10 * i as i64);
        if user_id <= 0 {
            return Err((KeyPath::account(i, "user_id"), Problem::Zero));
        }
        if !ids.insert(user_id) {
            return Err((KeyPath::account(i, "user_id"), Problem::SharedUserId(user_id)));
        }
        out.push(SimAccount { name: a.name.clone(), user_id, chats: a.chats.clone() });
    }
    Ok(out)
}

fn telegram(config: &Config, folder: &Path) -> Result<TelegramOptions, Failure> {
    let Some(t) = &config.telegram else {
        let l = &config.loopback;
        let defaults = LoopbackOptions::default();
        let chats = l
            .chats
            .iter()
            .map(|c| Chat {
                id: c.id,
                title: c.title.clone(),
                active_call: c.active_call.unwrap_or(true),
                admins: c.admins.clone(),
            })
            .collect::<Vec<_>>();
        let bot = match (l.bot_id, &defaults.bot) {
            (Some(0), _) => None,
            (id, d) => Some(Bot {
                id: id.or(d.as_ref().map(|b| b.id)).unwrap_or(DEFAULT_BOT_ID),
                username: l.bot_username.clone().unwrap_or_else(|| DEFAULT_BOT_USERNAME.to_owned()),
            }),
        };
        return Ok(TelegramOptions::Loopback(LoopbackOptions {
            record_dir: l.record_dir.as_deref().map(|d| absolute(folder, d)),
            user_id: l.user_id.unwrap_or(defaults.user_id),
            accounts: loopback_accounts(config)?,
            bot,
            chats: (!chats.is_empty()).then_some(chats),
            control: l.control,
            faults: faults(&l.faults)?,
            ..defaults
        }));
    };
    if t.check_interval_s == Some(0) {
        return Err((KeyPath::of("telegram.check_interval_s"), Problem::Zero));
    }
    let mut invite_hashes = std::collections::HashMap::new();
    for (k, v) in &t.invite_hashes {
        let chat = k
            .parse::<i64>()
            .map_err(|_| (KeyPath::of(&format!("telegram.invite_hashes.{k}")), Problem::InviteKey(k.clone())))?;
        invite_hashes.insert(chat, v.clone());
    }
    let defaults = MtprotoOptions::default();
    let shared = MtprotoOptions {
        media_ip: t.media_ip,
        check_interval: t.check_interval_s.map_or(defaults.check_interval, Duration::from_secs),
        max_flood_wait: t.max_flood_wait_s.map_or(defaults.max_flood_wait, Duration::from_secs),
        invite_hashes,
        ..defaults
    };
    if config.accounts.is_empty() {
        let one = Credentials {
            at: |k: &str| KeyPath::of(&format!("telegram.{k}")),
            api_id: t.api_id,
            api_hash: &t.api_hash,
            session: t.session.as_deref(),
            bot_token: t.bot_token.as_deref(),
            bot_session: t.bot_session.as_deref(),
        };
        return Ok(TelegramOptions::Mtproto(vec![(MAIN_ACCOUNT.into(), one.options(&shared, folder, None)?)]));
    }
    for (key, set) in [("session", t.session.is_some()), ("bot_token", t.bot_token.is_some())] {
        if set {
            return Err((KeyPath::of(&format!("telegram.{key}")), Problem::AccountKeyInTelegram));
        }
    }
    let mut accounts = Vec::with_capacity(config.accounts.len());
    for (i, a) in config.accounts.iter().enumerate() {
        for (key, set) in [("user_id", a.user_id.is_some()), ("chats", a.chats.is_some())] {
            if set {
                let side = "has [telegram]: Telegram knows which chats an account is in";
                return Err((KeyPath::account(i, key), Problem::WrongSide("the loopback", side)));
            }
        }
        // An inherited api_id or api_hash is wrong where [telegram] writes it.
        let at = move |k: &str| match k {
            "api_id" if a.api_id.is_none() => KeyPath::of("telegram.api_id"),
            "api_hash" if a.api_hash.is_none() => KeyPath::of("telegram.api_hash"),
            _ => KeyPath::account(i, k),
        };
        let one = Credentials {
            at,
            api_id: a.api_id.unwrap_or(t.api_id),
            api_hash: a.api_hash.as_deref().unwrap_or(&t.api_hash),
            session: a.session.as_deref(),
            bot_token: a.bot_token.as_deref(),
            bot_session: a.bot_session.as_deref(),
        };
        accounts.push((a.name.clone(), one.options(&shared, folder, Some(&a.name))?));
    }
    Ok(TelegramOptions::Mtproto(accounts))
}

/// One real account's keys, from `[telegram]` or an `[[accounts]]` entry.
struct Credentials<'a, K: Fn(&str) -> KeyPath> {
    /// Where each key is written, for errors.
    at: K,
    api_id: i32,
    api_hash: &'a str,
    session: Option<&'a Path>,
    bot_token: Option<&'a str>,
    bot_session: Option<&'a Path>,
}

impl<K: Fn(&str) -> KeyPath> Credentials<'_, K> {
    /// Checked, on top of the `shared` settings; `name` names the default session files.
    fn options(&self, shared: &MtprotoOptions, folder: &Path, name: Option<&str>) -> Result<MtprotoOptions, Failure> {
        let key = &self.at;
        let hex = self.api_hash.len() == 32 && self.api_hash.chars().all(|c| c.is_ascii_hexdigit());
        if self.api_id <= 0 || !hex {
            return Err((key(if self.api_id <= 0 { "api_id" } else { "api_hash" }), Problem::Credentials));
        }
        let bot_token = self.bot_token.filter(|s| !s.is_empty()).map(str::to_owned);
        if let Some(token) = &bot_token
            && !token.split_once(':').is_some_and(|(id, rest)| id.parse::<u64>().is_ok() && rest.len() >= 20)
        {
            return Err((key("bot_token"), Problem::BotToken));
        }
        let default_session = name.map_or(shared.session.clone(), |n| PathBuf::from(format!("{n}.session")));
        let session = absolute(folder, self.session.unwrap_or(&default_session));
        let bot_session = match self.bot_session {
            Some(p) => absolute(folder, p),
            None => {
                let stem = session.file_stem().map_or("wasmcalls".into(), |s| s.to_string_lossy().into_owned());
                session.with_file_name(format!("{stem}-bot.session"))
            }
        };
        Ok(MtprotoOptions {
            api_id: self.api_id,
            api_hash: self.api_hash.to_owned(),
            session,
            bot_token,
            bot_session,
            ..shared.clone()
        })
    }
}

/// `grants.accounts`, each naming an `[[accounts]]` entry (or `main` without any).
fn accounts_granted(i: usize, p: &PluginConfig, config: &Config) -> Result<Vec<String>, Failure> {
    for name in &p.grants.accounts {
        let known = if config.accounts.is_empty() {
            name == MAIN_ACCOUNT
        } else {
            config.accounts.iter().any(|a| &a.name == name)
        };
        if !known {
            return Err((KeyPath::plugin(i, "grants.accounts"), Problem::NoSuchAccount(name.clone())));
        }
    }
    Ok(p.grants.accounts.clone())
}

fn plugin(i: usize, p: &PluginConfig, config: &Config, folder: &Path) -> Result<PluginPlan, Failure> {
    let chats = match &p.grants.chats {
        ChatsConfig::List(ids) => ChatGrant::Only(ids.iter().copied().collect()),
        ChatsConfig::Word(w) if w == "all" => ChatGrant::All,
        ChatsConfig::Word(w) => return Err((KeyPath::plugin(i, "grants.chats"), Problem::ChatsWord(w.clone()))),
    };
    let limits = limits(&p.limits);
    limits.validate().map_err(|e| (KeyPath::plugin(i, &format!("limits.{}", Limits::key_of(&e))), e.into()))?;
    if let Some(bad) = p.grants.urls.iter().find(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
        return Err((KeyPath::plugin(i, "grants.urls"), Problem::UrlPattern(bad.clone())));
    }
    let mut sources = std::collections::BTreeMap::new();
    for name in &p.grants.sources {
        let src = config
            .sources
            .get(name)
            .ok_or_else(|| (KeyPath::plugin(i, "grants.sources"), Problem::NoSuchSource(name.clone())))?;
        sources.insert(name.clone(), NamedSource { argv: src.command.clone(), live: src.live });
    }
    let messages = match &p.grants.messages {
        MessagesConfig::Switch(false) => MessagesGrant::Off,
        MessagesConfig::Switch(true) => MessagesGrant::InGrantedChats,
        MessagesConfig::Chats(ids) => {
            if let ChatGrant::Only(granted) = &chats
                && let Some(&bad) = ids.iter().find(|c| !granted.contains(c))
            {
                return Err((KeyPath::plugin(i, "grants.messages"), Problem::MessagesChat(bad)));
            }
            MessagesGrant::Only(ids.iter().copied().collect())
        }
    };
    let urls = UrlPolicy::granted(p.grants.urls.clone(), limits.download_mb << 20);
    let grants = Grants::new(chats, &p.grants.files, folder)
        .map_err(|e| (KeyPath::plugin(i, "grants.files"), e.into()))?
        .with_urls(urls)
        .with_sources(sources)
        .with_messages(messages)
        .with_recordings(&p.grants.recordings, folder)
        .map_err(|e| (KeyPath::plugin(i, "grants.recordings"), e.into()))?
        .with_audio(p.grants.audio)
        .with_accounts(accounts_granted(i, p, config)?);
    let settings = serde_json::to_value(&p.settings)
        .map_err(|e| (KeyPath::plugin(i, "settings"), Problem::Settings(e.to_string())))?;
    let dir = p.build.as_deref().map_or_else(|| folder.to_path_buf(), |d| absolute(folder, d));
    let build = match (&p.build_command, &p.build) {
        (Some(cmd), _) => Some(Build { dir, command: BuildCommand::Shell(cmd.clone()) }),
        (None, Some(_)) => Some(Build { dir, command: BuildCommand::Cargo }),
        (None, None) => None,
    };
    Ok(PluginPlan {
        spec: PluginSpec { name: p.name.clone(), wasm: absolute(folder, &p.wasm), settings, limits, grants },
        build,
        api: p.api.unwrap_or(true),
    })
}

fn limits(l: &LimitsConfig) -> Limits {
    let d = Limits::default();
    Limits {
        memory_mb: l.memory_mb.unwrap_or(d.memory_mb),
        cpu_ms_per_event: l.cpu_ms_per_event.unwrap_or(d.cpu_ms_per_event),
        queue: l.queue.unwrap_or(d.queue),
        log_lines_per_s: l.log_lines_per_s.unwrap_or(d.log_lines_per_s),
        max_traps: l.max_traps.unwrap_or(d.max_traps),
        crash_window_s: l.crash_window_s.unwrap_or(d.crash_window_s),
        download_mb: l.download_mb.unwrap_or(d.download_mb),
        record_seconds: l.record_seconds.unwrap_or(d.record_seconds),
        record_mb: l.record_mb.unwrap_or(d.record_mb),
        max_calls: l.max_calls.unwrap_or(d.max_calls),
        messages_per_minute: l.messages_per_minute.unwrap_or(d.messages_per_minute),
        download_mb_per_hour: l.download_mb_per_hour.unwrap_or(d.download_mb_per_hour),
        url_kbps: l.url_kbps.unwrap_or(d.url_kbps),
    }
}

/// `p` against the canonical `folder`, as the file system names it: canonical where
/// it exists; where it does not yet (a `.wasm` not built yet), its deepest existing
/// folder canonical and the rest with `.` and `..` worked out.
pub fn absolute(folder: &Path, p: &Path) -> PathBuf {
    let joined = folder.join(p);
    if let Ok(c) = joined.canonicalize() {
        return c;
    }
    let mut existing = joined.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name().map(|n| n.to_owned()) else { break };
        rest.push(name);
        if !existing.pop() {
            break;
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for part in rest.into_iter().rev() {
        match Path::new(&part).components().next() {
            Some(Component::ParentDir) => {
                out.pop();
            }
            Some(Component::CurDir) | None => {}
            _ => out.push(part),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_text(text: &str, folder: &Path) -> Result<HostOptions, ResolveError> {
        resolve(&Config::parse(text, folder).unwrap())
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let o = resolve_text("", dir.path()).unwrap();
        let folder = dir.path().canonicalize().unwrap();
        assert_eq!(o.api.listen, "127.0.0.1:24859".parse::<SocketAddr>().unwrap());
        assert_eq!(o.cache.dir, Some(folder.join(".wasmcalls/cache")));
        assert!(o.hot_reload && o.plugins.is_empty());
        assert!(matches!(o.telegram, TelegramOptions::Loopback(_)));
    }

    #[test]
    fn log_format_and_drain_grace_have_defaults_and_bad_formats_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let o = resolve_text("", dir.path()).unwrap();
        assert_eq!((o.log_format, o.drain_grace), (LogFormat::Text, DRAIN_GRACE));
        let o = resolve_text("[host]\nlog_format = \"json\"\ndrain_grace_s = 3\n", dir.path()).unwrap();
        assert_eq!((o.log_format, o.drain_grace), (LogFormat::Json, Duration::from_secs(3)));
        let e = resolve_text("[host]\nlog_format = \"yaml\"\n", dir.path()).err().unwrap().to_string();
        assert!(e.contains("host.log_format") && e.contains("\"json\""), "{e}");
    }

    #[test]
    fn realtime_priority_defaults_to_10_and_takes_0_to_99() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve_text("", dir.path()).unwrap().pacer.realtime_priority, 10);
        let off = resolve_text("[host]\nrealtime_priority = 0\n", dir.path()).unwrap();
        assert_eq!(off.pacer.realtime_priority, 0);
        let e = resolve_text("[host]\nrealtime_priority = 120\n", dir.path()).err().unwrap().to_string();
        assert!(e.contains("host.realtime_priority") && e.contains("1 to 99"), "{e}");
    }

    #[test]
    fn relative_and_absolute_folders_give_the_same_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("project/examples")).unwrap();
        std::fs::create_dir_all(dir.path().join("project/plugins/media")).unwrap();
        let text = "[[plugins]]\nname = \"j\"\nwasm = \"../plugins/target/j.wasm\"\nbuild = \"../plugins\"\n\
                    grants = { files = [\"../plugins/media\"] }\n";
        let abs = resolve_text(text, &dir.path().join("project/examples")).unwrap();
        let rel = resolve_text(text, &dir.path().join("project/examples/../examples/.")).unwrap();
        let (a, r) = (&abs.plugins[0], &rel.plugins[0]);
        let root = dir.path().canonicalize().unwrap().join("project");
        assert_eq!(a.spec.wasm, root.join("plugins/target/j.wasm"), "no `..` left in a path not built yet");
        assert_eq!(a.spec.wasm, r.spec.wasm);
        assert_eq!(a.build.as_ref().unwrap().dir, root.join("plugins"));
        assert_eq!(a.build, r.build);
        assert_eq!(abs.folder, rel.folder);
    }

    #[test]
    fn bad_values_name_their_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| resolve_text(text, dir.path()).unwrap_err().to_string();
        let e = err("[host]\napi_bind = \"0.0.0.0\"\n");
        assert!(e.contains("line 2") && e.contains("host.api_bind") && e.contains("api_token"), "{e}");
        resolve_text("[host]\napi_bind = \"0.0.0.0\"\napi_token = \"s3cret\"\n", dir.path()).unwrap();
        let e = err("[host]\ndefault_plugin = \"x\"\n");
        assert!(e.contains("names no plugin"), "{e}");
        let two = "[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\n[[plugins]]\nname = \"a\"\nwasm = \"b.wasm\"\n";
        let e = err(two);
        assert!(e.contains("line 5") && e.contains("plugins[1].name") && e.contains("unique"), "{e}");
        let e = err("[[plugins]]\nname = \"a/b\"\nwasm = \"a.wasm\"\n");
        assert!(e.contains("letters"), "{e}");
        let e = err("[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\n[plugins.limits]\nqueue = 0\n");
        assert!(e.contains("line 5") && e.contains("plugins[0].limits.queue"), "{e}");
        let e = err("[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\ngrants = { files = [\"nope\"] }\n");
        assert!(e.contains("line 4") && e.contains("grants.files") && e.contains("nope"), "{e}");
        let e = err("[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\ngrants = { chats = \"any\" }\n");
        assert!(e.contains("\"all\""), "{e}");
    }

    #[test]
    fn the_telegram_section_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().canonicalize().unwrap();
        let ok = "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\n";
        let o = resolve_text(&format!("{ok}session = \"me.session\"\n"), dir.path()).unwrap();
        let TelegramOptions::Mtproto(list) = o.telegram else { panic!("not MTProto") };
        let (name, t) = &list[0];
        assert_eq!((list.len(), name.as_str()), (1, "main"));
        assert_eq!(
            (t.api_id, t.check_interval, t.max_flood_wait),
            (12345, Duration::from_secs(5), Duration::from_secs(120))
        );
        assert_eq!(t.session, folder.join("me.session"));
        let o = resolve_text(&format!("{ok}[telegram.invite_hashes]\n\"-100123\" = \"abc\"\n"), dir.path()).unwrap();
        let TelegramOptions::Mtproto(list) = o.telegram else { panic!("not MTProto") };
        assert_eq!(list[0].1.invite_hashes[&-100123], "abc");
        let e = resolve_text(&format!("{ok}[telegram.invite_hashes]\ndemo = \"abc\"\n"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("not a chat id") && e.line == Some(5), "{e}");
        let e = resolve_text("[telegram]\napi_id = 1\napi_hash = \"nope\"\n", dir.path()).unwrap_err();
        assert!(e.to_string().contains("my.telegram.org") && e.line == Some(3), "{e}");
    }

    #[test]
    fn several_accounts_are_named_checked_and_granted() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().canonicalize().unwrap();
        let tg = "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\n";
        let two = "[[accounts]]\nname = \"a1\"\n[[accounts]]\nname = \"a2\"\nsession = \"s/two.session\"\n";
        let o = resolve_text(&format!("{tg}{two}"), dir.path()).unwrap();
        let TelegramOptions::Mtproto(list) = o.telegram else { panic!("not MTProto") };
        let sessions: Vec<_> = list.iter().map(|(n, t)| (n.as_str(), t.session.clone(), t.api_id)).collect();
        assert_eq!(
            sessions,
            [("a1", folder.join("a1.session"), 12345), ("a2", folder.join("s/two.session"), 12345)],
            "each account has its own session; api_id comes from [telegram]"
        );
        let e = resolve_text(&format!("{tg}session = \"x.session\"\n{two}"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("its own entry") && e.key.to_string() == "telegram.session", "{e}");
        let e = resolve_text(&format!("{tg}{two}user_id = 5\n"), dir.path()).unwrap_err();
        assert_eq!((e.key.to_string(), e.line), ("accounts[1].user_id".into(), Some(9)), "{e}");

        // On the loopback: simulated, each in its chats, numbered after the default.
        let sim = "[[accounts]]\nname = \"a1\"\nchats = [-1001]\n[[accounts]]\nname = \"a2\"\n";
        let o = resolve_text(sim, dir.path()).unwrap();
        let TelegramOptions::Loopback(l) = o.telegram else { panic!("not the loopback") };
        let ids: Vec<_> = l.accounts.iter().map(|a| (a.name.as_str(), a.user_id, a.chats.clone())).collect();
        assert_eq!(ids, [("a1", 777_000_001, Some(vec![-1001])), ("a2", 777_000_011, None)]);
        let e = resolve_text(&format!("{sim}session = \"a.session\"\n"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("real Telegram"), "{e}");
        let e = resolve_text(&format!("{sim}[[accounts]]\nname = \"a1\"\n"), dir.path()).unwrap_err();
        assert!(e.to_string().contains("two accounts are named \"a1\""), "{e}");

        // A plugin names accounts that exist.
        let plugin = |grant: &str| format!("{sim}[[plugins]]\nname = \"p\"\nwasm = \"p.wasm\"\ngrants = {{ accounts = [{grant}] }}\n");
        assert!(resolve_text(&plugin("\"a2\""), dir.path()).is_ok());
        let e = resolve_text(&plugin("\"a3\""), dir.path()).unwrap_err();
        assert!(e.to_string().contains("\"a3\" names no [[accounts]]"), "{e}");
    }

    #[test]
    fn settings_become_json_and_limits_take_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let o = resolve_text(
            "[[plugins]]\nname = \"j\"\nwasm = \"p/j.wasm\"\nsettings = { chat = -100, playlist = [\"a.raw\"] }\n\
             limits = { memory_mb = 32 }\n",
            dir.path(),
        )
        .unwrap();
        let p = &o.plugins[0];
        assert_eq!(p.spec.settings, serde_json::json!({ "chat": -100, "playlist": ["a.raw"] }));
        assert_eq!(p.spec.limits, Limits { memory_mb: 32, ..Limits::default() });
        assert!(p.api && p.build.is_none());
    }
}
