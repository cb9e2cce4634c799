//! The account side: grammers' SQLite sessions (kept 0600: they hold the accounts'
//! authorization keys) — the user account's and, with `telegram.bot_token`, the bot's —
//! `wasmcalls login`, `wasmcalls whoami`, and connecting the MTProto side with both
//! accounts' update feeds.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grammers_client::Client;
use grammers_client::client::{LoginToken, SignInError};
use grammers_mtsender::{ConnectionParams, SenderPool, SenderPoolFatHandle, UpdatesConfiguration, UpdatesReceiver};
use grammers_session::Session;
use grammers_session::storages::SqliteSession;
use grammers_session::types::{PeerId, PeerInfo};
use grammers_tl_types as tl;

use super::rpc::{FloodPolicy, Grammers, classify};
use super::{Mtproto, MtprotoOptions};
use crate::telegram::TelegramError;
use crate::telegram::messages::{Account, Bot};

/// How long `whoami` and the start-up check wait for Telegram.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Opens (or creates) the session at `path`, readable by its owner only.
pub async fn open_session(path: &Path) -> Result<Arc<SqliteSession>, TelegramError> {
    let err = |reason: String| TelegramError::Session { path: path.to_path_buf(), reason };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create its folder: {e}")))?;
    }
    // Created 0600 before SQLite writes a key into it; tightened if it existed looser.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| err(format!("cannot open it: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(format!("cannot make it private (0600): {e}")))?;
    let session = SqliteSession::open(path)
        .await
        .map_err(|e| err(format!("not a usable session ({e}); delete it and run `wasmcalls login`")))?;
    Ok(Arc::new(session))
}

/// The account the session is signed in as, if any (no network).
pub async fn signed_in_as(session: &SqliteSession) -> Option<i64> {
    match session.peer(PeerId::self_user()).await.ok()?? {
        PeerInfo::User { id, .. } => Some(id),
        _ => None,
    }
}

/// A connected client and the task driving its connections (stopped on drop).
pub struct Connection {
    pub rpc: Grammers,
    handle: SenderPoolFatHandle,
    updates: Option<tokio::sync::mpsc::Receiver<grammers_session::updates::UpdatesLike>>,
    runner: tokio::task::JoinHandle<()>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.runner.abort();
    }
}

/// Connects to Telegram with the options' session (connections open on demand,
/// and reopen after network loss on the next request).
pub async fn connect(opts: &MtprotoOptions) -> Result<Connection, TelegramError> {
    connect_to(opts, &opts.session, opts.max_flood_wait).await
}

/// Connects the bot's session. Its `FLOOD_WAIT`s come back at once: the host paces
/// the bot's messages itself and tells the plugin to retry after that long.
pub async fn connect_bot(opts: &MtprotoOptions) -> Result<Connection, TelegramError> {
    connect_to(opts, &opts.bot_session, Duration::ZERO).await
}

async fn connect_to(opts: &MtprotoOptions, path: &Path, max_flood_wait: Duration) -> Result<Connection, TelegramError> {
    let session = open_session(path).await?;
    let params = ConnectionParams {
        retry_policy: Box::new(FloodPolicy { max_wait: max_flood_wait }),
        app_version: env!("CARGO_PKG_VERSION").into(),
        device_model: "wasmcalls".into(),
        ..Default::default()
    };
    let pool = SenderPool::with_configuration(session.clone(), opts.api_id, params);
    let client = Client::new(pool.handle.clone());
    let runner = tokio::spawn(pool.runner.run());
    Ok(Connection { rpc: Grammers::new(client, session), handle: pool.handle, updates: Some(pool.updates), runner })
}

