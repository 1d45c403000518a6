//! Half-open TCP checks. A TCP check asks one thing of a real server: does its port accept
//! connections? Its kernel answers a SYN with a SYN-ACK (listening) or a reset (refused), the
//! same answers a full connect waits for. The prober sends the SYNs of every TCP check from
//! one raw socket per address family, in batches, and reads the answers there; no socket owns
//! the connection, so the director's kernel answers each SYN-ACK with a reset, which frees the
//! server's half-open connection. Against a full connect and close per check this saves the
//! socket (allocation, registration with the reactor, close), the handshake's last packet and
//! most system calls; and the application on the real server never sees the check (no accept,
//! no line in its log).
//!
//! The source ports are a few ephemeral ports reserved by bound, unconnected TCP sockets: the
//! kernel gives them to nothing else and, nothing being connected or listening there, resets
//! the SYN-ACKs that arrive on them. A socket filter passes only segments to those ports to
//! the raw sockets. A port is used again for the same server only after the others (a server
//! whose reset got lost keeps the old half-open connection for a while).
//!
//! On IPv4 the prober writes the IP header too (IP_HDRINCL: the kernel's path for a raw
//! payload costs more than the SYN), and the TCP checksum, which covers the source address
//! that the route to the server picks: that address is asked of the kernel (the local address
//! of a UDP socket connected to the server), kept `SOURCE_FRESH`, and forgotten after a check
//! that had no answer (a SYN with the wrong checksum gets none). IPv6 raw sockets compute the checksum themselves (`IPV6_CHECKSUM`).
//!
//! Without raw sockets (no CAP_NET_RAW) TCP checks make full connections (`Checker`).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, Notify};

use super::checker::io_text;

/// Source ports reserved for the SYNs.
const PORTS: usize = 16;
/// SYNs per `sendmmsg`, answers per `recvmmsg`.
const BATCH: usize = 64;
/// Bytes kept of an answer: an IPv4 header with options and a TCP header.
const ANSWER_BYTES: usize = 128;
/// How late a check of `start` may time out: expiries are handled together.
const TICK: Duration = Duration::from_millis(10);
/// How long the source address of a route is taken as known.
const SOURCE_FRESH: Duration = Duration::from_secs(10);
/// A SYN: the TCP header with one option, the maximum segment size.
const SYN_BYTES: usize = 24;
/// An IPv4 header without options.
const IPV4_BYTES: usize = 20;

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// What a real server answered a SYN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A SYN-ACK: the port accepts connections.
    Listening,
    /// A reset: nothing listens on the port.
    Refused,
    /// The SYN could not be sent (no route, say): why.
    NotSent(String),
    /// Nothing came back in time (`start` only: `check` leaves that to its caller).
    TimedOut,
}

/// The half-open prober of a runtime: `open` it inside the runtime, `check` from any task on
/// it; it stops when dropped.
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    v4: AsyncFd<OwnedFd>,
    /// None where the system has no IPv6: those checks then make full connections.
    v6: Option<AsyncFd<OwnedFd>>,
    ports: Vec<u16>,
    /// The sockets that hold `ports`.
    _reserved: Vec<OwnedFd>,
    state: Mutex<State>,
    /// Who takes the answers of `start`'s checks; without one `start` declines every check.
    handler: Option<Handler>,
    /// SYNs are queued.
    queued: Notify,
    /// A deadline earlier than the others came.
    deadline: Notify,
    closed: AtomicBool,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    server: SocketAddr,
    port: u16,
}

struct Pending {
    sequence: u32,
    started: Instant,
    done: Done,
}

/// Who waits for an answer.
enum Done {
    /// A task in `check` (which times out on its own).
    Task(oneshot::Sender<Answer>),
    /// A check of `start`, timed out by the prober: the handler takes its answer.
    Call { tag: Tag, timeout: Duration },
}

/// The caller's: given to `start` with a check, handed back with its answer.
pub type Tag = u128;

/// A check for `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    pub server: SocketAddr,
    pub timeout: Duration,
    pub tag: Tag,
}

/// A check of `start` that ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub tag: Tag,
    pub server: SocketAddr,
    pub timeout: Duration,
    pub answer: Answer,
    /// From the SYN's queueing to its answer (or to the end of its time).
    pub duration: Duration,
}

/// Takes the checks of `start` that ended, as many at a time as ended together; called from
/// the prober's task, or from `start` for a SYN that cannot be sent. It must not call the
/// prober back.
pub type Handler = Box<dyn Fn(Vec<Finished>) + Send + Sync>;

impl Pending {
    /// Hands the answer to a waiting task, or adds it to `finished` (for the handler).
    fn finish(self, key: Key, answer: Answer, now: Instant, finished: &mut Vec<Finished>) {
        match self.done {
            Done::Task(sender) => {
                let _ = sender.send(answer);
            }
            Done::Call { tag, timeout } => finished.push(Finished {
                tag,
                server: key.server,
                timeout,
                answer,
                duration: now.saturating_duration_since(self.started),
            }),
        }
    }
}

