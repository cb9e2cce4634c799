//! The host configuration as it is written: plain serde structs read from TOML.
//!
//! This module knows nothing of the host — it imports none of its modules. A key left
//! out is `None` here; what it then means (the default) belongs to the part of the
//! host that uses it, and `app::options` resolves a [`Config`] into those parts'
//! options in one step. Unknown keys and malformed values are errors here, naming the
//! key and its line; errors found while resolving name their key too, and
//! [`Config::line_of`] finds its line.
//!
//! ```toml
//! [host]
//! api_port = 24859            # the HTTP API (get-port-server); 0 picks a free port
//! log = "info"                # tracing filter, overridden by WASMCALLS_LOG
//! cache_dir = ".wasmcalls/cache"
//!
//! [loopback]                  # the default Telegram side: no credentials needed
//! user_id = 777000001
//! control = "127.0.0.1:24860" # HTTP control: kick / invite / end calls
//! record_dir = "heard"        # one WAV per participant
//! [[loopback.chats]]
//! id = -1001185324811
//! title = "demo"
//! active_call = true
//!
//! [telegram]                  # present: real Telegram over MTProto instead of the loopback
//! api_id = 12345              # from https://my.telegram.org
//! api_hash = "0123456789abcdef0123456789abcdef"
//! session = "wasmcalls.session"  # written by `wasmcalls login`
//!
//! [[accounts]]               # several accounts ("assistants"), each in its own groups
//! name = "a1"                 # with [telegram]: session = "a1.session", bot_token = …
//! chats = [-1001185324811]    # on the loopback: the chats it is a member of
//!
//! [[plugins]]
//! name = "jukebox"
//! wasm = "plugins/target/wasm32-wasip2/release/jukebox.wasm"
//! build = "plugins"           # optional: a cargo workspace built for wasm32-wasip2 first
//! settings = { chat = -1001185324811, playlist = ["a.raw"] }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a configuration file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, an unknown key, or a value of the wrong type; the message names the
    /// key and shows the line.
    #[error("{file}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Syntax { file: String, line: Option<usize>, message: String },
}

/// The whole file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub host: HostConfig,
    #[serde(default)]
    pub loopback: LoopbackConfig,
    /// Real Telegram; absent → the loopback.
    #[serde(default)]
    pub telegram: Option<TelegramConfig>,
    /// Several accounts; none: the one `[telegram]` (or the loopback) describes.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Named source commands operators offer plugins (`[sources.youtube]`).
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Where it was read from.
    #[serde(skip)]
    pub source: Source,
}

/// The file a [`Config`] came from: relative paths in it are relative to its folder.
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// The file as it was named (for messages); empty for a config parsed from text.
    pub file: PathBuf,
    /// The folder relative paths in the file are resolved against, as given.
    pub folder: PathBuf,
    /// The text, kept so errors found later can point at a line.
    pub text: String,
}

