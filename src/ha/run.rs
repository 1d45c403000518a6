//! The pair's executor: one task feeds the state machine with what the channels bring, the
//! passing of time and the operator's commands, and performs its actions: beats out on every
//! channel, takeover and release through `Effects`, log lines. It pets the watchdog only from
//! this loop: a daemon that hangs, or a runtime that stalls, stops petting and the box resets.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{error, info, warn};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::machine::{Action, Beat, Channel, Fitness, Input, Intent, Machine, Role, Transition};
use super::message::{encode, frame, Deframer, Envelope, Key, Receiver, Rejected, MAX_MESSAGE};
use crate::sys::watchdog::Watchdog;

/// What taking over and releasing do (the daemon: VIPs, announcements, the sync daemon).
pub trait Effects: Send {
    /// `planned`: the peer released the VIPs (or shut down) and handed its connections over
    /// just before; otherwise it died or was never active.
    fn take_over(&mut self, planned: bool) -> Result<(), String>;
    fn release(&mut self) -> Result<(), String>;
}

/// What the operator and the daemon tell the pair.
#[derive(Debug)]
pub enum Command {
    Takeover,
    Release,
    /// The links this node serves on are up (all of them) or not.
    LinksUp(bool),
    /// How many ping nodes answer.
    Pings(u8),
    /// The configuration revision in force and its shared part's stamp.
    Config {
        revision: u64,
        shared: crate::config::replica::Stamp,
    },
    /// Hand over and stop; answered when done: at once when this node is not active, else once
    /// the peer says it is active (and `machine::LINGER` has passed) or did not in time.
    Shutdown(oneshot::Sender<()>),
    Status(oneshot::Sender<Status>),
}

/// The pair as `ctl status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub node: u64,
    pub incarnation: u64,
    pub role: Role,
    /// How long the role has held.
    pub for_: Duration,
    pub intent: Intent,
    /// This node's links and ping nodes reached.
    pub fitness: Fitness,
    pub peer: Option<Beat>,
    pub peer_alive: bool,
    /// Per configured channel: how long ago it last brought a beat.
    pub heard: Vec<(Channel, Option<Duration>)>,
    pub accepted: u64,
    pub rejected: Vec<(Rejected, u64)>,
    pub history: Vec<Transition>,
    /// Beats sent, and sends that failed (per channel).
    pub sent: u64,
    pub send_failures: Vec<(Channel, u64)>,
    /// The longest time between two beats sent, since the pair started and over about the
    /// last 10 s: how late the loop ran (a keepalive is the best there is).
    pub beat_gap: Duration,
    pub beat_gap_recent: Duration,
}

/// The UDP channel.
pub struct Udp {
    pub socket: UdpSocket,
    /// Where beats go: the peer, or a broadcast or multicast group.
    pub to: SocketAddr,
}

impl Udp {
    /// A socket on `port`, bound to `interface` when given (root), sending to `to`.
    pub fn open(port: u16, interface: Option<&str>, to: SocketAddr) -> io::Result<Udp> {
        let any: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = std::net::UdpSocket::bind(SocketAddr::new(any, port))?;
        socket.set_nonblocking(true)?;
        // The group is joined on the channel's interface, not on whichever the routes name
        // for it (the default route's, or none on a box without one).
        let mut index = 0;
        if let Some(interface) = interface {
            bind_to_device(&socket, interface)?;
            index = interface_index(interface)?;
        }
        match to.ip() {
            IpAddr::V4(group) if group.is_multicast() => {
                join_multicast_v4(&socket, group, index)?;
                socket.set_multicast_loop_v4(false)?;
            }
            IpAddr::V4(addr) if addr.is_broadcast() => {
                socket.set_broadcast(true)?;
                // Broadcasts loop back to the sender like multicast (IP_MULTICAST_LOOP governs
                // both): this node's own beats would come back as a peer's.
                socket.set_multicast_loop_v4(false)?;
            }
            IpAddr::V6(group) if group.is_multicast() => {
                socket.join_multicast_v6(&group, index)?;
                socket.set_multicast_loop_v6(false)?;
            }
            _ => {}
        }
        Ok(Udp {
            socket: UdpSocket::from_std(socket)?,
            to,
        })
    }
}

/// The serial channel.
pub struct Serial {
    line: AsyncFd<File>,
    deframer: Deframer,
    /// Where it was opened and at which rate: a line that fails is opened again from there.
    source: Option<(PathBuf, u32)>,
}

