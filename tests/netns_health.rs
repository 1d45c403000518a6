//! The health checkers against real little servers, inside a network namespace made for each
//! test: a TCP listener, a closed port, an address that never answers, HTTP servers that answer
//! 200 "ok", 503, a wrong body, a weight header, a chunked body, and too slowly, an HTTPS
//! server, a send/expect server, a banner, a UDP answerer and a UDP port with nobody, and
//! external programs. Every checker kind must give the right verdict and say why. Needs root;
//! `scripts/test` runs these with `--ignored --test-threads=1`.
//!
//! The certificates in tests/samples/health/ are for these tests only (made once with
//! `openssl req -x509` for the CA and `openssl x509 -req` for `web.test` and 192.0.2.10, both
//! P-256, valid for 100 years); their keys protect nothing.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use director::config::from_toml;
use director::config::model::Check;
use director::health::syn::Prober;
use director::health::{CheckResult, Checker, Event, Health, State};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Where the servers listen.
const HOST: &str = "192.0.2.10";
/// A second address, for a real server that comes and goes.
const OTHER: &str = "192.0.2.11";
/// An address on a link whose other end is down: ARP gets no answer, so nothing ever answers,
/// not even with a reset.
const SILENT: &str = "198.51.100.99";

/// The timeout of every check here.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A namespace with `lo` up and the test addresses on it, and a veth pair whose far end is
/// down for the silent network, removed when dropped, also when the test failed.
struct Netns {
    name: String,
}

/// Whether the local routing table of this thread's namespace has a route for `address`.
fn local_route(address: &str) -> bool {
    let out = Command::new("ip")
        .args(["-6", "route", "show", "table", "local", address])
        .output()
        .expect("run ip");
    out.status.success() && !out.stdout.is_empty()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dirhealth-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name]);
        // From here on the guard removes the namespace whatever happens.
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{HOST}/24"),
            "dev",
            "lo",
        ]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{OTHER}/32"),
            "dev",
            "lo",
        ]);
        ip(&[
            "-n", &ns.name, "link", "add", "va", "type", "veth", "peer", "name", "vb",
        ]);
        ip(&["-n", &ns.name, "link", "set", "va", "up"]);
        ip(&[
            "-n",
            &ns.name,
            "addr",
            "add",
            "198.51.100.1/24",
            "dev",
            "va",
        ]);
        ns
    }

    /// Runs `test` on a thread inside the namespace, on a current-thread runtime like the
    /// daemon's, with the lab's servers running beside it; at most 60 s.
    fn run<F, Fut>(&self, test: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace");
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the namespace");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                start_servers().await;
                tokio::time::timeout(Duration::from_secs(60), test())
                    .await
                    .expect("the test ends within 60 s");
            });
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn addr(host: &str, port: u16) -> SocketAddr {
    SocketAddr::new(host.parse().expect("an address"), port)
}

/// Reads a request head (bounded), so that answering does not reset the connection.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while request.len() < 8192 && !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    request
}

/// An HTTP server on `port` that answers every request with `response` after `delay`.
async fn http_server(port: u16, response: &'static [u8], delay: Duration) {
    let listener = TcpListener::bind(addr(HOST, port)).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                read_request(&mut stream).await;
                tokio::time::sleep(delay).await;
                answer(&mut stream, response).await;
            });
        }
    });
}

async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8]) {
    let _ = stream.write_all(response).await;
    let _ = stream.shutdown().await;
}

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/samples/health")
        .join(name)
}

/// An HTTPS server on port 443 with the test certificate of `web.test` and 192.0.2.10.
async fn https_server() {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(sample("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(sample("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("a server configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(addr(HOST, 443)).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    read_request(&mut stream).await;
                    answer(
                        &mut stream,
                        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nsecure ok",
                    )
                    .await;
                }
            });
        }
    });
}

