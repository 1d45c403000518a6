//! Tests of the configuration: the TOML form, round trips, and every validation rule.

use super::model::*;
use super::*;

/// A configuration that uses every part of the model.
const FULL: &str = r#"
[node]
hostname = "lvs-a.example.net"
role = "primary"
console = { device = "ttyS0", baud = 115200 }

[network]
ip_forward = true

[[network.interfaces]]
name = "eth0"
addresses = ["192.0.2.2/24", "2001:db8::2/64"]
mtu = 1500
arp_ignore = 1
arp_announce = 2
rp_filter = 0

[[network.interfaces]]
name = "eth1"
addresses = ["198.51.100.2/24"]

[[network.routes]]
to = "default"
via = "192.0.2.1"
device = "eth0"

[[network.routes]]
to = "default"
via = "2001:db8::1"

[[network.routes]]
to = "203.0.113.0/24"
via = "198.51.100.254"

[network.ipvs]
conntrack = true
expire_nodest_conn = true
expire_quiescent_template = false
tcp_timeout = "15m"
tcpfin_timeout = "2m"
udp_timeout = "5m"
owns_table = true

[[virtual_servers]]
name = "web"
vip = "192.0.2.100"
port = 80
protocol = "tcp"
scheduler = "wlc"
forwarding = "dr"
device = "eth0:1"
quiescent = true
reentry = "15s"
sorry_server = "192.0.2.200:80"
persistence = { timeout = "5m", netmask = "255.255.255.0" }

[virtual_servers.check]
interval = "2s"
timeout = "1s"
rise = 2
fall = 3
http = { tls = true, verify = false, path = "/health", host = "www.example.net", status = [200, 204], expect = "OK" }

[[virtual_servers.real_servers]]
name = "web1"
address = "192.0.2.11"
weight = 3

[[virtual_servers.real_servers]]
name = "web2"
address = "192.0.2.12"
weight = 1
upper_threshold = 500
lower_threshold = 400
enabled = false

[[virtual_servers]]
name = "mail"
fwmark = 7
scheduler = "sh"
forwarding = "nat"
check = { interval = "10s", timeout = "5s", send_expect = { send = "HELO director\r\n", expect = "^250" } }
real_servers = [
  { name = "m1", address = "198.51.100.21", port = 2525 },
]

[[virtual_servers]]
name = "dns6"
vip = "2001:db8::53"
port = 53
protocol = "udp"
scheduler = "mh"
forwarding = "tunnel"
persistence = { timeout = "30s", prefix_len = 64 }
check = { interval = "5s", timeout = "2s", program = { path = "/usr/lib/director/check-dns", args = ["--zone", "example.net"] } }
real_servers = [ { name = "ns1", address = "2001:db8::101" } ]

[pair]
peer = "198.51.100.3"
key = "a shared key of enough length"
priority = 150
keepalive = "20ms"
deadtime = "80ms"
warntime = "50ms"
initdead = "10s"
auto_failback = true
ping_nodes = ["192.0.2.1", "2001:db8::1"]
when_isolated = "ping_nodes_decide"
announce_count = 3
announce_spacing = "100ms"
connection_sync = true
sync_id = 9
udp = { interface = "eth1", port = 694, mode = "unicast" }
serial = { device = "ttyS1", baud = 115200 }
watchdog = { device = "/dev/watchdog", timeout = "5s", strict_fencing = false }

[admin]
listen = "192.0.2.2"
port = 3636
allowed = ["192.0.2.0/24", "2001:db8::/64"]
password_hash = "pbkdf2-sha256$600000$c2FsdA$aGFzaA"
"#;

fn full() -> Config {
    match from_toml(FULL) {
        Ok(config) => config,
        Err(why) => panic!("the full example is rejected:\n{why}"),
    }
}

/// The problems of `config` after `change`, as "path: message" lines.
fn problems_after(change: impl FnOnce(&mut Config)) -> Vec<String> {
    let mut config = full();
    change(&mut config);
    validate(&config).iter().map(|p| p.to_string()).collect()
}

fn assert_problem(change: impl FnOnce(&mut Config), path: &str, words: &str) {
    let problems = problems_after(change);
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with(&format!("{path}: ")) && p.contains(words)),
        "expected '{path}: ...{words}...' in {problems:#?}"
    );
}

