//! Hot reload: a new version swapped in between events, state handed over, nothing
//! lost or doubled, calls untouched, broken versions refused, the watcher exact.

use std::path::{Path, PathBuf};

use serde_json::json;
use wasmcalls::calls::HostEvent;
use wasmcalls::runtime::PluginError;
use wasmcalls::runtime::dev::{Source, watch_sources};

use crate::support::*;

const CHAT: i64 = -1001185324811;

/// The same component with a custom section appended: a new version (new hash)
/// with the same behaviour.
fn new_version(of: &Path, tag: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(of).unwrap();
    let name = b"wasmcalls-test-version";
    let payload: Vec<u8> = [&[name.len() as u8][..], name, tag.as_bytes()].concat();
    bytes.push(0); // custom section id
    bytes.push(payload.len() as u8); // LEB128 size (< 128)
    bytes.extend(payload);
    bytes
}

/// A host with a testbot loaded from a copy in its folder; returns the copy's path.
async fn host_with_bot(settings: &str, hot_reload: bool) -> (Host, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("bot.wasm");
    std::fs::copy(plugin("testbot"), &wasm).unwrap();
    let setup = Setup::new()
        .host(&format!("hot_reload = {hot_reload}"))
        .chat(CHAT)
        .plugin(Bot::at("bot", "bot.wasm").settings(settings).all());
    (Host::start_in(dir, &setup).await, wasm)
}