impl Serial {
    /// `path` as a raw line at `baud`.
    pub fn open(path: &Path, baud: u32) -> io::Result<Serial> {
        let rate = crate::sys::tty::baud_rate(baud).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("no baud rate {baud}"))
        })?;
        let mut serial = Serial::from_file(crate::sys::tty::open_raw(path, rate)?)?;
        serial.source = Some((path.to_path_buf(), baud));
        Ok(serial)
    }

    /// A line already open and set up (non-blocking); it is not opened again if it fails.
    pub fn from_file(file: File) -> io::Result<Serial> {
        Ok(Serial {
            // SAFETY: a File names one open descriptor for as long as it lives, and the
            // AsyncFd owns it.
            line: unsafe { AsyncFd::register(file) }?,
            deframer: Deframer::new(),
            source: None,
        })
    }
}

/// How often a serial line that failed is tried again.
pub const REOPEN_EVERY: Duration = Duration::from_secs(2);

/// A serial line that failed, to be opened again.
struct Lost {
    path: PathBuf,
    baud: u32,
    /// The last attempt (the failure first).
    tried: Instant,
    attempts: u32,
}

/// The pair's settings for the executor.
pub struct Setup {
    pub machine: Machine,
    pub key: Key,
    pub incarnation: u64,
    pub udp: Option<Udp>,
    pub serial: Option<Serial>,
    pub effects: Box<dyn Effects>,
    pub watchdog: Option<Box<dyn Watchdog>>,
}

/// The executor's handle.
#[derive(Clone)]
pub struct Handle {
    commands: mpsc::UnboundedSender<Command>,
}

impl Handle {
    /// False when the pair has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.commands.send(command).is_ok()
    }

    /// The pair as it is; None when it has stopped.
    pub async fn status(&self) -> Option<Status> {
        let (answer, status) = oneshot::channel();
        if !self.send(Command::Status(answer)) {
            return None;
        }
        status.await.ok()
    }

    /// Hands over (when active) and stops the pair.
    pub async fn shut_down(&self) {
        let (done, stopped) = oneshot::channel();
        if self.send(Command::Shutdown(done)) {
            let _ = stopped.await;
        }
    }
}

/// Starts the pair on the current runtime.
pub fn spawn(setup: Setup) -> Handle {
    let (commands, receiver) = mpsc::unbounded_channel();
    tokio::spawn(Runner::new(setup, receiver).run());
    Handle { commands }
}

/// The real-time priority of the pair's own thread.
pub const REALTIME_PRIORITY: i32 = 10;

/// Starts the pair on a thread of its own, at real-time priority, so that nothing else the
/// daemon does (an IPVS round, a configuration change) delays a beat or the watchdog: `setup`
/// runs there first (channels register with that thread's runtime) and the pair does not start
/// when it gives None. The handle reports the pair stopped once the thread ends.
pub fn spawn_thread(setup: impl FnOnce() -> Option<Setup> + Send + 'static) -> io::Result<Handle> {
    let (commands, receiver) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("pair".to_string())
        .spawn(move || {
            if let Err(e) = crate::sys::sched::realtime(REALTIME_PRIORITY) {
                warn!("pair: runs without real-time priority: {e}");
            }
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    error!("pair: no runtime for the pair's thread: {e}");
                    return;
                }
            };
            runtime.block_on(async move {
                if let Some(setup) = setup() {
                    Runner::new(setup, receiver).run().await;
                }
            });
        })?;
    Ok(Handle { commands })
}

/// The time between beats sent: the longest since the start, and the longest of the current
/// and the previous 5 s window.
#[derive(Default)]
struct Gaps {
    last: Option<Instant>,
    longest: Duration,
    window_start: Option<Instant>,
    window: Duration,
    previous: Duration,
}

const GAP_WINDOW: Duration = Duration::from_secs(5);

impl Gaps {
    fn sent(&mut self, now: Instant) {
        self.roll(now);
        if let Some(last) = self.last.replace(now) {
            let gap = now.saturating_duration_since(last);
            self.longest = self.longest.max(gap);
            self.window = self.window.max(gap);
        }
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let age = now.saturating_duration_since(start);
        if age >= GAP_WINDOW {
            // A window with no beat at all leaves nothing to carry over.
            self.previous = if age >= 2 * GAP_WINDOW {
                Duration::ZERO
            } else {
                self.window
            };
            self.window = Duration::ZERO;
            self.window_start = Some(now);
        }
    }

