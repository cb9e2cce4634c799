//! `wasmcalls login [CONFIG]` and `wasmcalls whoami [CONFIG]`: the Telegram account
//! behind `[telegram]`.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use clap::Args;

use crate::config::{Config, TelegramConfig};
use crate::telegram::mtproto::session::{self, Terminal};

#[derive(Args)]
pub struct AccountArgs {
    /// Configuration file with a `[telegram]` section
    #[arg(default_value = "wasmcalls.toml")]
    pub config: PathBuf,
}

fn telegram(args: &AccountArgs) -> Result<(Config, TelegramConfig, PathBuf)> {
    let config = Config::load(&args.config)?;
    let t = config.telegram.clone().ok_or_else(|| {
        anyhow!(
            "{} has no [telegram] section; add api_id and api_hash from https://my.telegram.org \
             (see the README's \"Running against Telegram\")",
            args.config.display()
        )
    })?;
    let path = config.resolve(&t.session);
    Ok((config, t, path))
}

/// Signs the account in and stores the session.
pub async fn login(args: AccountArgs) -> Result<()> {
    let (_, t, path) = telegram(&args)?;
    let account = session::login(&t, &path, &mut Terminal).await.context("logging in to Telegram")?;
    println!("Signed in as {account}.");
    println!("The session is in {} (readable by you only); keep it secret.", path.display());
    Ok(())
}

/// Prints the account the session is signed in as.
pub async fn whoami(args: AccountArgs) -> Result<()> {
    let (_, t, path) = telegram(&args)?;
    let account = session::whoami(&t, &path).await?;
    println!("{account}");
    Ok(())
}
