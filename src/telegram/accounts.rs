//! Several accounts behind one [`Telegram`]: music-bot operators run a few user
//! accounts ("assistants"), each a member of its own groups, and a join has to go
//! through one that is in the chat.
//!
//! [`Accounts`] holds the accounts in the order the config lists them. A join goes
//! through the first account the plugin may use (`JoinOptions::accounts`; none named:
//! any) that is a member of the chat — or, for a chat whose call we are in, the
//! account that holds it, so a rejoin keeps its participant. Everything about a chat
//! afterwards (leaving, muting, participants, messages) goes through the account that
//! holds its call, else the account that first told us of the chat.
//!
//! Updates from every account are merged into one stream, each said once: a message
//! two accounts saw arrives once; what concerns a call (kicked, participants, lost,
//! moved, ended, raw updates) comes only from the account that holds it; a button
//! press keeps the account it reached in its query id, so its answer goes back the same
//! way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::messages::{
    Identity, JoinOptions, MemberStatus, Message, MessageId, Outgoing, Participant, ParticipantPage, Recent,
};
use super::{BoxFuture, ChatId, Telegram, TelegramError, Update};
use crate::transport::{JoinParams, TransportAnswer};

/// Updates said once are remembered this long (in updates), to drop their repeats.
const REMEMBERED: usize = 4096;

/// One named account.
pub struct Member {
    /// As `[[accounts]] name` says: in `calls`, logs, metrics and plugins' grants.
    pub name: String,
    pub telegram: Arc<dyn Telegram>,
}

/// Several accounts as one Telegram side. Cloning shares them.
#[derive(Clone)]
pub struct Accounts {
    inner: Arc<Inner>,
}

struct Inner {
    members: Vec<Member>,
    /// The account holding each chat's call (set by a join, cleared by leaving).
    holders: Mutex<HashMap<ChatId, usize>>,
    /// The account that first told us of each chat, for chats without a call of ours.
    homes: Mutex<HashMap<ChatId, usize>>,
    /// Messages and button presses already passed on.
    said: Mutex<Recent<String>>,
    updates: broadcast::Sender<Update>,
}

impl Accounts {
    /// The accounts, in order (the first answers for the host: `me`, `identity`), and
    /// the tasks merging their updates, which the caller owns and aborts.
    pub fn new(members: Vec<Member>) -> (Accounts, Vec<tokio::task::JoinHandle<()>>) {
        assert!(!members.is_empty(), "at least one account");
        let inner = Arc::new(Inner {
            members,
            holders: Mutex::default(),
            homes: Mutex::default(),
            said: Mutex::new(Recent::new(REMEMBERED)),
            updates: broadcast::channel(1024).0,
        });
        let tasks = (0..inner.members.len())
            .map(|i| {
                let mut rx = inner.members[i].telegram.updates();
                let inner = inner.clone();
                tokio::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok(u) => {
                                if let Some(u) = inner.pass(i, u) {
                                    let _ = inner.updates.send(u);
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(n)) => {
                                tracing::warn!(account = %inner.members[i].name, "{n} updates were lost (too many at once)");
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                })
            })
            .collect();
        (Accounts { inner }, tasks)
    }

    /// The account holding `chat`'s call, if we are in it.
    pub fn holder(&self, chat: ChatId) -> Option<&str> {
        let i = *self.inner.holders.lock().get(&chat)?;
        Some(&self.inner.members[i].name)
    }

    /// The account a join of `chat` goes through, among those `allowed` (empty: any).
    async fn pick(&self, chat: ChatId, allowed: &[String]) -> Result<usize, TelegramError> {
        let members = &self.inner.members;
        let candidates: Vec<usize> =
            (0..members.len()).filter(|&i| allowed.is_empty() || allowed.contains(&members[i].name)).collect();
        let names = || candidates.iter().map(|&i| members[i].name.as_str()).collect::<Vec<_>>().join(", ");
        if let Some(&held) = self.inner.holders.lock().get(&chat) {
            // A rejoin: the same account, so Telegram replaces our participant.
            return if candidates.contains(&held) {
                Ok(held)
            } else {
                Err(TelegramError::NoMemberAccount { chat, accounts: names() })
            };
        }
        match candidates.as_slice() {
            [] => Err(TelegramError::NoMemberAccount { chat, accounts: String::new() }),
            // The only account: Telegram itself says whether it may join.
            [only] if members.len() == 1 => Ok(*only),
            _ => {
                for &i in &candidates {
                    let t = &members[i].telegram;
                    let status = match t.me() {
                        Ok(me) => t.member_status(chat, me).await,
                        Err(e) => Err(e),
                    };
                    match status {
                        Ok(MemberStatus::Left | MemberStatus::Banned) => {}
                        Ok(_) => return Ok(i),
                        Err(e) => tracing::debug!(chat, account = %members[i].name, "not usable here: {e}"),
                    }
                }
                Err(TelegramError::NoMemberAccount { chat, accounts: names() })
            }
        }
    }

