//! Hot reload: file change → new version serving, cold and warm cache, and the swap.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;

use super::percentiles;

#[derive(Args)]
pub struct ReloadArgs {
    /// Reloads of each kind
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// The plugin to reload (the testbot hands its state over)
    #[arg(long, default_value = super::TESTBOT)]
    wasm: PathBuf,
}

type Timings = (Vec<Duration>, Vec<Duration>, Vec<Duration>);

/// Replaces `target` by rename with each version in turn (as editors and build tools
/// do) and times each until the new version serves: end to end, prepare, swap.
async fn timed_reloads(
    reloads: &mut tokio::sync::broadcast::Receiver<(
        String,
        Result<wasmcalls::runtime::SwapReport, wasmcalls::runtime::PluginError>,
    )>,
    dir: &Path,
    target: &Path,
    versions: Vec<Vec<u8>>,
) -> Result<Timings> {
    let (mut e2e, mut prepare, mut swap) = (Vec::new(), Vec::new(), Vec::new());
    for v in versions {
        let tmp = dir.join("bot.wasm.tmp");
        std::fs::write(&tmp, v)?;
        let t0 = Instant::now();
        std::fs::rename(&tmp, target)?;
        let (_, r) = tokio::time::timeout(Duration::from_secs(30), reloads.recv()).await??;
        let r = r.map_err(|e| anyhow::anyhow!("reload failed: {e}"))?;
        e2e.push(t0.elapsed());
        prepare.push(r.prepare);
        swap.push(r.swap);
    }
    Ok((e2e, prepare, swap))
}

/// The component with a custom section appended: a distinct version (new hash) that behaves the same.
pub(super) fn tagged(wasm: &[u8], tag: &str) -> Vec<u8> {
    let name = b"wasmcalls-bench-version";
    let payload = [&[name.len() as u8][..], name, tag.as_bytes()].concat();
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(payload.len() as u8);
    out.extend(payload);
    out
}

pub async fn run(a: ReloadArgs) -> Result<()> {
    super::require_plugin(&a.wasm)?;
    let original = std::fs::read(&a.wasm)?;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("bot.wasm");
    std::fs::write(&target, &original)?;
    let text = "[host]\napi_port = 0\ncache_dir = \"cache\"\n[[plugins]]\nname = \"bot\"\nwasm = \"bot.wasm\"\n";
    let app = super::host(text, dir.path()).await?;
    let mut reloads = app.plugins.reloads();
    let cold: Vec<Vec<u8>> = (0..a.rounds).map(|i| tagged(&original, &format!("cold-{i}"))).collect();
    let (c_e2e, c_prep, c_swap) = timed_reloads(&mut reloads, dir.path(), &target, cold).await?;
    // Two versions alternating: after the first pass both are in the compile cache.
    let (va, vb) = (tagged(&original, "warm-a"), tagged(&original, "warm-b"));
    timed_reloads(&mut reloads, dir.path(), &target, vec![va.clone(), vb.clone()]).await?;
    let warm: Vec<Vec<u8>> = (0..a.rounds).map(|i| if i % 2 == 0 { va.clone() } else { vb.clone() }).collect();
    let (w_e2e, w_prep, w_swap) = timed_reloads(&mut reloads, dir.path(), &target, warm).await?;
    let ms = |v: Vec<Duration>| {
        let (p50, _, max) = percentiles(v);
        format!("p50 {:.1} ms, max {:.1} ms", p50 / 1e3, max / 1e3)
    };
    let us = |v: Vec<Duration>| {
        let (p50, _, max) = percentiles(v);
        format!("p50 {p50:.0} µs, max {max:.0} µs")
    };
    println!(
        "wasmcalls reload bench: {} ({} KiB), {} reloads of each kind, state handed over each time",
        a.wasm.display(),
        original.len() / 1024,
        a.rounds
    );
    println!("  file renamed → new version serving, compile needed: {}", ms(c_e2e));
    println!("    of which compile + link: {}", ms(c_prep));
    println!("  file renamed → new version serving, from the compile cache: {}", ms(w_e2e));
    println!("    of which cache load + link: {}", ms(w_prep));
    println!(
        "  the swap on the event path (save, restore; the new instance is built beforehand): cold {}; warm {}",
        us(c_swap),
        us(w_swap)
    );
    println!(
        "  (the watcher waits {} ms for a file to go quiet before trying it)",
        wasmcalls::runtime::watch::QUIET.as_millis()
    );
    app.shutdown().await;
    Ok(())
}
