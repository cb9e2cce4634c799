//! Any TL object as JSON for `on-raw-update`: `{"_": "<constructor>", …fields}`,
//! nested objects alike, optional fields that are absent left out.
//!
//! grammers derives `serde::Serialize` for its TL types, but a plain JSON encoder
//! would drop the constructor names that tell a plugin what it is looking at. This
//! serializer keeps them: a struct's Rust name is its TL constructor in UpperCamel
//! (`UpdateGroupCall` → `updateGroupCall`), and a field-less constructor is its
//! enum's name plus the variant (`Updates::TooLong` → `updatesTooLong`); acronyms the
//! Rust names lowercase are restored from a list (`DataJson` → `dataJSON`). Namespaced
//! constructors lose their namespace (`messages.chatFull` → `chatFull`); updates
//! rarely carry them. Byte strings become arrays of numbers.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::{Map, Value};

/// `value` as constructor-named JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Value {
    value.serialize(Tl).unwrap_or_else(|e| Value::String(format!("unserializable: {e}")))
}

/// Constructors of layer 230 whose names keep acronyms in capitals, which the Rust
/// names lose (`dataJSON` is `DataJson`); found by case-insensitive match.
const ACRONYMS: &[&str] = &[
    "accountDaysTTL",
    "attachMenuPeerTypeBotPM",
    "attachMenuPeerTypePM",
    "attachMenuPeerTypeSameBotPM",
    "channelAdminLogEventActionChangeHistoryTTL",
    "composedMessageWithAI",
    "composedRichMessageWithAI",
    "dataJSON",
    "defaultHistoryTTL",
    "emojiURL",
    "inlineBotSwitchPM",
    "inlineQueryPeerTypeBotPM",
    "inlineQueryPeerTypePM",
    "inlineQueryPeerTypeSameBotPM",
    "inputAiComposeToneID",
    "inputBotAppID",
    "inputBotInlineMessageID",
    "inputBotInlineMessageID64",
    "inputCheckPasswordSRP",
    "inputGameID",
    "inputMessageID",
    "inputRichMessageHTML",
    "inputStickerSetID",
    "messageActionSetMessagesTTL",
    "passwordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow",
    "securePasswordKdfAlgoPBKDF2HMACSHA512iter100000",
    "securePasswordKdfAlgoSHA512",
    "starsTransactionPeerAPI",
    "statsURL",
    "topPeerCategoryBotsPM",
    "updateBotWebhookJSON",
    "updateBotWebhookJSONQuery",
    "updateMessageID",
    "updatePeerHistoryTTL",
    "updateStoryID",
];

/// `UpdateGroupCall` → `updateGroupCall`.
fn constructor(rust_name: &str) -> String {
    if let Some(exact) = ACRONYMS.iter().find(|a| a.eq_ignore_ascii_case(rust_name)) {
        return (*exact).to_owned();
    }
    let mut chars = rust_name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A field-less constructor: enum + variant, with grammers' rename of Rust's `Self`
/// keyword undone (`InputPeer::PeerSelf` is `inputPeerSelf`).
fn unit_constructor(enum_name: &str, variant: &str) -> String {
    let variant = variant.strip_prefix(enum_name).unwrap_or(variant);
    let variant = if variant == "PeerSelf" || variant == "UserSelf" { "Self" } else { variant };
    constructor(&format!("{enum_name}{variant}"))
}

/// The chat a TL update's JSON concerns, as a Bot API id: its `peer`, its message's
/// `peer_id`, a bare `channel_id` or `chat_id` (ids already negative are taken as Bot
/// API ids, as the loopback writes them), or else the chat of its `call` by id.
pub fn chat_of(json: &Value, chat_of_call: impl Fn(i64) -> Option<i64>) -> Option<i64> {
    let channel = |id: i64| if id > 0 { -1_000_000_000_000 - id } else { id };
    let chat = |id: i64| if id > 0 { -id } else { id };
    let peer = |p: &Value| match p["_"].as_str() {
        Some("peerChannel") => p["channel_id"].as_i64().map(channel),
        Some("peerChat") => p["chat_id"].as_i64().map(chat),
        Some("peerUser") => p["user_id"].as_i64(),
        _ => p.as_i64(),
    };
    peer(&json["peer"])
        .or_else(|| peer(&json["message"]["peer_id"]))
        .or_else(|| json["channel_id"].as_i64().map(channel))
        .or_else(|| json["chat_id"].as_i64().map(chat))
        .or_else(|| chat_of_call(json["call"]["id"].as_i64()?))
}

#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}
impl ser::Error for Error {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

struct Tl;

macro_rules! number {
    ($($f:ident: $t:ty),*) => {$(
        fn $f(self, v: $t) -> Result<Value, Error> { Ok(Value::from(v)) }
    )*};
}

impl ser::Serializer for Tl {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq;
    type SerializeTuple = Seq;
    type SerializeTupleStruct = Seq;
    type SerializeTupleVariant = Impossible<Value, Error>;
    type SerializeMap = Obj;
    type SerializeStruct = Obj;
    type SerializeStructVariant = Impossible<Value, Error>;

    number!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
            serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_f32: f32,
            serialize_f64: f64, serialize_str: &str);

    fn serialize_char(self, v: char) -> Result<Value, Error> {
        Ok(Value::String(v.into()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        Ok(Value::from(v))
    }
    fn serialize_none(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, name: &'static str) -> Result<Value, Error> {
        Ok(tagged(constructor(name)))
    }
    fn serialize_unit_variant(self, name: &'static str, _: u32, variant: &'static str) -> Result<Value, Error> {
        Ok(tagged(unit_constructor(name, variant)))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<Value, Error> {
        v.serialize(self)
    }
    // An enum's variant wraps a struct that carries its own constructor name.
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<Value, Error> {
        v.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq, Error> {
        Ok(Seq(Vec::with_capacity(len.unwrap_or(0))))
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Seq, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        n: &'static str,
        _: u32,
        v: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(Error(format!("{n}::{v}: tuple variants do not occur in TL")))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Obj, Error> {
        Ok(Obj { map: Map::new(), key: None })
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Obj, Error> {
        let mut map = Map::new();
        map.insert("_".into(), Value::String(constructor(name)));
        Ok(Obj { map, key: None })
    }
    fn serialize_struct_variant(
        self,
        n: &'static str,
        _: u32,
        v: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(Error(format!("{n}::{v}: struct variants do not occur in TL")))
    }
}

fn tagged(name: String) -> Value {
    let mut map = Map::new();
    map.insert("_".into(), Value::String(name));
    Value::Object(map)
}

struct Seq(Vec<Value>);

impl ser::SerializeSeq for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        self.0.push(v.serialize(Tl)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Array(self.0))
    }
}

impl ser::SerializeTuple for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Seq {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, Error> {
        ser::SerializeSeq::end(self)
    }
}

struct Obj {
    map: Map<String, Value>,
    key: Option<String>,
}

impl ser::SerializeStruct for Obj {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Error> {
        let v = v.serialize(Tl)?;
        // Absent optional fields are left out, as on the wire.
        if !v.is_null() {
            self.map.insert(key.into(), v);
        }
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.map))
    }
}

impl ser::SerializeMap for Obj {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key = Some(match key.serialize(Tl)? {
            Value::String(s) => s,
            other => other.to_string(),
        });
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        let key = self.key.take().ok_or_else(|| Error("a map value without a key".into()))?;
        self.map.insert(key, v.serialize(Tl)?);
        Ok(())
    }
    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.map))
    }
}