    /// The account that acts in `chat`: its call's, else the one that told us of it.
    fn route(&self, chat: ChatId) -> &dyn Telegram {
        let i = self.inner.holders.lock().get(&chat).or(self.inner.homes.lock().get(&chat)).copied().unwrap_or(0);
        self.inner.members[i].telegram.as_ref()
    }
}

impl Inner {
    /// Whether `account` speaks for `chat`: it holds the chat's call, or nobody does
    /// and it was the first to tell us of the chat.
    fn speaks_for(&self, account: usize, chat: ChatId) -> bool {
        match self.holders.lock().get(&chat) {
            Some(&h) => h == account,
            None => *self.homes.lock().entry(chat).or_insert(account) == account,
        }
    }

    /// `update` from `account`, as the merged stream passes it on (or not).
    fn pass(&self, account: usize, update: Update) -> Option<Update> {
        let chat = match update {
            Update::Message(m) => {
                self.homes.lock().entry(m.chat).or_insert(account);
                return self.said.lock().first(said_key(&m)).then_some(Update::Message(m));
            }
            Update::Callback(mut q) => {
                if !self.said.lock().first(format!("q{}", q.id)) {
                    return None;
                }
                if self.members.len() > 1 {
                    q.id = format!("{account}:{}", q.id);
                }
                return Some(Update::Callback(q));
            }
            // Each account is invited by name: every invitation is news.
            Update::Invited(_) => return Some(update),
            Update::Raw { chat: None, .. } => return (account == 0).then_some(update),
            Update::Kicked(c) | Update::CallEnded(c) | Update::Lost { chat: c, .. } => {
                if !self.speaks_for(account, c) {
                    return None;
                }
                // The call is over: the next join picks afresh, while what is still said
                // about the chat (a late leave, its messages) goes through this account.
                if let Some(held) = self.holders.lock().remove(&c) {
                    self.homes.lock().insert(c, held);
                }
                return Some(update);
            }
            Update::Moved { chat, .. } | Update::Participants { chat, .. } | Update::Raw { chat: Some(chat), .. } => {
                chat
            }
        };
        self.speaks_for(account, chat).then_some(update)
    }
}

/// A message's key among those said. In a supergroup or channel every member sees the
/// same id; in a basic group each account numbers messages its own way, so what was said
/// counts.
fn said_key(m: &Message) -> String {
    if m.chat <= -1_000_000_000_000 {
        format!("m{}:{}:{:?}", m.chat, m.id, m.seen_by)
    } else {
        format!("m{}:{}:{}:{:?}:{}", m.chat, m.sender, m.date, m.seen_by, m.text)
    }
}

