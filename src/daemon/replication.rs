//! Configuration replication: a change made on either node reaches the other over the
//! heartbeat link, so that Piranha's "copy lvs.cf to the backup" step goes away. What moves is
//! the shared part (`config::replica`: virtual servers and IPVS settings); each box keeps its
//! own addresses, routes, pair section and admin settings.
//!
//! Each node tells its pair machine the revision in force and the shared part's stamp, which
//! every beat carries. A node that sees in its peer's beats a shared part it should take
//! (`replica::take_peers`) asks the peer for it over TCP on the heartbeat link (`ha::transfer`:
//! a fresh nonce, HMAC-SHA256 under the pair's key both ways), checks it, and commits it as a
//! new revision of its own store, with the rest of its configuration unchanged. A part that
//! does not fit this box is refused with the reason, logged and shown in `ctl status`, and
//! changes nothing; it is not asked for again until the peer's stamp changes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use log::{error, info, warn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use super::configuration::{Configuration, SharedPart};
use crate::config::model::Pair;
use crate::config::replica::{self, Stamp};
use crate::ha::machine::Role;
use crate::ha::message::Key;
use crate::ha::run::{bind_to_device, Command, Handle};
use crate::ha::transfer::{self, Reply, Request, NONCE_BYTES, REPLY_HEADER, REQUEST_BYTES};

/// How often the peer's stamp is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(250);
/// The longest a transfer may take, either way.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(5);
/// The wait before asking again after a failed transfer.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What `ctl status` says of replication.
pub type Report = Arc<Mutex<String>>;

/// Starts replication for `pair` when it has a UDP heartbeat channel (the transfer goes over
/// TCP on the same link and port); None, logged, without one.
pub fn start(
    pair: &Pair,
    node: u64,
    configuration: Arc<Mutex<Configuration>>,
    slot: Arc<Mutex<Option<Handle>>>,
) -> Option<Report> {
    let Some(channel) = &pair.udp else {
        warn!(
            "pair: no udp heartbeat channel: configuration changes are not replicated to the peer"
        );
        return None;
    };
    let key = Arc::new(Key::new(pair.key.as_bytes()));
    let parts = match configuration.lock() {
        Ok(configuration) => configuration.shared(),
        Err(_) => return None,
    };
    let report: Report = Arc::new(Mutex::new("replication starting".to_string()));
    match listen(pair.peer, channel.port, &channel.interface) {
        Ok(listener) => {
            tokio::spawn(serve(listener, key.clone(), parts.clone(), pair.peer));
        }
        Err(e) => error!(
            "pair: cannot serve the configuration to the peer on tcp port {} of {}: {e}",
            channel.port, channel.interface
        ),
    }
    tokio::spawn(follow(Follower {
        node,
        peer: SocketAddr::new(pair.peer, channel.port),
        interface: channel.interface.clone(),
        key,
        parts,
        configuration,
        slot,
        report: report.clone(),
    }));
    Some(report)
}

fn listen(peer: IpAddr, port: u16, interface: &str) -> std::io::Result<TcpListener> {
    let any: IpAddr = if peer.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = if peer.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    bind_to_device(&socket, interface)?;
    socket.bind(SocketAddr::new(any, port))?;
    socket.listen(4)
}

/// Answers the peer's requests with the shared part in force; anyone else is turned away.
async fn serve(
    listener: TcpListener,
    key: Arc<Key>,
    parts: watch::Receiver<SharedPart>,
    peer: IpAddr,
) {
    let mut said_stranger = false;
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!("pair: configuration transfer: accept: {e}");
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if from.ip() != peer {
            if !said_stranger {
                said_stranger = true;
                warn!("pair: configuration transfer: {from} is not the peer, turned away (further ones are not logged)");
            }
            continue;
        }
        let key = key.clone();
        let part = parts.borrow().clone();
        tokio::spawn(async move {
            match tokio::time::timeout(TRANSFER_TIMEOUT, answer(stream, &key, part)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => warn!("pair: configuration transfer to {from}: {e}"),
                Err(_) => warn!("pair: configuration transfer to {from}: timed out"),
            }
        });
    }
}

async fn answer(mut stream: TcpStream, key: &Key, part: SharedPart) -> Result<(), String> {
    let mut asked = [0u8; REQUEST_BYTES];
    stream
        .read_exact(&mut asked)
        .await
        .map_err(|e| format!("reading the request: {e}"))?;
    let request =
        transfer::read_request(key, &asked).map_err(|why| format!("request refused: {why}"))?;
    let bytes = transfer::reply(
        key,
        &request.nonce,
        &Reply {
            revision: part.revision,
            stamp: part.stamp,
            text: part.text.to_string(),
        },
    );
    stream
        .write_all(&bytes)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let _ = stream.shutdown().await;
    Ok(())
}

struct Follower {
    node: u64,
    peer: SocketAddr,
    interface: String,
    key: Arc<Key>,
    parts: watch::Receiver<SharedPart>,
    configuration: Arc<Mutex<Configuration>>,
    slot: Arc<Mutex<Option<Handle>>>,
    report: Report,
}