/// The checks of `start` with one timeout: they time out in the order they were sent.
struct Deadlines {
    timeout: Duration,
    /// When each times out, with its key and sequence (answered ones are skipped).
    queue: VecDeque<(Instant, Key, u32)>,
}

/// A SYN to send: IPv4 with its IP header (the socket has IP_HDRINCL), IPv6 without.
struct Syn {
    to: SocketAddr,
    /// Our source port.
    port: u16,
    bytes: [u8; IPV4_BYTES + SYN_BYTES],
    len: usize,
}

/// A quick hasher for the prober's maps: their keys are servers of the configuration and
/// ports of the prober's own (an answer from elsewhere is only looked up, so it cannot
/// lengthen a chain), which need no defence against chosen collisions; SipHash, three times
/// per check, showed in the profile.
#[derive(Default, Clone, Copy)]
struct Quick(u64);

impl Hasher for Quick {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type QuickMap<K, V> = HashMap<K, V, BuildHasherDefault<Quick>>;

struct State {
    pending: QuickMap<Key, Pending>,
    queue: Vec<Syn>,
    next_port: usize,
    random: u64,
    sources: QuickMap<Ipv4Addr, (Ipv4Addr, Instant)>,
    /// When the SYNs of `start` time out, one queue per timeout (a handful).
    deadlines: Vec<Deadlines>,
}

impl Prober {
    /// The raw sockets and the reserved ports, and the task that sends and receives (spawned
    /// on the current runtime); an error where raw sockets are not allowed. Without a
    /// `handler` only `check` works.
    pub fn open(handler: Option<Handler>) -> io::Result<Prober> {
        let mut reserved = Vec::with_capacity(PORTS);
        let mut ports = Vec::with_capacity(PORTS);
        for _ in 0..PORTS {
            let (socket, port) = reserve_port()?;
            reserved.push(socket);
            ports.push(port);
        }
        let v4 = raw_socket(libc::AF_INET, &ports)?;
        let v6 = match raw_socket(libc::AF_INET6, &ports) {
            Ok(socket) => Some(socket),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => None,
            Err(e) => return Err(e),
        };
        let inner = Arc::new(Inner {
            v4: register(v4)?,
            v6: v6.map(register).transpose()?,
            ports,
            _reserved: reserved,
            state: Mutex::new(State {
                pending: QuickMap::default(),
                queue: Vec::new(),
                next_port: 0,
                random: seed(),
                sources: QuickMap::default(),
                deadlines: Vec::new(),
            }),
            handler,
            queued: Notify::new(),
            deadline: Notify::new(),
            closed: AtomicBool::new(false),
        });
        tokio::spawn(inner.clone().drive());
        Ok(Prober { inner })
    }

    /// The source ports of the SYNs.
    pub fn ports(&self) -> &[u16] {
        &self.inner.ports
    }

    /// Whether SYNs can go to `server` (false: an IPv6 server without IPv6 raw sockets).
    pub fn reaches(&self, server: SocketAddr) -> bool {
        self.inner.reaches(server)
    }

    /// Sends a SYN to `server` and waits for its answer: for ever, unless the caller gives up
    /// (a timeout), which forgets the SYN. None when no source port is free for `server`
    /// (more checks of it in flight than ports): the caller connects instead.
    pub async fn check(&self, server: SocketAddr) -> Option<Answer> {
        let (answer, answered) = oneshot::channel();
        let (key, sequence) = {
            let mut state = self.inner.lock();
            let was_empty = state.queue.is_empty();
            let now = Instant::now();
            let queued = match self.inner.queue_syn(&mut state, server, now) {
                Ok(Some(queued)) => queued,
                Ok(None) => return None,
                Err(why) => return Some(Answer::NotSent(why)),
            };
            state.pending.insert(
                queued.0,
                Pending {
                    sequence: queued.1,
                    started: now,
                    done: Done::Task(answer),
                },
            );
            drop(state);
            if was_empty {
                self.inner.queued.notify_one();
            }
            queued
        };
        let forget = Forget {
            inner: &self.inner,
            key,
            sequence,
        };
        let answer = answered.await;
        drop(forget);
        // The sender goes only with the prober: nothing answered.
        Some(answer.unwrap_or_else(|_| Answer::NotSent("the prober stopped".into())))
    }

