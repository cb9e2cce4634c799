//! Event dispatch into a plugin, instantiation, and load times.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

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
    use crate::runtime::{PluginHost, PluginSpec};
    super::require_plugin(&a.wasm)?;
    let mut config = crate::config::Config::default();
    config.host.api_port = 0;
    let app = crate::app::App::start(&config).await?;
    let cache = tempfile::tempdir()?;
    let spec = || PluginSpec {
        name: "bench".into(),
        wasm: a.wasm.clone(),
        settings: serde_json::Value::Null,
        limits: Default::default(),
        grants: crate::runtime::grants::Grants::all_chats(Path::new(".")),
    };
    let size = std::fs::metadata(&a.wasm)?.len();
    let cold = PluginHost::new(app.manager.clone(), Some(cache.path().into()), Default::default())
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let compiled = cold.load(spec()).await?;
    let warm = PluginHost::new(app.manager.clone(), Some(cache.path().into()), Default::default())
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let cached = warm.load(spec()).await?;
    warm.bench("bench", 1000).await?; // warm-up
    let report = warm.bench("bench", a.rounds).await?;
    let mut queued = Vec::with_capacity(a.rounds.min(5000));
    for _ in 0..a.rounds.min(5000) {
        let call = crate::runtime::ApiCall { path: "/api".into(), body: r#"{"cmd":"port"}"#.into() };
        let t = Instant::now();
        warm.custom_api("bench", call).await?;
        queued.push(t.elapsed());
    }
    let (q50, q99, qmax) = percentiles(queued);
    let (d50, d99, dmax) = percentiles(report.dispatch);
    let (i50, i99, imax) = percentiles(report.instantiate);
    println!("wasmcalls plugin bench: {} ({} KiB), {} dispatches", a.wasm.display(), size / 1024, a.rounds);
    println!(
        "  load: compile {:.1} ms; from the compile cache {:.2} ms",
        compiled.took.as_secs_f64() * 1e3,
        cached.took.as_secs_f64() * 1e3
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
