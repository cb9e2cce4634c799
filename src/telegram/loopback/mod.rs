//! The loopback Telegram: a local stand-in for Telegram's group-call media server.
//!
//! It takes the same join JSON Telegram takes, answers with a Telegram-format
//! transport JSON (ICE-lite, string-typed candidates, audio and video sections), and
//! terminates the WebRTC connection with its own webrtc-rs peer ([`peer`]), which
//! accepts clients in either ICE role, as Telegram's media servers do, and decodes the
//! Opus it receives. What each call heard — decoded audio and packet counters — is
//! kept per call so the CLI can write it to a WAV and tests can compare it to the
//! source ([`recorder`]). Its account, bot, chats and the people in them are simulated
//! ([`chats`], [`talk`], [`roster`]); every update is Telegram's TL ([`updates`]),
//! routed like Telegram's; scripts and tests drive it over HTTP ([`control`]).

mod chats;
pub mod control;
pub mod faults;
mod peer;
mod recorder;
mod roster;
mod speech;
mod talk;
pub mod updates;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

pub use chats::Chat;
pub use peer::offer_from_join;
pub use recorder::{HeardCall, HeardFrame, HeardStats};
pub use speech::Spoken;
pub use talk::{File, Posted, Press, ShownButton};
pub use updates::Upload;

use self::roster::Entry;
use super::messages::{
    Account, Bot, Identity, JoinOptions, MemberStatus, Message, MessageId, Outgoing, Participant, ParticipantPage,
    TextFormat,
};
use super::tl::peer_of;
use super::{BoxFuture, ChatId, Invite, Telegram, TelegramError, Update};
use crate::transport::{JoinParams, TransportAnswer};

/// How the loopback treats what it receives.
#[derive(Debug, Clone)]
pub struct LoopbackOptions {
    /// Address the loopback's media sockets bind to.
    pub bind_ip: IpAddr,
    /// Decode Opus (off only for load benchmarks, which count packets).
    pub decode: bool,
    /// Keep decoded audio in memory so tests can read it back.
    pub keep_audio: bool,
    /// Stream what each participant hears to `<dir>/chat<chat>-ssrc<ssrc>.wav`.
    pub record_dir: Option<PathBuf>,
    /// The simulated account's user id (the first account's, when there are several).
    pub user_id: i64,
    /// Several simulated accounts, each a member of its own chats; none: one account,
    /// `main`, with `user_id`, a member of every chat.
    pub accounts: Vec<SimAccount>,
    /// The simulated bot account, if there is one.
    pub bot: Option<Bot>,
    /// The simulated chats; `None` lets any chat id be joined.
    pub chats: Option<Vec<Chat>>,
    /// Where the HTTP control endpoint listens (kick, invite, end calls…), if anywhere.
    pub control: Option<SocketAddr>,
    /// A bad network in front of every participant's media, if any.
    pub faults: faults::Faults,
}

/// One of several simulated accounts (`[[accounts]]` without `[telegram]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimAccount {
    pub name: String,
    pub user_id: i64,
    /// The chats it is a member of; `None`: every chat.
    pub chats: Option<Vec<ChatId>>,
}

/// The name of the only account when none are configured.
pub const MAIN_ACCOUNT: &str = "main";

/// User id of the loopback's account unless configured.
pub const DEFAULT_USER_ID: i64 = 777_000_001;
/// User id and username of the loopback's bot unless configured.
pub const DEFAULT_BOT_ID: i64 = 777_000_002;
pub const DEFAULT_BOT_USERNAME: &str = "wasmcalls_bot";
/// The simulated person scripts speak as unless they say otherwise.
pub const DEFAULT_PERSON: i64 = 424_242;
/// The largest file a simulated person may upload.
pub const MAX_UPLOAD: usize = 64 << 20;

impl Default for LoopbackOptions {
    fn default() -> Self {
        LoopbackOptions {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            decode: true,
            keep_audio: false,
            record_dir: None,
            user_id: DEFAULT_USER_ID,
            accounts: Vec::new(),
            bot: Some(Bot { id: DEFAULT_BOT_ID, username: DEFAULT_BOT_USERNAME.into() }),
            chats: None,
            control: None,
            faults: faults::Faults::default(),
        }
    }
}

