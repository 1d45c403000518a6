use super::*;

fn web() -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: "192.0.2.100".parse().unwrap(),
        port: 80,
    }
}

fn persistent_v6_mark() -> Service {
    Service {
        key: ServiceKey::Fwmark {
            family: Family::V6,
            mark: 7,
        },
        scheduler: "wlc".into(),
        flags: Service::PERSISTENT,
        timeout: 300,
        netmask: 64,
    }
}

fn route(address: &str, weight: u32) -> Destination {
    Destination {
        address: address.parse().unwrap(),
        port: 80,
        forwarding: Forwarding::Route,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

fn stats(seed: u64) -> Stats {
    Stats {
        conns: seed << 32 | 1,
        inpkts: seed + 2,
        outpkts: seed + 3,
        inbytes: seed << 40,
        outbytes: seed + 5,
        cps: 6,
        inpps: 7,
        outpps: 8,
        inbps: 9,
        outbps: 10,
    }
}

fn stats64(stats: &Stats) -> Attributes {
    let mut nest = Attributes::default();
    // The kernel's nla_put_u64_64bit may put a padding attribute before a u64.
    nest.put(11, &[]);
    let counters = [
        stats.conns,
        stats.inpkts,
        stats.outpkts,
        stats.inbytes,
        stats.outbytes,
        stats.cps,
        stats.inpps,
        stats.outpps,
        stats.inbps,
        stats.outbps,
    ];
    for (kind, value) in (1u16..).zip(counters) {
        nest.put(kind, &value.to_ne_bytes());
    }
    nest
}

/// What the kernel answers to GET_SERVICE (ip_vs_genl_fill_service).
fn service_reply(entry: &ServiceEntry) -> Vec<u8> {
    let mut nest = service_attributes(&entry.service).unwrap();
    nest.nested(SVC_ATTR_STATS64, stats64(&entry.stats));
    let mut attrs = Attributes::default();
    attrs.nested(CMD_ATTR_SERVICE, nest);
    message(CMD_NEW_SERVICE, attrs)
}

/// What the kernel answers in a GET_DEST dump (ip_vs_genl_fill_dest).
fn destination_reply(entry: &DestinationEntry) -> Vec<u8> {
    let mut nest = destination_attributes(&entry.destination);
    nest.u32(DEST_ATTR_ACTIVE_CONNS, entry.active_conns);
    nest.u32(DEST_ATTR_INACT_CONNS, entry.inactive_conns);
    nest.u32(DEST_ATTR_PERSIST_CONNS, entry.persistent_conns);
    nest.nested(DEST_ATTR_STATS64, stats64(&entry.stats));
    let mut attrs = Attributes::default();
    attrs.nested(CMD_ATTR_DEST, nest);
    message(CMD_NEW_DEST, attrs)
}

fn every_request() -> Vec<Request> {
    let tunnel = Destination {
        address: "2001:db8::11".parse().unwrap(),
        port: 443,
        forwarding: Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            flags: Tunnel::CSUM,
        }),
        weight: 100,
        upper_threshold: 2000,
        lower_threshold: 1500,
    };
    let udp = ServiceKey::Address {
        protocol: Protocol::Udp,
        address: "2001:db8::100".parse().unwrap(),
        port: 53,
    };
    let sctp = ServiceKey::Address {
        protocol: Protocol::Sctp,
        address: "203.0.113.5".parse().unwrap(),
        port: 3868,
    };
    let mut masq = route("198.51.100.12", 1);
    masq.forwarding = Forwarding::Masquerade;
    let mut local = route("127.0.0.1", 1);
    local.forwarding = Forwarding::Local;
    vec![
        Request::NewService(Service::new(web(), "wlc")),
        Request::NewService(persistent_v6_mark()),
        Request::SetService(Service {
            flags: Service::PERSISTENT | Service::SH_PORT,
            timeout: 60,
            netmask: 24,
            ..Service::new(sctp, "sh")
        }),
        Request::DelService(udp),
        Request::GetService(persistent_v6_mark().key),
        Request::GetServices,
        Request::NewDestination(web(), route("198.51.100.11", 3)),
        Request::NewDestination(udp, tunnel.clone()),
        Request::SetDestination(web(), masq),
        Request::SetDestination(web(), local),
        Request::DelDestination {
            service: web(),
            address: "198.51.100.11".parse().unwrap(),
            port: 80,
        },
        Request::GetDestinations(udp),
        Request::Zero(None),
        Request::Zero(Some(web())),
        Request::GetInfo,
        Request::SetConfig(Timeouts {
            tcp: 900,
            tcp_fin: 0,
            udp: 300,
        }),
        Request::GetConfig,
        Request::NewDaemon(SyncDaemon {
            state: SyncState::Backup,
            interface: "eth1".into(),
            sync_id: 42,
        }),
        Request::DelDaemon(SyncState::Master),
        Request::GetDaemons,
    ]
}

