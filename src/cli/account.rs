//! `wasmcalls login [CONFIG] [--account NAME]` and `wasmcalls whoami …`: a Telegram
//! account the config names — `[telegram]`'s, or one of `[[accounts]]` — and its bot
//! when it has a `bot_token`.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use wasmcalls::telegram::TelegramOptions;
use wasmcalls::telegram::mtproto::MtprotoOptions;
use wasmcalls::telegram::mtproto::session::{self, Prompt};

#[derive(Args)]
pub struct AccountArgs {
    /// Configuration file with a `[telegram]` section
    #[arg(default_value = "wasmcalls.toml")]
    pub config: PathBuf,
    /// Which of the config's `[[accounts]]` (needed when it lists several)
    #[arg(long)]
    pub account: Option<String>,
}

/// Every account of a config's `[telegram]` (or `[[accounts]]`), or what to add.
pub fn mtproto_all(config: &std::path::Path) -> Result<Vec<(String, MtprotoOptions)>> {
    let (_, options) = super::host_options(config)?;
    match options.telegram {
        TelegramOptions::Mtproto(list) => Ok(list),
        _ => bail!(
            "{} has no [telegram] section; add api_id and api_hash from https://my.telegram.org \
             (see the README's \"Running against Telegram\")",
            config.display()
        ),
    }
}

/// The options of the account `account` names (the only one when `None`).
pub fn mtproto(config: &std::path::Path, account: Option<&str>) -> Result<MtprotoOptions> {
    let list = mtproto_all(config)?;
    let names = || list.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
    match account {
        Some(name) => match list.iter().find(|(n, _)| n == name) {
            Some((_, t)) => Ok(t.clone()),
            None => bail!("{} has no account {name:?}; its accounts are {}", config.display(), names()),
        },
        None if list.len() == 1 => Ok(list[0].1.clone()),
        None => bail!("{} lists several accounts ({}): say which with --account NAME", config.display(), names()),
    }
}

/// Asks on the terminal (the password through `rpassword`, not echoed).
struct Terminal;

impl Prompt for Terminal {
    fn line(&mut self, question: &str) -> io::Result<String> {
        print!("{question}");
        io::stdout().flush()?;
        let mut s = String::new();
        if io::stdin().lock().read_line(&mut s)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "no answer on standard input"));
        }
        Ok(s.trim().to_owned())
    }

    fn secret(&mut self, question: &str) -> io::Result<String> {
        rpassword::prompt_password(question)
    }
}

/// Signs the account in and stores the session.
pub async fn login(args: AccountArgs) -> Result<()> {
    let t = mtproto(&args.config, args.account.as_deref())?;
    let account = session::login(&t, &mut Terminal).await.context("logging in to Telegram")?;
    println!("Signed in as {account}.");
    println!("The session is in {} (readable by you only); keep it secret.", t.session.display());
    if let Some(bot) = session::login_bot(&t).await.context("signing the bot in (telegram.bot_token)")? {
        println!("The bot is signed in as {bot}; its session is in {}.", t.bot_session.display());
    }
    Ok(())
}

/// Prints the account the session is signed in as.
pub async fn whoami(args: AccountArgs) -> Result<()> {
    let t = mtproto(&args.config, args.account.as_deref())?;
    let account = session::whoami(&t).await?;
    println!("{account}");
    Ok(())
}
