//! Virtual IPs for the pair: put a VIP on its device (with an IPv4 label such as `eth0:1`, as
//! Piranha users know them) or take it off. Announcing it is `sys::announce`'s.

use std::net::IpAddr;

use crate::sys::rtnl::{Address, Rtnl};

/// A VIP's place: the link, and the label when the device names one (`eth0:1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub link: String,
    pub label: Option<String>,
}

/// Reads `eth0` or `eth0:1`.
pub fn placement(device: &str) -> Result<Placement, String> {
    let (link, label) = match device.split_once(':') {
        Some((link, tag)) if !link.is_empty() && !tag.is_empty() => {
            (link.to_string(), Some(device.to_string()))
        }
        Some(_) => return Err(format!("'{device}' is not a device like eth0 or eth0:1")),
        None => (device.to_string(), None),
    };
    // IFNAMSIZ is 16 with the NUL; a label is limited the same way.
    if link.is_empty() || device.len() > 15 {
        return Err(format!("'{device}' is not a device like eth0 or eth0:1"));
    }
    Ok(Placement { link, label })
}

/// The VIP as an address of its link: a host address (/32 or /128).
fn address(rtnl: &mut dyn Rtnl, vip: IpAddr, device: &str) -> Result<Address, String> {
    let place = placement(device)?;
    let links = rtnl.links().map_err(|e| e.to_string())?;
    let link = links
        .iter()
        .find(|l| l.name == place.link)
        .ok_or_else(|| format!("VIP {vip}: interface {} does not exist", place.link))?;
    Ok(Address {
        index: link.index,
        addr: vip,
        prefix_len: if vip.is_ipv4() { 32 } else { 128 },
        // Labels are an IPv4 notion.
        label: place.label.filter(|_| vip.is_ipv4()),
    })
}

/// Puts `vip` on `device`; already there is fine.
pub fn add(rtnl: &mut dyn Rtnl, vip: IpAddr, device: &str) -> Result<(), String> {
    let address = address(rtnl, vip, device)?;
    rtnl.add_address(&address).map_err(|e| e.to_string())
}

/// Takes `vip` off `device`; already gone is fine.
pub fn remove(rtnl: &mut dyn Rtnl, vip: IpAddr, device: &str) -> Result<(), String> {
    let address = address(rtnl, vip, device)?;
    // A neighbour entry for the VIP left from an earlier spell as standby (the peer's MAC)
    // would forward what clients still send here straight to the peer before it holds the
    // VIP, and the peer, forwarding it on, loses it. Without the entry, what comes in waits
    // here until the peer announces the VIP (its gratuitous ARP resolves the pending entry).
    // Forgotten before the address goes, while the VIP is local and nothing uses or renews
    // the entry; never after: the entry made then holds the first packets waiting, and
    // forgetting it would drop them.
    rtnl.remove_neighbour(address.index, vip)
        .map_err(|e| e.to_string())?;
    rtnl.remove_address(&address).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::rtnl::FakeRtnl;

    #[test]
    fn devices_name_a_link_and_maybe_a_label() {
        assert_eq!(
            placement("eth0:1"),
            Ok(Placement {
                link: "eth0".into(),
                label: Some("eth0:1".into())
            })
        );
        assert_eq!(
            placement("eth1"),
            Ok(Placement {
                link: "eth1".into(),
                label: None
            })
        );
        assert!(placement(":1").is_err());
        assert!(placement("eth0:").is_err());
        assert!(placement("averyveryverylongname:1").is_err());
    }

    #[test]
    fn a_vip_goes_on_and_off_with_its_label() {
        let mut rtnl = FakeRtnl::with_links(&["lo", "eth0"]);
        add(&mut rtnl, "192.0.2.100".parse().unwrap(), "eth0:1").unwrap();
        add(&mut rtnl, "192.0.2.100".parse().unwrap(), "eth0:1").unwrap();
        add(&mut rtnl, "2001:db8::100".parse().unwrap(), "eth0:1").unwrap();
        assert_eq!(
            rtnl.addresses,
            vec![
                Address {
                    index: 2,
                    addr: "192.0.2.100".parse().unwrap(),
                    prefix_len: 32,
                    label: Some("eth0:1".into()),
                },
                Address {
                    index: 2,
                    addr: "2001:db8::100".parse().unwrap(),
                    prefix_len: 128,
                    label: None,
                },
            ]
        );
        remove(&mut rtnl, "192.0.2.100".parse().unwrap(), "eth0:1").unwrap();
        remove(&mut rtnl, "192.0.2.100".parse().unwrap(), "eth0:1").unwrap();
        assert_eq!(rtnl.addresses.len(), 1);
        assert_eq!(
            rtnl.changes,
            vec![
                "add 192.0.2.100/32 eth0:1",
                "add 2001:db8::100/128 eth0",
                "del 192.0.2.100/32 eth0"
            ]
        );
        let err = add(&mut rtnl, "192.0.2.101".parse().unwrap(), "eth9").unwrap_err();
        assert_eq!(err, "VIP 192.0.2.101: interface eth9 does not exist");
    }
}
