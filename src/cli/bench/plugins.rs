//! Event dispatch into a plugin, instantiation, and load times — through the runtime's
//! public API: a plugin compiled once, instances made from it, events handed to them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use wasmcalls::calls::HostEvent;
use wasmcalls::runtime::grants::Grants;
use wasmcalls::runtime::{ApiCall, CacheOptions, PluginHost, PluginSpec};

use super::percentiles;

#[derive(Args)]
pub struct PluginArgs {
    /// Dispatches to time (instantiations: at most 1000)
    #[arg(long, default_value_t = 20000)]
    rounds: usize,
    /// The plugin: it must answer on-raw-update("ping") by calling get-port-server
    #[arg(long, default_value = super::TESTBOT)]
    wasm: PathBuf,
}

pub async fn run(a: PluginArgs) -> Result<()> {
    super::require_plugin(&a.wasm)?;
    let app = super::host("[host]\napi_port = 0\n", Path::new(".")).await?;
    let cache = tempfile::tempdir()?;
    let spec = PluginSpec {
        name: "bench".into(),
        wasm: a.wasm.clone(),
        settings: serde_json::Value::Null,
        limits: Default::default(),
        grants: Grants::all_chats(Path::new(".")),
    };
    let size = std::fs::metadata(&a.wasm)?.len();
    let cache_options = || CacheOptions { dir: Some(cache.path().into()), ..Default::default() };

    // Loading: a compile into an empty cache, then a load from it by another host.
    let cold = PluginHost::new(app.manager.clone(), cache_options(), Default::default())?;
    let t = Instant::now();
    cold.compile("bench", &a.wasm).await?;
    let compiled_in = t.elapsed();
    let warm = PluginHost::new(app.manager.clone(), cache_options(), Default::default())?;
    let t = Instant::now();
    let compiled = warm.compile("bench", &a.wasm).await?;
    let cached_in = t.elapsed();

    // Instantiation from the pre-linked component, each in a fresh store.
    let mut instantiate = Vec::new();
    for _ in 0..a.rounds.min(1000) {
        let t = Instant::now();
        let instance = warm.instantiate(&spec, &compiled).await?;
        instantiate.push(t.elapsed());
        drop(instance);
    }

    // Dispatch: one short event whose handler issues one command, on one instance.
    let mut instance = warm.instantiate(&spec, &compiled).await?;
    let ping = HostEvent::RawUpdate { json: "ping".into(), chat: None };
    for _ in 0..1000 {
        instance.handle(&ping).await?; // warm-up
    }
    let mut dispatch = Vec::with_capacity(a.rounds);
    for _ in 0..a.rounds {
        let t = Instant::now();
        instance.handle(&ping).await?;
        dispatch.push(t.elapsed());
    }

    // The same as real events travel: through a loaded plugin's queue and actor.
    warm.load(spec.clone()).await?;
    let mut queued = Vec::with_capacity(a.rounds.min(5000));
    for _ in 0..a.rounds.min(5000) {
        let call = ApiCall { path: "/api".into(), body: r#"{"cmd":"port"}"#.into() };
        let t = Instant::now();
        warm.custom_api("bench", call).await?;
        queued.push(t.elapsed());
    }

    let (q50, q99, qmax) = percentiles(queued);
    let (d50, d99, dmax) = percentiles(dispatch);
    let (i50, i99, imax) = percentiles(instantiate);
    println!("wasmcalls plugin bench: {} ({} KiB), {} dispatches", a.wasm.display(), size / 1024, a.rounds);
    println!(
        "  load: compile {:.1} ms; from the compile cache {:.2} ms",
        compiled_in.as_secs_f64() * 1e3,
        cached_in.as_secs_f64() * 1e3
    );
    println!("  instantiate from InstancePre: p50 {i50:.1} µs, p99 {i99:.1} µs, max {imax:.1} µs");
    println!(
        "  dispatch on-raw-update(\"ping\") → get-port-server → back: p50 {d50:.2} µs, p99 {d99:.2} µs, max {dmax:.1} µs"
    );
    println!(
        "  through the plugin's event queue (custom API round trip, JSON in and out): p50 {q50:.1} µs, p99 {q99:.1} µs, max {qmax:.1} µs"
    );
    app.shutdown().await;
    Ok(())
}
