//! The daemon's side of the pair: the executor built from the configuration in force at
//! start, and what takeover and release do on this box, in the order Piranha's pulse and
//! heartbeat use: takeover = VIPs up, gratuitous ARP / unsolicited NA (repeated, in the
//! background); release = VIPs down, then the connection table handed to the peer. The IPVS
//! table, the health checks and both IPVS sync daemons (master and backup) run on both nodes all
//! the time, so that a takeover is only the VIP move.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{error, info, warn};

use crate::config::model::{Config, Pair, UdpMode};
use crate::ha::machine::{Machine, Settings};
use crate::ha::message::Key;
use crate::ha::run::{self, Effects, Handle, Serial, Setup, Udp};
use crate::net::vip;
use crate::sys::announce::{announce_while, Announcement};
use crate::sys::ipvs::kernel::KernelIpvs;
use crate::sys::ipvs::{handover, Ipvs, SyncDaemon, SyncState};
use crate::sys::rtnl::KernelRtnl;
use crate::sys::watchdog::{Device, Watchdog};

/// How often the ping nodes are asked.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Starts the pair of `config` (which has one) as node `node`, `incarnation`; None when it
/// cannot run (logged: the box then holds no VIP, as a standby).
pub fn start(config: &Config, node: u64, incarnation: u64) -> Option<Handle> {
    let pair = config.pair.as_ref()?;
    let settings = Settings::new(pair, node, config.node.role);
    info!(
        "pair: node {node:x}, incarnation {incarnation}, peer {}, keepalive {}, deadtime {}",
        pair.peer, pair.keepalive, pair.deadtime
    );
    let effects = BoxEffects::new(config, pair);
    let key = Key::new(pair.key.as_bytes());
    let channels = pair.clone();
    let spawned = run::spawn_thread(move || {
        let pair = channels;
        let (udp, serial) = open_channels(&pair);
        if udp.is_none() && serial.is_none() {
            error!("pair: no heartbeat channel could be opened; this node stays standby");
            return None;
        }
        let watchdog: Option<Box<dyn Watchdog>> = match &pair.watchdog {
            Some(w) => match Device::open(Path::new(&w.device), w.timeout.as_duration()) {
                Ok(device) => Some(Box::new(device)),
                Err(e) => {
                    error!("pair: watchdog {}: {e}; running without", w.device);
                    None
                }
            },
            None => None,
        };
        Some(Setup {
            machine: Machine::new(settings, Duration::ZERO),
            key,
            incarnation,
            udp,
            serial,
            effects: Box::new(effects),
            watchdog,
        })
    });
    let handle = match spawned {
        Ok(handle) => handle,
        Err(e) => {
            error!("pair: cannot start its thread: {e}; this node stays standby");
            return None;
        }
    };
    if !pair.ping_nodes.is_empty() {
        tokio::spawn(run::watch_ping_nodes(
            pair.ping_nodes.clone(),
            PING_EVERY,
            handle.clone(),
        ));
    }
    Some(handle)
}

/// The heartbeat channels the pair's section asks for (each one that opens; the others are
/// logged).
fn open_channels(pair: &Pair) -> (Option<Udp>, Option<Serial>) {
    let udp = match &pair.udp {
        Some(channel) => {
            let to = match channel.mode {
                UdpMode::Unicast => SocketAddr::new(pair.peer, channel.port),
                UdpMode::Broadcast => SocketAddr::new(Ipv4Addr::BROADCAST.into(), channel.port),
                UdpMode::Multicast => match channel.group {
                    Some(group) => SocketAddr::new(group, channel.port),
                    None => SocketAddr::new(pair.peer, channel.port),
                },
            };
            match Udp::open(channel.port, Some(&channel.interface), to) {
                Ok(udp) => Some(udp),
                Err(e) => {
                    error!(
                        "pair: heartbeat on udp port {} of {}: {e}",
                        channel.port, channel.interface
                    );
                    None
                }
            }
        }
        None => None,
    };
    let serial = match &pair.serial {
        Some(port) => {
            let path = Path::new("/dev").join(&port.device);
            match Serial::open(&path, port.baud) {
                Ok(serial) => Some(serial),
                Err(e) => {
                    error!("pair: heartbeat on {}: {e}", path.display());
                    None
                }
            }
        }
        None => None,
    };
    (udp, serial)
}

/// Takeover and release on this box.
struct BoxEffects {
    /// Each VIP and its device (`eth0` or `eth0:1`).
    vips: Vec<(IpAddr, String)>,
    count: u32,
    spacing: Duration,
    /// The heartbeat interface and sync id, when connection sync is on.
    sync: Option<(String, u8)>,
    /// Raised by every takeover and release: an announcement goes on only while it is the
    /// one its takeover set (a release stops it, or clients would come back to this box).
    term: Arc<AtomicU64>,
}

/// The longest a release spends handing the connection table to the peer.
const HAND_OVER_BUDGET: Duration = Duration::from_millis(200);
/// The longest a planned takeover waits for the kernel to take in the peer's connections.
const TAKE_IN_BUDGET: Duration = Duration::from_millis(100);

