//! One wasmtime `Engine` for every plugin, and a compile cache on disk: compiled
//! code is keyed by the component's SHA-256 and a SHA-256 of the engine's
//! compatibility hash (wasmtime version and settings; stable across Rust releases,
//! unlike `DefaultHasher`), so a restart (or a second host with the same settings)
//! loads in ~1 ms instead of recompiling. The cache is bounded: past its size, the
//! least recently used entries go — `wasmcalls dev` writes a new one per build.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;

/// How many plugins, and how much memory each, the engine's instance pool holds, and
/// which compiler turns their WebAssembly into machine code.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub plugins: usize,
    /// The largest `memory_mb` any plugin may have.
    pub memory_mb: u32,
    pub compiler: Compiler,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { plugins: 16, memory_mb: 64, compiler: Compiler::default() }
    }
}

/// The code generator. Cranelift optimises (production); Winch, a baseline compiler,
/// compiles several times faster for code that runs ~1.5× slower (`wasmcalls dev`:
/// measured here, an 18 MB Python component in 2.9 s rather than 13 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    #[default]
    Cranelift,
    Winch,
}

/// Each plugin may need two instances at once (the live one and a fresh one while
/// replacing it), plus a little slack.
fn slots(c: Capacity) -> u32 {
    (c.plugins as u32) * 2 + 2
}

/// Builds the engine plugins share, and starts its epoch ticker: every
/// [`super::limits::TICK`] each running plugin checks its CPU budget.
///
/// Instances come from a pooling allocator sized by `capacity`: instantiation (and
/// restart after a trap) reuses pre-reserved slots instead of mapping memory, and the
/// address space reserved is slots × memories × the memory cap — not 4 GiB each.
pub fn engine(capacity: Capacity) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.strategy(match capacity.compiler {
        Compiler::Cranelift => wasmtime::Strategy::Cranelift,
        Compiler::Winch => wasmtime::Strategy::Winch,
    });
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Only what bot toolchains emit (Rust, componentize-py, jco target the MVP plus
    // bulk memory, reference types, multi-value, SIMD): every proposal left on is
    // attack surface a tenant's code could reach.
    config
        .wasm_threads(false)
        .wasm_shared_everything_threads(false)
        .wasm_gc(false)
        .wasm_function_references(false)
        .wasm_exceptions(false)
        .wasm_stack_switching(false)
        .wasm_memory64(false)
        .wasm_custom_page_sizes(false)
        .wasm_wide_arithmetic(false)
        .wasm_component_model_async(false);
    let memory = (capacity.memory_mb as u64) << 20;
    let n = slots(capacity);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .max_core_instances_per_component(32)
        .total_core_instances(n * 32)
        .max_memories_per_component(2)
        .total_memories(n * 2)
        .max_tables_per_component(8)
        .total_tables(n * 8)
        .total_stacks(n)
        .max_memory_size(memory as usize);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Reserve exactly the cap per memory (the default is 4 GiB plus guards); bounds
    // checks past the small guard are explicit.
    config.memory_reservation(memory).memory_guard_size(64 << 10);
    let engine = Engine::new(&config)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wasmcalls-epoch".into())
        .spawn(move || {
            // Ends with the engine: the ticker holds only a weak reference.
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(super::limits::TICK);
            }
        })
        .map_err(wasmtime::Error::from)?;
    Ok(engine)
}

/// Makes the component's linear-memory images now, on the compiling thread, rather
/// than in its first instantiation on the event path (a Python component's is tens
/// of MiB written to a memfd).
///
/// Linux seals each image read-only, and the kernel refuses the seal with EBUSY while
/// anything else still holds a reference to one of its fresh pages (a per-CPU page
/// batch, compaction). That is transient, seen under load in CI, and the image is
/// not kept when making it fails, so it is made again after a short wait.
pub fn prepare_images(name: &str, path: &Path, component: &Component) -> Result<(), PluginError> {
    // 20, 40, 80 and 160 ms between five attempts.
    let (mut attempt, mut wait) = (1, std::time::Duration::from_millis(20));
    loop {
        let Err(e) = component.initialize_copy_on_write_image() else { return Ok(()) };
        let busy = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ResourceBusy)
        });
        if !busy || attempt == 5 {
            return Err(PluginError::Instantiate {
                name: name.to_owned(),
                reason: format!("could not map {} into memory: {e:#}", path.display()),
            });
        }
        tracing::debug!(plugin = name, attempt, "the kernel refused to seal a memory image for now: {e:#}");
        std::thread::sleep(wait);
        (attempt, wait) = (attempt + 1, wait * 2);
    }
}

