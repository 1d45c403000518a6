//! Small value types of the configuration, each with its text form: durations ("500ms", "6s"),
//! address prefixes ("192.0.2.10/24") and netmasks.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A span of time, written with a unit: `250ms`, `6s`, `2m`, `1h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    millis: u64,
}

impl Span {
    pub const fn from_millis(millis: u64) -> Span {
        Span { millis }
    }

    pub fn as_millis(self) -> u64 {
        self.millis
    }

    pub fn as_duration(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis;
        if ms != 0 && ms % 3_600_000 == 0 {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms % 60_000 == 0 {
            write!(f, "{}m", ms / 60_000)
        } else if ms % 1000 == 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("'{text}' has no unit (use ms, s, m or h)"))?;
        let (digits, unit) = text.split_at(split);
        let value: u64 = digits
            .parse()
            .map_err(|_| format!("'{text}' does not start with a whole number"))?;
        let factor = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(format!("'{text}': unit '{unit}' is not one of ms, s, m, h")),
        };
        value
            .checked_mul(factor)
            .map(Span::from_millis)
            .ok_or_else(|| format!("'{text}' is too long"))
    }
}

/// An address with a prefix length: `192.0.2.10/24`, `2001:db8::1/64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `addr` lies inside this network.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Prefix, String> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' has no prefix length (like 192.0.2.10/24)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' in '{text}' is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 =
            len.parse().ok().filter(|&l| l <= max).ok_or_else(|| {
                format!("'{len}' in '{text}' is not a prefix length from 0 to {max}")
            })?;
        Ok(Prefix { addr, len })
    }
}

/// Serde through the text form, for the types above.
macro_rules! serde_as_text {
    ($type:ty, $expecting:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl de::Visitor<'_> for Visitor {
                    type Value = $type;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$type, E> {
                        text.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

serde_as_text!(Span, "a duration with a unit, like \"500ms\" or \"6s\"");
serde_as_text!(
    Prefix,
    "an address with a prefix length, like \"192.0.2.10/24\""
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print_canonically() {
        for (text, ms, canonical) in [
            ("250ms", 250, "250ms"),
            ("6s", 6000, "6s"),
            ("6000ms", 6000, "6s"),
            ("2m", 120_000, "2m"),
            ("1h", 3_600_000, "1h"),
            ("0s", 0, "0s"),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.as_millis(), ms, "{text}");
            assert_eq!(span.to_string(), canonical);
            assert_eq!(canonical.parse::<Span>().unwrap(), span);
        }
    }

    #[test]
    fn bad_spans_say_why() {
        assert!("6".parse::<Span>().unwrap_err().contains("no unit"));
        assert!("6 sec".parse::<Span>().unwrap_err().contains("not one of"));
        assert!("s".parse::<Span>().unwrap_err().contains("whole number"));
        assert!("99999999999999999999h"
            .parse::<Span>()
            .unwrap_err()
            .contains("whole number"));
        assert!("9999999999999999h"
            .parse::<Span>()
            .unwrap_err()
            .contains("too long"));
    }

    #[test]
    fn prefixes_parse_and_contain() {
        let net: Prefix = "192.0.2.0/24".parse().unwrap();
        assert!(net.contains("192.0.2.77".parse().unwrap()));
        assert!(!net.contains("198.51.100.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let all: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        let v6: Prefix = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert_eq!(v6.to_string(), "2001:db8::/32");
    }

    #[test]
    fn bad_prefixes_say_why() {
        assert!("192.0.2.1"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("no prefix"));
        assert!("192.0.2.1/33"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("0 to 32"));
        assert!("host/24"
            .parse::<Prefix>()
            .unwrap_err()
            .contains("not an IP"));
    }
}
