//! {{name}}: a wasmcalls bot. `/play <file or URL>` joins the voice chat and plays it;
//! `/stop` leaves. Build with `cargo build --release --target wasm32-wasip2`; run it
//! with `wasmcalls dev` (rebuilds on save) and test it with `wasmcalls test`.

use wasmcalls_bot::chat;
use wasmcalls_bot::{Bot, Error, JoinOptions, MediaSource, Message, calls};

#[derive(Default)]
struct MyBot;

impl MyBot {
    fn play(&mut self, m: &Message, what: &str) -> Result<String, Error> {
        if what.is_empty() {
            return Ok("Usage: /play <file or URL>".into());
        }
        let source = MediaSource::parse(what);
        match calls::status(m.chat) {
            Some(_) => calls::play(m.chat, &source)?,
            None => calls::join(m.chat, &source, &JoinOptions::default())?,
        }
        Ok(format!("▶ Playing {what}"))
    }
}

impl Bot for MyBot {
    fn on_message(&mut self, m: Message) {
        let Some(cmd) = m.command.clone() else { return };
        let answer = match cmd.name.as_str() {
            "play" => self.play(&m, &cmd.args).unwrap_or_else(|e| format!("Cannot play that: {e:?}")),
            "stop" => match calls::leave(m.chat, false) {
                Ok(()) => "⏹ Stopped".into(),
                Err(_) => "Nothing is playing.".into(),
            },
            _ => return,
        };
        let _ = chat::reply(&m, &answer);
    }
}

wasmcalls_bot::bot!(MyBot);
