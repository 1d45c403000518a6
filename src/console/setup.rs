//! The first-boot dialogue: the questions, each answer checked as it is given (with the reason
//! when it is refused), the summary, and the configuration it makes.

use std::net::IpAddr;

use crate::config::types::Prefix;

/// What the dialogue asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers {
    pub hostname: String,
    pub eth0: Option<Prefix>,
    pub gateway: Option<IpAddr>,
    pub eth1: Option<Prefix>,
    pub peer: Option<IpAddr>,
    pub key: String,
    pub role: String,
    /// The password's hash (the password itself is never kept).
    pub password_hash: String,
    pub allowed: Vec<Prefix>,
}

pub fn hostname(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() {
        return Err("a name is needed (letters, digits and '-', like lvs-a)".into());
    }
    if name.len() > 63 {
        return Err(format!("{} characters: at most 63", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "'{c}' is not allowed: only letters, digits and '-'"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("a name neither starts nor ends with '-'".into());
    }
    Ok(name.to_string())
}

/// An interface address with its prefix length, for a host (not the network or broadcast
/// address of an IPv4 network).
pub fn interface_address(text: &str) -> Result<Prefix, String> {
    let prefix: Prefix = text.trim().parse()?;
    if let IpAddr::V4(v4) = prefix.addr {
        if prefix.len == 0 {
            return Err("/0 is every address, not an interface's network".into());
        }
        let host_bits = 32 - u32::from(prefix.len);
        if host_bits >= 2 {
            let mask = (1u32 << host_bits) - 1;
            let host = u32::from(v4) & mask;
            if host == 0 {
                return Err(format!("{v4} is the network's own address, not a host's"));
            }
            if host == mask {
                return Err(format!("{v4} is the network's broadcast address"));
            }
        }
        if v4.is_loopback() || v4.is_multicast() || v4.is_unspecified() {
            return Err(format!("{v4} cannot be an interface's address"));
        }
    }
    Ok(prefix)
}

/// An address on the network of `on` that is not `on`'s own (a gateway, the peer).
pub fn neighbour(text: &str, on: &Prefix, what: &str) -> Result<IpAddr, String> {
    let addr: IpAddr = text
        .trim()
        .parse()
        .map_err(|_| format!("'{}' is not an IP address", text.trim()))?;
    if !on.contains(addr) {
        return Err(format!(
            "{addr} is not on {}/{}: the {what} must be on that network",
            on.addr, on.len
        ));
    }
    if addr == on.addr {
        return Err(format!("{addr} is this box's own address"));
    }
    Ok(addr)
}

pub fn key(text: &str) -> Result<String, String> {
    let n = text.chars().count();
    if n < 16 {
        return Err(format!("{n} characters: the key needs at least 16"));
    }
    Ok(text.to_string())
}

pub fn password(text: &str) -> Result<String, String> {
    let n = text.chars().count();
    if n < 8 {
        return Err(format!("{n} characters: the password needs at least 8"));
    }
    Ok(text.to_string())
}

pub fn role(text: &str) -> Result<String, String> {
    match text.trim() {
        "" | "equal" => Ok("equal".into()),
        "primary" => Ok("primary".into()),
        "backup" => Ok("backup".into()),
        other => Err(format!("'{other}': primary, backup or equal")),
    }
}

/// Networks the admin endpoint admits, separated by commas or spaces; none is everyone.
pub fn networks(text: &str) -> Result<Vec<Prefix>, String> {
    text.split([',', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<Prefix>())
        .collect()
}

/// `value` as a TOML string (quoted and escaped).
fn quoted(value: &str) -> String {
    toml::Value::String(value.to_string()).to_string()
}

impl Answers {
    /// The configuration the answers make, as TOML.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "[node]\nhostname = {}\nrole = {}\n\n[network]\nip_forward = true\n",
            quoted(&self.hostname),
            quoted(&self.role)
        );
        for (name, address) in [("eth0", &self.eth0), ("eth1", &self.eth1)] {
            if let Some(address) = address {
                out.push_str(&format!(
                    "\n[[network.interfaces]]\nname = \"{name}\"\naddresses = [\"{}/{}\"]\n",
                    address.addr, address.len
                ));
            }
        }
        if let Some(gateway) = self.gateway {
            out.push_str(&format!(
                "\n[[network.routes]]\nto = \"default\"\nvia = \"{gateway}\"\ndevice = \"eth0\"\n"
            ));
        }
        if let Some(peer) = self.peer {
            // With a gateway, it is the ping node that decides who serves when the boxes lose
            // each other; without one, the higher priority keeps the role.
            let isolation = match self.gateway {
                Some(gateway) => format!("ping_nodes = [\"{gateway}\"]\n"),
                None => "when_isolated = \"higher_priority_stays\"\n".to_string(),
            };
            out.push_str(&format!(
                "\n[pair]\npeer = \"{peer}\"\nkey = {}\nkeepalive = \"100ms\"\ndeadtime = \"1s\"\ninitdead = \"10s\"\nudp = {{ interface = \"eth1\" }}\n{isolation}",
                quoted(&self.key)
            ));
        }
        let allowed: Vec<String> = self
            .allowed
            .iter()
            .map(|p| format!("\"{}/{}\"", p.addr, p.len))
            .collect();
        out.push_str(&format!(
            "\n[admin]\nlisten = \"0.0.0.0\"\nport = 3636\nallowed = [{}]\npassword_hash = {}\n",
            allowed.join(", "),
            quoted(&self.password_hash)
        ));
        out
    }

    /// The summary shown before the answers are stored.
    pub fn summary(&self) -> String {
        let or_none = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        let prefix = |p: &Option<Prefix>| p.as_ref().map(|p| format!("{}/{}", p.addr, p.len));
        let allowed = if self.allowed.is_empty() {
            "every address".to_string()
        } else {
            self.allowed
                .iter()
                .map(|p| format!("{}/{}", p.addr, p.len))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "  hostname          {}\n  eth0              {}\n  gateway           {}\n  eth1 (heartbeat)  {}\n  peer              {}\n  role preference   {}\n  admin password    set\n  admin allowed     {}\n",
            self.hostname,
            or_none(prefix(&self.eth0)),
            or_none(self.gateway.map(|g| g.to_string())),
            or_none(prefix(&self.eth1)),
            match self.peer {
                Some(peer) => format!("{peer} (heartbeat key set)"),
                None => "none: a single box".into(),
            },
            self.role,
            allowed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::from_toml;

    #[test]
    fn answers_are_refused_with_their_reason() {
        assert!(hostname("lvs-a").is_ok());
        assert!(hostname("lvs_a")
            .unwrap_err()
            .contains("'_' is not allowed"));
        assert!(hostname("-a").unwrap_err().contains("neither starts"));
        assert!(hostname("").unwrap_err().contains("a name is needed"));
        assert!(interface_address("192.0.2.2/24").is_ok());
        assert!(interface_address("192.0.2.2")
            .unwrap_err()
            .contains("no prefix length"));
        assert!(interface_address("192.0.2.0/24")
            .unwrap_err()
            .contains("network's own address"));
        assert!(interface_address("192.0.2.255/24")
            .unwrap_err()
            .contains("broadcast"));
        assert!(interface_address("192.0.2.300/24")
            .unwrap_err()
            .contains("not an IP address"));
        let eth0 = interface_address("192.0.2.2/24").unwrap();
        assert!(neighbour("192.0.2.1", &eth0, "gateway").is_ok());
        assert!(neighbour("198.51.100.1", &eth0, "gateway")
            .unwrap_err()
            .contains("is not on 192.0.2.2/24"));
        assert!(neighbour("192.0.2.2", &eth0, "peer")
            .unwrap_err()
            .contains("own address"));
        assert!(key("short").unwrap_err().contains("at least 16"));
        assert!(password("1234567")
            .unwrap_err()
            .contains("needs at least 8"));
        assert_eq!(role("").unwrap(), "equal");
        assert!(role("master")
            .unwrap_err()
            .contains("primary, backup or equal"));
        assert_eq!(networks("").unwrap(), []);
        assert_eq!(networks("192.0.2.0/24, 203.0.113.0/24").unwrap().len(), 2);
        assert!(networks("192.0.2.0")
            .unwrap_err()
            .contains("no prefix length"));
    }

    #[test]
    fn the_answers_make_a_valid_configuration() {
        let answers = Answers {
            hostname: "lvs-a".into(),
            eth0: Some("192.0.2.2/24".parse().unwrap()),
            gateway: Some("192.0.2.1".parse().unwrap()),
            eth1: Some("198.51.100.2/24".parse().unwrap()),
            peer: Some("198.51.100.3".parse().unwrap()),
            key: "a \"quoted\" key \\ 16+".into(),
            role: "primary".into(),
            password_hash: "pbkdf2-sha256$1$c2FsdA$aGFzaA".into(),
            allowed: networks("192.0.2.0/24").unwrap(),
        };
        let config = from_toml(&answers.to_toml()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.node.hostname, "lvs-a");
        let pair = config.pair.as_ref().unwrap();
        assert_eq!(pair.key, answers.key);
        assert_eq!(pair.peer, answers.peer.unwrap());
        assert_eq!(
            config.admin.password_hash.as_deref(),
            Some(answers.password_hash.as_str())
        );
        assert_eq!(config.network.interfaces.len(), 2);
        assert!(answers
            .summary()
            .contains("198.51.100.3 (heartbeat key set)"));
        assert_eq!(pair.ping_nodes, [answers.gateway.unwrap()]);
        // A pair without a gateway to ping.
        let no_gateway = Answers {
            gateway: None,
            ..answers.clone()
        };
        let config = from_toml(&no_gateway.to_toml()).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.pair.unwrap().ping_nodes.is_empty());
        // A single box: no eth1, no peer, no pair.
        let single = Answers {
            eth1: None,
            peer: None,
            ..answers
        };
        let config = from_toml(&single.to_toml()).unwrap_or_else(|e| panic!("{e}"));
        assert!(config.pair.is_none());
    }
}
