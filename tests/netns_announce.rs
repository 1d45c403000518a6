//! Network-namespace tests of `sys::announce` on the host kernel: two namespaces joined by a
//! veth pair; the announcement is sent from namespace A and captured in namespace B with a
//! packet socket, and B's neighbour table is checked for the effect. They need root, so they
//! are ignored by default and run by scripts/test with `--ignored --test-threads=1`.
//!
//! Sender and receiver are threads that setns() into their namespace, so that one test process
//! drives both ends. The sender thread also gets its own mount namespace with a sysfs mounted
//! from inside A: sysfs shows the interfaces of the namespace that mounted it, and the host's
//! /sys knows nothing of A's veth.
//!
//! The same veth carries the pair's heartbeat in its broadcast and multicast modes.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use director::config::model::{Isolation, RolePreference};
use director::ha::machine::{Channel, Machine, Role, Settings};
use director::ha::message::Key;
use director::ha::run::{spawn_thread, Effects, Setup, Udp};
use director::sys::announce::{
    announce_while, AnnounceError, Announcement, ArpForm, MacAddr, Sent,
};
use nix::mount::{mount, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

const VIP4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const B_ADDR4: &str = "192.0.2.2/24";
const STALE_MAC: &str = "02:00:00:00:00:99";
/// No capture runs longer than this, whatever happens to the sender.
const CAPTURE_LIMIT: Duration = Duration::from_secs(5);
/// Time after the sender is done for the last frame to cross the veth.
const GRACE: Duration = Duration::from_millis(300);

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().unwrap()
}

/// Runs `ip` with `args`; a failure fails the test with ip's own message.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The first string value of `"key":"..."` in ip's JSON output (no JSON crate in the tree,
/// and ip's output is regular enough).
fn json_string(text: &str, key: &str) -> Option<String> {
    let marker = format!("\"{key}\":\"");
    let start = text.find(&marker)? + marker.len();
    let end = text[start..].find('"')? + start;
    Some(text[start..end].to_string())
}

/// Two namespaces, A with `va` and B with `vb`, the two ends of one veth pair, both up.
/// Dropping it deletes both namespaces, which destroys the veth pair with them.
struct Pair {
    a: String,
    b: String,
}