/// Every server of the lab.
async fn start_servers() {
    let no_delay = Duration::ZERO;
    http_server(
        80,
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nall ok\n",
        no_delay,
    )
    .await;
    http_server(
        81,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n",
        no_delay,
    )
    .await;
    http_server(82, b"HTTP/1.0 200 OK\r\n\r\nsomething else\n", no_delay).await;
    // Longer than any check's timeout.
    http_server(
        83,
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
        Duration::from_secs(5),
    )
    .await;
    http_server(
        84,
        b"HTTP/1.1 200 OK\r\nX-Weight: 7\r\nContent-Length: 3\r\n\r\nok\n",
        no_delay,
    )
    .await;
    http_server(
        85,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nall\r\n3\r\n ok\r\n0\r\n\r\n",
        no_delay,
    )
    .await;
    https_server().await;

    // send/expect: "+OK" to PING, "-ERR" to anything else.
    let pinged = TcpListener::bind(addr(HOST, 110)).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = pinged.accept().await {
            tokio::spawn(async move {
                let mut line = Vec::new();
                let mut byte = [0u8; 1];
                while line.len() < 512 && !line.ends_with(b"\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => line.push(byte[0]),
                        _ => break,
                    }
                }
                let reply: &[u8] = if line == b"PING\r\n" {
                    b"+OK\r\n"
                } else {
                    b"-ERR what?\r\n"
                };
                // In two pieces: the checker must read until it matches.
                let _ = stream.write_all(&reply[..2]).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                answer(&mut stream, &reply[2..]).await;
            });
        }
    });
    // A banner on connecting, as SMTP does.
    let banner = TcpListener::bind(addr(HOST, 25)).await.expect("bind");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = banner.accept().await {
            tokio::spawn(async move {
                answer(&mut stream, b"220 mail.test ready\r\n").await;
            });
        }
    });
    // Accepts and says nothing, ever.
    let mute = TcpListener::bind(addr(HOST, 7)).await.expect("bind");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = mute.accept().await {
            if held.len() < 100 {
                held.push(stream);
            }
        }
    });
    // UDP: answers "pong <what came>".
    let udp = UdpSocket::bind(addr(HOST, 5353)).await.expect("bind");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = udp.recv_from(&mut buf).await {
            let mut reply = b"pong ".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = udp.send_to(&reply, from).await;
        }
    });
}

/// The result of the check described by `kind` (TOML: `tcp = {}`, `http = {...}`, ...)
/// against `target`, with the timeout of these tests; and how long it took.
async fn check(kind: &str, target: SocketAddr) -> CheckResult {
    let text = format!("interval = \"1s\"\ntimeout = \"500ms\"\n{kind}\n");
    let check: Check = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    let checker = Checker::new(&check).unwrap_or_else(|e| panic!("{text}: {e}"));
    let result = checker.run(target, TIMEOUT).await;
    // Shown with --nocapture: what an operator would read.
    eprintln!(
        "{kind} {target}: {} in {:?}",
        result.message, result.duration
    );
    assert!(
        result.duration < TIMEOUT + Duration::from_millis(300),
        "{kind} took {:?}",
        result.duration
    );
    result
}

#[track_caller]
fn healthy(result: &CheckResult, says: &str) {
    assert!(result.healthy, "healthy expected: {result:?}");
    assert!(
        result.message.contains(says),
        "'{says}' expected in: {}",
        result.message
    );
}

