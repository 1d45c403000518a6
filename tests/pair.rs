//! The pair's executor over real channels, in one process: two nodes on a current-thread
//! runtime, heartbeat over UDP on the loopback and over pseudo-terminals as the serial line,
//! each channel through a relay that can cut it like a pulled cable. No root needed.
//! Nodes die by having their task dropped (no goodbye, like a power cut), or stop cleanly.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use director::config::model::{Isolation, RolePreference};
use director::ha::machine::{Channel, Machine, Role, Settings};
use director::ha::message::{Key, Rejected};
use director::ha::run::{
    spawn, Command, Effects, Handle, Serial, Setup, Status, Udp, REOPEN_EVERY,
};
use director::sys::watchdog::{Record, Recording};
use nix::sys::termios;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::time::{sleep, Instant};

const KEEPALIVE: Duration = Duration::from_millis(20);
const DEADTIME: Duration = Duration::from_millis(200);
const KEY: &[u8] = b"the pair's shared test key";

/// What a node's takeovers and releases were, and when.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(Instant, &'static str)>>>);

impl Log {
    fn last(&self, what: &str) -> Option<Instant> {
        let log = self.0.lock().expect("the log");
        log.iter()
            .rev()
            .find(|(_, w)| *w == what)
            .map(|(at, _)| *at)
    }
}

impl Effects for Log {
    fn take_over(&mut self, _planned: bool) -> Result<(), String> {
        self.0
            .lock()
            .expect("the log")
            .push((Instant::now(), "takeover"));
        Ok(())
    }

    fn release(&mut self) -> Result<(), String> {
        self.0
            .lock()
            .expect("the log")
            .push((Instant::now(), "release"));
        Ok(())
    }
}

/// A cable that can be cut.
#[derive(Clone, Default)]
struct Cut(Arc<AtomicBool>);

impl Cut {
    fn set(&self, cut: bool) {
        self.0.store(cut, Ordering::SeqCst);
    }

