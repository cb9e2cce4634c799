//! The host configuration, from TOML. Unknown keys and bad values are errors that
//! name the key and the line; relative paths are resolved against the file's folder.
//!
//! ```toml
//! [host]
//! api_port = 24859            # the custom API's port (get-port-server)
//! log = "info"                # tracing filter, overridden by WASMCALLS_LOG
//! cache_dir = ".wasmcalls/cache"
//!
//! [loopback]                  # the default backend: no Telegram credentials needed
//! user_id = 777000001
//! control = "127.0.0.1:24860" # HTTP control: kick / invite / end calls
//! record_dir = "heard"        # one WAV per participant
//! [[loopback.chats]]
//! id = -1001185324811
//! title = "demo"
//! active_call = true
//!
//! [telegram]                 # present: real Telegram over MTProto instead of the loopback
//! api_id = 12345              # from https://my.telegram.org
//! api_hash = "0123456789abcdef0123456789abcdef"
//! session = "wasmcalls.session"  # written by `wasmcalls login`
//!
//! [[plugins]]
//! name = "jukebox"
//! wasm = "plugins/target/wasm32-wasip2/release/jukebox.wasm"
//! build = "plugins"           # optional: a cargo workspace built for wasm32-wasip2 first
//! settings = { chat = -1001185324811, playlist = ["a.raw"] }
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::telegram::loopback::Chat;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
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
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Where the file lives; relative paths in it are resolved against this.
    #[serde(skip)]
    pub base: PathBuf,
}

/// `[host]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Port of the HTTP API (`POST /api`, `/healthz`, `/metrics`, `/status`); 0 picks a free one.
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    /// Address the HTTP API binds to. Anything but loopback requires `api_token`.
    #[serde(default = "default_api_bind")]
    pub api_bind: std::net::IpAddr,
    /// Bearer token required on every API request except `/healthz` (when set).
    #[serde(default)]
    pub api_token: Option<String>,
    /// Largest request body, in bytes.
    #[serde(default = "default_max_body")]
    pub api_max_body: usize,
    /// How long a plugin may take to answer, in milliseconds.
    #[serde(default = "default_api_timeout")]
    pub api_timeout_ms: u64,
    /// Requests one plugin may have in flight; more get 429.
    #[serde(default = "default_api_concurrency")]
    pub api_concurrency: usize,
    /// Plugin that answers `POST /api` (the seed's route); default: the first plugin.
    #[serde(default)]
    pub default_plugin: Option<String>,
    /// Reload a plugin when its `.wasm` changes.
    #[serde(default = "yes")]
    pub hot_reload: bool,
    #[serde(default = "default_log")]
    pub log: String,
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
}

fn default_api_port() -> u16 {
    24859
}
fn default_log() -> String {
    "info".into()
}
fn default_api_bind() -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 1])
}
fn default_max_body() -> usize {
    64 * 1024
}
fn default_api_timeout() -> u64 {
    5_000
}
fn default_api_concurrency() -> usize {
    8
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            api_port: default_api_port(),
            api_bind: default_api_bind(),
            api_token: None,
            api_max_body: default_max_body(),
            api_timeout_ms: default_api_timeout(),
            api_concurrency: default_api_concurrency(),
            default_plugin: None,
            hot_reload: true,
            log: default_log(),
            cache_dir: None,
        }
    }
}

/// `[loopback]`: the embedded loopback Telegram.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopbackConfig {
    #[serde(default = "default_user")]
    pub user_id: i64,
    /// Address of the HTTP control endpoint; none if absent.
    #[serde(default)]
    pub control: Option<SocketAddr>,
    #[serde(default)]
    pub record_dir: Option<PathBuf>,
    /// Simulated chats; when empty, any chat id has an active call.
    #[serde(default)]
    pub chats: Vec<Chat>,
}

fn default_user() -> i64 {
    crate::telegram::loopback::DEFAULT_USER_ID
}

impl Default for LoopbackConfig {
    fn default() -> Self {
        LoopbackConfig { user_id: default_user(), control: None, record_dir: None, chats: Vec::new() }
    }
}

