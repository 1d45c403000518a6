//! The TLS front of the admin endpoint. It accepts TCP connections on the configured address,
//! refuses sources outside the allowed networks before a byte of TLS is read, terminates TLS
//! (rustls, ring provider, TLS 1.2 and 1.3 only) and passes the plaintext to tiny-http, which
//! listens on loopback only. tiny-http sees the front's own loopback connection; the front
//! records which client each of those stands for, so that access control and logs name the
//! real peer (`Peers`). One thread per client, with a cap on clients in all and per source,
//! and time limits on the handshake and on idleness: a slow or silent client holds only its
//! own thread.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use log::{info, warn};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, ServerConnection};

use crate::config::types::Prefix;

/// Longest a client may take to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection with nothing moving either way for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a write to a client that does not read may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Clients connected at once, in all and from one address.
pub const MAX_CLIENTS: usize = 128;
pub const MAX_PER_SOURCE: usize = 16;

/// The certificate the front presents; replaced in place when a new one is uploaded.
#[derive(Debug)]
pub struct Presented(RwLock<Arc<CertifiedKey>>);

impl Presented {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Presented> {
        Arc::new(Presented(RwLock::new(key)))
    }

    pub fn replace(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut current) = self.0.write() {
            *current = key;
        }
    }
}

impl ResolvesServerCert for Presented {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|key| Arc::clone(&key))
    }
}

/// The TLS settings: TLS 1.3 and 1.2 with the ring provider's cipher suites, the presented
/// certificate, no client certificates; HTTP/1.1 offered by ALPN.
pub fn server_config(presented: Arc<Presented>) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS settings: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(presented);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Which client each of the front's loopback connections to tiny-http stands for, by the
/// loopback connection's local port.
#[derive(Clone, Default)]
pub struct Peers(Arc<Mutex<HashMap<u16, SocketAddr>>>);

impl Peers {
    /// The client behind a request tiny-http says came from `via`; None for a connection that
    /// did not come through the front (something else on the box).
    pub fn client(&self, via: Option<&SocketAddr>) -> Option<SocketAddr> {
        let via = via?;
        if !via.ip().is_loopback() {
            return None;
        }
        self.0.lock().ok()?.get(&via.port()).copied()
    }

    fn insert(&self, port: u16, client: SocketAddr) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(port, client);
        }
    }

    fn remove(&self, port: u16) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(&port);
        }
    }
}

/// What the front has done, for metrics and status.
#[derive(Debug, Default)]
pub struct Counters {
    pub accepted: AtomicU64,
    /// Refused by source address, before the handshake.
    pub refused_source: AtomicU64,
    /// Refused because too many clients were connected.
    pub refused_busy: AtomicU64,
    pub handshake_failed: AtomicU64,
    pub handshakes: AtomicU64,
}

/// The sources allowed to connect; empty allows every source.
#[derive(Clone, Default)]
pub struct Allowed(Arc<RwLock<Vec<Prefix>>>);

impl Allowed {
    pub fn set(&self, networks: &[Prefix]) {
        if let Ok(mut list) = self.0.write() {
            *list = networks.to_vec();
        }
    }

    pub fn admits(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        match self.0.read() {
            Ok(list) => list.is_empty() || list.iter().any(|net| net.contains(addr)),
            Err(_) => false,
        }
    }
}

