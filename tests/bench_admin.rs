//! The admin endpoint's speed: `GET /api/status` over HTTPS on kept-alive connections
//! (requests a second, latency median and 99th percentile) and new TLS handshakes a second,
//! on the host (the endpoint on loopback, with a status of a box's size) and on a box under
//! TCG (the pair lab, from the client's namespace, keepalive 10 ms and deadtime 40 ms), where
//! the pair's heartbeat timing is read before and under the load: the longest gap between two
//! beats sent. nginx (Debian's, TLS with the same kind of key) serving the same bytes on the
//! host is the reference for what a web server does on this machine. Needs root and QEMU;
//! `scripts/bench` runs it.

mod vm;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use director::admin::api::{Api, Backend, Listed};
use director::admin::auth::Token;
use director::admin::cert::{self, parse_fingerprint};
use director::admin::client::{self, Client};
use director::admin::server::Endpoint;
use director::config::Config;
use director::control::Request;
use serde_json::Value;
use vm::lab::{dr_virtual_servers, enter_netns, pair_node_config, pair_section, Node, PairSpec};
use vm::test_dir;

const BOOT: Duration = Duration::from_secs(120);
const SHORT: Duration = Duration::from_secs(30);
const LOAD: Duration = Duration::from_secs(10);
/// The window of the pair status's "longest gap in the last 10 s".
const WINDOW: Duration = Duration::from_secs(10);
const THREADS: usize = 4;

/// What a load run saw.
struct Figures {
    done: usize,
    failed: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted.get(index).copied().unwrap_or_default()
    }

    fn row(&self, what: &str, unit: &str) -> String {
        format!(
            "| {what:<58} | {:>9.0} {unit:<12} | {:>8.1} ms | {:>8.1} ms | {:>6} |",
            self.rate(),
            self.percentile(0.5).as_secs_f64() * 1000.0,
            self.percentile(0.99).as_secs_f64() * 1000.0,
            self.failed
        )
    }
}

/// `THREADS` clients for `LOAD`, each doing `one` again and again; `one` gives whether it
/// worked.
fn load(one: impl Fn(&mut Option<Client>) -> bool + Send + Sync + Clone + 'static) -> Figures {
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let one = one.clone();
            std::thread::spawn(move || {
                let mut state = None;
                let (mut done, mut failed, mut latencies) = (0, 0, Vec::new());
                while started.elapsed() < LOAD {
                    let t = Instant::now();
                    if one(&mut state) {
                        done += 1;
                        latencies.push(t.elapsed());
                    } else {
                        failed += 1;
                    }
                }
                (done, failed, latencies)
            })
        })
        .collect();
    let mut figures = Figures {
        done: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for thread in threads {
        let (done, failed, latencies) = thread.join().unwrap_or_default();
        figures.done += done;
        figures.failed += failed;
        figures.latencies.extend(latencies);
    }
    figures.elapsed = started.elapsed();
    figures
}

/// GET `path` on kept-alive connections, with a token.
fn kept_alive(address: SocketAddr, pin: [u8; 32], token: String, path: &'static str) -> Figures {
    load(move |client| {
        let client = client.get_or_insert_with(|| Client::new(address, pin).with_token(&token));
        matches!(client.get(path), Ok(r) if r.status == 200)
    })
}

/// New TLS connections: the handshake, nothing else.
fn handshakes(address: SocketAddr, pin: [u8; 32]) -> Figures {
    load(move |_| client::open(address, rustls::ALL_VERSIONS, pin).is_ok())
}

/// A backend answering what a box's daemon would, without a daemon.
struct Canned {
    status: Value,
    config: Arc<Config>,
    tokens: std::sync::Mutex<Vec<Token>>,
}

