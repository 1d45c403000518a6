//! rtnetlink: links, addresses, routes and neighbours of the kernel, behind a trait so that the
//! network reconcile logic is tested with a recording fake. The kernel implementation (on neli)
//! sets ACK on every change, always drains dumps, and keeps the errno of a refusal.

use std::fmt;
use std::net::IpAddr;

/// A network interface as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The carrier is there (IFF_LOWER_UP).
    pub carrier: bool,
    /// The hardware address of an Ethernet-like link.
    pub mac: Option<[u8; 6]>,
}

/// An address on a link.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// The IPv4 label (`eth0:1`), when it differs from the link's name.
    pub label: Option<String>,
}

/// A route of the main table. `prefix_len` 0 is a default route.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    /// The output interface's index.
    pub device: Option<u32>,
    /// Who installed it (RTPROT_*: 2 kernel, 3 boot, 4 static...).
    pub protocol: u8,
}

/// A neighbour (ARP or NDP) entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub index: u32,
    pub addr: IpAddr,
    pub mac: Option<[u8; 6]>,
    /// NUD_* state bits.
    pub state: u16,
}

/// A change of a link's state, from the kernel's multicast group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkEvent {
    pub index: u32,
    pub name: String,
    pub up: bool,
    pub carrier: bool,
    /// The link went away (RTM_DELLINK).
    pub removed: bool,
}

/// A refused or failed rtnetlink operation, with what it was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtnlError {
    /// What was attempted: "add 192.0.2.1/24 to eth0".
    pub operation: String,
    /// The kernel's errno, when it answered with one.
    pub errno: Option<i32>,
    pub message: String,
}

impl RtnlError {
    pub fn new(
        operation: impl Into<String>,
        errno: Option<i32>,
        message: impl Into<String>,
    ) -> RtnlError {
        RtnlError {
            operation: operation.into(),
            errno,
            message: message.into(),
        }
    }
}

impl fmt::Display for RtnlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.operation, self.message)
    }
}

impl std::error::Error for RtnlError {}

/// What the network code asks of the kernel. Adding what exists (EEXIST) and deleting what is
/// gone (ENOENT, EADDRNOTAVAIL, ESRCH) are not errors.
pub trait Rtnl {
    fn links(&mut self) -> Result<Vec<Link>, RtnlError>;
    fn set_up(&mut self, index: u32, up: bool) -> Result<(), RtnlError>;
    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), RtnlError>;
    fn addresses(&mut self) -> Result<Vec<Address>, RtnlError>;
    fn add_address(&mut self, address: &Address) -> Result<(), RtnlError>;
    fn remove_address(&mut self, address: &Address) -> Result<(), RtnlError>;
    /// The routes of the main table, both families.
    fn routes(&mut self) -> Result<Vec<Route>, RtnlError>;
    fn add_route(&mut self, route: &Route) -> Result<(), RtnlError>;
    fn remove_route(&mut self, route: &Route) -> Result<(), RtnlError>;
    fn neighbours(&mut self) -> Result<Vec<Neighbour>, RtnlError>;
    /// Forgets the neighbour entry of `addr` on link `index`; none there is fine.
    fn remove_neighbour(&mut self, index: u32, addr: IpAddr) -> Result<(), RtnlError>;
}

/// A recording fake with the kernel's state in memory: it refuses what the kernel would (an
/// unknown link index, an MTU out of range, a route through a link that is missing) and
/// records every change, in order, as text.
#[cfg(test)]
#[derive(Default)]
pub struct FakeRtnl {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    /// Every change made: "up eth0", "mtu eth0 9000", "add 192.0.2.1/24 eth0", ...
    pub changes: Vec<String>,
    /// The largest MTU the links' driver takes (65535 when unset).
    pub max_mtu: Option<u32>,
    /// How many route dumps fail from now on (EINVAL, as a dump the kernel cut short).
    pub failing_dumps: u32,
}