/// Participants that left kept readable in [`Loopback::calls`], newest last; older
/// ones are counted into [`Loopback::heard_totals`] and forgotten, so a loopback that
/// serves churning calls for days does not grow with each.
pub const LEFT_KEPT: usize = 64;

/// What the loopback heard from every participant since it started, including those
/// it no longer keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeardTotals {
    pub participants: u64,
    pub packets: u64,
    pub lost: u64,
}

impl HeardTotals {
    fn add(&mut self, s: &HeardStats) {
        self.participants += 1;
        self.packets += s.packets;
        self.lost += s.lost;
    }
}

/// The embedded loopback Telegram, as one of the host's accounts sees it (the first,
/// unless made by [`Loopback::accounts`]). Cloning shares the same server.
#[derive(Clone)]
pub struct Loopback {
    inner: Arc<Inner>,
    /// Which account this is, in [`LoopbackOptions::accounts`]' order.
    account: usize,
}

/// Every participant that joined, and the totals of those forgotten since (beyond
/// [`LEFT_KEPT`], or replaced). One lock for both: as two, a join replacing a
/// participant and a concurrent one adding its own took them in opposite orders and
/// deadlocked the loopback.
#[derive(Default)]
struct Joined {
    calls: Vec<Arc<HeardCall>>,
    forgotten: HeardTotals,
}

struct Inner {
    opts: LoopbackOptions,
    calls: Mutex<Joined>,
    world: chats::World,
    /// Bumped on every join, so callers can await a participant.
    joins: tokio::sync::watch::Sender<u64>,
    /// When the network in front of the calls is down (with faults configured).
    outages: Arc<faults::Outages>,
    /// Simulated people talking in the calls.
    speech: speech::Speech,
}

impl Loopback {
    /// A loopback server; its peers run as tasks on the current tokio runtime. The
    /// record folder is created if missing.
    pub fn new(opts: LoopbackOptions) -> Result<Self, TelegramError> {
        // Outages are on the network's clock, which starts with the loopback: a call
        // that rejoins meets the same outage, not a new one.
        let outages = Arc::new(faults::Outages::scheduled(&opts.faults, std::time::Instant::now()));
        if let Some(d) = &opts.record_dir {
            std::fs::create_dir_all(d).map_err(|e| {
                TelegramError::Loopback(format!("cannot create the record folder {}: {e}", d.display()))
            })?;
        }
        let mut opts = opts;
        if opts.accounts.is_empty() {
            opts.accounts = vec![SimAccount { name: MAIN_ACCOUNT.into(), user_id: opts.user_id, chats: None }];
        }
        opts.user_id = opts.accounts[0].user_id;
        let world = chats::World::new(opts.chats.clone(), &opts.accounts, opts.bot.clone());
        let joins = tokio::sync::watch::Sender::new(0);
        let speech = speech::Speech::default();
        Ok(Loopback {
            inner: Arc::new(Inner { opts, calls: Mutex::default(), world, joins, outages, speech }),
            account: 0,
        })
    }

    /// Every account's view of this loopback, named, in order: what the host joins
    /// and chats through.
    pub fn accounts(&self) -> Vec<(String, Loopback)> {
        let accounts = &self.inner.opts.accounts;
        accounts.iter().enumerate().map(|(i, a)| (a.name.clone(), Loopback { account: i, ..self.clone() })).collect()
    }

    /// This view's account's user id.
    fn me_id(&self) -> i64 {
        self.inner.world.members[self.account].id
    }

    /// Blackholes the network in front of every call from now for `len` — for calls
    /// joined with faults configured (`[loopback.faults]`), which pass through a relay.
    pub fn outage(&self, len: std::time::Duration) {
        self.inner.outages.start_now(len);
    }

    /// Moves the media server, as Telegram sometimes moves a call: every participant's
    /// connection is dropped — its socket closes, so nothing answers at that address
    /// again — while the call still lists them, and every join from now on is answered
    /// with a new address. Clients find out as they would from Telegram: their path
    /// goes silent (or the keep-alive's rejoin names another server). How many
    /// connections were dropped.
    pub fn move_media(&self) -> usize {
        let mut moved = 0;
        self.hang_up_where(|_| {
            moved += 1;
            true
        });
        moved
    }