#[test]
fn every_request_reads_back_as_it_was_written() {
    for request in every_request() {
        let bytes = request.encode().unwrap();
        assert_eq!(bytes[0], request.command());
        assert_eq!(bytes[1], VERSION);
        assert_eq!(Request::decode(&bytes), Ok(request.clone()), "{request:?}");
    }
}

#[test]
fn only_listings_are_dumps_and_flush_is_not_offered() {
    let dumps: Vec<u8> = every_request()
        .iter()
        .filter(|r| r.is_dump())
        .map(Request::command)
        .collect();
    assert_eq!(dumps, [CMD_GET_SERVICE, CMD_GET_DEST, CMD_GET_DAEMON]);
    // IPVS_CMD_FLUSH is 17: nothing encodes it, and it is not read either.
    assert!(every_request().iter().all(|r| r.command() != 17));
    assert!(Request::decode(&[17, 1, 0, 0]).is_err());
}

#[cfg(target_endian = "little")]
#[test]
fn new_service_tcp_192_0_2_100_port_80_wlc_byte_for_byte() {
    let bytes = Request::NewService(Service::new(web(), "wlc"))
        .encode()
        .unwrap();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        1, 1, 0, 0,                 // genlmsghdr: cmd IPVS_CMD_NEW_SERVICE, version 1, reserved
        84, 0, 1, 0,                // nla 84 bytes, IPVS_CMD_ATTR_SERVICE (nested)
          6, 0, 1, 0, 2, 0, 0, 0,   // IPVS_SVC_ATTR_AF u16 AF_INET (2), 2 bytes padding
          6, 0, 2, 0, 6, 0, 0, 0,   // IPVS_SVC_ATTR_PROTOCOL u16 IPPROTO_TCP (6), padding
          20, 0, 3, 0,              // IPVS_SVC_ATTR_ADDR, union nf_inet_addr (16 bytes):
          192, 0, 2, 100,           //   192.0.2.100
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          6, 0, 4, 0, 0, 80, 0, 0,  // IPVS_SVC_ATTR_PORT be16 80, padding
          8, 0, 6, 0, b'w', b'l', b'c', 0, // IPVS_SVC_ATTR_SCHED_NAME "wlc\0"
          12, 0, 7, 0,              // IPVS_SVC_ATTR_FLAGS, struct ip_vs_flags:
          0, 0, 0, 0,               //   flags 0
          0xff, 0xff, 0xff, 0xff,   //   mask: every bit
          8, 0, 8, 0, 0, 0, 0, 0,   // IPVS_SVC_ATTR_TIMEOUT u32 0
          8, 0, 9, 0, 0xff, 0xff, 0xff, 0xff, // IPVS_SVC_ATTR_NETMASK be32 255.255.255.255
    ];
    assert_eq!(bytes, expected);
}

#[cfg(target_endian = "little")]
#[test]
fn new_service_fwmark_7_v6_persistent_300s_netmask_64_byte_for_byte() {
    let bytes = Request::NewService(persistent_v6_mark()).encode().unwrap();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        1, 1, 0, 0,                 // genlmsghdr: IPVS_CMD_NEW_SERVICE, version 1
        56, 0, 1, 0,                // nla 56 bytes, IPVS_CMD_ATTR_SERVICE
          6, 0, 1, 0, 10, 0, 0, 0,  // IPVS_SVC_ATTR_AF u16 AF_INET6 (10), padding
          8, 0, 5, 0, 7, 0, 0, 0,   // IPVS_SVC_ATTR_FWMARK u32 7 (no protocol/addr/port)
          8, 0, 6, 0, b'w', b'l', b'c', 0, // IPVS_SVC_ATTR_SCHED_NAME "wlc\0"
          12, 0, 7, 0,              // IPVS_SVC_ATTR_FLAGS:
          1, 0, 0, 0,               //   IP_VS_SVC_F_PERSISTENT
          0xff, 0xff, 0xff, 0xff,   //   mask
          8, 0, 8, 0, 0x2c, 1, 0, 0, // IPVS_SVC_ATTR_TIMEOUT u32 300 seconds
          8, 0, 9, 0, 64, 0, 0, 0,  // IPVS_SVC_ATTR_NETMASK: for AF_INET6 the prefix
                                    //   length itself as a u32, not a 128-bit mask
    ];
    assert_eq!(bytes, expected);
}