/// Connects with a session that exists and is signed in, and says as whom; else
/// "not logged in", without creating a session file.
async fn connect_signed_in(opts: &MtprotoOptions) -> Result<(Connection, i64), TelegramError> {
    let path = &opts.session;
    if !path.exists() {
        return Err(TelegramError::NotLoggedIn(format!("no session at {}", path.display())));
    }
    let conn = connect(opts).await?;
    let me = signed_in_as(&conn.rpc.session)
        .await
        .ok_or_else(|| TelegramError::NotLoggedIn(format!("the session at {} is not signed in", path.display())))?;
    Ok((conn, me))
}

/// Starts the MTProto side: the session must be signed in (else "run `wasmcalls
/// login`"); updates are routed from then on.
pub async fn start(opts: &MtprotoOptions) -> Result<Mtproto<Grammers>, TelegramError> {
    let (mut conn, me) = connect_signed_in(opts).await?;
    // A revoked session fails here rather than at the first join; an unreachable
    // Telegram does not stop the host (connections are retried on demand).
    match tokio::time::timeout(ANSWER_TIMEOUT, conn.rpc.client.get_me()).await {
        Ok(Ok(_)) => tracing::info!(me, "connected to Telegram"),
        Ok(Err(e)) => match classify("users.getUsers", e) {
            e @ TelegramError::NotLoggedIn(_) => return Err(e),
            e => tracing::warn!("{e}; continuing, requests will retry"),
        },
        Err(_) => tracing::warn!("Telegram did not answer within {ANSWER_TIMEOUT:?}; continuing, requests will retry"),
    }
    let receiver = updates_of(&mut conn, &opts.session).await?;
    let tg = match &opts.bot_token {
        None => Mtproto::new(conn.rpc.clone(), me, opts.clone()),
        Some(_) => {
            let (mut bot_conn, bot) = start_bot(opts).await?;
            let bot_updates = updates_of(&mut bot_conn, &opts.bot_session).await?;
            let tg = Mtproto::with_bot(conn.rpc.clone(), me, bot_conn.rpc.clone(), bot, opts.clone());
            tokio::spawn(pump_updates(tg.clone(), bot_updates, bot_conn, Account::Bot));
            tg
        }
    };
    tokio::spawn(pump_updates(tg.clone(), receiver, conn, Account::User));
    Ok(tg)
}

/// The bot's connection and who it is; its session must be signed in.
async fn start_bot(opts: &MtprotoOptions) -> Result<(Connection, Bot), TelegramError> {
    let path = &opts.bot_session;
    let not_in = || TelegramError::NotLoggedIn(format!("the bot's session at {} is not signed in", path.display()));
    if !path.exists() {
        return Err(not_in());
    }
    let conn = connect_bot(opts).await?;
    let id = signed_in_as(&conn.rpc.session).await.ok_or_else(not_in)?;
    let me = tokio::time::timeout(ANSWER_TIMEOUT, conn.rpc.client.get_me())
        .await
        .map_err(|_| TelegramError::Network {
            request: "users.getUsers",
            reason: "the bot's account did not answer".into(),
        })?
        .map_err(|e| classify("users.getUsers", e))?;
    let username = me.username().unwrap_or_default().to_owned();
    tracing::info!(bot = id, username, "the bot account is connected");
    Ok((conn, Bot { id, username }))
}

/// The update stream of a connection.
async fn updates_of(conn: &mut Connection, path: &Path) -> Result<UpdatesReceiver, TelegramError> {
    let updates = conn.updates.take().ok_or_else(|| TelegramError::Session {
        path: path.to_path_buf(),
        reason: "the connection's update stream was already taken".into(),
    })?;
    UpdatesReceiver::create(
        conn.handle.thin.clone(),
        conn.handle.session.clone(),
        updates,
        UpdatesConfiguration { catch_up: false },
    )
    .await
    .map_err(|e| TelegramError::Session { path: path.to_path_buf(), reason: e.to_string() })
}

/// Between two `updates.getState` when nothing else is sent: keeps a connection open
/// so updates (invitations) keep arriving while no call is being checked, and
/// notices a revoked session.
const IDLE_PING: Duration = Duration::from_secs(60);

