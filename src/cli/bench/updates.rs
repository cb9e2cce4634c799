//! `wasmcalls bench updates`: the cost of one Telegram update on its way to the
//! plugins — parsing Telegram's bytes, routing, and the raw JSON — for an account
//! in many calls. No network: the updates are built with grammers' TL types.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use grammers_tl_types::{self as tl, Deserializable, Serializable};

use crate::telegram::Update;
use crate::telegram::mtproto::requests::CallRef;
use crate::telegram::mtproto::router::{JoinedCall, Router};

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
    let router = Router { me: ME };
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
        let tl::enums::Updates::Updates(u) = tl::enums::Updates::from_bytes(&bytes)? else { unreachable!() };
        for update in &u.updates {
            for out in router.route(update, &u.chats, &joined) {
                match out {
                    Update::Raw(j) => json_bytes += j.to_string().len(),
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
    let participant = |user: i64, left: bool| -> tl::enums::GroupCallParticipant {
        tl::types::GroupCallParticipant {
            muted: true,
            left,
            can_self_unmute: true,
            just_joined: false,
            versioned: true,
            min: false,
            muted_by_you: false,
            volume_by_admin: false,
            is_self: false,
            video_joined: false,
            peer: tl::types::PeerUser { user_id: user }.into(),
            date: 1_700_000_000,
            active_date: Some(1_700_000_100),
            source: user as i32,
            volume: Some(10_000),
            about: None,
            raise_hand_rating: None,
            video: None,
            presentation: None,
            paid_stars_total: None,
        }
        .into()
    };
    let last = calls - 1;
    let invite: tl::enums::Message = tl::types::MessageService {
        out: false,
        mentioned: true,
        media_unread: false,
        reactions_are_possible: false,
        silent: false,
        post: false,
        legacy: false,
        id: 77,
        from_id: Some(tl::types::PeerUser { user_id: 42 }.into()),
        peer_id: tl::types::PeerChannel { channel_id: 1_000_000 }.into(),
        saved_peer_id: None,
        reply_to: None,
        date: 1_700_000_000,
        action: tl::types::MessageActionInviteToGroupCall {
            call: tl::types::InputGroupCall { id: 9, access_hash: 9 }.into(),
            users: vec![ME],
        }
        .into(),
        reactions: None,
        ttl_period: None,
    }
    .into();
    let updates = vec![
        tl::types::UpdateGroupCallParticipants {
            call: tl::types::InputGroupCall { id: last, access_hash: last }.into(),
            participants: vec![participant(1001, false), participant(1002, true), participant(1003, false)],
            version: 7,
        }
        .into(),
        tl::types::UpdateNewChannelMessage { message: invite, pts: 10, pts_count: 1 }.into(),
        tl::types::UpdateUserStatus {
            user_id: 1001,
            status: tl::types::UserStatusOnline { expires: 1_700_000_300 }.into(),
        }
        .into(),
        tl::types::UpdateGroupCall {
            live_story: false,
            peer: None,
            call: tl::types::GroupCallDiscarded { id: last, access_hash: last, duration: 60 }.into(),
        }
        .into(),
    ];
    tl::types::Updates { updates, users: vec![], chats: vec![], date: 1_700_000_000, seq: 0 }.into()
}
