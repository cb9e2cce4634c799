//! A bounded load on POST /api from concurrent keep-alive clients.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use super::percentiles;

#[derive(Args)]
pub struct ApiArgs {
    /// Requests in all
    #[arg(long, default_value_t = 20000)]
    requests: usize,
    /// Concurrent clients (keep-alive connections)
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// The plugin answering (must echo `{"cmd":"echo"}`: the testbot does)
    #[arg(long, default_value = super::TESTBOT)]
    wasm: PathBuf,
}

pub async fn run(a: ApiArgs) -> Result<()> {
    super::require_plugin(&a.wasm)?;
    let text = format!(
        "[host]\napi_port = 0\napi_concurrency = {}\n[[plugins]]\nname = \"echo\"\nwasm = {:?}\ngrants = {{ chats = \"all\" }}\n",
        a.clients.max(1) * 2,
        a.wasm.canonicalize()?
    );
    let app = super::host(&text, Path::new(".")).await?;
    let url = format!("http://{}/api", app.api);
    let per_client = a.requests / a.clients.max(1);
    let t0 = Instant::now();
    let clients = (0..a.clients.max(1)).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut lat = Vec::with_capacity(per_client);
            let mut failed = 0usize;
            for i in 0..per_client {
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .body(format!("{{\"cmd\":\"echo\",\"n\":{i}}}"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    lat.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (lat, failed)
        })
    });
    let mut all = Vec::new();
    let mut failed = 0;
    for c in futures::future::join_all(clients).await {
        let (lat, f) = c?;
        all.extend(lat);
        failed += f;
    }
    let wall = t0.elapsed();
    let n = all.len();
    let (p50, p99, max) = percentiles(all);
    println!(
        "wasmcalls http bench: {} requests from {} clients to POST /api (testbot echo)",
        per_client * a.clients.max(1),
        a.clients.max(1)
    );
    println!(
        "  {:.0} requests/s; latency p50 {p50:.0} µs, p99 {p99:.0} µs, max {max:.0} µs; {failed} failed",
        n as f64 / wall.as_secs_f64()
    );
    app.shutdown().await;
    Ok(())
}