    fn is(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Forwards datagrams from `from` to `to` unless cut.
async fn udp_relay(from: UdpSocket, to: SocketAddr, cut: Cut) {
    let mut buffer = [0u8; 2048];
    while let Ok((n, _)) = from.recv_from(&mut buffer).await {
        if !cut.is() {
            let _ = from.send_to(&buffer[..n], to).await;
        }
    }
}

/// A pseudo-terminal: the master for the relay, the slave set raw for a node.
fn pty() -> (OwnedFd, File) {
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    let mut settings = termios::tcgetattr(&pty.slave).expect("tcgetattr");
    termios::cfmakeraw(&mut settings);
    termios::tcsetattr(&pty.slave, termios::SetArg::TCSANOW, &settings).expect("tcsetattr");
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .expect("non-blocking");
    }
    (pty.master, File::from(pty.slave))
}

/// Copies bytes between two pty masters (a null-modem cable) unless cut; `noise` is written
/// to the second one when set.
async fn serial_relay(
    a: OwnedFd,
    b: OwnedFd,
    cut: Cut,
    noise: Arc<Mutex<Vec<u8>>>,
    unplug: Arc<Notify>,
) {
    // SAFETY: each File owns its descriptor, and the AsyncFd owns the File.
    let (a, b) = unsafe {
        (
            AsyncFd::register(File::from(a)).expect("register"),
            AsyncFd::register(File::from(b)).expect("register"),
        )
    };
    let mut buffer = [0u8; 1024];
    loop {
        let (read, to) = tokio::select! {
            ready = a.readable() => match ready {
                Ok(mut guard) => (guard.try_io(|f| f.get_ref().read(&mut buffer)), &b),
                Err(_) => return,
            },
            ready = b.readable() => match ready {
                Ok(mut guard) => (guard.try_io(|f| f.get_ref().read(&mut buffer)), &a),
                Err(_) => return,
            },
            // The cable is pulled: both ends close, and both nodes see their line hang up.
            () = unplug.notified() => return,
        };
        let n = match read {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
            Err(_would_block) => continue,
        };
        if !cut.is() {
            let _ = to.get_ref().write_all(&buffer[..n]);
        }
        let extra: Vec<u8> = std::mem::take(&mut *noise.lock().expect("noise"));
        if !extra.is_empty() {
            let _ = b.get_ref().write_all(&extra);
        }
    }
}

struct Lab {
    nodes: [Option<Handle>; 2],
    logs: [Log; 2],
    watchdogs: [Arc<Mutex<Record>>; 2],
    udp_cut: Cut,
    serial_cut: Cut,
    /// Bytes to write toward node 1 on the serial line.
    noise: Arc<Mutex<Vec<u8>>>,
    /// Node 0's UDP port (to send it junk).
    port0: u16,
    /// Ends the serial cable's relay.
    unplug: Arc<Notify>,
    /// Where the nodes open their serial lines: links to the pseudo-terminals of the cable
    /// plugged in now.
    lines: [PathBuf; 2],
    /// The cables' ends as first opened, kept open: a pseudo-terminal whose every end is
    /// closed hangs up its master, and the relay ends.
    ends: Mutex<Vec<File>>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(dir) = self.lines[0].parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn settings(node: u64, preference: RolePreference) -> Settings {
    Settings {
        node,
        preference,
        priority: 100,
        keepalive: KEEPALIVE,
        deadtime: DEADTIME,
        warntime: None,
        initdead: DEADTIME * 2,
        auto_failback: false,
        // Both reach their one ping node (set at start): a node whose peer falls silent
        // takes over.
        ping_nodes: 1,
        isolation: Isolation::PingNodesDecide,
        channels: vec![Channel::Udp, Channel::Serial],
    }
}

impl Lab {
    async fn start() -> Lab {
        let localhost = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let udp_cut = Cut::default();
        let serial_cut = Cut::default();
        // Node sockets and relay sockets, all on ephemeral ports.
        let mut node_udp = Vec::new();
        for _ in 0..2 {
            node_udp.push(Udp::open(0, None, localhost(9)).expect("a UDP socket"));
        }
        let ports: Vec<u16> = node_udp
            .iter()
            .map(|u| u.socket.local_addr().expect("an address").port())
            .collect();
        for (i, udp) in node_udp.iter_mut().enumerate() {
            let relay = UdpSocket::bind(localhost(0)).await.expect("a relay socket");
            udp.to = relay.local_addr().expect("an address");
            tokio::spawn(udp_relay(relay, localhost(ports[1 - i]), udp_cut.clone()));
        }
        let dir =
            std::env::temp_dir().join(format!("director-pair-{}-{}", std::process::id(), ports[0]));
        std::fs::create_dir_all(&dir).expect("a directory for the lines");
        let mut lab = Lab {
            nodes: [None, None],
            logs: [Log::default(), Log::default()],
            watchdogs: [Arc::default(), Arc::default()],
            udp_cut,
            serial_cut,
            noise: Arc::default(),
            port0: ports[0],
            unplug: Arc::default(),
            lines: [dir.join("ttyS1-0"), dir.join("ttyS1-1")],
            ends: Mutex::default(),
        };
        lab.plug();
        let preferences = [RolePreference::Primary, RolePreference::Backup];
        for (i, udp) in node_udp.into_iter().enumerate() {
            let node = lab.node(i, preferences[i], udp);
            node.send(Command::Pings(1));
            lab.nodes[i] = Some(node);
        }
        lab
    }

    /// A new serial cable: two pseudo-terminals joined by a relay, each node's line path
    /// linked to its end.
    fn plug(&self) {
        let (master0, slave0) = pty();
        let (master1, slave1) = pty();
        let slaves = [slave0, slave1];
        for (slave, line) in slaves.iter().zip(&self.lines) {
            let name = std::fs::read_link(format!("/proc/self/fd/{}", slave.as_raw_fd()))
                .expect("the pseudo-terminal's name");
            let _ = std::fs::remove_file(line);
            std::os::unix::fs::symlink(name, line).expect("a link to the line");
        }
        self.ends.lock().expect("the ends").extend(slaves);
        tokio::spawn(serial_relay(
            master0,
            master1,
            self.serial_cut.clone(),
            self.noise.clone(),
            self.unplug.clone(),
        ));
    }