    /// Sends a SYN for each of `probes`; the handler takes each answer, or `TimedOut` after
    /// the probe's timeout (give or take `TICK`): no task, no timer of its own. What the
    /// prober cannot check now stays in `probes` (an IPv6 server without IPv6, every source
    /// port in use for the server, no handler); the rest are taken out.
    pub fn start(&self, probes: &mut Vec<Probe>) {
        let Some(handler) = &self.inner.handler else {
            return;
        };
        let mut unsendable = Vec::new();
        let (queued, earlier) = {
            let mut state = self.inner.lock();
            let was_empty = state.queue.is_empty();
            let earliest = state.next_deadline();
            let now = Instant::now();
            probes.retain(|probe| {
                if !self.inner.reaches(probe.server) {
                    return true;
                }
                match self.inner.queue_syn(&mut state, probe.server, now) {
                    Ok(Some((key, sequence))) => {
                        state.pending.insert(
                            key,
                            Pending {
                                sequence,
                                started: now,
                                done: Done::Call {
                                    tag: probe.tag,
                                    timeout: probe.timeout,
                                },
                            },
                        );
                        state.time_out(probe.timeout, now, key, sequence);
                        false
                    }
                    Ok(None) => true,
                    Err(why) => {
                        unsendable.push(Finished {
                            tag: probe.tag,
                            server: probe.server,
                            timeout: probe.timeout,
                            answer: Answer::NotSent(why),
                            duration: now.elapsed(),
                        });
                        false
                    }
                }
            });
            let earlier = match (earliest, state.next_deadline()) {
                (Some(before), Some(now)) => now < before,
                (None, next) => next.is_some(),
                (Some(_), None) => false,
            };
            (was_empty && !state.queue.is_empty(), earlier)
        };
        if queued {
            self.inner.queued.notify_one();
        }
        if earlier {
            self.inner.deadline.notify_one();
        }
        if !unsendable.is_empty() {
            handler(unsendable);
        }
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.queued.notify_one();
    }
}

/// Removes a SYN that is still waiting when its check ends; one without an answer also makes
/// the source address of its route be asked again.
struct Forget<'a> {
    inner: &'a Inner,
    key: Key,
    /// Of this SYN: a later check may have the same key.
    sequence: u32,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        let ours = state
            .pending
            .get(&self.key)
            .is_some_and(|p| p.sequence == self.sequence);
        if ours && state.pending.remove(&self.key).is_some() {
            if let IpAddr::V4(server) = self.key.server.ip() {
                state.sources.remove(&server);
            }
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether SYNs can go to `server` (false: an IPv6 server without IPv6 raw sockets).
    fn reaches(&self, server: SocketAddr) -> bool {
        server.is_ipv4() || self.v6.is_some()
    }

    /// Queues a SYN to `server`: its key and sequence number (the caller adds what waits for
    /// it to `pending`); None when every port is in use for it; or why it cannot be sent.
    fn queue_syn(
        &self,
        state: &mut State,
        server: SocketAddr,
        now: Instant,
    ) -> Result<Option<(Key, u32)>, String> {
        let Some(port) = state.free_port(server, &self.ports) else {
            return Ok(None);
        };
        let sequence = state.next_random() as u32;
        let mut bytes = [0u8; IPV4_BYTES + SYN_BYTES];
        let len = match server {
            SocketAddr::V4(to) => {
                let from = state.source(to, now)?;
                let mut segment = syn_segment(port, to.port(), sequence);
                let sum = checksum_v4(from, *to.ip(), &segment);
                segment[16..18].copy_from_slice(&sum.to_be_bytes());
                bytes[..IPV4_BYTES].copy_from_slice(&ipv4_header(from, *to.ip()));
                bytes[IPV4_BYTES..].copy_from_slice(&segment);
                IPV4_BYTES + SYN_BYTES
            }
            // The kernel writes the IP header and the checksum (IPV6_CHECKSUM).
            SocketAddr::V6(to) => {
                bytes[..SYN_BYTES].copy_from_slice(&syn_segment(port, to.port(), sequence));
                SYN_BYTES
            }
        };
        state.queue.push(Syn {
            to: server,
            port,
            bytes,
            len,
        });
        Ok(Some((Key { server, port }, sequence)))
    }

    /// Gives the handler what ended, if anything did.
    fn deliver(&self, finished: Vec<Finished>) {
        if let (Some(handler), false) = (&self.handler, finished.is_empty()) {
            handler(finished);
        }
    }

    /// Ends the checks of `start` whose time is up (`now`): `TimedOut`, and the source of
    /// their route asked again next time. When the next check still waiting is due.
    fn expire(&self, now: Instant) -> Option<Instant> {
        let mut finished = Vec::new();
        let next = {
            let mut state = self.lock();
            let state = &mut *state;
            for deadlines in &mut state.deadlines {
                // Answered checks go too, up to the first still waiting: the timer is set
                // for that one, not for a check that has ended.
                while let Some(&(at, key, sequence)) = deadlines.queue.front() {
                    let ours = state
                        .pending
                        .get(&key)
                        .is_some_and(|p| p.sequence == sequence);
                    if ours && at > now {
                        break;
                    }
                    deadlines.queue.pop_front();
                    if let Some(pending) = ours.then(|| state.pending.remove(&key)).flatten() {
                        if let IpAddr::V4(server) = key.server.ip() {
                            state.sources.remove(&server);
                        }
                        pending.finish(key, Answer::TimedOut, now, &mut finished);
                    }
                }
            }
            state.next_deadline()
        };
        // Without the lock: the handler may start the next checks.
        self.deliver(finished);
        next
    }

    /// Sends what is queued and reads what arrives until the prober is dropped.
    async fn drive(self: Arc<Self>) {
        let mut answers = Answers::new();
        let mut unsent: Vec<Syn> = Vec::new();
        let timer = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(timer);
        let mut timer_set = false;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            if !timer_set || timer.is_elapsed() {
                let now = Instant::now();
                match self.expire(now) {
                    // Expiries come together, a tick apart at most.
                    Some(next) => {
                        timer
                            .as_mut()
                            .reset(tokio::time::Instant::from_std(next.max(now + TICK)));
                        timer_set = true;
                    }
                    None => timer_set = false,
                }
            }
            let v6 = async {
                match &self.v6 {
                    Some(fd) => fd.readable().await,
                    None => std::future::pending().await,
                }
            };
            let blocked = !unsent.is_empty();
            tokio::select! {
                _ = &mut timer, if timer_set => {}
                // An earlier deadline than the timer's: look again.
                _ = self.deadline.notified() => timer_set = false,
                _ = self.queued.notified(), if !blocked => {
                    unsent = std::mem::take(&mut self.lock().queue);
                }
                ready = self.v4.writable(), if blocked => match ready {
                    Ok(mut guard) => guard.clear_ready(),
                    Err(e) => {
                        log::error!("health: SYN socket: {e}");
                        return;
                    }
                },
                ready = self.v4.readable() => match ready {
                    Ok(mut guard) => {
                        if receive(&self, guard.get_inner().as_raw_fd(), true, &mut answers) {
                            guard.clear_ready();
                        }
                    }
                    Err(e) => {
                        log::error!("health: SYN socket: {e}");
                        return;
                    }
                },
                ready = v6 => match ready {
                    Ok(mut guard) => {
                        if receive(&self, guard.get_inner().as_raw_fd(), false, &mut answers) {
                            guard.clear_ready();
                        }
                    }
                    Err(e) => {
                        log::error!("health: SYN socket (IPv6): {e}");
                        return;
                    }
                },
            }
            if !unsent.is_empty() {
                self.send(&mut unsent);
                // What a full send buffer left waits for the socket to be writable; more
                // SYNs queued meanwhile go after it.
                if unsent.is_empty() {
                    let more = std::mem::take(&mut self.lock().queue);
                    unsent = more;
                    if !unsent.is_empty() {
                        self.send(&mut unsent);
                    }
                }
            }
        }
    }