/// Feeds `account`'s updates to the MTProto side for as long as its session is valid.
async fn pump_updates(tg: Mtproto<Grammers>, mut receiver: UpdatesReceiver, conn: Connection, account: Account) {
    // Its own task: `receiver.next()` is not cancel-safe, so it is never raced.
    let pinger = tokio::spawn(keep_connected(conn.rpc.clone()));
    loop {
        match receiver.next().await {
            Ok((updates, _users, chats)) => {
                let updates: Vec<_> = updates.into_iter().map(|(u, _state)| u).collect();
                match account {
                    Account::User => tg.feed(&updates, &chats).await,
                    Account::Bot => tg.feed_bot(&updates, &chats).await,
                }
            }
            Err(e) => match classify("updates.getDifference", e) {
                e @ TelegramError::NotLoggedIn(_) => {
                    tracing::error!("Telegram updates stopped: {e}");
                    pinger.abort();
                    return;
                }
                e => {
                    tracing::warn!("Telegram updates: {e}; retrying in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            },
        }
    }
}

/// A cheap request once a minute keeps a connection open, so updates (invitations)
/// keep arriving while no call is being checked; it also notices a revoked session.
async fn keep_connected(rpc: Grammers) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + IDLE_PING, IDLE_PING);
    loop {
        tick.tick().await;
        if let Err(e) = rpc.client.invoke(&tl::functions::updates::GetState {}).await {
            match classify("updates.getState", e) {
                e @ TelegramError::NotLoggedIn(_) => {
                    tracing::error!("{e}");
                    return;
                }
                e => tracing::warn!("{e}; retrying in {IDLE_PING:?}"),
            }
        }
    }
}

/// The local address our media sockets bind: `media_ip`, or else this machine's
/// address on its default route.
pub fn media_ip(opts: &MtprotoOptions) -> IpAddr {
    opts.media_ip.unwrap_or_else(default_route_ip)
}

/// This machine's address on its default route: what Telegram's media servers can
/// reach. Found by "connecting" a UDP socket, which sends nothing.
fn default_route_ip() -> IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| {
        s.connect("149.154.167.50:443")?; // a Telegram data centre
        s.local_addr()
    });
    match probe {
        Ok(a) => a.ip(),
        Err(e) => {
            tracing::warn!("no default route ({e}); media sockets bind 0.0.0.0 — set telegram.media_ip");
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        }
    }
}

/// Questions `login` asks; a terminal in practice.
pub trait Prompt {
    fn line(&mut self, question: &str) -> io::Result<String>;
    /// Asked without echo.
    fn secret(&mut self, question: &str) -> io::Result<String>;
}

/// Who a session is signed in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub username: Option<String>,
}

impl std::fmt::Display for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {}", self.name, self.id)?;
        if let Some(u) = &self.username {
            write!(f, ", @{u}")?;
        }
        write!(f, ")")
    }
}

fn account(u: &grammers_client::peer::User) -> Person {
    Person { id: u.id().bare_id().unwrap_or_default(), name: u.full_name(), username: u.username().map(str::to_owned) }
}

/// Tries the code and the 2FA password this many times before giving up.
const ATTEMPTS: usize = 3;

/// Signs the bot's session in with `telegram.bot_token` (no questions: the token is
/// the credential), unless it already is.
pub async fn login_bot(opts: &MtprotoOptions) -> Result<Option<Person>, LoginError> {
    let Some(token) = &opts.bot_token else { return Ok(None) };
    let conn = connect_bot(opts).await?;
    let client = &conn.rpc.client;
    if signed_in_as(&conn.rpc.session).await.is_some()
        && client.is_authorized().await.map_err(|e| classify("updates.getState", e))?
    {
        let me = client.get_me().await.map_err(|e| classify("users.getUsers", e))?;
        return Ok(Some(account(&me)));
    }
    let user = client.bot_sign_in(token, &opts.api_hash).await.map_err(|e| {
        match classify("auth.importBotAuthorization", e) {
            TelegramError::Rpc { name, .. } if name.starts_with("ACCESS_TOKEN") => {
                LoginError::SignIn("telegram.bot_token is not a valid token; copy it again from @BotFather".into())
            }
            e => LoginError::Telegram(e),
        }
    })?;
    Ok(Some(account(&user)))
}

