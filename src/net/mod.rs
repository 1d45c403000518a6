//! The box's network from its configuration: links up with their MTU, addresses, routes and the
//! kernel settings (forwarding, ARP behaviour, the IPVS knobs). The desired state is compared
//! with what the kernel reports and only the difference is applied; what the director did not
//! put in place itself is left alone, so a second apply changes nothing.

pub mod vip;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use crate::config::model::{Config, RouteTarget};
use crate::sys::rtnl::{Address, Link, Route, Rtnl};
use crate::sys::sysctl::Sysctl;

/// rtm_protocol of routes the director adds (RTPROT_STATIC: put in place by an administrator).
pub const ROUTE_PROTOCOL: u8 = 4;

/// An interface as the configuration wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedLink {
    pub name: String,
    pub mtu: Option<u32>,
    pub addresses: Vec<(IpAddr, u8)>,
}

/// A route as the configuration wants it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WantedRoute {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: IpAddr,
    pub device: Option<String>,
}

impl fmt::Display for WantedRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix_len == 0 {
            write!(f, "default via {}", self.gateway)?;
        } else {
            write!(
                f,
                "{}/{} via {}",
                self.destination, self.prefix_len, self.gateway
            )?;
        }
        if let Some(device) = &self.device {
            write!(f, " dev {device}")?;
        }
        Ok(())
    }
}

/// The network part of a configuration, in kernel terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    pub links: Vec<WantedLink>,
    pub routes: Vec<WantedRoute>,
    /// (key below /proc/sys, value).
    pub sysctls: Vec<(String, String)>,
}

fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.to_string()
}

/// What `config` asks of the network.
/// The VIPs of the enabled virtual servers, each once, with the device it goes on: the one its
/// virtual server names (`eth0:1` keeps its label), or else the interface whose network holds
/// it; a VIP with neither is left out (validation reports it).
pub fn vips(config: &Config) -> Vec<(IpAddr, String)> {
    let mut vips: Vec<(IpAddr, String)> = Vec::new();
    for vs in config.virtual_servers.iter().filter(|vs| vs.enabled) {
        let Some(vip) = vs.vip else { continue };
        let device = match &vs.device {
            Some(device) => Some(device.clone()),
            None => config
                .network
                .interfaces
                .iter()
                .find(|i| i.addresses.iter().any(|p| p.contains(vip)))
                .map(|i| i.name.clone()),
        };
        if let Some(device) = device {
            if !vips.iter().any(|(v, _)| *v == vip) {
                vips.push((vip, device));
            }
        }
    }
    vips
}

pub fn wanted(config: &Config) -> Wanted {
    let network = &config.network;
    let mut links: Vec<WantedLink> = network
        .interfaces
        .iter()
        .map(|interface| WantedLink {
            name: interface.name.clone(),
            mtu: interface.mtu,
            addresses: interface
                .addresses
                .iter()
                .map(|prefix| (prefix.addr, prefix.len))
                .collect(),
        })
        .collect();
    // Loopback is always up: local services and checks use it.
    if !links.iter().any(|l| l.name == "lo") {
        links.push(WantedLink {
            name: "lo".into(),
            mtu: None,
            addresses: Vec::new(),
        });
    }
    // Without a pair the box is always the active director: it holds the VIPs itself, each
    // on the device its virtual server names or else on the interface whose network holds
    // it (with a pair, the pair decides which box holds them).
    if config.pair.is_none() {
        for (vip, device) in vips(config) {
            let link_name = device.split(':').next().unwrap_or(&device);
            let Some(link) = links.iter_mut().find(|l| l.name == link_name) else {
                continue;
            };
            let host = if vip.is_ipv4() { 32 } else { 128 };
            if !link.addresses.iter().any(|(a, _)| *a == vip) {
                link.addresses.push((vip, host));
            }
        }
    }
    let routes = network
        .routes
        .iter()
        .map(|route| {
            let (destination, prefix_len) = match route.to {
                RouteTarget::Default => (unspecified(route.via), 0),
                RouteTarget::Net(prefix) => (prefix.addr, prefix.len),
            };
            WantedRoute {
                destination,
                prefix_len,
                gateway: route.via,
                device: route.device.clone(),
            }
        })
        .collect();
    let mut sysctls = vec![
        ("net/ipv4/ip_forward".to_string(), flag(network.ip_forward)),
        (
            "net/ipv6/conf/all/forwarding".to_string(),
            flag(network.ip_forward),
        ),
    ];
    for interface in &network.interfaces {
        for (name, value) in [
            ("arp_ignore", interface.arp_ignore),
            ("arp_announce", interface.arp_announce),
            ("rp_filter", interface.rp_filter),
        ] {
            if let Some(value) = value {
                sysctls.push((
                    format!("net/ipv4/conf/{}/{name}", interface.name),
                    value.to_string(),
                ));
            }
        }
    }
    let ipvs = &network.ipvs;
    for (name, on) in [
        ("conntrack", ipvs.conntrack),
        ("expire_nodest_conn", ipvs.expire_nodest_conn),
        ("expire_quiescent_template", ipvs.expire_quiescent_template),
    ] {
        sysctls.push((format!("net/ipv4/vs/{name}"), flag(on)));
    }
    Wanted {
        links,
        routes,
        sysctls,
    }
}