    /// Sends `syns` in batches; what the send buffer cannot take stays in `syns`. A SYN the
    /// kernel refuses (no route, say) is answered at once.
    fn send(&self, syns: &mut Vec<Syn>) {
        let mut done = 0;
        while done < syns.len() {
            let family_v4 = syns[done].to.is_ipv4();
            // A batch: SYNs of one family in a row.
            let end = syns[done..]
                .iter()
                .take(BATCH)
                .position(|syn| syn.to.is_ipv4() != family_v4)
                .map_or((done + BATCH).min(syns.len()), |n| done + n);
            let fd = if family_v4 {
                self.v4.get_ref().as_raw_fd()
            } else {
                match &self.v6 {
                    Some(fd) => fd.get_ref().as_raw_fd(),
                    None => {
                        self.refuse(&syns[done..end], "IPv6 is not available".into());
                        done = end;
                        continue;
                    }
                }
            };
            match send_batch(fd, &syns[done..end]) {
                Ok(sent) => done += sent.max(1).min(end - done),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // The first of the batch failed; the rest go in the next call.
                    self.refuse(&syns[done..done + 1], io_text(&e));
                    done += 1;
                }
            }
        }
        syns.drain(..done);
    }

    /// Answers the checks of `syns` that they were not sent: `why`.
    fn refuse(&self, syns: &[Syn], why: String) {
        let now = Instant::now();
        let mut finished = Vec::new();
        let mut tasks = Vec::new();
        {
            let mut state = self.lock();
            for syn in syns {
                let key = Key {
                    server: syn.to,
                    port: syn.port,
                };
                if let Some(pending) = state.pending.remove(&key) {
                    match pending.done {
                        Done::Task(sender) => tasks.push(sender),
                        Done::Call { .. } => {
                            pending.finish(key, Answer::NotSent(why.clone()), now, &mut finished)
                        }
                    }
                }
            }
        }
        for sender in tasks {
            let _ = sender.send(Answer::NotSent(why.clone()));
        }
        self.deliver(finished);
    }

    /// Matches answers (server, our port, acknowledgment, flags) against the SYNs waiting
    /// for one.
    fn answered(&self, answers: &[(SocketAddr, u16, u32, u8)]) {
        let now = Instant::now();
        let mut finished = Vec::with_capacity(answers.len());
        let mut tasks = Vec::new();
        {
            let mut state = self.lock();
            for &(server, port, acknowledged, flags) in answers {
                let answer = if flags & RST != 0 {
                    if flags & ACK == 0 {
                        continue;
                    }
                    Answer::Refused
                } else if flags & (SYN | ACK) == SYN | ACK {
                    Answer::Listening
                } else {
                    continue;
                };
                let key = Key { server, port };
                let matches = state
                    .pending
                    .get(&key)
                    .is_some_and(|p| p.sequence.wrapping_add(1) == acknowledged);
                if let Some(pending) = matches.then(|| state.pending.remove(&key)).flatten() {
                    match pending.done {
                        Done::Task(sender) => tasks.push((sender, answer)),
                        Done::Call { .. } => pending.finish(key, answer, now, &mut finished),
                    }
                }
            }
        }
        // Without the lock: a task or the handler may start the next check.
        for (sender, answer) in tasks {
            let _ = sender.send(answer);
        }
        self.deliver(finished);
    }
}

