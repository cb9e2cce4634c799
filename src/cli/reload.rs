//! `wasmcalls reload`: a running host re-reads its config file and applies what changed
//! to its plugins, through the admin API (`POST /admin/reload`). The same as sending
//! the process SIGHUP, but it answers with what changed — or why nothing did.

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args)]
pub struct ReloadArgs {
    /// The host's API address
    #[arg(long, default_value = "http://127.0.0.1:24859")]
    url: String,
    /// The host's admin token ([host] admin_token)
    #[arg(long, env = "WASMCALLS_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

pub async fn run(a: ReloadArgs) -> Result<()> {
    let url = format!("{}/admin/reload", a.url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&a.token)
        .send()
        .await
        .with_context(|| format!("reaching {url} (is `wasmcalls run` up?)"))?;
    let code = resp.status();
    let text = resp.text().await?;
    let body: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{url} did not answer JSON: {text}"))?;
    if !code.is_success() {
        bail!("{} ({code})", body["error"].as_str().unwrap_or("refused"));
    }
    for (what, key) in
        [("added", "added"), ("replaced", "replaced"), ("removed", "removed"), ("unchanged", "unchanged")]
    {
        let names: Vec<&str> = body[key].as_array().into_iter().flatten().filter_map(|v| v.as_str()).collect();
        if !names.is_empty() {
            println!("{what}: {}", names.join(", "));
        }
    }
    if let Some(left) = body["left"].as_array().filter(|l| !l.is_empty()) {
        println!("left the calls of removed plugins in: {}", serde_json::to_string(left)?);
    }
    if let Some(s) = body["restart_needed"].as_array().filter(|s| !s.is_empty()) {
        let names: Vec<&str> = s.iter().filter_map(|v| v.as_str()).collect();
        println!("changed but read at start only (restart to apply): [{}]", names.join("], ["));
    }
    Ok(())
}
