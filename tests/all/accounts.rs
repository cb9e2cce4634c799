//! Several accounts ("assistants") on the loopback: each join goes through an account
//! that is a member of the chat, or one the plugin names; calls and metrics say which.

use serde_json::json;
use wasmcalls::calls::HostEvent;
use wasmcalls::telegram::Telegram;

use crate::support::*;

/// Supergroups: a1 is in A and BOTH, a2 in B and BOTH.
const A: i64 = -1_001_000_000_201;
const B: i64 = -1_001_000_000_202;
const BOTH: i64 = -1_001_000_000_203;
const A1: i64 = 777_000_001;
const A2: i64 = 777_000_011;

fn two_accounts() -> Setup {
    Setup::new()
        .chat(A)
        .chat(B)
        .chat(BOTH)
        .plugin(Bot::testbot("any").all())
        .plugin(Bot::testbot("only2").grants(r#"chats = "all", files = ["."], accounts = ["a2"]"#))
        .table(&format!(
            "[[accounts]]\nname = \"a1\"\nchats = [{A}, {BOTH}]\n[[accounts]]\nname = \"a2\"\nchats = [{B}, {BOTH}]"
        ))
}

/// Who the loopback lists in `chat`'s call.
async fn peers(host: &Host, chat: i64) -> Vec<i64> {
    let page = host.loopback().participants(chat, None, 100).await.unwrap();
    page.participants.iter().map(|p| p.peer).collect()
}

async fn account_of(host: &Host, chat: i64) -> Option<String> {
    host.app.manager.calls().await.into_iter().find(|c| c.chat == chat).and_then(|c| c.account)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_accounts_each_join_their_own_chats_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, 48_000, 2));
    let host = Host::start_in(dir, &two_accounts()).await;
    let join = |chat: i64| json!({ "cmd": "join", "chat": chat, "file": "long.raw" });

    // A plugin granted a2 only: a2 is not in A, so refused, naming the grant.
    let r = host.api("only2", join(A)).await;
    let why = r["err"]["permission-denied"].as_str().unwrap_or_else(|| panic!("refused: {r}"));
    assert!(why.contains("(a2)") && why.contains("grants.accounts"), "{why}");

    // Each chat through the account that is its member.
    assert_eq!(host.api("any", join(A)).await, json!({ "ok": null }));
    assert_eq!(host.api("any", join(B)).await, json!({ "ok": null }));
    assert_eq!(peers(&host, A).await, [A1]);
    assert_eq!(peers(&host, B).await, [A2]);
    assert_eq!(account_of(&host, A).await.as_deref(), Some("a1"));
    assert_eq!(account_of(&host, B).await.as_deref(), Some("a2"));

    // In BOTH, only2 goes through a2 although a1 comes first.
    assert_eq!(host.api("only2", join(BOTH)).await, json!({ "ok": null }));
    assert_eq!(peers(&host, BOTH).await, [A2]);

    // Per-account metrics.
    let (status, metrics) = get(&host, "/metrics", None).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("wasmcalls_account_calls{account=\"a1\"} 1"), "{metrics}");
    assert!(metrics.contains("wasmcalls_account_calls{account=\"a2\"} 2"), "{metrics}");

    // a1 removed from A: only A's call drops, and the plugin hears of it once.
    let mut events = host.app.events();
    host.loopback().kick(A);
    host.event(&mut events, |e| *e == HostEvent::Kicked(A)).await;
    let mut joined = host.app.manager.joined_chats();
    joined.sort();
    assert_eq!(joined, [BOTH, B], "the other accounts' calls play on");
    let seen = host.api("any", json!({ "cmd": "events" })).await;
    let kicked = seen.as_array().unwrap().iter().filter(|e| **e == json!({ "on-kicked": A })).count();
    assert_eq!(kicked, 1, "{seen}");

    // Leaving frees the chat: the next join picks its account afresh.
    assert_eq!(host.api("only2", json!({ "cmd": "leave", "chat": BOTH })).await, json!({ "ok": null }));
    assert_eq!(host.api("any", join(BOTH)).await, json!({ "ok": null }));
    assert_eq!(account_of(&host, BOTH).await.as_deref(), Some("a1"), "any account: the first member");
    assert_eq!(host.app.manager.accounts(), [("a1".to_owned(), 1), ("a2".to_owned(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_both_accounts_see_reaches_plugins_once() {
    let host = Host::start(&two_accounts()).await;
    let mut events = host.app.events();
    host.loopback().say(BOTH, 4242, "hello both", None).unwrap();
    host.loopback().say(B, 4242, "only a2 is here", None).unwrap();
    // Messages arrive in order: the second one's arrival means the first's repeats would have too.
    let text = |e: &HostEvent| match e {
        HostEvent::Message(m) => Some(m.text.clone()),
        _ => None,
    };
    assert_eq!(text(&host.event(&mut events, |e| text(e).is_some()).await).as_deref(), Some("hello both"));
    assert_eq!(text(&host.event(&mut events, |e| text(e).is_some()).await).as_deref(), Some("only a2 is here"));
    assert!(host.loopback().member_status(BOTH, A2).await.unwrap() == wasmcalls::telegram::MemberStatus::Member);
    assert!(host.loopback().member_status(A, A2).await.unwrap() == wasmcalls::telegram::MemberStatus::Left);
}
