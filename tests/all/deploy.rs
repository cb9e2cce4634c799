//! The container image and Kubernetes manifests, checked offline (these machines have
//! no container daemon and no cluster; docs/deploy.md says so).

use std::path::Path;

use serde::Deserialize;
use yaml_serde::Value;

use crate::support::*;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every document of `deploy/k8s/wasmcalls.yaml`, by kind.
fn manifests() -> Vec<Value> {
    let text = std::fs::read_to_string(repo("deploy/k8s/wasmcalls.yaml")).unwrap();
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("every manifest parses as YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} in the manifests"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}"))
}

#[test]
fn the_statefulset_runs_one_config_per_pod_with_probes_secrets_and_a_grace_above_the_drain() {
    let docs = manifests();
    let set = of_kind(&docs, "StatefulSet");
    let config = of_kind(&docs, "ConfigMap");
    let pod = &set["spec"]["template"]["spec"];
    let main = &pod["containers"][0];
    assert_eq!(main["args"][1], "/etc/wasmcalls/$(POD_NAME).toml", "each pod runs its own config");

    // One config per replica, named for its pod, each a wasmcalls config that listens
    // where the probes look and drains within the grace period.
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let port = main["ports"][0]["containerPort"].as_u64().unwrap();
    let configs = config["data"].as_mapping().unwrap();
    assert_eq!(configs.len() as u64, replicas);
    let mut owned = std::collections::HashSet::new();
    for i in 0..replicas {
        let text = str_of(&config["data"][format!("wasmcalls-{i}.toml").as_str()]);
        let c = wasmcalls::config::Config::parse(text, Path::new("/")).unwrap_or_else(|e| panic!("pod {i}: {e}"));
        assert_eq!(c.host.api_port, Some(port as u16), "pod {i} listens where the probes look");
        assert!(c.host.api_token.is_none() && c.host.admin_token.is_none(), "pod {i}: tokens come from the Secret");
        assert!(c.host.drain_grace_s.unwrap() + 5 <= grace, "pod {i}: drains within the grace period");
        assert!(c.telegram.is_some(), "pod {i}: real Telegram");
        // Resolved as the pod resolves it (the token from the environment), without the
        // plugins, whose folders exist only on the pod's volume.
        let pod_view = wasmcalls::config::Config {
            host: wasmcalls::config::HostConfig { api_token: Some("from-the-secret".into()), ..c.host.clone() },
            plugins: Vec::new(),
            ..c.clone()
        };
        let o = wasmcalls::app::resolve(&pod_view).unwrap_or_else(|e| panic!("pod {i}: {e}"));
        let wasmcalls::telegram::TelegramOptions::Mtproto(accounts) = o.telegram else { panic!("pod {i}: MTProto") };
        assert!(accounts.len() >= 2, "pod {i} owns a set of accounts");
        for (name, t) in &accounts {
            assert_eq!(t.session, Path::new(&format!("/var/lib/wasmcalls/sessions/{name}.session")), "pod {i}");
            assert!(owned.insert(name.clone()), "{name} is owned by one pod only");
        }
        assert!(c.host.cache_dir.unwrap().starts_with("/var/lib/wasmcalls"), "the compile cache is on the volume");
    }
    assert_eq!(main["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(main["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(main["readinessProbe"]["httpGet"]["path"], "/readyz");

    let secret = of_kind(&docs, "Secret")["metadata"]["name"].clone();
    let env = main["env"].as_sequence().unwrap();
    for var in ["WASMCALLS_API_TOKEN", "WASMCALLS_ADMIN_TOKEN"] {
        let e = env.iter().find(|e| e["name"] == var).unwrap_or_else(|| panic!("no {var}"));
        assert_eq!(e["valueFrom"]["secretKeyRef"]["name"], secret, "{var} from the Secret");
    }
    let seed = pod["initContainers"][0]["command"][2].as_str().unwrap();
    assert!(seed.contains("/seed/$(POD_NAME).*.session") && seed.contains("${f#/seed/$(POD_NAME).}"), "{seed}");
    assert_eq!(set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"], "state");
    let service = of_kind(&docs, "Service");
    assert_eq!(service["spec"]["clusterIP"], "None", "stable per-pod names");
    assert_eq!(service["metadata"]["annotations"]["prometheus.io/path"], "/metrics");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
}

#[test]
fn the_image_runs_the_binary_the_tests_run_and_its_default_config_checks() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked --bin wasmcalls"), "the same crate, locked");
    assert!(dockerfile.contains("COPY --from=build /src/target/release/wasmcalls /usr/local/bin/wasmcalls"));
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/wasmcalls"]"#));
    let cmd = dockerfile.lines().find_map(|l| l.strip_prefix("CMD ")).expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(cmd).unwrap();
    assert_eq!(cmd, ["run", "/etc/wasmcalls/wasmcalls.toml"]);
    assert!(dockerfile.contains("COPY deploy/wasmcalls.toml /etc/wasmcalls/wasmcalls.toml"));

    // The image's config, its paths mapped onto this checkout, passes `wasmcalls check`
    // (the `run` in CMD, without starting anything).
    let dir = tempfile::tempdir().unwrap();
    let media = repo("examples/media");
    let text = std::fs::read_to_string(repo("deploy/wasmcalls.toml"))
        .unwrap()
        .replace("/usr/share/wasmcalls/plugins/musicbot.wasm", plugin("musicbot").to_str().unwrap())
        .replace("/usr/share/wasmcalls/media", media.to_str().unwrap())
        .replace("/var/lib/wasmcalls", dir.path().to_str().unwrap());
    std::fs::write(dir.path().join("wasmcalls.toml"), text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmcalls"))
        .args(["check", "wasmcalls.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("musicbot") && stdout.contains("is good"), "{stdout}");
}