fn unspecified(like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// What the director put in place itself (kept in /run across daemon restarts; addresses and
/// routes do not outlive a reboot either), so that it removes only its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Managed {
    /// (interface, address, prefix length).
    pub addresses: BTreeSet<(String, IpAddr, u8)>,
    pub routes: BTreeSet<WantedRoute>,
}

impl Managed {
    /// Reads the record; a missing or damaged one is empty (lines it cannot read are skipped).
    pub fn load(path: &Path) -> Managed {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Managed::parse(&text)
    }

    pub fn parse(text: &str) -> Managed {
        let mut managed = Managed::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["address", name, prefix] => {
                    if let Some((addr, len)) = split_prefix(prefix) {
                        managed.addresses.insert((name.to_string(), addr, len));
                    }
                }
                ["route", destination, gateway, device] => {
                    if let (Some((destination, prefix_len)), Ok(gateway)) =
                        (split_prefix(destination), gateway.parse())
                    {
                        managed.routes.insert(WantedRoute {
                            destination,
                            prefix_len,
                            gateway,
                            device: (*device != "-").then(|| device.to_string()),
                        });
                    }
                }
                _ => {}
            }
        }
        managed
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, addr, len) in &self.addresses {
            out.push_str(&format!("address {name} {addr}/{len}\n"));
        }
        for route in &self.routes {
            out.push_str(&format!(
                "route {}/{} {} {}\n",
                route.destination,
                route.prefix_len,
                route.gateway,
                route.device.as_deref().unwrap_or("-")
            ));
        }
        out
    }

    /// Writes the record (to a temporary file renamed over the old one).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("new");
        std::fs::write(&tmp, self.render())?;
        std::fs::rename(tmp, path)
    }
}

fn split_prefix(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = text.split_once('/')?;
    Some((addr.parse().ok()?, len.parse().ok()?))
}

/// One change to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Up {
        name: String,
        index: u32,
    },
    Mtu {
        name: String,
        index: u32,
        from: u32,
        to: u32,
    },
    RemoveRoute {
        route: Route,
        wanted: WantedRoute,
    },
    RemoveAddress {
        name: String,
        address: Address,
    },
    AddAddress {
        name: String,
        address: Address,
    },
    AddRoute {
        route: Route,
        wanted: WantedRoute,
    },
    Sysctl {
        key: String,
        from: String,
        to: String,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Up { name, .. } => write!(f, "{name}: set up"),
            Step::Mtu { name, from, to, .. } => write!(f, "{name}: MTU {from} -> {to}"),
            Step::RemoveRoute { wanted, .. } => write!(f, "route {wanted}: remove"),
            Step::RemoveAddress { name, address } => {
                write!(f, "{name}: remove {}/{}", address.addr, address.prefix_len)
            }
            Step::AddAddress { name, address } => {
                write!(f, "{name}: add {}/{}", address.addr, address.prefix_len)
            }
            Step::AddRoute { wanted, .. } => write!(f, "route {wanted}: add"),
            Step::Sysctl { key, from, to } => {
                write!(f, "{} = {to} (now {from})", key.replace('/', "."))
            }
        }
    }
}

/// The changes that bring the kernel to the wanted state, and what cannot be done at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Parts of the configuration that cannot be applied (an interface that does not exist, a
    /// setting whose module is not loaded); the rest is applied regardless.
    pub problems: Vec<String>,
}

/// What the kernel has now.
pub struct Actual<'a> {
    pub links: &'a [Link],
    pub addresses: &'a [Address],
    pub routes: &'a [Route],
}

