//! The daemon's side of the pair: the executor built from the configuration in force at
//! start, and what takeover and release do on this box, in the order Piranha's pulse and
//! heartbeat use: takeover = VIPs up, gratuitous ARP / unsolicited NA (repeated, in the
//! background), the IPVS sync daemon as master; release = the reverse. The IPVS table and the
//! health checks run on both nodes all the time, so that a takeover is only the VIP move.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use log::{error, info, warn};

use crate::config::model::{Config, Pair, UdpMode};
use crate::ha::machine::{Machine, Settings};
use crate::ha::message::Key;
use crate::ha::run::{self, Effects, Handle, Serial, Setup, Udp};
use crate::net::vip;
use crate::sys::announce::{announce, Announcement};
use crate::sys::ipvs::kernel::KernelIpvs;
use crate::sys::ipvs::{Ipvs, SyncDaemon, SyncState};
use crate::sys::rtnl::KernelRtnl;
use crate::sys::watchdog::{Device, Watchdog};

/// How often the ping nodes are asked.
const PING_EVERY: Duration = Duration::from_secs(1);

/// Starts the pair of `config` (which has one) as node `node`, `incarnation`; None when it
/// cannot run (logged: the box then holds no VIP, as a standby).
pub fn start(config: &Config, node: u64, incarnation: u64) -> Option<Handle> {
    let pair = config.pair.as_ref()?;
    let settings = Settings::new(pair, node, config.node.role);
    let machine = Machine::new(settings, Duration::ZERO);
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
    info!(
        "pair: node {node:x}, incarnation {incarnation}, peer {}, keepalive {}, deadtime {}",
        pair.peer, pair.keepalive, pair.deadtime
    );
    let handle = run::spawn(Setup {
        machine,
        key: Key::new(pair.key.as_bytes()),
        incarnation,
        udp,
        serial,
        effects: Box::new(BoxEffects::new(config, pair)),
        watchdog,
    });
    if !pair.ping_nodes.is_empty() {
        tokio::spawn(run::watch_ping_nodes(
            pair.ping_nodes.clone(),
            PING_EVERY,
            handle.clone(),
        ));
    }
    Some(handle)
}

/// Takeover and release on this box.
struct BoxEffects {
    /// Each VIP and its device (`eth0` or `eth0:1`).
    vips: Vec<(IpAddr, String)>,
    count: u32,
    spacing: Duration,
    /// The sync daemon's interface and id, when connection sync is on.
    sync: Option<(String, u32)>,
}

impl BoxEffects {
    fn new(config: &Config, pair: &Pair) -> BoxEffects {
        let sync = pair.connection_sync.then(|| {
            let interface = pair
                .udp
                .as_ref()
                .map_or_else(|| "eth1".to_string(), |u| u.interface.clone());
            (interface, u32::from(pair.sync_id))
        });
        BoxEffects {
            vips: crate::net::vips(config),
            count: pair.announce_count,
            spacing: pair.announce_spacing.as_duration(),
            sync,
        }
    }

    /// The sync daemon in `state` (the other one stopped).
    fn sync_as(&self, state: SyncState) -> Result<(), String> {
        let Some((interface, sync_id)) = &self.sync else {
            return Ok(());
        };
        let mut ipvs = KernelIpvs::open().map_err(|e| e.to_string())?;
        let other = match state {
            SyncState::Master => SyncState::Backup,
            SyncState::Backup => SyncState::Master,
        };
        let running = ipvs.daemons().map_err(|e| e.to_string())?;
        if running.iter().any(|d| d.state == other) {
            ipvs.stop_daemon(other).map_err(|e| e.to_string())?;
        }
        if !running.iter().any(|d| d.state == state) {
            ipvs.start_daemon(&SyncDaemon {
                state,
                interface: interface.clone(),
                sync_id: *sync_id,
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl Effects for BoxEffects {
    fn take_over(&mut self) -> Result<(), String> {
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
                    std::thread::spawn(move || {
                        if let Err(e) = announce(&announcement, Path::new("/sys")) {
                            warn!("pair: announcing {}: {e}", announcement.address);
                        }
                    });
                }
                Err(e) => failed.push(format!("VIP {address} on {device}: {e}")),
            }
        }
        if let Err(e) = self.sync_as(SyncState::Master) {
            failed.push(format!("sync daemon as master: {e}"));
        }
        info!("pair: took over {added} of {} VIP(s)", self.vips.len());
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }

    fn release(&mut self) -> Result<(), String> {
        let mut rtnl = KernelRtnl::open().map_err(|e| e.to_string())?;
        let mut failed = Vec::new();
        for (address, device) in &self.vips {
            if let Err(e) = vip::remove(&mut rtnl, *address, device) {
                failed.push(format!("VIP {address} on {device}: {e}"));
            }
        }
        if let Err(e) = self.sync_as(SyncState::Backup) {
            failed.push(format!("sync daemon as backup: {e}"));
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    }
}