#[cfg(test)]
impl FakeRtnl {
    /// A fake with these links (index from 1, down, MTU 1500).
    pub fn with_links(names: &[&str]) -> FakeRtnl {
        let links = names
            .iter()
            .enumerate()
            .map(|(i, name)| Link {
                index: i as u32 + 1,
                name: name.to_string(),
                mtu: 1500,
                up: false,
                carrier: true,
                mac: Some([0x52, 0x54, 0, 0, 0, i as u8 + 1]),
            })
            .collect();
        FakeRtnl {
            links,
            ..FakeRtnl::default()
        }
    }

    fn name(&self, index: u32, operation: &str) -> Result<String, RtnlError> {
        self.links
            .iter()
            .find(|l| l.index == index)
            .map(|l| l.name.clone())
            .ok_or_else(|| RtnlError::new(operation, Some(19), "No such device"))
    }
}

#[cfg(test)]
impl Rtnl for FakeRtnl {
    fn links(&mut self) -> Result<Vec<Link>, RtnlError> {
        Ok(self.links.clone())
    }

    fn set_up(&mut self, index: u32, up: bool) -> Result<(), RtnlError> {
        let name = self.name(index, "set link state")?;
        if let Some(link) = self.links.iter_mut().find(|l| l.index == index) {
            link.up = up;
        }
        self.changes
            .push(format!("{} {name}", if up { "up" } else { "down" }));
        Ok(())
    }

    fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<(), RtnlError> {
        let name = self.name(index, "set mtu")?;
        if !(68..=self.max_mtu.unwrap_or(65535)).contains(&mtu) {
            return Err(RtnlError::new(
                format!("set the MTU of {name} to {mtu}"),
                Some(22),
                "Invalid argument",
            ));
        }
        if let Some(link) = self.links.iter_mut().find(|l| l.index == index) {
            link.mtu = mtu;
        }
        self.changes.push(format!("mtu {name} {mtu}"));
        Ok(())
    }

    fn addresses(&mut self) -> Result<Vec<Address>, RtnlError> {
        Ok(self.addresses.clone())
    }

    fn add_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let name = self.name(address.index, "add address")?;
        if !self.addresses.contains(address) {
            self.addresses.push(address.clone());
            self.changes.push(format!(
                "add {}/{} {}",
                address.addr,
                address.prefix_len,
                address.label.as_deref().unwrap_or(&name)
            ));
        }
        Ok(())
    }

    fn remove_address(&mut self, address: &Address) -> Result<(), RtnlError> {
        let name = self.name(address.index, "remove address")?;
        let before = self.addresses.len();
        self.addresses
            .retain(|a| !(a.index == address.index && a.addr == address.addr));
        if self.addresses.len() != before {
            self.changes.push(format!(
                "del {}/{} {name}",
                address.addr, address.prefix_len
            ));
        }
        Ok(())
    }

    fn routes(&mut self) -> Result<Vec<Route>, RtnlError> {
        if self.failing_dumps > 0 {
            self.failing_dumps -= 1;
            return Err(RtnlError::new("list routes", Some(22), "Invalid argument"));
        }
        Ok(self.routes.clone())
    }

    fn add_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        if let Some(index) = route.device {
            self.name(index, "add route")?;
        }
        if !self.routes.contains(route) {
            self.routes.push(route.clone());
            self.changes.push(format!(
                "route add {}/{} via {:?}",
                route.destination, route.prefix_len, route.gateway
            ));
        }
        Ok(())
    }

    fn remove_route(&mut self, route: &Route) -> Result<(), RtnlError> {
        let before = self.routes.len();
        self.routes.retain(|r| r != route);
        if self.routes.len() != before {
            self.changes.push(format!(
                "route del {}/{} via {:?}",
                route.destination, route.prefix_len, route.gateway
            ));
        }
        Ok(())
    }

    fn neighbours(&mut self) -> Result<Vec<Neighbour>, RtnlError> {
        Ok(self.neighbours.clone())
    }

    fn remove_neighbour(&mut self, index: u32, addr: IpAddr) -> Result<(), RtnlError> {
        let name = self.name(index, "remove neighbour")?;
        let before = self.neighbours.len();
        self.neighbours
            .retain(|n| !(n.index == index && n.addr == addr));
        if self.neighbours.len() != before {
            self.changes.push(format!("neigh del {addr} {name}"));
        }
        Ok(())
    }
}

mod kernel;
pub use kernel::{KernelRtnl, LinkMonitor};