async fn count(host: &Host) -> u64 {
    host.api("bot", json!({ "cmd": "count" })).await.as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_and_events_during_a_reload_arrive_exactly_once() {
    let (host, wasm) = host_with_bot("", false).await;
    for _ in 0..3 {
        count(&host).await;
    }
    let next = host.dir.path().join("bot-v2.wasm");
    std::fs::write(&next, new_version(&wasm, "v2")).unwrap();

    // Events keep coming while the new version compiles and swaps in.
    let mut events = host.app.events();
    let plugins = host.app.plugins.clone();
    let reload = tokio::spawn(async move { plugins.reload("bot", &next).await });
    const N: u64 = 50;
    for i in 0..N {
        host.loopback().raw_update(json!({ "_": "count", "i": i }));
    }
    for _ in 0..N {
        host.event(&mut events, |e| matches!(e, HostEvent::RawUpdate { json: j, .. } if j.contains("\"count\""))).await;
    }
    let report = reload.await.unwrap().expect("the new version is serving");
    assert!(report.restored, "the count was handed over");
    // 3 commands + N events + this command: one lost or doubled event would show.
    assert_eq!(count(&host).await, 3 + N + 1);
    let status = &host.app.plugins.status()[0];
    assert_eq!((status.reloads, status.restarts), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_update_leaves_the_old_version_serving() {
    let (host, _wasm) = host_with_bot("", false).await;
    count(&host).await;
    let dir = host.dir.path();
    let broken = [
        ("junk.wasm", b"not wasm at all".to_vec()),
        ("wrong-world.wasm", wat::parse_str("(component)").unwrap()),
        ("truncated.wasm", std::fs::read(plugin("testbot")).unwrap()[..5000].to_vec()),
    ];
    for (name, bytes) in broken {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = host.app.plugins.reload("bot", &path).await.unwrap_err();
        assert!(e.to_string().contains("plugin bot"), "{name}: {e}");
    }
    let missing = host.app.plugins.reload("bot", &dir.join("missing.wasm")).await.unwrap_err();
    assert!(matches!(missing, PluginError::Read { .. }));
    assert_eq!(count(&host).await, 2, "the old version still serves, with its state");
    assert_eq!(host.app.plugins.status()[0].reloads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_traps_falls_back_to_a_fresh_start() {
    let (host, wasm) = host_with_bot("trap_on_restore = true", false).await;
    count(&host).await;
    let next = host.dir.path().join("v2.wasm");
    std::fs::write(&next, new_version(&wasm, "v2")).unwrap();
    let report = host.app.plugins.reload("bot", &next).await.unwrap();
    assert!(!report.restored);
    assert_eq!(count(&host).await, 1, "a fresh start: the count began again");
    let seen = host.api("bot", json!({ "cmd": "events" })).await;
    assert_eq!(seen, json!([{ "on-start": wasmcalls::telegram::loopback::DEFAULT_USER_ID }]), "it got on-start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_playback_leaves_the_audio_untouched() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(dir.path(), "a.raw", &tones(&[(440.0, 0.3)], 3.0, RATE, 2));
    let wasm = dir.path().join("jukebox.wasm");
    std::fs::copy(plugin("jukebox"), &wasm).unwrap();
    let setup = Setup::new().host("hot_reload = false").chat(CHAT).plugin(
        Bot::at("jukebox", "jukebox.wasm")
            .settings(&format!("chat = {CHAT}, bitrate = 48000, playlist = [\"a.raw\"]"))
            .grants(&format!("chats = [{CHAT}], files = [\".\"]")),
    );
    let host = Host::start_in(dir, &setup).await;
    let heard = tokio::time::timeout(PATIENCE, host.loopback().participant(CHAT)).await.unwrap();
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.packets >= 25)).await.unwrap();
    let next = host.dir.path().join("jukebox-v2.wasm");
    std::fs::write(&next, new_version(&wasm, "v2")).unwrap();
    assert!(host.app.plugins.reload("jukebox", &next).await.unwrap().restored);
    // The new version knows it is playing: at the end it leaves, as the old one would.
    tokio::time::timeout(PATIENCE, heard.wait_until(|s| s.state == "left")).await.expect("the reloaded jukebox left");
    let s = heard.stats();
    assert_eq!((s.packets, s.lost), (150, 0), "3 s heard whole, no gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_reloads_once_for_a_slow_write_and_once_for_a_rename() {
    let (host, wasm) = host_with_bot("", true).await;
    let mut reloads = host.app.plugins.reloads();
    count(&host).await;
    let once = |reloads: &mut tokio::sync::broadcast::Receiver<_>| {
        let r: Result<(String, Result<_, PluginError>), _> = reloads.try_recv();
        r
    };

    // A slow, chunked write in place: reloaded once, when the file has gone quiet.
    let v2 = new_version(&wasm, "v2");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&wasm).unwrap();
        for chunk in v2.chunks(v2.len() / 4 + 1) {
            f.write_all(chunk).unwrap();
            f.flush().unwrap();
            // Writing slowly is the point: the watcher must wait for the file to settle.
            std::thread::sleep(std::time::Duration::from_millis(60));
        }
    }
    let (name, r) = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
    assert_eq!(name, "bot");
    assert!(r.unwrap().restored);

    // An atomic replace by rename: once more.
    let tmp = host.dir.path().join("bot.wasm.tmp");
    std::fs::write(&tmp, new_version(&wasm, "v3")).unwrap();
    std::fs::rename(&tmp, &wasm).unwrap();
    let (_, r) = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
    assert!(r.unwrap().restored);

    // Nothing more: no second reload for either change (watched over a quiet window).
    // Watched for as long as the watcher could still act on either change.
    tokio::time::sleep(wasmcalls::runtime::watch::SETTLE + wasmcalls::runtime::watch::QUIET * 2).await;
    assert!(once(&mut reloads).is_err(), "each change reloaded exactly once");
    assert_eq!(count(&host).await, 2, "state carried through both reloads");
    assert_eq!(host.app.plugins.status()[0].reloads, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_rebuilds_on_save_reloads_and_keeps_serving_through_a_failed_build() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("version.txt"), "v1").unwrap();
    std::fs::write(dir.path().join("next.wasm"), new_version(&plugin("testbot"), "v1")).unwrap();
    // The "compiler": fails when the source says so, else copies the next version in.
    std::fs::write(
        dir.path().join("build.sh"),
        "if grep -q broken version.txt; then echo 'error[E0308]: version.txt is broken' >&2; exit 1; fi\n\
         cp ../next.wasm ../bot.wasm.tmp && mv ../bot.wasm.tmp ../bot.wasm\n",
    )
    .unwrap();
    let setup = Setup::new().plugin(
        Bot::at("bot", "bot.wasm")
            .line("build = \"src\"")
            .line("build_command = \"sh ../build.sh\"")
            .grants("chats = \"all\""),
    );
    let options = Host::options(&dir, &setup);
    let host = Host::start_in(dir, &setup).await; // builds once at start, like `run`
    let plan = &options.plugins[0];
    let source = Source { plugin: "bot".into(), build: plan.build.clone().unwrap(), wasm: plan.spec.wasm.clone() };
    let (tx, mut rebuilt) = tokio::sync::mpsc::unbounded_channel();
    let _watch = watch_sources(vec![source], tx).unwrap().expect("a source to watch");
    let mut reloads = host.app.plugins.reloads();
    assert_eq!(count(&host).await, 1);

    // Save a source file: rebuilt, then reloaded with its state.
    std::fs::write(host.dir.path().join("next.wasm"), new_version(&plugin("testbot"), "v2")).unwrap();
    std::fs::write(src.join("version.txt"), "v2").unwrap();
    let r = tokio::time::timeout(PATIENCE, rebuilt.recv()).await.unwrap().unwrap();
    assert!(r.result.is_ok(), "{r:?}");
    let (_, reloaded) = tokio::time::timeout(PATIENCE, reloads.recv()).await.unwrap().unwrap();
    assert!(reloaded.unwrap().restored);
    assert_eq!(count(&host).await, 2);

    // A failed build: its error comes back plainly and the running version serves on.
    std::fs::write(src.join("version.txt"), "broken").unwrap();
    let r = tokio::time::timeout(PATIENCE, rebuilt.recv()).await.unwrap().unwrap();
    let err = r.result.unwrap_err();
    assert!(err.contains("error[E0308]: version.txt is broken"), "{err}");
    assert_eq!(count(&host).await, 3);
    assert_eq!(host.app.plugins.status()[0].reloads, 1);
}
