//! heartbeat's files beside ldirectord.cf: `ha.cf` (the pair: timings, channels, nodes, ping
//! nodes, watchdog), `haresources` (the preferred node and the VIPs' devices) and `authkeys`
//! (the shared key), with heartbeat's defaults.

mod authkeys;
mod haresources;

use std::net::{IpAddr, Ipv4Addr};

use super::{parse_ip, parse_number, strip_comment, Report};
use crate::config::import::SET_THE_KEY;
use crate::config::model::{
    self, Isolation, Pair, RolePreference, SerialPort, UdpChannel, UdpMode, Watchdog,
};
use crate::config::types::Span;
use authkeys::read_authkeys;
use haresources::read_haresources;

pub(super) const HA_CF: &str = "ha.cf";
pub(super) const HARESOURCES: &str = "haresources";
pub(super) const AUTHKEYS: &str = "authkeys";

/// heartbeat's defaults (heartbeat's config.c): keepalive 1 s, deadtime 30 s, port 694,
/// serial speed 19200 baud.
const DEFAULT_KEEPALIVE_MS: u64 = 1000;
const DEFAULT_DEADTIME_MS: u64 = 30_000;
const DEFAULT_UDPPORT: u16 = 694;
const DEFAULT_BAUD: u32 = 19200;

/// What heartbeat's files give the configuration.
#[derive(Default)]
pub(super) struct Heartbeat {
    pub pair: Option<Pair>,
    /// This box's name: the first `node` of ha.cf.
    pub hostname: Option<String>,
    pub role: Option<RolePreference>,
    /// VIPs of haresources, with the device they were brought up on.
    pub vips: Vec<Vip>,
}

pub(super) struct Vip {
    pub addr: IpAddr,
    pub device: Option<String>,
    pub line: usize,
}