/// `[host]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Port of the HTTP API; 0 picks a free one.
    pub api_port: Option<u16>,
    /// Address the HTTP API binds; anything but loopback needs `api_token`.
    pub api_bind: Option<IpAddr>,
    /// Bearer token for every API request except `/healthz`.
    pub api_token: Option<String>,
    /// Largest request body, in bytes.
    pub api_max_body: Option<usize>,
    /// How long a plugin may take to answer, in milliseconds.
    pub api_timeout_ms: Option<u64>,
    /// Requests one plugin may have in flight.
    pub api_concurrency: Option<usize>,
    /// The plugin answering `POST /api`; default: the first with an API.
    pub default_plugin: Option<String>,
    /// Reload a plugin when its `.wasm` changes.
    pub hot_reload: Option<bool>,
    /// The log filter (`info`, `debug`, `wasmcalls=debug,…`).
    pub log: Option<String>,
    /// The compile cache folder.
    pub cache_dir: Option<PathBuf>,
    /// Largest size of the compile cache, in MiB; the least recently used entries go first.
    pub cache_max_mb: Option<u64>,
    /// Pacer threads calls are spread over (default: one per core).
    pub pacer_shards: Option<usize>,
    /// The share of a core, in percent, each pacer thread may commit to its calls
    /// (default 70); a call or stream beyond it is refused with a `capacity` error.
    pub shard_budget_percent: Option<f64>,
    /// Real-time (SCHED_FIFO) priority of the threads that send frames, 1–99 (default
    /// 10); 0 runs them at normal priority. Needs CAP_SYS_NICE; without it the host
    /// says so once and runs them at normal priority.
    pub realtime_priority: Option<u8>,
    /// Seconds SIGTERM gives calls to end by themselves before the host leaves them
    /// (default 20; under Kubernetes' default 30 s grace).
    pub drain_grace_s: Option<u64>,
    /// `text` (default) or `json`: one JSON object per log line, for log collectors.
    pub log_format: Option<String>,
    /// Bearer token of the admin API (`/admin/…`: add, replace, disable, remove
    /// plugins; reload the config); without one the admin API is off. The
    /// `WASMCALLS_ADMIN_TOKEN` environment variable overrides it ([`Config::load`]).
    pub admin_token: Option<String>,
    /// Plugins the host has room for, counting those added while it runs (default:
    /// the configured ones, at least 16).
    pub max_plugins: Option<usize>,
    /// The largest `limits.memory_mb` a plugin added while the host runs may have
    /// (default: the largest configured, at least 64).
    pub max_plugin_memory_mb: Option<u32>,
    /// `cranelift` (optimising; `run`'s default) or `winch` (fast to compile; `dev`'s).
    pub compiler: Option<String>,
    /// Seconds a call whose media path died keeps rejoining before its plugin hears
    /// `on-connection-lost` (default 60).
    pub recovery_window_s: Option<u64>,
}

/// `[loopback]`: the embedded loopback Telegram.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopbackConfig {
    /// The simulated account's user id.
    pub user_id: Option<i64>,
    /// The simulated bot's user id (0: no bot, messages go out as the account).
    pub bot_id: Option<i64>,
    /// The simulated bot's username, without `@`.
    pub bot_username: Option<String>,
    /// Address of the HTTP control endpoint.
    pub control: Option<SocketAddr>,
    /// Where what each participant hears is written as WAV.
    pub record_dir: Option<PathBuf>,
    /// Simulated chats; none listed: any chat id has an active call.
    #[serde(default)]
    pub chats: Vec<ChatConfig>,
    /// A bad network in front of every call's media.
    #[serde(default)]
    pub faults: FaultsConfig,
}

/// `[loopback.faults]`: what the network between a call and the loopback does to
/// each datagram, in each direction — as the `loopback serve` flags write it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    /// Datagrams dropped: "5%".
    pub loss: Option<String>,
    /// Fixed one-way delay: "40ms".
    pub delay: Option<String>,
    /// Delay varying by up to this either way: "30ms".
    pub jitter: Option<String>,
    /// Datagrams sent at once, overtaking delayed ones: "1%".
    pub reorder: Option<String>,
    /// Datagrams sent twice: "1%".
    pub duplicate: Option<String>,
    /// Blackholes, LENGTH@START from each call's start: ["8s@20s"].
    #[serde(default)]
    pub outages: Vec<String>,
    /// Seed of the randomness, for runs that repeat exactly.
    pub seed: Option<u64>,
}

/// `[[loopback.chats]]`: one simulated chat.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    pub id: i64,
    #[serde(default)]
    pub title: String,
    /// Whether a voice chat is running in it (default true).
    pub active_call: Option<bool>,
    /// Users who are its administrators.
    #[serde(default)]
    pub admins: Vec<i64>,
}

