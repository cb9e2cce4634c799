//! What the Telegram side says about chats and calls beyond joining them: messages and
//! button presses in, messages out, members, participants. Plain data, shared by the
//! loopback and MTProto, turned into the contract's records by the plugin runtime.

use serde::Serialize;

use super::ChatId;

/// A message's id within its chat.
pub type MessageId = i32;

/// The accounts the host acts through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// The user account that joins calls.
    pub user: i64,
    /// The bot account that sends messages with buttons, if one is configured.
    pub bot: Option<Bot>,
}

/// A bot account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bot {
    pub id: i64,
    /// Without the `@`: `/play@username` is addressed to it.
    pub username: String,
}

/// Which of our accounts saw an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Account {
    User,
    Bot,
}

/// What kind of media a message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Voice,
    Document,
    Video,
}

/// The media a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub kind: MediaKind,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub size: u64,
    pub duration_s: Option<u32>,
    pub title: Option<String>,
    pub performer: Option<String>,
}

/// The message a message replies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub message: MessageId,
    /// Its media, when the Telegram side sent it along.
    pub media: Option<Attachment>,
}

/// A new message in a chat, as one of our accounts saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub chat: ChatId,
    pub id: MessageId,
    pub sender: i64,
    /// Its text, or a media message's caption.
    pub text: String,
    pub reply_to: Option<Reply>,
    pub media: Option<Attachment>,
    /// Unix time.
    pub date: i64,
    pub seen_by: Account,
}

/// A press on an inline button under one of the bot's messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackQuery {
    /// Telegram's query id, as a decimal string.
    pub id: String,
    pub chat: ChatId,
    pub message: MessageId,
    pub sender: i64,
    pub data: String,
}

/// A `/command` at the start of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// Without the slash or a bot's username: `play` for `/play@mybot`.
    pub name: String,
    /// The rest of the message, trimmed.
    pub args: String,
}

impl Command {
    /// The command `text` starts with, if any, unless it is addressed to another bot
    /// (`/play@otherbot`). `bot` is our bot's username, if we have one.
    pub fn parse(text: &str, bot: Option<&str>) -> Option<Command> {
        let rest = text.strip_prefix('/')?;
        let (head, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        let (name, to) = match head.split_once('@') {
            Some((n, to)) => (n, Some(to)),
            None => (head, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        if let Some(to) = to
            && bot.is_none_or(|b| !b.eq_ignore_ascii_case(to))
        {
            return None;
        }
        Some(Command { name: name.to_ascii_lowercase(), args: args.trim().to_owned() })
    }
}

/// How message text is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TextFormat {
    #[default]
    Plain,
    Markdown,
    Html,
}

/// What pressing a button does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ButtonAction {
    /// A callback query with this data (at most 64 bytes).
    Callback(String),
    Url(String),
}

/// An inline button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Button {
    pub text: String,
    pub action: ButtonAction,
}

/// A message to send, or what an edit makes of one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outgoing {
    pub text: String,
    pub format: TextFormat,
    pub reply_to: Option<MessageId>,
    pub silent: bool,
    /// Rows of inline buttons (a bot account only).
    pub buttons: Vec<Vec<Button>>,
}