impl Backend for Canned {
    fn command(&self, _request: &Request) -> Result<String, String> {
        Err("not in the benchmark".into())
    }
    fn status(&self) -> Value {
        self.status.clone()
    }
    fn config(&self) -> (Option<u64>, Arc<Config>) {
        (Some(1), Arc::clone(&self.config))
    }
    fn history(&self) -> Result<Vec<Listed>, String> {
        Ok(Vec::new())
    }
    fn tokens(&self) -> Result<Vec<Token>, String> {
        Ok(self.tokens.lock().map(|t| t.clone()).unwrap_or_default())
    }
    fn keep_tokens(&self, tokens: &[Token]) -> Result<(), String> {
        if let Ok(mut kept) = self.tokens.lock() {
            *kept = tokens.to_vec();
        }
        Ok(())
    }
    fn replace_certificate(&self, _chain: &str, _key: &str) -> Result<String, String> {
        Err("not in the benchmark".into())
    }
    fn reboot(&self) -> Result<(), String> {
        Err("not in the benchmark".into())
    }
    fn now_ms(&self) -> u64 {
        0
    }
}

/// The figures of the endpoint on the host's loopback, with `status` as the box's status.
fn on_the_host(status: Value, rows: &mut Vec<String>) {
    let backend = Arc::new(Canned {
        status,
        config: Arc::new(Config::default()),
        tokens: std::sync::Mutex::new(Vec::new()),
    });
    let api = Arc::new(Api::new(
        backend,
        Duration::from_secs(600),
        Duration::from_secs(3600),
    ));
    let token = api
        .add_token("bench")
        .unwrap_or_else(|(_, e)| panic!("{e}"));
    let identity = cert::self_signed("bench", &[], 1_796_515_200).unwrap();
    let pin = parse_fingerprint(&cert::fingerprint(identity.leaf())).unwrap();
    let endpoint = Endpoint::start(api, &identity).unwrap();
    let address = endpoint
        .listen("127.0.0.1:0".parse().unwrap(), &[])
        .unwrap();
    let figures = kept_alive(address, pin, token, "/api/status");
    rows.push(figures.row("host: GET /api/status, kept alive, director", "requests/s"));
    let figures = handshakes(address, pin);
    rows.push(figures.row("host: new TLS handshakes, director (P-256)", "handshakes/s"));
}

/// The same bytes from nginx over TLS on the host, when nginx is there.
fn nginx_reference(status: &Value, dir: &std::path::Path, rows: &mut Vec<String>) {
    if Command::new("nginx").arg("-v").output().is_err() {
        rows.push(
            "| host: nginx reference: nginx is not installed (scripts/bench installs it) |".into(),
        );
        return;
    }
    let identity = cert::self_signed("bench", &[], 1_796_515_200).unwrap();
    let pem = |label: &str, der: &[u8]| {
        let mut text = director::admin::auth::base64::encode(der);
        while text.len() % 4 != 0 {
            text.push('=');
        }
        let lines: Vec<String> = text
            .as_bytes()
            .chunks(64)
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let _ = std::fs::create_dir_all(dir.join("www/api"));
    std::fs::write(dir.join("cert.pem"), pem("CERTIFICATE", identity.leaf())).unwrap();
    std::fs::write(dir.join("key.pem"), pem("PRIVATE KEY", &identity.key)).unwrap();
    std::fs::write(dir.join("www/api/status"), status.to_string()).unwrap();
    let port = 18443;
    let conf = format!(
        "daemon off; worker_processes 1; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{}}\n\
         http {{ access_log off; default_type application/json;\n\
           client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
           server {{ listen 127.0.0.1:{port} ssl; ssl_protocols TLSv1.2 TLSv1.3;\n\
             ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; root {d}/www;\n\
             keepalive_requests 1000000; }} }}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut nginx = Command::new("nginx")
        .args(["-c", &dir.join("nginx.conf").display().to_string(), "-p"])
        .arg(dir)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let pin = parse_fingerprint(&cert::fingerprint(identity.leaf())).unwrap();
    let figures = kept_alive(address, pin, "unused".into(), "/api/status");
    rows.push(figures.row(
        "host: GET /api/status, kept alive, nginx (1 worker)",
        "requests/s",
    ));
    let figures = handshakes(address, pin);
    rows.push(figures.row(
        "host: new TLS handshakes, nginx (1 worker, P-256)",
        "handshakes/s",
    ));
    // SIGTERM: the master stops its worker too (SIGKILL would leave the worker holding the
    // port, with this run's certificate, for the next run).
    let master = nix::unistd::Pid::from_raw(nginx.id() as i32);
    let _ = nix::sys::signal::kill(master, nix::sys::signal::Signal::SIGTERM);
    let _ = nginx.wait();
}

