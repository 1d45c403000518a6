//! The kernel's text listing of the IPVS table, /proc/net/ip_vs: every service with its
//! destinations (address, port, forwarding method, weight, connection counts) in one read,
//! where generic netlink needs one dump per service. It is what `ipvsadm -Ln` shows of the
//! destinations and no more: no thresholds, tunnel details or counters, and a firewall-mark
//! service does not say its address family.
//!
//! Layout (the kernel's `ip_vs_info_seq_show`), after three heading lines:
//! ```text
//! TCP  C000020A:0050 wrr
//!   -> C6336401:1F90      Masq    3      0          0
//! UDP  [2001:0db8:0000:0000:0000:0000:0000:0011]:0035 rr
//! FWM  00000007 lc persistent 15000 FFFFFFFF
//!   -> [2001:0db8:0000:0000:0000:0000:0000:0006]:0000      Route   1      0          0
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Destination, DestinationEntry, Forwarding, Protocol, Stats, Tunnel};

/// How a service of the listing is named: a firewall mark carries no address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ListedKey {
    Address {
        protocol: Protocol,
        address: IpAddr,
        port: u16,
    },
    Fwmark(u32),
}

/// A service of the listing with its destinations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedService {
    pub key: ListedKey,
    pub destinations: Vec<DestinationEntry>,
}

/// Parses the whole listing. A line that is not what the kernel writes is an error naming the
/// line, so that a changed layout is noticed rather than misread.
pub fn parse(text: &str) -> Result<Vec<ListedService>, String> {
    let mut services: Vec<ListedService> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let at = || format!("/proc/net/ip_vs line {}: {line:?}", number + 1);
        if number < 3 || line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("  -> ") {
            let destination = parse_destination(rest).ok_or_else(at)?;
            let service = services
                .last_mut()
                .ok_or_else(|| format!("{}: a real server before any service", at()))?;
            service.destinations.push(destination);
        } else {
            let key = parse_service(line).ok_or_else(at)?;
            services.push(ListedService {
                key,
                destinations: Vec::new(),
            });
        }
    }
    Ok(services)
}

fn parse_service(line: &str) -> Option<ListedKey> {
    let mut words = line.split_whitespace();
    let protocol = words.next()?;
    let name = words.next()?;
    if protocol == "FWM" {
        return u32::from_str_radix(name, 16).ok().map(ListedKey::Fwmark);
    }
    let protocol = match protocol {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        _ => return None,
    };
    let (address, port) = address_port(name)?;
    Some(ListedKey::Address {
        protocol,
        address,
        port,
    })
}

fn parse_destination(rest: &str) -> Option<DestinationEntry> {
    let mut words = rest.split_whitespace();
    let (address, port) = address_port(words.next()?)?;
    let forwarding = match words.next()? {
        "Masq" => Forwarding::Masquerade,
        "Local" => Forwarding::Local,
        "Tunnel" => Forwarding::Tunnel(Tunnel::default()),
        "Route" => Forwarding::Route,
        _ => return None,
    };
    let weight: i64 = words.next()?.parse().ok()?;
    let active_conns: i64 = words.next()?.parse().ok()?;
    let inactive_conns: i64 = words.next()?.parse().ok()?;
    if words.next().is_some() {
        return None;
    }
    Some(DestinationEntry {
        destination: Destination {
            address,
            port,
            forwarding,
            weight: u32::try_from(weight).ok()?,
            upper_threshold: 0,
            lower_threshold: 0,
        },
        // The kernel's counters are signed; a transient negative count reads as 0.
        active_conns: u32::try_from(active_conns.max(0)).ok()?,
        inactive_conns: u32::try_from(inactive_conns.max(0)).ok()?,
        persistent_conns: 0,
        stats: Stats::default(),
    })
}

