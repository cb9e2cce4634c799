//! Fetching a URL source, on the thread that decodes it (never a pacer thread).
//!
//! Redirects are followed by hand so each hop is checked against the plugin's URL
//! grants. The response decides what the source is: a `Content-Length` is a file
//! (capped by `limits.download_mb`, and resumed with a `Range` request if the
//! connection drops); ICY headers or no length is a live stream (which the decoding
//! thread reconnects when it drops). A server that sends nothing for [`STALL`] is a
//! stall, named as such.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::SourceError;
use super::guard::{GuardedResolver, literal_host};

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;
/// A server silent this long has stalled.
pub const STALL: Duration = Duration::from_secs(10);

/// Which URLs a plugin may play, where they may connect, and how much a finite
/// download may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Patterns: `*` matches any run of characters (`https://radio.example/*`).
    pub allowed: Vec<String>,
    /// The largest finite download, in bytes.
    pub max_bytes: u64,
    /// The host's own listening addresses: never connected to (see [`super::guard`]).
    pub own: Vec<SocketAddr>,
    /// Internal addresses (loopback, private…) allowed for every host, not only those
    /// named in `allowed`: the operator's own `wasmcalls play`, never a plugin.
    pub any_internal: bool,
    /// The plugin's quotas on what its fetches use, shared by all of them.
    pub meter: Option<Arc<Meter>>,
}

/// A plugin's share of the network for URL sources — bytes an hour
/// (`limits.download_mb_per_hour`) and a rate (`limits.url_kbps`) — shared by every
/// fetch it starts, whichever call plays it. 0 is no cap.
#[derive(Debug, Default)]
pub struct Meter {
    per_hour: AtomicU64,
    /// Bytes a second.
    rate: AtomicU64,
    state: parking_lot::Mutex<MeterState>,
}

#[derive(Debug)]
struct MeterState {
    /// Bytes fetched in each of the last 60 minutes: (minute since the process
    /// started, bytes), at `minute % 60`.
    minutes: [(u64, u64); 60],
    /// The rate's token bucket: bytes that may go now (negative: owed), refilled at
    /// `rate` up to one second's worth.
    tokens: f64,
    refilled: Option<Instant>,
}

impl Default for MeterState {
    fn default() -> Self {
        MeterState { minutes: [(0, 0); 60], tokens: 0.0, refilled: None }
    }
}

/// Quotas compare by their settings, not by what they counted: a plugin whose limits
/// did not change is unchanged.
impl PartialEq for Meter {
    fn eq(&self, other: &Meter) -> bool {
        self.limits() == other.limits()
    }
}

impl Eq for Meter {}

fn minute_now() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs() / 60
}

impl Meter {
    /// Sets the quotas (a plugin replaced with new limits keeps what it counted).
    pub fn set_limits(&self, per_hour_bytes: u64, bytes_per_s: u64) {
        self.per_hour.store(per_hour_bytes, Ordering::Relaxed);
        self.rate.store(bytes_per_s, Ordering::Relaxed);
    }

    fn limits(&self) -> (u64, u64) {
        (self.per_hour.load(Ordering::Relaxed), self.rate.load(Ordering::Relaxed))
    }

    /// Bytes fetched over the last hour.
    pub fn last_hour(&self) -> u64 {
        let now = minute_now();
        self.state.lock().minutes.iter().filter(|(m, _)| now < m + 60).map(|(_, b)| b).sum()
    }

    /// Refuses, naming the quota, when the hour's bytes are spent.
    pub fn check(&self) -> Result<(), String> {
        let (per_hour, _) = self.limits();
        let spent = self.last_hour();
        if per_hour > 0 && spent >= per_hour {
            return Err(format!(
                "limits.download_mb_per_hour = {}: {} MiB fetched in the last hour; it frees up as the hour \
                 goes by, or the operator can raise it",
                per_hour >> 20,
                spent >> 20
            ));
        }
        Ok(())
    }

    /// Counts `n` bytes fetched; how long to wait before fetching more, to keep the rate.
    pub fn took(&self, n: u64) -> Duration {
        let (_, rate) = self.limits();
        let now = minute_now();
        let mut s = self.state.lock();
        let slot = &mut s.minutes[(now % 60) as usize];
        if slot.0 != now {
            *slot = (now, 0);
        }
        slot.1 += n;
        if rate == 0 {
            return Duration::ZERO;
        }
        let t = Instant::now();
        let elapsed = s.refilled.map_or(1.0, |r| t.duration_since(r).as_secs_f64());
        s.tokens = (s.tokens + elapsed * rate as f64).min(rate as f64) - n as f64;
        s.refilled = Some(t);
        if s.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.tokens / rate as f64) }
    }
}