    /// The longest gap of about the last 5 to 10 s, the one under way included.
    fn recent(&self, now: Instant) -> Duration {
        let running = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.window.max(self.previous).max(running)
    }
}

/// The peer's newest beat. Its sequence counts across channels, so a beat that arrives after
/// a later one (the serial line is slower than UDP: a frame queued before the peer's "leaving"
/// beat comes in after it) proves its channel alive but says nothing new: acting on it would
/// take back what the later one said (a peer that has handed over, seen active again).
#[derive(Default)]
struct Newest {
    last: Option<(u64, u64, Beat)>,
}

impl Newest {
    /// The beat to act on when `envelope` arrives: its own, or the newer one already heard.
    fn pick(&mut self, envelope: Envelope) -> Beat {
        match &self.last {
            Some((incarnation, sequence, newer))
                if *incarnation == envelope.incarnation && *sequence > envelope.sequence =>
            {
                *newer
            }
            _ => {
                self.last = Some((envelope.incarnation, envelope.sequence, envelope.beat));
                envelope.beat
            }
        }
    }
}

struct Runner {
    machine: Machine,
    key: Key,
    incarnation: u64,
    sequence: u64,
    receiver: Receiver,
    newest: Newest,
    gaps: Gaps,
    udp: Option<Udp>,
    serial: Option<Serial>,
    /// The serial line failed: opened again every `REOPEN_EVERY`.
    lost: Option<Lost>,
    /// None only while an effect runs (`perform`).
    effects: Option<Box<dyn Effects>>,
    /// An effect ran since the channels were last caught up with.
    performed: bool,
    watchdog: Option<Box<dyn Watchdog>>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Time zero of the machine's clock.
    epoch: Instant,
    last_pet: Instant,
    sent: u64,
    send_failures: [u64; 2],
    /// Rejections already logged, per reason (the rest are counted).
    logged: [bool; 6],
    /// Asked to shut down: told once the pair has handed over and stopped.
    stopping: Vec<oneshot::Sender<()>>,
}

impl Runner {
    fn new(setup: Setup, commands: mpsc::UnboundedReceiver<Command>) -> Runner {
        // The machine's clock starts where the machine was made (its `now` at creation).
        let epoch = Instant::now() - setup.machine.since();
        Runner {
            machine: setup.machine,
            key: setup.key,
            incarnation: setup.incarnation,
            sequence: 0,
            receiver: Receiver::new(),
            newest: Newest::default(),
            gaps: Gaps::default(),
            udp: setup.udp,
            serial: setup.serial,
            lost: None,
            effects: Some(setup.effects),
            performed: false,
            watchdog: setup.watchdog,
            commands,
            epoch,
            last_pet: Instant::now(),
            sent: 0,
            send_failures: [0; 2],
            logged: [false; 6],
            stopping: Vec::new(),
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// How often the watchdog is petted: a quarter of its timeout, and never less often
    /// than the heartbeat.
    fn pet_every(&self) -> Option<Duration> {
        let watchdog = self.watchdog.as_ref()?;
        Some((watchdog.timeout() / 4).min(self.machine.settings().keepalive))
    }

    async fn run(mut self) {
        if let Some(watchdog) = &self.watchdog {
            info!(
                "pair: watchdog running, timeout {} s",
                watchdog.timeout().as_secs()
            );
        }
        let mut datagram = [0u8; MAX_MESSAGE + 1];
        let mut bytes = [0u8; 512];
        loop {
            let mut wake = self.epoch + self.machine.next_wakeup();
            if let Some(every) = self.pet_every() {
                wake = wake.min(self.last_pet + every);
            }
            if let Some(lost) = &self.lost {
                wake = wake.min(lost.tried + REOPEN_EVERY);
            }
            let udp = async {
                match &self.udp {
                    Some(udp) => udp.socket.recv_from(&mut datagram).await,
                    None => std::future::pending().await,
                }
            };
            let serial = async {
                match &self.serial {
                    Some(serial) => match serial.line.readable().await {
                        Ok(mut ready) => {
                            // A read of 0 bytes is the end of the line (a hang-up); a line
                            // that fails is given up (the heartbeat goes on over udp).
                            match ready.try_io(|line| line.get_ref().read(&mut bytes)) {
                                Ok(Ok(0)) => Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "the line hung up",
                                )),
                                Ok(result) => result,
                                Err(_would_block) => Ok(0),
                            }
                        }
                        Err(e) => Err(e),
                    },
                    None => std::future::pending().await,
                }
            };
            enum Event {
                Tick,
                Datagram(io::Result<(usize, SocketAddr)>),
                Serial(io::Result<usize>),
                Command(Option<Command>),
            }
            let event = tokio::select! {
                _ = tokio::time::sleep_until(wake) => Event::Tick,
                received = udp => Event::Datagram(received),
                read = serial => Event::Serial(read),
                command = self.commands.recv() => Event::Command(command),
            };
            match event {
                Event::Tick => {
                    self.step(Input::Tick);
                    if self.stop_if_left() {
                        return;
                    }
                }
                Event::Datagram(Ok((len, from))) => {
                    self.heard(Channel::Udp, &datagram[..len], &from.to_string());
                }
                Event::Datagram(Err(e)) => warn!("pair: receiving on udp: {e}"),
                Event::Serial(Ok(n)) => self.serial_bytes(&bytes[..n]),
                Event::Serial(Err(e)) => {
                    let source = self.serial.take().and_then(|serial| serial.source);
                    match source {
                        Some((path, baud)) => {
                            error!(
                                "pair: the serial line {} failed ({e}): heartbeat on udp only until it opens again (tried every {} s)",
                                path.display(),
                                REOPEN_EVERY.as_secs()
                            );
                            self.lost = Some(Lost {
                                path,
                                baud,
                                tried: Instant::now(),
                                attempts: 0,
                            });
                        }
                        None => error!("pair: the serial line failed, heartbeat on udp only: {e}"),
                    }
                }
                Event::Command(None) => return,
                Event::Command(Some(command)) => {
                    if self.command(command) {
                        return;
                    }
                }
            }
            self.pet();
            self.reopen();
            self.catch_up(&mut datagram, &mut bytes);
        }
    }