/// `[telegram]`: a user account over MTProto.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    /// The application's id from <https://my.telegram.org>.
    pub api_id: i32,
    /// The application's hash from the same page.
    pub api_hash: String,
    /// The SQLite session `wasmcalls login` writes (mode 0600).
    #[serde(default = "default_session")]
    pub session: PathBuf,
    /// Local address our media sockets bind (and offer as their ICE candidate);
    /// default: this machine's address on its default route. Behind NAT nothing is
    /// needed: Telegram's ICE-lite servers learn the public address from our checks.
    #[serde(default)]
    pub media_ip: Option<std::net::IpAddr>,
    /// Seconds between `phone.checkGroupCall` keep-alives per call.
    #[serde(default = "default_check_interval")]
    pub check_interval_s: u64,
    /// Longest `FLOOD_WAIT` waited out before a request fails instead, in seconds.
    #[serde(default = "default_flood_wait")]
    pub max_flood_wait_s: u64,
    /// Invite hashes (from `t.me/…?voicechat=<hash>` links) to join with, by chat id.
    #[serde(default)]
    pub invite_hashes: std::collections::BTreeMap<String, String>,
}

impl TelegramConfig {
    /// `invite_hashes` keyed by chat id.
    pub fn invite_hashes(&self) -> Result<std::collections::HashMap<i64, String>, String> {
        self.invite_hashes
            .iter()
            .map(|(k, v)| match k.parse::<i64>() {
                Ok(chat) => Ok((chat, v.clone())),
                Err(_) => Err(format!("telegram.invite_hashes: {k:?} is not a chat id (e.g. \"-1001185324811\")")),
            })
            .collect()
    }
}

fn default_session() -> PathBuf {
    "wasmcalls.session".into()
}
fn default_check_interval() -> u64 {
    5
}
fn default_flood_wait() -> u64 {
    120
}

/// `[[plugins]]`: one bot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique; used in logs and the custom API route.
    pub name: String,
    /// The component to load.
    pub wasm: PathBuf,
    /// A cargo project (crate or workspace) built with
    /// `cargo build --release --target wasm32-wasip2` before loading.
    #[serde(default)]
    pub build: Option<PathBuf>,
    /// For other languages: a shell command that builds `wasm`, run in `build` (or the
    /// config's folder) instead of cargo, e.g. `componentize-py … -o bot.wasm`.
    #[serde(default)]
    pub build_command: Option<String>,
    /// Whether `POST /api/<name>` reaches this plugin.
    #[serde(default = "yes")]
    pub api: bool,
    /// Passed to the plugin as JSON (`settings` import).
    #[serde(default = "empty_table")]
    pub settings: toml::Table,
    /// Chats and folders the plugin may use; none unless granted.
    #[serde(default)]
    pub grants: crate::runtime::grants::GrantsConfig,
    /// CPU, memory, queue and log limits (defaults: 1000 ms/event, 64 MiB, 1024, 50 lines/s).
    #[serde(default)]
    pub limits: crate::runtime::limits::Limits,
}

fn yes() -> bool {
    true
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse(&text, &base).map_err(|message| ConfigError::Invalid { path: path.into(), message })
    }

    /// Parses TOML text; `base` resolves relative paths.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let mut c: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
        c.base = base.to_path_buf();
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<(), String> {
        let h = &self.host;
        if !h.api_bind.is_loopback() && h.api_token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "host.api_bind = {} exposes the API beyond this machine: set host.api_token too \
                 (clients then send `Authorization: Bearer <token>`)",
                h.api_bind
            ));
        }
        if let Some(d) = &h.default_plugin
            && !self.plugins.iter().any(|p| &p.name == d)
        {
            return Err(format!("host.default_plugin = {d:?} names no plugin in this file"));
        }
        if h.api_concurrency == 0 || h.api_timeout_ms == 0 || h.api_max_body == 0 {
            return Err("host.api_concurrency, api_timeout_ms and api_max_body must be above 0".into());
        }
        if let Some(t) = &self.telegram {
            if t.api_id <= 0 || t.api_hash.len() != 32 || !t.api_hash.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err("telegram: api_id must be a positive number and api_hash 32 hex digits, \
                     both from https://my.telegram.org → API development tools"
                    .into());
            }
            if t.check_interval_s == 0 {
                return Err("telegram.check_interval_s must be above 0".into());
            }
            t.invite_hashes()?;
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.plugins {
            let ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(format!(
                    "plugins: name {:?} must be 1–64 letters, digits, '-' or '_' (it is used in URLs and logs)",
                    p.name
                ));
            }
            p.limits.validate().map_err(|e| format!("plugins.{}: {e}", p.name))?;
            if !seen.insert(&p.name) {
                return Err(format!("plugins: two plugins are named {:?}; names must be unique", p.name));
            }
        }
        Ok(())
    }

    /// Resolves a path from the file against its folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    /// The compile cache folder (default `.wasmcalls/cache` beside the file).
    pub fn cache_dir(&self) -> PathBuf {
        self.resolve(self.host.cache_dir.as_deref().unwrap_or(Path::new(".wasmcalls/cache")))
    }
}

