//! A recording fake of the kernel's IPVS table: it keeps services, destinations, timeouts and
//! daemons in memory, refuses what the kernel refuses (a destination of a missing service, an
//! unknown scheduler, a lower threshold above the upper one, a mixed-family destination that is
//! not tunnelled) with the kernel's errno, and records every change, in order, as text.

use std::net::IpAddr;

use super::{
    Destination, DestinationEntry, Family, Forwarding, Info, Ipvs, IpvsError, Service,
    ServiceEntry, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts,
};

/// The schedulers a stock kernel has as modules (ip_vs_<name>.ko).
const SCHEDULERS: [&str; 14] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "mh", "fo", "ovf", "twos",
];

pub struct FakeIpvs {
    /// Each service with its destinations, in the order they were added.
    pub table: Vec<(ServiceEntry, Vec<DestinationEntry>)>,
    pub timeouts: Timeouts,
    pub daemons: Vec<SyncDaemon>,
    /// Every change made: "add service tcp 192.0.2.100:80 wlc", ...
    pub changes: Vec<String>,
    /// Injected refusals: a change whose operation ("add destination 198.51.100.11 port 80
    /// to tcp 192.0.2.100:80") contains the text is refused with the errno, as the kernel
    /// refuses a direct-routing real server it has no route to.
    pub refuse: Vec<(String, i32)>,
}

impl Default for FakeIpvs {
    /// An empty table with the kernel's default timeouts (15 min, 2 min, 5 min).
    fn default() -> FakeIpvs {
        FakeIpvs {
            table: Vec::new(),
            timeouts: Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            },
            daemons: Vec::new(),
            changes: Vec::new(),
            refuse: Vec::new(),
        }
    }
}

fn refused(operation: String, errno: i32) -> IpvsError {
    let message = std::io::Error::from_raw_os_error(errno).to_string();
    IpvsError::new(operation, Some(errno), message)
}

impl FakeIpvs {
    /// The injected refusal of `operation`, if any.
    fn injected(&self, operation: &str) -> Result<(), IpvsError> {
        match self
            .refuse
            .iter()
            .find(|(text, _)| operation.contains(text))
        {
            Some((_, errno)) => Err(refused(operation.to_string(), *errno)),
            None => Ok(()),
        }
    }

    fn position(&self, key: &ServiceKey) -> Option<usize> {
        self.table.iter().position(|(e, _)| e.service.key == *key)
    }

    /// The kernel's checks of a full service (ip_vs_add_service, ip_vs_edit_service).
    fn check_service(service: &Service, operation: &str) -> Result<(), IpvsError> {
        if !SCHEDULERS.contains(&service.scheduler.as_str()) {
            return Err(refused(operation.to_string(), libc::ENOENT));
        }
        let family = service.key.family();
        let netmask_ok = match family {
            Family::V4 => service.netmask <= 32,
            Family::V6 => (1..=128).contains(&service.netmask),
        };
        if !netmask_ok || matches!(service.key, ServiceKey::Fwmark { mark: 0, .. }) {
            return Err(refused(operation.to_string(), libc::EINVAL));
        }
        Ok(())
    }

    /// The kernel's checks of a full destination (ip_vs_genl_set_cmd, ip_vs_add_dest).
    fn check_destination(
        service: &ServiceKey,
        destination: &Destination,
        operation: &str,
    ) -> Result<(), IpvsError> {
        let mixed = Family::of(destination.address) != service.family();
        let tunnelled = matches!(destination.forwarding, Forwarding::Tunnel(_));
        // The kernel's weight is an int: above i32::MAX it reads as negative.
        if (mixed && !tunnelled) || i32::try_from(destination.weight).is_err() {
            return Err(refused(operation.to_string(), libc::EINVAL));
        }
        if destination.lower_threshold > destination.upper_threshold {
            return Err(refused(operation.to_string(), libc::ERANGE));
        }
        Ok(())
    }

    fn service_index(&self, key: &ServiceKey, operation: &str) -> Result<usize, IpvsError> {
        self.position(key)
            .ok_or_else(|| refused(operation.to_string(), libc::ESRCH))
    }
}

impl Ipvs for FakeIpvs {
    fn info(&mut self) -> Result<Info, IpvsError> {
        Ok(Info {
            version: 0x010201,
            connection_table_size: 4096,
        })
    }

    fn services(&mut self) -> Result<Vec<ServiceEntry>, IpvsError> {
        Ok(self.table.iter().map(|(e, _)| e.clone()).collect())
    }

