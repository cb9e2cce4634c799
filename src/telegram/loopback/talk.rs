//! What is said in the loopback's chats: every message users, the account and the bot
//! posted — with edits, deletions, buttons, button presses and their answers — and the
//! files users uploaded. `wasmcalls loopback messages --chat C` prints it; the
//! [`super::Loopback`] methods post to it and emit the updates.

use std::collections::HashMap;
use std::sync::Arc;

use grammers_tl_types as tl;
use serde::Serialize;

use super::updates::{self, Said, Upload};
use crate::telegram::ChatId;
use crate::telegram::messages::{Attachment, Button, ButtonAction, MessageId};
use crate::telegram::tl::read::attachment_of;

/// A button as the transcript shows it: its label and its data or URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownButton {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl From<&Button> for ShownButton {
    fn from(b: &Button) -> Self {
        let (data, url) = match &b.action {
            ButtonAction::Callback(d) => (Some(d.clone()), None),
            ButtonAction::Url(u) => (None, Some(u.clone())),
        };
        ShownButton { text: b.text.clone(), data, url }
    }
}

/// A press on one of a message's buttons, and how the bot answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Press {
    /// Who pressed.
    pub by: i64,
    pub data: String,
    /// The query id the bot answers.
    pub query: String,
    pub answered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub alert: bool,
}

/// A file a user uploaded.
#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub mime: String,
    pub kind: Upload,
    pub bytes: Arc<Vec<u8>>,
}

/// One message of a chat's transcript.
#[derive(Debug, Clone, Serialize)]
pub struct Posted {
    pub id: MessageId,
    /// The sender's user id.
    pub from: i64,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Vec<ShownButton>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<Attachment>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub edited: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub presses: Vec<Press>,
    pub date: i64,
    /// What the TL message carries beyond the text.
    #[serde(skip)]
    pub(super) entities: Vec<tl::enums::MessageEntity>,
    #[serde(skip)]
    pub(super) markup: Vec<Vec<Button>>,
    #[serde(skip)]
    pub(super) file: Option<File>,
}

impl Posted {
    /// A plain message (no buttons, no file) from `from`.
    pub fn new(from: i64, text: String) -> Posted {
        Posted {
            id: 0,
            from,
            text,
            buttons: Vec::new(),
            reply_to: None,
            media: None,
            edited: false,
            deleted: false,
            presses: Vec::new(),
            date: now(),
            entities: Vec::new(),
            markup: Vec::new(),
            file: None,
        }
    }

    /// With inline buttons.
    pub fn with_buttons(mut self, rows: Vec<Vec<Button>>) -> Posted {
        self.buttons = rows.iter().map(|r| r.iter().map(ShownButton::from).collect()).collect();
        self.markup = rows;
        self
    }

    /// With `file` attached.
    pub fn with_file(mut self, file: File) -> Posted {
        self.file = Some(file);
        self
    }

    /// The media as the TL message carries it.
    fn media_tl(&self, chat: ChatId) -> Option<tl::enums::MessageMedia> {
        let f = self.file.as_ref()?;
        // A document id unique per chat and message, so downloads can find it.
        let doc = (chat.unsigned_abs() as i64).wrapping_mul(1_000_003) ^ self.id as i64;
        Some(updates::document(doc, &f.name, &f.mime, f.bytes.len() as u64, f.kind, 0))
    }

    /// The message as Telegram sends it; `out` to the account that sent it.
    pub fn said(&self, chat: ChatId, out: bool) -> Said {
        Said {
            id: self.id,
            from: self.from,
            text: self.text.clone(),
            entities: self.entities.clone(),
            reply_to: self.reply_to,
            media: self.media_tl(chat),
            buttons: (!self.markup.is_empty()).then(|| updates::inline_buttons(&self.markup)),
            date: self.date as i32,
            edited: self.edited.then_some(now() as i32),
            out,
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Default)]
struct Log {
    last_id: MessageId,
    posts: Vec<Posted>,
}

/// Every chat's messages, and the button presses waiting for an answer.
#[derive(Default)]
pub(super) struct Talk {
    chats: HashMap<ChatId, Log>,
    last_query: i64,
    /// Query id → where its press is recorded.
    queries: HashMap<String, (ChatId, MessageId)>,
}

impl Talk {
    /// A message id never used in `chat` (supergroup-style: one sequence per chat).
    pub fn next_id(&mut self, chat: ChatId) -> MessageId {
        let log = self.chats.entry(chat).or_default();
        log.last_id += 1;
        log.last_id
    }

    /// Records `post` in `chat` under a new id, which it returns.
    pub fn post(&mut self, chat: ChatId, mut post: Posted) -> MessageId {
        post.id = self.next_id(chat);
        post.media = post.media_tl(chat).as_ref().and_then(attachment_of);
        let id = post.id;
        self.chats.entry(chat).or_default().posts.push(post);
        id
    }

    pub fn get(&self, chat: ChatId, id: MessageId) -> Option<&Posted> {
        self.chats.get(&chat)?.posts.iter().find(|p| p.id == id)
    }

    pub fn get_mut(&mut self, chat: ChatId, id: MessageId) -> Option<&mut Posted> {
        self.chats.get_mut(&chat)?.posts.iter_mut().find(|p| p.id == id)
    }

    /// Who sent message `id` in `chat`.
    pub fn sender(&self, chat: ChatId, id: MessageId) -> Option<i64> {
        self.get(chat, id).map(|p| p.from)
    }

    /// The media of message `id` in `chat`.
    pub fn attachment(&self, chat: ChatId, id: MessageId) -> Option<Attachment> {
        self.get(chat, id)?.media.clone()
    }

    /// Whether `user` has said anything in `chat`.
    pub fn has_spoken(&self, chat: ChatId, user: i64) -> bool {
        self.chats.get(&chat).is_some_and(|l| l.posts.iter().any(|p| p.from == user))
    }

    /// The chat's transcript, in order.
    pub fn transcript(&self, chat: ChatId) -> Vec<Posted> {
        self.chats.get(&chat).map(|l| l.posts.clone()).unwrap_or_default()
    }

    /// Records `by` pressing the button with `data` under message `id`: the query id.
    pub fn press(&mut self, chat: ChatId, id: MessageId, by: i64, data: &str) -> String {
        self.last_query += 1;
        let query = format!("{}", 7_000_000_000_000 + self.last_query);
        if let Some(p) = self.get_mut(chat, id) {
            p.presses.push(Press {
                by,
                data: data.to_owned(),
                query: query.clone(),
                answered: false,
                answer: None,
                alert: false,
            });
        }
        self.queries.insert(query.clone(), (chat, id));
        query
    }

    /// Records the bot's answer to `query`; false if there is no such query waiting.
    pub fn answer(&mut self, query: &str, text: Option<&str>, alert: bool) -> bool {
        let Some((chat, id)) = self.queries.remove(query) else { return false };
        let Some(p) = self.get_mut(chat, id) else { return false };
        match p.presses.iter_mut().find(|p| p.query == query) {
            Some(press) => {
                press.answered = true;
                press.answer = text.map(str::to_owned);
                press.alert = alert;
                true
            }
            None => false,
        }
    }
}