/// The pair's heartbeat timing on `node`, from `director ctl status`: the line itself.
fn heartbeat_line(pair: &mut vm::lab::Pair, node: Node) -> String {
    let status = pair.sh(node, "director ctl status", SHORT);
    status
        .lines()
        .find(|l| l.contains("heartbeats:"))
        .unwrap_or("(no heartbeat line)")
        .trim()
        .to_string()
}

#[test]
#[ignore = "boots two VMs under QEMU (root) and loads their admin endpoint: run by scripts/bench"]
fn admin_endpoint_figures() {
    let dir = test_dir("bench-admin");
    let mut spec = PairSpec::new("badm", &dir);
    for (node, config) in [(Node::A, &mut spec.config_a), (Node::B, &mut spec.config_b)] {
        *config = format!(
            "{}{}{}",
            pair_node_config(node),
            dr_virtual_servers(
                &[("web", 80)],
                &[("rs1", "192.0.2.21"), ("rs2", "192.0.2.22")]
            ),
            pair_section(node, "the admin bench's key", "10ms", "40ms", "10s"),
        );
    }
    let mut pair = spec.boot();
    pair.wait_ready(BOOT);
    pair.logged(Node::A, "pair: init -> ", SHORT);
    let token = pair.console_line(Node::A, "director ctl admin token new bench", "dtk_");
    let fingerprint = pair.console_line(Node::A, "director ctl admin fingerprint", "SHA256 ");
    let pin = parse_fingerprint(&fingerprint).unwrap();
    let address: SocketAddr = format!("{}:3636", Node::A.public()).parse().unwrap();

    // The status the box answers: the host's endpoint serves the same.
    let ns = pair.client().to_string();
    let (probe_ns, probe_token) = (ns.clone(), token.clone());
    let status = std::thread::spawn(move || {
        enter_netns(&probe_ns).unwrap_or_else(|e| panic!("{e}"));
        Client::new(address, pin)
            .with_token(&probe_token)
            .get("/api/status")
            .map(|r| r.json())
            .unwrap_or_else(|e| panic!("{e}"))
    })
    .join()
    .unwrap_or_else(|_| panic!("probe failed"));

    let mut rows = Vec::new();
    // The status keeps the longest gap over the last 10 s: read it when that window holds only
    // the quiet box (after the boot's own jitter), the kept-alive load and the handshake load.
    std::thread::sleep(WINDOW + Duration::from_secs(1));
    let quiet = heartbeat_line(&mut pair, Node::A);
    // Both loads from the client's namespace, one after the other.
    let loaded = {
        let (ns, token) = (ns.clone(), token.clone());
        std::thread::spawn(move || {
            enter_netns(&ns).unwrap_or_else(|e| panic!("{e}"));
            let kept = kept_alive(address, pin, token, "/api/status");
            let fresh = handshakes(address, pin);
            (kept, fresh)
        })
    };
    // Read the heartbeat as the first load ends (its window: that load, and 1 s of the next).
    std::thread::sleep(LOAD + Duration::from_millis(500));
    let under_load = heartbeat_line(&mut pair, Node::A);
    let (kept, fresh) = loaded.join().unwrap_or_else(|_| panic!("the load failed"));
    let after = heartbeat_line(&mut pair, Node::A);
    rows.push(kept.row(
        "box (TCG): GET /api/status, kept alive, director",
        "requests/s",
    ));
    rows.push(fresh.row(
        "box (TCG): new TLS handshakes, director (P-256)",
        "handshakes/s",
    ));
    on_the_host(status.clone(), &mut rows);
    nginx_reference(&status, &dir.join("nginx"), &mut rows);

    println!(
        "| {:<58} | {:>22} | {:>11} | {:>11} | {:>6} |",
        "admin endpoint, 4 clients for 10 s", "rate", "median", "99th pct", "failed"
    );
    for row in rows {
        println!("{row}");
    }
    println!("admin heartbeat (A, keepalive 10 ms), last 10 s quiet:          {quiet}");
    println!("admin heartbeat (A, keepalive 10 ms), last 10 s kept-alive load: {under_load}");
    println!("admin heartbeat (A, keepalive 10 ms), last 10 s handshake load:  {after}");
    assert!(kept.done > 0 && fresh.done > 0, "the box answered nothing");
}