    fn destinations(&mut self, service: &ServiceKey) -> Result<Vec<DestinationEntry>, IpvsError> {
        let index = self.service_index(service, &format!("list destinations of {service}"))?;
        Ok(self
            .table
            .get(index)
            .map(|(_, d)| d.clone())
            .unwrap_or_default())
    }

    fn add_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let operation = format!("add service {}", service.key);
        self.injected(&operation)?;
        Self::check_service(service, &operation)?;
        if self.position(&service.key).is_none() {
            let entry = ServiceEntry {
                service: service.clone(),
                stats: Stats::default(),
            };
            self.table.push((entry, Vec::new()));
            self.changes
                .push(format!("{operation} {}", service.scheduler));
        }
        Ok(())
    }

    fn edit_service(&mut self, service: &Service) -> Result<(), IpvsError> {
        let operation = format!("edit service {}", service.key);
        self.injected(&operation)?;
        let index = self.service_index(&service.key, &operation)?;
        Self::check_service(service, &operation)?;
        if let Some((entry, _)) = self.table.get_mut(index) {
            entry.service = service.clone();
        }
        self.changes
            .push(format!("{operation} {}", service.scheduler));
        Ok(())
    }

    fn remove_service(&mut self, service: &ServiceKey) -> Result<(), IpvsError> {
        self.injected(&format!("remove service {service}"))?;
        if let Some(index) = self.position(service) {
            self.table.remove(index);
            self.changes.push(format!("remove service {service}"));
        }
        Ok(())
    }

    fn add_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), IpvsError> {
        let operation = format!(
            "add destination {} port {} to {service}",
            destination.address, destination.port
        );
        self.injected(&operation)?;
        let index = self.service_index(service, &operation)?;
        Self::check_destination(service, destination, &operation)?;
        let Some((_, destinations)) = self.table.get_mut(index) else {
            return Ok(());
        };
        let known = destinations.iter().any(|d| {
            d.destination.address == destination.address && d.destination.port == destination.port
        });
        if !known {
            destinations.push(DestinationEntry {
                destination: destination.clone(),
                active_conns: 0,
                inactive_conns: 0,
                persistent_conns: 0,
                stats: Stats::default(),
            });
            self.changes
                .push(format!("{operation} weight {}", destination.weight));
        }
        Ok(())
    }

    fn edit_destination(
        &mut self,
        service: &ServiceKey,
        destination: &Destination,
    ) -> Result<(), IpvsError> {
        let operation = format!(
            "edit destination {} port {} of {service}",
            destination.address, destination.port
        );
        self.injected(&operation)?;
        let index = self.service_index(service, &operation)?;
        Self::check_destination(service, destination, &operation)?;
        let entry = self.table.get_mut(index).and_then(|(_, destinations)| {
            destinations.iter_mut().find(|d| {
                d.destination.address == destination.address
                    && d.destination.port == destination.port
            })
        });
        let Some(entry) = entry else {
            return Err(refused(operation, libc::ENOENT));
        };
        entry.destination = destination.clone();
        self.changes
            .push(format!("{operation} weight {}", destination.weight));
        Ok(())
    }

    fn remove_destination(
        &mut self,
        service: &ServiceKey,
        address: IpAddr,
        port: u16,
    ) -> Result<(), IpvsError> {
        self.injected(&format!(
            "remove destination {address} port {port} from {service}"
        ))?;
        let Some(index) = self.position(service) else {
            return Ok(());
        };
        if let Some((_, destinations)) = self.table.get_mut(index) {
            let before = destinations.len();
            destinations
                .retain(|d| !(d.destination.address == address && d.destination.port == port));
            if destinations.len() != before {
                self.changes.push(format!(
                    "remove destination {address} port {port} from {service}"
                ));
            }
        }
        Ok(())
    }

    fn zero(&mut self, service: Option<&ServiceKey>) -> Result<(), IpvsError> {
        let zero = |(entry, destinations): &mut (ServiceEntry, Vec<DestinationEntry>)| {
            entry.stats = Stats::default();
            for destination in destinations {
                destination.stats = Stats::default();
            }
        };
        match service {
            Some(key) => {
                let operation = format!("zero the counters of {key}");
                let index = self.service_index(key, &operation)?;
                if let Some(row) = self.table.get_mut(index) {
                    zero(row);
                }
                self.changes.push(operation);
            }
            None => {
                self.table.iter_mut().for_each(zero);
                self.changes.push("zero all counters".to_string());
            }
        }
        Ok(())
    }

    fn timeouts(&mut self) -> Result<Timeouts, IpvsError> {
        Ok(self.timeouts)
    }

    fn set_timeouts(&mut self, timeouts: &Timeouts) -> Result<(), IpvsError> {
        self.injected("set timeouts")?;
        // As ip_vs_set_timeout: 0 leaves a timeout as it is.
        let keep = |new: u32, old: u32| if new == 0 { old } else { new };
        self.timeouts = Timeouts {
            tcp: keep(timeouts.tcp, self.timeouts.tcp),
            tcp_fin: keep(timeouts.tcp_fin, self.timeouts.tcp_fin),
            udp: keep(timeouts.udp, self.timeouts.udp),
        };
        self.changes.push(format!(
            "timeouts {} {} {}",
            self.timeouts.tcp, self.timeouts.tcp_fin, self.timeouts.udp
        ));
        Ok(())
    }

    fn daemons(&mut self) -> Result<Vec<SyncDaemon>, IpvsError> {
        Ok(self.daemons.clone())
    }

    fn start_daemon(&mut self, daemon: &SyncDaemon) -> Result<(), IpvsError> {
        let operation = format!(
            "start the {:?} sync daemon on {}",
            daemon.state, daemon.interface
        );
        let name_ok = !daemon.interface.is_empty() && daemon.interface.len() < 16;
        if !name_ok || daemon.interface.contains('\0') {
            return Err(refused(operation, libc::EINVAL));
        }
        // A daemon of that role already runs: EEXIST, which is not an error.
        if !self.daemons.iter().any(|d| d.state == daemon.state) {
            self.daemons.push(daemon.clone());
            self.changes.push(operation);
        }
        Ok(())
    }

    fn stop_daemon(&mut self, state: SyncState) -> Result<(), IpvsError> {
        let before = self.daemons.len();
        self.daemons.retain(|d| d.state != state);
        if self.daemons.len() != before {
            self.changes.push(format!("stop the {state:?} sync daemon"));
        }
        Ok(())
    }
}