#[cfg(test)]
mod tests {
    use grammers_tl_types as tl;
    use serde_json::json;

    use super::*;

    #[test]
    fn constructors_and_fields_are_named() {
        let u: tl::enums::Update = tl::types::UpdateGroupCall {
            live_story: false,
            peer: Some(tl::types::PeerChannel { channel_id: 77 }.into()),
            call: tl::types::GroupCallDiscarded { id: 1, access_hash: 2, duration: 3 }.into(),
        }
        .into();
        assert_eq!(
            to_json(&u),
            json!({
                "_": "updateGroupCall",
                "live_story": false,
                "peer": { "_": "peerChannel", "channel_id": 77 },
                "call": { "_": "groupCallDiscarded", "id": 1, "access_hash": 2, "duration": 3 },
            })
        );
        assert_eq!(to_json(&tl::enums::InputPeer::PeerSelf), json!({ "_": "inputPeerSelf" }));
        assert_eq!(to_json(&tl::enums::Updates::TooLong), json!({ "_": "updatesTooLong" }));
        let connection: tl::enums::Update = tl::types::UpdateGroupCallConnection {
            presentation: false,
            params: tl::types::DataJson { data: "{}".into() }.into(),
        }
        .into();
        assert_eq!(to_json(&connection)["params"], json!({ "_": "dataJSON", "data": "{}" }));
        let id: tl::enums::Update = tl::types::UpdateMessageId { id: 1, random_id: 2 }.into();
        assert_eq!(to_json(&id)["_"], "updateMessageID");
        let bytes: tl::enums::Update = tl::types::UpdateGroupCallEncryptedMessage {
            call: tl::types::InputGroupCall { id: 1, access_hash: 2 }.into(),
            from_id: tl::types::PeerUser { user_id: 5 }.into(),
            encrypted_message: vec![1, 2],
        }
        .into();
        assert_eq!(to_json(&bytes)["encrypted_message"], json!([1, 2]));
    }

    #[test]
    fn the_chat_of_an_update_is_found_in_its_json() {
        let none = |_| None;
        let channel = json!({ "_": "updateChannel", "channel_id": 1185324811 });
        assert_eq!(chat_of(&channel, none), Some(-1001185324811));
        assert_eq!(chat_of(&json!({ "_": "updateChat", "chat_id": 42 }), none), Some(-42));
        let message = json!({ "message": { "peer_id": { "_": "peerChannel", "channel_id": 7 } } });
        assert_eq!(chat_of(&message, none), Some(-1000000000007));
        assert_eq!(chat_of(&json!({ "peer": { "_": "peerChat", "chat_id": 3 } }), none), Some(-3));
        // Loopback style: already Bot API ids.
        assert_eq!(chat_of(&json!({ "channel_id": -1001185324811_i64 }), none), Some(-1001185324811));
        // A call we are in, by its id.
        let participants = json!({ "_": "updateGroupCallParticipants", "call": { "_": "inputGroupCall", "id": 9 } });
        assert_eq!(chat_of(&participants, |id| (id == 9).then_some(-5)), Some(-5));
        assert_eq!(chat_of(&participants, none), None);
        assert_eq!(chat_of(&json!({ "_": "updateConfig" }), none), None);
    }
}