/// Reads the three files through `sibling`.
pub(super) fn read(sibling: &dyn Fn(&str) -> Option<String>, report: &mut Report) -> Heartbeat {
    let ha_text = sibling(HA_CF);
    let ha = ha_text.as_deref().map(|text| read_ha_cf(text, report));
    let this_node = ha
        .as_ref()
        .and_then(|ha| ha.nodes.first())
        .map(|(name, _)| name.clone());
    let other_nodes: Vec<String> = ha
        .as_ref()
        .map(|ha| ha.nodes.iter().skip(1).map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();

    let mut result = Heartbeat::default();
    let mut sync = None;
    if let Some(text) = sibling(HARESOURCES) {
        let resources = read_haresources(text.as_str(), ha.as_ref(), report);
        result.vips = resources.vips;
        sync = resources.sync;
        if let (Some(preferred), Some(this)) = (resources.preferred, this_node.as_ref()) {
            result.role = Some(if preferred == *this {
                RolePreference::Primary
            } else {
                RolePreference::Backup
            });
        }
    }
    let key = match sibling(AUTHKEYS) {
        Some(text) => read_authkeys(&text, report),
        None => {
            if ha.is_some() {
                report.note(
                    AUTHKEYS,
                    0,
                    format!(
                        "there is no authkeys beside ldirectord.cf: pair.key is left empty; \
                         {SET_THE_KEY}, the same on both boxes"
                    ),
                );
            }
            None
        }
    };

    let Some(ha) = ha else {
        report.note(
            HA_CF,
            0,
            "there is no ha.cf beside ldirectord.cf: the box runs alone, without a pair",
        );
        if key.is_some() {
            report.note(
                AUTHKEYS,
                0,
                "without ha.cf there is no pair: the key is not used",
            );
        }
        return result;
    };
    if let (Some(this), Some((_, line))) = (&this_node, ha.nodes.first()) {
        report.note(
            HA_CF,
            *line,
            format!(
                "this box is taken to be `{this}`, the first `node` of ha.cf{}; import on \
                 the other box gives it the other node's role only if its ha.cf lists it first",
                match other_nodes.first() {
                    Some(peer) => format!(", and `{peer}` its peer"),
                    None => String::new(),
                }
            ),
        );
        result.hostname = Some(this.clone());
    }
    result.pair = Some(ha.into_pair(key, sync, report));
    result
}

/// A UDP heartbeat channel as ha.cf declared it.
struct Channel {
    mode: UdpMode,
    interface: String,
    port: u16,
    group: Option<IpAddr>,
    peer: Option<IpAddr>,
    line: usize,
}

#[derive(Default)]
struct HaCf {
    keepalive: Option<u64>,
    deadtime: Option<u64>,
    warntime: Option<u64>,
    initdead: Option<u64>,
    channels: Vec<Channel>,
    /// Serial devices with the speed in force when each was declared.
    serial: Vec<(String, u32, usize)>,
    auto_failback: Option<bool>,
    nodes: Vec<(String, usize)>,
    ping: Vec<IpAddr>,
    watchdog: Option<String>,
    /// The line of the last `udpport` and of the last channel, to say when it came too late.
    udpport_line: Option<(u16, usize)>,
}

/// Why an ha.cf directive has no equivalent on the box.
fn ha_unsupported(directive: &str) -> Option<&'static str> {
    Some(match directive {
        "logfacility" | "logfile" | "debugfile" | "use_logd" | "debug" | "conn_logd_time"
        | "syslogmsgfmt" | "log_badpack" => {
            "the box logs to its console and admin endpoint; there is no log setting"
        }
        "crm" | "pacemaker" => {
            "the box manages the pair itself, as heartbeat did with haresources; there is no \
             cluster resource manager"
        }
        "respawn" => "the box's init supervises its own processes; no program is respawned",
        "apiauth" => "there is no heartbeat API on the box",
        "deadping" => "ping nodes are declared dead after the pair's deadtime",
        "hopfudge" => "the box's serial link is a direct cable, there are no hops",
        "realtime" | "rtprio" => "the box schedules its heartbeat itself",
        "compression" | "compression_threshold" | "traditional_compression" | "msgfmt" => {
            "heartbeat messages are small and never compressed"
        }
        "autojoin" | "uuidfrom" | "hbgenmethod" | "cluster" => {
            "a pair is exactly two boxes; there is no cluster membership to configure"
        }
        "stonith" | "stonith_host" => {
            "STONITH devices are not supported; the watchdog (with strict_fencing) fences a hung box"
        }
        "coredumps" | "coreroot" | "env" | "memreserve" | "max_rexmit_delay" | "failfast"
        | "use_apphbd" | "normalpoll" | "hbaping" | "record_config_changes"
        | "record_pengine_inputs" | "enable_config_writes" => {
            "the box has no equivalent of this heartbeat tuning"
        }
        _ => return None,
    })
}

/// heartbeat's time syntax: seconds, or with a unit: `500ms`, `2s`, `1.5`, `250000us`.
fn parse_hb_time(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a time (like 2, 1.5 or 500ms)");
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        parse_number(whole, "a time").map_err(|_| bad())?
    };
    // The fraction in microseconds, from at most six digits.
    let mut micros_fraction = 0u64;
    for (i, c) in fraction.chars().enumerate() {
        let digit = c.to_digit(10).ok_or_else(bad)?;
        if i < 6 {
            micros_fraction += u64::from(digit) * 10u64.pow(5 - i as u32);
        }
    }
    let micros_per_unit: u64 = match unit {
        "" | "s" | "sec" => 1_000_000,
        "ms" | "msec" => 1000,
        "us" | "usec" => 1,
        _ => return Err(bad()),
    };
    let micros = whole
        .checked_mul(micros_per_unit)
        .and_then(|m| m.checked_add(micros_fraction.saturating_mul(micros_per_unit) / 1_000_000))
        .ok_or_else(|| format!("'{text}' is too long"))?;
    Ok(micros / 1000)
}

