//! The endpoint on loopback with real TLS clients (rustls, and raw ClientHellos for what
//! rustls will not send).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::SupportedProtocolVersion;
use serde_json::{json, Value};

use super::*;
use crate::admin::api::Backend as _;
use crate::admin::cert;
use crate::admin::client::{self, Tls};
use crate::admin::front::Counters;
use crate::admin::testing::{Fake, PASSWORD};

struct Lab {
    endpoint: Arc<Endpoint>,
    backend: Arc<Fake>,
    address: SocketAddr,
    pin: [u8; 32],
}

fn lab(allowed: &[&str]) -> Lab {
    let backend = Fake::new(Some(PASSWORD));
    let api = Arc::new(Api::new(
        backend.clone(),
        Duration::from_secs(600),
        Duration::from_secs(3600),
    ));
    let identity = cert::self_signed("lvs-test", &[], 1_796_515_200).unwrap();
    let pin = cert::parse_fingerprint(&cert::fingerprint(identity.leaf())).unwrap();
    let endpoint = Endpoint::start(api, &identity).unwrap();
    let allowed: Vec<Prefix> = allowed.iter().map(|p| p.parse().unwrap()).collect();
    let address = endpoint
        .listen("127.0.0.1:0".parse().unwrap(), &allowed)
        .unwrap();
    Lab {
        endpoint,
        backend,
        address,
        pin,
    }
}

impl Lab {
    fn counters(&self) -> &Counters {
        &self.endpoint.api().counters
    }
}

