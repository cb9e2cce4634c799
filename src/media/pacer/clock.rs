//! Precise sleeping: a `timerfd` armed on absolute CLOCK_MONOTONIC deadlines and
//! waited on through the shard's epoll, so one wait covers both "next frame due"
//! and "a datagram arrived". tokio timers tick at 1 ms and fire 0.9–1.6 ms late;
//! an absolute hrtimer with 1 ns slack fires within tens of microseconds.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

/// An absolute-deadline timer on the monotonic clock (the clock `Instant` reads on Linux).
pub struct Timer {
    fd: OwnedFd,
    base_instant: Instant,
    base_mono: Duration,
}

fn monotonic_now() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Timer {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we exclusively own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Timer { fd, base_instant: Instant::now(), base_mono: monotonic_now() })
    }

    /// Arms the timer to fire at `at` (immediately if `at` is past).
    pub fn arm(&self, at: Instant) -> io::Result<()> {
        let mono = match at.checked_duration_since(self.base_instant) {
            Some(d) => self.base_mono + d,
            None => self.base_mono.saturating_sub(self.base_instant - at),
        };
        // A zero it_value would disarm; monotonic time is never zero after boot.
        let mono = mono.max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec {
                tv_sec: mono.as_secs() as libc::time_t,
                tv_nsec: mono.subsec_nanos() as libc::c_long,
            },
        };
        // SAFETY: valid fd and itimerspec pointer; old value not requested.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), libc::TFD_TIMER_ABSTIME, &spec, std::ptr::null_mut()) };
        if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Consumes the expiration count so the fd stops being readable.
    pub fn drain(&self) {
        let mut buf = [0u8; 8];
        // SAFETY: reading 8 bytes into an 8-byte buffer; EAGAIN is fine (non-blocking).
        unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
    }
}

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Asks the kernel not to coalesce this thread's wakeups (default slack is 50 µs).
fn precise_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer; affects only the calling thread.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
}

/// The real-time priority pacer and feed threads ask for unless configured.
pub const REALTIME_PRIORITY: u8 = 10;

/// Readies the calling thread for deadline work: precise timer wake-ups and, when
/// `priority` is not 0, real-time scheduling (SCHED_FIFO). A frame then goes out when
/// it is due even if the machine's other threads want every core: with the host's
/// own decoders, a compile and a busy neighbour on two cores, normal priority put
/// frames over 5 ms late at a few percent of one core's load (`wasmcalls bench soak`).
/// It is safe to give: the thread sleeps on its timer between frames, admission
/// control keeps its work under its budget, and the kernel's real-time throttling
/// leaves other threads 5 % of each core whatever happens. Without the privilege
/// (CAP_SYS_NICE or an RLIMIT_RTPRIO), the thread runs at normal priority and the
/// first refusal is logged with how to grant it.
pub fn deadline_thread(priority: u8) {
    precise_timer_slack();
    if priority == 0 {
        return;
    }
    let param = libc::sched_param { sched_priority: priority.into() };
    // SAFETY: pid 0 is the calling thread; `param` is valid. SCHED_RESET_ON_FORK keeps
    // the processes a source runs (ffmpeg, yt-dlp…) from inheriting the priority.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param) };
    if r != 0 {
        static TOLD: std::sync::Once = std::sync::Once::new();
        let e = io::Error::last_os_error();
        TOLD.call_once(|| {
            tracing::warn!(
                "pacer threads run at normal priority: real-time scheduling was refused ({e}), so frames can go \
                 late when the machine is busy. Grant CAP_SYS_NICE (docker run --cap-add SYS_NICE; Kubernetes \
                 securityContext.capabilities.add [SYS_NICE]; systemd AmbientCapabilities=CAP_SYS_NICE or \
                 LimitRTPRIO={priority}), or set [host] realtime_priority = 0 to run without it quietly"
            )
        });
    }
}

/// Whether the calling thread runs with real-time scheduling.
pub fn is_realtime() -> bool {
    // SAFETY: pid 0 is the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    policy & !libc::SCHED_RESET_ON_FORK == libc::SCHED_FIFO
}

/// Lowers the calling thread's priority (nice 10) for work that can wait: recorders
/// and listeners have queues, the pacer has deadlines. Measured: twenty recorder
/// threads decoding at the pacer's priority put 4 % of its frames over 5 ms late on two
/// cores (`wasmcalls bench hearing`).
pub fn background_priority() {
    // SAFETY: gettid has no arguments; setpriority with a thread id renices that thread
    // only (Linux keeps a nice value per thread).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10);
    }
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