fn read_ha_cf(text: &str, report: &mut Report) -> HaCf {
    let mut ha = HaCf::default();
    let mut udpport = DEFAULT_UDPPORT;
    let mut baud = DEFAULT_BAUD;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(raw);
        // heartbeat separates a directive's values by white space or commas.
        let mut words = content
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty());
        let Some(directive) = words.next() else {
            continue;
        };
        let values: Vec<&str> = words.collect();
        if let Err(why) = ha_directive(
            &mut ha,
            directive,
            &values,
            number,
            &mut udpport,
            &mut baud,
            report,
        ) {
            report.error(HA_CF, number, format!("`{directive}`: {why}"));
        }
    }
    ha
}

fn first<'a>(values: &[&'a str]) -> Result<&'a str, String> {
    values
        .first()
        .copied()
        .ok_or_else(|| "no value".to_string())
}

fn ha_directive(
    ha: &mut HaCf,
    directive: &str,
    values: &[&str],
    number: usize,
    udpport: &mut u16,
    baud: &mut u32,
    report: &mut Report,
) -> Result<(), String> {
    let mut note = |message: String| report.note(HA_CF, number, message);
    match directive {
        "keepalive" => ha.keepalive = Some(parse_hb_time(first(values)?)?),
        "deadtime" => ha.deadtime = Some(parse_hb_time(first(values)?)?),
        "warntime" => ha.warntime = Some(parse_hb_time(first(values)?)?),
        "initdead" => ha.initdead = Some(parse_hb_time(first(values)?)?),
        "udpport" => {
            let port: u16 = parse_number(first(values)?, "a port")?;
            *udpport = port;
            ha.udpport_line = Some((port, number));
        }
        "bcast" => {
            if values.is_empty() {
                return Err("no interface".into());
            }
            for device in values {
                ha.channels.push(Channel {
                    mode: UdpMode::Broadcast,
                    interface: device.to_string(),
                    port: *udpport,
                    group: None,
                    peer: None,
                    line: number,
                });
            }
        }
        "mcast" => {
            // mcast DEVICE GROUP PORT TTL LOOP; the port is the line's own, not udpport.
            let [device, group, port, ttl, ..] = values else {
                return Err("needs an interface, a group, a port, a TTL and a loop flag".into());
            };
            let group = parse_ip(group)?;
            if !group.is_multicast() {
                return Err(format!("{group} is not a multicast group"));
            }
            let port: u16 = parse_number(port, "a port")?;
            let ttl: u8 = parse_number(ttl, "a TTL")?;
            if ttl != 1 {
                note(format!(
                    "`mcast`: TTL {ttl} is not kept; the box sends its multicast heartbeat to the local link only"
                ));
            }
            ha.channels.push(Channel {
                mode: UdpMode::Multicast,
                interface: device.to_string(),
                port,
                group: Some(group),
                peer: None,
                line: number,
            });
        }
        "ucast" => {
            let [device, peers @ ..] = values else {
                return Err("needs an interface and an address".into());
            };
            if peers.is_empty() {
                return Err("needs an interface and an address".into());
            }
            for peer in peers {
                let peer = parse_ip(peer)?;
                ha.channels.push(Channel {
                    mode: UdpMode::Unicast,
                    interface: device.to_string(),
                    port: *udpport,
                    group: None,
                    peer: Some(peer),
                    line: number,
                });
            }
        }
        "serial" => {
            if values.is_empty() {
                return Err("no device".into());
            }
            for device in values {
                ha.serial.push((device.to_string(), *baud, number));
            }
        }
        "baud" => *baud = parse_number(first(values)?, "a speed")?,
        "auto_failback" => {
            ha.auto_failback = Some(match first(values)? {
                "on" | "legacy" => true,
                "off" => false,
                other => return Err(format!("'{other}' is not on, off or legacy")),
            })
        }
        "nice_failback" => {
            // The older form: nice failback means the resources stay where they are.
            ha.auto_failback = Some(match first(values)? {
                "on" | "yes" | "true" => false,
                "off" | "no" | "false" => true,
                other => return Err(format!("'{other}' is not on or off")),
            })
        }
        "node" => {
            if values.is_empty() {
                return Err("no node name".into());
            }
            for name in values {
                ha.nodes.push((name.to_string(), number));
                if ha.nodes.len() == 3 {
                    note(format!(
                        "`node`: a pair is two boxes; `{name}` and any further nodes are not imported"
                    ));
                }
            }
        }
        "ping" => {
            if values.is_empty() {
                return Err("no address".into());
            }
            for node in values {
                ha.ping.push(parse_ip(node)?);
            }
        }
        "ping_group" => {
            let [_group, members @ ..] = values else {
                return Err("needs a name and addresses".into());
            };
            if members.is_empty() {
                return Err("needs a name and addresses".into());
            }
            for node in members {
                ha.ping.push(parse_ip(node)?);
            }
            note(
                "`ping_group`: the box has no ping groups; each member is imported as a ping node \
                 of its own"
                    .into(),
            );
        }
        "watchdog" => ha.watchdog = Some(first(values)?.to_string()),
        other => match ha_unsupported(other) {
            Some(why) => note(format!("`{other}`: {why}")),
            None => note(format!(
                "`{other}` is not a heartbeat directive; not imported"
            )),
        },
    }
    Ok(())
}