/// A running front; `stop` (or dropping it) ends its accepting and closes its socket before
/// it returns (connections under way finish on their own).
pub struct Front {
    pub local: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the accepting thread looks whether it is to stop.
const STOP_CHECK: Duration = Duration::from_millis(200);

impl Front {
    /// Listens on `listen` and serves clients until stopped.
    pub fn start(
        listen: SocketAddr,
        tls: Arc<ServerConfig>,
        allowed: Allowed,
        backend: SocketAddr,
        peers: Peers,
        counters: Arc<Counters>,
    ) -> io::Result<Front> {
        let listener = TcpListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let clients: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
        let check =
            PollTimeout::try_from(STOP_CHECK.as_millis() as i32).unwrap_or(PollTimeout::MAX);
        let thread = std::thread::Builder::new()
            .name("admin-accept".into())
            .spawn(move || {
                while !stopping.load(Ordering::SeqCst) {
                    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                    if !matches!(poll(&mut fds, check), Ok(n) if n > 0) {
                        continue;
                    }
                    let (stream, client) = match listener.accept() {
                        Ok(accepted) => accepted,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                        Err(e) => {
                            warn!("accept: {e}");
                            // Out of descriptors, say: do not spin.
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    };
                    if stream.set_nonblocking(false).is_err() {
                        continue;
                    }
                    if !allowed.admits(client.ip()) {
                        counters.refused_source.fetch_add(1, Ordering::Relaxed);
                        refuse(stream, &format!("{client}: not in admin.allowed"));
                        continue;
                    }
                    let Some(slot) = Slot::take(&clients, client.ip()) else {
                        counters.refused_busy.fetch_add(1, Ordering::Relaxed);
                        refuse(stream, &format!("{client}: too many connections"));
                        continue;
                    };
                    counters.accepted.fetch_add(1, Ordering::Relaxed);
                    let (tls, peers, counters) =
                        (Arc::clone(&tls), peers.clone(), Arc::clone(&counters));
                    let spawned = std::thread::Builder::new()
                        .name("admin-client".into())
                        .stack_size(256 << 10)
                        .spawn(move || {
                            let _slot = slot;
                            serve(stream, client, tls, backend, &peers, &counters);
                        });
                    if let Err(e) = spawned {
                        warn!("no thread for {client}: {e}");
                    }
                }
            })?;
        info!("listening on {local} (HTTPS)");
        Ok(Front {
            local,
            stop,
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Closes at once, with a reset rather than a TLS alert: nothing is said to a refused source.
fn refuse(stream: TcpStream, why: &str) {
    log::debug!("refused {why}");
    let _ = socket_linger_zero(&stream);
    drop(stream);
}

fn socket_linger_zero(stream: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    nix::sys::socket::setsockopt(stream, nix::sys::socket::sockopt::Linger, &linger)
        .map_err(io::Error::from)
}

/// One client's place among those connected; given back when dropped.
struct Slot {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    source: IpAddr,
}

impl Slot {
    fn take(clients: &Arc<Mutex<HashMap<IpAddr, usize>>>, source: IpAddr) -> Option<Slot> {
        let mut map = clients.lock().ok()?;
        let total: usize = map.values().sum();
        let mine = map.get(&source).copied().unwrap_or(0);
        if total >= MAX_CLIENTS || mine >= MAX_PER_SOURCE {
            return None;
        }
        map.insert(source, mine + 1);
        Some(Slot {
            clients: Arc::clone(clients),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.clients.lock() {
            if let Some(count) = map.get_mut(&self.source) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&self.source);
                }
            }
        }
    }
}

fn serve(
    mut tcp: TcpStream,
    client: SocketAddr,
    tls: Arc<ServerConfig>,
    backend: SocketAddr,
    peers: &Peers,
    counters: &Counters,
) {
    let _ = tcp.set_nodelay(true);
    let mut conn = match ServerConnection::new(tls) {
        Ok(conn) => conn,
        Err(e) => {
            warn!("{client}: {e}");
            return;
        }
    };
    if let Err(e) = handshake(&mut conn, &mut tcp) {
        counters.handshake_failed.fetch_add(1, Ordering::Relaxed);
        log::debug!("{client}: TLS handshake: {e}");
        return;
    }
    counters.handshakes.fetch_add(1, Ordering::Relaxed);
    let mut inner = match TcpStream::connect(backend) {
        Ok(inner) => inner,
        Err(e) => {
            warn!("{client}: the HTTP server behind the front: {e}");
            return;
        }
    };
    let _ = inner.set_nodelay(true);
    let port = match inner.local_addr() {
        Ok(local) => local.port(),
        Err(_) => return,
    };
    peers.insert(port, client);
    if let Err(e) = relay(&mut conn, &mut tcp, &mut inner) {
        log::debug!("{client}: {e}");
    }
    peers.remove(port);
    let _ = inner.shutdown(Shutdown::Both);
}

fn handshake(conn: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    tcp.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let deadline = std::time::Instant::now() + HANDSHAKE_TIMEOUT;
    while conn.is_handshaking() {
        if std::time::Instant::now() > deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake too slow",
            ));
        }
        let (read, written) = conn.complete_io(tcp)?;
        if read == 0 && written == 0 && conn.is_handshaking() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during the handshake",
            ));
        }
    }
    tcp.set_read_timeout(None)?;
    tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
    Ok(())
}

