//! The TL requests chatting needs — send, edit, delete, answer a button press, a
//! member's standing, a message's media — and the reading of their answers. Pure
//! functions, held against expected TL values in the tests, as [`super::requests`].

use grammers_tl_types as tl;

use crate::telegram::messages::{Outgoing, TextFormat};
use crate::telegram::{ChatId, MessageId, TelegramError};

/// Text and entities, parsed from Markdown or HTML as Telegram clients parse them.
pub fn text_of(message: &Outgoing) -> (String, Option<Vec<tl::enums::MessageEntity>>) {
    let (text, entities) = match message.format {
        TextFormat::Plain => return (message.text.clone(), None),
        TextFormat::Markdown => crate::telegram::markdown::parse(&message.text),
        TextFormat::Html => grammers_client::parsers::parse_html_message(&message.text),
    };
    (text, (!entities.is_empty()).then_some(entities))
}

/// The message's inline buttons, if it has any.
fn markup_of(message: &Outgoing) -> Option<tl::enums::ReplyMarkup> {
    (!message.buttons.is_empty()).then(|| crate::telegram::loopback::updates::inline_buttons(&message.buttons))
}

/// `messages.sendMessage`.
pub fn send(peer: tl::enums::InputPeer, message: &Outgoing, random_id: i64) -> tl::functions::messages::SendMessage {
    let (text, entities) = text_of(message);
    tl::functions::messages::SendMessage {
        no_webpage: true,
        silent: message.silent,
        background: false,
        clear_draft: false,
        noforwards: false,
        update_stickersets_order: false,
        invert_media: false,
        allow_paid_floodskip: false,
        peer,
        reply_to: message.reply_to.map(|id| {
            tl::types::InputReplyToMessage {
                reply_to_msg_id: id,
                top_msg_id: None,
                reply_to_peer_id: None,
                quote_text: None,
                quote_entities: None,
                quote_offset: None,
                monoforum_peer_id: None,
                todo_item_id: None,
                poll_option: None,
            }
            .into()
        }),
        message: text,
        random_id,
        reply_markup: markup_of(message),
        entities,
        schedule_date: None,
        schedule_repeat_period: None,
        send_as: None,
        quick_reply_shortcut: None,
        effect: None,
        allow_paid_stars: None,
        suggested_post: None,
        rich_message: None,
    }
}

/// The id of the message a `messages.sendMessage` with `random_id` created.
pub fn sent_id(answer: &tl::enums::Updates, random_id: i64) -> Result<MessageId, TelegramError> {
    let unusable = |what: &str| TelegramError::Unexpected { request: "messages.sendMessage", what: what.to_owned() };
    if let tl::enums::Updates::UpdateShortSentMessage(m) = answer {
        return Ok(m.id);
    }
    let updates = super::requests::updates_in(answer);
    let by_random = updates.iter().find_map(|u| match u {
        tl::enums::Update::MessageId(m) if m.random_id == random_id => Some(m.id),
        _ => None,
    });
    let by_message = || {
        updates.iter().find_map(|u| match u {
            tl::enums::Update::NewMessage(tl::types::UpdateNewMessage { message, .. })
            | tl::enums::Update::NewChannelMessage(tl::types::UpdateNewChannelMessage { message, .. }) => {
                Some(match message {
                    tl::enums::Message::Message(m) => m.id,
                    tl::enums::Message::Service(m) => m.id,
                    tl::enums::Message::Empty(m) => m.id,
                })
            }
            _ => None,
        })
    };
    by_random.or_else(by_message).ok_or_else(|| unusable("it names no message"))
}

/// `messages.editMessage`: new text and buttons.
pub fn edit(peer: tl::enums::InputPeer, id: MessageId, message: &Outgoing) -> tl::functions::messages::EditMessage {
    let (text, entities) = text_of(message);
    tl::functions::messages::EditMessage {
        no_webpage: true,
        invert_media: false,
        peer,
        id,
        message: Some(text),
        media: None,
        reply_markup: markup_of(message),
        entities,
        schedule_date: None,
        schedule_repeat_period: None,
        quick_reply_shortcut_id: None,
        rich_message: None,
    }
}

