//! `wasmcalls status`: what a running host is doing, as tables. It reads `GET /status`
//! into the same type the host serves it from.

use anyhow::{Context, Result, bail};
use clap::Args;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use wasmcalls::api::Status;

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

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.iter().copied());
    t
}

pub async fn run(a: StatusArgs) -> Result<()> {
    let url = format!("{}/status", a.url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().get(&url);
    if let Some(t) = &a.token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.with_context(|| format!("reaching {url} (is `wasmcalls run` up?)"))?;
    let code = resp.status();
    let body = resp.text().await?;
    if !code.is_success() {
        bail!("{url} answered {code}: {body}");
    }
    let s: Status = serde_json::from_str(&body).with_context(|| format!("{url} did not answer a wasmcalls status"))?;
    print!("{}", render(&s));
    Ok(())
}

/// What a call hears: how many streams, and who speaks.
fn hearing(c: &wasmcalls::calls::CallStatus) -> String {
    if c.heard.is_empty() {
        return "-".into();
    }
    let streams = if c.heard.len() == 1 { "1 stream".to_owned() } else { format!("{} streams", c.heard.len()) };
    if c.speaking.is_empty() {
        return streams;
    }
    let who: Vec<String> = c.speaking.iter().map(i64::to_string).collect();
    format!("{streams}, speaking: {}", who.join(" "))
}

/// The status as a user reads it.
pub fn render(s: &Status) -> String {
    let account = s.telegram.account.map_or("none".to_owned(), |a| a.to_string());
    let mut out = format!("telegram: {}, account {account}; up {} s\n", s.telegram.backend, s.uptime_s);
    if !s.shards.is_empty() {
        let each: Vec<String> = s
            .shards
            .iter()
            .map(|l| {
                let mut lowered = if l.complexity < 10 {
                    format!(", encoders at complexity {}", l.complexity)
                } else {
                    String::new()
                };
                if l.late_hold {
                    lowered.push_str(", no new work: frames went late");
                }
                if !l.realtime {
                    lowered.push_str(", normal priority");
                }
                format!(
                    "{} calls, {:.0} % busy, {:.0} of {:.0} % committed{lowered}",
                    l.calls,
                    l.busy * 100.0,
                    l.committed * 100.0,
                    l.budget * 100.0
                )
            })
            .collect();
        out.push_str(&format!("pacer threads: {}\n", each.join("; ")));
    }
    if !s.feeds.is_empty() {
        let each: Vec<String> = s.feeds.iter().map(|f| format!("{} ({} calls)", f.source, f.listeners)).collect();
        out.push_str(&format!("shared live sources, encoded once: {}\n", each.join(", ")));
    }
    // AUDIO DROPPED: batches of a call's audio it was too slow for (`audio.listen`).
    let mut plugins =
        table(&["PLUGIN", "VERSION", "MEMORY", "EVENTS", "RESTARTS", "QUEUED", "RELOADS", "AUDIO DROPPED", "STATE"]);
    for p in &s.plugins {
        plugins.add_row(vec![
            p.name.clone(),
            p.version.clone(),
            format!("{} KiB", p.memory_kib),
            p.delivered.to_string(),
            p.restarts.to_string(),
            p.queued.to_string(),
            p.reloads.to_string(),
            p.audio_dropped.to_string(),
            if p.disabled { "disabled" } else { "running" }.to_owned(),
        ]);
    }
    out.push_str(&format!("{plugins}\n"));
    if s.calls.is_empty() {
        out.push_str("no calls\n");
    } else {
        let mut calls = table(&["CHAT", "ACCOUNT", "STATE", "POSITION", "VOLUME", "MEDIA", "SOURCE", "HEARING"]);
        for c in &s.calls {
            let media = c.media.as_ref().map_or("-".to_owned(), |m| {
                let how = if m.pass_through {
                    ", passed through"
                } else if m.shared {
                    ", live, shared"
                } else if m.live {
                    ", live"
                } else {
                    ""
                };
                format!("{} {}{how}", m.container, m.codec)
            });
            calls.add_row(vec![
                c.chat.to_string(),
                c.account.clone().unwrap_or_else(|| "-".into()),
                serde_json::to_value(c.state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                format!("{}/{}", mmss(c.position_ms), c.duration_ms.map_or("live".to_owned(), mmss)),
                format!("{}%", c.volume),
                media,
                c.source.clone().unwrap_or_else(|| "-".into()),
                hearing(c),
            ]);
        }
        out.push_str(&format!("{calls}\n"));
    }
    out.push_str(&format!("frames sent {}, late {}\n", s.frames_sent, s.late_frames));
    out
}
