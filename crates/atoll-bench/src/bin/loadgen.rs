//! Fixed-rate load: `loadgen URL RATE SECONDS [CONNECTIONS]` sends RATE requests per
//! second in total over CONNECTIONS keep-alive connections (default 32) for SECONDS, and
//! prints one JSON line: sent, ok, errors, achieved rate, and latency percentiles in
//! microseconds, measured from each request's *scheduled* time when it had to wait
//! (corrects for coordinated omission: a server that stalls is charged for the queue it
//! causes).
//!
//! One thread does everything, so the generator costs the machine as little as it can
//! (it shares the cores with the server it measures): a periodic timer (timerfd) and the
//! connections are all in one epoll set, and every time the loop wakes (a response, or
//! the timer) it releases the requests due by then, each to an idle connection. Under
//! load the responses wake it every few tens of microseconds, so releases follow the
//! schedule closely; the timer (1 ms) only matters when the server is idle. A request
//! that finds every connection busy waits in a queue and goes out as soon as one frees
//! up. A request that went out at its release counts from the release; one that had to
//! queue counts from its due time. Per request that is one `write`, one `read` and a
//! share of one `epoll_wait`, with no cross-thread wake-ups.
//!
//! Measured against `atoll up` on the 2-core bench machine: ~8-9 us of CPU per request,
//! where a pacer thread waking every 200 us and handing requests to an async runtime
//! cost 14-20 us (and a 100 us timer alone costs ~0.35 of a core there: every timer
//! interrupt is a VM exit). The generator's CPU is CPU the server does not get, so it
//! shows up in every server's latency at a fixed rate.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

/// How often the timer wakes the loop when nothing else does.
const TICK: Duration = Duration::from_micros(1000);
/// The timer's token; connections use their index.
const TIMER: Token = Token(usize::MAX);

/// One request: when it was due and when it was released.
#[derive(Clone, Copy)]
struct Due {
    nominal: Instant,
    released: Instant,
}

/// One keep-alive connection and the request it has in flight.
struct Conn {
    stream: Option<TcpStream>,
    /// The request on the wire: counted from this instant.
    from: Option<Instant>,
    /// Bytes of the request still to write.
    unsent: usize,
    buf: Vec<u8>,
}

/// Tally of the whole run.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    errors: u64,
}

/// What a read of a response produced so far.
enum Response {
    Incomplete,
    Complete { ok: bool },
}

/// Parse `buf` as one HTTP/1.1 response; complete when its whole body is there.
fn parse(buf: &[u8]) -> Response {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4) else {
        return Response::Incomplete;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let ok = head.starts_with("http/1.1 200");
    let len: Option<usize> = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok());
    // Without a length the body is chunked; these small bodies end with the last chunk.
    let complete = match len {
        Some(n) => buf.len() >= head_end + n,
        None => buf[head_end..].ends_with(b"0\r\n\r\n"),
    };
    if complete {
        Response::Complete { ok }
    } else {
        Response::Incomplete
    }
}

