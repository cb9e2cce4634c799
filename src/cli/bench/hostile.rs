//! Calls keep time while a plugin misbehaves non-stop.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args)]
pub struct HostileArgs {
    /// Seconds the calls play
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Calls playing meanwhile
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// The test plugin (offender and player)
    #[arg(long, default_value = super::TESTBOT)]
    wasm: PathBuf,
}

pub async fn run(a: HostileArgs) -> Result<()> {
    use wasmcalls::runtime::ApiCall;
    super::require_plugin(&a.wasm)?;
    let dir = tempfile::tempdir()?;
    super::pacing::write_input(dir.path(), a.seconds)?;
    let wasm = a.wasm.canonicalize()?;
    let text = format!(
        "[host]\napi_port = 0\n\
         [[plugins]]\nname = \"player\"\nwasm = {wasm:?}\ngrants = {{ chats = \"all\", files = [\".\"] }}\n\
         [[plugins]]\nname = \"offender\"\nwasm = {wasm:?}\nlimits = {{ max_traps = 1000000 }}\n"
    );
    let app = super::host(&text, dir.path()).await?;
    for i in 0..a.calls {
        let body = format!(r#"{{"cmd":"join","chat":{},"file":"bench-input.raw"}}"#, -(i as i64) - 1);
        let r = app.plugins.custom_api("player", ApiCall { path: "/api".into(), body }).await?;
        if !r.body.contains("\"ok\"") {
            bail!("the player could not join: {}", r.body);
        }
    }
    println!("wasmcalls hostile bench: {} calls × {} s while a plugin misbehaves non-stop", a.calls, a.seconds);
    let t0 = Instant::now();
    let mut offences = std::collections::BTreeMap::<&str, u32>::new();
    let cmds = [
        r#"{"cmd":"loop"}"#,
        r#"{"cmd":"alloc"}"#,
        r#"{"cmd":"recurse"}"#,
        r#"{"cmd":"flood","lines":2000}"#,
        r#"{"cmd":"trap"}"#,
    ];
    while t0.elapsed() < Duration::from_secs(a.seconds as u64) {
        for c in cmds {
            let _ = app.plugins.custom_api("offender", ApiCall { path: "/api".into(), body: c.into() }).await;
            *offences.entry(c).or_default() += 1;
        }
    }
    let totals = app.media.totals();
    let frames = totals.frames_sent.load(std::sync::atomic::Ordering::Relaxed);
    let late = totals.late_frames.load(std::sync::atomic::Ordering::Relaxed);
    let lost: u64 = super::loopback(&app)?.calls().iter().map(|c| c.stats().lost).sum();
    let offender = app.plugins.status().into_iter().find(|p| p.name == "offender");
    println!("  offences: {}", offences.iter().map(|(k, v)| format!("{v}× {k}")).collect::<Vec<_>>().join(", "));
    if let Some(o) = offender {
        println!(
            "  offender: {} traps (each interrupted or caught, then restarted), {} log lines dropped",
            o.restarts, o.logs_dropped
        );
    }
    println!("  the calls: {frames} frames sent, {late} late (> 5 ms), {lost} packets lost at the loopback");
    app.shutdown().await;
    Ok(())
}
