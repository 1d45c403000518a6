//! The pair's figures, beside keepalived's in the same lab: two director VMs, two direct-routing
//! real servers, a client making a paced HTTP load on the VIP and holding long-lived
//! connections through it. The active director is power-killed (its QEMU killed) again and
//! again; each time the longest time the client went without an answer is measured, the
//! long-lived connections that still work afterwards are counted, and the killed node is booted
//! again to stand by for the next round. Then the same with keepalived (Debian's package, VRRP
//! with the IPVS sync daemon) on the same VMs. Needs root; `scripts/bench` runs it:
//! `cargo test --release --test bench_pair -- --ignored --nocapture`.
//! DIRECTOR_BENCH_KILLS sets the rounds (default 20) for the director and keepalived with a
//! 0.1 s advertisement; keepalived with its default 1 s advertisement gets 3.

mod vm;

use std::collections::BTreeMap;
use std::time::Duration;

use vm::lab::{
    dr_virtual_servers, node_config, other, pair_node_config, pair_section, Node, Pair, PairSpec,
    READY, VIP,
};
use vm::load::{Paced, PacedRun, Streams};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);
const REAL_SERVERS: [(&str, &str); 2] = [("rs1", "192.0.2.21"), ("rs2", "192.0.2.22")];
/// Long-lived connections held through each kill.
const STREAMS: usize = 20;
/// The echo port the long-lived connections use.
const ECHO: u16 = 7;
/// A request every LOAD_INTERVAL; the kill comes KILL_AFTER into the load.
const LOAD_INTERVAL: Duration = Duration::from_millis(5);
const KILL_AFTER: Duration = Duration::from_millis(1500);

/// What runs the pair.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Contender {
    /// The director's own pair: keepalive and deadtime in ms.
    Director { keepalive: u32, deadtime: u32 },
    /// keepalived's VRRP (version 3) with this advertisement interval in centiseconds.
    Keepalived { advert_cs: u32 },
}

impl Contender {
    fn name(self) -> String {
        match self {
            Contender::Director {
                keepalive,
                deadtime,
            } => format!("director (keepalive {keepalive} ms, deadtime {deadtime} ms)"),
            Contender::Keepalived { advert_cs } => format!(
                "keepalived {} (VRRPv3, advert_int {})",
                keepalived_version(),
                f64::from(advert_cs) / 100.0
            ),
        }
    }

    /// What a node logs when it becomes the active one.
    fn became_active(self) -> &'static str {
        match self {
            Contender::Director { .. } => "-> active",
            Contender::Keepalived { .. } => "Entering MASTER STATE",
        }
    }

    /// How long each round's load runs: well past the takeover.
    fn load_for(self) -> Duration {
        match self {
            Contender::Keepalived { advert_cs } if advert_cs >= 50 => Duration::from_secs(8),
            _ => Duration::from_secs(4),
        }
    }

    /// What a node logs when it stands by.
    fn stands_by(self) -> &'static str {
        match self {
            Contender::Director { .. } => "-> standby",
            Contender::Keepalived { .. } => "Entering BACKUP STATE",
        }
    }
}

fn keepalived_version() -> String {
    std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stderr).to_string()
                + &String::from_utf8_lossy(&o.stdout);
            text.split_whitespace().nth(1).map(str::to_string)
        })
        .unwrap_or_else(|| "?".to_string())
}

fn director_config(node: Node, keepalive: u32, deadtime: u32) -> String {
    format!(
        "{base}{services}{pair}",
        base = pair_node_config(node),
        services = dr_virtual_servers(&[("web", 80), ("echo", ECHO)], &REAL_SERVERS),
        pair = pair_section(
            node,
            "the bench pair's shared key",
            &format!("{keepalive}ms"),
            &format!("{deadtime}ms"),
            "10s"
        ),
    )
}