/// `C000020A:0050` or `[2001:0db8:...:0011]:0035`: address and port in hexadecimal, the IPv6
/// address in its full form.
fn address_port(text: &str) -> Option<(IpAddr, u16)> {
    let (address, port) = text.rsplit_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let address = match address.strip_prefix('[') {
        Some(v6) => IpAddr::V6(v6.strip_suffix(']')?.parse::<Ipv6Addr>().ok()?),
        None if address.len() == 8 => {
            IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(address, 16).ok()?))
        }
        None => return None,
    };
    Some((address, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from the 6.1 kernel under QEMU after the ipvsadm commands of the comment below.
    // ipvsadm -A -t 192.0.2.10:80 -s wrr; -a -r 198.51.100.1:8080 -m -w 3; -r 198.51.100.2 -g
    // -w 0; -r 198.51.100.3 -i --tun-type gue --tun-port 6080; -r 127.0.0.1:80 -w 2
    // ipvsadm -A -u 192.0.2.11:53 -s rr -o; -a -r 198.51.100.4:53 -m
    // ipvsadm -A -t 192.0.2.12:0 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0; -a -r
    // 198.51.100.5 -g -x 100 -y 50
    // ipvsadm -A -f 7 -s lc -p 60; -a -r 198.51.100.6 -g; ipvsadm -A -f 7 -6 -s lc -p 60 -M 64;
    // -a -r 2001:db8::6 -g
    // ipvsadm -A -t [2001:db8::10]:443 -s mh; -a -r [2001:db8::7]:443 -m -w 5
    // ipvsadm -A --sctp-service 192.0.2.13:9 -s dh; ipvsadm -A -u [2001:db8::11]:53 -s rr -o
    const CAPTURED: &str = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
SCTP  C000020D:0009 dh  
UDP  [2001:0db8:0000:0000:0000:0000:0000:0011]:0035 rr 
TCP  C000020A:0050 wrr  
  -> 7F000001:0050      Route   2      0          0         
  -> C6336403:0050      Tunnel  1      0          0         
  -> C6336402:0050      Route   0      0          0         
  -> C6336401:1F90      Masq    3      0          0         
TCP  C000020C:0000 sh  persistent 75000 FFFFFF00
  -> C6336405:0000      Route   1      0          0         
TCP  [2001:0db8:0000:0000:0000:0000:0000:0010]:01BB mh 
  -> [2001:0db8:0000:0000:0000:0000:0000:0007]:01BB      Masq    5      0          0         
UDP  C000020B:0035 rr ops  
  -> C6336404:0035      Masq    1      0          0         
FWM  00000007 lc persistent 15000 40000000
  -> [2001:0db8:0000:0000:0000:0000:0000:0006]:0000      Route   1      0          0         
FWM  00000007 lc persistent 15000 FFFFFFFF
  -> C6336406:0000      Route   1      0          0         
";

    fn v4(text: &str) -> IpAddr {
        IpAddr::V4(text.parse().unwrap())
    }

    fn v6(text: &str) -> IpAddr {
        IpAddr::V6(text.parse().unwrap())
    }

    #[test]
    fn reads_every_kind_of_service_and_destination() {
        let services = parse(CAPTURED).unwrap();
        let keys: Vec<ListedKey> = services.iter().map(|s| s.key).collect();
        assert_eq!(
            keys,
            vec![
                ListedKey::Address {
                    protocol: Protocol::Sctp,
                    address: v4("192.0.2.13"),
                    port: 9
                },
                ListedKey::Address {
                    protocol: Protocol::Udp,
                    address: v6("2001:db8::11"),
                    port: 53
                },
                ListedKey::Address {
                    protocol: Protocol::Tcp,
                    address: v4("192.0.2.10"),
                    port: 80
                },
                ListedKey::Address {
                    protocol: Protocol::Tcp,
                    address: v4("192.0.2.12"),
                    port: 0
                },
                ListedKey::Address {
                    protocol: Protocol::Tcp,
                    address: v6("2001:db8::10"),
                    port: 443
                },
                ListedKey::Address {
                    protocol: Protocol::Udp,
                    address: v4("192.0.2.11"),
                    port: 53
                },
                ListedKey::Fwmark(7),
                ListedKey::Fwmark(7),
            ]
        );
        let web = &services[2].destinations;
        let seen: Vec<(IpAddr, u16, Forwarding, u32)> = web
            .iter()
            .map(|d| {
                let d = &d.destination;
                (d.address, d.port, d.forwarding, d.weight)
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (v4("127.0.0.1"), 80, Forwarding::Route, 2),
                (
                    v4("198.51.100.3"),
                    80,
                    Forwarding::Tunnel(Tunnel::default()),
                    1
                ),
                (v4("198.51.100.2"), 80, Forwarding::Route, 0),
                (v4("198.51.100.1"), 8080, Forwarding::Masquerade, 3),
            ]
        );
        assert_eq!(
            services[6].destinations[0].destination.address,
            v6("2001:db8::6")
        );
        assert!(services[0].destinations.is_empty());
    }

    #[test]
    fn counts_are_read_and_a_negative_one_is_zero() {
        let text = "h\nh\nh\nTCP  C000020A:0050 wrr\n  -> C6336401:0050      Masq    1      12         -1\n";
        let services = parse(text).unwrap();
        let d = &services[0].destinations[0];
        assert_eq!((d.active_conns, d.inactive_conns), (12, 0));
    }

    #[test]
    fn a_line_it_does_not_know_is_an_error_naming_it() {
        for bad in [
            "h\nh\nh\nTCP  C000020A wrr\n",
            "h\nh\nh\nICMP  C000020A:0050 wrr\n",
            "h\nh\nh\nTCP  C000020A:0050 wrr\n  -> C6336401:0050      Bounce  1 0 0\n",
            "h\nh\nh\n  -> C6336401:0050      Masq    1      0          0\n",
            "h\nh\nh\nTCP  C000020A:0050 wrr\n  -> C6336401:0050      Masq    x 0 0\n",
            "h\nh\nh\nTCP  [2001:db8::zz]:0050 wrr\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.starts_with("/proc/net/ip_vs line "), "{e}");
        }
    }
}