#[cfg(target_endian = "little")]
#[test]
fn new_dest_198_51_100_11_port_80_route_weight_3_byte_for_byte() {
    let bytes = Request::NewDestination(web(), route("198.51.100.11", 3))
        .encode()
        .unwrap();
    #[rustfmt::skip]
    let expected: Vec<u8> = vec![
        5, 1, 0, 0,                 // genlmsghdr: IPVS_CMD_NEW_DEST, version 1
        48, 0, 1, 0,                // nla 48 bytes, IPVS_CMD_ATTR_SERVICE: the key only
          6, 0, 1, 0, 2, 0, 0, 0,   // AF_INET
          6, 0, 2, 0, 6, 0, 0, 0,   // IPPROTO_TCP
          20, 0, 3, 0, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 192.0.2.100
          6, 0, 4, 0, 0, 80, 0, 0,  // port 80
        72, 0, 2, 0,                // nla 72 bytes, IPVS_CMD_ATTR_DEST
          20, 0, 1, 0,              // IPVS_DEST_ATTR_ADDR, union nf_inet_addr:
          198, 51, 100, 11,         //   198.51.100.11
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
          6, 0, 2, 0, 0, 80, 0, 0,  // IPVS_DEST_ATTR_PORT be16 80
          6, 0, 11, 0, 2, 0, 0, 0,  // IPVS_DEST_ATTR_ADDR_FAMILY u16 AF_INET
          8, 0, 3, 0, 3, 0, 0, 0,   // IPVS_DEST_ATTR_FWD_METHOD IP_VS_CONN_F_DROUTE (3)
          8, 0, 4, 0, 3, 0, 0, 0,   // IPVS_DEST_ATTR_WEIGHT 3
          8, 0, 5, 0, 0, 0, 0, 0,   // IPVS_DEST_ATTR_U_THRESH 0
          8, 0, 6, 0, 0, 0, 0, 0,   // IPVS_DEST_ATTR_L_THRESH 0
    ];
    assert_eq!(bytes, expected);
}

