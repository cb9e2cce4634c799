//! Telegram-style Markdown → text and entities, as Telegram's apps and Pyrogram read
//! it: `**bold**`, `__italic__`, `--underline--`, `~~strike~~`, `||spoiler||`,
//! `` `code` ``, ```` ```pre``` ```` and `[text](url)`; a backslash escapes the next
//! character. Unlike CommonMark, a line break is a line break and `1.` is not a list:
//! chat messages are not documents. A delimiter with no partner is just text.
//! Entity offsets and lengths count UTF-16 units, as Telegram does.

use grammers_tl_types as tl;

/// The paired delimiters and what they make.
const PAIRS: [(&str, Kind); 5] =
    [("**", Kind::Bold), ("__", Kind::Italic), ("--", Kind::Underline), ("~~", Kind::Strike), ("||", Kind::Spoiler)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bold,
    Italic,
    Underline,
    Strike,
    Spoiler,
}

fn entity(kind: Kind, offset: i32, length: i32) -> tl::enums::MessageEntity {
    match kind {
        Kind::Bold => tl::types::MessageEntityBold { offset, length }.into(),
        Kind::Italic => tl::types::MessageEntityItalic { offset, length }.into(),
        Kind::Underline => tl::types::MessageEntityUnderline { offset, length }.into(),
        Kind::Strike => tl::types::MessageEntityStrike { offset, length }.into(),
        Kind::Spoiler => tl::types::MessageEntitySpoiler { offset, length }.into(),
    }
}

/// Text being built, with its length in UTF-16 units.
#[derive(Default)]
struct Out {
    text: String,
    units: i32,
}

impl Out {
    fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.units += s.encode_utf16().count() as i32;
    }
}

/// `message` as Telegram stores it: the text without markup, and its entities.
pub fn parse(message: &str) -> (String, Vec<tl::enums::MessageEntity>) {
    let mut out = Out::default();
    let mut entities = Vec::new();
    let mut open: Vec<(Kind, i32, &str)> = Vec::new();
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if c == '\\' && rest.len() > 1 {
            let next = rest[1..].chars().next().unwrap_or('\\');
            out.push(&rest[1..1 + next.len_utf8()]);
            rest = &rest[1 + next.len_utf8()..];
            continue;
        }
        if let Some(body) = rest.strip_prefix("```")
            && let Some(end) = body.find("```")
        {
            // An optional language on the opening line, as Telegram's apps write it.
            let code = &body[..end];
            let (language, code) = match code.split_once('\n') {
                Some((lang, code)) if !lang.contains(' ') && !lang.is_empty() => (lang.to_owned(), code),
                _ => (String::new(), code.strip_prefix('\n').unwrap_or(code)),
            };
            let start = out.units;
            out.push(code);
            entities.push(tl::types::MessageEntityPre { offset: start, length: out.units - start, language }.into());
            rest = &body[end + 3..];
            continue;
        }
        if let Some(body) = rest.strip_prefix('`')
            && let Some(end) = body.find('`')
        {
            let start = out.units;
            out.push(&body[..end]);
            entities.push(tl::types::MessageEntityCode { offset: start, length: out.units - start }.into());
            rest = &body[end + 1..];
            continue;
        }
        if let Some(body) = rest.strip_prefix('[')
            && let Some(close) = body.find("](")
            && let Some(end) = body[close + 2..].find(')')
        {
            let (label, url) = (&body[..close], &body[close + 2..close + 2 + end]);
            if !label.is_empty() && !url.contains(char::is_whitespace) {
                let start = out.units;
                out.push(label);
                entities.push(
                    tl::types::MessageEntityTextUrl { offset: start, length: out.units - start, url: url.to_owned() }
                        .into(),
                );
                rest = &body[close + 3 + end..];
                continue;
            }
        }
        if let Some(&(mark, kind)) = PAIRS.iter().find(|(m, _)| rest.starts_with(m)) {
            if let Some(at) = open.iter().rposition(|(k, _, _)| *k == kind) {
                let (_, start, _) = open.remove(at);
                if out.units > start {
                    entities.push(entity(kind, start, out.units - start));
                }
                rest = &rest[mark.len()..];
                continue;
            }
            // Opens only if it closes later; otherwise it is text.
            if rest[mark.len()..].contains(mark) {
                open.push((kind, out.units, mark));
                rest = &rest[mark.len()..];
                continue;
            }
        }
        out.push(&rest[..c.len_utf8()]);
        rest = &rest[c.len_utf8()..];
    }
    entities.sort_by_key(|e| match e {
        tl::enums::MessageEntity::Bold(b) => b.offset,
        tl::enums::MessageEntity::Italic(b) => b.offset,
        tl::enums::MessageEntity::Underline(b) => b.offset,
        tl::enums::MessageEntity::Strike(b) => b.offset,
        tl::enums::MessageEntity::Spoiler(b) => b.offset,
        tl::enums::MessageEntity::Code(b) => b.offset,
        tl::enums::MessageEntity::Pre(b) => b.offset,
        tl::enums::MessageEntity::TextUrl(b) => b.offset,
        _ => 0,
    });
    (out.text, entities)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bold(offset: i32, length: i32) -> tl::enums::MessageEntity {
        tl::types::MessageEntityBold { offset, length }.into()
    }

    #[test]
    fn markup_becomes_entities_and_line_breaks_stay() {
        let (text, e) = parse("🎵 Now playing: **song**\nRequested by `42`\n1. next");
        assert_eq!(text, "🎵 Now playing: song\nRequested by 42\n1. next");
        // 🎵 is two UTF-16 units.
        assert_eq!(e, vec![bold(16, 4), tl::types::MessageEntityCode { offset: 34, length: 2 }.into()]);
        let (text, e) = parse("__it__ --u-- ~~s~~ ||x|| [site](https://example.com)");
        assert_eq!(text, "it u s x site");
        assert_eq!(e.len(), 5);
        assert_eq!(
            e[4],
            tl::types::MessageEntityTextUrl { offset: 9, length: 4, url: "https://example.com".into() }.into()
        );
    }

    #[test]
    fn unpaired_or_escaped_marks_are_text() {
        assert_eq!(parse("2 ** 3 = 8"), ("2 ** 3 = 8".into(), vec![]));
        assert_eq!(parse(r"\*\*not bold\*\*"), ("**not bold**".into(), vec![]));
        assert_eq!(parse("a_b__c"), ("a_b__c".into(), vec![]));
        assert_eq!(parse("[x](not a url)").0, "[x](not a url)");
        let (text, e) = parse("```rust\nfn main() {}\n```");
        assert_eq!(text, "fn main() {}\n");
        assert_eq!(e, vec![tl::types::MessageEntityPre { offset: 0, length: 13, language: "rust".into() }.into()]);
        assert_eq!(parse("**nested __both__**").1.len(), 2);
    }
}
