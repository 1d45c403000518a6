//! The part of the configuration the two nodes of a pair share: the virtual servers (with
//! their real servers and checks) and the IPVS settings. The rest is the box's own: its name,
//! console, addresses and routes, the pair section (each names the other as its peer) and the
//! admin endpoint.
//!
//! The shared part carries a stamp: a serial number that every change raises above any the
//! node has seen (its own or its peer's), and a digest of its text. A node takes its peer's
//! shared part when the peer's serial is higher; at equal serials with different contents
//! (both changed it while apart) the active node's stands, as it is the one serving.

use std::cmp::Ordering;

use ring::digest;
use serde::{Deserialize, Serialize};

use super::model::{Config, IpvsKnobs, VirtualServer};
use super::validate;

/// A version of the shared part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Raised by every change, above every serial seen.
    pub serial: u64,
    /// The first four bytes of the SHA-256 of its text (`text`).
    pub digest: u32,
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "serial {} (#{:08x})", self.serial, self.digest)
    }
}

/// The shared part as written.
#[derive(Serialize)]
struct PartRef<'a> {
    ipvs: &'a IpvsKnobs,
    #[serde(skip_serializing_if = "<[VirtualServer]>::is_empty")]
    virtual_servers: &'a [VirtualServer],
}

/// The shared part as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Part {
    #[serde(default)]
    ipvs: IpvsKnobs,
    #[serde(default)]
    virtual_servers: Vec<VirtualServer>,
}

/// The shared part of `config` as TOML (the same configuration always gives the same text).
pub fn text(config: &Config) -> Result<String, String> {
    toml::to_string(&PartRef {
        ipvs: &config.network.ipvs,
        virtual_servers: &config.virtual_servers,
    })
    .map_err(|e| format!("cannot write the shared part as TOML: {e}"))
}

/// The digest of a shared part's text.
pub fn digest(text: &str) -> u32 {
    let sum = digest::digest(&digest::SHA256, text.as_bytes());
    let bytes = sum.as_ref();
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// `local` with the shared part of `text` (a peer's) in place of its own; an error names what
/// is wrong, in the text or in the configuration it makes on this box.
pub fn merge(local: &Config, text: &str) -> Result<Config, String> {
    let part: Part = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(String::new(), |span| {
            let before = &text[..span.start.min(text.len())];
            format!(" (line {})", before.matches('\n').count() + 1)
        });
        format!(
            "the peer's shared part is not readable{at}: {}",
            e.message().trim()
        )
    })?;
    let mut merged = local.clone();
    merged.network.ipvs = part.ipvs;
    merged.virtual_servers = part.virtual_servers;
    let problems = validate(&merged);
    if problems.is_empty() {
        Ok(merged)
    } else {
        let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Err(format!(
            "the peer's shared part does not fit this box: {}",
            list.join("; ")
        ))
    }
}

/// Whether a node whose shared part is `own` takes its peer's (`peer`): a higher serial, or
/// the same serial from the active node when this one is not active. The same content is
/// never taken (only its serial is, `Stamp::aligned`).
pub fn take_peers(own: Stamp, own_active: bool, peer: Stamp, peer_active: bool) -> bool {
    if own.digest == peer.digest {
        return false;
    }
    match peer.serial.cmp(&own.serial) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => peer_active && !own_active,
    }
}

impl Stamp {
    /// With the same content as the peer's, this node's stamp takes the higher serial (so that
    /// its next change is numbered above both).
    pub fn aligned(self, peer: Stamp) -> Stamp {
        if self.digest == peer.digest && peer.serial > self.serial {
            peer
        } else {
            self
        }
    }

    /// The stamp of a shared part that now has `digest`, changed on this node, having seen
    /// `peer_serial` as the highest serial of its peer.
    pub fn changed(self, digest: u32, peer_serial: u64) -> Stamp {
        if digest == self.digest {
            return self;
        }
        Stamp {
            serial: self.serial.max(peer_serial).saturating_add(1),
            digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_toml;

    const BOX_A: &str = r#"
[node]
hostname = "lvs-a"

[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.2/24"]

[[virtual_servers]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "wlc"
forwarding = "dr"

[[virtual_servers.real_servers]]
name = "web1"
address = "192.0.2.21"
"#;

    const BOX_B: &str = r#"
[node]
hostname = "lvs-b"

[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.3/24"]
"#;

    fn config(text: &str) -> Config {
        match from_toml(text) {
            Ok(config) => config,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn the_shared_part_moves_and_the_rest_stays() {
        let a = config(BOX_A);
        let b = config(BOX_B);
        let shared = text(&a).unwrap();
        let merged = merge(&b, &shared).unwrap();
        assert_eq!(merged.virtual_servers, a.virtual_servers);
        assert_eq!(merged.network.ipvs, a.network.ipvs);
        assert_eq!(merged.node.hostname, "lvs-b");
        assert_eq!(merged.network.interfaces, b.network.interfaces);
        // The same part gives the same text, hence the same digest, on either node.
        assert_eq!(text(&merged).unwrap(), shared);
        assert_eq!(digest(&text(&merged).unwrap()), digest(&shared));
        assert_ne!(digest(&shared), digest(&text(&b).unwrap()));
    }

    #[test]
    fn a_part_that_does_not_fit_is_refused_with_the_reason() {
        let b = config(BOX_B);
        let bad = "[[virtual_servers]]\nname = \"web\"\nvip = \"192.0.2.10\"\nport = 80\n\
                   [[virtual_servers]]\nname = \"web\"\nvip = \"192.0.2.11\"\nport = 80\n";
        let err = merge(&b, bad).unwrap_err();
        assert!(err.contains("does not fit this box"), "{err}");
        assert!(err.contains("web"), "{err}");
        let err = merge(&b, "[ipvs]\nconntrack = 3\n").unwrap_err();
        assert!(err.contains("not readable (line 2)"), "{err}");
        let err = merge(&b, "hostname = \"x\"\n").unwrap_err();
        assert!(err.contains("not readable"), "{err}");
    }

    #[test]
    fn the_higher_serial_wins_and_the_active_breaks_ties() {
        let own = Stamp {
            serial: 4,
            digest: 1,
        };
        let newer = Stamp {
            serial: 5,
            digest: 2,
        };
        let rival = Stamp {
            serial: 4,
            digest: 3,
        };
        assert!(take_peers(own, true, newer, false));
        assert!(!take_peers(newer, false, own, true));
        assert!(take_peers(own, false, rival, true));
        assert!(!take_peers(own, true, rival, false));
        assert!(!take_peers(own, false, rival, false));
        assert!(!take_peers(own, true, rival, true));
        // The same content at another serial: only the serial is taken.
        let same = Stamp {
            serial: 9,
            digest: 1,
        };
        assert!(!take_peers(own, false, same, true));
        assert_eq!(own.aligned(same), same);
        assert_eq!(same.aligned(own), same);
    }

    #[test]
    fn a_change_is_numbered_above_every_serial_seen() {
        let own = Stamp {
            serial: 4,
            digest: 1,
        };
        assert_eq!(own.changed(1, 9), own);
        assert_eq!(
            own.changed(2, 9),
            Stamp {
                serial: 10,
                digest: 2
            }
        );
        assert_eq!(
            own.changed(2, 0),
            Stamp {
                serial: 5,
                digest: 2
            }
        );
    }
}