/// `[telegram]`: a user account over MTProto.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The application's id from <https://my.telegram.org>.
    pub api_id: i32,
    /// The application's hash from the same page.
    pub api_hash: String,
    /// The SQLite session `wasmcalls login` writes.
    pub session: Option<PathBuf>,
    /// A bot's token from @BotFather: messages then go out as the bot, with buttons.
    pub bot_token: Option<String>,
    /// The bot's session file (default: beside `session`, named `<session>-bot`).
    pub bot_session: Option<PathBuf>,
    /// Local address media sockets bind.
    pub media_ip: Option<IpAddr>,
    /// Seconds between `phone.checkGroupCall` keep-alives per call.
    pub check_interval_s: Option<u64>,
    /// Longest `FLOOD_WAIT` waited out, in seconds.
    pub max_flood_wait_s: Option<u64>,
    /// Invite hashes by chat id (written as a string key).
    #[serde(default)]
    pub invite_hashes: BTreeMap<String, String>,
}

/// `[[accounts]]`: one of several accounts calls go through. With `[telegram]` each
/// is a real user account (its own session, optionally its own bot; api_id and
/// api_hash default to `[telegram]`'s); on the loopback each is simulated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Unique; named by plugins' `grants.accounts`, `wasmcalls login --account`, `calls`
    /// and metrics.
    pub name: String,
    /// Real Telegram: the application's id and hash (default: `[telegram]`'s).
    pub api_id: Option<i32>,
    pub api_hash: Option<String>,
    /// Real Telegram: the session `wasmcalls login --account NAME` writes
    /// (default `<name>.session`).
    pub session: Option<PathBuf>,
    /// Real Telegram: a bot's token; its messages go out as that bot.
    pub bot_token: Option<String>,
    /// Real Telegram: the bot's session (default `<name>-bot.session`).
    pub bot_session: Option<PathBuf>,
    /// Loopback: the simulated account's user id.
    pub user_id: Option<i64>,
    /// Loopback: the chats it is a member of (default: every chat).
    pub chats: Option<Vec<i64>>,
}

/// `[[plugins]]`: one bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique; used in logs and the API route.
    pub name: String,
    /// The component to load.
    pub wasm: PathBuf,
    /// A cargo project built with `cargo build --release --target wasm32-wasip2`
    /// before loading (or the folder `build_command` runs in).
    pub build: Option<PathBuf>,
    /// A shell command that builds `wasm` (any toolchain).
    pub build_command: Option<String>,
    /// Whether `POST /api/<name>` reaches it (default true).
    pub api: Option<bool>,
    /// Handed to the plugin as a JSON object.
    #[serde(default)]
    pub settings: toml::Table,
    #[serde(default)]
    pub grants: GrantsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[sources.NAME]`: a command whose standard output is audio, e.g.
/// `command = ["yt-dlp", "-o", "-", "{url}"]`; `{url}` (or `{arg}`) is replaced by
/// what the plugin asks for after `NAME:`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub command: Vec<String>,
    /// Its output is a live feed (a radio, a relay): calls playing it with the same
    /// argument share one run, one decode and one encode, and a call joining later
    /// hears it from where it is. Off, each call runs the command from the start.
    #[serde(default)]
    pub live: bool,
}

/// `[plugins.grants]`: what the plugin may touch; nothing unless written here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Chat ids, or the word "all".
    #[serde(default)]
    pub chats: ChatsConfig,
    /// Folders the plugin may stream from (read-only).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// URL patterns it may play (`*` matches anything): `["https://radio.example/*"]`.
    #[serde(default)]
    pub urls: Vec<String>,
    /// Named sources (`[sources.NAME]`) it may play.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Messages: `true` in every granted chat, or a list of them; off by default.
    #[serde(default)]
    pub messages: MessagesConfig,
    /// Folders the plugin may record calls into (written, never read back for it).
    #[serde(default)]
    pub recordings: Vec<PathBuf>,
    /// Whether it may hear the audio of its chats' calls as PCM (`audio.listen`).
    #[serde(default)]
    pub audio: bool,
    /// The accounts (`[[accounts]]` names) its joins may go through; empty: any.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// `grants.messages`: a switch, or the chats where it is on.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MessagesConfig {
    Switch(bool),
    Chats(Vec<i64>),
}

impl Default for MessagesConfig {
    fn default() -> Self {
        MessagesConfig::Switch(false)
    }
}

/// A list of chat ids, or a word (only "all" means something).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChatsConfig {
    List(Vec<i64>),
    Word(String),
}

impl Default for ChatsConfig {
    fn default() -> Self {
        ChatsConfig::List(Vec::new())
    }
}

/// `[plugins.limits]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub memory_mb: Option<u32>,
    pub cpu_ms_per_event: Option<u32>,
    pub queue: Option<usize>,
    pub log_lines_per_s: Option<u32>,
    pub max_traps: Option<u32>,
    pub crash_window_s: Option<u32>,
    /// The largest finite download a URL source may be, in MiB.
    pub download_mb: Option<u64>,
    /// The longest one recording may run, in seconds.
    pub record_seconds: Option<u32>,
    /// The most one recording may write, in MiB.
    pub record_mb: Option<u32>,
    /// Quota: calls it may be in at once (0 or absent: no cap).
    pub max_calls: Option<u32>,
    /// Quota: messages it may send or edit a minute (0 or absent: no cap).
    pub messages_per_minute: Option<u32>,
    /// Quota: MiB its URL sources and message media may fetch in any hour (0 or
    /// absent: no cap).
    pub download_mb_per_hour: Option<u64>,
    /// Quota: the rate its URL fetches share, in kb/s (0 or absent: no cap).
    pub url_kbps: Option<u64>,
}