/// A plugin's settings as the JSON object the plugin reads.
pub fn settings_json(t: &toml::Table) -> serde_json::Value {
    serde_json::to_value(t).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        let c = Config::parse("", Path::new("/etc/wasmcalls")).unwrap();
        assert_eq!(c.host.api_port, 24859);
        assert!(c.plugins.is_empty());
        assert_eq!(c.cache_dir(), Path::new("/etc/wasmcalls/.wasmcalls/cache"));
    }

    #[test]
    fn unknown_keys_name_the_key_and_line() {
        let err = Config::parse("[host]\napi_port = 1\nlisten = 3\n", Path::new(".")).unwrap_err();
        assert!(err.contains("line 3") && err.contains("listen"), "{err}");
        let err =
            Config::parse("[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\npath = \"x\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("line 4") && err.contains("path"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let err = Config::parse("[host]\napi_port = 70000\n", Path::new(".")).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[loopback]\ncontrol = \"not an address\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
        let err = Config::parse("[[plugins]]\nname = \"a\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("wasm"), "{err}");
    }

    #[test]
    fn a_public_api_needs_a_token() {
        let err = Config::parse("[host]\napi_bind = \"0.0.0.0\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("api_token"), "{err}");
        Config::parse("[host]\napi_bind = \"0.0.0.0\"\napi_token = \"s3cret\"\n", Path::new(".")).unwrap();
        let err = Config::parse("[host]\ndefault_plugin = \"x\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("names no plugin"), "{err}");
    }

    #[test]
    fn telegram_section_is_checked() {
        let c = Config::parse(
            "[telegram]\napi_id = 12345\napi_hash = \"0123456789abcdef0123456789abcdef\"\nsession = \"me.session\"\n",
            Path::new("/srv/bot"),
        )
        .unwrap();
        let t = c.telegram.as_ref().unwrap();
        assert_eq!((t.api_id, t.check_interval_s, t.max_flood_wait_s), (12345, 5, 120));
        assert_eq!(c.resolve(&t.session), Path::new("/srv/bot/me.session"));
        let hashes =
            "[telegram]\napi_id = 1\napi_hash = \"0123456789abcdef0123456789abcdef\"\n[telegram.invite_hashes]\n";
        let c = Config::parse(&format!("{hashes}\"-100123\" = \"abc\"\n"), Path::new(".")).unwrap();
        assert_eq!(c.telegram.unwrap().invite_hashes().unwrap()[&-100123], "abc");
        let err = Config::parse(&format!("{hashes}demo = \"abc\"\n"), Path::new(".")).unwrap_err();
        assert!(err.contains("not a chat id"), "{err}");
        let err = Config::parse("[telegram]\napi_id = 1\napi_hash = \"nope\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("my.telegram.org"), "{err}");
        let err =
            Config::parse("[telegram]\napi_hash = \"0123456789abcdef0123456789abcdef\"\n", Path::new(".")).unwrap_err();
        assert!(err.contains("api_id"), "{err}");
    }

    #[test]
    fn plugin_names_are_checked() {
        let two = "[[plugins]]\nname = \"a\"\nwasm = \"a.wasm\"\n[[plugins]]\nname = \"a\"\nwasm = \"b.wasm\"\n";
        assert!(Config::parse(two, Path::new(".")).unwrap_err().contains("unique"));
        let bad = "[[plugins]]\nname = \"a/b\"\nwasm = \"a.wasm\"\n";
        assert!(Config::parse(bad, Path::new(".")).unwrap_err().contains("letters"));
    }

    #[test]
    fn settings_become_json_and_paths_resolve() {
        let c = Config::parse(
            "[[plugins]]\nname = \"j\"\nwasm = \"p/j.wasm\"\nsettings = { chat = -100, playlist = [\"a.raw\"] }\n",
            Path::new("/srv/bot"),
        )
        .unwrap();
        let p = &c.plugins[0];
        assert_eq!(c.resolve(&p.wasm), Path::new("/srv/bot/p/j.wasm"));
        assert_eq!(settings_json(&p.settings), serde_json::json!({ "chat": -100, "playlist": ["a.raw"] }));
    }
}
