//! A bad network between a participant and the loopback, in user space (the kernel
//! here has no `netem`): a UDP relay in front of the loopback's media socket that
//! drops, delays, jitters, reorders and duplicates datagrams in each direction, and
//! blackholes both for a scheduled outage.
//!
//! Outages follow the network's clock — from the loopback's start — so a call that
//! rejoins during one meets the rest of it.
//!
//! The join is answered with the relay's address, so the client talks to the relay;
//! the relay talks to the loopback's peer from a socket of its own, which the peer
//! learns as a peer-reflexive candidate — as a NAT would look to Telegram.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// What the network does to each datagram, in each direction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share of datagrams dropped, 0–1.
    pub loss: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Each datagram's delay varies uniformly by up to this much either way (never
    /// below zero): datagrams overtake each other as on a real path.
    pub jitter: Duration,
    /// Share of datagrams sent at once, overtaking those delayed before them, 0–1.
    pub reorder: f64,
    /// Share of datagrams sent twice, 0–1.
    pub duplicate: f64,
    /// Periods both directions are blackholed: (start after the loopback starts, length).
    pub outages: Vec<(Duration, Duration)>,
    /// Seed of the relay's randomness, for runs that repeat exactly.
    pub seed: u64,
}

impl Faults {
    /// Whether any fault is set (no relay is put in front otherwise).
    pub fn any(&self) -> bool {
        self.loss > 0.0
            || !self.delay.is_zero()
            || !self.jitter.is_zero()
            || self.reorder > 0.0
            || self.duplicate > 0.0
            || !self.outages.is_empty()
    }
}

/// A share written as a percentage: `5%` (or `5`) → 0.05.
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage; write e.g. 5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s} is not between 0% and 100%"));
    }
    Ok(v / 100.0)
}

/// A duration with its unit: `30ms`, `8s`, `1.5s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (n, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(format!("{s:?} needs a unit; write e.g. 30ms or 8s"));
    };
    let v: f64 = n.trim().parse().map_err(|_| format!("{s:?} is not a duration; write e.g. 30ms or 8s"))?;
    Duration::try_from_secs_f64(v * scale).map_err(|_| format!("{s:?} is not a duration"))
}

/// An outage, `LENGTH@START`: `8s@20s` blackholes 8 s from 20 s after the loopback starts.
pub fn parse_outage(s: &str) -> Result<(Duration, Duration), String> {
    let (len, at) =
        s.split_once('@').ok_or_else(|| format!("{s:?} is not an outage; write LENGTH@START, e.g. 8s@20s"))?;
    Ok((parse_duration(at)?, parse_duration(len)?))
}

/// The network's outages, on its clock: the configured ones, and any started while it
/// runs ([`super::Loopback::outage`]). Every relay consults the same schedule.
#[derive(Debug, Default)]
pub struct Outages(parking_lot::Mutex<Vec<(Instant, Duration)>>);

impl Outages {
    /// The configured outages, counted from `epoch`.
    pub fn scheduled(faults: &Faults, epoch: std::time::Instant) -> Outages {
        let epoch = Instant::from_std(epoch);
        Outages(parking_lot::Mutex::new(faults.outages.iter().map(|&(at, len)| (epoch + at, len)).collect()))
    }

    /// Blackholes every relay from now for `len`.
    pub fn start_now(&self, len: Duration) {
        self.0.lock().push((Instant::now(), len));
    }

    fn at(&self, now: Instant) -> bool {
        self.0.lock().iter().any(|&(start, len)| now >= start && now < start + len)
    }
}

/// A datagram waiting for its time.
struct Due {
    at: Instant,
    /// Tie-break: the order they were queued in.
    n: u64,
    to_loopback: bool,
    bytes: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.n) == (o.at, o.n)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(o.at, o.n))
    }
}

/// Counts of what the relay did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayCounts {
    pub forwarded: u64,
    pub dropped: u64,
    pub blackholed: u64,
    pub duplicated: u64,
}

/// Starts a relay in front of `loopback` (the peer's socket): returns the address
/// the client should be given, and the counts it keeps. It ends when `stop` fires.
pub async fn relay(
    bind_ip: std::net::IpAddr,
    loopback: SocketAddr,
    faults: Faults,
    outages: std::sync::Arc<Outages>,
    stop: std::sync::Arc<tokio::sync::Notify>,
) -> std::io::Result<(SocketAddr, std::sync::Arc<parking_lot::Mutex<RelayCounts>>)> {
    let outside = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    let inside = UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await?;
    let addr = outside.local_addr()?;
    let counts = std::sync::Arc::new(parking_lot::Mutex::new(RelayCounts::default()));
    let task_counts = counts.clone();
    tokio::spawn(async move {
        let mut rng = StdRng::seed_from_u64(faults.seed);
        let mut client: Option<SocketAddr> = None;
        let mut queue: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
        let mut n = 0u64;
        let (mut a, mut b) = (vec![0u8; 2048], vec![0u8; 2048]);
        loop {
            let next = queue.peek().map(|Reverse(d)| d.at);
            let arrived = tokio::select! {
                _ = stop.notified() => break,
                _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => None,
                r = outside.recv_from(&mut a) => match r {
                    Ok((len, from)) => {
                        client = Some(from);
                        Some((true, a[..len].to_vec()))
                    }
                    Err(_) => None,
                },
                r = inside.recv_from(&mut b) => match r {
                    Ok((len, _)) => Some((false, b[..len].to_vec())),
                    Err(_) => None,
                },
            };
            if let Some((to_loopback, bytes)) = arrived {
                let now = Instant::now();
                let mut c = task_counts.lock();
                if outages.at(now) {
                    c.blackholed += 1;
                    continue;
                }
                if rng.random_bool(faults.loss.clamp(0.0, 1.0)) {
                    c.dropped += 1;
                    continue;
                }
                let copies = if rng.random_bool(faults.duplicate.clamp(0.0, 1.0)) { 2 } else { 1 };
                c.duplicated += copies - 1;
                for _ in 0..copies {
                    let at = if rng.random_bool(faults.reorder.clamp(0.0, 1.0)) {
                        now
                    } else {
                        let j = faults.jitter.as_secs_f64();
                        let d = faults.delay.as_secs_f64() + if j > 0.0 { rng.random_range(-j..=j) } else { 0.0 };
                        now + Duration::from_secs_f64(d.max(0.0))
                    };
                    n += 1;
                    queue.push(Reverse(Due { at, n, to_loopback, bytes: bytes.clone() }));
                }
            }
            let now = Instant::now();
            while queue.peek().is_some_and(|Reverse(d)| d.at <= now) {
                let Some(Reverse(d)) = queue.pop() else { break };
                let sent = if d.to_loopback {
                    inside.send_to(&d.bytes, loopback).await
                } else if let Some(c) = client {
                    outside.send_to(&d.bytes, c).await
                } else {
                    continue;
                };
                if sent.is_ok() {
                    task_counts.lock().forwarded += 1;
                }
            }
        }
    });
    Ok((addr, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_written_as_people_write_them() {
        assert_eq!(parse_percent("5%"), Ok(0.05));
        assert_eq!(parse_percent("10"), Ok(0.1));
        assert!(parse_percent("120%").is_err() && parse_percent("lots").is_err());
        assert_eq!(parse_duration("30ms"), Ok(Duration::from_millis(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").unwrap_err().contains("unit"));
        assert_eq!(parse_outage("8s@20s"), Ok((Duration::from_secs(20), Duration::from_secs(8))));
        assert!(parse_outage("8s").unwrap_err().contains("LENGTH@START"));
    }
}