fn connect_with(
    address: SocketAddr,
    versions: &[&'static SupportedProtocolVersion],
    pin: [u8; 32],
) -> std::io::Result<Tls> {
    client::open(address, versions, pin)
}

fn connect(lab: &Lab) -> Tls {
    connect_with(lab.address, rustls::ALL_VERSIONS, lab.pin).unwrap()
}

/// One request on `tls` (kept alive): status, headers (lower-case names), JSON body.
fn request(
    tls: &mut Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    client::write_request(tls, method, path, headers, body.as_bytes()).unwrap();
    read_response(tls)
}

fn read_response(tls: &mut Tls) -> (u16, Vec<(String, String)>, Value) {
    let response = client::read_response(tls).unwrap();
    let value = response.json();
    (response.status, response.headers, value)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn login(tls: &mut Tls) -> (String, String) {
    let body = json!({ "password": PASSWORD }).to_string();
    let (status, headers, value) = request(tls, "POST", "/api/login", &[], &body);
    assert_eq!(status, 200, "{value}");
    let cookie = header(&headers, "set-cookie").unwrap();
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let cookie = cookie.split(';').next().unwrap().to_string();
    (cookie, value["csrf"].as_str().unwrap().to_string())
}

#[test]
fn tls_1_3_and_1_2_handshake_with_the_pinned_certificate() {
    let lab = lab(&[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let mut tls = connect_with(lab.address, &[version], lab.pin).unwrap();
        assert_eq!(tls.conn.protocol_version(), Some(version.version));
        let (status, headers, _) = request(&mut tls, "GET", "/api/status", &[], "");
        assert_eq!(status, 401);
        assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    }
    assert_eq!(lab.counters().handshakes.load(Ordering::Relaxed), 2);
}

#[test]
fn another_certificate_than_the_pinned_one_is_refused() {
    let lab = lab(&[]);
    let mut wrong = lab.pin;
    wrong[0] ^= 1;
    let err = connect_with(lab.address, rustls::ALL_VERSIONS, wrong).unwrap_err();
    assert!(err.to_string().contains("not the pinned one"), "{err}");
}

/// A TLS ClientHello offering only `version` (0x0301 TLS 1.0, 0x0302 TLS 1.1), without
/// extensions, as old clients sent it.
fn old_client_hello(version: u16) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend(version.to_be_bytes());
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend([0, 4, 0x00, 0x2f, 0xc0, 0x13]); // two cipher suites
    hello.extend([1, 0]); // null compression
    let mut handshake = vec![1, 0, 0, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[test]
fn tls_1_1_and_1_0_are_refused_with_a_fatal_alert() {
    let lab = lab(&[]);
    for version in [0x0301u16, 0x0302] {
        let mut tcp = TcpStream::connect(lab.address).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        tcp.write_all(&old_client_hello(version)).unwrap();
        let mut reply = Vec::new();
        let _ = tcp.read_to_end(&mut reply);
        // An alert record, fatal: handshake_failure (40; what rustls says when no version
        // both sides speak is offered) or protocol_version (70).
        assert!(reply.len() >= 7, "{version:#06x}: {reply:?}");
        assert_eq!((reply[0], reply[5]), (0x15, 2), "{version:#06x}: {reply:?}");
        assert!([40, 70].contains(&reply[6]), "{version:#06x}: {reply:?}");
    }
    assert_eq!(lab.counters().handshake_failed.load(Ordering::Relaxed), 2);
    assert_eq!(lab.counters().handshakes.load(Ordering::Relaxed), 0);
}

#[test]
fn a_source_outside_the_allowed_networks_is_refused_before_the_handshake() {
    let lab = lab(&["192.0.2.0/24"]);
    let mut tcp = TcpStream::connect(lab.address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = tcp.write_all(&old_client_hello(0x0303));
    let mut reply = Vec::new();
    let result = tcp.read_to_end(&mut reply);
    assert!(
        reply.is_empty(),
        "not a byte of TLS: {reply:?} ({result:?})"
    );
    assert!(connect_with(lab.address, rustls::ALL_VERSIONS, lab.pin).is_err());
    assert_eq!(lab.counters().refused_source.load(Ordering::Relaxed), 2);
    assert_eq!(lab.counters().handshakes.load(Ordering::Relaxed), 0);
    // Allowed again: served.
    lab.endpoint
        .listen(lab.address, &["127.0.0.0/8".parse().unwrap()])
        .unwrap();
    let mut tls = connect(&lab);
    assert_eq!(request(&mut tls, "GET", "/api/status", &[], "").0, 401);
}

#[test]
fn a_session_over_tls_logs_in_acts_with_its_csrf_token_and_expires() {
    let lab = lab(&[]);
    let mut tls = connect(&lab);
    let wrong = json!({ "password": "not it" }).to_string();
    let (status, headers, _) = request(&mut tls, "POST", "/api/login", &[], &wrong);
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "set-cookie"), None);
    let (cookie, csrf) = login(&mut tls);
    let (status, _, value) = request(&mut tls, "GET", "/api/status", &[("Cookie", &cookie)], "");
    assert_eq!((status, value["role"].as_str()), (200, Some("active")));
    let (status, _, _) = request(
        &mut tls,
        "POST",
        "/api/takeover",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(status, 403, "no CSRF token");
    let with = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let (status, _, _) = request(&mut tls, "POST", "/api/takeover", &with, "");
    assert_eq!(status, 200);
    // The author names the real client, not the front's loopback connection.
    let author = lab.backend.commands.lock().unwrap()[0]
        .author
        .clone()
        .unwrap();
    assert_eq!(author, "admin@127.0.0.1 (web)");
    lab.endpoint
        .api()
        .set_lifetimes(Duration::from_millis(200), Duration::from_secs(3600));
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, value) = request(&mut tls, "GET", "/api/status", &[("Cookie", &cookie)], "");
    assert_eq!(status, 401);
    assert!(
        value["error"].as_str().unwrap().contains("expired"),
        "{value}"
    );
}

#[test]
fn an_oversized_body_is_refused_and_the_endpoint_goes_on() {
    let lab = lab(&[]);
    let mut tls = connect(&lab);
    let head = format!(
        "PUT /api/config HTTP/1.1\r\nHost: lvs-test\r\nContent-Length: {}\r\n\r\n",
        crate::admin::api::MAX_BODY + 1
    );
    tls.write_all(head.as_bytes()).unwrap();
    let (status, _, value) = read_response(&mut tls);
    assert_eq!(status, 413, "{value}");
    let mut other = connect(&lab);
    assert_eq!(request(&mut other, "GET", "/api/status", &[], "").0, 401);
}

#[test]
fn slow_and_silent_clients_do_not_stop_others_being_served() {
    let lab = lab(&[]);
    // Silent before the handshake, stalled in the middle of a request's head, and stalled in
    // the middle of a body.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(lab.address).unwrap());
    }
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut tls = connect(&lab);
        tls.write_all(b"GET /api/status HTTP/1.1\r\nHost: lv")
            .unwrap();
        tls.flush().unwrap();
        stalled.push(tls);
    }
    for _ in 0..3 {
        let mut tls = connect(&lab);
        tls.write_all(
            b"POST /api/login HTTP/1.1\r\nHost: lvs-test\r\nContent-Length: 1000\r\n\r\n{\"pass",
        )
        .unwrap();
        tls.flush().unwrap();
        stalled.push(tls);
    }
    let started = Instant::now();
    for _ in 0..5 {
        let mut tls = connect(&lab);
        let (cookie, _) = login(&mut tls);
        let (status, _, _) = request(&mut tls, "GET", "/api/status", &[("Cookie", &cookie)], "");
        assert_eq!(status, 200);
    }
    // Well under the front's handshake and idle limits: nobody waited for the stalled ones.
    assert!(
        started.elapsed() < front::HANDSHAKE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    drop((held, stalled));
}

#[test]
fn the_http_server_refuses_what_did_not_come_through_the_front() {
    let lab = lab(&[]);
    let mut tcp = TcpStream::connect(lab.endpoint.backend).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = tcp.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
}

#[test]
fn an_uploaded_certificate_is_presented_from_the_next_handshake() {
    let lab = lab(&[]);
    let new = cert::self_signed("lvs-test", &[], 1_796_515_200).unwrap();
    let new_pin = cert::parse_fingerprint(&cert::fingerprint(new.leaf())).unwrap();
    lab.endpoint.present(&new).unwrap();
    assert!(connect_with(lab.address, rustls::ALL_VERSIONS, lab.pin).is_err());
    let mut tls = connect_with(lab.address, rustls::ALL_VERSIONS, new_pin).unwrap();
    assert_eq!(request(&mut tls, "GET", "/api/status", &[], "").0, 401);
}

#[test]
fn a_token_reads_the_metrics_and_changes_the_configuration_on_one_connection() {
    let lab = lab(&[]);
    let token = lab.endpoint.api().add_token("prometheus").unwrap();
    let mut anonymous = client::Client::new(lab.address, lab.pin);
    assert_eq!(anonymous.get("/metrics").unwrap().status, 401);
    let before = lab.counters().handshakes.load(Ordering::Relaxed);
    let mut client = client::Client::new(lab.address, lab.pin).with_token(&token);
    let metrics = client.get("/metrics").unwrap();
    assert_eq!(metrics.status, 200, "{}", metrics.error());
    let kind = metrics.header("content-type").unwrap();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    let text = String::from_utf8(metrics.body).unwrap();
    assert!(
        text.contains("director_admin_connections_total{outcome=\"handshake_done\"} "),
        "{text}"
    );
    let config = client.get("/api/config").unwrap().json();
    let toml = config["toml"]
        .as_str()
        .unwrap()
        .replace("port = 3636", "port = 8443");
    let changed = client
        .send_json(
            "PUT",
            "/api/config",
            &json!({ "toml": toml, "comment": "another port" }),
        )
        .unwrap();
    assert_eq!(changed.status, 200, "{}", changed.error());
    assert_eq!(changed.json()["revision"], 1);
    assert_eq!(lab.backend.config().1.admin.port, 8443);
    let after = lab.counters().handshakes.load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        1,
        "three requests, one kept-alive connection"
    );
}

#[test]
fn a_new_listen_address_on_the_same_port_takes_over_at_once() {
    let lab = lab(&[]);
    let port = lab.address.port();
    let wide: SocketAddr = format!("0.0.0.0:{port}").parse().unwrap();
    // The old socket is closed before the new one binds the port.
    let local = lab.endpoint.listen(wide, &[]).unwrap();
    assert_eq!(local, wide);
    let mut tls = connect(&lab);
    assert_eq!(request(&mut tls, "GET", "/api/status", &[], "").0, 401);
    let back: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(lab.endpoint.listen(back, &[]).unwrap(), back);
    let mut tls = connect(&lab);
    assert_eq!(request(&mut tls, "GET", "/api/status", &[], "").0, 401);
}
