//! `wasmcalls dev`: the developer loop. Besides everything `run` does (including
//! reloading a plugin when its `.wasm` changes), each plugin's *source* is watched —
//! its `build` folder — and rebuilt on save with its `build_command` or cargo. A good
//! build rewrites the `.wasm`, which the reload watcher then swaps in; a failed build
//! prints the compiler's errors plainly and the running version keeps serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use tokio::sync::mpsc;

use crate::config::{Config, PluginConfig};
use crate::runtime::watch::{WatchHandle, changes};

/// Saves within this long of each other make one rebuild.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Outcome of one rebuild, for callers (and tests) that want to follow along.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub plugin: String,
    pub result: Result<(), String>,
}

/// A change worth a rebuild: not a build output, editor swap file or hidden file.
fn is_source(path: &Path, outputs: &[PathBuf]) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') || n.ends_with('~'));
    !hidden && !path.components().any(|c| c.as_os_str() == "target") && !outputs.iter().any(|o| o == path)
}

/// Watches the source folder of every plugin that has a `build` or `build_command`.
pub fn watch_sources(config: &Config, report: mpsc::UnboundedSender<Rebuilt>) -> notify::Result<Option<WatchHandle>> {
    let plugins: Vec<(PluginConfig, PathBuf)> = config
        .plugins
        .iter()
        .filter(|p| p.build.is_some() || p.build_command.is_some())
        .map(|p| (p.clone(), p.build.as_ref().map_or_else(|| config.base.clone(), |d| config.resolve(d))))
        .collect();
    if plugins.is_empty() {
        return Ok(None);
    }
    let outputs: Vec<PathBuf> = config.plugins.iter().map(|p| config.resolve(&p.wasm)).collect();
    let dirs: Vec<PathBuf> = plugins.iter().map(|(_, d)| d.clone()).collect();
    let (watcher, mut rx) = changes(&dirs, RecursiveMode::Recursive)?;
    let config = config.clone();
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = vec![first];
            while let Ok(Some(p)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                changed.push(p);
            }
            let changed: Vec<PathBuf> = changed.into_iter().filter(|p| is_source(p, &outputs)).collect();
            for (plugin, dir) in &plugins {
                if !changed.iter().any(|p| p.starts_with(dir)) {
                    continue;
                }
                eprintln!("wasmcalls dev: {} changed, rebuilding {}", dir.display(), plugin.name);
                let result = crate::app::build(&config, plugin).await.map_err(|e| e.to_string());
                match &result {
                    Ok(()) => {
                        eprintln!("wasmcalls dev: built {}; it reloads as soon as its .wasm settles", plugin.name)
                    }
                    Err(e) => eprintln!(
                        "wasmcalls dev: {e}\nwasmcalls dev: the running version of {} keeps serving",
                        plugin.name
                    ),
                }
                let _ = report.send(Rebuilt { plugin: plugin.name.clone(), result });
            }
        }
    });
    Ok(Some(WatchHandle::new(watcher, task)))
}