#[cfg(target_endian = "little")]
#[test]
fn a_crafted_get_service_reply_with_stats64_is_read() {
    #[rustfmt::skip]
    let reply: Vec<u8> = vec![
        1, 1, 0, 0,                 // IPVS_CMD_NEW_SERVICE: the answer to GET_SERVICE
        224, 0, 1, 0,               // IPVS_CMD_ATTR_SERVICE, 224 bytes
          6, 0, 1, 0, 2, 0, 0, 0,   // AF_INET
          6, 0, 2, 0, 17, 0, 0, 0,  // IPPROTO_UDP
          20, 0, 3, 0, 192, 0, 2, 53, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // 192.0.2.53
          6, 0, 4, 0, 0, 53, 0, 0,  // port 53
          8, 0, 6, 0, b'r', b'r', 0, 0, // "rr\0" and a byte of padding
          12, 0, 7, 0, 3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, // PERSISTENT | HASHED, mask ~0
          8, 0, 8, 0, 0x58, 2, 0, 0, // timeout 600
          8, 0, 9, 0, 255, 255, 255, 0, // netmask 255.255.255.0
          12, 0, 10, 0,             // IPVS_SVC_ATTR_STATS (32-bit), ignored beside STATS64:
            8, 0, 1, 0, 99, 0, 0, 0, //   conns 99
          128, 0, 12, 0,            // IPVS_SVC_ATTR_STATS64, 128 bytes
            4, 0, 11, 0,            //   IPVS_STATS_ATTR_PAD, aligning the u64s
            12, 0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, // conns 0x1_0000_0002
            12, 0, 2, 0, 20, 0, 0, 0, 0, 0, 0, 0, // inpkts 20
            12, 0, 3, 0, 30, 0, 0, 0, 0, 0, 0, 0, // outpkts 30
            12, 0, 4, 0, 0, 0, 0, 0, 0, 1, 0, 0,  // inbytes 2^40
            12, 0, 5, 0, 50, 0, 0, 0, 0, 0, 0, 0, // outbytes 50
            12, 0, 6, 0, 6, 0, 0, 0, 0, 0, 0, 0,  // cps 6
            12, 0, 7, 0, 7, 0, 0, 0, 0, 0, 0, 0,  // inpps 7
            12, 0, 8, 0, 8, 0, 0, 0, 0, 0, 0, 0,  // outpps 8
            12, 0, 9, 0, 9, 0, 0, 0, 0, 0, 0, 0,  // inbps 9
            12, 0, 10, 0, 10, 0, 0, 0, 0, 0, 0, 0, // outbps 10
    ];
    let entry = decode_service_reply(&reply).unwrap();
    assert_eq!(
        entry.service,
        Service {
            key: ServiceKey::Address {
                protocol: Protocol::Udp,
                address: "192.0.2.53".parse().unwrap(),
                port: 53,
            },
            scheduler: "rr".into(),
            // The kernel's HASHED bit is its own business.
            flags: Service::PERSISTENT,
            timeout: 600,
            netmask: 24,
        }
    );
    assert_eq!(
        entry.stats,
        Stats {
            conns: 0x1_0000_0002,
            inpkts: 20,
            outpkts: 30,
            inbytes: 1 << 40,
            outbytes: 50,
            cps: 6,
            inpps: 7,
            outpps: 8,
            inbps: 9,
            outbps: 10,
        }
    );
}

#[test]
fn every_reply_reads_back_as_the_kernel_writes_it() {
    for service in [Service::new(web(), "wlc"), persistent_v6_mark()] {
        let entry = ServiceEntry {
            service,
            stats: stats(3),
        };
        assert_eq!(decode_service_reply(&service_reply(&entry)), Ok(entry));
    }

    let mut tunnelled = route("2001:db8::11", 7);
    tunnelled.forwarding = Forwarding::Tunnel(Tunnel {
        kind: TunnelKind::Gre,
        port: 0,
        flags: Tunnel::CSUM | Tunnel::REMCSUM,
    });
    for destination in [route("198.51.100.11", 3), tunnelled] {
        let entry = DestinationEntry {
            destination,
            active_conns: 4,
            inactive_conns: 5,
            persistent_conns: 6,
            stats: stats(9),
        };
        let bytes = destination_reply(&entry);
        assert_eq!(decode_destination_reply(&bytes, Family::V4), Ok(entry));
    }

    let daemon = SyncDaemon {
        state: SyncState::Master,
        interface: "eth1".into(),
        sync_id: 7,
    };
    let mut bytes = Request::NewDaemon(daemon.clone()).encode().unwrap();
    // The dump answers with IPVS_CMD_NEW_DAEMON and the same nest (and more we ignore).
    assert_eq!(decode_daemon_reply(&bytes), Ok(daemon));
    bytes[0] = CMD_SET_CONFIG;
    assert!(decode_daemon_reply(&bytes).is_err());

    let timeouts = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    let bytes = Request::SetConfig(timeouts).encode().unwrap();
    assert_eq!(decode_config_reply(&bytes), Ok(timeouts));

    let mut attrs = Attributes::default();
    attrs.u32(INFO_ATTR_VERSION, 0x010201);
    attrs.u32(INFO_ATTR_CONN_TAB_SIZE, 4096);
    assert_eq!(
        decode_info_reply(&message(CMD_SET_INFO, attrs)),
        Ok(Info {
            version: 0x010201,
            connection_table_size: 4096
        })
    );
}