impl State {
    /// The next source port not in use for `server`.
    fn free_port(&mut self, server: SocketAddr, ports: &[u16]) -> Option<u16> {
        for _ in 0..ports.len() {
            let port = ports[self.next_port % ports.len()];
            self.next_port = self.next_port.wrapping_add(1);
            if !self.pending.contains_key(&Key { server, port }) {
                return Some(port);
            }
        }
        None
    }

    fn next_random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// When the first check of `start` times out.
    fn next_deadline(&self) -> Option<Instant> {
        self.deadlines
            .iter()
            .filter_map(|d| d.queue.front().map(|(at, ..)| *at))
            .min()
    }

    /// Times out the SYN `key`, `sequence` sent `now` after `timeout`.
    fn time_out(&mut self, timeout: Duration, now: Instant, key: Key, sequence: u32) {
        let at = now + timeout;
        let deadlines = match self.deadlines.iter().position(|d| d.timeout == timeout) {
            Some(i) => &mut self.deadlines[i],
            None => {
                // The queues of timeouts no longer used go with the next new one.
                self.deadlines.retain(|d| !d.queue.is_empty());
                self.deadlines.push(Deadlines {
                    timeout,
                    queue: VecDeque::new(),
                });
                let last = self.deadlines.len() - 1;
                &mut self.deadlines[last]
            }
        };
        deadlines.queue.push_back((at, key, sequence));
    }

    /// The source address of the route to `to`, as the kernel picks it (`now`: the time).
    fn source(&mut self, to: SocketAddrV4, now: Instant) -> Result<Ipv4Addr, String> {
        if let Some((from, since)) = self.sources.get(to.ip()) {
            if now.duration_since(*since) < SOURCE_FRESH {
                return Ok(*from);
            }
        }
        // A socket of its own each time: a UDP socket keeps the source address of its first
        // connect through the next ones.
        let router = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
            .map_err(|e| format!("a socket to look up routes: {}", io_text(&e)))?;
        router
            .connect(to)
            .map_err(|e| format!("route to {}: {}", to.ip(), io_text(&e)))?;
        match router.local_addr() {
            Ok(SocketAddr::V4(local)) => {
                self.sources.insert(*to.ip(), (*local.ip(), now));
                Ok(*local.ip())
            }
            Ok(other) => Err(format!("route to {}: source {other}", to.ip())),
            Err(e) => Err(format!("route to {}: {}", to.ip(), io_text(&e))),
        }
    }
}

/// The buffers `recvmmsg` fills, set up once: the headers point into the names, the vectors
/// into the bytes, all on the heap, so that moving this moves no pointee.
struct Answers {
    bytes: Vec<u8>,
    names: Box<[libc::sockaddr_in6; BATCH]>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers point into the struct's own heap allocations, which move with it
// and are used only through `&mut self`.
unsafe impl Send for Answers {}

impl Answers {
    fn new() -> Answers {
        let mut bytes = vec![0u8; BATCH * ANSWER_BYTES];
        let mut names = Box::new(<[libc::sockaddr_in6; BATCH]>::zeroed());
        let mut iovecs: Vec<libc::iovec> = bytes
            .chunks_mut(ANSWER_BYTES)
            .map(|chunk| libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: chunk.len(),
            })
            .collect();
        let headers = iovecs
            .iter_mut()
            .zip(names.iter_mut())
            .map(|(iovec, name)| {
                let mut header = libc::mmsghdr::zeroed();
                header.msg_hdr.msg_name = (name as *mut libc::sockaddr_in6).cast();
                header.msg_hdr.msg_iov = iovec;
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        Answers {
            bytes,
            names,
            iovecs,
            headers,
        }
    }
}

/// Reads the answers waiting on `fd` (IPv4: each with its IP header) until none is left;
/// true when the socket is drained.
fn receive(inner: &Inner, fd: RawFd, v4: bool, answers: &mut Answers) -> bool {
    debug_assert_eq!(answers.iovecs.len(), BATCH);
    let mut found = Vec::with_capacity(BATCH);
    loop {
        for header in &mut answers.headers {
            header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_in6>() as u32;
            header.msg_hdr.msg_flags = 0;
        }
        let headers = &mut answers.headers;
        // SAFETY: `headers` points into `names`, `iovecs` and `bytes` of `answers`, alive and
        // unmoved for the call; the count is the length of `headers`.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                headers.len() as u32,
                libc::MSG_DONTWAIT as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return true,
                _ => {
                    log::warn!("health: reading SYN answers: {e}");
                    return true;
                }
            }
        }
        let n = n as usize;
        for (i, header) in answers.headers.iter().take(n).enumerate() {
            let len = (header.msg_len as usize).min(ANSWER_BYTES);
            let bytes = &answers.bytes[i * ANSWER_BYTES..i * ANSWER_BYTES + len];
            let parsed = if v4 {
                parse_v4(bytes)
            } else {
                let name = &answers.names[i];
                let ip = std::net::Ipv6Addr::from(name.sin6_addr.s6_addr);
                parse_tcp(bytes).map(|(port, server_port, acknowledged, flags)| {
                    let server = SocketAddrV6::new(ip, server_port, 0, name.sin6_scope_id);
                    (SocketAddr::V6(server), port, acknowledged, flags)
                })
            };
            if let Some(parsed) = parsed {
                found.push(parsed);
            }
        }
        inner.answered(&found);
        found.clear();
        if n < BATCH {
            return true;
        }
    }
}

