//! The IPVS table from the configuration: the desired services and real servers (`desired`),
//! the changes that bring the kernel's table to it and only those (`plan`), the record of
//! which services the director created (`record`), and the rounds that read, plan, apply and
//! retry (`Reconciler`). Nothing is ever flushed: a running table is edited in place, so that
//! established connections carry on through a configuration change.
//!
//! What the kernel reports back is what `desired` computes, field for field (see the notes on
//! normalisation below), so that a second round plans nothing.

mod plan;
mod reconciler;
pub mod record;

#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::config::model::{self, Config, Persistence, RealServer, Scheduler, VirtualServer};
use crate::sys::ipvs::{
    Destination, DestinationEntry, Family, Forwarding, Protocol, Service, ServiceEntry, ServiceKey,
    Stats, TableEntry, Timeouts, Tunnel,
};

pub use plan::{plan, Plan};
pub use reconciler::{Failure, Outcome, Reconciler, Round};

/// A service as the configuration wants it, with its real servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub service: Service,
    pub destinations: Vec<Destination>,
}

/// The IPVS table the configuration asks for, services in configuration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub services: Vec<Wanted>,
}

impl Table {
    /// The table as the kernel reports it once programmed (counters at zero): what the next
    /// incremental round plans against instead of reading the kernel.
    pub fn entries(&self) -> Vec<TableEntry> {
        self.services
            .iter()
            .map(|wanted| {
                let entry = ServiceEntry {
                    service: wanted.service.clone(),
                    stats: Stats::default(),
                };
                let destinations = wanted
                    .destinations
                    .iter()
                    .map(|destination| DestinationEntry {
                        destination: destination.clone(),
                        active_conns: 0,
                        inactive_conns: 0,
                        persistent_conns: 0,
                        stats: Stats::default(),
                    })
                    .collect();
                (entry, destinations)
            })
            .collect()
    }

    pub fn keys(&self) -> HashSet<ServiceKey> {
        self.services.iter().map(|w| w.service.key).collect()
    }
}

/// What the health checks say of one real server, over what the configuration says. The
/// health part of the daemon supplies these; without it every real server is as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Override {
    /// Failed: removed from the table (or weight 0 when the virtual server is `quiescent`).
    Down,
    /// Weight 0: no new connections, the established ones finish.
    Quiesce,
    /// This weight instead of the configured one (a dynamic weight from a check).
    Weight(u32),
}

/// The source of per real server overrides: the hook for the health checks.
pub trait Overrides {
    fn real_server(
        &self,
        virtual_server: &VirtualServer,
        real_server: &RealServer,
    ) -> Option<Override>;

    /// Whether the virtual server's `sorry_server` is in service: a destination with weight
    /// 1 beside its real servers (removed, or weight 0 when quiescent), until one is back.
    fn sorry(&self, _virtual_server: &VirtualServer) -> bool {
        false
    }
}

/// No health information: every real server as configured.
pub struct NoOverrides;

impl Overrides for NoOverrides {
    fn real_server(&self, _: &VirtualServer, _: &RealServer) -> Option<Override> {
        None
    }
}

/// The IPVS table `config` asks for.
pub fn desired(config: &Config) -> Table {
    desired_with(config, &NoOverrides)
}

