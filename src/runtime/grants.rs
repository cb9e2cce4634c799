//! What a plugin may touch. Least privilege by default: no chats, no files.
//!
//! `chats` gates every command naming a chat and which events the plugin receives;
//! `files` are folders the host will stream from for it (and that it may read itself,
//! preopened read-only). A path with `..`, an absolute path outside them, or a
//! symlink that leads out is refused — checked on the canonical path, after the
//! file system has resolved every link. `urls` are patterns of URLs it may play
//! (every redirect checked again), `sources` the operator's named source commands it
//! may run. `messages` lets it chat — send, edit, delete, answer button presses,
//! receive messages and presses, play a message's audio — in some of its chats.
//! `recordings` are folders it may record calls into: new files only, never over one
//! that exists, never outside them. `audio` lets it hear the audio of its chats' calls.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use crate::calls::{CallError, HostEvent};
use crate::media::source::fetch::UrlPolicy;
use crate::media::{PcmFormat, SourceSpec};
use crate::telegram::ChatId;

/// An operator's named source command a plugin may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedSource {
    /// The command, with `{url}`/`{arg}` to fill with what the plugin asks for.
    pub argv: Vec<String>,
    /// Its output is a live feed (a radio): calls playing it with the same argument
    /// share one run of it.
    pub live: bool,
}

/// The chats a plugin may command and hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatGrant {
    /// Every chat (and the updates about none in particular).
    All,
    Only(HashSet<ChatId>),
}

/// Where a plugin may chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessagesGrant {
    /// Nowhere (the default).
    Off,
    /// In every chat it is granted.
    InGrantedChats,
    /// In these chats (each also granted).
    Only(HashSet<ChatId>),
}

/// A granted folder that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantsError {
    #[error("{path} cannot be used: {reason}")]
    Unusable { path: PathBuf, reason: String },
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
}

/// Each folder as written (relative to `base`), checked to be a folder, with its
/// canonical path.
fn folders_of(folders: &[PathBuf], base: &Path) -> Result<Vec<(String, PathBuf)>, GrantsError> {
    let mut dirs = Vec::new();
    for d in folders {
        let host = base.join(d);
        let canonical =
            host.canonicalize().map_err(|e| GrantsError::Unusable { path: host.clone(), reason: e.to_string() })?;
        if !canonical.is_dir() {
            return Err(GrantsError::NotAFolder(host));
        }
        dirs.push((d.display().to_string(), canonical));
    }
    Ok(dirs)
}

/// Grants resolved against the file system, checked on every command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    chats: ChatGrant,
    /// (as written, canonical host path).
    dirs: Vec<(String, PathBuf)>,
    /// Relative paths in commands are resolved against this folder.
    base: PathBuf,
    urls: UrlPolicy,
    /// Named source commands it may run, by name.
    sources: BTreeMap<String, NamedSource>,
    messages: MessagesGrant,
    /// Folders it may record into: (as written, canonical host path).
    recordings: Vec<(String, PathBuf)>,
    /// It may hear its calls' audio (`audio.listen`).
    audio: bool,
    /// The accounts its joins may go through; empty: any.
    accounts: Vec<String>,
}

impl Default for Grants {
    /// Nothing: no chat, no folder, no URL, no source.
    fn default() -> Self {
        Grants {
            chats: ChatGrant::Only(HashSet::new()),
            dirs: Vec::new(),
            base: PathBuf::new(),
            urls: UrlPolicy::none(),
            sources: BTreeMap::new(),
            messages: MessagesGrant::Off,
            recordings: Vec::new(),
            audio: false,
            accounts: Vec::new(),
        }
    }
}

impl Grants {
    /// `chats`, and `folders` (as written, relative to `base`) checked to be folders
    /// and kept by their canonical path.
    pub fn new(chats: ChatGrant, folders: &[PathBuf], base: &Path) -> Result<Grants, GrantsError> {
        Ok(Grants { chats, dirs: folders_of(folders, base)?, base: base.to_path_buf(), ..Grants::default() })
    }

    /// Also recording into `folders` (as written, relative to `base`).
    pub fn with_recordings(mut self, folders: &[PathBuf], base: &Path) -> Result<Grants, GrantsError> {
        self.recordings = folders_of(folders, base)?;
        Ok(self)
    }

    /// The folders it may record into: (as written, canonical path).
    pub fn recording_folders(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.recordings.iter().map(|(w, d)| (w.as_str(), d.as_path()))
    }