/// Where compiled components are kept, and how much of them.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// `None` disables caching.
    pub dir: Option<PathBuf>,
    /// Largest total size of the entries, in bytes.
    pub max_bytes: u64,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions { dir: None, max_bytes: 512 << 20 }
    }
}

/// Compiled components on disk.
#[derive(Clone, Debug)]
pub struct CompileCache {
    options: CacheOptions,
}

/// Feeds a `Hash` implementation into SHA-256, so the key does not depend on the
/// standard library's hasher (which may change between Rust releases).
struct Sha(Sha256);

impl std::hash::Hasher for Sha {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        0 // unused: the digest is read from the inner hasher
    }
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    Compiled,
    FromCache,
}

/// The hex SHA-256 of a component's bytes: what names it.
fn digest(wasm: &[u8]) -> String {
    format!("{:x}", Sha256::digest(wasm))
}

impl CompileCache {
    /// A cache as `options` say (its folder is created when first written).
    pub fn new(options: CacheOptions) -> Self {
        CompileCache { options }
    }

    /// The entry of the component whose bytes hash to `digest` (hex SHA-256).
    fn key(engine: &Engine, digest: &str) -> String {
        use std::hash::Hash;
        let mut compat = Sha(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut compat);
        let compat = compat.0.finalize();
        format!("{digest}-{compat:x}")[..64 + 1 + 16].to_owned()
    }

    /// Compiles `wasm` (the bytes of `path`) or loads its compiled form from the cache;
    /// also the hex SHA-256 of `wasm`, which names it (hashed once, here, off the
    /// event path: a Python component is tens of MiB).
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        path: &Path,
        wasm: &[u8],
    ) -> Result<(Component, Loaded, String), PluginError> {
        let digest = digest(wasm);
        let cached = self.options.dir.as_ref().map(|d| d.join(format!("{}.cwasm", Self::key(engine, &digest))));
        // Read into memory rather than `deserialize_file`: a mapped file truncated
        // under the host (another process, a cleanup job) would crash it with SIGBUS.
        if let Some(file) = &cached
            && let Ok(bytes) = std::fs::read(file)
        {
            // SAFETY: the bytes come from `Component::serialize` of this same engine
            // configuration (the key includes its compatibility hash) in the host's
            // own cache directory, which must not be writable by others; wasmtime
            // still checks the header and rejects anything else.
            match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(c) => {
                    // Recently used: the last to be evicted.
                    let _ = std::fs::File::options()
                        .write(true)
                        .open(file)
                        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                    return Ok((c, Loaded::FromCache, digest));
                }
                Err(e) => tracing::warn!(plugin = name, "ignoring unusable cache entry {}: {e}", file.display()),
            }
        }
        let component = Component::new(engine, wasm).map_err(|e| PluginError::not_a_component(name, path, wasm, e))?;
        if let Some(file) = cached {
            let write = || -> std::io::Result<()> {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let bytes = component.serialize().map_err(std::io::Error::other)?;
                // Write then rename, so a crash never leaves a torn entry.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &file)
            };
            match write() {
                Ok(()) => self.evict(&file),
                Err(e) => tracing::warn!(plugin = name, "could not write the compile cache: {e}"),
            }
        }
        Ok((component, Loaded::Compiled, digest))
    }

    /// Removes the least recently used entries until the cache fits its size; never `keep`.
    fn evict(&self, keep: &Path) {
        let Some(dir) = &self.options.dir else { return };
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.options.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::debug!("compile cache: evicted {}", path.display());
                total -= len;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_to_its_size_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        for (i, age) in [30u64, 20, 10].iter().enumerate() {
            let p = dir.path().join(format!("{i}.cwasm"));
            std::fs::write(&p, vec![0u8; 1000]).unwrap();
            std::fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(now - std::time::Duration::from_secs(*age))
                .unwrap();
        }
        let keep = dir.path().join("0.cwasm");
        let cache = CompileCache::new(CacheOptions { dir: Some(dir.path().into()), max_bytes: 2000 });
        cache.evict(&keep);
        assert!(keep.exists(), "the entry just written stays, old as it is");
        assert!(!dir.path().join("1.cwasm").exists(), "the least recently used other entry went");
        assert!(dir.path().join("2.cwasm").exists());
    }

    #[test]
    fn the_key_is_the_component_and_the_engine() {
        let engine = Engine::default();
        let a = CompileCache::key(&engine, &digest(b"one"));
        assert_eq!(a, CompileCache::key(&engine, &digest(b"one")), "stable");
        assert_ne!(a, CompileCache::key(&engine, &digest(b"two")));
        assert_eq!(a.len(), 81);
    }
}