    /// Whether calls pass through the fault relay (faults are configured).
    pub fn faulty(&self) -> bool {
        self.inner.opts.faults.any()
    }

    /// Serves the control endpoint ([`control`]) on `addr`: the address it listens on,
    /// and the task serving it.
    pub async fn serve_control(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), TelegramError> {
        let fail =
            |e: std::io::Error| TelegramError::Loopback(format!("loopback.control: cannot listen on {addr}: {e}"));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(fail)?;
        let bound = listener.local_addr().map_err(fail)?;
        let router = control::router(self.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("loopback control endpoint stopped: {e}");
            }
        });
        Ok((bound, task))
    }

    /// Answers one join JSON (a string, exactly as Telegram receives it) with a
    /// transport JSON string, and starts the peer that will receive the call.
    pub async fn join_json(&self, chat: ChatId, params_json: &str) -> Result<String, TelegramError> {
        let params = JoinParams::parse(params_json)?;
        Ok(self.join_params(chat, &params, &JoinOptions::default()).await?.to_json())
    }

    async fn join_params(
        &self,
        chat: ChatId,
        params: &JoinParams,
        options: &JoinOptions,
    ) -> Result<TransportAnswer, TelegramError> {
        if !self.inner.world.members[self.account].member_of(chat) {
            // A private group's call is only for its members, as on Telegram.
            return Err(refused("phone.joinGroupCall", 400, "CHANNEL_PRIVATE"));
        }
        if !self.inner.world.has_active_call(chat) {
            return Err(TelegramError::NoActiveGroupCall(chat));
        }
        let peer = match options.join_as {
            None => self.me_id(),
            // Channels only, as Telegram: a user cannot speak as another user.
            Some(c) if c <= -1_000_000_000_000 => c,
            Some(_) => return Err(refused("phone.joinGroupCall", 400, "JOIN_AS_PEER_INVALID")),
        };
        // A rejoin with the same SSRC replaces the old participant, silently, as
        // Telegram does.
        let ssrc = params.ssrc_u32();
        self.hang_up_where(|c| c.ssrc() == ssrc);
        let heard = Arc::new(HeardCall::new(chat, params.ssrc_u32(), &self.inner.opts));
        if let Some(dir) = &self.inner.opts.record_dir {
            let path = dir.join(format!("chat{chat}-ssrc{}.wav", params.ssrc_u32()));
            heard
                .record_to(&path)
                .map_err(|e| TelegramError::Loopback(format!("cannot record to {}: {e}", path.display())))?;
        }
        let speech = self.inner.speech.listen();
        let answer = peer::spawn(params, &self.inner.opts, self.inner.outages.clone(), heard.clone(), speech).await?;
        self.keep(heard);
        let ours = Entry { peer, source: params.ssrc_u32(), muted: options.start_muted, account: Some(self.account) };
        let ours = self.inner.world.roster.lock().join(chat, ours);
        self.announce(chat, &ours, false);
        self.inner.joins.send_modify(|n| *n += 1);
        Ok(answer)
    }

    /// `updateGroupCallParticipants` about `entry` in `chat`.
    fn announce(&self, chat: ChatId, entry: &Entry, left: bool) {
        let update = updates::participants(chats::call_of(chat), vec![entry.tl(left)]);
        self.inner.world.emit(chat, update, &[], &[Account::User]);
    }

    /// Disconnects and forgets every participant matching `pred`.
    fn hang_up_where(&self, mut pred: impl FnMut(&HeardCall) -> bool) {
        let mut joined = self.inner.calls.lock();
        let Joined { calls, forgotten } = &mut *joined;
        calls.retain(|c| {
            if pred(c) {
                c.hang_up();
                forgotten.add(&c.stats());
                return false;
            }
            true
        });
    }

    /// Adds a participant, forgetting the oldest that left beyond [`LEFT_KEPT`].
    fn keep(&self, heard: Arc<HeardCall>) {
        let mut joined = self.inner.calls.lock();
        let Joined { calls, forgotten } = &mut *joined;
        forget_left(calls, LEFT_KEPT, forgotten);
        calls.push(heard);
    }

    /// Packets and losses over every participant since the loopback started.
    pub fn heard_totals(&self) -> HeardTotals {
        let joined = self.inner.calls.lock();
        let mut totals = joined.forgotten;
        for c in &joined.calls {
            totals.add(&c.stats());
        }
        totals
    }

    /// The participant that joined with `ssrc`, if any.
    pub fn call(&self, ssrc: u32) -> Option<Arc<HeardCall>> {
        self.inner.calls.lock().calls.iter().find(|c| c.ssrc() == ssrc).cloned()
    }

    /// Every participant that joined, in order.
    pub fn calls(&self) -> Vec<Arc<HeardCall>> {
        self.inner.calls.lock().calls.clone()
    }

    /// Waits until someone is in `chat`'s call and returns that participant.
    pub async fn participant(&self, chat: ChatId) -> Arc<HeardCall> {
        let mut rx = self.inner.joins.subscribe();
        loop {
            if let Some(c) = self.calls().into_iter().rev().find(|c| c.chat() == chat) {
                return c;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The simulated chats (empty when any chat may be joined).
    pub fn chats(&self) -> Vec<Chat> {
        self.inner.world.chats()
    }

    fn hang_up_chat(&self, chat: ChatId) {
        self.hang_up_where(|c| c.chat() == chat);
    }

    /// Removes the account from `chat`: its participant is dropped and a kicked
    /// update (`updateChannel` with `channelForbidden`) goes out.
    pub fn kick(&self, chat: ChatId) {
        self.hang_up_chat(chat);
        self.inner.speech.hush_chat(chat);
        self.inner.world.kick(chat);
    }

    /// Sends an invitation to `chat`'s group call from `inviter`.
    pub fn invite(&self, chat: ChatId, inviter: i64) -> Invite {
        self.inner.world.invite(chat, inviter)
    }

    /// Starts a voice chat in `chat`.
    pub fn start_call(&self, chat: ChatId) {
        self.inner.world.set_call(chat, true);
    }

    /// Ends `chat`'s voice chat (`groupCallDiscarded`): participants are dropped.
    pub fn end_call(&self, chat: ChatId) {
        self.hang_up_chat(chat);
        self.inner.speech.hush_chat(chat);
        self.inner.world.set_call(chat, false);
    }

    /// Sends an arbitrary update, delivered only as raw JSON.
    pub fn raw_update(&self, update: serde_json::Value) {
        self.inner.world.raw(update);
    }

    /// The account that sends a message with `buttons`: the bot when there is one;
    /// the user account only without buttons.
    fn sender_for(&self, buttons: &[Vec<super::messages::Button>]) -> Result<i64, TelegramError> {
        match &self.inner.opts.bot {
            Some(b) => Ok(b.id),
            None if buttons.is_empty() => Ok(self.me_id()),
            None => Err(TelegramError::NoBot),
        }
    }

    /// Records `post` in `chat` and sends it to the accounts that would receive it.
    fn post(&self, chat: ChatId, post: Posted) -> MessageId {
        let (id, said, message) = {
            let mut talk = self.inner.world.talk.lock();
            let id = talk.post(chat, post);
            let posted = talk.get(chat, id).expect("just posted");
            let said = posted.said(chat, self.inner.world.members.iter().any(|m| m.id == posted.from));
            let message = Message {
                chat,
                id,
                sender: posted.from,
                text: posted.text.clone(),
                reply_to: None,
                media: None,
                date: posted.date,
                seen_by: Account::User,
            };
            let reply = posted.reply_to.map(|r| super::messages::Reply { message: r, media: None });
            (id, said, Message { reply_to: reply, ..message })
        };
        let to = self.inner.world.audience(chat, &message);
        self.inner.world.emit(chat, updates::new_message(peer_of(chat), said), &[], &to);
        id
    }

    /// `from` says `text` in `chat` (replying to message `reply_to`): the message's id.
    pub fn say(&self, chat: ChatId, from: i64, text: &str, reply_to: Option<MessageId>) -> Result<MessageId, String> {
        self.check_person(chat, from)?;
        if text.trim().is_empty() {
            return Err("a message needs some text".into());
        }
        if let Some(r) = reply_to
            && self.inner.world.talk.lock().get(chat, r).is_none()
        {
            return Err(format!("chat {chat} has no message {r} to reply to"));
        }
        let mut post = Posted::new(from, text.to_owned());
        post.reply_to = reply_to;
        Ok(self.post(chat, post))
    }

    /// `from` uploads a file to `chat` (an audio file, a voice note or a document),
    /// captioned `caption`: the message's id.
    pub fn upload(&self, chat: ChatId, from: i64, file: File, caption: &str) -> Result<MessageId, String> {
        self.check_person(chat, from)?;
        if file.bytes.is_empty() {
            return Err(format!("{} is empty", file.name));
        }
        if file.bytes.len() > MAX_UPLOAD {
            return Err(format!(
                "{} is {} bytes; the loopback takes at most {MAX_UPLOAD}",
                file.name,
                file.bytes.len()
            ));
        }
        Ok(self.post(chat, Posted::new(from, caption.to_owned()).with_file(file)))
    }

    /// `from` presses the button carrying `data` under the bot's message `message`:
    /// the callback query's id.
    pub fn press(&self, chat: ChatId, message: MessageId, from: i64, data: &str) -> Result<String, String> {
        self.check_person(chat, from)?;
        let bot = self.inner.opts.bot.clone().ok_or("the loopback has no bot: only bots' messages have buttons")?;
        let query = {
            let mut talk = self.inner.world.talk.lock();
            let post = talk.get(chat, message).ok_or(format!("chat {chat} has no message {message}"))?;
            if post.deleted {
                return Err(format!("message {message} in chat {chat} was deleted"));
            }
            let has = post.buttons.iter().flatten().any(|b| b.data.as_deref() == Some(data));
            if post.from != bot.id || !has {
                return Err(format!("message {message} in chat {chat} has no button with data {data:?}"));
            }
            talk.press(chat, message, from, data)
        };
        let id = query.parse::<i64>().unwrap_or_default();
        let update = updates::callback_query(id, from, peer_of(chat), message, data);
        self.inner.world.emit(chat, update, &[], &[Account::Bot]);
        Ok(query)
    }

    /// `chat`'s transcript: every message, with edits, deletions, buttons and presses.
    pub fn transcript(&self, chat: ChatId) -> Vec<Posted> {
        self.inner.world.talk.lock().transcript(chat)
    }

    /// A simulated person joins `chat`'s call.
    pub fn person_joins(&self, chat: ChatId, user: i64, muted: bool) -> Result<(), String> {
        self.check_person(chat, user)?;
        if !self.inner.world.has_active_call(chat) {
            return Err(format!("chat {chat} has no voice chat to join; start one first"));
        }
        let entry = self.inner.world.roster.lock().join_user(chat, user, muted);
        self.announce(chat, &entry, false);
        Ok(())
    }

    /// A simulated person leaves `chat`'s call.
    pub fn person_leaves(&self, chat: ChatId, user: i64) -> Result<(), String> {
        let entry =
            self.inner.world.roster.lock().leave(chat, user).ok_or(format!("{user} is not in chat {chat}'s call"))?;
        self.inner.speech.hush(chat, user);
        self.announce(chat, &entry, true);
        Ok(())
    }

    /// A simulated person mutes (or unmutes) in `chat`'s call.
    pub fn person_mutes(&self, chat: ChatId, user: i64, muted: bool) -> Result<(), String> {
        let changed = {
            let mut roster = self.inner.world.roster.lock();
            if roster.page(chat, None, 1000).map_or(true, |p| !p.participants.iter().any(|p| p.peer == user)) {
                return Err(format!("{user} is not in chat {chat}'s call"));
            }
            roster.set_muted(chat, muted, |e| e.peer == user)
        };
        if muted {
            self.inner.speech.hush(chat, user);
        }
        if let Some(entry) = changed {
            self.announce(chat, &entry, false);
        }
        Ok(())
    }

    /// A simulated person says the audio of `file` in `chat`'s call, joining it first
    /// if they are not in it (and the server forwards their stream to every client in
    /// the call, as Telegram's does): how long they will talk, when the file says.
    /// `keep` lives as long as the speech (a temporary file holding an upload).
    pub async fn speak(
        &self,
        chat: ChatId,
        user: i64,
        file: PathBuf,
        keep: Option<tempfile::TempPath>,
    ) -> Result<Option<std::time::Duration>, String> {
        self.check_person(chat, user)?;
        let listed = self.inner.world.roster.lock().page(chat, None, 1000).ok();
        let me = listed.and_then(|p| p.participants.into_iter().find(|p| p.peer == user));
        let ssrc = match me {
            Some(p) if p.muted => {
                return Err(format!("{user} is muted in chat {chat}'s call: unmute them first (participant unmute)"));
            }
            Some(p) => p.source,
            None => {
                self.person_joins(chat, user, false)?;
                let roster = self.inner.world.roster.lock();
                let page = roster.page(chat, None, 1000).map_err(|e| e.to_string())?;
                page.participants.iter().find(|p| p.peer == user).map(|p| p.source).ok_or("joining the call failed")?
            }
        };
        let what = file.display().to_string();
        self.inner.speech.speak(chat, user, ssrc, file, keep).await.map_err(|e| format!("{what}: {e}"))
    }

    /// [`Loopback::speak`] for a file sent as bytes (the control endpoint's upload).
    pub async fn speak_bytes(
        &self,
        chat: ChatId,
        user: i64,
        name: &str,
        bytes: &[u8],
    ) -> Result<Option<std::time::Duration>, String> {
        use std::io::Write;
        if bytes.is_empty() {
            return Err(format!("{name} is empty"));
        }
        // The name's extension tells raw PCM from the rest, as for any file.
        let ext = Path::new(name).extension().and_then(|e| e.to_str()).unwrap_or("bin");
        let mut tmp = tempfile::Builder::new()
            .suffix(&format!(".{ext}"))
            .tempfile()
            .map_err(|e| format!("cannot hold {name} in a temporary file: {e}"))?;
        tmp.write_all(bytes).map_err(|e| format!("cannot hold {name} in a temporary file: {e}"))?;
        let path = tmp.into_temp_path();
        // Errors name the upload, not the temporary file holding it.
        let held = path.display().to_string();
        self.speak(chat, user, path.to_path_buf(), Some(path)).await.map_err(|e| e.replace(&held, name))
    }

    /// Simulated people are users (positive ids) in chats the loopback has.
    fn check_person(&self, chat: ChatId, user: i64) -> Result<(), String> {
        if user <= 0 {
            return Err(format!("{user} is not a user id (users are positive)"));
        }
        if self.inner.world.is_ours(user) {
            return Err(format!("{user} is one of the host's own accounts, not a person"));
        }
        if !self.inner.world.knows(chat) {
            return Err(format!("the loopback has no chat {chat}"));
        }
        Ok(())
    }
}

impl Telegram for Loopback {
    fn name(&self) -> &'static str {
        "loopback"
    }

    fn me(&self) -> Result<i64, TelegramError> {
        Ok(self.me_id())
    }

    fn updates(&self) -> tokio::sync::broadcast::Receiver<Update> {
        self.inner.world.subscribe(self.account)
    }

    fn identity(&self) -> Result<Identity, TelegramError> {
        Ok(Identity { user: self.me_id(), bot: self.inner.opts.bot.clone() })
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            // Round-trip through the wire format, exactly what Telegram would parse.
            let params = JoinParams::parse(&params.to_json())?;
            let json = self.join_params(chat, &params, options).await?.to_json();
            Ok(TransportAnswer::parse(&json)?)
        })
    }

    fn leave(&self, _chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            // What it heard stays readable (`calls`), as after any hang-up.
            if let Some(c) = self.call(ssrc) {
                c.hang_up();
            }
            let left = self.inner.world.roster.lock().leave_source(ssrc);
            if let Some((chat, entry)) = left {
                self.announce(chat, &entry, true);
            }
            Ok(())
        })
    }

    fn create_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            if !self.inner.world.knows(chat) {
                return Err(refused("phone.createGroupCall", 400, "PEER_ID_INVALID"));
            }
            if !self.inner.world.has_active_call(chat) {
                self.start_call(chat);
            }
            Ok(())
        })
    }

    fn discard_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            if !self.inner.world.has_active_call(chat) {
                return Err(refused("phone.discardGroupCall", 400, "GROUPCALL_ALREADY_DISCARDED"));
            }
            self.end_call(chat);
            Ok(())
        })
    }

    fn set_muted(&self, chat: ChatId, ssrc: u32, muted: bool) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let changed =
                self.inner.world.roster.lock().set_muted(chat, muted, |e| e.account.is_some() && e.source == ssrc);
            if let Some(entry) = changed {
                self.announce(chat, &entry, false);
            }
            Ok(())
        })
    }

    fn participants<'a>(
        &'a self,
        chat: ChatId,
        offset: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<ParticipantPage, TelegramError>> {
        Box::pin(async move {
            if !self.inner.world.has_active_call(chat) {
                return Err(TelegramError::NoActiveGroupCall(chat));
            }
            self.inner
                .world
                .roster
                .lock()
                .page(chat, offset, limit)
                .map_err(|_| refused("phone.getGroupParticipants", 400, "OFFSET_INVALID"))
        })
    }

    fn participant_by_source(
        &self,
        chat: ChatId,
        ssrc: u32,
    ) -> BoxFuture<'_, Result<Option<Participant>, TelegramError>> {
        Box::pin(async move { Ok(self.inner.world.roster.lock().by_source(chat, ssrc)) })
    }

    fn send<'a>(&'a self, chat: ChatId, message: &'a Outgoing) -> BoxFuture<'a, Result<MessageId, TelegramError>> {
        Box::pin(async move {
            let from = self.sender_for(&message.buttons)?;
            if !self.inner.world.knows(chat) {
                return Err(refused("messages.sendMessage", 400, "PEER_ID_INVALID"));
            }
            let mut post = formatted(Posted::new(from, String::new()), message).with_buttons(message.buttons.clone());
            post.reply_to = message.reply_to.filter(|&id| self.inner.world.talk.lock().get(chat, id).is_some());
            Ok(self.post(chat, post))
        })
    }

    fn edit<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        Box::pin(async move {
            let editor = self.sender_for(&message.buttons)?;
            let said = {
                let mut talk = self.inner.world.talk.lock();
                let post =
                    talk.get_mut(chat, id).filter(|p| !p.deleted).ok_or(TelegramError::NoMessage { chat, id })?;
                if post.from != editor {
                    return Err(refused("messages.editMessage", 403, "MESSAGE_AUTHOR_REQUIRED"));
                }
                let edited =
                    formatted(Posted::new(editor, String::new()), message).with_buttons(message.buttons.clone());
                if edited.text == post.text && edited.markup == post.markup && edited.entities == post.entities {
                    return Err(refused("messages.editMessage", 400, "MESSAGE_NOT_MODIFIED"));
                }
                post.text = edited.text;
                post.entities = edited.entities;
                post.buttons = edited.buttons;
                post.markup = edited.markup;
                post.edited = true;
                post.said(chat, false)
            };
            self.inner.world.emit(chat, updates::edited_message(peer_of(chat), said), &[], &[Account::User]);
            Ok(())
        })
    }

    fn delete(&self, chat: ChatId, id: MessageId) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            {
                let mut talk = self.inner.world.talk.lock();
                let post =
                    talk.get_mut(chat, id).filter(|p| !p.deleted).ok_or(TelegramError::NoMessage { chat, id })?;
                post.deleted = true;
            }
            self.inner.world.emit(chat, updates::deleted_messages(peer_of(chat), vec![id]), &[], &[Account::User]);
            Ok(())
        })
    }

    fn answer_callback<'a>(
        &'a self,
        query: &'a str,
        text: Option<&'a str>,
        alert: bool,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        Box::pin(async move {
            if self.inner.opts.bot.is_none() {
                return Err(TelegramError::NoBot);
            }
            if self.inner.world.talk.lock().answer(query, text, alert) {
                Ok(())
            } else {
                Err(refused("messages.setBotCallbackAnswer", 400, "QUERY_ID_INVALID"))
            }
        })
    }

    fn member_status(&self, chat: ChatId, user: i64) -> BoxFuture<'_, Result<MemberStatus, TelegramError>> {
        Box::pin(async move {
            if !self.inner.world.knows(chat) {
                return Err(refused("channels.getParticipant", 400, "CHANNEL_INVALID"));
            }
            let world = &self.inner.world;
            let ours = world.members.iter().find(|m| m.id == user);
            Ok(if let Some(account) = ours {
                // The first account created the chats it is in.
                match (account.member_of(chat), user == world.me) {
                    (true, true) => MemberStatus::Creator,
                    (true, false) => MemberStatus::Member,
                    (false, _) => MemberStatus::Left,
                }
            } else if world.admins(chat).contains(&user) {
                MemberStatus::Administrator
            } else if world.bot.as_ref().is_some_and(|b| b.id == user)
                || world.talk.lock().has_spoken(chat, user)
                || world
                    .roster
                    .lock()
                    .page(chat, None, 1000)
                    .is_ok_and(|p| p.participants.iter().any(|p| p.peer == user))
            {
                MemberStatus::Member
            } else {
                // Telegram answers USER_NOT_PARTICIPANT; a standing says it better.
                MemberStatus::Left
            })
        })
    }

    fn download<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        to: &'a Path,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<u64, TelegramError>> {
        Box::pin(async move {
            let file = {
                let talk = self.inner.world.talk.lock();
                let post = talk.get(chat, id).filter(|p| !p.deleted).ok_or(TelegramError::NoMessage { chat, id })?;
                post.file.clone().ok_or(TelegramError::NoMedia { chat, id })?
            };
            let size = file.bytes.len() as u64;
            if size > max_bytes {
                return Err(TelegramError::TooLarge { chat, id, size, cap: max_bytes });
            }
            tokio::fs::write(to, &*file.bytes)
                .await
                .map_err(|e| TelegramError::Loopback(format!("cannot write {}: {e}", to.display())))?;
            Ok(size)
        })
    }
}