    /// Where the plugin may record what it asked for: a new `file`, or an existing
    /// folder (`file` false), inside a folder granted by `grants.recordings`.
    pub fn check_recording(&self, plugin: &str, requested: &str, file: bool) -> Result<PathBuf, CallError> {
        let p = Path::new(requested);
        if p.components().any(|c| c == Component::ParentDir) || requested.is_empty() {
            return Err(CallError::PermissionDenied(format!("{requested:?}: recording paths may not contain '..'")));
        }
        let full = if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) };
        let (folder, name) = if file {
            let name =
                full.file_name().ok_or_else(|| CallError::InvalidArgument(format!("{requested:?} names no file")))?;
            (full.parent().unwrap_or(Path::new("/")).to_path_buf(), Some(name.to_owned()))
        } else {
            (full.clone(), None)
        };
        let denied = || {
            let granted: Vec<&str> = self.recordings.iter().map(|(w, _)| w.as_str()).collect();
            CallError::PermissionDenied(format!(
                "{requested:?} is outside the folders plugin {plugin} may record into ({}); the operator grants them with grants.recordings",
                if granted.is_empty() { "none".to_owned() } else { granted.join(", ") }
            ))
        };
        // The folder as the file system resolves it, links and all.
        let real = folder.canonicalize().map_err(|_| denied())?;
        if !self.recordings.iter().any(|(_, d)| real.starts_with(d)) {
            return Err(denied());
        }
        if !real.is_dir() {
            return Err(CallError::InvalidArgument(format!("{requested:?}: {} is not a folder", folder.display())));
        }
        let Some(name) = name else { return Ok(real) };
        let target = real.join(name);
        if target.symlink_metadata().is_ok() {
            return Err(CallError::InvalidArgument(format!(
                "{requested:?} exists; a recording never overwrites a file: name another"
            )));
        }
        Ok(target)
    }

    /// `path` (under a granted recording folder) as the plugin would name it.
    pub fn as_named(&self, path: &Path) -> String {
        for (written, real) in &self.recordings {
            if let Ok(rest) = path.strip_prefix(real) {
                return Path::new(written).join(rest).display().to_string();
            }
        }
        path.display().to_string()
    }

    /// Also the URLs matching `urls`, finite ones up to `max_bytes`.
    pub fn with_urls(mut self, urls: UrlPolicy) -> Grants {
        self.urls = urls;
        self
    }

    /// Counts what its URL sources fetch against `meter` (the plugin's quotas).
    pub fn meter(&mut self, meter: std::sync::Arc<crate::media::source::fetch::Meter>) {
        self.urls = self.urls.clone().metered(meter);
    }

    /// Never lets a URL reach these addresses, granted or not: the host's own API and
    /// control endpoint, known once they are bound.
    pub fn protect(&mut self, own: &[std::net::SocketAddr]) {
        self.urls = self.urls.clone().protecting(own);
    }

    /// Also these named source commands, by name.
    pub fn with_sources(mut self, sources: BTreeMap<String, NamedSource>) -> Grants {
        self.sources = sources;
        self
    }

    /// Also messages, where `messages` says.
    pub fn with_messages(mut self, messages: MessagesGrant) -> Grants {
        self.messages = messages;
        self
    }

    /// Also hearing the audio of calls in its chats (`grants.audio`).
    pub fn with_audio(mut self, audio: bool) -> Grants {
        self.audio = audio;
        self
    }

    /// Joins through only these accounts (`[[accounts]]` names; empty: any).
    pub fn with_accounts(mut self, accounts: Vec<String>) -> Grants {
        self.accounts = accounts;
        self
    }

    /// The accounts its joins may go through; empty: any.
    pub fn accounts(&self) -> &[String] {
        &self.accounts
    }

    /// Whether it may hear calls' audio.
    pub fn audio(&self) -> bool {
        self.audio
    }

    /// `Ok` if the plugin may hear calls' audio.
    pub fn check_audio(&self, plugin: &str) -> Result<(), CallError> {
        if self.audio {
            Ok(())
        } else {
            Err(CallError::PermissionDenied(format!(
                "plugin {plugin} may not hear calls' audio; the operator grants it with grants.audio = true"
            )))
        }
    }

    /// Where messages are granted.
    pub fn messages(&self) -> &MessagesGrant {
        &self.messages
    }

    /// Whether the plugin may chat in `chat` (and hear what is said there).
    pub fn messages_allowed(&self, chat: ChatId) -> bool {
        self.chat_allowed(chat)
            && match &self.messages {
                MessagesGrant::Off => false,
                MessagesGrant::InGrantedChats => true,
                MessagesGrant::Only(c) => c.contains(&chat),
            }
    }

    /// `Ok` if the plugin may chat in `chat`.
    pub fn check_messages(&self, plugin: &str, chat: ChatId) -> Result<(), CallError> {
        self.check_chat(plugin, chat)?;
        if self.messages_allowed(chat) {
            Ok(())
        } else {
            Err(CallError::PermissionDenied(format!(
                "plugin {plugin} may not chat in {chat}; the operator can set grants.messages = true (or list {chat})"
            )))
        }
    }

    /// The URL patterns granted.
    pub fn urls(&self) -> &UrlPolicy {
        &self.urls
    }

    /// The named sources granted.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// What a v0.1 command's `file-path` names, checked against the grants: a URL, a
    /// named source (`NAME:argument`), or a file in a granted folder. `sample_rate` is
    /// the seed's `bitrate`: it matters only if the file is headerless PCM.
    pub fn source(&self, plugin: &str, requested: &str, sample_rate: u32) -> Result<SourceSpec, CallError> {
        if requested.starts_with("http://") || requested.starts_with("https://") {
            return self.url_source(plugin, requested);
        }
        if let Some((name, arg)) = requested.split_once(':')
            && self.sources.contains_key(name)
        {
            return self.named_source(plugin, name, arg);
        }
        self.file_source(plugin, requested, PcmFormat::stated(sample_rate, 2))
    }

    /// A file in a granted folder; read as `raw` if it turns out to be headerless PCM.
    pub fn file_source(&self, plugin: &str, requested: &str, raw: PcmFormat) -> Result<SourceSpec, CallError> {
        let path = self.check_file(plugin, requested)?;
        Ok(SourceSpec::File { path, raw })
    }

    /// A URL matching the URL grants.
    pub fn url_source(&self, plugin: &str, url: &str) -> Result<SourceSpec, CallError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(CallError::InvalidArgument(format!("{url:?} is not an http:// or https:// URL")));
        }
        if !self.urls.allows(url) {
            return Err(CallError::PermissionDenied(format!(
                "{url} is not among the URLs granted to plugin {plugin}; the operator can add a pattern to its grants.urls"
            )));
        }
        Ok(SourceSpec::Url { url: url.to_owned(), policy: self.urls.clone() })
    }

    /// An operator's named source command, granted by name, with its argument.
    pub fn named_source(&self, plugin: &str, name: &str, arg: &str) -> Result<SourceSpec, CallError> {
        let source = self.sources.get(name).ok_or_else(|| {
            CallError::PermissionDenied(format!(
                "source {name:?} is not granted to plugin {plugin}; the operator can add it to its grants.sources"
            ))
        })?;
        let argv = source.argv.iter().map(|a| a.replace("{url}", arg).replace("{arg}", arg)).collect();
        Ok(SourceSpec::Command { name: name.to_owned(), argv, live: source.live })
    }

    /// The chats granted.
    pub fn chats(&self) -> &ChatGrant {
        &self.chats
    }

    /// The folders granted: (as written, canonical path).
    pub fn folders(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.dirs.iter().map(|(w, d)| (w.as_str(), d.as_path()))
    }

    /// Every chat and no files: for benchmarks and tools, never a tenant's default.
    pub fn all_chats(base: &Path) -> Grants {
        Grants { chats: ChatGrant::All, base: base.to_path_buf(), ..Grants::default() }
    }

    pub fn chat_allowed(&self, chat: ChatId) -> bool {
        match &self.chats {
            ChatGrant::All => true,
            ChatGrant::Only(c) => c.contains(&chat),
        }
    }

    /// `Ok` if the plugin may command `chat`.
    pub fn check_chat(&self, plugin: &str, chat: ChatId) -> Result<(), CallError> {
        if self.chat_allowed(chat) {
            Ok(())
        } else {
            Err(CallError::PermissionDenied(format!(
                "chat {chat} is not granted to plugin {plugin}; the operator can add it to its grants.chats"
            )))
        }
    }

    /// The canonical path of a file the plugin asked to stream, if it is inside a granted folder.
    pub fn check_file(&self, plugin: &str, requested: &str) -> Result<PathBuf, CallError> {
        let p = Path::new(requested);
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(CallError::PermissionDenied(format!("{requested:?}: paths may not contain '..'")));
        }
        let denied = || {
            let granted: Vec<&str> = self.dirs.iter().map(|(w, _)| w.as_str()).collect();
            CallError::PermissionDenied(format!(
                "{requested:?} is outside the folders granted to plugin {plugin} ({})",
                if granted.is_empty() { "none".to_owned() } else { granted.join(", ") }
            ))
        };
        let full = if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) };
        match full.canonicalize() {
            Ok(real) => self.dirs.iter().any(|(_, d)| real.starts_with(d)).then_some(real).ok_or_else(denied),
            // Missing: say so only if it would have been inside a granted folder.
            Err(e) => {
                let lexical_inside = self.dirs.iter().any(|(_, d)| full.starts_with(d))
                    || self.dirs.iter().any(|(w, _)| Path::new(requested).starts_with(w));
                if lexical_inside { Err(CallError::FileError(format!("{requested}: {e}"))) } else { Err(denied()) }
            }
        }
    }

    /// Folders to preopen read-only in the plugin's WASI context: (host, guest path).
    pub fn preopens(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.dirs.iter().map(|(w, d)| (d.as_path(), w.as_str()))
    }

    /// Whether the plugin should receive `ev`: events about other chats are never
    /// delivered, nor messages and button presses where it may not chat.
    pub fn sees(&self, ev: &HostEvent) -> bool {
        match ev {
            HostEvent::StreamEnd(c)
            | HostEvent::Kicked(c)
            | HostEvent::CallEnded(c)
            | HostEvent::ConnectionLost { chat: c, .. }
            | HostEvent::Participants { chat: c, .. }
            | HostEvent::RecordingEnded { chat: c, .. } => self.chat_allowed(*c),
            HostEvent::Invite(i) => self.chat_allowed(i.chat),
            HostEvent::Message(m) => self.messages_allowed(m.chat),
            HostEvent::Callback(q) => self.messages_allowed(q.chat),
            HostEvent::RawUpdate { chat, .. } => match chat {
                Some(c) => self.chat_allowed(*c),
                // Updates about no chat in particular go to plugins with every chat.
                None => self.chats == ChatGrant::All,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Grants) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("media")).unwrap();
        std::fs::write(dir.path().join("media/a.raw"), [0u8; 4]).unwrap();
        std::fs::write(dir.path().join("secret.raw"), [0u8; 4]).unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.raw"), dir.path().join("media/link.raw")).unwrap();
        let g = Grants::new(ChatGrant::Only([-100].into()), &["media".into()], dir.path()).unwrap();
        (dir, g)
    }

    #[test]
    fn files_inside_the_grant_resolve_to_their_real_path() {
        let (dir, g) = setup();
        let real = dir.path().join("media/a.raw").canonicalize().unwrap();
        assert_eq!(g.check_file("p", "media/a.raw").unwrap(), real);
        assert_eq!(g.check_file("p", real.to_str().unwrap()).unwrap(), real);
    }

    #[test]
    fn escapes_are_refused() {
        let (dir, g) = setup();
        for bad in ["../secret.raw", "media/../secret.raw", "secret.raw", "/etc/passwd", "media/link.raw"] {
            let e = g.check_file("p", bad).unwrap_err();
            assert!(matches!(e, CallError::PermissionDenied(_)), "{bad}: {e:?}");
        }
        let abs = dir.path().join("secret.raw");
        assert!(matches!(g.check_file("p", abs.to_str().unwrap()), Err(CallError::PermissionDenied(_))));
        // Missing inside the grant is a file error; missing outside is still denied.
        assert!(matches!(g.check_file("p", "media/nope.raw"), Err(CallError::FileError(_))));
        assert!(matches!(g.check_file("p", "/nope/nope.raw"), Err(CallError::PermissionDenied(_))));
    }

    #[test]
    fn chats_and_events_are_filtered() {
        let (_dir, g) = setup();
        assert!(g.check_chat("p", -100).is_ok());
        assert!(matches!(g.check_chat("p", -200), Err(CallError::PermissionDenied(m)) if m.contains("-200")));
        assert!(g.sees(&HostEvent::StreamEnd(-100)));
        assert!(!g.sees(&HostEvent::Kicked(-200)));
        let raw = |chat: Option<i64>| HostEvent::RawUpdate { json: "{}".into(), chat };
        assert!(g.sees(&raw(Some(-100))));
        assert!(!g.sees(&raw(Some(-200))));
        assert!(!g.sees(&raw(None)), "chat-less updates need every chat");
        assert!(Grants::all_chats(Path::new(".")).sees(&raw(None)));
        let e = Grants::new(ChatGrant::All, &["nope".into()], Path::new("/")).unwrap_err();
        assert!(matches!(e, GrantsError::Unusable { .. }), "{e}");
    }
}
