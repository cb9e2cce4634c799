//! Hot reload: each plugin's `.wasm` is watched (its folder, so an atomic rename is
//! seen as well as an in-place write). A change is tried once the file has been quiet
//! for [`QUIET`] and only if its hash changed. A file that does not parse yet is
//! taken for a write in progress: the watcher waits up to [`SETTLE`] for more changes
//! before reporting it broken. So a file written slowly, or replaced by rename,
//! reloads exactly once, and an atomic replace is serving within milliseconds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{PluginError, PluginHost};

/// How long a file must stay unchanged before it is tried.
pub const QUIET: Duration = Duration::from_millis(25);
/// How long a file that does not parse may stay that way before it is reported.
pub const SETTLE: Duration = Duration::from_millis(500);

/// Keeps a watch alive; dropping it stops watching.
pub struct WatchHandle {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl WatchHandle {
    pub(crate) fn new(watcher: notify::RecommendedWatcher, task: tokio::task::JoinHandle<()>) -> Self {
        WatchHandle { _watcher: watcher, task }
    }
}

/// Watches `dirs` and sends the path of every change that can alter a file's content;
/// reads (our own hashing, a build reading its sources) are not changes.
pub(crate) fn changes(
    dirs: &[PathBuf],
    mode: RecursiveMode,
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<PathBuf>)> {
    let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res
            && !matches!(ev.kind, notify::EventKind::Access(_))
        {
            for p in ev.paths {
                let _ = tx.send(p);
            }
        }
    })?;
    for d in dirs {
        watcher.watch(d, mode)?;
    }
    Ok((watcher, rx))
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hash(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path).ok().map(|b| Sha256::digest(&b).into())
}

/// Watches `targets` (plugin name, `.wasm` path) and reloads a plugin when its file changes.
pub fn watch(plugins: Arc<PluginHost>, targets: Vec<(String, PathBuf)>) -> notify::Result<WatchHandle> {
    let mut dirs: Vec<PathBuf> = targets.iter().filter_map(|(_, p)| p.parent().map(Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    let (watcher, mut rx) = changes(&dirs, RecursiveMode::NonRecursive)?;
    let mut known: HashMap<PathBuf, (String, Option<[u8; 32]>)> =
        targets.into_iter().map(|(name, p)| (p.clone(), (name, hash(&p)))).collect();
    let task = tokio::spawn(async move {
        let mut pending: Vec<PathBuf> = Vec::new();
        loop {
            // Wait for a change, then until nothing has changed for QUIET.
            let first = if pending.is_empty() { rx.recv().await } else { None };
            if let Some(p) = first {
                pending.push(p);
            }
            loop {
                match tokio::time::timeout(QUIET, rx.recv()).await {
                    Ok(Some(p)) => pending.push(p),
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            pending.sort();
            pending.dedup();
            for p in std::mem::take(&mut pending) {
                let Some((name, last)) = known.get_mut(&p) else { continue };
                let now = hash(&p);
                if now.is_none() || now == *last {
                    continue; // removed (a rename in progress) or unchanged
                }
                let result = plugins.reload_quietly(name, &p).await;
                let unfinished = matches!(result, Err(PluginError::NotAComponent { .. } | PluginError::Read { .. }));
                if unfinished {
                    // Probably still being written: give it SETTLE to change again.
                    match tokio::time::timeout(SETTLE, rx.recv()).await {
                        Ok(Some(more)) => {
                            pending.push(more);
                            pending.push(p);
                            continue;
                        }
                        Ok(None) => return,
                        Err(_) => {}
                    }
                }
                // Hash what was tried, so a broken version is not retried until it changes.
                *last = now;
                plugins.announce(name, &p, &result);
            }
        }
    });
    Ok(WatchHandle::new(watcher, task))
}
