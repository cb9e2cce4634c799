//! `wasmcalls loopback serve`: the loopback Telegram as a standalone HTTP SFU; and the
//! commands that script a running one over its control endpoint — Telegram's side
//! (kick, invite, calls, raw updates) and the people in its chats (say, press,
//! participant, messages).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use wasmcalls::telegram::loopback::faults::{self, Faults};
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
    /// A person says something in a chat, optionally replying to an audio file they upload
    Say(SayArgs),
    /// A person presses a button under one of the bot's messages
    Press(PressArgs),
    /// A person joins, leaves, mutes or unmutes in a chat's call, or speaks a file in it
    Participant(ParticipantArgs),
    /// Print a chat's transcript as JSON lines: what people and the bot posted, edits,
    /// deletions, buttons and presses
    Messages(ChatArgs),
    /// Take the network in front of every call down for a while (needs [loopback.faults])
    Outage(OutageArgs),
    /// Move the media server: every call's connection goes dead, and joins from now on
    /// get a new address — as when Telegram moves a call to another server
    Move(MoveArgs),
}

#[derive(Args)]
pub struct MoveArgs {
    /// The loopback control URL (`[loopback] control` in the config)
    #[arg(long, default_value = "http://127.0.0.1:24860")]
    url: String,
}

#[derive(Args)]
pub struct OutageArgs {
    /// How long, e.g. 8s
    #[arg(long, value_parser = faults::parse_duration)]
    r#for: Duration,
    /// The loopback control URL (`[loopback] control` in the config)
    #[arg(long, default_value = "http://127.0.0.1:24860")]
    url: String,
}

#[derive(Args)]
pub struct SayArgs {
    #[command(flatten)]
    chat: ChatArgs,
    /// Who says it (a user id)
    #[arg(long, default_value_t = 424_242)]
    from: i64,
    /// What they say (`/play`, …)
    text: String,
    /// Reply to this message
    #[arg(long)]
    reply_to: Option<i32>,
    /// Upload this file first (as an audio message) and reply to it
    #[arg(long, conflicts_with = "reply_to")]
    reply_to_audio: Option<PathBuf>,
    /// Upload it as a voice note rather than a music file
    #[arg(long, requires = "reply_to_audio")]
    voice: bool,
}