#[test]
fn old_kernels_answers_are_read_too() {
    // No IPVS_DEST_ATTR_ADDR_FAMILY (before mixed families): the service's family; only the
    // 32-bit statistics (before STATS64): u32 counters beside u64 byte counts.
    let mut nest = Attributes::default();
    nest.put(DEST_ATTR_ADDR, &inet_addr("198.51.100.11".parse().unwrap()));
    nest.be16(DEST_ATTR_PORT, 80);
    nest.u32(DEST_ATTR_FWD_METHOD, 0);
    nest.u32(DEST_ATTR_WEIGHT, 1);
    nest.u32(DEST_ATTR_U_THRESH, 0);
    nest.u32(DEST_ATTR_L_THRESH, 0);
    let mut stats = Attributes::default();
    stats.u32(STATS_ATTR_CONNS, 12);
    stats.put(STATS_ATTR_INBYTES, &(1u64 << 33).to_ne_bytes());
    nest.nested(DEST_ATTR_STATS, stats);
    let mut attrs = Attributes::default();
    attrs.nested(CMD_ATTR_DEST, nest);
    let entry = decode_destination_reply(&message(CMD_NEW_DEST, attrs), Family::V4).unwrap();
    assert_eq!(
        entry.destination.address,
        "198.51.100.11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(entry.destination.forwarding, Forwarding::Masquerade);
    assert_eq!((entry.stats.conns, entry.stats.inbytes), (12, 1 << 33));
}

#[test]
fn what_the_kernel_would_refuse_is_not_encoded() {
    let mut long = Service::new(web(), "a-scheduler-name-too-long");
    assert!(Request::NewService(long.clone()).encode().is_err());
    long.scheduler = String::new();
    assert!(Request::NewService(long).encode().is_err());
    let mark_0 = ServiceKey::Fwmark {
        family: Family::V4,
        mark: 0,
    };
    assert!(Request::DelService(mark_0).encode().is_err());
    let mut v6 = persistent_v6_mark();
    v6.netmask = 0;
    assert!(Request::NewService(v6.clone()).encode().is_err());
    v6.netmask = 129;
    assert!(Request::NewService(v6).encode().is_err());
    let mut v4 = Service::new(web(), "rr");
    v4.netmask = 33;
    assert!(Request::SetService(v4).encode().is_err());
    let daemon = SyncDaemon {
        state: SyncState::Master,
        interface: "sixteen-bytes-if".into(),
        sync_id: 1,
    };
    assert!(Request::NewDaemon(daemon).encode().is_err());
    // /0 is a mask of nothing, /32 of everything.
    assert_eq!(netmask(Family::V4, 0), Ok([0; 4]));
    assert_eq!(netmask(Family::V4, 20), Ok([255, 255, 240, 0]));
    assert_eq!(prefix_of(Family::V4, &[255, 255, 240, 0]), Ok(20));
    assert_eq!(prefix_of(Family::V4, &[0; 4]), Ok(0));
}

#[test]
fn hostile_input_gives_errors_never_panics() {
    // Every prefix of every message: shorter ones are errors or lose whole attributes, and
    // nothing panics.
    for request in every_request() {
        let bytes = request.encode().unwrap();
        for len in 0..bytes.len() {
            let _ = Request::decode(&bytes[..len]);
            let _ = decode_service_reply(&bytes[..len]);
            let _ = decode_destination_reply(&bytes[..len], Family::V6);
            let _ = decode_daemon_reply(&bytes[..len]);
        }
    }
    assert!(Request::decode(&[]).is_err());
    assert!(decode_service_reply(&[1, 1, 0]).is_err());

    // An attribute claiming more bytes than there are, or fewer than its own header.
    assert!(parse(&[200, 0, 1, 0, 0, 0, 0, 0]).is_err());
    assert!(parse(&[2, 0, 1, 0, 0, 0, 0, 0]).is_err());
    assert!(decode_service_reply(&[1, 1, 0, 0, 255, 255, 1, 0]).is_err());

    // A family the kernel does not have, an IPv6 service with an IPv4-sized address, a
    // protocol IPVS does not balance, a netmask with holes, a scheduler without its NUL.
    let reply = |edit: &dyn Fn(&mut Attributes)| {
        let mut nest = Attributes::default();
        edit(&mut nest);
        let mut attrs = Attributes::default();
        attrs.nested(CMD_ATTR_SERVICE, nest);
        decode_service_reply(&message(CMD_NEW_SERVICE, attrs))
    };
    let full = |nest: &mut Attributes, af: u16, protocol: u16, address: &[u8], mask: [u8; 4]| {
        nest.u16(SVC_ATTR_AF, af);
        nest.u16(SVC_ATTR_PROTOCOL, protocol);
        nest.put(SVC_ATTR_ADDR, address);
        nest.be16(SVC_ATTR_PORT, 80);
        nest.put(SVC_ATTR_SCHED_NAME, b"rr\0");
        nest.put(SVC_ATTR_FLAGS, &[0; 8]);
        nest.u32(SVC_ATTR_TIMEOUT, 0);
        nest.put(SVC_ATTR_NETMASK, &mask);
    };
    let v4 = [192, 0, 2, 1];
    let all = [255; 4];
    assert!(reply(&|n| full(n, 2, 6, &v4, all)).is_ok());
    assert!(reply(&|n| full(n, 7, 6, &v4, all)).is_err());
    assert!(reply(&|n| full(n, 10, 6, &v4, all)).is_err());
    assert!(reply(&|n| full(n, 2, 47, &v4, all)).is_err());
    assert!(reply(&|n| full(n, 2, 6, &[192, 0], all)).is_err());
    assert!(reply(&|n| full(n, 2, 6, &[0; 17], all)).is_err());
    assert!(reply(&|n| full(n, 2, 6, &v4, [255, 0, 255, 0])).is_err());
    assert!(reply(&|n| full(n, 10, 6, &[0; 16], 200u32.to_ne_bytes())).is_err());
    assert!(reply(&|n| {
        n.put(SVC_ATTR_SCHED_NAME, b"rr");
        full(n, 2, 6, &v4, all)
    })
    .is_err());
    assert!(reply(&|n| {
        n.put(SVC_ATTR_SCHED_NAME, b"");
        full(n, 2, 6, &v4, all)
    })
    .is_err());
    // A destination by a forwarding method that is not one (bypass, 4), a tunnel type the
    // kernel does not have, a missing weight.
    let destination = |fwd: u32, tunnel_type: u8, weight: bool| {
        let mut nest = destination_key_attributes("198.51.100.11".parse().unwrap(), 80);
        nest.u32(DEST_ATTR_FWD_METHOD, fwd);
        if weight {
            nest.u32(DEST_ATTR_WEIGHT, 1);
        }
        nest.u32(DEST_ATTR_U_THRESH, 0);
        nest.u32(DEST_ATTR_L_THRESH, 0);
        nest.u8(DEST_ATTR_TUN_TYPE, tunnel_type);
        let mut attrs = Attributes::default();
        attrs.nested(CMD_ATTR_DEST, nest);
        decode_destination_reply(&message(CMD_NEW_DEST, attrs), Family::V4)
    };
    assert!(destination(3, 0, true).is_ok());
    assert!(destination(4, 0, true).is_err());
    assert!(destination(2, 9, true).is_err());
    assert!(destination(3, 0, false).is_err());

    // Junk of every length up to 300 bytes, in several patterns.
    for seed in 1..8u32 {
        for len in 0..300u32 {
            let junk: Vec<u8> = (0..len).map(|i| (i * seed * 37 % 251) as u8).collect();
            let _ = Request::decode(&junk);
            let _ = decode_service_reply(&junk);
            let _ = decode_destination_reply(&junk, Family::V4);
            let _ = decode_daemon_reply(&junk);
            let _ = decode_config_reply(&junk);
            let _ = decode_info_reply(&junk);
        }
    }
}

/// The captures of scripts/capture-ipvs: (ipvsadm's arguments, [(direction, payload)]), the
/// direction '>' for what ipvsadm sent, '<' for what the kernel answered, '!' for a refusal
/// (its errno's name as the payload's text).
type Captured = (char, Vec<u8>);

fn captures() -> Vec<(String, Vec<Captured>)> {
    let mut out: Vec<(String, Vec<Captured>)> = Vec::new();
    for line in include_str!("captures.txt").lines() {
        if let Some(command) = line.strip_prefix("# ipvsadm ") {
            out.push((command.to_string(), Vec::new()));
        } else if let (Some((_, messages)), Some((direction, rest))) =
            (out.last_mut(), line.split_once(' '))
        {
            let direction = direction.chars().next().expect("a direction");
            let bytes = if direction == '!' {
                rest.as_bytes().to_vec()
            } else {
                (0..rest.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&rest[i..i + 2], 16).expect("hex"))
                    .collect()
            };
            messages.push((direction, bytes));
        }
    }
    out
}

