//! `wasmcalls bench updates`: the cost of one Telegram update on its way to the
//! plugins — parsing Telegram's bytes, routing, and the raw JSON — for an account
//! in many calls. No network: the updates are built with grammers' TL types.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use grammers_tl_types::{self as tl, Deserializable, Serializable};

use wasmcalls::telegram::Account;
use wasmcalls::telegram::Update;
use wasmcalls::telegram::loopback::updates as samples;
use wasmcalls::telegram::router::{JoinedCall, Router};
use wasmcalls::telegram::tl::{CallRef, container};

#[derive(Args)]
pub struct UpdatesArgs {
    /// Containers of updates to route
    #[arg(long, default_value_t = 20_000)]
    batches: usize,
    /// Calls the account is in (the router looks calls up among them)
    #[arg(long, default_value_t = 200)]
    calls: usize,
}

const ME: i64 = 5_000_001;

pub async fn run(args: UpdatesArgs) -> Result<()> {
    let joined: Vec<JoinedCall> = (0..args.calls as i64)
        .map(|i| JoinedCall {
            chat: -1_001_000_000_000 - i,
            call: CallRef { id: i, access_hash: i },
            ssrc: i as u32 + 1,
        })
        .collect();
    let router = Router::new(ME, None);
    let bytes = sample(args.calls as i64).to_bytes();
    println!(
        "routing {} containers of 4 updates ({} bytes each), account in {} calls",
        args.batches,
        bytes.len(),
        args.calls
    );

    let (mut per_update, mut routed, mut json_bytes) = (Vec::with_capacity(args.batches), 0usize, 0usize);
    let started = Instant::now();
    for _ in 0..args.batches {
        let t = Instant::now();
        let tl::enums::Updates::Updates(u) = tl::enums::Updates::from_bytes(&bytes)? else {
            anyhow::bail!("the sample did not parse back as a container of updates");
        };
        for update in &u.updates {
            for out in router.route(update, &u.chats, &joined, Account::User) {
                match out {
                    Update::Raw { json, .. } => json_bytes += json.to_string().len(),
                    _ => routed += 1,
                }
            }
        }
        per_update.push(t.elapsed() / u.updates.len() as u32);
    }
    let total = started.elapsed();
    let n = args.batches * 4;
    let (p50, p99, max) = super::percentiles(per_update);
    println!("  per update (parse + route + JSON, rendered): p50 {p50:.1} µs, p99 {p99:.1} µs, max {max:.1} µs");
    println!(
        "  {:.0} updates/s on one core; {routed} routed events, raw JSON {:.0} bytes per update",
        n as f64 / total.as_secs_f64(),
        json_bytes as f64 / n as f64
    );
    Ok(())
}

/// One container as a busy account receives it: participants changing in a call we
/// are in (the last one), an invitation naming us, someone's status, a call ending.
fn sample(calls: i64) -> tl::enums::Updates {
    let last = CallRef { id: calls - 1, access_hash: calls - 1 };
    let group: tl::enums::Peer = tl::types::PeerChannel { channel_id: 1_000_000 }.into();
    let status = tl::types::UpdateUserStatus {
        user_id: 1001,
        status: tl::types::UserStatusOnline { expires: 1_700_000_300 }.into(),
    };
    container(
        vec![
            samples::participants(
                last,
                vec![
                    samples::participant(1001, 1, false),
                    samples::participant(1002, 2, true),
                    samples::participant(1003, 3, false),
                ],
            ),
            samples::invitation(group, 42, 77, CallRef { id: 9, access_hash: 9 }, vec![ME]),
            status.into(),
            samples::discarded(None, last),
        ],
        vec![],
    )
}