/// Deleting messages: `channels.deleteMessages` in a supergroup or channel,
/// `messages.deleteMessages` (for everyone) elsewhere.
pub enum Delete {
    Channel(tl::functions::channels::DeleteMessages),
    Other(tl::functions::messages::DeleteMessages),
}

pub fn delete(channel: Option<tl::enums::InputChannel>, ids: Vec<MessageId>) -> Delete {
    match channel {
        Some(channel) => Delete::Channel(tl::functions::channels::DeleteMessages { channel, id: ids }),
        None => Delete::Other(tl::functions::messages::DeleteMessages { revoke: true, id: ids }),
    }
}

/// `messages.setBotCallbackAnswer`.
pub fn answer(
    query: &str,
    text: Option<&str>,
    alert: bool,
) -> Result<tl::functions::messages::SetBotCallbackAnswer, TelegramError> {
    let query_id = query.parse::<i64>().map_err(|_| TelegramError::Unexpected {
        request: "messages.setBotCallbackAnswer",
        what: format!("{query:?} is not a callback query id"),
    })?;
    Ok(tl::functions::messages::SetBotCallbackAnswer {
        alert,
        query_id,
        message: text.map(str::to_owned),
        url: None,
        cache_time: 0,
    })
}

/// `channels.getParticipant`: `user`'s standing in a supergroup.
pub fn member(channel: tl::enums::InputChannel, user: tl::enums::InputPeer) -> tl::functions::channels::GetParticipant {
    tl::functions::channels::GetParticipant { channel, participant: user }
}

/// A user as a request names them: by the session's access hash, or else through a
/// message of theirs the account saw (`inputPeerUserFromMessage`).
pub fn user_peer(
    user: i64,
    hash: Option<i64>,
    seen_in: Option<(tl::enums::InputPeer, MessageId)>,
) -> Result<tl::enums::InputPeer, TelegramError> {
    match (hash, seen_in) {
        (Some(access_hash), _) => Ok(tl::types::InputPeerUser { user_id: user, access_hash }.into()),
        (None, Some((peer, msg_id))) => Ok(tl::types::InputPeerUserFromMessage { peer, msg_id, user_id: user }.into()),
        (None, None) => Err(TelegramError::Unexpected {
            request: "channels.getParticipant",
            what: format!("user {user} is unknown to the account (it saw no message of theirs)"),
        }),
    }
}

/// Fetching messages by id: `channels.getMessages` or `messages.getMessages`.
pub enum Fetch {
    Channel(tl::functions::channels::GetMessages),
    Other(tl::functions::messages::GetMessages),
}

pub fn fetch(channel: Option<tl::enums::InputChannel>, ids: &[MessageId]) -> Fetch {
    let id = ids.iter().map(|&id| tl::types::InputMessageId { id }.into()).collect();
    match channel {
        Some(channel) => Fetch::Channel(tl::functions::channels::GetMessages { channel, id }),
        None => Fetch::Other(tl::functions::messages::GetMessages { id }),
    }
}

/// Message `id` among a `getMessages` answer.
pub fn message_in(answer: &tl::enums::messages::Messages, id: MessageId) -> Option<tl::enums::Message> {
    let list = match answer {
        tl::enums::messages::Messages::Messages(m) => &m.messages,
        tl::enums::messages::Messages::Slice(m) => &m.messages,
        tl::enums::messages::Messages::ChannelMessages(m) => &m.messages,
        tl::enums::messages::Messages::NotModified(_) => return None,
    };
    list.iter()
        .find(|m| match m {
            tl::enums::Message::Message(m) => m.id == id,
            _ => false,
        })
        .cloned()
}

/// A document as `upload.getFile` asks for it, and where it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRef {
    pub location: tl::enums::InputFileLocation,
    pub dc: i32,
    pub size: u64,
}