/// What ipvsadm sent for `command`, past its GET_INFO (every ipvsadm run asks for it first).
fn sent(command: &str) -> Vec<Vec<u8>> {
    let captures = captures();
    let (_, messages) = captures
        .iter()
        .find(|(c, _)| c == command)
        .unwrap_or_else(|| panic!("no capture of ipvsadm {command}"));
    messages
        .iter()
        .filter(|(d, m)| *d == '>' && m.first() != Some(&CMD_GET_INFO))
        .map(|(_, m)| m.clone())
        .collect()
}

fn answered(command: &str) -> Vec<Captured> {
    let captures = captures();
    let (_, messages) = captures
        .iter()
        .find(|(c, _)| c == command)
        .unwrap_or_else(|| panic!("no capture of ipvsadm {command}"));
    // Past the answer to GET_INFO.
    messages
        .iter()
        .filter(|(d, m)| *d != '>' && m.first() != Some(&CMD_SET_INFO))
        .cloned()
        .collect()
}

fn tcp(address: &str, port: u16) -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: address.parse().unwrap(),
        port,
    }
}

fn destination(address: &str, port: u16, forwarding: Forwarding, weight: u32) -> Destination {
    Destination {
        address: address.parse().unwrap(),
        port,
        forwarding,
        weight,
        upper_threshold: 0,
        lower_threshold: 0,
    }
}