impl Config {
    /// Reads and parses `path`. Tokens may come from the environment instead, as a
    /// container's secrets do: `WASMCALLS_API_TOKEN` and `WASMCALLS_ADMIN_TOKEN`
    /// override `[host] api_token` and `admin_token`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut config = Config::parse_from(text, path.to_path_buf(), folder)?;
        for (var, token) in [
            ("WASMCALLS_API_TOKEN", &mut config.host.api_token),
            ("WASMCALLS_ADMIN_TOKEN", &mut config.host.admin_token),
        ] {
            if let Ok(t) = std::env::var(var)
                && !t.is_empty()
            {
                *token = Some(t);
            }
        }
        Ok(config)
    }

    /// Parses TOML text whose relative paths are relative to `folder`.
    pub fn parse(text: &str, folder: &Path) -> Result<Config, ConfigError> {
        Config::parse_from(text.to_owned(), PathBuf::new(), folder.to_path_buf())
    }

    fn parse_from(text: String, file: PathBuf, folder: PathBuf) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| line_at(&text, s.start));
            ConfigError::Syntax { file: describe(&file), line, message: e.message().trim_end().to_owned() }
        })?;
        config.source = Source { file, folder, text };
        Ok(config)
    }

    /// The file's name for messages (`<config>` when parsed from text).
    pub fn file_name(&self) -> String {
        describe(&self.source.file)
    }

    /// The line `key` is written on, if it is in the file.
    pub fn line_of(&self, key: &KeyPath) -> Option<usize> {
        let root = toml::de::DeTable::parse(&self.source.text).ok()?;
        let mut span = root.span();
        let mut table = root.get_ref();
        let mut value: Option<&toml::de::DeValue<'_>> = None;
        for part in &key.0 {
            let found = match (part, value) {
                (Key::Name(name), None) => find(table, name),
                (Key::Name(name), Some(toml::de::DeValue::Table(t))) => find(t, name),
                (Key::Index(i), Some(toml::de::DeValue::Array(a))) => {
                    a.get(*i).map(|item| (item.span(), item.get_ref()))
                }
                _ => None,
            };
            // A key left out: the line of the nearest enclosing one.
            let Some((next_span, next)) = found else { return Some(line_at(&self.source.text, span.start)) };
            span = next_span;
            value = Some(next);
            if let toml::de::DeValue::Table(t) = next {
                table = t;
            }
        }
        Some(line_at(&self.source.text, span.start))
    }
}

fn find<'a, 'i>(
    table: &'a toml::de::DeTable<'i>,
    name: &str,
) -> Option<(std::ops::Range<usize>, &'a toml::de::DeValue<'i>)> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == name).map(|(k, v)| {
        // Point at the key for a table or array of tables, at the value otherwise.
        let span = if matches!(v.get_ref(), toml::de::DeValue::Table(_)) { k.span() } else { v.span() };
        (span, v.get_ref())
    })
}