/// Where message `id`'s document is, or why there is none.
pub fn file_of(chat: ChatId, id: MessageId, message: Option<&tl::enums::Message>) -> Result<FileRef, TelegramError> {
    let message = message.ok_or(TelegramError::NoMessage { chat, id })?;
    let (doc, size) = crate::telegram::tl::read::document_of(message).ok_or(TelegramError::NoMedia { chat, id })?;
    Ok(FileRef {
        location: tl::types::InputDocumentFileLocation {
            id: doc.id,
            access_hash: doc.access_hash,
            file_reference: doc.file_reference,
            thumb_size: String::new(),
        }
        .into(),
        dc: doc.dc_id,
        size,
    })
}

/// Bytes asked of `upload.getFile` at a time: its largest legal chunk.
pub const CHUNK: i32 = 512 * 1024;

/// `upload.getFile`: `CHUNK` bytes of `file` from `offset`.
pub fn file_part(file: &FileRef, offset: i64) -> tl::functions::upload::GetFile {
    tl::functions::upload::GetFile {
        precise: false,
        cdn_supported: false,
        location: file.location.clone(),
        offset,
        limit: CHUNK,
    }
}

#[cfg(test)]
mod tests {
    use tl::{Deserializable, Serializable};

    use super::*;
    use crate::telegram::messages::{Button, ButtonAction};
    use crate::telegram::tl::read_back;

    fn channel() -> tl::enums::InputPeer {
        tl::types::InputPeerChannel { channel_id: 1185324811, access_hash: 5 }.into()
    }

    #[test]
    fn a_message_with_markdown_a_reply_and_buttons_reads_back() {
        let out = Outgoing {
            text: "**Now playing** song.mp3".into(),
            format: TextFormat::Markdown,
            reply_to: Some(41),
            silent: true,
            buttons: vec![vec![
                Button { text: "⏸".into(), action: ButtonAction::Callback("pause".into()) },
                Button { text: "web".into(), action: ButtonAction::Url("https://example.com".into()) },
            ]],
        };
        let req = read_back(&send(channel(), &out, 77));
        assert_eq!(req.message, "Now playing song.mp3", "markup parsed out of the text");
        assert_eq!(
            req.entities,
            Some(vec![tl::types::MessageEntityBold { offset: 0, length: 11 }.into()]),
            "and into an entity"
        );
        assert!(req.silent && req.random_id == 77 && req.peer == channel());
        let Some(tl::enums::InputReplyTo::Message(r)) = req.reply_to else { panic!("a reply") };
        assert_eq!(r.reply_to_msg_id, 41);
        let Some(tl::enums::ReplyMarkup::ReplyInlineMarkup(m)) = req.reply_markup else { panic!("inline buttons") };
        let tl::enums::KeyboardInlineButtonRow::Row(row) = &m.rows[0];
        let tl::enums::KeyboardInlineButton::Button(b) = &row.buttons[0];
        assert_eq!(b.text, "⏸");
        assert_eq!(
            b.r#type,
            tl::types::InlineButtonTypeCallback { requires_password: false, data: b"pause".to_vec() }.into()
        );
        let plain = read_back(&send(channel(), &Outgoing { text: "<b>x</b>".into(), ..Default::default() }, 1));
        assert_eq!((plain.message.as_str(), plain.entities, plain.reply_markup), ("<b>x</b>", None, None));
        let html = read_back(&send(
            channel(),
            &Outgoing { text: "<b>x</b>".into(), format: TextFormat::Html, ..Default::default() },
            1,
        ));
        assert_eq!(html.message, "x");
    }