/// The IPVS table `config` asks for, with the health checks' say on each real server.
///
/// Normalisation, so that the table equals what the kernel reports after programming it
/// (Linux net/netfilter/ipvs/ip_vs_ctl.c, read in 6.x: ip_vs_genl_parse_service,
/// ip_vs_add_service, ip_vs_edit_service, ip_vs_genl_fill_service, ip_vs_genl_parse_dest,
/// __ip_vs_update_dest, ip_vs_genl_fill_dest):
/// - A service reports its flags with IP_VS_SVC_F_HASHED added (ip_vs_svc_hash); `wire`
///   strips it and `plan` ignores it. The timeout is kept in jiffies (`timeout * HZ` in an
///   unsigned int) and reported as `/ HZ`: whole seconds come back as sent, as long as they do
///   not wrap (the configuration allows at most 31 days, ipvsadm's limit). The netmask is
///   stored as sent and reported as is: we send the family's full length without persistence,
///   as ipvsadm does (0xffffffff for IPv4, 128 for IPv6), with flags 0 and timeout 0.
/// - A destination's port is kept exactly as sent: the kernel does not normalise it over
///   generic netlink. ipvsadm does, in user space (ipvsadm.c, process_options): for direct
///   routing and tunnelling on an address service the port is forced to the service's port
///   (the packet is not rewritten, so another port means nothing), and a real server given
///   without a port takes the service's port, which is 0 for a firewall-mark service. We do
///   the same, so that our table reads like one made by ipvsadm.
/// - The forwarding method is reported as `conn_flags & IP_VS_CONN_F_FWD_MASK`, the weight and
///   both thresholds as sent. The tunnel type, port and flags are reported since Linux 5.2;
///   older kernels do not report them, which `wire` reads as IPIP, port 0, flags 0: what we
///   send for a tunnel. (Kernels of the 2.6 era turned the method of a local address into
///   LOCALNODE; current ones do not.)
/// - The kernel refuses a lower threshold above the upper one (ERANGE), even when the upper
///   is 0 (no limit): without an upper threshold the lower one means nothing and is sent as 0.
pub fn desired_with(config: &Config, overrides: &dyn Overrides) -> Table {
    let mut table = Table::default();
    let mut seen = HashSet::new();
    for vs in config.virtual_servers.iter().filter(|vs| vs.enabled) {
        let Some(service) = service_of(vs) else {
            continue;
        };
        // A key configured twice is invalid; keep the first rather than fight over it.
        if !seen.insert(service.key) {
            continue;
        }
        let destinations = destinations_of(vs, &service.key, overrides);
        table.services.push(Wanted {
            service,
            destinations,
        });
    }
    table
}

/// The connection timeouts the configuration sets (0: left as the kernel has it), or `None`
/// when it sets none.
pub fn wanted_timeouts(config: &Config) -> Option<Timeouts> {
    let ipvs = &config.network.ipvs;
    let secs = |span: Option<crate::config::types::Span>| {
        span.map_or(0, |s| {
            u32::try_from(s.as_millis() / 1000).unwrap_or(u32::MAX)
        })
    };
    let timeouts = Timeouts {
        tcp: secs(ipvs.tcp_timeout),
        tcp_fin: secs(ipvs.tcpfin_timeout),
        udp: secs(ipvs.udp_timeout),
    };
    (timeouts != Timeouts::default()).then_some(timeouts)
}

/// The key of the IPVS service `vs` asks for (`None`: it has neither a VIP nor a mark).
pub fn service_key(vs: &VirtualServer) -> Option<ServiceKey> {
    service_of(vs).map(|service| service.key)
}

fn service_of(vs: &VirtualServer) -> Option<Service> {
    let key = match (vs.vip, vs.fwmark) {
        (Some(address), _) => ServiceKey::Address {
            protocol: match vs.protocol {
                model::Protocol::Tcp => Protocol::Tcp,
                model::Protocol::Udp => Protocol::Udp,
                model::Protocol::Sctp => Protocol::Sctp,
            },
            address,
            port: vs.port.unwrap_or(0),
        },
        (None, Some(mark)) if mark != 0 => ServiceKey::Fwmark {
            family: match vs.family {
                Some(model::Family::Inet6) => Family::V6,
                Some(model::Family::Inet) | None => Family::V4,
            },
            mark,
        },
        _ => return None,
    };
    let mut service = Service::new(key, scheduler_name(vs.scheduler));
    if let Some(persistence) = &vs.persistence {
        service.flags = Service::PERSISTENT;
        service.timeout = u32::try_from(persistence.timeout.as_millis() / 1000).unwrap_or(u32::MAX);
        service.netmask = persistence_prefix(persistence, key.family());
    }
    Some(service)
}

fn scheduler_name(scheduler: Scheduler) -> &'static str {
    Scheduler::ALL
        .iter()
        .find(|(_, s)| *s == scheduler)
        .map_or("wlc", |(name, _)| name)
}

/// The persistence granularity as a prefix length: IPv4 from the netmask (or prefix_len),
/// default /32; IPv6 from prefix_len, default /128.
fn persistence_prefix(persistence: &Persistence, family: Family) -> u8 {
    let max = family.max_prefix();
    match (family, persistence.netmask, persistence.prefix_len) {
        (Family::V4, Some(IpAddr::V4(mask)), _) => {
            u8::try_from(u32::from(mask).leading_ones()).unwrap_or(max)
        }
        (_, _, Some(len)) => len.min(max),
        _ => max,
    }
}