impl Outgoing {
    /// Checks what Telegram would refuse, before anything is sent: empty or over-long
    /// text, callback data over 64 bytes, URLs that are not http(s) or tg.
    pub fn check(&self) -> Result<(), String> {
        if self.text.trim().is_empty() {
            return Err("a message needs some text".into());
        }
        // Telegram counts UTF-16 units; 4096 of them.
        let len = self.text.encode_utf16().count();
        if len > 4096 {
            return Err(format!("the text is {len} UTF-16 units long; Telegram takes at most 4096"));
        }
        for b in self.buttons.iter().flatten() {
            if b.text.is_empty() {
                return Err("a button needs a label".into());
            }
            match &b.action {
                ButtonAction::Callback(d) if d.len() > 64 => {
                    return Err(format!("button {:?}: callback data is {} bytes; at most 64", b.text, d.len()));
                }
                ButtonAction::Url(u) if !["http://", "https://", "tg://"].iter().any(|p| u.starts_with(p)) => {
                    return Err(format!("button {:?}: {u:?} is not an http(s):// or tg:// URL", b.text));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A chat member's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    Creator,
    Administrator,
    Member,
    Restricted,
    Left,
    Banned,
}

impl MemberStatus {
    /// May manage the chat (and a bot's controls in it).
    pub fn is_admin(self) -> bool {
        matches!(self, MemberStatus::Creator | MemberStatus::Administrator)
    }
}

/// Someone in a group call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// The user, or the chat id of the channel they speak as.
    pub peer: i64,
    /// Their audio SSRC.
    pub source: u32,
    pub muted: bool,
    /// Speaking now, from the audio level of their stream.
    pub speaking: bool,
    /// Percent, as set by an admin (100 unless changed).
    pub volume: u16,
    /// One of our own accounts.
    pub is_self: bool,
}

/// What changed about a call's participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantChange {
    Joined(Participant),
    Left(i64),
    Muted(i64),
    Unmuted(i64),
    StartedSpeaking(i64),
    StoppedSpeaking(i64),
}

/// One page of a call's participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParticipantPage {
    pub participants: Vec<Participant>,
    /// For the next page; `None` on the last one.
    pub next_offset: Option<String>,
    pub total: u32,
}

/// Keys of what was passed on lately, the newest `capacity`: so an update several of
/// our accounts (or a user and a bot) deliver is said once.
#[derive(Debug)]
pub struct Recent<K> {
    capacity: usize,
    order: std::collections::VecDeque<K>,
    set: std::collections::HashSet<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Recent<K> {
    pub fn new(capacity: usize) -> Self {
        Recent { capacity, order: Default::default(), set: Default::default() }
    }

    /// Remembers `key`, forgetting the oldest past the capacity: whether it is new.
    pub fn first(&mut self, key: K) -> bool {
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// How to join a call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinOptions {
    /// Speak as this channel the account owns.
    pub join_as: Option<ChatId>,
    /// From a `t.me/…?voicechat=<hash>` link.
    pub invite_hash: Option<String>,
    /// Join muted; the stream starts paused.
    pub start_muted: bool,
    /// Start a voice chat if the chat has none (needs the right to manage calls).
    pub create_if_missing: bool,
    /// The accounts (`[[accounts]] name`) the join may go through; empty: any.
    pub accounts: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_like_telegram_clients_read_them() {
        let c = Command::parse("/play  song.mp3 ", None).unwrap();
        assert_eq!((c.name.as_str(), c.args.as_str()), ("play", "song.mp3"));
        assert_eq!(Command::parse("/Skip@MyBot", Some("mybot")).unwrap().name, "skip");
        assert_eq!(Command::parse("/skip@otherbot", Some("mybot")), None, "addressed to another bot");
        assert_eq!(Command::parse("/skip@mybot", None), None, "we have no bot to address");
        assert_eq!(Command::parse("/queue\nmore", None).unwrap().args, "more");
        for not in ["play", "/", "/ play", "//x", "/pl-ay"] {
            assert_eq!(Command::parse(not, None), None, "{not:?}");
        }
    }

    #[test]
    fn outgoing_messages_are_checked_before_sending() {
        let ok = Outgoing { text: "hi".into(), ..Default::default() };
        assert!(ok.check().is_ok());
        assert!(Outgoing { text: "  ".into(), ..Default::default() }.check().is_err());
        assert!(Outgoing { text: "x".repeat(4097), ..Default::default() }.check().unwrap_err().contains("4096"));
        let button = |action| Outgoing {
            text: "hi".into(),
            buttons: vec![vec![Button { text: "b".into(), action }]],
            ..Default::default()
        };
        assert!(button(ButtonAction::Callback("x".repeat(65))).check().unwrap_err().contains("64"));
        assert!(button(ButtonAction::Url("javascript:1".into())).check().is_err());
        assert!(button(ButtonAction::Url("https://t.me/x".into())).check().is_ok());
    }
}