fn describe(file: &Path) -> String {
    if file.as_os_str().is_empty() { "<config>".to_owned() } else { file.display().to_string() }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// A key in the file, e.g. `plugins[1].grants.files`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(pub Vec<Key>);

/// One step of a [`KeyPath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Name(String),
    Index(usize),
}

impl KeyPath {
    /// `a.b.c` from its dotted names.
    pub fn of(dotted: &str) -> KeyPath {
        KeyPath(dotted.split('.').map(|n| Key::Name(n.to_owned())).collect())
    }

    /// The key of the `index`-th `[[plugins]]`, then `rest` (dotted) below it.
    pub fn plugin(index: usize, rest: &str) -> KeyPath {
        KeyPath::item("plugins", index, rest)
    }

    /// The key of the `index`-th `[[accounts]]`, then `rest` (dotted) below it.
    pub fn account(index: usize, rest: &str) -> KeyPath {
        KeyPath::item("accounts", index, rest)
    }

    fn item(table: &str, index: usize, rest: &str) -> KeyPath {
        let mut k = vec![Key::Name(table.into()), Key::Index(index)];
        k.extend(rest.split('.').filter(|n| !n.is_empty()).map(|n| Key::Name(n.to_owned())));
        KeyPath(k)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            match k {
                Key::Name(n) if i == 0 => write!(f, "{n}")?,
                Key::Name(n) => write!(f, ".{n}")?,
                Key::Index(j) => write!(f, "[{j}]")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/wasmcalls"))
    }

    #[test]
    fn an_empty_file_leaves_everything_to_the_defaults() {
        let c = parse("").unwrap();
        assert!(c.host.api_port.is_none() && c.plugins.is_empty() && c.telegram.is_none());
        assert_eq!(c.source.folder, Path::new("/etc/wasmcalls"));
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = parse("[host]\napi_port = 1\nlisten = 3\n").unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("listen"), "{err}");
        let err = parse("[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\npath = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("path"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let err = parse("[host]\napi_port = 70000\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse("[loopback]\ncontrol = \"not an address\"\n").unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
        let err = parse("[[plugins]]\nname = \"a\"\n").unwrap_err().to_string();
        assert!(err.contains("wasm"), "{err}");
    }

    #[test]
    fn keys_are_found_on_their_lines() {
        let text = "[host]\napi_port = 1\n\n[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\n\
                    [[plugins]]\nname = \"b\"\nwasm = \"b.wasm\"\ngrants = { files = [\"x\"] }\n\
                    [plugins.limits]\nqueue = 0\n";
        let c = parse(text).unwrap();
        assert_eq!(c.line_of(&KeyPath::of("host.api_port")), Some(2));
        assert_eq!(c.line_of(&KeyPath::plugin(0, "name")), Some(5));
        assert_eq!(c.line_of(&KeyPath::plugin(1, "grants.files")), Some(10));
        assert_eq!(c.line_of(&KeyPath::plugin(1, "limits.queue")), Some(12));
        assert_eq!(KeyPath::plugin(1, "grants.files").to_string(), "plugins[1].grants.files");
        // A key left out: the nearest enclosing one.
        assert_eq!(c.line_of(&KeyPath::plugin(0, "grants.files")), Some(4));
    }

    #[test]
    fn settings_and_sections_are_kept_as_written() {
        let c = parse(
            "[[plugins]]\nname = \"j\"\nwasm = \"p/j.wasm\"\nsettings = { chat = -100, playlist = [\"a.raw\"] }\n\
             grants = { chats = \"all\" }\n[telegram]\napi_id = 1\napi_hash = \"x\"\n",
        )
        .unwrap();
        let p = &c.plugins[0];
        assert_eq!(p.settings["chat"].as_integer(), Some(-100));
        assert!(matches!(&p.grants.chats, ChatsConfig::Word(w) if w == "all"));
        assert_eq!(c.telegram.unwrap().api_id, 1);
    }
}