impl Telegram for Accounts {
    fn name(&self) -> &'static str {
        self.inner.members[0].telegram.name()
    }

    fn me(&self) -> Result<i64, TelegramError> {
        self.inner.members[0].telegram.me()
    }

    fn identity(&self) -> Result<Identity, TelegramError> {
        self.inner.members[0].telegram.identity()
    }

    fn account_of(&self, chat: ChatId) -> Option<String> {
        self.holder(chat).map(str::to_owned)
    }

    fn accounts(&self) -> Vec<(String, usize)> {
        let holders = self.inner.holders.lock();
        let held = |i: usize| holders.values().filter(|&&h| h == i).count();
        self.inner.members.iter().enumerate().map(|(i, m)| (m.name.clone(), held(i))).collect()
    }

    fn updates(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    fn join<'a>(
        &'a self,
        chat: ChatId,
        params: &'a JoinParams,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<TransportAnswer, TelegramError>> {
        Box::pin(async move {
            let i = self.pick(chat, &options.accounts).await?;
            let member = &self.inner.members[i];
            let answer = member.telegram.join(chat, params, options).await?;
            // Held from the answer on: what Telegram says next about the call is its.
            self.inner.holders.lock().insert(chat, i);
            tracing::debug!(chat, account = %member.name, "joined through this account");
            Ok(answer)
        })
    }

    fn leave(&self, chat: ChatId, ssrc: u32) -> BoxFuture<'_, Result<(), TelegramError>> {
        Box::pin(async move {
            let telegram = self.route(chat);
            self.inner.holders.lock().remove(&chat);
            telegram.leave(chat, ssrc).await
        })
    }

    fn create_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        self.route(chat).create_call(chat)
    }

    fn discard_call(&self, chat: ChatId) -> BoxFuture<'_, Result<(), TelegramError>> {
        self.route(chat).discard_call(chat)
    }

    fn set_muted(&self, chat: ChatId, ssrc: u32, muted: bool) -> BoxFuture<'_, Result<(), TelegramError>> {
        self.route(chat).set_muted(chat, ssrc, muted)
    }

    fn participants<'a>(
        &'a self,
        chat: ChatId,
        offset: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<ParticipantPage, TelegramError>> {
        self.route(chat).participants(chat, offset, limit)
    }

    fn participant_by_source(
        &self,
        chat: ChatId,
        ssrc: u32,
    ) -> BoxFuture<'_, Result<Option<Participant>, TelegramError>> {
        self.route(chat).participant_by_source(chat, ssrc)
    }

    fn send<'a>(&'a self, chat: ChatId, message: &'a Outgoing) -> BoxFuture<'a, Result<MessageId, TelegramError>> {
        self.route(chat).send(chat, message)
    }

    fn edit<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        message: &'a Outgoing,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        self.route(chat).edit(chat, id, message)
    }

    fn delete(&self, chat: ChatId, id: MessageId) -> BoxFuture<'_, Result<(), TelegramError>> {
        self.route(chat).delete(chat, id)
    }

    fn answer_callback<'a>(
        &'a self,
        query: &'a str,
        text: Option<&'a str>,
        alert: bool,
    ) -> BoxFuture<'a, Result<(), TelegramError>> {
        // `<account>:<id>` when there are several (see `Inner::pass`).
        let (i, id) = match query.split_once(':') {
            Some((i, id)) if self.inner.members.len() > 1 => (i.parse().unwrap_or(usize::MAX), id),
            _ => (0, query),
        };
        match self.inner.members.get(i) {
            Some(m) => m.telegram.answer_callback(id, text, alert),
            None => Box::pin(async move {
                Err(super::error::refusal("messages.setBotCallbackAnswer", 400, "QUERY_ID_INVALID", None))
            }),
        }
    }

    fn member_status(&self, chat: ChatId, user: i64) -> BoxFuture<'_, Result<MemberStatus, TelegramError>> {
        self.route(chat).member_status(chat, user)
    }

    fn download<'a>(
        &'a self,
        chat: ChatId,
        id: MessageId,
        to: &'a Path,
        max_bytes: u64,
    ) -> BoxFuture<'a, Result<u64, TelegramError>> {
        self.route(chat).download(chat, id, to, max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telegram::loopback::{Loopback, LoopbackOptions, SimAccount};
    use crate::telegram::messages::CallbackQuery;

    fn two() -> (Accounts, Vec<tokio::task::JoinHandle<()>>) {
        let sim = |name: &str, user_id| SimAccount { name: name.into(), user_id, chats: None };
        let opts = LoopbackOptions { accounts: vec![sim("a1", 1), sim("a2", 2)], ..Default::default() };
        let lb = Loopback::new(opts).unwrap();
        let members = lb.accounts().into_iter().map(|(name, v)| Member { name, telegram: Arc::new(v) as _ });
        Accounts::new(members.collect())
    }

    #[tokio::test]
    async fn each_update_is_said_once_by_the_account_that_speaks_for_it() {
        let (accounts, _tasks) = two();
        let inner = &accounts.inner;
        inner.holders.lock().insert(-7, 1);

        let press = CallbackQuery { id: "5".into(), chat: -7, message: 1, sender: 9, data: "x".into() };
        let Some(Update::Callback(q)) = inner.pass(1, Update::Callback(press.clone())) else { panic!("passed") };
        assert_eq!(q.id, "1:5", "the answer finds its way back");
        assert!(inner.pass(0, Update::Callback(press)).is_none(), "a repeat");

        let changes = || Update::Participants { chat: -7, changes: Vec::new() };
        assert!(inner.pass(0, changes()).is_none(), "a2 holds the call");
        assert!(inner.pass(1, changes()).is_some());
        let raw = |chat| Update::Raw { json: serde_json::json!({}), chat };
        assert!(inner.pass(1, raw(None)).is_none() && inner.pass(0, raw(None)).is_some());

        // The call's end frees the chat for the next join; what is still said about
        // it comes from the account that held it.
        assert!(inner.pass(0, Update::Kicked(-7)).is_none());
        assert!(inner.pass(1, Update::Kicked(-7)).is_some());
        assert_eq!(accounts.holder(-7), None);
        assert!(inner.pass(1, raw(Some(-7))).is_some() && inner.pass(0, raw(Some(-7))).is_none());
    }
}