    /// Feeds the machine what the serial line brought.
    fn serial_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            let Some(serial) = &mut self.serial else {
                break;
            };
            match serial.deframer.push(byte) {
                Some(Ok(message)) => self.heard(Channel::Serial, &message, "serial"),
                Some(Err(why)) => {
                    self.receiver.count(why);
                    self.rejected(why, "serial");
                }
                None => {}
            }
        }
    }

    /// After an effect, which held this loop for a while (a release handing over a big table):
    /// the beats that arrived meanwhile are taken in before the machine looks at the clock,
    /// or it would take the peer for silent (and dead) for as long as the effect took.
    fn catch_up(&mut self, datagram: &mut [u8], bytes: &mut [u8]) {
        while std::mem::take(&mut self.performed) {
            while let Some(udp) = &self.udp {
                match udp.socket.try_recv_from(datagram) {
                    Ok((len, from)) => {
                        self.heard(Channel::Udp, &datagram[..len], &from.to_string())
                    }
                    Err(_) => break,
                }
            }
            while let Some(serial) = &self.serial {
                // Non-blocking: WouldBlock (nothing more), a hang-up or an error end the
                // catching up; the loop's own read then sees them.
                match serial.line.get_ref().read(bytes) {
                    Ok(n) if n > 0 => {
                        let n = n.min(bytes.len());
                        let chunk = bytes[..n].to_vec();
                        self.serial_bytes(&chunk);
                    }
                    _ => break,
                }
            }
        }
    }

    /// Opens a failed serial line again once `REOPEN_EVERY` has passed since the last try.
    fn reopen(&mut self) {
        let Some(lost) = &mut self.lost else {
            return;
        };
        if lost.tried.elapsed() < REOPEN_EVERY {
            return;
        }
        lost.tried = Instant::now();
        lost.attempts += 1;
        match Serial::open(&lost.path, lost.baud) {
            Ok(serial) => {
                info!(
                    "pair: the serial line {} works again (opened again after {} attempt(s))",
                    lost.path.display(),
                    lost.attempts
                );
                self.serial = Some(serial);
                self.lost = None;
            }
            Err(e) if lost.attempts == 1 => warn!(
                "pair: the serial line {} does not open yet: {e} (trying on)",
                lost.path.display()
            ),
            Err(_) => {}
        }
    }

    /// Performs `command`; true when the pair has stopped.
    fn command(&mut self, command: Command) -> bool {
        match command {
            Command::Takeover => self.step(Input::Takeover),
            Command::Release => self.step(Input::Release),
            Command::LinksUp(up) => {
                let fitness = Fitness {
                    links_up: up,
                    ..self.machine.beat().fitness
                };
                self.step(Input::Fitness(fitness));
            }
            Command::Pings(pings) => {
                let fitness = Fitness {
                    pings,
                    ..self.machine.beat().fitness
                };
                self.step(Input::Fitness(fitness));
            }
            Command::Config { revision, shared } => self.step(Input::Config { revision, shared }),
            Command::Status(answer) => {
                let _ = answer.send(self.status());
            }
            Command::Shutdown(done) => {
                self.step(Input::Shutdown);
                self.stopping.push(done);
            }
        }
        self.stop_if_left()
    }

    /// Once a shutdown is asked and the machine says it may go (the peer took over and had a
    /// moment to be announced): the watchdog's magic close, and those waiting are told. True
    /// when the pair has stopped.
    fn stop_if_left(&mut self) -> bool {
        if self.stopping.is_empty() || !self.machine.left(self.now()) {
            return false;
        }
        if let Some(watchdog) = self.watchdog.take() {
            match watchdog.stop() {
                Ok(()) => info!("pair: watchdog stopped"),
                Err(e) => warn!("pair: stopping the watchdog: {e} (it will reset the box)"),
            }
        }
        let peer = self.machine.peer().filter(|p| p.role == Role::Active);
        info!(
            "pair: stopped{}",
            if peer.is_some() {
                "; the peer is active"
            } else {
                ""
            }
        );
        for done in self.stopping.drain(..) {
            let _ = done.send(());
        }
        true
    }

    fn heard(&mut self, channel: Channel, message: &[u8], from: &str) {
        let now = self.now();
        let max_delay = self.machine.settings().deadtime;
        match self
            .receiver
            .accept(&self.key, channel, message, millis(now), max_delay)
        {
            Ok(envelope) => {
                let beat = self.newest.pick(envelope);
                self.step(Input::Heard { channel, beat });
            }
            Err(why) => self.rejected(why, from),
        }
    }

    /// Logs the first refusal of each kind; `ctl status` counts them all.
    fn rejected(&mut self, why: Rejected, from: &str) {
        let i = Rejected::ALL.iter().position(|r| *r == why).unwrap_or(0);
        if !self.logged[i] {
            self.logged[i] = true;
            warn!("pair: refused a heartbeat from {from}: {why} (further ones are counted in ctl status)");
        }
    }

    fn step(&mut self, input: Input) {
        // What this node said before the step: it goes on saying it while an effect runs.
        let before = self.machine.beat();
        let now = self.now();
        let actions = self.machine.step(input, now);
        for action in actions {
            match action {
                Action::Send => self.send(self.machine.beat()),
                Action::TakeOver => {
                    let planned = self
                        .machine
                        .peer()
                        .is_some_and(|p| p.leaving || p.role != Role::Active);
                    if let Err(e) = self.perform(before, move |e| e.take_over(planned)) {
                        error!("pair: takeover: {e}");
                    }
                }
                Action::Release => {
                    if let Err(e) = self.perform(before, |e| e.release()) {
                        error!("pair: release: {e}");
                    }
                }
                Action::Warn(text) => warn!("{text}"),
                Action::Info(text) => info!("{text}"),
            }
        }
    }

    /// Runs `effect` on a thread of its own while this thread goes on sending `beat` every
    /// keepalive and petting the watchdog: an effect that takes longer than the peer's deadtime
    /// (a release handing over a big connection table) must not look like a dead node to the
    /// peer, which would take over before the hand-over is done. The peer learns of the new role
    /// by the beat that follows the effect.
    fn perform(
        &mut self,
        beat: Beat,
        effect: impl FnOnce(&mut dyn Effects) -> Result<(), String> + Send,
    ) -> Result<(), String> {
        let Some(mut effects) = self.effects.take() else {
            return Err("another effect is under way".into());
        };
        self.performed = true;
        let keepalive = self.machine.settings().keepalive;
        // Below the pair's own real-time priority: a thread of the same SCHED_FIFO priority
        // would hold the CPU until done (a table read of tens of milliseconds), and the beats
        // meant to go meanwhile would not.
        let below = crate::sys::sched::is_realtime().then_some(REALTIME_PRIORITY - 1);
        let result = std::thread::scope(|scope| {
            let (done, finished) = std::sync::mpsc::channel();
            let running = &mut effects;
            let spawned = std::thread::Builder::new()
                .name("pair-effect".into())
                .spawn_scoped(scope, move || {
                    if let Some(priority) = below {
                        if let Err(e) = crate::sys::sched::realtime(priority) {
                            warn!("pair: the effect's thread keeps the pair's priority: {e}");
                        }
                    }
                    let _ = done.send(effect(running.as_mut()));
                });
            if let Err(e) = spawned {
                return Err(format!("no thread for it: {e}"));
            }
            loop {
                match finished.recv_timeout(keepalive) {
                    Ok(result) => return result,
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        self.send(beat);
                        self.pet();
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                        return Err("it failed (its thread ended without a result)".into());
                    }
                }
            }
        });
        self.effects = Some(effects);
        result
    }

    /// `beat` on every channel, stamped now (not when the step decided it: an effect before it
    /// may have taken longer than the peer's deadtime, and a beat that old is refused as
    /// stale), without waiting: a full buffer loses the beat (the next one follows a keepalive
    /// later).
    fn send(&mut self, beat: Beat) {
        self.sequence += 1;
        let message = encode(
            &self.key,
            &Envelope {
                incarnation: self.incarnation,
                sequence: self.sequence,
                sent_ms: millis(self.now()),
                beat,
            },
        );
        self.sent += 1;
        self.gaps.sent(Instant::now());
        if let Some(udp) = &self.udp {
            if udp.socket.try_send_to(&message, udp.to).is_err() {
                self.send_failures[0] += 1;
            }
        }
        if let Some(serial) = &self.serial {
            let framed = frame(&message);
            let written = serial.line.get_ref().write(&framed);
            if !matches!(written, Ok(n) if n == framed.len()) {
                self.send_failures[1] += 1;
            }
        }
    }

    fn pet(&mut self) {
        let Some(every) = self.pet_every() else {
            return;
        };
        if self.last_pet.elapsed() < every {
            return;
        }
        self.last_pet = Instant::now();
        if let Some(watchdog) = &mut self.watchdog {
            if let Err(e) = watchdog.pet() {
                error!("pair: petting the watchdog: {e}");
            }
        }
    }

    fn status(&self) -> Status {
        let now = self.now();
        let channels = &self.machine.settings().channels;
        let status = Status {
            node: self.machine.settings().node,
            incarnation: self.incarnation,
            role: self.machine.role(),
            for_: now.saturating_sub(self.machine.since()),
            intent: self.machine.intent(),
            fitness: self.machine.beat().fitness,
            peer: self.machine.peer().copied(),
            peer_alive: self.machine.peer_alive(),
            heard: channels
                .iter()
                .map(|c| (*c, self.machine.heard(*c).map(|h| now.saturating_sub(h))))
                .collect(),
            accepted: self.receiver.accepted(),
            rejected: Rejected::ALL
                .iter()
                .map(|r| (*r, self.receiver.rejected(*r)))
                .collect(),
            history: self.machine.history().cloned().collect(),
            sent: self.sent,
            send_failures: vec![
                (Channel::Udp, self.send_failures[0]),
                (Channel::Serial, self.send_failures[1]),
            ],
            beat_gap: self.gaps.longest,
            beat_gap_recent: self.gaps.recent(Instant::now()),
        };
        status
    }
}