impl UrlPolicy {
    /// No URL at all: what a plugin has unless granted.
    pub fn none() -> UrlPolicy {
        UrlPolicy::granted(Vec::new(), 0)
    }

    /// A plugin's grant: URLs matching `allowed`, internal addresses only for hosts
    /// named literally in it.
    pub fn granted(allowed: Vec<String>, max_bytes: u64) -> UrlPolicy {
        UrlPolicy { allowed, max_bytes, own: Vec::new(), any_internal: false, meter: None }
    }

    /// The operator on their own command line: any URL, any size, any address.
    pub fn operator() -> UrlPolicy {
        UrlPolicy { allowed: vec!["*".into()], max_bytes: u64::MAX, own: Vec::new(), any_internal: true, meter: None }
    }

    /// Fetches count against `meter`.
    pub fn metered(mut self, meter: Arc<Meter>) -> UrlPolicy {
        self.meter = Some(meter);
        self
    }

    /// Also never connect to these addresses: the host's own API and control endpoint.
    pub fn protecting(mut self, own: &[SocketAddr]) -> UrlPolicy {
        self.own = own.to_vec();
        self
    }

    fn resolver(&self) -> GuardedResolver {
        GuardedResolver {
            named: self.allowed.iter().filter_map(|p| literal_host(p)).collect(),
            own: self.own.clone(),
            any_internal: self.any_internal,
        }
    }

    /// Whether `url` matches one of the patterns.
    pub fn allows(&self, url: &str) -> bool {
        self.allowed.iter().any(|p| glob(p, url))
    }
}

/// `*` in `pattern` matches any run of characters; everything else literally; the
/// whole of `text` must match. (URL grants; `wasmcalls test` matches messages with it.)
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A response being read.
pub struct Fetched {
    /// The URL after redirects.
    pub url: String,
    /// A live stream (ICY headers or no length): no duration, reconnected when it drops.
    pub live: bool,
    pub body: Body,
}

/// A response body, resumed with `Range` requests when a finite one drops.
pub struct Body {
    url: String,
    reader: Box<dyn Read + Send>,
    agent: ureq::Agent,
    read: u64,
    length: Option<u64>,
    resumable: bool,
    max_bytes: u64,
    meter: Option<Arc<Meter>>,
}

/// An agent that connects only where `policy` lets it (the resolver decides), and
/// directly: an HTTP proxy from the environment would resolve the target itself,
/// past the check.
fn agent(policy: &UrlPolicy) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .proxy(None)
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_response(Some(STALL))
        .timeout_per_read(Some(STALL))
        .user_agent(concat!("wasmcalls/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(config, ureq::unversioned::transport::DefaultConnector::default(), policy.resolver())
}

fn fetch_error(url: &str, e: ureq::Error) -> SourceError {
    let reason = match e {
        ureq::Error::Timeout(_) => return SourceError::Stalled { url: url.to_owned(), seconds: STALL.as_secs() },
        ureq::Error::HostNotFound => "its host name does not resolve".to_owned(),
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            return SourceError::Forbidden { url: url.to_owned(), reason: io.to_string() };
        }
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => "the connection was refused".into(),
        ureq::Error::BadUri(u) => format!("it is not a valid URL ({u})"),
        other => {
            let text = other.to_string();
            if text.to_ascii_lowercase().contains("tls") || text.contains("certificate") {
                format!("the TLS handshake failed ({text})")
            } else {
                text
            }
        }
    };
    SourceError::Fetch { url: url.to_owned(), reason }
}