/// Tells the pair machine what this node runs, and takes the peer's shared part when it should.
async fn follow(f: Follower) {
    let mut told: Option<(u64, Stamp)> = None;
    // The peer's stamp last taken or refused: not asked for again.
    let mut handled: Option<Stamp> = None;
    let mut failed_for: Option<Stamp> = None;
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let Some(pair) = f.slot.lock().ok().and_then(|p| p.clone()) else {
            continue;
        };
        let ours = f.parts.borrow().clone();
        if told != Some((ours.revision, ours.stamp))
            && pair.send(Command::Config {
                revision: ours.revision,
                shared: ours.stamp,
            })
        {
            told = Some((ours.revision, ours.stamp));
        }
        let Some(status) = pair.status().await else {
            continue;
        };
        let peer = match status.peer {
            Some(peer) if status.peer_alive => peer,
            _ => {
                set(
                    &f.report,
                    format!("shared part {}; the peer is not heard", ours.stamp),
                );
                continue;
            }
        };
        if let Ok(mut configuration) = f.configuration.lock() {
            configuration.note_peer(peer.shared);
        }
        let ours = f.parts.borrow().clone();
        let own_active = status.role == Role::Active;
        let peer_active = peer.role == Role::Active;
        if !replica::take_peers(ours.stamp, own_active, peer.shared, peer_active) {
            let state = if peer.shared.digest == ours.stamp.digest {
                "the same as the peer's".to_string()
            } else if handled == Some(peer.shared) {
                format!("the peer's {} was refused", peer.shared)
            } else {
                format!("the peer has {}; it takes this node's", peer.shared)
            };
            // A refusal stays reported until the peer's stamp changes.
            if handled != Some(peer.shared) || !read(&f.report).contains("refused") {
                set(&f.report, format!("shared part {}: {state}", ours.stamp));
            }
            continue;
        }
        if handled == Some(peer.shared) {
            continue;
        }
        set(
            &f.report,
            format!(
                "shared part {}: taking the peer's {}",
                ours.stamp, peer.shared
            ),
        );
        let fetched = match tokio::time::timeout(TRANSFER_TIMEOUT, fetch(&f)).await {
            Ok(result) => result,
            Err(_) => Err("timed out".to_string()),
        };
        let reply = match fetched {
            Ok(reply) => reply,
            Err(why) => {
                if failed_for != Some(peer.shared) {
                    failed_for = Some(peer.shared);
                    warn!(
                        "pair: cannot fetch the peer's configuration ({}): {why}; trying again",
                        peer.shared
                    );
                }
                set(
                    &f.report,
                    format!(
                        "shared part {}: fetching the peer's {} failed: {why}",
                        ours.stamp, peer.shared
                    ),
                );
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        failed_for = None;
        // The peer may have changed again since its beat: what came is taken only if it is
        // still to be taken (its next beats announce the newer one).
        if !replica::take_peers(ours.stamp, own_active, reply.stamp, peer_active) {
            continue;
        }
        handled = Some(reply.stamp);
        let from = format!(
            "{} (node {:x}, revision {})",
            f.peer.ip(),
            peer.node,
            reply.revision
        );
        let outcome = match f.configuration.lock() {
            Ok(mut configuration) => configuration.adopt(&reply.text, reply.stamp, &from),
            Err(_) => Err("the configuration service failed earlier".to_string()),
        };
        match outcome {
            Ok(done) => {
                let done = done.lines().next().unwrap_or_default().to_string();
                info!(
                    "pair: took the peer's configuration ({}) from {from}: {done}",
                    reply.stamp
                );
                set(
                    &f.report,
                    format!("shared part {}: taken from the peer ({done})", reply.stamp),
                );
            }
            Err(why) => {
                error!(
                    "pair: the peer's configuration ({}) is refused, nothing changed: {why}",
                    reply.stamp
                );
                set(
                    &f.report,
                    format!(
                        "shared part {}: the peer's {} was refused: {why}",
                        ours.stamp, reply.stamp
                    ),
                );
            }
        }
    }
}

/// Asks the peer for its shared part.
async fn fetch(f: &Follower) -> Result<Reply, String> {
    let mut nonce = [0u8; NONCE_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| "no random nonce".to_string())?;
    let socket = if f.peer.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    bind_to_device(&socket, &f.interface).map_err(|e| e.to_string())?;
    let mut stream = socket
        .connect(f.peer)
        .await
        .map_err(|e| format!("connecting to {}: {e}", f.peer))?;
    let request = transfer::request(
        &f.key,
        &Request {
            nonce,
            node: f.node,
        },
    );
    stream
        .write_all(&request)
        .await
        .map_err(|e| format!("asking: {e}"))?;
    let mut bytes = vec![0u8; REPLY_HEADER];
    stream
        .read_exact(&mut bytes)
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let total = transfer::reply_length(&bytes).map_err(|why| format!("answer refused: {why}"))?;
    bytes.resize(total, 0);
    stream
        .read_exact(&mut bytes[REPLY_HEADER..])
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    transfer::read_reply(&f.key, &nonce, &bytes).map_err(|why| format!("answer refused: {why}"))
}

fn set(report: &Report, text: String) {
    if let Ok(mut report) = report.lock() {
        *report = text;
    }
}

fn read(report: &Report) -> String {
    report.lock().map(|r| r.clone()).unwrap_or_default()
}