/// keepalived.conf for `node`: VRRP on eth1 holding the VIP on eth0, the IPVS sync daemon on
/// eth1, the same two virtual servers with TCP checks. Both start as backup without
/// preemption (a returning node stands by, as the director's pair does without
/// auto_failback); A has the higher priority.
fn keepalived_config(node: Node, advert_cs: u32) -> String {
    let priority = match node {
        Node::A => 150,
        Node::B => 100,
    };
    let mut real_servers = String::new();
    for (_, address) in REAL_SERVERS {
        real_servers += &format!(
            "    real_server {address} PORT {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
        );
    }
    let service = |port: u16| {
        format!(
            "virtual_server {VIP} {port} {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n{}}}\n",
            real_servers.replace("PORT", &port.to_string())
        )
    };
    format!(
        "global_defs {{\n    router_id lvs-{letter}\n    vrrp_version 3\n    lvs_sync_daemon eth1 VI_1 id 1\n}}\n\
         vrrp_instance VI_1 {{\n    state BACKUP\n    nopreempt\n    interface eth1\n    virtual_router_id 51\n    priority {priority}\n    advert_int {advert}\n    virtual_ipaddress {{\n        {VIP}/32 dev eth0\n    }}\n}}\n{http}{echo}",
        letter = node.letter(),
        advert = f64::from(advert_cs) / 100.0,
        http = service(80),
        echo = service(ECHO),
    )
}

/// Encodes `bytes` as base64 (the console carries one line; busybox decodes it).
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Starts keepalived on `node` (its director runs no pair and no virtual servers).
fn start_keepalived(pair: &mut Pair, node: Node, advert_cs: u32) {
    let conf = base64(keepalived_config(node, advert_cs).as_bytes());
    pair.sh(
        node,
        "mkdir -p /etc/keepalived && : > /tmp/keepalived.b64",
        SHORT,
    );
    // In pieces: the console's line is short.
    for piece in conf.as_bytes().chunks(200) {
        let piece = String::from_utf8_lossy(piece);
        pair.sh(
            node,
            &format!("echo -n {piece} >> /tmp/keepalived.b64"),
            SHORT,
        );
    }
    let out = pair.sh(
        node,
        "base64 -d /tmp/keepalived.b64 > /etc/keepalived/keepalived.conf && (keepalived -n -l -D -f /etc/keepalived/keepalived.conf </dev/null >/dev/console 2>&1 &) && echo started",
        SHORT,
    );
    assert!(out.contains("started"), "keepalived on {node:?}: {out}");
}

/// How many times `node`'s console (since its last boot) says `needle` (keepalived prints
/// each line twice, as a console line and as a syslog line: its syslog lines count).
fn count(pair: &mut Pair, node: Node, needle: &str) -> usize {
    pair.vm(node)
        .console()
        .lines()
        .filter(|line| {
            line.contains(needle)
                && (!needle.contains("STATE") || line.starts_with("Keepalived_vrrp["))
        })
        .count()
}

/// Planned switch-overs of each kind per contender.
const PLANNED_ROUNDS: u32 = 5;

/// A planned switch-over.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Planned {
    /// `director ctl takeover` on the standby.
    Takeover,
    /// `poweroff` on the active.
    Shutdown,
}

impl Planned {
    fn label(self) -> &'static str {
        match self {
            Planned::Takeover => "takeover asked on the standby",
            Planned::Shutdown => "clean shutdown of the active",
        }
    }
}

/// One contender's figures.
struct Figures {
    name: String,
    outages: Vec<Duration>,
    /// Long-lived connections: (still working after the kill, held before it), per round.
    streams: Vec<(usize, usize)>,
    /// Takeovers that no kill explains.
    false_failovers: usize,
    /// Kills after which the standby did not take over.
    missed: usize,
    failed_requests: u32,
    requests: u32,
    /// Per kind of planned switch-over: rounds, failed requests, requests, longest outage.
    planned: BTreeMap<&'static str, (u32, u32, u32, Duration)>,
}