#[test]
fn the_builtin_default_is_valid_and_is_the_model_default() {
    assert!(from_toml(BUILTIN_DEFAULT).is_ok());
    assert_eq!(builtin_default(), Config::default());
}

#[test]
fn the_full_example_is_read_as_written() {
    let config = full();
    assert_eq!(config.node.role, RolePreference::Primary);
    assert_eq!(config.network.interfaces[0].addresses.len(), 2);
    assert_eq!(config.network.routes[0].to, RouteTarget::Default);
    assert!(config.network.ipvs.owns_table);
    let web = &config.virtual_servers[0];
    assert_eq!(web.scheduler, Scheduler::Wlc);
    assert_eq!(
        web.persistence.as_ref().map(|p| p.timeout.as_millis()),
        Some(300_000)
    );
    assert_eq!(web.real_servers[0].weight, 3);
    assert!(web.real_servers[0].enabled);
    assert!(!web.real_servers[1].enabled);
    assert_eq!(
        web.check
            .as_ref()
            .and_then(|c| c.http.as_ref())
            .map(|h| h.verify),
        Some(false)
    );
    assert_eq!(config.virtual_servers[1].fwmark, Some(7));
    let pair = config.pair.as_ref().unwrap();
    assert_eq!(pair.deadtime.as_millis(), 80);
    assert_eq!(
        pair.serial.as_ref().map(|s| s.device.as_str()),
        Some("ttyS1")
    );
}

#[test]
fn export_then_import_is_exact() {
    for config in [full(), Config::default()] {
        let text = to_toml(&config).unwrap();
        let again = from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again, config);
        assert_eq!(to_toml(&again).unwrap(), text);
    }
}

#[test]
fn defaults_fill_what_is_left_out() {
    let config = from_toml(
        "[[virtual_servers]]\nname = \"x\"\nvip = \"192.0.2.5\"\nport = 443\n\
         [[virtual_servers.real_servers]]\nname = \"a\"\naddress = \"192.0.2.6\"\n",
    )
    .unwrap();
    let vs = &config.virtual_servers[0];
    assert_eq!(
        (vs.protocol, vs.scheduler, vs.forwarding),
        (Protocol::Tcp, Scheduler::Wlc, Forwarding::Dr)
    );
    assert!(vs.enabled);
    assert_eq!(vs.real_servers[0].weight, 1);
    assert_eq!(config.admin.port, 3636);
    assert!(!config.network.ipvs.owns_table);
}