/// Compares `wanted` with `actual` and the settings in `sysctl`.
pub fn plan(wanted: &Wanted, actual: &Actual<'_>, sysctl: &dyn Sysctl, managed: &Managed) -> Plan {
    let mut plan = Plan::default();
    let index_of = |name: &str| {
        actual
            .links
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.index)
    };
    let mut adds = Vec::new();
    let mut removes = Vec::new();

    for link in &wanted.links {
        let Some(current) = actual.links.iter().find(|l| l.name == link.name) else {
            plan.problems.push(format!(
                "interface {} does not exist: its addresses, MTU and settings are not applied",
                link.name
            ));
            continue;
        };
        if !current.up {
            plan.steps.push(Step::Up {
                name: link.name.clone(),
                index: current.index,
            });
        }
        if let Some(mtu) = link.mtu {
            if mtu != current.mtu {
                plan.steps.push(Step::Mtu {
                    name: link.name.clone(),
                    index: current.index,
                    from: current.mtu,
                    to: mtu,
                });
            }
        }
        for &(addr, prefix_len) in &link.addresses {
            let present = actual
                .addresses
                .iter()
                .any(|a| a.index == current.index && a.addr == addr && a.prefix_len == prefix_len);
            if !present {
                adds.push(Step::AddAddress {
                    name: link.name.clone(),
                    address: Address {
                        index: current.index,
                        addr,
                        prefix_len,
                        label: None,
                    },
                });
            }
        }
    }
    // Addresses the director added that the configuration no longer has.
    for (name, addr, prefix_len) in &managed.addresses {
        let still_wanted = wanted
            .links
            .iter()
            .any(|l| &l.name == name && l.addresses.contains(&(*addr, *prefix_len)));
        if still_wanted {
            continue;
        }
        let Some(index) = index_of(name) else {
            continue;
        };
        if let Some(address) = actual
            .addresses
            .iter()
            .find(|a| a.index == index && a.addr == *addr && a.prefix_len == *prefix_len)
        {
            removes.push(Step::RemoveAddress {
                name: name.clone(),
                address: address.clone(),
            });
        }
    }

    let mut route_removes = Vec::new();
    let mut route_adds = Vec::new();
    for wanted_route in &wanted.routes {
        let device = match &wanted_route.device {
            Some(name) => match index_of(name) {
                Some(index) => Some(index),
                None => {
                    plan.problems.push(format!(
                        "route {wanted_route}: interface {name} does not exist; not added"
                    ));
                    continue;
                }
            },
            None => None,
        };
        let present = actual
            .routes
            .iter()
            .any(|r| route_matches(r, wanted_route, device));
        if !present {
            route_adds.push(Step::AddRoute {
                route: Route {
                    destination: wanted_route.destination,
                    prefix_len: wanted_route.prefix_len,
                    gateway: Some(wanted_route.gateway),
                    device,
                    protocol: ROUTE_PROTOCOL,
                },
                wanted: wanted_route.clone(),
            });
        }
    }
    for route in actual.routes {
        let Some(gateway) = route.gateway else {
            continue;
        };
        let as_wanted = WantedRoute {
            destination: route.destination,
            prefix_len: route.prefix_len,
            gateway,
            device: route
                .device
                .and_then(|i| actual.links.iter().find(|l| l.index == i))
                .map(|l| l.name.clone()),
        };
        let wanted_here = wanted.routes.iter().any(|w| {
            let device = w.device.as_deref().and_then(index_of);
            route_matches(route, w, device)
        });
        if wanted_here {
            continue;
        }
        let ours = managed.routes.iter().any(|m| {
            m.destination == route.destination
                && m.prefix_len == route.prefix_len
                && m.gateway == gateway
        });
        // A default route the configuration replaces: the box owns its network, but routes
        // the kernel or router advertisements made are theirs.
        let replaced_default = route.prefix_len == 0
            && matches!(route.protocol, 3 | 4)
            && wanted
                .routes
                .iter()
                .any(|w| w.prefix_len == 0 && w.gateway.is_ipv4() == gateway.is_ipv4());
        if ours || replaced_default {
            route_removes.push(Step::RemoveRoute {
                route: route.clone(),
                wanted: as_wanted,
            });
        }
    }

    plan.steps.extend(route_removes);
    plan.steps.extend(removes);
    plan.steps.extend(adds);
    plan.steps.extend(route_adds);

    for (key, value) in &wanted.sysctls {
        match sysctl.read(key) {
            Ok(Some(current)) if &current == value => {}
            Ok(Some(current)) => plan.steps.push(Step::Sysctl {
                key: key.clone(),
                from: current,
                to: value.clone(),
            }),
            Ok(None) => plan.problems.push(format!(
                "{} does not exist (is its module loaded, its interface there?); not set",
                key.replace('/', ".")
            )),
            Err(e) => plan.problems.push(e.to_string()),
        }
    }
    plan
}