fn destinations_of(
    vs: &VirtualServer,
    key: &ServiceKey,
    overrides: &dyn Overrides,
) -> Vec<Destination> {
    let forwarding = forwarding_of(vs);
    let mut destinations: Vec<Destination> = Vec::with_capacity(vs.real_servers.len());
    for rs in &vs.real_servers {
        let weight = match overrides.real_server(vs, rs) {
            Some(Override::Down) if !vs.quiescent => continue,
            Some(Override::Down | Override::Quiesce) => 0,
            // Disabled by the operator: drained, whatever the checks say.
            _ if !rs.enabled => 0,
            Some(Override::Weight(weight)) => weight,
            None => rs.weight,
        };
        let port = destination_port(key, forwarding, rs.port);
        if destinations
            .iter()
            .any(|d| d.address == rs.address && d.port == port)
        {
            continue;
        }
        let upper_threshold = rs.upper_threshold;
        let lower_threshold = if upper_threshold == 0 {
            0
        } else {
            rs.lower_threshold.min(upper_threshold)
        };
        destinations.push(Destination {
            address: rs.address,
            port,
            forwarding,
            weight,
            upper_threshold,
            lower_threshold,
        });
    }
    if let Some(sorry) = vs.sorry_server.filter(|_| overrides.sorry(vs)) {
        let port = destination_port(key, forwarding, Some(sorry.port()));
        // A sorry server that is also a real server (drained at weight 0) takes the
        // connections all the same.
        match destinations
            .iter_mut()
            .find(|d| d.address == sorry.ip() && d.port == port)
        {
            Some(existing) => existing.weight = existing.weight.max(1),
            None => destinations.push(Destination {
                address: sorry.ip(),
                port,
                forwarding,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
            }),
        }
    }
    destinations
}

fn forwarding_of(vs: &VirtualServer) -> Forwarding {
    match vs.forwarding {
        model::Forwarding::Nat => Forwarding::Masquerade,
        model::Forwarding::Dr => Forwarding::Route,
        model::Forwarding::Tunnel => Forwarding::Tunnel(Tunnel::default()),
    }
}

/// The port of a destination given `port` (or none) in the service `key`, normalised as
/// ipvsadm does (see `desired_with`).
fn destination_port(key: &ServiceKey, forwarding: Forwarding, port: Option<u16>) -> u16 {
    match *key {
        ServiceKey::Fwmark { .. } => port.unwrap_or(0),
        ServiceKey::Address {
            port: service_port, ..
        } => match forwarding {
            Forwarding::Masquerade | Forwarding::Local => port.unwrap_or(service_port),
            Forwarding::Route | Forwarding::Tunnel(_) => service_port,
        },
    }
}

/// Which configured server each destination of the table `config` asks for is:
/// (service, address, port) -> (virtual server, real server; `None` for the sorry server).
pub fn destination_names(config: &Config) -> HashMap<(ServiceKey, IpAddr, u16), DestinationName> {
    let mut names = HashMap::new();
    for vs in config.virtual_servers.iter().filter(|vs| vs.enabled) {
        let Some(key) = service_key(vs) else {
            continue;
        };
        let forwarding = forwarding_of(vs);
        for rs in &vs.real_servers {
            let port = destination_port(&key, forwarding, rs.port);
            names
                .entry((key, rs.address, port))
                .or_insert_with(|| DestinationName {
                    virtual_server: vs.name.clone(),
                    real_server: Some(rs.name.clone()),
                });
        }
        if let Some(sorry) = vs.sorry_server {
            let port = destination_port(&key, forwarding, Some(sorry.port()));
            names
                .entry((key, sorry.ip(), port))
                .or_insert_with(|| DestinationName {
                    virtual_server: vs.name.clone(),
                    real_server: None,
                });
        }
    }
    names
}

/// What a destination is in the configuration (`destination_names`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationName {
    pub virtual_server: String,
    /// `None`: the virtual server's sorry server.
    pub real_server: Option<String>,
}