impl BoxEffects {
    /// With connection sync on, both sync daemons start at once and run for the pair's life:
    /// the backup enters whatever the peer's master sends, and the master sends what this node
    /// forwards, which only the active does. The kernel's master drops the connections it has
    /// not sent yet when it stops: switching the daemons at each takeover and release lost the
    /// newest connections of a planned switch-over (and took tens of milliseconds).
    fn new(config: &Config, pair: &Pair) -> BoxEffects {
        let sync = pair.connection_sync.then(|| {
            let interface = pair
                .udp
                .as_ref()
                .map_or_else(|| "eth1".to_string(), |u| u.interface.clone());
            let daemons = (interface.clone(), u32::from(pair.sync_id));
            std::thread::spawn(move || {
                for state in [SyncState::Backup, SyncState::Master] {
                    if let Err(e) = start_sync_daemon(state, &daemons.0, daemons.1) {
                        warn!("pair: sync daemon as {}: {e}", sync_name(state));
                    }
                }
            });
            (interface, pair.sync_id)
        });
        BoxEffects {
            vips: crate::net::vips(config),
            count: pair.announce_count,
            spacing: pair.announce_spacing.as_duration(),
            sync,
            term: Arc::default(),
        }
    }
}

fn sync_name(state: SyncState) -> &'static str {
    match state {
        SyncState::Master => "master",
        SyncState::Backup => "backup",
    }
}

/// The sync daemon in `state`, unless it runs already.
fn start_sync_daemon(state: SyncState, interface: &str, sync_id: u32) -> Result<(), String> {
    let mut ipvs = KernelIpvs::open().map_err(|e| e.to_string())?;
    let running = ipvs.daemons().map_err(|e| e.to_string())?;
    if !running.iter().any(|d| d.state == state) {
        ipvs.start_daemon(&SyncDaemon {
            state,
            interface: interface.to_string(),
            sync_id,
        })
        .map_err(|e| e.to_string())?;
    }
    info!("pair: sync daemon as {} on {interface}", sync_name(state));
    Ok(())
}

impl Effects for BoxEffects {
    fn take_over(&mut self, planned: bool) -> Result<(), String> {
        let started = Instant::now();
        // After a planned hand-over the peer's connections are queued for this node's backup
        // sync daemon: they go into the table before the VIPs come up.
        let term = self.term.fetch_add(1, Ordering::SeqCst) + 1;
        let mut taken_in = String::new();
        if planned && self.sync.is_some() {
            taken_in = match handover::wait_taken_in(TAKE_IN_BUDGET) {
                Some((waited, emptied)) => format!(
                    "; the peer's connections {} after {:.1} ms",
                    if emptied { "taken in" } else { "still queued" },
                    waited.as_secs_f64() * 1000.0
                ),
                None => "; no backup sync daemon to take the peer's connections in".into(),
            };
        }
        let mut rtnl = KernelRtnl::open().map_err(|e| e.to_string())?;
        let mut failed = Vec::new();
        let mut added = 0;
        for (address, device) in &self.vips {
            match vip::add(&mut rtnl, *address, device) {
                Ok(()) => {
                    added += 1;
                    let link = device.split(':').next().unwrap_or(device).to_string();
                    let announcement = Announcement::new(&link, *address, self.count, self.spacing);
                    // Repeated with pauses: not on the pair's loop.
                    let current = Arc::clone(&self.term);
                    std::thread::spawn(move || {
                        let go_on = || current.load(Ordering::SeqCst) == term;
                        if let Err(e) = announce_while(&announcement, Path::new("/sys"), go_on) {
                            warn!("pair: announcing {}: {e}", announcement.address);
                        }
                    });
                }
                Err(e) => failed.push(format!("VIP {address} on {device}: {e}")),
            }
        }
        info!(
            "pair: took over {added} of {} VIP(s) in {:.1} ms{taken_in}",
            self.vips.len(),
            started.elapsed().as_secs_f64() * 1000.0
        );
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    fn release(&mut self) -> Result<(), String> {
        self.term.fetch_add(1, Ordering::SeqCst);
        let mut rtnl = KernelRtnl::open().map_err(|e| e.to_string())?;
        let mut failed = Vec::new();
        for (address, device) in &self.vips {
            if let Err(e) = vip::remove(&mut rtnl, *address, device) {
                failed.push(format!("VIP {address} on {device}: {e}"));
            }
        }
        // The VIPs are off: no new connection comes here. The table goes to the peer before the
        // beat that tells it to take over.
        if let Some((interface, sync_id)) = &self.sync {
            let started = Instant::now();
            match handover::hand_over(interface, *sync_id, HAND_OVER_BUDGET) {
                Ok(done) => info!(
                    "pair: released; handed {} of {} connection(s) to the peer in {:.1} ms (table read in {:.1} ms)",
                    done.sent,
                    done.read,
                    started.elapsed().as_secs_f64() * 1000.0,
                    done.reading.as_secs_f64() * 1000.0
                ),
                Err(e) => warn!("pair: handing the connections to the peer: {e}"),
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
