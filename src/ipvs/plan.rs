//! The changes that make the kernel's IPVS table equal the desired one, and only those.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::Table;
use crate::sys::ipvs::{Change, Destination, DestinationEntry, Service, ServiceKey, TableEntry};

/// What a round will do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// In the order they must be applied: services added or edited, then their real servers
    /// added, edited and removed, then the services removed.
    pub changes: Vec<Change>,
    /// Services in the kernel that are neither desired nor the director's: left alone.
    pub foreign: Vec<ServiceKey>,
}

/// Above this many real servers a service's are looked up through a hash map.
const LINEAR_LOOKUP: usize = 16;

/// The changes from `actual` (the kernel's table, or the table applied last) to `desired`.
/// `owned` are the services the director created: those no longer desired are removed; the
/// others are foreign and left alone, unless `owns_table`, when every service not desired is
/// removed. A service whose scheduler, flags, timeout or netmask differ is edited in place and
/// a real server whose weight, forwarding or thresholds differ likewise: connections are never
/// cut by a remove and add. Never a flush.
pub fn plan(
    desired: &Table,
    actual: &[TableEntry],
    owned: &HashSet<ServiceKey>,
    owns_table: bool,
) -> Plan {
    // The kernel lists services in its hash order, an incremental round the table applied
    // last in configuration order: try the same position first, so that a round against the
    // last table hashes nothing.
    let mut index: Option<HashMap<ServiceKey, usize>> = None;
    let mut matched = vec![false; actual.len()];
    let mut service_changes = Vec::new();
    let mut destination_changes = Vec::new();
    for (position, wanted) in desired.services.iter().enumerate() {
        let key = wanted.service.key;
        let found = match actual.get(position) {
            Some((entry, _)) if entry.service.key == key => Some(position),
            _ => index
                .get_or_insert_with(|| {
                    actual
                        .iter()
                        .enumerate()
                        .map(|(i, (entry, _))| (entry.service.key, i))
                        .collect()
                })
                .get(&key)
                .copied(),
        };
        let Some((found, (current, present))) =
            found.and_then(|i| actual.get(i).map(|row| (i, row)))
        else {
            service_changes.push(Change::AddService(wanted.service.clone()));
            destination_changes.extend(
                wanted
                    .destinations
                    .iter()
                    .map(|d| Change::AddDestination(key, d.clone())),
            );
            continue;
        };
        if let Some(seen) = matched.get_mut(found) {
            *seen = true;
        }
        if !same_service(&current.service, &wanted.service) {
            service_changes.push(Change::EditService(wanted.service.clone()));
        }
        destinations(
            &key,
            &wanted.destinations,
            present,
            &mut destination_changes,
        );
    }

    let mut removals = Vec::new();
    let mut foreign = Vec::new();
    for ((entry, _), desired_here) in actual.iter().zip(&matched) {
        if *desired_here {
            continue;
        }
        let key = entry.service.key;
        if owns_table || owned.contains(&key) {
            removals.push(Change::RemoveService(key));
        } else {
            foreign.push(key);
        }
    }

    let mut changes = service_changes;
    changes.append(&mut destination_changes);
    changes.append(&mut removals);
    Plan { changes, foreign }
}

/// Ignores the kernel's HASHED bit, which it adds itself.
fn same_service(current: &Service, wanted: &Service) -> bool {
    current.scheduler == wanted.scheduler
        && current.flags & !Service::HASHED == wanted.flags & !Service::HASHED
        && current.timeout == wanted.timeout
        && current.netmask == wanted.netmask
}

fn same_destination(current: &Destination, wanted: &Destination) -> bool {
    current.forwarding == wanted.forwarding
        && current.weight == wanted.weight
        && current.upper_threshold == wanted.upper_threshold
        && current.lower_threshold == wanted.lower_threshold
}

/// The real servers of one service: added first, so that the service never runs short while
/// one replaces another; then edited; then removed.
fn destinations(
    key: &ServiceKey,
    wanted: &[Destination],
    present: &[DestinationEntry],
    changes: &mut Vec<Change>,
) {
    let present_map: Option<HashMap<(IpAddr, u16), &Destination>> = (present.len() > LINEAR_LOOKUP)
        .then(|| {
            present
                .iter()
                .map(|d| ((d.destination.address, d.destination.port), &d.destination))
                .collect()
        });
    let find_present = |address: IpAddr, port: u16| match &present_map {
        Some(map) => map.get(&(address, port)).copied(),
        None => present
            .iter()
            .map(|d| &d.destination)
            .find(|d| d.address == address && d.port == port),
    };
    let mut edits = Vec::new();
    for destination in wanted {
        match find_present(destination.address, destination.port) {
            None => changes.push(Change::AddDestination(*key, destination.clone())),
            Some(current) if !same_destination(current, destination) => {
                edits.push(Change::EditDestination(*key, destination.clone()));
            }
            Some(_) => {}
        }
    }
    changes.append(&mut edits);

    let wanted_set: Option<HashSet<(IpAddr, u16)>> = (wanted.len() > LINEAR_LOOKUP)
        .then(|| wanted.iter().map(|d| (d.address, d.port)).collect());
    for current in present.iter().map(|d| &d.destination) {
        let still_wanted = match &wanted_set {
            Some(set) => set.contains(&(current.address, current.port)),
            None => wanted
                .iter()
                .any(|d| d.address == current.address && d.port == current.port),
        };
        if !still_wanted {
            changes.push(Change::RemoveDestination {
                service: *key,
                address: current.address,
                port: current.port,
            });
        }
    }
}