#[test]
fn syntax_errors_give_the_line_and_what_is_wrong() {
    match from_toml("[node]\nhostname = \"a\"\nhostnme = \"b\"\n") {
        Err(Rejected::Syntax { line, message, .. }) => {
            assert_eq!(line, 3);
            assert!(message.contains("hostnme"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match from_toml("[[virtual_servers]]\nname = \"w\"\nvip = \"192.0.2.300\"\nport = 80\n") {
        Err(Rejected::Syntax { line, message, .. }) => {
            assert_eq!(line, 3);
            assert!(message.contains("address"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match from_toml("[pair]\npeer = \"198.51.100.3\"\nkey = \"0123456789abcdef\"\nkeepalive = \"1 s\"\ndeadtime = \"3s\"\n") {
        Err(Rejected::Syntax { line, message, .. }) => {
            assert_eq!(line, 4);
            assert!(message.contains("unit"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match from_toml("[node\n") {
        Err(Rejected::Syntax { line, .. }) => assert_eq!(line, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let problems = problems_after(|c| {
        c.node.hostname = "-bad-".into();
        c.admin.port = 0;
        c.virtual_servers[0].real_servers[1].address = c.virtual_servers[0].real_servers[0].address;
    });
    assert_eq!(problems.len(), 3, "{problems:#?}");
}

#[test]
fn node_rules() {
    assert_problem(
        |c| c.node.hostname = "a_b".into(),
        "node.hostname",
        "not a host name",
    );
    assert_problem(
        |c| c.node.hostname = String::new(),
        "node.hostname",
        "1 to 253",
    );
    assert_problem(
        |c| c.node.console.baud = 1234,
        "node.console.baud",
        "not a supported",
    );
    assert_problem(
        |c| c.node.console.device = "/dev/ttyS0".into(),
        "node.console.device",
        "terminal name",
    );
}

#[test]
fn interface_and_route_rules() {
    assert_problem(
        |c| c.network.interfaces[1].name = "eth0".into(),
        "network.interfaces[1].name",
        "twice",
    );
    assert_problem(
        |c| c.network.interfaces[0].name = "a-very-long-interface".into(),
        "network.interfaces[0].name",
        "1 to 15",
    );
    assert_problem(
        |c| {
            c.network.interfaces[1]
                .addresses
                .push("192.0.2.2/24".parse().unwrap())
        },
        "network.interfaces[1].addresses[1]",
        "twice",
    );
    assert_problem(
        |c| c.network.interfaces[0].mtu = Some(1000),
        "network.interfaces[0].mtu",
        "1280..65535",
    );
    assert_problem(
        |c| c.network.interfaces[1].mtu = Some(60),
        "network.interfaces[1].mtu",
        "68..65535",
    );
    assert_problem(
        |c| c.network.interfaces[0].arp_ignore = Some(5),
        "network.interfaces[0].arp_ignore",
        "not one of",
    );
    assert_problem(
        |c| c.network.interfaces[0].arp_announce = Some(3),
        "network.interfaces[0].arp_announce",
        "not one of",
    );
    assert_problem(
        |c| c.network.interfaces[0].rp_filter = Some(9),
        "network.interfaces[0].rp_filter",
        "not one of",
    );
    assert_problem(
        |c| c.network.routes[2].via = "2001:db8::9".parse().unwrap(),
        "network.routes[2].via",
        "address family",
    );
    assert_problem(
        |c| c.network.routes[0].via = "203.0.113.1".parse().unwrap(),
        "network.routes[0].via",
        "in no network",
    );
    assert_problem(
        |c| c.network.routes[0].device = Some("eth7".into()),
        "network.routes[0].device",
        "not configured",
    );
    assert_problem(
        |c| {
            let mut second = c.network.routes[0].clone();
            second.via = "192.0.2.254".parse().unwrap();
            c.network.routes.push(second);
        },
        "network.routes[3].to",
        "second default route for IPv4",
    );
    assert_problem(
        |c| c.network.ipvs.tcp_timeout = Some("1500ms".parse().unwrap()),
        "network.ipvs.tcp_timeout",
        "whole number of seconds",
    );
}

#[test]
fn ipvs_ownership_and_timeout_rules() {
    // owns_table is valid either way and survives the round trip.
    for owns in [false, true] {
        let mut config = full();
        config.network.ipvs.owns_table = owns;
        assert!(validate(&config).is_empty(), "{:#?}", validate(&config));
        let again = from_toml(&to_toml(&config).unwrap()).unwrap();
        assert_eq!(again.network.ipvs.owns_table, owns);
    }
    let rejected = from_toml("[network.ipvs]\nowns_table = \"yes\"\n");
    assert!(
        matches!(rejected, Err(Rejected::Syntax { line: 2, .. })),
        "{rejected:?}"
    );
    assert_problem(
        |c| c.network.ipvs.udp_timeout = Some("745h".parse().unwrap()),
        "network.ipvs.udp_timeout",
        "longer than 31 days",
    );
    assert_problem(
        |c| {
            if let Some(p) = c.virtual_servers[0].persistence.as_mut() {
                p.timeout = types::Span::from_millis(32 * 86_400_000);
            }
        },
        "virtual_servers[0].persistence.timeout",
        "longer than 31 days",
    );
    assert_problem(
        |c| {
            if let Some(p) = c.virtual_servers[2].persistence.as_mut() {
                p.prefix_len = Some(0);
            }
        },
        "virtual_servers[2].persistence.prefix_len",
        "from 1 to 128",
    );
    assert!(
        problems_after(|c| c.network.ipvs.udp_timeout = Some("744h".parse().unwrap())).is_empty()
    );
}

#[test]
fn virtual_server_rules() {
    assert_problem(
        |c| c.virtual_servers[1].name = "web".into(),
        "virtual_servers[1].name",
        "defined twice",
    );
    assert_problem(
        |c| c.virtual_servers[0].fwmark = Some(3),
        "virtual_servers[0].fwmark",
        "not both",
    );
    assert_problem(
        |c| c.virtual_servers[1].fwmark = None,
        "virtual_servers[1].vip",
        "needs a vip",
    );
    assert_problem(
        |c| c.virtual_servers[1].port = Some(25),
        "virtual_servers[1].port",
        "no port",
    );
    assert_problem(
        |c| c.virtual_servers[1].fwmark = Some(0),
        "virtual_servers[1].fwmark",
        "mark 0",
    );
    assert_problem(
        |c| c.virtual_servers[0].port = None,
        "virtual_servers[0].port",
        "needs a port",
    );
    assert_problem(
        |c| {
            c.virtual_servers[0].port = Some(0);
            c.virtual_servers[0].persistence = None;
        },
        "virtual_servers[0].port",
        "needs persistence",
    );
    assert_problem(
        |c| {
            let mut twin = c.virtual_servers[0].clone();
            twin.name = "web-again".into();
            c.virtual_servers.push(twin);
        },
        "virtual_servers[3].vip",
        "already serves 192.0.2.100 port 80",
    );
    assert_problem(
        |c| c.virtual_servers[0].family = Some(Family::Inet6),
        "virtual_servers[0].family",
        "does not match",
    );
    assert_problem(
        |c| c.virtual_servers[0].vip = Some("0.0.0.0".parse().unwrap()),
        "virtual_servers[0].vip",
        "cannot be a VIP",
    );
    assert_problem(
        |c| c.virtual_servers[0].device = Some("eth9:1".into()),
        "virtual_servers[0].device",
        "not configured",
    );
    assert_problem(
        |c| c.virtual_servers[0].sorry_server = Some("[2001:db8::9]:80".parse().unwrap()),
        "virtual_servers[0].sorry_server",
        "address family",
    );
    assert_problem(
        |c| {
            if let Some(p) = c.virtual_servers[0].persistence.as_mut() {
                p.netmask = Some("255.0.255.0".parse().unwrap());
            }
        },
        "virtual_servers[0].persistence.netmask",
        "not an IPv4 netmask",
    );
    assert_problem(
        |c| {
            if let Some(p) = c.virtual_servers[2].persistence.as_mut() {
                p.prefix_len = Some(129);
            }
        },
        "virtual_servers[2].persistence.prefix_len",
        "over 128",
    );
    assert_problem(
        |c| {
            if let Some(p) = c.virtual_servers[0].persistence.as_mut() {
                p.timeout = "500ms".parse().unwrap();
            }
        },
        "virtual_servers[0].persistence.timeout",
        "whole number of seconds",
    );
}

#[test]
fn real_server_rules() {
    fn rs(c: &mut Config, i: usize) -> &mut RealServer {
        &mut c.virtual_servers[0].real_servers[i]
    }
    assert_problem(
        |c| rs(c, 1).name = "web1".into(),
        "virtual_servers[0].real_servers[1].name",
        "defined twice",
    );
    assert_problem(
        |c| rs(c, 1).address = "192.0.2.11".parse().unwrap(),
        "virtual_servers[0].real_servers[1].address",
        "listed twice",
    );
    assert_problem(
        |c| rs(c, 1).address = "2001:db8::12".parse().unwrap(),
        "virtual_servers[0].real_servers[1].address",
        "address family",
    );
    assert_problem(
        |c| rs(c, 1).address = "192.0.2.100".parse().unwrap(),
        "virtual_servers[0].real_servers[1].address",
        "the VIP itself",
    );
    assert_problem(
        |c| rs(c, 0).port = Some(8080),
        "virtual_servers[0].real_servers[0].port",
        "cannot change the port",
    );
    assert_problem(
        |c| rs(c, 0).weight = 70000,
        "virtual_servers[0].real_servers[0].weight",
        "over 65535",
    );
    assert_problem(
        |c| rs(c, 1).lower_threshold = 600,
        "virtual_servers[0].real_servers[1].lower_threshold",
        "above the upper",
    );
    // NAT may change the port.
    assert!(problems_after(|c| {
        c.virtual_servers[0].forwarding = Forwarding::Nat;
        rs(c, 0).port = Some(8080);
    })
    .is_empty());
}

#[test]
fn check_rules() {
    fn check(c: &mut Config) -> &mut Check {
        c.virtual_servers[0].check.as_mut().unwrap()
    }
    assert_problem(
        |c| check(c).tcp = Some(TcpCheck {}),
        "virtual_servers[0].check",
        "2 given",
    );
    assert_problem(
        |c| check(c).http = None,
        "virtual_servers[0].check",
        "0 given",
    );
    assert_problem(
        |c| check(c).timeout = "3s".parse().unwrap(),
        "virtual_servers[0].check.timeout",
        "longer than the interval",
    );
    assert_problem(
        |c| check(c).rise = 0,
        "virtual_servers[0].check.rise",
        "at least 1",
    );
    assert_problem(
        |c| check(c).fall = 0,
        "virtual_servers[0].check.fall",
        "at least 1",
    );
    assert_problem(
        |c| check(c).http.as_mut().unwrap().path = "health".into(),
        "virtual_servers[0].check.http.path",
        "does not start with /",
    );
    assert_problem(
        |c| check(c).http.as_mut().unwrap().status.push(700),
        "virtual_servers[0].check.http.status[2]",
        "not an HTTP status",
    );
    assert_problem(
        |c| {
            let se = c.virtual_servers[1]
                .check
                .as_mut()
                .unwrap()
                .send_expect
                .as_mut()
                .unwrap();
            se.protocol = CheckProtocol::Udp;
            se.send = None;
        },
        "virtual_servers[1].check.send_expect.send",
        "must send",
    );
    assert_problem(
        |c| {
            c.virtual_servers[2]
                .check
                .as_mut()
                .unwrap()
                .program
                .as_mut()
                .unwrap()
                .path = "check".into()
        },
        "virtual_servers[2].check.program.path",
        "absolute",
    );
}

#[test]
fn health_check_rules() {
    fn check(c: &mut Config) -> &mut Check {
        c.virtual_servers[0].check.as_mut().unwrap()
    }
    fn http(c: &mut Config) -> &mut HttpCheck {
        check(c).http.as_mut().unwrap()
    }
    fn send_expect(c: &mut Config) -> &mut SendExpectCheck {
        c.virtual_servers[1]
            .check
            .as_mut()
            .unwrap()
            .send_expect
            .as_mut()
            .unwrap()
    }
    assert_problem(
        |c| http(c).expect = Some("(ok".into()),
        "virtual_servers[0].check.http.expect",
        "/(ok/ is not a regular expression",
    );
    assert_problem(
        |c| send_expect(c).expect = Some("^2[0-9".into()),
        "virtual_servers[1].check.send_expect.expect",
        "not a regular expression",
    );
    assert_problem(
        |c| send_expect(c).send = Some("HELO\\x".into()),
        "virtual_servers[1].check.send_expect.send",
        "'\\x' is not one of the escapes",
    );
    assert_problem(
        |c| http(c).verify = true,
        "virtual_servers[0].check.http.verify",
        "no system CA bundle",
    );
    assert_problem(
        |c| {
            http(c).verify = true;
            http(c).ca = Some("ca.pem".into());
        },
        "virtual_servers[0].check.http.ca",
        "not an absolute path",
    );
    assert_problem(
        |c| http(c).ca = Some("/data/ca.pem".into()),
        "virtual_servers[0].check.http.ca",
        "only for verify = true",
    );
    assert_problem(
        |c| {
            http(c).tls = false;
            http(c).ca = Some("/data/ca.pem".into());
        },
        "virtual_servers[0].check.http.ca",
        "only for tls = true",
    );
    assert_problem(
        |c| http(c).weight_header = Some("X Weight".into()),
        "virtual_servers[0].check.http.weight_header",
        "not an HTTP header name",
    );
    assert_problem(
        |c| http(c).host = Some("www example".into()),
        "virtual_servers[0].check.http.host",
        "not a host name or address",
    );
    assert_problem(
        |c| check(c).max_weight = Some(70000),
        "virtual_servers[0].check.max_weight",
        "over 65535",
    );
    assert_problem(
        |c| {
            check(c).min_weight = Some(10);
            check(c).max_weight = Some(5);
        },
        "virtual_servers[0].check.min_weight",
        "above the max_weight 5",
    );
    assert_problem(
        |c| c.virtual_servers[1].real_servers[0].port = None,
        "virtual_servers[1].check.port",
        "the check needs a port",
    );
    // What is valid stays so.
    for host in [
        "www.example.net",
        "192.0.2.10:8080",
        "[2001:db8::1]:443",
        "2001:db8::1",
    ] {
        assert!(
            problems_after(|c| http(c).host = Some(host.into())).is_empty(),
            "{host}"
        );
    }
    assert!(problems_after(|c| {
        http(c).verify = true;
        http(c).ca = Some("/data/ca.pem".into());
        http(c).weight_header = Some("X-Weight".into());
        check(c).min_weight = Some(1);
        check(c).max_weight = Some(100);
        c.virtual_servers[1].check.as_mut().unwrap().port = Some(25);
        c.virtual_servers[1].real_servers[0].port = None;
    })
    .is_empty());
}

#[test]
fn send_strings_unescape() {
    assert_eq!(unescape("PING\\r\\n"), Ok(b"PING\r\n".to_vec()));
    assert_eq!(unescape("a\\tb\\\\c"), Ok(b"a\tb\\c".to_vec()));
    // Real control characters (from a TOML basic string) are kept as they are.
    assert_eq!(unescape("x\r\n"), Ok(b"x\r\n".to_vec()));
    assert_eq!(unescape("é"), Ok("é".as_bytes().to_vec()));
    assert!(unescape("bad\\").unwrap_err().contains("lone backslash"));
    assert!(unescape("\\0").unwrap_err().contains("'\\0'"));
}

#[test]
fn pair_rules() {
    fn pair(c: &mut Config) -> &mut Pair {
        c.pair.as_mut().unwrap()
    }
    assert_problem(
        |c| pair(c).peer = "198.51.100.2".parse().unwrap(),
        "pair.peer",
        "own address",
    );
    assert_problem(
        |c| pair(c).key = "short".into(),
        "pair.key",
        "16 characters",
    );
    assert_problem(
        |c| {
            pair(c).udp = None;
            pair(c).serial = None;
        },
        "pair",
        "heartbeat channel",
    );
    assert_problem(
        |c| pair(c).deadtime = "20ms".parse().unwrap(),
        "pair.deadtime",
        "not longer than the keepalive",
    );
    assert_problem(
        |c| pair(c).deadtime = "10ms".parse().unwrap(),
        "pair.deadtime",
        "not longer than the keepalive",
    );
    assert_problem(
        |c| pair(c).warntime = Some("90ms".parse().unwrap()),
        "pair.warntime",
        "between",
    );
    assert_problem(
        |c| pair(c).initdead = Some("50ms".parse().unwrap()),
        "pair.initdead",
        "shorter than the deadtime",
    );
    assert_problem(
        |c| pair(c).watchdog.as_mut().unwrap().strict_fencing = true,
        "pair.watchdog.timeout",
        "does not fire before the peer's deadtime",
    );
    assert_problem(
        |c| pair(c).watchdog.as_mut().unwrap().timeout = "1500ms".parse().unwrap(),
        "pair.watchdog.timeout",
        "whole number of seconds",
    );
    assert_problem(
        |c| pair(c).udp.as_mut().unwrap().mode = UdpMode::Multicast,
        "pair.udp.group",
        "needs a group",
    );
    assert_problem(
        |c| {
            let udp = pair(c).udp.as_mut().unwrap();
            udp.mode = UdpMode::Multicast;
            udp.group = Some("192.0.2.9".parse().unwrap());
        },
        "pair.udp.group",
        "not a multicast",
    );
    assert_problem(
        |c| pair(c).udp.as_mut().unwrap().interface = "eth5".into(),
        "pair.udp.interface",
        "not configured",
    );
    assert_problem(
        |c| pair(c).serial.as_mut().unwrap().device = "ttyS0".into(),
        "pair.serial.device",
        "is the console",
    );
    assert_problem(
        |c| pair(c).ping_nodes.push("192.0.2.1".parse().unwrap()),
        "pair.ping_nodes[2]",
        "listed twice",
    );
    assert_problem(
        |c| pair(c).ping_nodes.clear(),
        "pair.when_isolated",
        "needs ping_nodes",
    );
    // Strict fencing that fits: the watchdog fires before the deadtime ends.
    assert!(problems_after(|c| {
        let p = pair(c);
        p.deadtime = "10s".parse().unwrap();
        p.initdead = None;
        p.warntime = None;
        p.watchdog.as_mut().unwrap().strict_fencing = true;
    })
    .is_empty());
}

#[test]
fn admin_rules() {
    assert_problem(
        |c| c.admin.password_hash = Some("hunter2".into()),
        "admin.password_hash",
        "never stored plain",
    );
    assert_problem(
        |c| c.admin.allowed.push("192.0.2.0/24".parse().unwrap()),
        "admin.allowed[2]",
        "listed twice",
    );
}