    fn node(&self, i: usize, preference: RolePreference, udp: Udp) -> Handle {
        spawn(Setup {
            machine: Machine::new(settings(i as u64 + 1, preference), Duration::ZERO),
            key: Key::new(KEY),
            incarnation: 1,
            udp: Some(udp),
            serial: Some(Serial::open(&self.lines[i], 115_200).expect("a serial line")),
            effects: Box::new(self.logs[i].clone()),
            watchdog: Some(Box::new(Recording {
                record: self.watchdogs[i].clone(),
                timeout: Duration::from_secs(1),
            })),
        })
    }

    async fn status(&self, i: usize) -> Status {
        let node = self.nodes[i].as_ref().expect("a running node");
        node.status().await.expect("a status")
    }

    async fn roles(&self) -> (Role, Role) {
        (self.status(0).await.role, self.status(1).await.role)
    }

    /// Waits until `node` has `role`, at most `limit`.
    async fn wait_for(&self, node: usize, role: Role, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if self.status(node).await.role == role {
                return true;
            }
            sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

fn run(test: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test);
}

#[test]
fn the_pair_agrees_and_the_standby_takes_over_when_the_active_dies() {
    run(async {
        let mut lab = Lab::start().await;
        assert!(lab.wait_for(0, Role::Active, Duration::from_secs(2)).await);
        sleep(KEEPALIVE * 5).await;
        assert_eq!(lab.roles().await, (Role::Active, Role::Standby));
        let status = lab.status(1).await;
        assert!(status.peer_alive);
        assert!(status.heard.iter().all(|(_, h)| h.is_some()), "{status:?}");
        // Power cut: the task goes, nothing more is sent.
        let died = Instant::now();
        lab.nodes[0] = None;
        assert!(lab.wait_for(1, Role::Active, DEADTIME * 5).await);
        let took = lab.logs[1].last("takeover").expect("a takeover") - died;
        eprintln!(
            "takeover {} ms after the active died (deadtime {} ms)",
            took.as_millis(),
            DEADTIME.as_millis()
        );
        let status = lab.status(1).await;
        let reason = &status.history.last().expect("a transition").reason;
        assert_eq!(reason, "the peer is silent on every channel for 200 ms");
        let pets = lab.watchdogs[1].lock().expect("record").pets;
        assert!(pets > 0, "the watchdog was petted");
    });
}

#[test]
fn one_cut_channel_changes_nothing_and_a_clean_stop_hands_over_at_once() {
    run(async {
        let lab = Lab::start().await;
        assert!(lab.wait_for(0, Role::Active, Duration::from_secs(2)).await);
        for (cut, channel) in [
            (&lab.udp_cut, Channel::Udp),
            (&lab.serial_cut, Channel::Serial),
        ] {
            cut.set(true);
            sleep(DEADTIME * 3).await;
            assert_eq!(
                lab.roles().await,
                (Role::Active, Role::Standby),
                "{channel:?} cut"
            );
            let status = lab.status(1).await;
            assert!(status.peer_alive);
            let silent = status
                .heard
                .iter()
                .find(|(c, _)| *c == channel)
                .and_then(|(_, h)| *h);
            assert!(silent.is_some_and(|s| s >= DEADTIME), "{status:?}");
            cut.set(false);
            sleep(DEADTIME).await;
        }
        assert_eq!(lab.logs[1].last("takeover"), None, "no failover");
        // A clean stop: the peer takes over at once, not a deadtime later.
        let stop = Instant::now();
        lab.nodes[0].as_ref().expect("node 0").shut_down().await;
        assert!(lab.wait_for(1, Role::Active, DEADTIME).await);
        let took = lab.logs[1].last("takeover").expect("a takeover") - stop;
        let released = lab.logs[0].last("release").expect("a release");
        assert!(released <= lab.logs[1].last("takeover").expect("a takeover"));
        eprintln!("hand-over took {} ms", took.as_millis());
        // At once, on the peer's word: not after a deadtime of silence.
        let status = lab.status(1).await;
        let reason = &status.history.last().expect("a transition").reason;
        assert_eq!(reason, "the peer shut down and handed over");
        assert!(
            lab.watchdogs[0].lock().expect("record").stopped,
            "magic close"
        );
    });
}

#[test]
fn forged_garbage_and_noise_are_refused_and_counted() {
    run(async {
        let lab = Lab::start().await;
        assert!(lab.wait_for(0, Role::Active, Duration::from_secs(2)).await);
        let junk = UdpSocket::bind("127.0.0.1:0").await.expect("a socket");
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, lab.port0));
        junk.send_to(b"not a heartbeat", to).await.expect("sent");
        // A well-formed beat under another key.
        let mut forged = director::ha::message::encode(
            &Key::new(b"someone else's key entirely"),
            &director::ha::message::Envelope {
                incarnation: 99,
                sequence: 1,
                sent_ms: 0,
                beat: lab.status(1).await.peer.expect("node 0's beat"),
            },
        );
        junk.send_to(&forged, to).await.expect("sent");
        forged.truncate(20);
        junk.send_to(&forged, to).await.expect("sent");
        // Line noise toward node 1: an overlong run, then bytes that are no frame.
        let mut noise = vec![0x55u8; 400];
        noise.extend_from_slice(b"\x00\x02\x01\x00");
        *lab.noise.lock().expect("noise") = noise;
        sleep(DEADTIME).await;
        assert_eq!(lab.roles().await, (Role::Active, Role::Standby));
        let counts = |s: &Status, why| {
            s.rejected
                .iter()
                .find(|(r, _)| *r == why)
                .map_or(0, |(_, n)| *n)
        };
        let zero = lab.status(0).await;
        assert_eq!(counts(&zero, Rejected::Garbage), 2, "{zero:?}");
        assert_eq!(counts(&zero, Rejected::Forged), 1, "{zero:?}");
        let one = lab.status(1).await;
        assert!(counts(&one, Rejected::Garbage) >= 2, "{one:?}");
        assert!(one.accepted > 0);
    });
}

#[test]
fn a_serial_line_that_hangs_up_is_opened_again() {
    run(async {
        let lab = Lab::start().await;
        assert!(lab.wait_for(0, Role::Active, Duration::from_secs(2)).await);
        // The cable is pulled: both lines hang up; the heartbeat goes on over UDP.
        lab.unplug.notify_waiters();
        sleep(DEADTIME * 2).await;
        assert_eq!(lab.roles().await, (Role::Active, Role::Standby));
        for node in 0..2 {
            let status = lab.status(node).await;
            let quiet = status.heard.iter().find(|(c, _)| *c == Channel::Serial);
            assert!(
                quiet.is_some_and(|(_, h)| h.is_some_and(|h| h >= DEADTIME)),
                "node {node}: {status:?}"
            );
        }
        // A cable is plugged in again (new devices at the same paths): within the retry
        // period both nodes hear each other on it again, and nothing failed over.
        lab.plug();
        let end = Instant::now() + REOPEN_EVERY + Duration::from_secs(2);
        'nodes: for node in 0..2 {
            while Instant::now() < end {
                let status = lab.status(node).await;
                let heard = status.heard.iter().find(|(c, _)| *c == Channel::Serial);
                if heard.is_some_and(|(_, h)| h.is_some_and(|h| h < KEEPALIVE * 3)) {
                    continue 'nodes;
                }
                sleep(Duration::from_millis(20)).await;
            }
            let status = lab.status(node).await;
            panic!("node {node} does not hear its peer on the new line: {status:?}");
        }
        assert_eq!(lab.roles().await, (Role::Active, Role::Standby));
        assert_eq!(lab.logs[1].last("takeover"), None, "no failover");
    });
}