/// How many rounds in a row a ping node may miss before it counts as unreachable: one lost
/// echo must not move the VIPs.
const PING_MISSES: u32 = 3;

/// Asks `hosts` (the ping nodes) every `every` and tells the pair how many answer; a host
/// counts as unreachable after `PING_MISSES` rounds without an answer. Ends with the pair.
pub async fn watch_ping_nodes(hosts: Vec<IpAddr>, every: Duration, pair: Handle) {
    let mut pinger = match crate::sys::ping::Pinger::open() {
        Ok(pinger) => pinger,
        Err(e) => {
            error!("pair: cannot ask the ping nodes ({e}): none counts as reachable");
            let _ = pair.send(Command::Pings(0));
            return;
        }
    };
    let mut misses = vec![PING_MISSES; hosts.len()];
    let mut last = None;
    loop {
        let started = Instant::now();
        let answered = pinger.round(&hosts, every / 2).await;
        for (miss, answered) in misses.iter_mut().zip(&answered) {
            *miss = if *answered { 0 } else { miss.saturating_add(1) };
        }
        let reachable: Vec<bool> = misses.iter().map(|m| *m < PING_MISSES).collect();
        let count = u8::try_from(reachable.iter().filter(|r| **r).count()).unwrap_or(u8::MAX);
        if last.as_ref() != Some(&reachable) {
            let silent: Vec<String> = hosts
                .iter()
                .zip(&reachable)
                .filter(|(_, r)| !**r)
                .map(|(h, _)| h.to_string())
                .collect();
            let text = format!(
                "pair: {count} of {} ping nodes answer{}",
                hosts.len(),
                if silent.is_empty() {
                    String::new()
                } else {
                    format!(" (silent: {})", silent.join(", "))
                }
            );
            if silent.is_empty() {
                info!("{text}");
            } else {
                warn!("{text}");
            }
            last = Some(reachable);
        }
        if !pair.send(Command::Pings(count)) {
            return;
        }
        tokio::time::sleep_until(started + every).await;
    }
}

