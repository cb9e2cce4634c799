//! What a plugin may touch. Least privilege by default: no chats, no files.
//!
//! `chats` gates every command naming a chat and which events the plugin receives;
//! `files` are folders the host will stream from for it (and that it may read itself,
//! preopened read-only). A path with `..`, an absolute path outside them, or a
//! symlink that leads out is refused — checked on the canonical path, after the
//! file system has resolved every link.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::calls::{CallError, HostEvent};
use crate::telegram::ChatId;

/// `[plugins.grants]` as written in the config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Chat ids, or the word "all".
    #[serde(default)]
    pub chats: ChatsConfig,
    /// Folders (relative to the config file) the plugin may stream from.
    #[serde(default)]
    pub files: Vec<PathBuf>,
}

/// A list of chat ids, or "all".
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ChatsConfig {
    List(Vec<ChatId>),
    Word(String),
}

impl Default for ChatsConfig {
    fn default() -> Self {
        ChatsConfig::List(Vec::new())
    }
}

/// Grants resolved against the file system, checked on every command.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// `None`: every chat.
    chats: Option<HashSet<ChatId>>,
    /// (as written, canonical host path).
    dirs: Vec<(String, PathBuf)>,
    /// Relative paths in commands are resolved against this folder.
    base: PathBuf,
}

impl Grants {
    /// Resolves `cfg` against `base` (the config file's folder).
    pub fn resolve(cfg: &GrantsConfig, base: &Path) -> Result<Grants, String> {
        let chats = match &cfg.chats {
            ChatsConfig::List(v) => Some(v.iter().copied().collect()),
            ChatsConfig::Word(w) if w == "all" => None,
            ChatsConfig::Word(w) => return Err(format!("grants.chats = {w:?}: write a list of chat ids or \"all\"")),
        };
        let mut dirs = Vec::new();
        for d in &cfg.files {
            let host = if d.is_absolute() { d.clone() } else { base.join(d) };
            let canonical =
                host.canonicalize().map_err(|e| format!("grants.files: {} cannot be used: {e}", host.display()))?;
            if !canonical.is_dir() {
                return Err(format!("grants.files: {} is not a folder", host.display()));
            }
            dirs.push((d.display().to_string(), canonical));
        }
        Ok(Grants { chats, dirs, base: base.to_path_buf() })
    }

    /// Every chat and no files: for benchmarks and tools, never a tenant's default.
    pub fn all_chats(base: &Path) -> Grants {
        Grants { chats: None, dirs: Vec::new(), base: base.to_path_buf() }
    }

    pub fn chat_allowed(&self, chat: ChatId) -> bool {
        self.chats.as_ref().is_none_or(|c| c.contains(&chat))
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

    /// Whether the plugin should receive `ev`: events about other chats are never delivered.
    pub fn sees(&self, ev: &HostEvent) -> bool {
        match ev {
            HostEvent::StreamEnd(c) | HostEvent::Kicked(c) => self.chat_allowed(*c),
            HostEvent::Invite(i) => self.chat_allowed(i.chat),
            HostEvent::RawUpdate { chat, .. } => match chat {
                Some(c) => self.chat_allowed(*c),
                // Updates about no chat in particular go to plugins with every chat.
                None => self.chats.is_none(),
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
        let cfg = GrantsConfig { chats: ChatsConfig::List(vec![-100]), files: vec!["media".into()] };
        let g = Grants::resolve(&cfg, dir.path()).unwrap();
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
        let bad = GrantsConfig { chats: ChatsConfig::Word("any".into()), files: vec![] };
        assert!(Grants::resolve(&bad, Path::new(".")).unwrap_err().contains("\"all\""));
    }
}