    #[test]
    fn the_sent_message_is_found_by_its_random_id() {
        let ids: tl::enums::Updates = crate::telegram::tl::container(
            vec![
                tl::types::UpdateMessageId { id: 9, random_id: 1 }.into(),
                tl::types::UpdateMessageId { id: 12, random_id: 77 }.into(),
            ],
            vec![],
        );
        assert_eq!(sent_id(&ids, 77).unwrap(), 12);
        let short: tl::enums::Updates = tl::types::UpdateShortSentMessage {
            out: true,
            id: 5,
            pts: 1,
            pts_count: 1,
            date: 0,
            media: None,
            entities: None,
            ttl_period: None,
        }
        .into();
        assert_eq!(sent_id(&short, 1).unwrap(), 5);
        assert!(sent_id(&crate::telegram::tl::container(vec![], vec![]), 1).is_err());
    }

    #[test]
    fn edits_deletes_answers_and_members_read_back() {
        let out = Outgoing { text: "paused".into(), ..Default::default() };
        let e = read_back(&edit(channel(), 12, &out));
        assert_eq!((e.id, e.message.as_deref(), e.reply_markup), (12, Some("paused"), None));
        let input = tl::types::InputChannel { channel_id: 1185324811, access_hash: 5 }.into();
        let Delete::Channel(d) = delete(Some(input), vec![3, 4]) else { panic!() };
        assert_eq!(read_back(&d).id, vec![3, 4]);
        let Delete::Other(d) = delete(None, vec![3]) else { panic!() };
        assert!(read_back(&d).revoke, "deleted for everyone");
        let a = read_back(&answer("7000000000001", Some("Paused"), true).unwrap());
        assert_eq!(
            (a.query_id, a.message.as_deref(), a.alert, a.cache_time),
            (7_000_000_000_001, Some("Paused"), true, 0)
        );
        assert!(answer("not-a-number", None, false).is_err());
        let by_message = user_peer(424242, None, Some((channel(), 8))).unwrap();
        assert_eq!(
            by_message,
            tl::types::InputPeerUserFromMessage { peer: channel(), msg_id: 8, user_id: 424242 }.into()
        );
        assert!(user_peer(424242, None, None).is_err());
        let input: tl::enums::InputChannel = tl::types::InputChannel { channel_id: 1, access_hash: 2 }.into();
        assert_eq!(read_back(&member(input.clone(), by_message.clone())).participant, by_message);
    }

    #[test]
    fn a_messages_document_is_fetched_in_legal_chunks() {
        let input: tl::enums::InputChannel = tl::types::InputChannel { channel_id: 1, access_hash: 2 }.into();
        let Fetch::Channel(f) = fetch(Some(input), &[5]) else { panic!() };
        assert_eq!(read_back(&f).id, vec![tl::types::InputMessageId { id: 5 }.into()]);
        let media = crate::telegram::loopback::updates::document(
            31,
            "song.mp3",
            "audio/mpeg",
            1_500_000,
            crate::telegram::loopback::updates::Upload::Audio,
            0,
        );
        let message = crate::telegram::loopback::updates::message(
            crate::telegram::tl::peer_of(-1001185324811),
            crate::telegram::loopback::updates::Said { id: 5, from: 9, media: Some(media), ..Default::default() },
        );
        let file = file_of(-1001185324811, 5, Some(&message)).unwrap();
        assert_eq!((file.size, file.dc), (1_500_000, 2));
        let part = read_back(&file_part(&file, CHUNK as i64 * 2));
        // Telegram's rules: the limit divides 1 MiB, the offset is a multiple of it.
        assert_eq!((1 << 20) % part.limit, 0);
        assert_eq!(part.offset % part.limit as i64, 0);
        let text = crate::telegram::loopback::updates::message(
            crate::telegram::tl::peer_of(-1001185324811),
            crate::telegram::loopback::updates::Said { id: 6, from: 9, text: "hi".into(), ..Default::default() },
        );
        assert!(matches!(file_of(-1, 6, Some(&text)), Err(TelegramError::NoMedia { .. })));
        assert!(matches!(file_of(-1, 7, None), Err(TelegramError::NoMessage { .. })));
        let _ = tl::enums::Message::from_bytes(&message.to_bytes()).expect("the message reads back");
    }
}