/// Sends and receives only through `interface` (SO_BINDTODEVICE; root).
pub fn bind_to_device(socket: &impl std::os::fd::AsRawFd, interface: &str) -> io::Result<()> {
    let name = interface.as_bytes();
    // SAFETY: the option value is `name`, valid for its length, for the call.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast(),
            libc::socklen_t::try_from(name.len()).unwrap_or(0),
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The index of network interface `name`.
fn interface_index(name: &str) -> io::Result<u32> {
    let name = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in the interface name"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

/// Joins `group` on interface `index` (0: the kernel's choice), and sends multicast there.
fn join_multicast_v4(socket: &std::net::UdpSocket, group: Ipv4Addr, index: u32) -> io::Result<()> {
    let request = libc::ip_mreqn {
        imr_multiaddr: libc::in_addr {
            s_addr: u32::from_ne_bytes(group.octets()),
        },
        imr_address: libc::in_addr { s_addr: 0 },
        imr_ifindex: i32::try_from(index).unwrap_or(0),
    };
    for option in [libc::IP_ADD_MEMBERSHIP, libc::IP_MULTICAST_IF] {
        if option == libc::IP_MULTICAST_IF && index == 0 {
            continue;
        }
        // SAFETY: `request` is a valid ip_mreqn (accepted by both options) for the call.
        let result = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(socket),
                libc::IPPROTO_IP,
                option,
                (&request as *const libc::ip_mreqn).cast(),
                std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(incarnation: u64, sequence: u64, role: Role, leaving: bool) -> Envelope {
        Envelope {
            incarnation,
            sequence,
            sent_ms: sequence * 10,
            beat: Beat {
                role,
                leaving,
                ..Beat::sample(7)
            },
        }
    }

    #[test]
    fn gaps_between_beats_are_kept_overall_and_for_the_last_seconds() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut gaps = Gaps::default();
        for ms in (0..=1000).step_by(10) {
            gaps.sent(at(ms));
        }
        gaps.sent(at(1250)); // a 250 ms hold-up
        assert_eq!(gaps.longest, Duration::from_millis(250));
        assert_eq!(gaps.recent(at(1250)), Duration::from_millis(250));
        for ms in (1260..=12_000).step_by(10) {
            gaps.sent(at(ms));
        }
        assert_eq!(gaps.longest, Duration::from_millis(250), "kept overall");
        assert_eq!(
            gaps.recent(at(12_000)),
            Duration::from_millis(10),
            "gone from the window"
        );
        assert_eq!(
            gaps.recent(at(12_400)),
            Duration::from_millis(400),
            "a gap under way counts"
        );
    }

    #[test]
    fn a_beat_older_than_one_heard_says_what_the_newer_one_said() {
        let mut newest = Newest::default();
        let active = newest.pick(envelope(1, 10, Role::Active, false));
        assert_eq!(active.role, Role::Active);
        // UDP brings "leaving" (11), then the serial line the "active" sent before it (10).
        let leaving = newest.pick(envelope(1, 11, Role::Standby, true));
        assert!(leaving.leaving);
        let late = newest.pick(envelope(1, 10, Role::Active, false));
        assert_eq!(
            late, leaving,
            "the late beat does not take the hand-over back"
        );
        // A restarted peer (a new incarnation) starts afresh.
        let restarted = newest.pick(envelope(2, 1, Role::Standby, false));
        assert!(!restarted.leaving);
    }
}