#[test]
fn what_ipvsadm_sent_the_kernel_reads_as_we_read_it_and_we_write_the_same() {
    let dns6 = ServiceKey::Address {
        protocol: Protocol::Udp,
        address: "2001:db8::100".parse().unwrap(),
        port: 53,
    };
    let mark7 = ServiceKey::Fwmark {
        family: Family::V4,
        mark: 7,
    };
    let web = tcp("192.0.2.100", 80);
    let expected = [
        (
            "-A -t 192.0.2.100:80 -s wrr",
            Request::NewService(Service::new(web, "wrr")),
        ),
        (
            "-a -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 3",
            Request::NewDestination(web, destination("192.0.2.21", 80, Forwarding::Route, 3)),
        ),
        (
            "-A -u [2001:db8::100]:53 -s sh -b sh-fallback,sh-port",
            Request::NewService(Service {
                flags: Service::SH_FALLBACK | Service::SH_PORT,
                ..Service::new(dns6, "sh")
            }),
        ),
        (
            "-a -u [2001:db8::100]:53 -r [2001:db8::21]:53 -m -w 2 -x 100 -y 50",
            Request::NewDestination(
                dns6,
                Destination {
                    upper_threshold: 100,
                    lower_threshold: 50,
                    ..destination("2001:db8::21", 53, Forwarding::Masquerade, 2)
                },
            ),
        ),
        (
            "-A -f 7 -s rr -p 300 -M 255.255.255.0",
            Request::NewService(Service {
                flags: Service::PERSISTENT,
                timeout: 300,
                netmask: 24,
                ..Service::new(mark7, "rr")
            }),
        ),
        (
            "-a -f 7 -r 192.0.2.22:0 -i -w 1",
            Request::NewDestination(
                mark7,
                destination("192.0.2.22", 0, Forwarding::Tunnel(Tunnel::default()), 1),
            ),
        ),
        (
            "-A -f 8 -6 -s lc -p 60 -M 64",
            Request::NewService(Service {
                flags: Service::PERSISTENT,
                timeout: 60,
                netmask: 64,
                ..Service::new(
                    ServiceKey::Fwmark {
                        family: Family::V6,
                        mark: 8,
                    },
                    "lc",
                )
            }),
        ),
        (
            "-E -t 192.0.2.100:80 -s wlc",
            Request::SetService(Service::new(web, "wlc")),
        ),
        (
            "-e -t 192.0.2.100:80 -r 192.0.2.21:80 -g -w 5",
            Request::SetDestination(web, destination("192.0.2.21", 80, Forwarding::Route, 5)),
        ),
        (
            "-d -t 192.0.2.100:80 -r 192.0.2.23:80",
            Request::DelDestination {
                service: web,
                address: "192.0.2.23".parse().unwrap(),
                port: 80,
            },
        ),
        (
            "--set 900 120 300",
            Request::SetConfig(Timeouts {
                tcp: 900,
                tcp_fin: 120,
                udp: 300,
            }),
        ),
        (
            "--start-daemon master --mcast-interface eth1 --syncid 7",
            Request::NewDaemon(SyncDaemon {
                state: SyncState::Master,
                interface: "eth1".into(),
                sync_id: 7,
            }),
        ),
        ("-Z", Request::Zero(None)),
        (
            "-D -f 8",
            Request::DelService(ServiceKey::Fwmark {
                family: Family::V4,
                mark: 8,
            }),
        ),
    ];
    for (command, request) in expected {
        let sent = sent(command);
        assert_eq!(sent.len(), 1, "ipvsadm {command}: {sent:?}");
        assert_eq!(
            Request::decode(&sent[0]).as_ref(),
            Ok(&request),
            "ipvsadm {command}"
        );
        let ours = request.encode().expect("encode");
        assert_eq!(Request::decode(&ours).as_ref(), Ok(&request), "{command}");
        // The same command, version and first-level attribute kinds as ipvsadm.
        assert_eq!(ours[..2], sent[0][..2], "{command}");
    }
}

