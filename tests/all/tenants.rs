//! Tenants changed while the host runs: the admin API and config reloads, beside a
//! call that must not notice.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const RADIO: i64 = -100;
const DJ: i64 = -101;
const TOKEN: &str = "admin-s3cret";

/// A host with two chats and the `radio` plugin playing a long file into RADIO.
async fn radio_host(from_file: bool, extra: &[&str]) -> Host {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 60.0, 48_000, 2));
    let setup = extra
        .iter()
        .fold(Setup::new().chat(RADIO).chat(DJ).host(&format!("admin_token = {TOKEN:?}")), |s, l| s.host(l))
        .plugin(Bot::testbot("radio").all());
    let host = if from_file { Host::start_from_file(dir, &setup).await } else { Host::start_in(dir, &setup).await };
    let r = host.api("radio", json!({ "cmd": "join", "chat": RADIO, "file": "long.raw" })).await;
    assert_eq!(r, json!({ "ok": null }));
    host
}

async fn admin(host: &Host, method: Method, path: &str, body: &str) -> Reply {
    request(host, method, path, body, Some(TOKEN)).await
}

/// The testbot's section, TOML as in the config file.
fn dj_section(chats: &str) -> String {
    format!("wasm = {:?}\ngrants = {{ chats = {chats}, files = [\".\"] }}\n", plugin("testbot"))
}

