//! `wasmcalls loopback serve`: the loopback Telegram as a standalone HTTP SFU.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::telegram::loopback::{Loopback, LoopbackOptions, http};

#[derive(Subcommand)]
pub enum LoopbackCommand {
    /// Serve the loopback over HTTP: `POST /join?chat=<id>` with a join JSON answers a transport JSON
    Serve(ServeArgs),
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
    let LoopbackCommand::Serve(args) = cmd;
    if let Some(dir) = &args.record_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let loopback = Loopback::new(LoopbackOptions {
        decode: !args.no_decode,
        record_dir: args.record_dir,
        ..Default::default()
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("loopback Telegram listening: POST http://{addr}/join?chat=<chat id>");
    axum::serve(listener, http::router(loopback.clone()))
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
