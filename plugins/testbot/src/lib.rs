//! A plugin for the host's tests. Its custom API runs the command the JSON body
//! names and answers with the result, error variant included; `trap` panics (a
//! trap to the host). Every event it receives is recorded and returned by `events`,
//! and logged. Setting `trap_on_start` makes `on-start` trap.

use std::cell::RefCell;

use serde_json::{Value, json};
use wasmcalls_bot::{ApiRequest, ApiResponse, Bot, CallError, Invite, LogLevel, calls, log};

thread_local! {
    static EVENTS: RefCell<Vec<Value>> = const { RefCell::new(Vec::new()) };
    /// Survives hot reloads through save/restore.
    static COUNT: RefCell<u64> = const { RefCell::new(0) };
}

fn record(event: Value) {
    log(LogLevel::Info, format!("event {event}"));
    EVENTS.with(|e| e.borrow_mut().push(event));
}

fn error_json(e: &CallError) -> Value {
    match e {
        CallError::HostCoreNotRunning => json!({ "host-core-not-running": null }),
        CallError::ClientNotRunning => json!({ "client-not-running": null }),
        CallError::NoActiveGroupCall(c) => json!({ "no-active-group-call": c }),
        CallError::NotInCall(c) => json!({ "not-in-call": c }),
        CallError::NoClient => json!({ "no-client": null }),
        CallError::PermissionDenied(m) => json!({ "permission-denied": m }),
        CallError::InvalidArgument(m) => json!({ "invalid-argument": m }),
        CallError::FileError(m) => json!({ "file-error": m }),
        CallError::Other(m) => json!({ "other": m }),
    }
}

fn done(r: Result<(), CallError>) -> Value {
    match r {
        Ok(()) => json!({ "ok": null }),
        Err(e) => json!({ "err": error_json(&e) }),
    }
}

/// Recurses without bound (the guard is never true; the optimizer cannot know).
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    std::hint::black_box(recurse(std::hint::black_box(depth + 1))) + 1
}

/// `trap_always` in the settings: every event traps.
fn maybe_trap_always() {
    let settings: Value = serde_json::from_str(&calls::settings()).unwrap_or(Value::Null);
    if settings["trap_always"].as_bool() == Some(true) {
        panic!("trap_always is set");
    }
}

struct TestBot;

impl Bot for TestBot {
    fn on_start(my_id: i64) {
        let settings: Value = serde_json::from_str(&calls::settings()).unwrap_or(Value::Null);
        if settings["trap_on_start"].as_bool() == Some(true) {
            panic!("trap_on_start is set");
        }
        record(json!({ "on-start": my_id }));
    }
    fn on_stream_end(chat: i64) {
        record(json!({ "on-stream-end": chat }));
    }
    fn on_kicked(chat: i64) {
        record(json!({ "on-kicked": chat }));
    }
    fn on_group_call_invite(invite: Invite) {
        record(
            json!({ "on-group-call-invite": { "chat": invite.chat, "inviter": invite.inviter, "message-id": invite.message_id } }),
        );
    }
    fn on_raw_update(update: String) {
        maybe_trap_always();
        // Counted, for the reload tests: each must arrive exactly once.
        if update.contains("\"count\"") {
            COUNT.with(|c| *c.borrow_mut() += 1);
            return;
        }
        // The host's dispatch benchmark: one short event that issues one command.
        if update == "ping" {
            let _ = calls::get_port_server();
            return;
        }
        record(json!({ "on-raw-update": serde_json::from_str::<Value>(&update).unwrap_or(Value::String(update)) }));
    }
    fn save() -> Vec<u8> {
        let settings: Value = serde_json::from_str(&calls::settings()).unwrap_or(Value::Null);
        if settings["stateless"].as_bool() == Some(true) {
            return Vec::new();
        }
        COUNT.with(|c| c.borrow().to_le_bytes().to_vec())
    }

    fn restore(state: Vec<u8>) {
        let settings: Value = serde_json::from_str(&calls::settings()).unwrap_or(Value::Null);
        if settings["trap_on_restore"].as_bool() == Some(true) {
            panic!("trap_on_restore is set");
        }
        let n = u64::from_le_bytes(state.try_into().unwrap_or([0; 8]));
        COUNT.with(|c| *c.borrow_mut() = n);
        record(json!({ "restored": n }));
    }

    fn on_custom_api(request: ApiRequest) -> ApiResponse {
        maybe_trap_always();
        let b: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
        let chat = b["chat"].as_i64().unwrap_or(0);
        let file = b["file"].as_str().unwrap_or("");
        let out = match b["cmd"].as_str().unwrap_or("") {
            "join" => done(calls::join_group_call(chat, file, b["bitrate"].as_u64().unwrap_or(48000) as u32)),
            "leave" => done(calls::leave_group_call(chat)),
            "volume" => done(calls::change_volume_call(chat, b["volume"].as_u64().unwrap_or(100) as u16)),
            "pause" => done(calls::pause_stream(chat)),
            "resume" => done(calls::resume_stream(chat)),
            "change" => done(calls::change_stream(chat, file)),
            "calls" => json!(calls::calls().iter().map(|c| json!({ "chat": c.chat, "state": c.state.as_str(), "file": c.file, "volume": c.volume, "position_ms": c.position_ms })).collect::<Vec<_>>()),
            "active-calls" => json!(calls::active_calls().iter().map(|c| c.chat).collect::<Vec<_>>()),
            "cache-id" => match calls::get_cache_id() {
                Ok(id) => json!({ "ok": id }),
                Err(e) => json!({ "err": error_json(&e) }),
            },
            "port" => json!(calls::get_port_server()),
            "read" => match std::fs::read(b["path"].as_str().unwrap_or("")) {
                Ok(bytes) => json!({ "ok": bytes.len() }),
                Err(e) => json!({ "err": e.to_string() }),
            },
            "events" => EVENTS.with(|e| json!(e.borrow().clone())),
            "trap" => panic!("asked to trap"),
            "spin" => {
                let ms = b["ms"].as_u64().unwrap_or(100);
                let t = std::time::Instant::now();
                while t.elapsed().as_millis() < ms as u128 {}
                json!({ "spun": ms })
            }
            "big" => json!("x".repeat(b["bytes"].as_u64().unwrap_or(0) as usize)),
            // Hostile behaviour, for the sandbox tests.
            "loop" => loop {
                std::hint::black_box(0u64);
            },
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => json!(recurse(0)),
            "flood" => {
                let n = b["lines"].as_u64().unwrap_or(10_000);
                for i in 0..n {
                    if i % 2 == 0 {
                        log(LogLevel::Info, format!("flood {i}"));
                    } else {
                        println!("flood {i}");
                    }
                }
                json!({ "logged": n })
            }
            "reply" => {
                let status = b["status"].as_u64().unwrap_or(200) as u16;
                return ApiResponse { status, body: b["body"].as_str().unwrap_or("").to_owned() };
            }
            "echo" => b.clone(),
            "count" => COUNT.with(|c| {
                *c.borrow_mut() += 1;
                json!(*c.borrow())
            }),
            other => json!({ "unknown": other }),
        };
        ApiResponse { status: 200, body: out.to_string() }
    }
}

wasmcalls_bot::bot!(TestBot);