mod tests {
    use super::*;
    use crate::sys::ipvs::{Protocol, Tunnel};

    fn web() -> ServiceKey {
        ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: "192.0.2.100".parse().unwrap(),
            port: 80,
        }
    }

    fn real(address: &str, weight: u32) -> Destination {
        Destination {
            address: address.parse().unwrap(),
            port: 80,
            forwarding: Forwarding::Route,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
        }
    }

    #[test]
    fn adding_twice_and_removing_what_is_gone_are_not_errors() {
        let mut ipvs = FakeIpvs::default();
        let service = Service::new(web(), "wlc");
        ipvs.add_service(&service).unwrap();
        ipvs.add_service(&service).unwrap();
        ipvs.add_destination(&web(), &real("198.51.100.11", 3))
            .unwrap();
        ipvs.add_destination(&web(), &real("198.51.100.11", 3))
            .unwrap();
        ipvs.remove_destination(&web(), "198.51.100.12".parse().unwrap(), 80)
            .unwrap();
        ipvs.remove_destination(&web(), "198.51.100.11".parse().unwrap(), 80)
            .unwrap();
        ipvs.remove_service(&web()).unwrap();
        ipvs.remove_service(&web()).unwrap();
        // Removing a destination of a service that is gone: the kernel's ESRCH, also fine.
        ipvs.remove_destination(&web(), "198.51.100.11".parse().unwrap(), 80)
            .unwrap();
        assert_eq!(
            ipvs.changes,
            [
                "add service tcp 192.0.2.100:80 wlc",
                "add destination 198.51.100.11 port 80 to tcp 192.0.2.100:80 weight 3",
                "remove destination 198.51.100.11 port 80 from tcp 192.0.2.100:80",
                "remove service tcp 192.0.2.100:80",
            ]
        );
        assert!(ipvs.services().unwrap().is_empty());
    }

    #[test]
    fn refuses_what_the_kernel_refuses() {
        let mut ipvs = FakeIpvs::default();
        let errno = |r: Result<(), IpvsError>| r.unwrap_err().errno;
        // A destination of a missing service.
        assert_eq!(
            errno(ipvs.add_destination(&web(), &real("198.51.100.11", 1))),
            Some(libc::ESRCH)
        );
        assert_eq!(
            ipvs.destinations(&web()).unwrap_err().errno,
            Some(libc::ESRCH)
        );
        // An unknown scheduler, on add and on edit.
        assert_eq!(
            errno(ipvs.add_service(&Service::new(web(), "fastest"))),
            Some(libc::ENOENT)
        );
        assert_eq!(
            errno(ipvs.edit_service(&Service::new(web(), "rr"))),
            Some(libc::ESRCH)
        );
        ipvs.add_service(&Service::new(web(), "rr")).unwrap();
        assert_eq!(
            errno(ipvs.edit_service(&Service::new(web(), "nope"))),
            Some(libc::ENOENT)
        );
        // An IPv6 service's netmask is a prefix length of 1 to 128.
        let mut v6 = Service::new(
            ServiceKey::Fwmark {
                family: Family::V6,
                mark: 7,
            },
            "rr",
        );
        v6.netmask = 0;
        assert_eq!(errno(ipvs.add_service(&v6)), Some(libc::EINVAL));
        // Thresholds upside down, a weight the kernel reads as negative, an IPv6 real server
        // of an IPv4 service by direct routing, editing a destination that is not there.
        let mut upside_down = real("198.51.100.11", 1);
        upside_down.upper_threshold = 10;
        upside_down.lower_threshold = 20;
        assert_eq!(
            errno(ipvs.add_destination(&web(), &upside_down)),
            Some(libc::ERANGE)
        );
        assert_eq!(
            errno(ipvs.add_destination(&web(), &real("198.51.100.11", 1 << 31))),
            Some(libc::EINVAL)
        );
        assert_eq!(
            errno(ipvs.add_destination(&web(), &real("2001:db8::11", 1))),
            Some(libc::EINVAL)
        );
        assert_eq!(
            errno(ipvs.edit_destination(&web(), &real("198.51.100.11", 1))),
            Some(libc::ENOENT)
        );
        // Zeroing the counters of a service that is not there.
        let absent = ServiceKey::Fwmark {
            family: Family::V4,
            mark: 9,
        };
        assert_eq!(errno(ipvs.zero(Some(&absent))), Some(libc::ESRCH));
        // ...but a tunnelled one may be of the other family.
        let mut tunnelled = real("2001:db8::11", 1);
        tunnelled.forwarding = Forwarding::Tunnel(Tunnel::default());
        ipvs.add_destination(&web(), &tunnelled).unwrap();
        assert_eq!(ipvs.changes.len(), 2);
    }

    #[test]
    fn edits_zeroes_timeouts_and_daemons() {
        let mut ipvs = FakeIpvs::default();
        ipvs.add_service(&Service::new(web(), "wlc")).unwrap();
        ipvs.add_destination(&web(), &real("198.51.100.11", 3))
            .unwrap();
        // Draining is weight 0.
        ipvs.edit_destination(&web(), &real("198.51.100.11", 0))
            .unwrap();
        assert_eq!(ipvs.destinations(&web()).unwrap()[0].destination.weight, 0);

        ipvs.table[0].0.stats.conns = 5;
        ipvs.table[0].1[0].stats.inbytes = 9;
        ipvs.zero(None).unwrap();
        assert_eq!(ipvs.services().unwrap()[0].stats, Stats::default());
        assert_eq!(
            ipvs.destinations(&web()).unwrap()[0].stats,
            Stats::default()
        );

        ipvs.set_timeouts(&Timeouts {
            tcp: 0,
            tcp_fin: 30,
            udp: 0,
        })
        .unwrap();
        assert_eq!(
            ipvs.timeouts().unwrap(),
            Timeouts {
                tcp: 900,
                tcp_fin: 30,
                udp: 300
            }
        );

        let master = SyncDaemon {
            state: SyncState::Master,
            interface: "eth1".into(),
            sync_id: 1,
        };
        ipvs.start_daemon(&master).unwrap();
        ipvs.start_daemon(&master).unwrap();
        assert_eq!(ipvs.daemons().unwrap(), std::slice::from_ref(&master));
        let long = SyncDaemon {
            interface: "a-very-long-ifname".into(),
            ..master
        };
        assert_eq!(
            ipvs.start_daemon(&long).unwrap_err().errno,
            Some(libc::EINVAL)
        );
        ipvs.stop_daemon(SyncState::Master).unwrap();
        ipvs.stop_daemon(SyncState::Master).unwrap();
        ipvs.stop_daemon(SyncState::Backup).unwrap();
        assert!(ipvs.daemons().unwrap().is_empty());
        assert_eq!(
            ipvs.changes[2..],
            [
                "edit destination 198.51.100.11 port 80 of tcp 192.0.2.100:80 weight 0",
                "zero all counters",
                "timeouts 900 30 300",
                "start the Master sync daemon on eth1",
                "stop the Master sync daemon",
            ]
        );
    }
}