#[test]
fn what_the_kernel_answered_reads_back() {
    // GET_INFO, which every ipvsadm run asks first: 1.2.1, a 4096-entry connection table.
    let captures = captures();
    let info = captures[0]
        .1
        .iter()
        .find(|(d, m)| *d == '<' && m.first() == Some(&CMD_SET_INFO))
        .expect("an answer to GET_INFO");
    assert_eq!(
        decode_info_reply(&info.1),
        Ok(Info {
            version: 0x010201,
            connection_table_size: 4096,
        })
    );

    // The whole table (ipvsadm -Ln --stats): services in the kernel's order, then the real
    // servers of each.
    let answers = answered("-Ln --stats");
    let services: Vec<ServiceEntry> = answers
        .iter()
        .filter(|(_, m)| m.first() == Some(&CMD_NEW_SERVICE))
        .map(|(_, m)| decode_service_reply(m).expect("a service"))
        .collect();
    let keys: Vec<String> = services
        .iter()
        .map(|s| format!("{} {}", s.service.key, s.service.scheduler))
        .collect();
    assert_eq!(
        keys,
        [
            "udp [2001:db8::100]:53 sh",
            "tcp 192.0.2.100:80 wlc",
            "fwmark 7 rr",
            "fwmark 8 (IPv6) lc"
        ]
    );
    assert_eq!(
        services[0].service.flags,
        Service::SH_FALLBACK | Service::SH_PORT
    );
    assert_eq!(services[0].service.netmask, 128);
    assert_eq!(
        (services[2].service.flags, services[2].service.timeout),
        (Service::PERSISTENT, 300)
    );
    assert_eq!(services[2].service.netmask, 24);
    assert_eq!(services[3].service.netmask, 64);
    assert!(services.iter().all(|s| s.stats == Stats::default()));

    let destinations: Vec<DestinationEntry> = answers
        .iter()
        .filter(|(_, m)| m.first() == Some(&CMD_NEW_DEST))
        .zip([Family::V4, Family::V6, Family::V4])
        .map(|((_, m), family)| decode_destination_reply(m, family).expect("a real server"))
        .collect();
    assert_eq!(
        destinations
            .iter()
            .map(|d| d.destination.clone())
            .collect::<Vec<_>>(),
        [
            destination("192.0.2.21", 80, Forwarding::Route, 5),
            Destination {
                upper_threshold: 100,
                lower_threshold: 50,
                ..destination("2001:db8::21", 53, Forwarding::Masquerade, 2)
            },
            destination("192.0.2.22", 0, Forwarding::Tunnel(Tunnel::default()), 1),
        ]
    );

    // The timeouts and the sync daemon as set before.
    let timeouts = answered("-L --timeout");
    assert_eq!(
        decode_config_reply(&timeouts[0].1),
        Ok(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        })
    );
    let daemons = answered("-L --daemon");
    assert_eq!(
        decode_daemon_reply(&daemons[0].1),
        Ok(SyncDaemon {
            state: SyncState::Master,
            interface: "eth1".into(),
            sync_id: 7,
        })
    );

    // Removing an IPv4 firewall-mark service that exists only as IPv6: refused, ESRCH.
    assert!(answered("-D -f 8")
        .iter()
        .any(|(d, m)| *d == '!' && m == b"ESRCH"));
}