/// C data for which all-zero bytes are a valid value.
///
/// # Safety
/// Only for plain C structures (and arrays of them) without references or niches.
unsafe trait Zeroable: Sized {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract.
        unsafe { mem::zeroed() }
    }
}

// SAFETY: plain C structures of integers and pointers.
unsafe impl Zeroable for libc::sockaddr_in {}
// SAFETY: as above.
unsafe impl Zeroable for libc::sockaddr_in6 {}
// SAFETY: as above.
unsafe impl Zeroable for libc::mmsghdr {}
// SAFETY: arrays of the above.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// An IPv4 packet (header and TCP segment): (server, our port, acknowledgment, flags).
fn parse_v4(bytes: &[u8]) -> Option<(SocketAddr, u16, u32, u8)> {
    let header = usize::from(*bytes.first()? & 0x0f) * 4;
    if header < 20 || *bytes.get(9)? != libc::IPPROTO_TCP as u8 {
        return None;
    }
    let source = Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]);
    let (port, server_port, acknowledged, flags) = parse_tcp(bytes.get(header..)?)?;
    Some((
        SocketAddr::V4(SocketAddrV4::new(source, server_port)),
        port,
        acknowledged,
        flags,
    ))
}

/// A TCP segment's (destination port, source port, acknowledgment, flags).
fn parse_tcp(tcp: &[u8]) -> Option<(u16, u16, u32, u8)> {
    if tcp.len() < 20 {
        return None;
    }
    let source = u16::from_be_bytes([tcp[0], tcp[1]]);
    let destination = u16::from_be_bytes([tcp[2], tcp[3]]);
    let acknowledged = u32::from_be_bytes([tcp[8], tcp[9], tcp[10], tcp[11]]);
    Some((destination, source, acknowledged, tcp[13]))
}

/// The IPv4 header of a SYN from `from` to `to`: don't fragment, as a TCP socket's SYN;
/// the kernel fills in the total length, the identifier (0 with DF) and the checksum.
fn ipv4_header(from: Ipv4Addr, to: Ipv4Addr) -> [u8; IPV4_BYTES] {
    let mut h = [0u8; IPV4_BYTES];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&((IPV4_BYTES + SYN_BYTES) as u16).to_be_bytes());
    h[6] = 0x40;
    h[8] = 64;
    h[9] = libc::IPPROTO_TCP as u8;
    h[12..16].copy_from_slice(&from.octets());
    h[16..20].copy_from_slice(&to.octets());
    h
}

/// A SYN from `from_port` to `to_port`, its checksum left 0.
fn syn_segment(from_port: u16, to_port: u16, sequence: u32) -> [u8; SYN_BYTES] {
    let mut s = [0u8; SYN_BYTES];
    s[0..2].copy_from_slice(&from_port.to_be_bytes());
    s[2..4].copy_from_slice(&to_port.to_be_bytes());
    s[4..8].copy_from_slice(&sequence.to_be_bytes());
    // Data offset: 6 words (the header and one option).
    s[12] = 6 << 4;
    s[13] = SYN;
    s[14..16].copy_from_slice(&64_240u16.to_be_bytes());
    // Maximum segment size 1460.
    s[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
    s
}

/// The TCP checksum of `segment` (its checksum field 0) from `from` to `to`.
fn checksum_v4(from: Ipv4Addr, to: Ipv4Addr, segment: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = match pair {
                [a, b] => u16::from_be_bytes([*a, *b]),
                [a] => u16::from_be_bytes([*a, 0]),
                _ => 0,
            };
            sum += u32::from(word);
        }
    };
    add(&from.octets());
    add(&to.octets());
    add(&[0, libc::IPPROTO_TCP as u8]);
    add(&(segment.len() as u16).to_be_bytes());
    add(segment);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends `syns` (one family) with one `sendmmsg`: how many went.
