//! `wasmcalls status`: what a running host is doing, as a table.

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

#[derive(Args)]
pub struct StatusArgs {
    /// The host's API address
    #[arg(long, default_value = "http://127.0.0.1:24859")]
    url: String,
    /// Bearer token, if the host sets `api_token` (or WASMCALLS_TOKEN)
    #[arg(long, env = "WASMCALLS_TOKEN")]
    token: Option<String>,
}

fn mmss(ms: u64) -> String {
    format!("{}:{:02}", ms / 60_000, ms / 1000 % 60)
}

pub async fn run(a: StatusArgs) -> Result<()> {
    let url = format!("{}/status", a.url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().get(&url);
    if let Some(t) = &a.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| format!("reaching {url} (is `wasmcalls run` up?)"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("{url} answered {status}: {body}");
    }
    let v: Value = serde_json::from_str(&body).context("parsing the status")?;
    println!("telegram: {}, account {}\n", v["telegram"]["backend"].as_str().unwrap_or("?"), v["telegram"]["account"]);
    println!("{:<20} {:>8} {:>9} {:>7}", "PLUGIN", "EVENTS", "RESTARTS", "QUEUED");
    for p in v["plugins"].as_array().into_iter().flatten() {
        println!(
            "{:<20} {:>8} {:>9} {:>7}",
            p["name"].as_str().unwrap_or("?"),
            p["delivered"],
            p["restarts"],
            p["queued"]
        );
    }
    println!();
    let calls = v["calls"].as_array().cloned().unwrap_or_default();
    if calls.is_empty() {
        println!("no calls");
    } else {
        println!("{:<16} {:<10} {:<13} {:>6}  FILE", "CHAT", "STATE", "POSITION", "VOLUME");
        for c in calls {
            let pos = format!(
                "{}/{}",
                mmss(c["position_ms"].as_u64().unwrap_or(0)),
                mmss(c["duration_ms"].as_u64().unwrap_or(0))
            );
            println!(
                "{:<16} {:<10} {:<13} {:>5}%  {}",
                c["chat"],
                c["state"].as_str().unwrap_or("?"),
                pos,
                c["volume"],
                c["file"].as_str().unwrap_or("-")
            );
        }
    }
    println!();
    println!("frames sent {}, late {}; up {} s", v["frames_sent"], v["late_frames"], v["uptime_s"]);
    Ok(())
}