/// A periodic CLOCK_MONOTONIC timer firing every `period`.
fn periodic_timer(period: Duration) -> std::io::Result<OwnedFd> {
    // SAFETY: timerfd_create takes no pointers; the result is checked before use.
    let fd = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor this function owns from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: period.as_nanos() as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    // SAFETY: `spec` is a valid itimerspec for the call's duration; the old value is not asked for.
    if unsafe { libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

struct Generator {
    poll: Poll,
    addr: SocketAddr,
    request: Vec<u8>,
    conns: Vec<Conn>,
    idle: Vec<usize>,
    waiting: VecDeque<Due>,
    tally: Tally,
}

impl Generator {
    /// Put `due` on connection `i` (idle), connecting first if need be.
    fn send(&mut self, i: usize, due: Due, queued: bool) {
        let from = if queued { due.nominal } else { due.released };
        let conn = &mut self.conns[i];
        if conn.stream.is_none() {
            match TcpStream::connect(self.addr) {
                Ok(mut s) => {
                    let _ = s.set_nodelay(true);
                    if self
                        .poll
                        .registry()
                        .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        self.tally.errors += 1;
                        self.idle.push(i);
                        return;
                    }
                    conn.stream = Some(s);
                }
                Err(_) => {
                    self.tally.errors += 1;
                    self.idle.push(i);
                    return;
                }
            }
        }
        conn.from = Some(from);
        conn.unsent = self.request.len();
        conn.buf.clear();
        self.flush(i);
    }

    /// Write what is left of connection `i`'s request.
    fn flush(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        while conn.unsent > 0 {
            let start = self.request.len() - conn.unsent;
            match stream.write(&self.request[start..]) {
                Ok(0) => return self.fail(i),
                Ok(n) => conn.unsent -= n,
                // A fresh connection may not be writable yet: its writable event retries.
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.fail(i),
            }
        }
    }

    /// Read from connection `i`; finish its request if the response is complete.
    fn read(&mut self, i: usize) {
        let mut chunk = [0u8; 4096];
        loop {
            let conn = &mut self.conns[i];
            let Some(stream) = conn.stream.as_mut() else {
                return;
            };
            match stream.read(&mut chunk) {
                Ok(0) => return self.fail(i),
                Ok(n) => {
                    conn.buf.extend_from_slice(&chunk[..n]);
                    if let Response::Complete { ok } = parse(&conn.buf) {
                        let from = conn.from.take();
                        match (ok, from) {
                            (true, Some(from)) => self
                                .tally
                                .latencies_us
                                .push(from.elapsed().as_micros() as u64),
                            _ => self.tally.errors += 1,
                        }
                        return self.freed(i);
                    }
                    // A short read drained the socket: the rest comes with a new event.
                    if n < chunk.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => return self.fail(i),
            }
        }
    }

    /// Connection `i` broke: count its request as an error and reconnect on next use.
    fn fail(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let Some(mut s) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        if conn.from.take().is_some() {
            self.tally.errors += 1;
        }
        self.freed(i);
    }

    /// Connection `i` is free: give it the oldest waiting request, or mark it idle.
    fn freed(&mut self, i: usize) {
        match self.waiting.pop_front() {
            Some(due) => self.send(i, due, true),
            None => self.idle.push(i),
        }
    }

    /// Release a request due now: to an idle connection, or into the queue.
    fn release(&mut self, due: Due) {
        match self.idle.pop() {
            Some(i) => self.send(i, due, false),
            None => self.waiting.push_back(due),
        }
    }

    fn in_flight(&self) -> bool {
        !self.waiting.is_empty() || self.conns.iter().any(|c| c.from.is_some())
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL RATE SECONDS [CONNECTIONS]");
        std::process::exit(2);
    }
    let url: http::Uri = args[1].parse().expect("a URL");
    let rate: f64 = args[2].parse().expect("a rate");
    let secs: f64 = args[3].parse().expect("seconds");
    let conns: usize = args
        .get(4)
        .and_then(|c| c.parse().ok())
        .unwrap_or(32)
        .max(1);
    let authority = url.authority().expect("URL with host:port").to_string();
    let addr = authority
        .to_socket_addrs()?
        .next()
        .expect("the host resolves");
    let path = url.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\n\r\n").into_bytes();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * secs) as usize;

    // The timer slack is in nanoseconds. Best effort: without it ticks are 50 µs coarser.
    // SAFETY: PR_SET_TIMERSLACK only reads its integer argument.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let timer = periodic_timer(TICK)?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)?;
    let mut g = Generator {
        poll,
        addr,
        request,
        conns: (0..conns)
            .map(|_| Conn {
                stream: None,
                from: None,
                unsent: 0,
                buf: Vec::with_capacity(4096),
            })
            .collect(),
        idle: (0..conns).rev().collect(),
        waiting: VecDeque::new(),
        tally: Tally::default(),
    };
    g.tally.latencies_us.reserve(total);

    let start = Instant::now();
    // Answers still owed after the last release get this long before they count as errors.
    let drain = Duration::from_secs(10);
    let mut released = 0usize;
    let mut events = Events::with_capacity(256);
    while released < total || g.in_flight() {
        if released >= total && start.elapsed() > interval.mul_f64(total as f64) + drain {
            break;
        }
        g.poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            match event.token() {
                TIMER => {
                    let mut expirations = [0u8; 8];
                    // SAFETY: reads 8 bytes into a buffer of 8; the timer is non-blocking.
                    let _ = unsafe {
                        libc::read(timer.as_raw_fd(), expirations.as_mut_ptr().cast(), 8)
                    };
                }
                Token(i) => {
                    if event.is_writable() && g.conns[i].unsent > 0 {
                        g.flush(i);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        g.read(i);
                    }
                }
            }
        }
        // Release every request due by now, whatever woke us.
        let now = Instant::now();
        while released < total {
            let nominal = start + interval.mul_f64(released as f64);
            if nominal > now {
                break;
            }
            g.release(Due {
                nominal,
                released: now,
            });
            released += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Requests never answered (the server stopped responding) are errors.
    let unanswered =
        g.waiting.len() as u64 + g.conns.iter().filter(|c| c.from.is_some()).count() as u64;
    let mut all = std::mem::take(&mut g.tally.latencies_us);
    let errors = g.tally.errors + unanswered;
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        all[((all.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "{{\"sent\":{},\"ok\":{},\"errors\":{},\"rate\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{}}}",
        all.len() as u64 + errors,
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.last().copied().unwrap_or(0)
    );
    Ok(())
}
