//! The `wasmcalls` command line.

mod account;
mod bench;
mod check;
mod loopback;
mod new;
mod play;
mod reload;
mod run;
mod status;
mod test;

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use wasmcalls::app::HostOptions;
use wasmcalls::config::Config;

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
    /// Check a configuration without running it: what each plugin is granted, what would start
    Check(check::CheckArgs),
    /// Sign a Telegram user account in (phone, code, 2FA password) and store its session
    Login(account::AccountArgs),
    /// Print the Telegram account the configured session is signed in as
    Whoami(account::AccountArgs),
    /// Show what a running host is doing: plugins, calls, counters
    Status(status::StatusArgs),
    /// Make a running host re-read its config and apply what changed to its plugins (admin API; like SIGHUP)
    Reload(reload::ReloadArgs),
    /// Stream a raw PCM file into a group call (the embedded loopback Telegram by default)
    Play(play::PlayArgs),
    /// Run the loopback Telegram on its own, or script a running one
    #[command(subcommand)]
    Loopback(loopback::LoopbackCommand),
    /// Measure the media plane, the plugins, the API and the Telegram side
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run scripted bot scenarios (*.test.toml) against the loopback
    Test(test::TestArgs),
    /// Start a bot project (Rust, Python or JavaScript) that runs with `wasmcalls dev` at once
    New(new::NewArgs),
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

/// Reads, parses and resolves a config: the options a host starts with.
pub(crate) fn host_options(path: &Path) -> Result<(Config, HostOptions)> {
    let config = Config::load(path)?;
    let options = wasmcalls::app::resolve(&config)?;
    Ok((config, options))
}

/// rtc's DTLS layer warns on every connection about a server name it does not need;
/// symphonia warns about what it skips while probing, which our own errors cover.
const QUIET_RTC: &str = "rtc=warn,rtc_dtls=error,rtc_ice=error,symphonia_core=error,symphonia=error";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        // `run` and `dev` log at their config's level; the other commands only warn.
        Command::Run(args) => host(args, false),
        Command::Dev(args) => host(args, true),
        Command::Check(args) => tool(async { check::run(args) }),
        Command::Play(args) => tool(play::run(args)),
        Command::Status(args) => tool(status::run(args)),
        Command::Reload(args) => tool(reload::run(args)),
        Command::Login(args) => tool(account::login(args)),
        Command::Whoami(args) => tool(account::whoami(args)),
        Command::Loopback(cmd) => tool(loopback::run(cmd)),
        // A benchmark's figures are its output; what the bots under load log is noise
        // there (and a cost in the figures): errors only.
        Command::Bench(cmd) => {
            init_logging(&format!("error,{QUIET_RTC}"));
            block_on(bench::run(cmd))
        }
        Command::Test(args) => tool(test::run(args)),
        Command::New(args) => new::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The report already said which scenarios failed and why.
        Err(e) if e.is::<test::Failed>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `run` or `dev`: the config first (a bad one is reported before anything starts),
/// then logging at its level, then the host.
fn host(args: run::RunArgs, dev: bool) -> Result<()> {
    let (_, mut options) = host_options(&args.config)?;
    if dev {
        // Edit → new version serving fast: the baseline compiler, unless the config says.
        options.compiler.get_or_insert(wasmcalls::runtime::Compiler::Winch);
    }
    init_logging_as(&format!("{},{QUIET_RTC}", options.log), options.log_format);
    block_on(run::run(args, options, dev))
}

/// Any other command: logs warnings only.
fn tool(job: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    init_logging(&format!("warn,{QUIET_RTC}"));
    block_on(job)
}

fn init_logging(level: &str) {
    init_logging_as(level, wasmcalls::app::LogFormat::Text);
}

fn init_logging_as(level: &str, format: wasmcalls::app::LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMCALLS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr);
    match format {
        wasmcalls::app::LogFormat::Text => builder.init(),
        wasmcalls::app::LogFormat::Json => builder.json().init(),
    }
}

fn block_on(job: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(job)
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
