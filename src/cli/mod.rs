//! The `wasmcalls` command line.

mod account;
mod bench;
mod loopback;
mod play;
mod run;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wasmcalls", version, about = "Stream audio into Telegram group calls; bot logic in WASM components")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host and its plugins from a configuration file
    Run(run::RunArgs),
    /// Like run, and rebuild each plugin from source on save, then hot-reload it
    Dev(run::RunArgs),
    /// Sign a Telegram user account in (phone, code, 2FA password) and store its session
    Login(account::AccountArgs),
    /// Print the Telegram account the configured session is signed in as
    Whoami(account::AccountArgs),
    /// Show what a running host is doing: plugins, calls, counters
    Status(status::StatusArgs),
    /// Stream a raw PCM file into a group call (the embedded loopback Telegram by default)
    Play(play::PlayArgs),
    /// Run the loopback Telegram on its own
    #[command(subcommand)]
    Loopback(loopback::LoopbackCommand),
    /// Measure the media plane
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// Parses `64k`, `64000` or `1.5m` into bits per second, within Opus's range.
pub(crate) fn parse_bitrate(s: &str) -> Result<u32, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.strip_suffix('k') {
        Some(n) => (n, 1000.0),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 1_000_000.0),
            None => (t.as_str(), 1.0),
        },
    };
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a bitrate; write e.g. 64k or 48000"))?;
    let bps = (v * mul).round() as u32;
    if !(6_000..=510_000).contains(&bps) {
        return Err(format!("{s} is outside Opus's 6k–510k bitrate range"));
    }
    Ok(bps)
}

/// rtc's DTLS layer warns on every connection about a server name it does not need.
const DEFAULT_LOG: &str = "warn,rtc_dtls=error,rtc_ice=error";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs at its config's level; the other commands only warn.
    let mut config = None;
    let mut level = DEFAULT_LOG.to_owned();
    if let Command::Run(args) | Command::Dev(args) = &cli.command {
        match crate::config::Config::load(&args.config) {
            Ok(c) => {
                level = format!("{},rtc=warn,rtc_dtls=error,rtc_ice=error", c.host.log);
                config = Some(c);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMCALLS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&level)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(args, config.expect("loaded above"), false).await,
            Command::Dev(args) => run::run(args, config.expect("loaded above"), true).await,
            Command::Play(args) => play::run(args).await,
            Command::Status(args) => status::run(args).await,
            Command::Login(args) => account::login(args).await,
            Command::Whoami(args) => account::whoami(args).await,
            Command::Loopback(cmd) => loopback::run(cmd).await,
            Command::Bench(cmd) => bench::run(cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bitrate;

    #[test]
    fn bitrates_parse_with_suffixes_and_bounds() {
        assert_eq!(parse_bitrate("64k"), Ok(64_000));
        assert_eq!(parse_bitrate("48000"), Ok(48_000));
        assert_eq!(parse_bitrate("0.128m"), Ok(128_000));
        assert!(parse_bitrate("1k").unwrap_err().contains("range"));
        assert!(parse_bitrate("fast").unwrap_err().contains("not a bitrate"));
    }
}