/// Signs the options' session in, asking `prompt` for the phone, code and password.
pub async fn login(opts: &MtprotoOptions, prompt: &mut dyn Prompt) -> Result<Person, LoginError> {
    let conn = connect(opts).await?;
    let client = &conn.rpc.client;
    if signed_in_as(&conn.rpc.session).await.is_some()
        && client.is_authorized().await.map_err(|e| classify("updates.getState", e))?
    {
        let me = client.get_me().await.map_err(|e| classify("users.getUsers", e))?;
        return Ok(account(&me));
    }
    let phone = prompt.line("Phone number (international format, e.g. +15551234567): ")?;
    let token: LoginToken =
        client.request_login_code(&phone, &opts.api_hash).await.map_err(|e| classify("auth.sendCode", e))?;
    let mut outcome = Err(SignInError::InvalidCode);
    for _ in 0..ATTEMPTS {
        let code = prompt.line("Login code (sent to your Telegram app): ")?;
        outcome = client.sign_in(&token, &code).await;
        if !matches!(outcome, Err(SignInError::InvalidCode)) {
            break;
        }
        eprintln!("That code is not valid; try again.");
    }
    let user = match outcome {
        Ok(user) => user,
        Err(SignInError::PasswordRequired(mut token)) => {
            let mut tries = 0;
            loop {
                let hint = token.hint().map(|h| format!(" (hint: {h})")).unwrap_or_default();
                let password = prompt.secret(&format!("Two-step verification password{hint}: "))?;
                match client.check_password(token, password.trim()).await {
                    Ok(user) => break user,
                    Err(SignInError::InvalidPassword(t)) if tries + 1 < ATTEMPTS => {
                        eprintln!("Wrong password; try again.");
                        token = t;
                        tries += 1;
                    }
                    Err(e) => return Err(LoginError::SignIn(e.to_string())),
                }
            }
        }
        Err(SignInError::SignUpRequired) => {
            return Err(LoginError::SignIn(format!(
                "{phone} has no Telegram account; create one in an official app first"
            )));
        }
        Err(e) => return Err(LoginError::SignIn(e.to_string())),
    };
    Ok(account(&user))
}

/// `whoami`: asks Telegram who the session is.
pub async fn whoami(opts: &MtprotoOptions) -> Result<Person, TelegramError> {
    let (conn, _) = connect_signed_in(opts).await?;
    let me = tokio::time::timeout(ANSWER_TIMEOUT, conn.rpc.client.get_me())
        .await
        .map_err(|_| TelegramError::Network {
            request: "users.getUsers",
            reason: format!("no answer within {ANSWER_TIMEOUT:?}"),
        })?
        .map_err(|e| classify("users.getUsers", e))?;
    Ok(account(&me))
}

/// Why `login` failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Telegram(#[from] TelegramError),
    #[error("reading the answer: {0}")]
    Prompt(#[from] io::Error),
    #[error("signing in failed: {0}")]
    SignIn(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_new_session_is_private_and_not_signed_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/me.session");
        let session = open_session(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(signed_in_as(&session).await, None);
    }

    #[tokio::test]
    async fn a_loose_session_is_tightened_and_a_corrupt_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loose.session");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        open_session(&path).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let bad = dir.path().join("bad.session");
        std::fs::write(&bad, vec![0x42u8; 8192]).unwrap();
        let err = open_session(&bad).await.err().expect("garbage is not a session").to_string();
        assert!(err.contains("bad.session") && err.contains("wasmcalls login"), "{err}");
    }
}
