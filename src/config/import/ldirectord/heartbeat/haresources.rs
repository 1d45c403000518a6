//! haresources: `NODE RESOURCE...` lines; the first word is the preferred node, IPaddr
//! resources name the VIPs and their devices.

use std::net::IpAddr;

use super::{HaCf, Vip, HARESOURCES};
use crate::config::import::ldirectord::{parse_ip, parse_number, strip_comment, Report};
use crate::config::model;

pub(super) struct Resources {
    pub(super) preferred: Option<String>,
    pub(super) vips: Vec<Vip>,
    /// `LVSSyncDaemonSwap`: the IPVS sync daemon follows the active node, with the sync id
    /// its argument gives (when that is a number).
    pub(super) sync: Option<Option<u8>>,
}

/// haresources: `NODE RESOURCE...` lines, continued with a trailing backslash.
pub(super) fn read_haresources(text: &str, ha: Option<&HaCf>, report: &mut Report) -> Resources {
    let mut resources = Resources {
        preferred: None,
        vips: Vec::new(),
        sync: None,
    };
    let mut continued = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let content = strip_comment(raw).trim_end();
        let continues = content.ends_with('\\');
        let content = content.strip_suffix('\\').unwrap_or(content);
        let mut words = content.split_whitespace();
        if !continued {
            let Some(node) = words.next() else {
                continued = continues;
                continue;
            };
            if let Some(ha) = ha {
                if !ha.nodes.iter().any(|(n, _)| n == node) {
                    report.note(
                        HARESOURCES,
                        number,
                        format!("`{node}` is not a `node` of ha.cf (heartbeat refuses it); its preference is not imported"),
                    );
                }
            }
            match &resources.preferred {
                None => resources.preferred = Some(node.to_string()),
                Some(first) if first != node => report.note(
                    HARESOURCES,
                    number,
                    format!("`{node}`: the box has one preferred node for all its services, `{first}` from the first line; not imported"),
                ),
                Some(_) => {}
            }
        }
        continued = continues;
        for word in words {
            if let Err(why) = resource(word, number, &mut resources, report) {
                report.error(HARESOURCES, number, format!("`{word}`: {why}"));
            }
        }
    }
    resources
}

pub(super) fn resource(
    word: &str,
    number: usize,
    resources: &mut Resources,
    report: &mut Report,
) -> Result<(), String> {
    let (agent, args) = word.split_once("::").unwrap_or((word, ""));
    // A bare address is heartbeat's short form of IPaddr.
    let (agent, args) = if args.is_empty() && agent.parse::<IpAddr>().is_ok() || agent.contains('/')
    {
        ("IPaddr", word)
    } else {
        (agent, args)
    };
    match agent {
        "IPaddr" | "IPaddr2" | "IPv6addr" => {
            // ADDRESS[/PREFIX[/DEVICE[/BROADCAST]]]; the box derives the rest from the device.
            let mut parts = args.split('/');
            let addr = parse_ip(parts.next().unwrap_or(""))?;
            if let Some(len) = parts.next().filter(|l| !l.is_empty()) {
                let len: u8 = parse_number(len, "a prefix length")?;
                if len > if addr.is_ipv4() { 32 } else { 128 } {
                    return Err(format!("/{len} is not a prefix length"));
                }
            }
            let device = parts.next().filter(|d| !d.is_empty()).map(str::to_string);
            resources.vips.push(Vip {
                addr,
                device,
                line: number,
            });
        }
        "ldirectord" => {}
        "LVSSyncDaemonSwap" => {
            // `LVSSyncDaemonSwap::master` (the state to start in) or a sync id.
            let id = args.split("::").find_map(|a| a.parse::<u8>().ok());
            resources.sync = Some(id);
            let id = id.unwrap_or_else(model::sync_id);
            report.note(
                HARESOURCES,
                number,
                format!(
                    "`LVSSyncDaemonSwap`: the box runs the IPVS sync daemon on whichever box is \
                     active itself (pair.connection_sync, sync id {id})"
                ),
            );
        }
        other => report.note(
            HARESOURCES,
            number,
            format!("resource `{other}` is not managed by the box (it balances VIPs only); not imported"),
        ),
    }
    Ok(())
}
