//! The developer loop behind `wasmcalls dev`: each plugin's *source* — its build
//! folder — is watched and rebuilt on save. A good build rewrites the `.wasm`, which
//! the reload watcher ([`super::watch`]) then swaps in; a failed build prints the
//! compiler's errors plainly and the running version keeps serving.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use tokio::sync::mpsc;

use super::build::{Build, build};
use super::watch::{WatchHandle, changes};

/// Saves within this long of each other make one rebuild.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Outcome of one rebuild, for callers (and tests) that want to follow along.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub plugin: String,
    pub result: Result<(), String>,
}

/// A plugin to rebuild on save.
#[derive(Debug, Clone)]
pub struct Source {
    pub plugin: String,
    pub build: Build,
    /// What the build writes (ignored as a change, so a build never retriggers itself).
    pub wasm: PathBuf,
}

/// Folders whose changes are a toolchain's own, never a source edit.
const NOT_SOURCES: [&str; 3] = ["target", "node_modules", "__pycache__"];

/// A change under `root` worth a rebuild: not a build output, editor swap file,
/// hidden file or folder (the compile cache, `.git`), or a toolchain's folder. Only
/// the part below `root` is judged: a project may itself live in a hidden folder.
fn is_source(root: &Path, path: &Path, outputs: &[PathBuf]) -> bool {
    let Ok(inside) = path.strip_prefix(root) else { return false };
    let swap = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with('~'));
    let skipped = inside.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        (c.starts_with('.') && c != "." && c != "..") || NOT_SOURCES.contains(&c.as_ref())
    });
    !swap && !skipped && !outputs.iter().any(|o| o == path)
}

/// Watches every source folder and rebuilds the plugins whose folder changed. Paths
/// must be canonical (the options resolve them so): they are compared with what the
/// file system reports.
pub fn watch_sources(
    sources: Vec<Source>,
    report: mpsc::UnboundedSender<Rebuilt>,
) -> notify::Result<Option<WatchHandle>> {
    if sources.is_empty() {
        return Ok(None);
    }
    let outputs: Vec<PathBuf> = sources.iter().map(|s| s.wasm.clone()).collect();
    let dirs: Vec<PathBuf> = sources.iter().map(|s| s.build.dir.clone()).collect();
    let (watcher, mut rx) = changes(&dirs, RecursiveMode::Recursive)?;
    let task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut changed = vec![first];
            while let Ok(Some(p)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                changed.push(p);
            }
            for s in &sources {
                if !changed.iter().any(|p| is_source(&s.build.dir, p, &outputs)) {
                    continue;
                }
                eprintln!("wasmcalls dev: {} changed, rebuilding {}", s.build.dir.display(), s.plugin);
                let result = build(&s.plugin, &s.build).await.map_err(|e| e.to_string());
                match &result {
                    Ok(()) => eprintln!("wasmcalls dev: built {}; it reloads as soon as its .wasm settles", s.plugin),
                    Err(e) => {
                        eprintln!(
                            "wasmcalls dev: {e}\nwasmcalls dev: the running version of {} keeps serving",
                            s.plugin
                        )
                    }
                }
                let _ = report.send(Rebuilt { plugin: s.plugin.clone(), result });
            }
        }
    });
    Ok(Some(WatchHandle::new(watcher, task)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_source_edits_trigger_a_rebuild() {
        let out = vec![PathBuf::from("/p/bot.wasm")];
        let root = Path::new("/p");
        assert!(is_source(root, Path::new("/p/app.py"), &out));
        assert!(is_source(root, Path::new("/p/src/lib.rs"), &out));
        let hidden_home = Path::new("/tmp/.tmpAbc/p");
        assert!(is_source(hidden_home, Path::new("/tmp/.tmpAbc/p/app.py"), &out), "judged below the root only");
        assert!(!is_source(root, Path::new("/q/app.py"), &out), "another plugin's folder");
        for not in [
            "/p/bot.wasm",
            "/p/.wasmcalls/cache/x.cwasm",
            "/p/node_modules/a/b.js",
            "/p/target/release/x",
            "/p/__pycache__/app.pyc",
            "/p/.app.py.swp",
            "/p/app.py~",
        ] {
            assert!(!is_source(root, Path::new(not), &out), "{not}");
        }
    }
}
