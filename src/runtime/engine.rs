//! One wasmtime `Engine` for every plugin, and a compile cache on disk: compiled
//! code is keyed by the component's SHA-256 and the engine's compatibility hash, so
//! a restart (or a second host with the same settings) loads in ~1 ms instead of
//! recompiling.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::PluginError;

/// How many plugins, and how much memory each, the engine's instance pool holds.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    pub plugins: usize,
    /// The largest `memory_mb` any plugin may have.
    pub memory_mb: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity { plugins: 16, memory_mb: 64 }
    }
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

/// Compiled components on disk.
#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    Compiled,
    FromCache,
}

impl CompileCache {
    /// A cache in `dir` (created if missing); `None` disables caching.
    pub fn new(dir: Option<PathBuf>) -> Self {
        CompileCache { dir }
    }

    fn key(engine: &Engine, wasm: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(wasm);
        use std::hash::{Hash, Hasher};
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut compat);
        format!("{:x}-{:016x}", h.finalize(), compat.finish())
    }

    /// Compiles `wasm` (the bytes of `path`) or loads its compiled form from the cache.
    pub fn load(
        &self,
        engine: &Engine,
        name: &str,
        path: &Path,
        wasm: &[u8],
    ) -> Result<(Component, Loaded), PluginError> {
        let cached = self.dir.as_ref().map(|d| d.join(format!("{}.cwasm", Self::key(engine, wasm))));
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
                Ok(c) => return Ok((c, Loaded::FromCache)),
                Err(e) => tracing::warn!(plugin = name, "ignoring unusable cache entry {}: {e}", file.display()),
            }
        }
        let component = Component::new(engine, wasm).map_err(|e| PluginError::not_a_component(name, path, wasm, e))?;
        if let Some(file) = cached {
            let write = || -> std::io::Result<()> {
                std::fs::create_dir_all(file.parent().expect("cache file has a parent"))?;
                let bytes = component.serialize().map_err(std::io::Error::other)?;
                // Write then rename, so a crash never leaves a torn entry.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &file)
            };
            if let Err(e) = write() {
                tracing::warn!(plugin = name, "could not write the compile cache: {e}");
            }
        }
        Ok((component, Loaded::Compiled))
    }
}