#[derive(Args)]
pub struct PressArgs {
    #[command(flatten)]
    chat: ChatArgs,
    /// Who presses (a user id)
    #[arg(long, default_value_t = 424_242)]
    from: i64,
    /// The bot's message the button is under
    #[arg(long)]
    message: i32,
    /// The button's callback data
    #[arg(long)]
    data: String,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Action {
    Join,
    Leave,
    Mute,
    Unmute,
    /// Say the audio of FILE (joining the call first if need be)
    Speak,
}

#[derive(Args)]
pub struct ParticipantArgs {
    /// What the person does
    #[arg(value_enum)]
    action: Action,
    #[command(flatten)]
    chat: ChatArgs,
    /// Who (a user id)
    #[arg(long, default_value_t = 424_242)]
    user: i64,
    /// For `speak`: the audio file they say (any format `wasmcalls play` takes)
    file: Option<PathBuf>,
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
    let text = send(url, path, |c, full| c.post(full).body(body)).await?;
    if !text.is_empty() {
        println!("{text}");
    }
    Ok(())
}

/// One request to the control endpoint at `url`: its answer's text, or why not.
async fn send(
    url: &str,
    path: &str,
    request: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
) -> Result<String> {
    let full = format!("{}{path}", url.trim_end_matches('/'));
    let resp = request(&reqwest::Client::new(), &full).send().await.with_context(|| {
        format!("reaching the loopback control endpoint at {url} (is `wasmcalls run` up with [loopback] control set?)")
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        anyhow::bail!("the loopback refused: {why}");
    }
    Ok(text)
}

/// `participant speak`: sends the file to the loopback, which has the person say it.
async fn speak(a: ParticipantArgs) -> Result<()> {
    let file = a.file.context("`participant speak` needs the audio FILE to say")?;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.file_name().map_or_else(|| "audio".into(), |n| n.to_string_lossy().into_owned());
    let path = format!("/chats/{}/speak", a.chat.chat);
    let answer = send(&a.chat.url, &path, |c, full| {
        c.post(full).query(&[("user", a.user.to_string()), ("name", name)]).body(bytes)
    })
    .await?;
    let seconds = serde_json::from_str::<serde_json::Value>(&answer).ok().and_then(|v| v["seconds"].as_f64());
    match seconds {
        Some(s) => println!("{} is speaking in chat {} for {s:.1} s", a.user, a.chat.chat),
        None => println!("{} is speaking in chat {}", a.user, a.chat.chat),
    }
    Ok(())
}

/// `say`: uploads the audio first when asked, then posts the text replying to it.
async fn say(a: SayArgs) -> Result<()> {
    let (url, chat) = (&a.chat.url, a.chat.chat);
    let mut reply_to = a.reply_to;
    if let Some(file) = &a.reply_to_audio {
        let bytes = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
        let name = file.file_name().map_or("audio".into(), |n| n.to_string_lossy().into_owned());
        let kind = if a.voice { "voice" } else { "audio" };
        let path = format!("/chats/{chat}/uploads");
        let text = send(url, &path, |c, full| {
            c.post(full).query(&[("from", a.from.to_string()), ("name", name), ("kind", kind.into())]).body(bytes)
        })
        .await?;
        let uploaded: serde_json::Value = serde_json::from_str(&text)?;
        println!("{}", serde_json::json!({ "uploaded": uploaded["id"] }));
        reply_to = uploaded["id"].as_i64().map(|i| i as i32);
    }
    let body = serde_json::json!({ "from": a.from, "text": a.text, "reply_to": reply_to });
    let text = send(url, &format!("/chats/{chat}/messages"), |c, full| {
        c.post(full).header("content-type", "application/json").body(body.to_string())
    })
    .await?;
    println!("{text}");
    Ok(())
}

/// `messages`: the transcript, a JSON object per line.
async fn messages(a: ChatArgs) -> Result<()> {
    let text = send(&a.url, &format!("/chats/{}/messages", a.chat), |c, full| c.get(full)).await?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&text).context("the transcript is not a JSON list")?;
    for m in list {
        println!("{m}");
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
    /// Drop this share of datagrams in each direction, e.g. 5%
    #[arg(long, value_parser = faults::parse_percent, default_value = "0%")]
    loss: f64,
    /// Delay every datagram this long, e.g. 40ms
    #[arg(long, value_parser = faults::parse_duration, default_value = "0ms")]
    delay: Duration,
    /// Vary each datagram's delay by up to this much either way, e.g. 30ms
    #[arg(long, value_parser = faults::parse_duration, default_value = "0ms")]
    jitter: Duration,
    /// Send this share of datagrams at once, overtaking delayed ones, e.g. 1%
    #[arg(long, value_parser = faults::parse_percent, default_value = "0%")]
    reorder: f64,
    /// Send this share of datagrams twice, e.g. 1%
    #[arg(long, value_parser = faults::parse_percent, default_value = "0%")]
    duplicate: f64,
    /// Blackhole both directions, LENGTH@START from each call's start, e.g. 8s@20s (repeatable)
    #[arg(long, value_parser = faults::parse_outage)]
    outage: Vec<(Duration, Duration)>,
    /// Seed of the faults' randomness (default: random)
    #[arg(long)]
    seed: Option<u64>,
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
        LoopbackCommand::Outage(a) => {
            let path = format!("/network/outage?seconds={}", a.r#for.as_secs_f64());
            return control(&a.url, &path, String::new()).await;
        }
        LoopbackCommand::Move(a) => return control(&a.url, "/network/move", String::new()).await,
        LoopbackCommand::Say(a) => return say(a).await,
        LoopbackCommand::Messages(a) => return messages(a).await,
        LoopbackCommand::Press(a) => {
            let body = serde_json::json!({ "from": a.from, "message": a.message, "data": a.data });
            let path = format!("/chats/{}/press", a.chat.chat);
            println!(
                "{}",
                send(&a.chat.url, &path, |c, full| c
                    .post(full)
                    .header("content-type", "application/json")
                    .body(body.to_string()))
                .await?
            );
            return Ok(());
        }
        LoopbackCommand::Participant(a) if matches!(a.action, Action::Speak) => return speak(a).await,
        LoopbackCommand::Participant(a) => {
            if a.file.is_some() {
                anyhow::bail!("a file goes with `participant speak` only");
            }
            let action = match a.action {
                Action::Join => "join",
                Action::Leave => "leave",
                Action::Mute => "mute",
                Action::Unmute => "unmute",
                Action::Speak => unreachable!("handled above"),
            };
            let body = serde_json::json!({ "action": action, "user": a.user });
            let path = format!("/chats/{}/participants", a.chat.chat);
            send(&a.chat.url, &path, |c, full| {
                c.post(full).header("content-type", "application/json").body(body.to_string())
            })
            .await?;
            return Ok(());
        }
    };
    let faults = Faults {
        loss: args.loss,
        delay: args.delay,
        jitter: args.jitter,
        reorder: args.reorder,
        duplicate: args.duplicate,
        outages: args.outage,
        seed: args.seed.unwrap_or_else(rand::random),
    };
    let loopback = Loopback::new(LoopbackOptions {
        decode: !args.no_decode,
        record_dir: args.record_dir,
        faults,
        ..Default::default()
    })?;
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