#[track_caller]
fn failed(result: &CheckResult, says: &str) {
    assert!(!result.healthy, "a failure expected: {result:?}");
    assert!(
        result.message.contains(says),
        "'{says}' expected in: {}",
        result.message
    );
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn tcp_checks_connect() {
    Netns::new().run(|| async {
        healthy(&check("tcp = {}", addr(HOST, 80)).await, "connected");
        failed(
            &check("tcp = {}", addr(HOST, 9)).await,
            "connect 192.0.2.10:9: connection refused",
        );
        failed(
            &check("tcp = {}", addr(SILENT, 80)).await,
            "connect 198.51.100.99:80 timed out after 500 ms",
        );
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn tcp_checks_half_open_give_the_same_verdicts_unseen_by_the_server() {
    Netns::new().run(|| async {
        let prober = Prober::open(None).expect("raw sockets (root)");
        let tcp = Checker::Tcp;
        let half_open = |target| {
            let (tcp, prober) = (&tcp, &prober);
            async move {
                let result = tcp.run_with(target, TIMEOUT, Some(prober)).await;
                eprintln!(
                    "half-open {target}: {} in {:?}",
                    result.message, result.duration
                );
                result
            }
        };
        healthy(&half_open(addr(HOST, 80)).await, "listening (SYN-ACK)");
        failed(
            &half_open(addr(HOST, 9)).await,
            "connect 192.0.2.10:9: connection refused",
        );
        failed(
            &half_open(addr(OTHER, 80)).await,
            "connect 192.0.2.11:80: connection refused",
        );
        failed(
            &half_open(addr(SILENT, 80)).await,
            "connect 198.51.100.99:80 timed out after 500 ms",
        );
        // More checks of one server at once than the prober has source ports: all answered
        // (the rest connect).
        let many: Vec<_> = (0..40).map(|_| half_open(addr(HOST, 80))).collect();
        for result in futures_join_all(many).await {
            assert!(result.healthy, "{result:?}");
        }

        // IPv6, and the application never sees the check: nothing to accept.
        // `ip` runs in the namespace of this thread.
        ip(&["addr", "add", "2001:db8::10/64", "dev", "lo", "nodad"]);
        // The kernel installs the address's local route from a work queue, after the command
        // has returned: until then a SYN to it goes nowhere.
        let mut waited = 0;
        while !local_route("2001:db8::10") {
            assert!(waited < 200, "no local route for 2001:db8::10 after 2 s");
            waited += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        let listener = TcpListener::bind("[2001:db8::10]:8080")
            .await
            .expect("bind");
        let target: SocketAddr = "[2001:db8::10]:8080".parse().expect("an address");
        for _ in 0..3 {
            healthy(&half_open(target).await, "listening (SYN-ACK)");
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "no connection reached the application");
        drop(listener);
        failed(
            &half_open(target).await,
            "connect [2001:db8::10]:8080: connection refused",
        );
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn the_runner_checks_tcp_half_open_and_times_out_on_its_own() {
    Netns::new().run(|| async {
        let config = from_toml(&format!(
            r#"
[[virtual_servers]]
name = "web"
vip = "203.0.113.10"
port = 80
check = {{ interval = "500ms", timeout = "300ms", rise = 1, fall = 1, tcp = {{}} }}
real_servers = [
  {{ name = "a", address = "{HOST}" }},
  {{ name = "b", address = "{OTHER}" }},
  {{ name = "c", address = "{SILENT}" }},
]
"#
        ))
        .expect("a configuration");
        let (health, runner, mut events) = Health::new();
        tokio::spawn(runner.run());
        assert!(health.update(&config).is_empty());
        let mut downs = Vec::new();
        while downs.len() < 2 {
            downs.push(next_event(&mut events, Duration::from_secs(3)).await.to_string());
        }
        downs.sort();
        assert_eq!(
            downs,
            [
                "b 192.0.2.11:80 of web is DOWN: connect 192.0.2.11:80: connection refused",
                "c 198.51.100.99:80 of web is DOWN: connect 198.51.100.99:80 timed out after 300 ms",
            ]
        );
        // a's first check may come later in the interval than the others'.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut a = health.server("web", "a").expect("a");
        while a.state != State::Up && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            a = health.server("web", "a").expect("a");
        }
        assert_eq!(a.state, State::Up);
        let last = a.last.expect("a result");
        assert_eq!(last.message, "listening (SYN-ACK)");
        // The silent one's check ends near its timeout, not at the next check.
        let c = health.server("web", "c").expect("c");
        let took = c.last.expect("a result").duration;
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(400),
            "{took:?}"
        );
    });
}

/// Waits for every future of `futures`, all polled together.
async fn futures_join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn http_checks_judge_status_body_and_time() {
    Netns::new().run(|| async {
        let get = "http = { path = \"/health\", expect = \"ok\" }";
        healthy(&check(get, addr(HOST, 80)).await, "HTTP 200");
        failed(
            &check(get, addr(HOST, 81)).await,
            "HTTP 503 from 192.0.2.10:81 GET /health (expected 200)",
        );
        failed(
            &check(get, addr(HOST, 82)).await,
            "body of 192.0.2.10:82 GET /health does not match /ok/ (it starts \"something else\\n\")",
        );
        failed(
            &check(get, addr(HOST, 83)).await,
            "GET /health from 192.0.2.10:83 timed out after 500 ms",
        );
        healthy(&check(get, addr(HOST, 85)).await, "HTTP 200");
        failed(
            &check(get, addr(HOST, 9)).await,
            "connect 192.0.2.10:9: connection refused",
        );
        // 503 is fine when it is listed; the body does not matter without a pattern.
        healthy(
            &check("http = { status = [200, 503] }", addr(HOST, 81)).await,
            "HTTP 503",
        );
        // Something that is not HTTP.
        failed(
            &check("http = {}", addr(HOST, 25)).await,
            "not an HTTP response: \"220 mail.test ready\\r\\n\"",
        );
        // A weight from a header.
        let weighted = check("http = { weight_header = \"X-Weight\" }", addr(HOST, 84)).await;
        healthy(&weighted, "HTTP 200");
        assert_eq!(weighted.weight, Some(7));
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn https_checks_verify_or_not() {
    Netns::new().run(|| async {
        let ca = sample("ca.pem").display().to_string();
        let target = addr(HOST, 443);
        healthy(
            &check(
                "http = { tls = true, verify = false, expect = \"secure\" }",
                target,
            )
            .await,
            "HTTP 200",
        );
        healthy(
            &check(
                &format!("http = {{ tls = true, ca = \"{ca}\", host = \"web.test\" }}"),
                target,
            )
            .await,
            "HTTP 200",
        );
        // Without a host the certificate must name the address, which this one does.
        healthy(
            &check(&format!("http = {{ tls = true, ca = \"{ca}\" }}"), target).await,
            "HTTP 200",
        );
        failed(
            &check(
                &format!("http = {{ tls = true, ca = \"{ca}\", host = \"other.test\" }}"),
                target,
            )
            .await,
            "TLS handshake with 192.0.2.10:443: invalid peer certificate",
        );
        // A CA that did not sign it: the server's own certificate is no CA.
        let wrong = sample("server.pem").display().to_string();
        failed(
            &check(
                &format!("http = {{ tls = true, ca = \"{wrong}\", host = \"web.test\" }}"),
                target,
            )
            .await,
            "invalid peer certificate",
        );
        // TLS to a server that speaks something else.
        failed(
            &check("http = { tls = true, verify = false }", addr(HOST, 25)).await,
            "TLS handshake with 192.0.2.10:25",
        );
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn send_expect_checks_over_tcp_and_udp() {
    Netns::new().run(|| async {
        let ping = "send_expect = { send = 'PING\\r\\n', expect = '^\\+OK\\r\\n' }";
        healthy(&check(ping, addr(HOST, 110)).await, "answer matches");
        let bad = "send_expect = { send = 'QUIT\\r\\n', expect = '^\\+OK' }";
        failed(
            &check(bad, addr(HOST, 110)).await,
            "the answer of 192.0.2.10:110 does not match /^\\+OK/: \"-ERR what?\\r\\n\"",
        );
        // No send: the banner.
        healthy(
            &check("send_expect = { expect = '^220 ' }", addr(HOST, 25)).await,
            "answer matches",
        );
        failed(
            &check("send_expect = { expect = '^220 ' }", addr(HOST, 7)).await,
            "waiting for an answer from 192.0.2.10:7 timed out after 500 ms",
        );
        failed(
            &check(ping, addr(HOST, 9)).await,
            "connect 192.0.2.10:9: connection refused",
        );
        let udp = "send_expect = { protocol = \"udp\", send = 'ping\\n', expect = '^pong ping' }";
        healthy(&check(udp, addr(HOST, 5353)).await, "answer matches");
        failed(
            &check(
                "send_expect = { protocol = \"udp\", send = 'ping\\n', expect = '^PONG' }",
                addr(HOST, 5353),
            )
            .await,
            "the answer of UDP 192.0.2.10:5353 does not match /^PONG/: \"pong ping\\n\"",
        );
        // Nobody on the port: the ICMP port unreachable says so.
        failed(
            &check(udp, addr(HOST, 5354)).await,
            "UDP 192.0.2.10:5354: connection refused",
        );
    });
}

/// A directory of scripts for one test, removed when dropped.
struct Scripts(PathBuf);

impl Scripts {
    fn new() -> Scripts {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "director-health-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("a script directory");
        Scripts(dir)
    }

    fn add(&self, name: &str, body: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write a script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
        path.display().to_string()
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn program_checks_go_by_exit_status() {
    let scripts = Scripts::new();
    let weight = scripts.add("weight", "echo 'load is low'; echo weight=7");
    let args = scripts.add("args", "echo \"checking $1 port $2\"; exit 3");
    // An odd duration, to find the sleep afterwards.
    let slow = scripts.add("slow", "echo starting; sleep 4.321; echo never");
    let noisy = scripts.add(
        "noisy",
        "i=0; while [ $i -lt 20000 ]; do echo 'a line of output that goes on'; i=$((i+1)); done; exit 0",
    );
    Netns::new().run(move || async move {
        let target = addr(HOST, 80);
        healthy(
            &check("program = { path = \"/bin/true\" }", target).await,
            "program exited 0",
        );
        failed(
            &check("program = { path = \"/bin/false\" }", target).await,
            "program /bin/false exited 1",
        );
        let weighted = check(&format!("program = {{ path = \"{weight}\" }}"), target).await;
        healthy(&weighted, "program exited 0");
        assert_eq!(weighted.weight, Some(7));
        failed(
            &check(
                &format!("program = {{ path = \"{args}\", args = [\"%h\", \"%p\"] }}"),
                target,
            )
            .await,
            "exited 3: checking 192.0.2.10 port 80",
        );
        let started = Instant::now();
        failed(
            &check(&format!("program = {{ path = \"{slow}\" }}"), target).await,
            "timed out after 500 ms and was killed",
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // Output past the bound is read and dropped: the program is not blocked on a full pipe.
        healthy(
            &check(&format!("program = {{ path = \"{noisy}\" }}"), target).await,
            "program exited 0",
        );
        failed(
            &check("program = { path = \"/nonexistent/check\" }", target).await,
            "program /nonexistent/check could not start: no such file or directory",
        );
    });
    // The slow script's sleep was killed with its process group.
    let leftover = Command::new("pgrep").args(["-f", "sleep 4.321"]).output();
    if let Ok(out) = leftover {
        assert!(
            out.stdout.is_empty(),
            "left behind: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The next event, within `within`.
async fn next_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    within: Duration,
) -> Event {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("an event in time")
        .expect("an event")
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn the_runner_takes_servers_out_and_back_and_uses_the_sorry_server() {
    Netns::new().run(|| async {
        let config = from_toml(&format!(
            r#"
[[virtual_servers]]
name = "web"
vip = "203.0.113.10"
port = 80
reentry = "300ms"
sorry_server = "{HOST}:80"
check = {{ interval = "100ms", timeout = "80ms", rise = 2, fall = 2, http = {{ expect = "ok" }} }}
real_servers = [
  {{ name = "a", address = "{HOST}" }},
  {{ name = "b", address = "{OTHER}" }},
]
"#
        ))
        .expect("a configuration");
        let (health, runner, mut events) = Health::new();
        tokio::spawn(runner.run());
        assert!(health.update(&config).is_empty());
        // b has nothing on port 80: its first failure takes it out at once.
        let event = next_event(&mut events, Duration::from_secs(2)).await;
        assert_eq!(
            event.to_string(),
            "b 192.0.2.11:80 of web is DOWN: connect 192.0.2.11:80: connection refused"
        );
        let table = director::ipvs::desired_with(&config, &health);
        assert_eq!(table.services[0].destinations.len(), 1);
        assert!(health.sorry_servers().is_empty());

        // b starts answering: back after 2 successes and 300 ms.
        let listener = TcpListener::bind(addr(OTHER, 80)).await.expect("bind");
        let server = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                read_request(&mut stream).await;
                answer(&mut stream, b"HTTP/1.0 200 OK\r\n\r\nok\n").await;
            }
        });
        let started = Instant::now();
        let event = next_event(&mut events, Duration::from_secs(3)).await;
        assert!(
            event
                .to_string()
                .starts_with("b 192.0.2.11:80 of web is UP: "),
            "{event}"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(health.server("web", "b").map(|s| s.state), Some(State::Up));

        // b goes away again (2 failures), and then a too: the sorry server goes in.
        server.abort();
        let _ = server.await;
        let event = next_event(&mut events, Duration::from_secs(3)).await;
        assert!(
            event
                .to_string()
                .contains("b 192.0.2.11:80 of web is DOWN: 2 failures in a row"),
            "{event}"
        );
        let mut broken = config.clone();
        if let Some(check) = broken.virtual_servers[0].check.as_mut() {
            check.port = Some(81);
        }
        health.update(&broken);
        // a is checked on port 81 now (503), b still refuses: both down, in either order.
        let mut downs = 0;
        let mut sorry = None;
        while sorry.is_none() {
            match next_event(&mut events, Duration::from_secs(3)).await {
                Event::Server { .. } => downs += 1,
                Event::Sorry { active, server, .. } => sorry = Some((active, server)),
            }
        }
        assert_eq!(downs, 2);
        assert_eq!(sorry, Some((true, addr(HOST, 80))));
        assert_eq!(
            health.sorry_servers(),
            [("web".to_string(), addr(HOST, 80))]
        );

        // a answers again on its port: the sorry server goes out.
        health.update(&config);
        let mut out = false;
        for _ in 0..4 {
            if let Event::Sorry { active: false, .. } =
                next_event(&mut events, Duration::from_secs(3)).await
            {
                out = true;
                break;
            }
        }
        assert!(out, "the sorry server goes out");
        assert!(health.sorry_servers().is_empty());
        // Its first check (within an interval) proves it up.
        let mut state = None;
        for _ in 0..50 {
            state = health.server("web", "a").map(|s| s.state);
            if state == Some(State::Up) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(state, Some(State::Up));
        let snapshot = health.snapshot();
        let a = &snapshot.services[0].servers[0];
        assert!(a.health.counts.checks >= 1);
        assert_eq!(a.health.last.as_ref().map(|l| l.healthy), Some(true));
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn ping_nodes_answer_or_not() {
    // The pair's ping nodes are asked with ICMP echo (sys::ping); the namespace's own
    // addresses answer, the silent network does not.
    Netns::new().run(|| async {
        let mut pinger = director::sys::ping::Pinger::open().expect("raw ICMP sockets (root)");
        let hosts: Vec<std::net::IpAddr> = [HOST, SILENT, "::1"]
            .iter()
            .map(|h| h.parse().expect("an address"))
            .collect();
        for _ in 0..3 {
            let answered = pinger.round(&hosts, Duration::from_millis(300)).await;
            assert_eq!(answered, vec![true, false, true]);
        }
    });
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/test"]
fn the_pair_counts_the_ping_nodes_that_answer() {
    use director::config::model::{Isolation, RolePreference};
    use director::ha::machine::{Channel, Machine, Settings};
    use director::ha::message::Key;
    use director::ha::run::{spawn, watch_ping_nodes, Effects, Setup, Udp};

    struct Nothing;
    impl Effects for Nothing {
        fn take_over(&mut self, _planned: bool) -> Result<(), String> {
            Ok(())
        }
        fn release(&mut self) -> Result<(), String> {
            Ok(())
        }
    }

    Netns::new().run(|| async {
        let settings = Settings {
            node: 1,
            preference: RolePreference::Equal,
            priority: 100,
            keepalive: Duration::from_millis(50),
            deadtime: Duration::from_millis(200),
            warntime: None,
            initdead: Duration::from_millis(400),
            auto_failback: false,
            ping_nodes: 2,
            isolation: Isolation::PingNodesDecide,
            channels: vec![Channel::Udp],
        };
        let peer: std::net::SocketAddr = "192.0.2.200:694".parse().expect("an address");
        let pair = spawn(Setup {
            machine: Machine::new(settings, Duration::ZERO),
            key: Key::new(b"a key for this test only"),
            incarnation: 1,
            udp: Some(Udp::open(0, None, peer).expect("a socket")),
            serial: None,
            effects: Box::new(Nothing),
            watchdog: None,
        });
        let hosts = vec![
            HOST.parse().expect("an address"),
            SILENT.parse().expect("an address"),
        ];
        tokio::spawn(watch_ping_nodes(
            hosts,
            Duration::from_millis(100),
            pair.clone(),
        ));
        // A ping node counts once it has answered (the silent one never does).
        tokio::time::sleep(Duration::from_millis(120)).await;
        let early = pair.status().await.expect("a status").fitness.pings;
        assert_eq!(early, 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        let status = pair.status().await.expect("a status");
        assert_eq!(status.fitness.pings, 1, "{status:?}");
        // Alone, with a ping node reached: it took over after initdead.
        assert_eq!(status.role, director::ha::machine::Role::Active);
    });
}
