//! `wasmcalls loopback serve`: the loopback Telegram as a standalone HTTP SFU; and the
//! commands that script a running one over its control endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use wasmcalls::telegram::loopback::{Loopback, LoopbackOptions, control as control_routes};

#[derive(Subcommand)]
pub enum LoopbackCommand {
    /// Serve the loopback over HTTP: `POST /join?chat=<id>` with a join JSON answers a transport JSON
    Serve(ServeArgs),
    /// Kick the account from a chat (a running host's loopback, via its control URL)
    Kick(ChatArgs),
    /// Invite the account to a chat's group call
    Invite(InviteArgs),
    /// Start a voice chat in a chat
    StartCall(ChatArgs),
    /// End a chat's voice chat (groupCallDiscarded)
    EndCall(ChatArgs),
    /// Send a raw update (JSON) to the host
    Raw(RawArgs),
}

#[derive(Args)]
pub struct ChatArgs {
    /// The chat id
    #[arg(long, allow_hyphen_values = true)]
    chat: i64,
    /// The loopback control URL (`[loopback] control` in the config)
    #[arg(long, default_value = "http://127.0.0.1:24860")]
    url: String,
}

#[derive(Args)]
pub struct InviteArgs {
    #[command(flatten)]
    chat: ChatArgs,
    /// Who sends the invitation
    #[arg(long, default_value_t = 1)]
    inviter: i64,
}

#[derive(Args)]
pub struct RawArgs {
    /// The update, as JSON
    json: String,
    #[arg(long, default_value = "http://127.0.0.1:24860")]
    url: String,
}

async fn control(url: &str, path: &str, body: String) -> Result<()> {
    let full = format!("{}{path}", url.trim_end_matches('/'));
    let resp = reqwest::Client::new().post(&full).body(body).send().await.with_context(|| {
        format!("reaching the loopback control endpoint at {url} (is `wasmcalls run` up with [loopback] control set?)")
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("{full} answered {status}: {text}");
    }
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:24860")]
    listen: SocketAddr,
    /// Write what each participant hears to <DIR>/chat<chat>-ssrc<ssrc>.wav
    #[arg(long)]
    record_dir: Option<PathBuf>,
    /// Count packets without decoding them (for load tests)
    #[arg(long)]
    no_decode: bool,
}

pub async fn run(cmd: LoopbackCommand) -> Result<()> {
    let args = match cmd {
        LoopbackCommand::Serve(args) => args,
        LoopbackCommand::Kick(a) => return control(&a.url, &format!("/chats/{}/kick", a.chat), String::new()).await,
        LoopbackCommand::Invite(a) => {
            return control(
                &a.chat.url,
                &format!("/chats/{}/invite?inviter={}", a.chat.chat, a.inviter),
                String::new(),
            )
            .await;
        }
        LoopbackCommand::StartCall(a) => {
            return control(&a.url, &format!("/chats/{}/start", a.chat), String::new()).await;
        }
        LoopbackCommand::EndCall(a) => return control(&a.url, &format!("/chats/{}/end", a.chat), String::new()).await,
        LoopbackCommand::Raw(a) => return control(&a.url, "/updates", a.json).await,
    };
    let loopback =
        Loopback::new(LoopbackOptions { decode: !args.no_decode, record_dir: args.record_dir, ..Default::default() })?;
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("loopback Telegram listening: POST http://{addr}/join?chat=<chat id>");
    axum::serve(listener, control_routes::router(loopback.clone()))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    for call in loopback.calls() {
        let s = call.stats();
        println!("chat {} ssrc {}: {} packets, {} lost", call.chat(), call.ssrc(), s.packets, s.lost);
        let _ = call.finish_recording();
    }
    Ok(())
}
