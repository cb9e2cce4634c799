//! `wasmcalls check [CONFIG]`: parses and resolves a config without starting anything,
//! and says what would start and what each plugin is granted. Exit 0 when the config
//! is good; otherwise the error names the key and its line.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use wasmcalls::app::{HostOptions, PluginPlan};
use wasmcalls::runtime::grants::{ChatGrant, MessagesGrant};
use wasmcalls::telegram::TelegramOptions;

#[derive(Args)]
pub struct CheckArgs {
    /// Configuration file
    #[arg(default_value = "wasmcalls.toml")]
    pub config: PathBuf,
}

pub fn run(args: CheckArgs) -> Result<()> {
    let (_, options) = super::host_options(&args.config)?;
    print!("{}", describe(&options));
    println!("{} is good.", args.config.display());
    Ok(())
}

/// What a host started from `o` would run, one item a line.
pub fn describe(o: &HostOptions) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "folder: {}", o.folder.display());
    match &o.telegram {
        TelegramOptions::Loopback(l) => {
            let _ = write!(s, "telegram: the loopback (account {}", l.user_id);
            match &l.bot {
                Some(b) => {
                    let _ = write!(s, ", bot {} @{})", b.id, b.username);
                }
                None => s.push_str(", no bot: messages go out as the account)"),
            }
            match &l.chats {
                Some(chats) => {
                    let list: Vec<String> = chats
                        .iter()
                        .map(|c| format!("{}{}", c.id, if c.active_call { " (voice chat)" } else { "" }))
                        .collect();
                    let _ = write!(s, ", chats {}", list.join(", "));
                }
                None => s.push_str(", any chat id has a voice chat"),
            }
            if let Some(c) = l.control {
                let _ = write!(s, "; control on http://{c}");
            }
            if let Some(d) = &l.record_dir {
                let _ = write!(s, "; recordings in {}", d.display());
            }
            s.push('\n');
            for a in &l.accounts {
                let chats = match &a.chats {
                    Some(c) => c.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "),
                    None => "every chat".into(),
                };
                let _ = writeln!(s, "  account {}: user {}, a member of {chats}", a.name, a.user_id);
            }
        }
        TelegramOptions::Mtproto(list) => {
            for (name, t) in list {
                let missing = |p: &std::path::Path| {
                    if p.exists() { String::new() } else { format!(" (missing: run `wasmcalls login --account {name}`)") }
                };
                let _ = writeln!(
                    s,
                    "telegram: account {name}: MTProto as api_id {} with the session {}{}; keep-alive every {} s",
                    t.api_id,
                    t.session.display(),
                    missing(&t.session),
                    t.check_interval.as_secs()
                );
                match &t.bot_token {
                    Some(_) => {
                        let _ = writeln!(
                            s,
                            "  bot: chats with buttons, session {}{}",
                            t.bot_session.display(),
                            missing(&t.bot_session)
                        );
                    }
                    None => s.push_str("  no bot: messages go out as the account, without buttons\n"),
                }
            }
        }
        TelegramOptions::Sfu(f) => {
            let _ = writeln!(s, "telegram: the SFU at {}", f.url);
        }
    }
    let _ = writeln!(
        s,
        "api: http://{}/api{}",
        o.api.listen,
        if o.api.token.is_some() { " (bearer token required)" } else { " (no token: this machine only)" }
    );
    if let Some(dir) = &o.cache.dir {
        let _ = writeln!(s, "compile cache: {} (up to {} MiB)", dir.display(), o.cache.max_bytes >> 20);
    }
    let _ = writeln!(s, "hot reload: {}", if o.hot_reload { "on" } else { "off" });
    if o.plugins.is_empty() {
        s.push_str("plugins: none\n");
    }
    for p in &o.plugins {
        plugin(&mut s, p);
    }
    s
}

fn plugin(s: &mut String, p: &PluginPlan) {
    let spec = &p.spec;
    let state = match (spec.wasm.exists(), &p.build) {
        (_, Some(b)) => format!("built first: {b}"),
        (true, None) => "present".to_owned(),
        (false, None) => "MISSING, and no build is configured: it would not load".to_owned(),
    };
    let _ = writeln!(s, "plugin {}: {} ({state})", spec.name, spec.wasm.display());
    let chats = match spec.grants.chats() {
        ChatGrant::All => "every chat".to_owned(),
        ChatGrant::Only(c) if c.is_empty() => "no chat".to_owned(),
        ChatGrant::Only(c) => {
            let mut ids: Vec<i64> = c.iter().copied().collect();
            ids.sort_unstable();
            ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
        }
    };
    let folders: Vec<String> = spec.grants.folders().map(|(_, d)| d.display().to_string()).collect();
    let folders = if folders.is_empty() { "none".to_owned() } else { folders.join(", ") };
    let _ = writeln!(s, "  may command and hear: {chats}; may stream and read (read-only): {folders}");
    let messages = match spec.grants.messages() {
        MessagesGrant::Off => "no".to_owned(),
        MessagesGrant::InGrantedChats => "in its chats".to_owned(),
        MessagesGrant::Only(c) => {
            let mut ids: Vec<i64> = c.iter().copied().collect();
            ids.sort_unstable();
            format!("in {}", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", "))
        }
    };
    let _ = writeln!(s, "  may chat (send, edit, hear messages and button presses): {messages}");
    let urls = &spec.grants.urls().allowed;
    let sources: Vec<&str> = spec.grants.sources().collect();
    if !urls.is_empty() || !sources.is_empty() {
        let _ = writeln!(
            s,
            "  may play URLs: {}; named sources: {}",
            if urls.is_empty() { "none".to_owned() } else { urls.join(", ") },
            if sources.is_empty() { "none".to_owned() } else { sources.join(", ") }
        );
    }
    let l = &spec.limits;
    let recordings: Vec<String> = spec.grants.recording_folders().map(|(_, d)| d.display().to_string()).collect();
    if !recordings.is_empty() {
        let _ = writeln!(
            s,
            "  may record calls into: {} (each recording up to {} s and {} MiB)",
            recordings.join(", "),
            l.record_seconds,
            l.record_mb
        );
    }
    if spec.grants.audio() {
        let _ = writeln!(s, "  may hear its calls' audio (audio.listen; up to 16 batches queued)");
    }
    let _ = writeln!(
        s,
        "  limits: {} ms of CPU per event, {} MiB of memory, {} queued events, {} log lines/s; \
         disabled after {} traps in {} s; downloads up to {} MiB",
        l.cpu_ms_per_event, l.memory_mb, l.queue, l.log_lines_per_s, l.max_traps, l.crash_window_s, l.download_mb
    );
    let _ = writeln!(s, "  api: {}", if p.api { format!("POST /api/{}", spec.name) } else { "closed".into() });
}