/// GETs `url` (from byte `from` on), following redirects each checked against `policy`.
pub fn get(url: &str, policy: &UrlPolicy) -> Result<Fetched, SourceError> {
    let agent = agent(policy);
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        if !(current.starts_with("http://") || current.starts_with("https://")) {
            return Err(SourceError::Fetch {
                url: current,
                reason: "only http:// and https:// URLs are played".into(),
            });
        }
        if !policy.allows(&current) {
            return Err(SourceError::NotGranted { url: current });
        }
        if let Some(m) = &policy.meter {
            m.check().map_err(SourceError::Quota)?;
        }
        let resp = agent.get(&current).call().map_err(|e| fetch_error(&current, e))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).ok_or_else(|| {
                SourceError::Http { url: current.clone(), status: format!("{status} without a Location") }
            })?;
            current = join(&current, location);
            continue;
        }
        if !status.is_success() {
            return Err(SourceError::Http { url: current, status: status.to_string() });
        }
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let length = header("content-length").and_then(|l| l.parse::<u64>().ok());
        let icy = resp.headers().keys().any(|k| k.as_str().starts_with("icy-"));
        let live = icy || length.is_none();
        if let Some(len) = length.filter(|_| !live)
            && len > policy.max_bytes
        {
            return Err(SourceError::TooLarge { url: current, limit_mb: policy.max_bytes >> 20 });
        }
        let resumable = header("accept-ranges").is_some_and(|v| v.contains("bytes"));
        let reader = Box::new(resp.into_body().into_reader());
        let body = Body {
            url: current.clone(),
            reader,
            agent,
            read: 0,
            length,
            resumable,
            max_bytes: policy.max_bytes,
            meter: policy.meter.clone(),
        };
        return Ok(Fetched { url: current, live, body });
    }
    Err(SourceError::Fetch { url: url.to_owned(), reason: format!("more than {MAX_REDIRECTS} redirects") })
}

/// `location` relative to `base`.
fn join(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    if location.starts_with('/') {
        format!("{}{location}", &base[..host_end])
    } else {
        let dir_end = base.rfind('/').filter(|&i| i >= host_end).map_or(host_end, |i| i);
        format!("{}/{location}", &base[..dir_end])
    }
}

impl Body {
    /// Reopens a finite body where it broke off.
    fn resume(&mut self) -> io::Result<()> {
        let resp = self
            .agent
            .get(&self.url)
            .header("range", format!("bytes={}-", self.read))
            .call()
            .map_err(|e| io::Error::other(e.to_string()))?;
        if resp.status().as_u16() != 206 {
            return Err(io::Error::other(format!("the server did not resume the download ({})", resp.status())));
        }
        tracing::warn!(url = %self.url, "the download broke off at byte {}; resumed", self.read);
        self.reader = Box::new(resp.into_body().into_reader());
        Ok(())
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.length.is_some() && self.read >= self.max_bytes {
            return Err(io::Error::other(format!("larger than limits.download_mb ({} MiB)", self.max_bytes >> 20)));
        }
        let n = match self.reader.read(buf) {
            Ok(n) => n,
            Err(e) if self.resumable && self.length.is_some_and(|l| self.read < l) => {
                tracing::warn!(url = %self.url, "the download broke off ({e}); resuming");
                self.resume()?;
                self.reader.read(buf)?
            }
            // Not UnexpectedEof, whatever the transport said: a file that *ends* early is
            // played to where it ends, a connection that *drops* is reconnected.
            Err(e) => {
                return Err(io::Error::new(io::ErrorKind::ConnectionAborted, format!("the connection dropped: {e}")));
            }
        };
        self.read += n as u64;
        if let Some(m) = &self.meter {
            m.check().map_err(|e| io::Error::other(format!("quota: {e}")))?;
            // On the source's own thread: the call plays what is buffered meanwhile.
            std::thread::sleep(m.took(n as u64));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_refuses_past_its_hour_and_paces_to_its_rate() {
        let m = Meter::default();
        m.set_limits(1000, 0);
        assert_eq!(m.took(600), Duration::ZERO);
        assert!(m.check().is_ok());
        m.took(500);
        let why = m.check().unwrap_err();
        assert!(why.starts_with("limits.download_mb_per_hour"), "{why}");

        let m = Meter::default();
        m.set_limits(0, 1000);
        assert_eq!(m.took(1000), Duration::ZERO, "a second's worth goes at once");
        let wait = m.took(500);
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert!(m.check().is_ok(), "no hourly cap");
    }

    #[test]
    fn patterns_match_whole_urls() {
        let p = UrlPolicy::granted(vec!["https://radio.example/*".into(), "http://host/a*b".into()], 1);
        assert!(p.allows("https://radio.example/live.mp3"));
        assert!(!p.allows("https://radio.example.evil/live.mp3"));
        assert!(!p.allows("http://radio.example/live.mp3"), "the scheme is part of the pattern");
        assert!(p.allows("http://host/a-x-b") && !p.allows("http://host/a-x-c"));
        assert!(!UrlPolicy::none().allows("https://radio.example/"));
    }

    #[test]
    fn redirects_resolve_against_their_url() {
        assert_eq!(join("http://h:1/a/b.mp3", "/c.mp3"), "http://h:1/c.mp3");
        assert_eq!(join("http://h:1/a/b.mp3", "c.mp3"), "http://h:1/a/c.mp3");
        assert_eq!(join("http://h:1/a/b.mp3", "https://o/x"), "https://o/x");
    }
}