fn route_matches(route: &Route, wanted: &WantedRoute, device: Option<u32>) -> bool {
    route.destination == wanted.destination
        && route.prefix_len == wanted.prefix_len
        && route.gateway == Some(wanted.gateway)
        && (device.is_none() || route.device == device)
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub done: Vec<String>,
    /// Steps the kernel refused, with why.
    pub failed: Vec<String>,
    pub problems: Vec<String>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

/// Carries out `plan`, every step even after one fails, and keeps `managed` up to date.
pub fn apply(
    plan: Plan,
    rtnl: &mut dyn Rtnl,
    sysctl: &mut dyn Sysctl,
    managed: &mut Managed,
) -> Report {
    let mut report = Report {
        problems: plan.problems,
        ..Report::default()
    };
    for step in plan.steps {
        let text = step.to_string();
        let result = match &step {
            Step::Up { index, .. } => rtnl.set_up(*index, true).map_err(|e| e.to_string()),
            Step::Mtu { index, to, .. } => rtnl.set_mtu(*index, *to).map_err(|e| e.to_string()),
            Step::RemoveRoute { route, wanted } => rtnl
                .remove_route(route)
                .map(|()| {
                    managed.routes.retain(|m| {
                        !(m.destination == wanted.destination
                            && m.prefix_len == wanted.prefix_len
                            && m.gateway == wanted.gateway)
                    });
                })
                .map_err(|e| e.to_string()),
            Step::RemoveAddress { name, address } => rtnl
                .remove_address(address)
                .map(|()| {
                    managed
                        .addresses
                        .remove(&(name.clone(), address.addr, address.prefix_len));
                })
                .map_err(|e| e.to_string()),
            Step::AddAddress { name, address } => rtnl
                .add_address(address)
                .map(|()| {
                    managed
                        .addresses
                        .insert((name.clone(), address.addr, address.prefix_len));
                })
                .map_err(|e| e.to_string()),
            Step::AddRoute { route, wanted } => rtnl
                .add_route(route)
                .map(|()| {
                    managed.routes.insert(wanted.clone());
                })
                .map_err(|e| e.to_string()),
            Step::Sysctl { key, to, .. } => sysctl.write(key, to).map_err(|e| e.to_string()),
        };
        match result {
            Ok(()) => report.done.push(text),
            Err(why) => report.failed.push(format!("{text}: {why}")),
        }
    }
    report
}

/// The network as `director ctl net` shows it: interfaces with their addresses, the routes,
/// the managed settings, and what differs from the configuration (`plan` of the same state).
pub fn describe(wanted: &Wanted, actual: &Actual<'_>, sysctl: &dyn Sysctl, plan: &Plan) -> String {
    let mut out = String::from("interfaces\n");
    for link in actual.links {
        let mac = link
            .mac
            .map(|m| {
                m.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":")
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<8} {}, {}  mtu {}  {mac}\n",
            link.name,
            if link.up { "up" } else { "down" },
            if link.carrier {
                "carrier"
            } else {
                "no carrier"
            },
            link.mtu
        ));
        for address in actual.addresses.iter().filter(|a| a.index == link.index) {
            let label = address
                .label
                .as_deref()
                .map(|l| format!("  ({l})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "           {}/{}{label}\n",
                address.addr, address.prefix_len
            ));
        }
    }
    out.push_str("routes\n");
    for route in actual.routes {
        let device = route
            .device
            .and_then(|i| actual.links.iter().find(|l| l.index == i))
            .map(|l| format!(" dev {}", l.name))
            .unwrap_or_default();
        let target = if route.prefix_len == 0 {
            "default".to_string()
        } else {
            format!("{}/{}", route.destination, route.prefix_len)
        };
        let via = route
            .gateway
            .map(|g| format!(" via {g}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {target}{via}{device}  ({})\n",
            protocol_name(route.protocol)
        ));
    }
    out.push_str("settings\n");
    for (key, _) in &wanted.sysctls {
        let value = match sysctl.read(key) {
            Ok(Some(value)) => value,
            Ok(None) => "(missing)".into(),
            Err(e) => format!("({e})"),
        };
        out.push_str(&format!("  {} = {value}\n", key.replace('/', ".")));
    }
    if plan.steps.is_empty() && plan.problems.is_empty() {
        out.push_str("matches the configuration\n");
    } else {
        out.push_str("differs from the configuration\n");
        for step in &plan.steps {
            out.push_str(&format!("! {step}\n"));
        }
        for problem in &plan.problems {
            out.push_str(&format!("! {problem}\n"));
        }
    }
    out
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        2 => "kernel".into(),
        3 => "boot".into(),
        4 => "static".into(),
        9 => "router advertisement".into(),
        16 => "dhcp".into(),
        other => format!("proto {other}"),
    }
}

#[cfg(test)]
mod tests;

/// Whether a change from `old` to `new` of the virtual servers at `changed` (positions in
/// both) can change the network: only whether one is enabled, its VIP and where the VIP lives
/// count (the VIPs the box holds without a pair). A new weight or real server does not.
pub fn concerns_network(old: &Config, new: &Config, changed: &[usize]) -> bool {
    changed.iter().any(
        |&i| match (old.virtual_servers.get(i), new.virtual_servers.get(i)) {
            (Some(old), Some(new)) => {
                old.enabled != new.enabled || old.vip != new.vip || old.device != new.device
            }
            _ => true,
        },
    )
}