impl HaCf {
    /// The pair, with heartbeat's defaults where ha.cf is silent.
    /// `sync` is haresources' LVSSyncDaemonSwap with its sync id, if any.
    fn into_pair(self, key: Option<String>, sync: Option<Option<u8>>, report: &mut Report) -> Pair {
        let keepalive = self.keepalive.unwrap_or(DEFAULT_KEEPALIVE_MS);
        let deadtime = self.deadtime.unwrap_or(DEFAULT_DEADTIME_MS);
        // heartbeat warns at half the deadtime unless told otherwise; the box has its own
        // default, and half the deadtime need not lie between keepalive and deadtime (1 s and
        // 2 s). A warntime that is set is kept as it is, and validation says when it is wrong.
        let warntime = self.warntime;
        // heartbeat's initial deadtime: the deadtime when that is over 10 s, else twice it,
        // but at least 12 s.
        let initdead = self.initdead.unwrap_or(if deadtime > 10_000 {
            deadtime
        } else if deadtime < 6000 {
            12_000
        } else {
            2 * deadtime
        });

        // One UDP channel: a unicast one names the peer, so it is preferred.
        let chosen = self
            .channels
            .iter()
            .position(|c| c.mode == UdpMode::Unicast)
            .or(if self.channels.is_empty() {
                None
            } else {
                Some(0)
            });
        let unicast: Vec<&Channel> = self
            .channels
            .iter()
            .filter(|c| c.mode == UdpMode::Unicast)
            .collect();
        // heartbeat ignores a ucast to its own address so that both boxes can share one ha.cf;
        // then the addresses follow the node order and the second belongs to the peer.
        let peer_channel = match unicast.len() {
            0 => None,
            1 => unicast.first().copied(),
            _ => unicast.get(1).copied(),
        };
        let peer = peer_channel.and_then(|c| c.peer);
        for channel in &self.channels {
            let is_chosen = chosen
                .and_then(|i| self.channels.get(i))
                .is_some_and(|c| std::ptr::eq(c, channel));
            if channel.mode == UdpMode::Unicast {
                if let (Some(peer), false) =
                    (peer, peer_channel.is_some_and(|p| std::ptr::eq(p, channel)))
                {
                    let own = channel.peer.map(|a| a.to_string()).unwrap_or_default();
                    report.note(
                        HA_CF,
                        channel.line,
                        format!(
                            "`ucast`: {own} is taken to be this box's own address (heartbeat \
                             ignores a ucast to itself); the peer is {peer}"
                        ),
                    );
                }
            } else if !is_chosen {
                report.note(
                    HA_CF,
                    channel.line,
                    format!(
                        "`{}` on {}: the box runs one UDP heartbeat channel, which is the one on line {}; not imported",
                        if channel.mode == UdpMode::Broadcast { "bcast" } else { "mcast" },
                        channel.interface,
                        chosen.and_then(|i| self.channels.get(i)).map(|c| c.line).unwrap_or(0)
                    ),
                );
            }
        }
        let udp = chosen
            .and_then(|i| self.channels.get(i))
            .map(|c| UdpChannel {
                interface: c.interface.clone(),
                port: c.port,
                mode: c.mode,
                group: c.group,
            });
        if let (Some((port, line)), Some(last)) = (
            self.udpport_line,
            self.channels
                .iter()
                .filter(|c| c.mode != UdpMode::Multicast)
                .map(|c| c.line)
                .max(),
        ) {
            if line > last {
                report.note(
                    HA_CF,
                    line,
                    format!(
                        "`udpport {port}` comes after the channels: heartbeat used port \
                         {DEFAULT_UDPPORT} for them, and so does the box"
                    ),
                );
            }
        }
        let peer = match peer {
            Some(peer) => peer,
            None => {
                report.note(
                    HA_CF,
                    self.channels.first().map(|c| c.line).unwrap_or(0),
                    "no `ucast` names the peer's address (bcast, mcast and serial do not): \
                     pair.peer is 0.0.0.0 and must be set to the peer's address on the \
                     heartbeat link",
                );
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        };

        let serial = self.serial.first().map(|(device, baud, line)| {
            let device = device.strip_prefix("/dev/").unwrap_or(device).to_string();
            if device == SerialPort::default().device {
                report.note(
                    HA_CF,
                    *line,
                    format!("`serial`: {device} is the box's console; connect the heartbeat cable to another port and set pair.serial.device"),
                );
            }
            SerialPort {
                device,
                baud: *baud,
            }
        });
        for (device, _, line) in self.serial.iter().skip(1) {
            report.note(
                HA_CF,
                *line,
                format!("`serial`: the box runs one serial heartbeat; {device} is not imported"),
            );
        }

        let watchdog = self.watchdog.map(|device| Watchdog {
            device,
            // heartbeat sets the watchdog to the deadtime plus 10 ms, rounded up to seconds.
            timeout: Span::from_millis(
                deadtime
                    .saturating_add(10)
                    .div_ceil(1000)
                    .saturating_mul(1000),
            ),
            strict_fencing: false,
        });

        let when_isolated = if self.ping.is_empty() {
            report.note(
                HA_CF,
                0,
                "no `ping` nodes: when the peer is silent, the box with the higher priority \
                 stays active (heartbeat would have made both active)",
            );
            Isolation::HigherPriorityStays
        } else {
            Isolation::PingNodesDecide
        };
        let mut ping_nodes = Vec::new();
        for node in self.ping {
            if !ping_nodes.contains(&node) {
                ping_nodes.push(node);
            }
        }

        Pair {
            peer,
            key: key.unwrap_or_default(),
            priority: 100,
            udp,
            serial,
            keepalive: Span::from_millis(keepalive),
            deadtime: Span::from_millis(deadtime),
            warntime: warntime.map(Span::from_millis),
            initdead: Some(Span::from_millis(initdead)),
            // heartbeat's default is `legacy`, which fails back like `on`.
            auto_failback: self.auto_failback.unwrap_or(true),
            ping_nodes,
            when_isolated,
            announce_count: 5,
            announce_spacing: Span::from_millis(200),
            watchdog,
            // heartbeat ran the sync daemon only as the LVSSyncDaemonSwap resource.
            connection_sync: sync.is_some(),
            sync_id: sync.flatten().unwrap_or_else(model::sync_id),
        }
    }
}