fn send_batch(fd: RawFd, syns: &[Syn]) -> io::Result<usize> {
    let mut names = <[libc::sockaddr_in6; BATCH]>::zeroed();
    let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(syns.len());
    for (syn, name) in syns.iter().zip(names.iter_mut()) {
        iovecs.push(libc::iovec {
            iov_base: syn.bytes.as_ptr() as *mut libc::c_void,
            iov_len: syn.len,
        });
        write_name(syn.to, name);
    }
    let mut headers: Vec<libc::mmsghdr> = Vec::with_capacity(syns.len());
    for ((syn, name), iovec) in syns.iter().zip(names.iter_mut()).zip(iovecs.iter_mut()) {
        let mut header = libc::mmsghdr::zeroed();
        header.msg_hdr.msg_name = (name as *mut libc::sockaddr_in6).cast();
        header.msg_hdr.msg_namelen = if syn.to.is_ipv4() {
            mem::size_of::<libc::sockaddr_in>()
        } else {
            mem::size_of::<libc::sockaddr_in6>()
        } as u32;
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
        headers.push(header);
    }
    // SAFETY: `headers` points into `names`, `iovecs` and `syns`, alive for the call; the
    // kernel only reads the data.
    let n = unsafe {
        libc::sendmmsg(
            fd,
            headers.as_mut_ptr(),
            headers.len() as u32,
            libc::MSG_DONTWAIT as _,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `to` as a C socket address (port 0: a raw socket's).
fn write_name(to: SocketAddr, name: &mut libc::sockaddr_in6) {
    match to {
        SocketAddr::V4(to) => {
            let mut v4: libc::sockaddr_in = libc::sockaddr_in::zeroed();
            v4.sin_family = libc::AF_INET as libc::sa_family_t;
            v4.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
            // SAFETY: sockaddr_in is smaller than sockaddr_in6 and both are plain C data.
            unsafe {
                std::ptr::write(
                    (name as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>(),
                    v4,
                );
            }
        }
        SocketAddr::V6(to) => {
            name.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            name.sin6_addr.s6_addr = to.ip().octets();
            name.sin6_scope_id = to.scope_id();
        }
    }
}

/// A TCP socket bound to an ephemeral port on every address (both families where IPv6 is
/// there), neither listening nor connected: the port is ours.
fn reserve_port() -> io::Result<(OwnedFd, u16)> {
    let (socket, dual) = match socket(libc::AF_INET6, libc::SOCK_STREAM, 0) {
        Ok(socket) => (socket, true),
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {
            (socket(libc::AF_INET, libc::SOCK_STREAM, 0)?, false)
        }
        Err(e) => return Err(e),
    };
    let fd = socket.as_raw_fd();
    if dual {
        // Both families, whatever net.ipv6.bindv6only says.
        set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &0i32)?;
        let mut any: libc::sockaddr_in6 = libc::sockaddr_in6::zeroed();
        any.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        // SAFETY: `any` is a valid sockaddr_in6 of the length given.
        check(unsafe {
            libc::bind(
                fd,
                (&any as *const libc::sockaddr_in6).cast(),
                mem::size_of::<libc::sockaddr_in6>() as u32,
            )
        })?;
    } else {
        let mut any: libc::sockaddr_in = libc::sockaddr_in::zeroed();
        any.sin_family = libc::AF_INET as libc::sa_family_t;
        // SAFETY: `any` is a valid sockaddr_in of the length given.
        check(unsafe {
            libc::bind(
                fd,
                (&any as *const libc::sockaddr_in).cast(),
                mem::size_of::<libc::sockaddr_in>() as u32,
            )
        })?;
    }
    let mut name: libc::sockaddr_in6 = libc::sockaddr_in6::zeroed();
    let mut len = mem::size_of::<libc::sockaddr_in6>() as u32;
    // SAFETY: `name` has room for `len` bytes; the kernel writes at most that.
    check(unsafe {
        libc::getsockname(fd, (&mut name as *mut libc::sockaddr_in6).cast(), &mut len)
    })?;
    // The port sits at the same place in both families' addresses.
    Ok((socket, u16::from_be(name.sin6_port)))
}

/// A raw TCP socket of `family` that passes only segments to `ports`.
fn raw_socket(family: i32, ports: &[u16]) -> io::Result<OwnedFd> {
    let socket = socket(family, libc::SOCK_RAW, libc::IPPROTO_TCP)?;
    let fd = socket.as_raw_fd();
    if family == libc::AF_INET6 {
        // The kernel computes the checksum, at its offset in the TCP header.
        set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_CHECKSUM, &16i32)?;
    } else {
        // We write the IP header: the kernel's generic path for a payload (fragments, an
        // identifier per packet) costs more than the SYN itself.
        set_option(fd, libc::IPPROTO_IP, libc::IP_HDRINCL, &1i32)?;
    }
    let mut program = filter(family == libc::AF_INET, ports);
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    set_option(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
    // Answers queued before the filter came are dropped with the socket's first reads.
    Ok(socket)
}

/// A classic BPF program that keeps TCP segments to `ports`: after the IPv4 header (whose
/// length it reads) for IPv4, at the start for IPv6 (whose raw sockets see no IP header).
fn filter(v4: bool, ports: &[u16]) -> Vec<libc::sock_filter> {
    const LD: u16 = 0x00;
    const LDX: u16 = 0x01;
    const JMP: u16 = 0x05;
    const RET: u16 = 0x06;
    const H: u16 = 0x08;
    const B: u16 = 0x10;
    const ABS: u16 = 0x20;
    const IND: u16 = 0x40;
    const MSH: u16 = 0xa0;
    const JEQ: u16 = 0x10;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let mut program = Vec::with_capacity(ports.len() + 4);
    if v4 {
        // X = the IPv4 header's length; A = the destination port after it.
        program.push(op(LDX | B | MSH, 0, 0, 0));
        program.push(op(LD | H | IND, 0, 0, 2));
    } else {
        program.push(op(LD | H | ABS, 0, 0, 2));
    }
    let n = ports.len();
    for (i, port) in ports.iter().enumerate() {
        // To the accepting return past the remaining tests and the rejecting one.
        program.push(op(JMP | JEQ, (n - i) as u8, 0, u32::from(*port)));
    }
    program.push(op(RET, 0, 0, 0));
    program.push(op(RET, 0, 0, ANSWER_BYTES as u32));
    program
}

/// `fd` registered with the current runtime's reactor.
fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd names one open descriptor for as long as it lives, and the AsyncFd
    // owns it.
    Ok(unsafe { AsyncFd::register(fd) }?)
}

fn socket(family: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket() has no memory arguments; the descriptor is owned from here.
    let fd = check(unsafe {
        libc::socket(
            family,
            kind | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    // SAFETY: a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_option<T>(fd: RawFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a valid T of the size given, read by the kernel during the call.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as u32,
        )
    })
    .map(|_| ())
}

fn check(result: i32) -> io::Result<i32> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A seed for the sequence numbers, from the system's random source.
fn seed() -> u64 {
    let mut seed = [0u8; 8];
    if super::http::provider()
        .secure_random
        .fill(&mut seed)
        .is_err()
    {
        seed = u64::from(std::process::id()).to_le_bytes();
    }
    u64::from_le_bytes(seed) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syn_carries_its_ports_sequence_and_checksum() {
        let mut s = syn_segment(40_000, 80, 0x0102_0304);
        assert_eq!(&s[0..4], &[0x9c, 0x40, 0, 80]);
        assert_eq!(&s[4..8], &[1, 2, 3, 4]);
        assert_eq!(s[12] >> 4, 6, "header of 24 bytes");
        assert_eq!(s[13], SYN);
        let from = Ipv4Addr::new(192, 0, 2, 1);
        let to = Ipv4Addr::new(198, 51, 100, 7);
        let sum = checksum_v4(from, to, &s);
        s[16..18].copy_from_slice(&sum.to_be_bytes());
        // The one's complement sum over the pseudo header and the segment, with its
        // checksum, is all ones.
        assert_eq!(checksum_v4(from, to, &s), 0);
    }

    #[test]
    fn answers_parse_from_ipv4_packets() {
        let mut packet = vec![
            0x45u8, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 7, 192, 0, 2, 1,
        ];
        let mut tcp = [0u8; 20];
        tcp[0..2].copy_from_slice(&80u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&40_000u16.to_be_bytes());
        tcp[8..12].copy_from_slice(&0x0102_0305u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = SYN | ACK;
        packet.extend_from_slice(&tcp);
        let (server, port, acknowledged, flags) = parse_v4(&packet).expect("a segment");
        assert_eq!(
            server,
            "198.51.100.7:80".parse::<SocketAddr>().expect("an address")
        );
        assert_eq!(
            (port, acknowledged, flags),
            (40_000, 0x0102_0305, SYN | ACK)
        );
        // Truncated, or not TCP: nothing.
        assert!(parse_v4(&packet[..30]).is_none());
        packet[9] = 17;
        assert!(parse_v4(&packet).is_none());
    }

    #[test]
    fn the_filter_jumps_to_its_accepting_return() {
        let ports = [1000, 2000, 3000];
        for (v4, first) in [(true, 2), (false, 1)] {
            let program = filter(v4, &ports);
            assert_eq!(program.len(), first + ports.len() + 2);
            let accept = program.len() - 1;
            for (i, port) in ports.iter().enumerate() {
                let at = first + i;
                assert_eq!(program[at].k, u32::from(*port));
                assert_eq!(at + 1 + usize::from(program[at].jt), accept);
                assert_eq!(program[at].jf, 0);
            }
            assert_eq!(program[accept - 1].k, 0, "the rest is dropped");
        }
    }
}