/// A refusal as Telegram would send it.
fn refused(request: &'static str, code: i32, name: &str) -> TelegramError {
    super::error::refusal(request, code, name, None)
}

/// `post` with `message`'s text, parsed as Telegram clients parse Markdown and HTML.
fn formatted(mut post: Posted, message: &Outgoing) -> Posted {
    let (text, entities) = match message.format {
        TextFormat::Plain => (message.text.clone(), Vec::new()),
        TextFormat::Markdown => crate::telegram::markdown::parse(&message.text),
        TextFormat::Html => grammers_client::parsers::parse_html_message(&message.text),
    };
    post.text = text;
    post.entities = entities;
    post
}

/// Forgets the oldest participants that left beyond `keep`, counting them into `into`.
fn forget_left(calls: &mut Vec<Arc<HeardCall>>, keep: usize, into: &mut HeardTotals) {
    let mut surplus = calls.iter().filter(|c| c.left()).count().saturating_sub(keep);
    calls.retain(|c| {
        let forget = surplus > 0 && c.left();
        if forget {
            surplus -= 1;
            into.add(&c.stats());
        }
        !forget
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_oldest_participants_that_left_are_forgotten_and_still_counted() {
        let opts = LoopbackOptions::default();
        let calls: Vec<Arc<HeardCall>> = (0..6).map(|i| Arc::new(HeardCall::new(-1, i, &opts))).collect();
        // 0, 2, 3 and 5 left; 1 and 4 are still connected.
        for i in [0, 2, 3, 5] {
            calls[i].on_state("left".into());
        }
        let (mut kept, mut totals) = (calls.clone(), HeardTotals::default());
        forget_left(&mut kept, 2, &mut totals);
        let ssrcs: Vec<u32> = kept.iter().map(|c| c.ssrc()).collect();
        assert_eq!(ssrcs, [1, 3, 4, 5], "the two oldest that left are gone, the connected ones stay");
        assert_eq!(totals.participants, 2);
        forget_left(&mut kept, 2, &mut totals);
        assert_eq!(kept.len(), 4, "nothing more to forget");
    }
}