fn run(contender: Contender, kills: usize, tag: &str) -> Figures {
    let dir = test_dir(&format!("bench-pair-{tag}"));
    let mut spec = PairSpec::new(tag, &dir);
    match contender {
        Contender::Director {
            keepalive,
            deadtime,
        } => {
            spec.config_a = director_config(Node::A, keepalive, deadtime);
            spec.config_b = director_config(Node::B, keepalive, deadtime);
        }
        Contender::Keepalived { .. } => {
            spec.config_a = node_config(Node::A, false);
            spec.config_b = node_config(Node::B, false);
            spec.keepalived = true;
            spec.memory = Some(384);
        }
    }
    let mut pair = spec.boot();
    for (name, address) in REAL_SERVERS {
        pair.real_server_dr(name, address);
        pair.start_echo(name, ECHO);
    }
    pair.wait_ready(BOOT);
    if let Contender::Keepalived { advert_cs } = contender {
        start_keepalived(&mut pair, Node::A, advert_cs);
        pair.logged(Node::A, contender.became_active(), SHORT);
        start_keepalived(&mut pair, Node::B, advert_cs);
    } else {
        pair.logged(Node::A, contender.became_active(), SHORT);
    }
    pair.logged(Node::B, contender.stands_by(), SHORT);
    // The active's sync daemon starts as master just after it takes over: connections made
    // before are synced only after many more packets.
    std::thread::sleep(Duration::from_secs(1));

    let name = contender.name();
    let mut figures = Figures {
        name: name.clone(),
        outages: Vec::new(),
        streams: Vec::new(),
        false_failovers: 0,
        missed: 0,
        failed_requests: 0,
        requests: 0,
        planned: BTreeMap::new(),
    };
    let mut active = Node::A;
    // Takeovers seen so far on each node's console since its last boot.
    let mut seen = [
        count(&mut pair, Node::A, contender.became_active()),
        count(&mut pair, Node::B, contender.became_active()),
    ];
    for round in 1..=kills {
        let standby = other(active);
        // The standby must have stood by since its boot: any takeover since is a false one.
        let now = count(&mut pair, standby, contender.became_active());
        figures.false_failovers += now - seen[index(standby)];

        let mut streams = Streams::open(pair.client(), &format!("{VIP}:{ECHO}"), STREAMS)
            .unwrap_or_else(|e| panic!("round {round}: open the long-lived connections: {e}"));
        // A few exchanges, so that the connections are established and synced to the standby.
        for _ in 0..5 {
            streams.exchange(Duration::from_secs(2));
            std::thread::sleep(Duration::from_millis(200));
        }
        let held = streams.open_count();
        std::thread::sleep(Duration::from_secs(1));

        let load = PacedRun::start(
            pair.client(),
            &Paced::new(&format!("{VIP}:80"), LOAD_INTERVAL, contender.load_for()),
        )
        .unwrap_or_else(|e| panic!("round {round}: start the load: {e}"));
        std::thread::sleep(KILL_AFTER);
        pair.power_kill(active);
        let report = load.wait();
        let survived = streams.exchange(Duration::from_secs(5));
        let took_over = count(&mut pair, standby, contender.became_active());
        eprintln!(
            "{name}: round {round}: killed {active:?} at {:.3} s of the load; {report}; {survived} of {held} long-lived connections work; {standby:?} took over: {}",
            KILL_AFTER.as_secs_f64(),
            took_over > now
        );
        figures.outages.push(report.load.longest_outage);
        figures.streams.push((survived, held));
        figures.failed_requests += report.load.failures;
        figures.requests += report.load.requests;
        seen[index(standby)] = took_over;
        figures.false_failovers += took_over.saturating_sub(now + 1);
        figures.missed += usize::from(took_over == now);
        drop(streams);

        // The killed node boots again and stands by.
        pair.restart(active);
        pair.logged(active, READY, BOOT);
        if let Contender::Keepalived { advert_cs } = contender {
            start_keepalived(&mut pair, active, advert_cs);
        }
        pair.logged(active, contender.stands_by(), SHORT);
        seen[index(active)] = count(&mut pair, active, contender.became_active());
        active = standby;
    }
    let last = other(active);
    let now = count(&mut pair, last, contender.became_active());
    figures.false_failovers += now - seen[index(last)];

    // Planned switch-overs under the same load: a takeover asked on the standby (the
    // director's `ctl takeover`; keepalived has no such command), and a clean shutdown of the
    // active (`poweroff`: the director hands over, keepalived sends its priority 0).
    let mut ways = vec![Planned::Shutdown];
    if matches!(contender, Contender::Director { .. }) {
        ways.insert(0, Planned::Takeover);
    }
    for way in ways {
        for round in 1..=PLANNED_ROUNDS {
            let standby = other(active);
            let load = PacedRun::start(
                pair.client(),
                &Paced::new(&format!("{VIP}:80"), LOAD_INTERVAL, contender.load_for()),
            )
            .unwrap_or_else(|e| panic!("{way:?} {round}: start the load: {e}"));
            std::thread::sleep(KILL_AFTER);
            match way {
                Planned::Takeover => {
                    let said = pair.sh(standby, "director ctl takeover", SHORT);
                    assert!(said.starts_with("takeover asked"), "{said}");
                }
                Planned::Shutdown => pair.vm(active).send("poweroff"),
            }
            let report = load.wait();
            eprintln!("{name}: {way:?} {round}: {report}");
            let row = figures
                .planned
                .entry(way.label())
                .or_insert((0, 0, 0, Duration::ZERO));
            row.0 += 1;
            row.1 += report.load.failures;
            row.2 += report.load.requests;
            row.3 = row.3.max(report.load.longest_outage);
            if way == Planned::Shutdown {
                pair.vm(active).wait_exit(SHORT);
                pair.restart(active);
                pair.logged(active, READY, BOOT);
                if let Contender::Keepalived { advert_cs } = contender {
                    start_keepalived(&mut pair, active, advert_cs);
                }
                pair.logged(active, contender.stands_by(), SHORT);
            } else {
                pair.logged(active, "active -> standby", SHORT);
            }
            active = standby;
        }
    }
    figures
}