/// The chats whose calls `plugin` sees (those it is granted).
async fn sees(host: &Host, plugin: &str) -> Vec<i64> {
    let calls = post(host, &format!("/api/{plugin}"), r#"{"cmd":"calls"}"#, None).await.body;
    calls.as_array().unwrap().iter().map(|c| c["chat"].as_i64().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_adds_regrants_disables_and_removes_a_plugin_while_another_call_plays_on() {
    let host = radio_host(false, &[]).await;
    let radio = host.loopback().participant(RADIO).await;

    // Added: answers on its own route, may join only what it was granted.
    let r = admin(&host, Method::PUT, "/admin/plugins/dj", &dj_section(&format!("[{DJ}]"))).await;
    assert_eq!((r.status, r.body["added"].clone()), (200, json!(["dj"])), "{}", r.body);
    let join = |chat: i64| json!({ "cmd": "join", "chat": chat, "file": "long.raw" }).to_string();
    assert_eq!(post(&host, "/api/dj", &join(DJ), None).await.body, json!({ "ok": null }));
    let refused = post(&host, "/api/dj", &join(RADIO), None).await.body;
    assert!(refused["err"]["permission-denied"].is_string(), "not granted the radio's chat: {refused}");
    assert_eq!(sees(&host, "dj").await, [DJ]);
    for _ in 0..2 {
        post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await;
    }

    // Regranted (JSON this time): the same plugin, its state handed over, seeing more.
    let section = json!({ "wasm": plugin("testbot"), "grants": { "chats": [RADIO, DJ], "files": ["."] } });
    let r = admin(&host, Method::PUT, "/admin/plugins/dj", &section.to_string()).await;
    assert_eq!((r.status, r.body["replaced"].clone()), (200, json!(["dj"])), "{}", r.body);
    assert_eq!(r.body["unchanged"], json!(["radio"]), "the other plugin is not touched");
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.body, json!(3), "state handed over");
    let mut seen = sees(&host, "dj").await;
    seen.sort();
    assert_eq!(seen, [DJ, RADIO]);

    // Disabled: refused, its call plays on; enabled: back.
    assert_eq!(admin(&host, Method::POST, "/admin/plugins/dj/disable", "").await.status, 200);
    let r = post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(host.app.manager.joined_chats().contains(&DJ));
    assert_eq!(admin(&host, Method::POST, "/admin/plugins/dj/enable", "").await.status, 200);
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.body, json!(4));

    // Reloaded from its file (the dashboard's Reload): the same component again, its
    // state handed over; a plugin that does not run is named.
    let r = admin(&host, Method::POST, "/admin/plugins/dj/reload", "").await;
    assert_eq!((r.status, r.body["replaced"].clone()), (200, json!(["dj"])), "{}", r.body);
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.body, json!(5));
    let r = admin(&host, Method::POST, "/admin/plugins/nobody/reload", "").await;
    assert!(r.status == 404 && r.body["error"].as_str().unwrap().contains("nobody"), "{}", r.body);

    // Listed, then removed: the call it joined is left, the radio's is not.
    let listed = admin(&host, Method::GET, "/admin/plugins", "").await.body;
    let dj = listed["plugins"].as_array().unwrap().iter().find(|p| p["name"] == "dj").cloned().unwrap();
    assert_eq!((dj["state"].clone(), dj["calls"].clone()), (json!("running"), json!([DJ])), "{listed}");
    let dj_call = host.loopback().participant(DJ).await;
    let r = admin(&host, Method::DELETE, "/admin/plugins/dj", "").await;
    assert_eq!((r.status, r.body["removed"].clone(), r.body["left"].clone()), (200, json!(["dj"]), json!([DJ])));
    dj_call.wait_until(|s| s.state == "left").await;
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.status, 404, "its route is gone");
    assert_eq!(host.app.manager.joined_chats(), [RADIO]);

    // Through all of it the radio played on: every packet there, in order.
    let before = radio.stats().packets;
    radio.wait_until(|s| s.packets >= before + 25).await;
    let s = radio.stats();
    assert_eq!((s.lost, s.late, s.state.as_str()), (0, 0, "connected"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_refuses_without_its_token_and_refuses_bad_changes_whole() {
    let host = radio_host(false, &[]).await;
    for token in [None, Some("wrong"), Some("")] {
        let r = request(&host, Method::GET, "/admin/plugins", "", token).await;
        assert_eq!(r.status, 401, "{token:?}: {}", r.body);
    }
    // The bots' token is not the admin's.
    let r = request(&host, Method::DELETE, "/admin/plugins/radio", "", Some("api-token")).await;
    assert_eq!(r.status, 401);

    let r = admin(&host, Method::PUT, "/admin/plugins/dj", "wasm = ").await;
    assert!(r.status == 400 && r.body["error"].as_str().unwrap().contains("not TOML"), "{}", r.body);
    let r = admin(&host, Method::PUT, "/admin/plugins/dj", &dj_section("\"some\"")).await;
    let why = r.body["error"].as_str().unwrap();
    assert!(r.status == 400 && why.contains("grants.chats") && why.ends_with("nothing changed"), "{why}");
    let r = admin(&host, Method::PUT, "/admin/plugins/dj", "wasm = \"missing.wasm\"\n").await;
    assert!(r.status == 422 && r.body["error"].as_str().unwrap().contains("missing.wasm"), "{}", r.body);
    let r = admin(&host, Method::PUT, "/admin/plugins/dj", "name = \"other\"\nwasm = \"x.wasm\"\n").await;
    assert_eq!(r.status, 400, "a name that disagrees with the URL: {}", r.body);
    let r = admin(&host, Method::DELETE, "/admin/plugins/nobody", "").await;
    assert_eq!(r.status, 404);
    let names: Vec<Value> = admin(&host, Method::GET, "/admin/plugins", "").await.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, [json!("radio")], "nothing changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_admin_api_is_off() {
    let host = Host::start(&Setup::new().plugin(Bot::testbot("t"))).await;
    let r = request(&host, Method::GET, "/admin/plugins", "", None).await;
    assert!(r.status == 404 && r.body["error"].as_str().unwrap().contains("admin_token"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_adds_a_plugin_and_an_invalid_config_is_refused_whole() {
    let host = radio_host(true, &[]).await;
    let file = host.dir.path().join("wasmcalls.toml");
    let text = std::fs::read_to_string(&file).unwrap();

    let added = format!("{text}[[plugins]]\nname = \"dj\"\n{}", dj_section(&format!("[{DJ}]")));
    std::fs::write(&file, &added).unwrap();
    let applied = host.app.tenants.reload().await.unwrap();
    assert_eq!((applied.added, applied.unchanged), (vec!["dj".to_owned()], vec!["radio".to_owned()]));
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.body, json!(1));

    // Invalid (an unknown chats word), then unloadable (a missing component): each
    // refused whole, saying why, and both plugins keep serving.
    let broken = added.replace(&format!("chats = [{DJ}]"), "chats = \"some\"");
    std::fs::write(&file, &broken).unwrap();
    let e = host.app.tenants.reload().await.unwrap_err().to_string();
    assert!(e.contains("grants.chats") && e.contains("wasmcalls.toml"), "{e}");
    std::fs::write(&file, format!("{added}[[plugins]]\nname = \"ghost\"\nwasm = \"ghost.wasm\"\n")).unwrap();
    let e = host.app.tenants.reload().await.unwrap_err().to_string();
    assert!(e.contains("ghost.wasm"), "{e}");
    assert_eq!(post(&host, "/api/dj", r#"{"cmd":"count"}"#, None).await.body, json!(2), "dj kept, state and all");

    // Removed from the file: removed from the host, through the admin API's reload.
    std::fs::write(&file, text.replace("api_port = 0", "api_port = 0\nlog = \"debug\"")).unwrap();
    let r = admin(&host, Method::POST, "/admin/reload", "").await;
    assert_eq!((r.body["removed"].clone(), r.body["restart_needed"].clone()), (json!(["dj"]), json!(["host"])));
    assert_eq!(host.app.manager.joined_chats(), [RADIO]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_refuse_what_is_over_them_naming_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "long.raw", &tones(&[(440.0, 0.3)], 30.0, 48_000, 2));
    let setup = Setup::new().chat(RADIO).chat(DJ).plugin(
        Bot::probe("p")
            .grants("chats = \"all\", files = [\".\"], messages = true")
            .limits("max_calls = 1, messages_per_minute = 2"),
    );
    let host = Host::start_in(dir, &setup).await;
    let join = |chat: i64| json!({ "cmd": "join", "chat": chat, "source": { "file": "long.raw" } });
    assert_eq!(host.api("p", join(RADIO)).await, json!({ "ok": null }));
    let over = host.api("p", join(DJ)).await;
    let why = over["err"]["other"].as_str().unwrap_or_default();
    assert!(why.starts_with("quota: limits.max_calls = 1") && why.contains(&RADIO.to_string()), "{over}");
    // Its call left, the quota has room again.
    assert_eq!(host.api("p", json!({ "cmd": "leave", "chat": RADIO })).await, json!({ "ok": null }));
    assert_eq!(host.api("p", join(DJ)).await, json!({ "ok": null }));

    let send = json!({ "cmd": "send", "chat": DJ, "text": "now playing" });
    for _ in 0..2 {
        assert!(host.api("p", send.clone()).await["ok"].is_number());
    }
    let over = host.api("p", send).await;
    let why = over["err"]["other"].as_str().unwrap_or_default();
    assert!(why.starts_with("quota: limits.messages_per_minute = 2"), "{over}");
    assert_eq!(host.loopback().transcript(DJ).len(), 2, "the third was not sent");
    let (_, metrics) = get(&host, "/metrics", None).await;
    assert!(metrics.contains("wasmcalls_plugin_quota_refused_total{plugin=\"p\"} 2"), "{metrics}");
    assert!(metrics.contains("wasmcalls_plugin_calls{plugin=\"p\"} 1"), "{metrics}");
}
