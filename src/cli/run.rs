//! `wasmcalls run [CONFIG]`: the host with its plugins, until Ctrl-C (every call left
//! at once) or SIGTERM (drained: no new calls, `[host] drain_grace_s` for the others
//! to end, then each left) — or, with `--exit-when-idle`, until the bots have nothing
//! left to do. `wasmcalls dev` is the same plus a rebuild of each plugin from source
//! on save. SIGHUP re-reads the config and applies what changed to the plugins.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use wasmcalls::app::{App, HostOptions};
use wasmcalls::runtime::dev::{Source, watch_sources};
use wasmcalls::telegram::TelegramOptions;

#[derive(Args)]
pub struct RunArgs {
    /// Configuration file
    #[arg(default_value = "wasmcalls.toml")]
    pub config: PathBuf,
    /// Exit once calls have been made and none is left (for demos and scripts)
    #[arg(long)]
    exit_when_idle: bool,
}

pub async fn run(args: RunArgs, options: HostOptions, dev: bool) -> Result<()> {
    let app = App::start(&options).await?;
    // `dev`: rebuild plugins from source on save (their reload then follows).
    let (rebuilt, _) = tokio::sync::mpsc::unbounded_channel();
    let sources = options
        .plugins
        .iter()
        .filter_map(|p| {
            let build = p.build.clone()?;
            Some(Source { plugin: p.spec.name.clone(), build, wasm: p.spec.wasm.clone() })
        })
        .collect();
    let _sources = if dev { watch_sources(sources, rebuilt)? } else { None };
    let loaded = app.loaded.iter().filter(|(_, r)| r.is_ok()).count();
    tracing::info!(
        "wasmcalls is running: {loaded}/{} plugin(s) loaded; Ctrl-C leaves every call and exits",
        options.plugins.len()
    );

    let started = Instant::now();
    let mut had_calls = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut drain = false;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                tracing::info!("interrupted: leaving every call");
                break;
            }
            _ = term.recv() => {
                drain = true;
                break;
            }
            // Re-read the config and apply what changed; a bad one is refused and logged.
            _ = hup.recv() => {
                let _ = app.tenants.reload().await;
            }
            _ = tick.tick() => {
                if !args.exit_when_idle {
                    continue;
                }
                let calls = app.manager.joined_chats();
                had_calls |= !calls.is_empty();
                let quiet = calls.is_empty() && app.plugins.idle();
                // Without any call after 10 s, the bots are not going to start one.
                if quiet && (had_calls || started.elapsed() > Duration::from_secs(10)) {
                    tracing::info!("no calls left and no events pending: exiting");
                    break;
                }
            }
        }
    }
    let heard = app.loopback.iter().flat_map(|l| l.calls()).collect::<Vec<_>>();
    let status = app.plugins.status();
    if drain {
        app.drain(options.drain_grace).await;
    } else {
        app.shutdown().await;
    }
    for p in status {
        println!("plugin {}: {} events, {} restarts", p.name, p.delivered, p.restarts);
    }
    for c in heard {
        // Its connection closes as the leave reaches it: a moment after ours.
        let _ = tokio::time::timeout(Duration::from_secs(2), c.wait_until(|s| s.state == "left")).await;
        let s = c.stats();
        println!(
            "loopback heard chat {} (ssrc {}): {} packets, {} lost, {:.1} s of audio; {}",
            c.chat(),
            c.ssrc(),
            s.packets,
            s.lost,
            s.timeline_samples as f64 / 48000.0,
            if s.state == "left" { "left".to_owned() } else { format!("still {}", s.state) }
        );
    }
    if let TelegramOptions::Loopback(l) = &options.telegram
        && let Some(dir) = &l.record_dir
    {
        println!("recordings are in {}", dir.display());
    }
    Ok(())
}