fn index(node: Node) -> usize {
    match node {
        Node::A => 0,
        Node::B => 1,
    }
}

fn print(figures: &[Figures]) {
    println!(
        "| {:<52} | {:>6} | {:>9} | {:>9} | {:>9} | {:>12} | {:>12} | {:>11} |",
        "power-kill of the active, client outage",
        "rounds",
        "median",
        "worst",
        "> 0.2 s",
        "false/missed",
        "conns kept",
        "failed"
    );
    for f in figures {
        let mut sorted = f.outages.clone();
        sorted.sort();
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
        let worst = sorted.last().copied().unwrap_or_default();
        let over = sorted
            .iter()
            .filter(|d| **d > Duration::from_millis(200))
            .count();
        let kept: usize = f.streams.iter().map(|s| s.0).sum();
        let held: usize = f.streams.iter().map(|s| s.1).sum();
        println!(
            "| {:<52} | {:>6} | {:>7.3} s | {:>7.3} s | {:>9} | {:>12} | {:>12} | {:>11} |",
            f.name,
            sorted.len(),
            median.as_secs_f64(),
            worst.as_secs_f64(),
            over,
            format!("{}/{}", f.false_failovers, f.missed),
            format!("{kept}/{held}"),
            format!("{}/{}", f.failed_requests, f.requests),
        );
    }
    println!(
        "| {:<52} | {:<30} | {:>6} | {:>15} | {:>9} |",
        "planned switch-over", "how", "rounds", "failed requests", "longest"
    );
    for f in figures {
        for (how, (rounds, failed, requests, longest)) in &f.planned {
            println!(
                "| {:<52} | {:<30} | {:>6} | {:>15} | {:>7.3} s |",
                f.name,
                how,
                rounds,
                format!("{failed}/{requests}"),
                longest.as_secs_f64()
            );
        }
    }
    for f in figures {
        let all: Vec<String> = f
            .outages
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64()))
            .collect();
        println!("pair outages (s), {}: {}", f.name, all.join(" "));
    }
}

#[test]
#[ignore = "boots two VMs again and again under QEMU (root): run by scripts/bench"]
fn pair_failover_figures() {
    let kills: usize = std::env::var("DIRECTOR_BENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let only = std::env::var("DIRECTOR_BENCH_PAIR").unwrap_or_default();
    // keepalive,deadtime in ms.
    let timing = std::env::var("DIRECTOR_BENCH_PAIR_TIMING").unwrap_or_default();
    let (keepalive, deadtime) = timing
        .split_once(',')
        .and_then(|(k, d)| Some((k.parse().ok()?, d.parse().ok()?)))
        .unwrap_or((10, 40));
    let mut figures = Vec::new();
    if only.is_empty() || only == "director" {
        figures.push(run(
            Contender::Director {
                keepalive,
                deadtime,
            },
            kills,
            "bpd",
        ));
    }
    if only.is_empty() || only == "keepalived" {
        figures.push(run(Contender::Keepalived { advert_cs: 10 }, kills, "bpk"));
        figures.push(run(
            Contender::Keepalived { advert_cs: 100 },
            kills.min(3),
            "bpk1",
        ));
    }
    print(&figures);
}