impl Pair {
    fn new() -> Pair {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(2, Ordering::Relaxed);
        let pid = std::process::id();
        // The guard exists before anything is created, so a failure half-way still cleans up.
        let pair = Pair {
            a: format!("dirtest-{pid}-{n}"),
            b: format!("dirtest-{pid}-{}", n + 1),
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        // Created inside A, so the short names cannot collide with the host's interfaces.
        ip(&[
            "-n", &pair.a, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", &pair.a, "link", "set", "vb", "netns", &pair.b]);
        ip(&["-n", &pair.a, "link", "set", "va", "up"]);
        ip(&["-n", &pair.b, "link", "set", "vb", "up"]);
        pair.wait_for_carrier();
        pair
    }

    fn wait_for_carrier(&self) {
        let deadline = Instant::now() + CAPTURE_LIMIT;
        loop {
            let a = ip(&["-n", &self.a, "link", "show", "va"]);
            let b = ip(&["-n", &self.b, "link", "show", "vb"]);
            if a.contains("LOWER_UP") && b.contains("LOWER_UP") {
                return;
            }
            assert!(Instant::now() < deadline, "veth has no carrier:\n{a}{b}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// va's MAC as `ip -n A -j link` reports it.
    fn mac_of_a(&self) -> MacAddr {
        let json = ip(&["-n", &self.a, "-j", "link", "show", "va"]);
        let text = json_string(&json, "address").expect("address in ip -j link");
        MacAddr::parse(&text).expect("a MAC from ip")
    }

    /// B's neighbour entry for `address` on vb: its MAC, if it has one.
    fn neighbour_in_b(&self, address: IpAddr) -> Option<MacAddr> {
        let family = if address.is_ipv4() { "-4" } else { "-6" };
        let json = ip(&[
            "-n",
            &self.b,
            family,
            "-j",
            "neigh",
            "show",
            &address.to_string(),
            "dev",
            "vb",
        ]);
        json_string(&json, "lladdr").and_then(|text| MacAddr::parse(&text))
    }

    /// Polls B's neighbour entry for `address` until it names `mac` (true) or a second passes.
    fn neighbour_in_b_becomes(&self, address: IpAddr, mac: MacAddr) -> bool {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if self.neighbour_in_b(address) == Some(mac) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread into the network namespace `ns`.
fn enter_netns(ns: &str) {
    let file = File::open(format!("/run/netns/{ns}")).expect("open the namespace");
    setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the namespace");
}

/// Runs `announcement` from namespace A in its own thread, with a sysfs mounted from inside A.
fn send_from(ns: &str, announcement: Announcement) -> JoinHandle<Result<Sent, AnnounceError>> {
    send_from_while(ns, announcement, Arc::new(AtomicBool::new(true)))
}

/// `send_from`, the rounds after the first only while `go_on` holds.
fn send_from_while(
    ns: &str,
    announcement: Announcement,
    go_on: Arc<AtomicBool>,
) -> JoinHandle<Result<Sent, AnnounceError>> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        // A mount namespace of this thread only, private so that nothing propagates back to
        // the host, where a sysfs of A shadows the host's /sys.
        unshare(CloneFlags::CLONE_NEWNS).expect("unshare the mount namespace");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / private");
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .expect("mount a sysfs of namespace A");
        announce_while(&announcement, Path::new("/sys"), || {
            go_on.load(Ordering::SeqCst)
        })
    })
}

/// One frame seen on vb, and when.
struct Captured {
    at: Instant,
    frame: Vec<u8>,
}

/// A packet socket on `interface` of namespace `ns`, in its own thread, keeping incoming frames
/// that `keep` accepts. It stops after `max` of them, when `stop` is set, or after
/// `CAPTURE_LIMIT`. The returned channel says when the socket is bound.
fn capture(
    ns: &str,
    interface: &str,
    keep: fn(&[u8]) -> bool,
    max: usize,
    stop: Arc<AtomicBool>,
) -> (JoinHandle<Vec<Captured>>, mpsc::Receiver<()>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let ns = ns.to_string();
    let interface = interface.to_string();
    let handle = std::thread::spawn(move || {
        enter_netns(&ns);
        let socket = PacketCapture::open(&interface);
        let _ = ready_tx.send(());
        let deadline = Instant::now() + CAPTURE_LIMIT;
        let mut frames = Vec::new();
        while frames.len() < max && Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
            if let Some(frame) = socket.receive_incoming() {
                if keep(&frame) {
                    frames.push(Captured {
                        at: Instant::now(),
                        frame,
                    });
                }
            }
        }
        frames
    });
    ready_rx
        .recv_timeout(CAPTURE_LIMIT)
        .expect("the capture socket is bound");
    (handle, ready_rx)
}

/// A receiving AF_PACKET socket for every protocol, with a short receive timeout so that the
/// capture loop checks its limits.
struct PacketCapture {
    fd: OwnedFd,
}

impl PacketCapture {
    fn open(interface: &str) -> PacketCapture {
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        let name = std::ffi::CString::new(interface).unwrap();
        // SAFETY: `name` is a valid C string that outlives the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no interface {interface}");
        // SAFETY: plain system call, no memory passed.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        assert!(raw >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: a descriptor socket() just returned, owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: an all-zero sockaddr_ll is a valid value of the plain C struct.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = ifindex as i32;
        // SAFETY: `address` is initialised and its size is passed; the kernel only reads it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: `timeout` is a valid timeval and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&timeout as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_RCVTIMEO: {}", std::io::Error::last_os_error());
        PacketCapture { fd }
    }

    /// One frame that came in on the link (not one B sent), or None on timeout.
    fn receive_incoming(&self) -> Option<Vec<u8>> {
        let mut buffer = vec![0u8; 2048];
        // SAFETY: as above, an all-zero sockaddr_ll is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `buffer` is writable for its length, `from` for `from_len` bytes.
        let n = unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                0,
                (&mut from as *mut libc::sockaddr_ll).cast(),
                &mut from_len,
            )
        };
        if n < 0 || from.sll_pkttype == libc::PACKET_OUTGOING {
            return None;
        }
        buffer.truncate(n as usize);
        Some(buffer)
    }
}

/// Sends `announcement` from A while capturing on B's vb, then gives the last frame `GRACE`.
fn send_and_capture(
    pair: &Pair,
    announcement: Announcement,
    keep: fn(&[u8]) -> bool,
    expected: usize,
) -> (Sent, Vec<Captured>) {
    let stop = Arc::new(AtomicBool::new(false));
    // One more than expected: a surplus frame must be seen to fail the exact count.
    let (receiver, _ready) = capture(&pair.b, "vb", keep, expected + 1, stop.clone());
    let sent = send_from(&pair.a, announcement)
        .join()
        .expect("the sender thread")
        .expect("announce");
    std::thread::sleep(GRACE);
    stop.store(true, Ordering::SeqCst);
    let frames = receiver.join().expect("the capture thread");
    (sent, frames)
}

fn print_spacing(what: &str, frames: &[Captured], per_round: usize) {
    let rounds: Vec<&Captured> = frames.iter().step_by(per_round).collect();
    let gaps: Vec<String> = rounds
        .windows(2)
        .map(|w| format!("{:.1} ms", (w[1].at - w[0].at).as_secs_f64() * 1000.0))
        .collect();
    println!(
        "{what}: measured spacing between rounds: [{}]",
        gaps.join(", ")
    );
}

fn is_arp_for_vip4(frame: &[u8]) -> bool {
    frame.len() >= 42 && frame[12..14] == [0x08, 0x06] && frame[28..32] == VIP4.octets()
}

fn is_na_for_vip6(frame: &[u8]) -> bool {
    frame.len() >= 86
        && frame[12..14] == [0x86, 0xdd]
        && frame[20] == 58
        && frame[54] == 136
        && frame[62..78] == vip6().octets()
}

/// Checks one gratuitous ARP frame field by field.
fn check_arp(frame: &[u8], op: u16, mac: MacAddr) {
    assert_eq!(frame[0..6], [0xff; 6], "Ethernet broadcast");
    assert_eq!(frame[6..12], mac.0, "Ethernet source");
    assert_eq!(frame[14..22], [0, 1, 8, 0, 6, 4, 0, op as u8], "ARP header");
    assert_eq!(frame[22..28], mac.0, "sender MAC");
    assert_eq!(frame[28..32], VIP4.octets(), "sender IP");
    let target_mac = if op == 1 { [0; 6] } else { mac.0 };
    assert_eq!(frame[32..38], target_mac, "target MAC");
    assert_eq!(frame[38..42], VIP4.octets(), "target IP");
}

fn arp_announcement(count: u32, spacing: Duration, form: ArpForm) -> Announcement {
    Announcement {
        arp_form: form,
        ..Announcement::new("va", VIP4.into(), count, spacing)
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn gratuitous_arp_request_form_arrives() {
    let pair = Pair::new();
    let mac = pair.mac_of_a();
    let spacing = Duration::from_millis(200);
    let (sent, frames) = send_and_capture(
        &pair,
        arp_announcement(3, spacing, ArpForm::Request),
        is_arp_for_vip4,
        3,
    );
    assert_eq!(sent.mac, mac, "the MAC read from A's sysfs is ip link's");
    assert_eq!(sent.frames, 3);
    assert_eq!(frames.len(), 3, "exactly count frames arrive");
    for c in &frames {
        check_arp(&c.frame, 1, mac);
    }
    print_spacing("ARP request form, spacing 200 ms", &frames, 1);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn gratuitous_arp_reply_form_arrives() {
    let pair = Pair::new();
    let mac = pair.mac_of_a();
    let (sent, frames) = send_and_capture(
        &pair,
        arp_announcement(2, Duration::from_millis(150), ArpForm::Reply),
        is_arp_for_vip4,
        2,
    );
    assert_eq!(sent.mac, mac);
    assert_eq!(frames.len(), 2, "exactly count frames arrive");
    for c in &frames {
        check_arp(&c.frame, 2, mac);
    }
    print_spacing("ARP reply form, spacing 150 ms", &frames, 1);
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn gratuitous_arp_both_forms_send_pairs() {
    let pair = Pair::new();
    let mac = pair.mac_of_a();
    let (sent, frames) = send_and_capture(
        &pair,
        arp_announcement(3, Duration::from_millis(100), ArpForm::Both),
        is_arp_for_vip4,
        6,
    );
    assert_eq!(sent.frames, 6);
    assert_eq!(frames.len(), 6, "count pairs arrive");
    for (i, c) in frames.iter().enumerate() {
        check_arp(&c.frame, if i % 2 == 0 { 1 } else { 2 }, mac);
    }
    print_spacing("ARP both forms, spacing 100 ms", &frames, 2);
}

/// The ICMPv6 checksum recomputed here, apart from the library: the sum over pseudo-header
/// and message, checksum included, must be 0xffff.
fn na_checksum_is_valid(frame: &[u8]) -> bool {
    let message = &frame[54..];
    let mut words = Vec::new();
    words.extend_from_slice(&frame[22..54]);
    words.extend_from_slice(&(message.len() as u32).to_be_bytes());
    words.extend_from_slice(&[0, 0, 0, 58]);
    words.extend_from_slice(message);
    if words.len() % 2 == 1 {
        words.push(0);
    }
    let mut sum: u64 = words
        .chunks(2)
        .map(|w| u64::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn unsolicited_neighbour_advertisement_arrives_and_updates_b() {
    let pair = Pair::new();
    let mac = pair.mac_of_a();
    // B already knows the VIP at another MAC: the old active box.
    let stale = MacAddr::parse(STALE_MAC).unwrap();
    ip(&[
        "-n",
        &pair.b,
        "-6",
        "neigh",
        "replace",
        &vip6().to_string(),
        "lladdr",
        STALE_MAC,
        "dev",
        "vb",
        "nud",
        "stale",
    ]);
    assert_eq!(pair.neighbour_in_b(vip6().into()), Some(stale));

    let announcement = Announcement::new("va", vip6().into(), 3, Duration::from_millis(100));
    let (sent, frames) = send_and_capture(&pair, announcement, is_na_for_vip6, 3);
    assert_eq!(sent.mac, mac);
    assert_eq!(frames.len(), 3, "exactly count NAs arrive");
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    for c in &frames {
        let f = &c.frame;
        assert_eq!(f.len(), 86);
        assert_eq!(f[0..6], [0x33, 0x33, 0, 0, 0, 1], "Ethernet all-nodes");
        assert_eq!(f[6..12], mac.0, "Ethernet source");
        assert_eq!(f[21], 255, "hop limit");
        assert_eq!(f[22..38], vip6().octets(), "source is the VIP");
        assert_eq!(f[38..54], all_nodes.octets(), "destination");
        assert_eq!(f[55], 0, "code");
        assert_eq!(f[58], 0x20, "override set, solicited and router clear");
        assert_eq!(f[62..78], vip6().octets(), "target");
        assert_eq!(f[78..80], [2, 1], "target link-layer address option");
        assert_eq!(f[80..86], mac.0, "option MAC");
        assert!(na_checksum_is_valid(f), "ICMPv6 checksum");
    }
    print_spacing("NA, spacing 100 ms", &frames, 1);
    // B's kernel took it (hop limit, checksum, override all passed its checks).
    assert!(
        pair.neighbour_in_b_becomes(vip6().into(), mac),
        "B's neighbour entry for the VIP still says {:?}",
        pair.neighbour_in_b(vip6().into())
    );
}

/// B has an address on the VIP's subnet (Linux only takes an ARP as gratuitous for an address
/// it routes as unicast on that link) and a stale entry for the VIP at the old MAC.
fn b_knows_the_vip_at_the_old_mac(pair: &Pair) {
    ip(&[
        "-n",
        &pair.b,
        "neigh",
        "replace",
        &VIP4.to_string(),
        "lladdr",
        STALE_MAC,
        "dev",
        "vb",
        "nud",
        "stale",
    ]);
    assert_eq!(
        pair.neighbour_in_b(VIP4.into()),
        MacAddr::parse(STALE_MAC),
        "the old entry is in place"
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn neighbour_entry_in_b_follows_gratuitous_arp() {
    let pair = Pair::new();
    let mac = pair.mac_of_a();
    ip(&["-n", &pair.b, "addr", "add", B_ADDR4, "dev", "vb"]);
    // arp_accept stays at the kernel's default (0) in B: it only governs creating entries
    // from unsolicited ARP; an existing entry is updated without it.
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &pair.b,
            "cat",
            "/proc/sys/net/ipv4/conf/vb/arp_accept",
        ])
        .output()
        .expect("read arp_accept in B");
    println!(
        "arp_accept on vb in B: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );

    for form in [ArpForm::Request, ArpForm::Reply] {
        b_knows_the_vip_at_the_old_mac(&pair);
        let sent = send_from(&pair.a, arp_announcement(1, Duration::ZERO, form))
            .join()
            .expect("the sender thread")
            .expect("announce");
        assert_eq!(sent.frames, 1);
        assert!(
            pair.neighbour_in_b_becomes(VIP4.into(), mac),
            "{form:?}: B's entry for the VIP still says {:?}",
            pair.neighbour_in_b(VIP4.into())
        );
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn announcing_on_a_down_link_fails_with_its_name_and_errno() {
    let pair = Pair::new();
    ip(&["-n", &pair.a, "link", "set", "va", "down"]);
    let e = send_from(&pair.a, arp_announcement(1, Duration::ZERO, ArpForm::Both))
        .join()
        .expect("the sender thread")
        .unwrap_err();
    assert!(matches!(e, AnnounceError::Send { .. }), "{e}");
    assert_eq!(e.errno(), Some(libc::ENETDOWN), "{e}");
    assert!(e.to_string().contains("va"), "{e}");

    let e = send_from(
        &pair.a,
        Announcement::new("nosuch0", VIP4.into(), 1, Duration::ZERO),
    )
    .join()
    .expect("the sender thread")
    .unwrap_err();
    assert!(matches!(e, AnnounceError::ReadMac { .. }), "{e}");
    assert!(e.to_string().contains("nosuch0"), "{e}");
}

/// An announcement stopped half-way (the node released the VIP) sends no further round.
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn an_announcement_stops_when_told() {
    let pair = Pair::new();
    let go_on = Arc::new(AtomicBool::new(true));
    let announcement = arp_announcement(5, Duration::from_millis(200), ArpForm::Both);
    let sender = send_from_while(&pair.a, announcement, Arc::clone(&go_on));
    std::thread::sleep(Duration::from_millis(300));
    go_on.store(false, Ordering::SeqCst);
    let sent = sender.join().expect("the sender").expect("sent");
    // Two rounds (a request and a reply each) before the stop, none after.
    assert_eq!(sent.frames, 4, "{sent:?}");
}

/// A node whose takeovers and releases do nothing (only the heartbeat is under test).
struct NoEffects;

impl Effects for NoEffects {
    fn take_over(&mut self, _planned: bool) -> Result<(), String> {
        Ok(())
    }

    fn release(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// The pair's UDP heartbeat sent to the broadcast address, and to a multicast group, on the
/// veth: the two nodes hear each other and agree on one active node. Each socket is bound to
/// its interface and joins the group there (these namespaces have no route for the group).
#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn the_heartbeat_goes_over_broadcast_and_multicast() {
    const PORT: u16 = 694;
    for to in [Ipv4Addr::BROADCAST, Ipv4Addr::new(239, 192, 0, 94)] {
        let pair = Pair::new();
        ip(&["-n", &pair.a, "addr", "add", "198.51.100.2/24", "dev", "va"]);
        ip(&["-n", &pair.b, "addr", "add", "198.51.100.3/24", "dev", "vb"]);
        let ends = [
            (pair.a.clone(), "va", RolePreference::Primary),
            (pair.b.clone(), "vb", RolePreference::Backup),
        ];
        let mut nodes = Vec::new();
        for (i, (ns, device, preference)) in ends.into_iter().enumerate() {
            let handle = spawn_thread(move || {
                enter_netns(&ns);
                let udp = Udp::open(PORT, Some(device), SocketAddr::new(to.into(), PORT))
                    .unwrap_or_else(|e| panic!("the heartbeat socket to {to} on {device}: {e}"));
                let settings = Settings {
                    node: i as u64 + 1,
                    preference,
                    priority: 100,
                    keepalive: Duration::from_millis(20),
                    deadtime: Duration::from_millis(200),
                    warntime: None,
                    initdead: Duration::from_millis(400),
                    auto_failback: false,
                    ping_nodes: 0,
                    isolation: Isolation::PingNodesDecide,
                    channels: vec![Channel::Udp],
                };
                Some(Setup {
                    machine: Machine::new(settings, Duration::ZERO),
                    key: Key::new(b"the veth pair's key"),
                    incarnation: 1,
                    udp: Some(udp),
                    serial: None,
                    effects: Box::new(NoEffects),
                    watchdog: None,
                })
            })
            .expect("the pair's thread");
            nodes.push(handle);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let deadline = Instant::now() + CAPTURE_LIMIT;
            loop {
                let a = nodes[0].status().await.expect("node A runs");
                let b = nodes[1].status().await.expect("node B runs");
                if a.role == Role::Active
                    && b.role == Role::Standby
                    && a.peer_alive
                    && b.peer_alive
                    && a.accepted > 5
                    && b.accepted > 5
                {
                    eprintln!(
                        "heartbeat to {to}: A active, B standby; {} and {} beats accepted",
                        a.accepted, b.accepted
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "heartbeat to {to}: no agreement:\n{a:?}\n{b:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        // The pairs stop with their handles, before the namespaces go.
        drop(nodes);
        std::thread::sleep(Duration::from_millis(100));
    }
}