/// Moves plaintext between the client's TLS session and tiny-http until either side closes
/// or nothing moves for `IDLE_TIMEOUT`.
fn relay(
    conn: &mut ServerConnection,
    tcp: &mut TcpStream,
    inner: &mut TcpStream,
) -> io::Result<()> {
    let mut buffer = vec![0u8; 16 << 10];
    let idle = PollTimeout::try_from(IDLE_TIMEOUT.as_millis() as i32).unwrap_or(PollTimeout::MAX);
    loop {
        // What rustls already holds first: a request sent with the client's last handshake
        // message arrived in the handshake's read, and the socket will not say so again.
        loop {
            match conn.reader().read(&mut buffer) {
                Ok(0) => {
                    // close_notify: the client sends no more.
                    let _ = inner.shutdown(Shutdown::Write);
                    break;
                }
                Ok(n) => inner.write_all(&buffer[..n])?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        flush(conn, tcp)?;
        let (client_ready, inner_ready) = {
            let mut fds = [
                PollFd::new(tcp.as_fd(), PollFlags::POLLIN),
                PollFd::new(inner.as_fd(), PollFlags::POLLIN),
            ];
            let ready = poll(&mut fds, idle).map_err(io::Error::from)?;
            if ready == 0 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "idle"));
            }
            let any = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (any(&fds[0]), any(&fds[1]))
        };
        if client_ready {
            if conn.read_tls(tcp)? == 0 {
                // The client went away (with or without close_notify).
                return Ok(());
            }
            if let Err(e) = conn.process_new_packets() {
                // Send the alert that says why, then stop.
                let _ = flush(conn, tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
        if inner_ready {
            let n = inner.read(&mut buffer)?;
            if n == 0 {
                conn.send_close_notify();
                flush(conn, tcp)?;
                return Ok(());
            }
            let mut sent = 0;
            while sent < n {
                sent += conn.writer().write(&buffer[sent..n])?;
                flush(conn, tcp)?;
            }
        }
    }
}

fn flush(conn: &mut ServerConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(tcp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_list_admits_all_and_a_list_only_its_networks() {
        let allowed = Allowed::default();
        assert!(allowed.admits("203.0.113.9".parse().unwrap()));
        allowed.set(&[
            "192.0.2.0/24".parse().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        assert!(allowed.admits("192.0.2.77".parse().unwrap()));
        assert!(allowed.admits("::ffff:192.0.2.77".parse().unwrap()));
        assert!(allowed.admits("2001:db8::5".parse().unwrap()));
        assert!(!allowed.admits("198.51.100.1".parse().unwrap()));
        assert!(!allowed.admits("::ffff:198.51.100.1".parse().unwrap()));
    }

    #[test]
    fn clients_are_capped_per_source_and_in_all() {
        let clients = Arc::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let mut held: Vec<Slot> = (0..MAX_PER_SOURCE)
            .map(|_| Slot::take(&clients, a).unwrap())
            .collect();
        assert!(Slot::take(&clients, a).is_none());
        held.push(Slot::take(&clients, b).unwrap());
        held.remove(0);
        assert!(Slot::take(&clients, a).is_some());
        drop(held);
        assert!(clients.lock().unwrap().is_empty());
    }

    #[test]
    fn only_recorded_loopback_connections_have_a_client() {
        let peers = Peers::default();
        let client: SocketAddr = "192.0.2.1:40000".parse().unwrap();
        peers.insert(5000, client);
        assert_eq!(
            peers.client(Some(&"127.0.0.1:5000".parse().unwrap())),
            Some(client)
        );
        assert_eq!(peers.client(Some(&"127.0.0.1:5001".parse().unwrap())), None);
        assert_eq!(peers.client(Some(&"192.0.2.5:5000".parse().unwrap())), None);
        assert_eq!(peers.client(None), None);
        peers.remove(5000);
        assert_eq!(peers.client(Some(&"127.0.0.1:5000".parse().unwrap())), None);
    }
}
