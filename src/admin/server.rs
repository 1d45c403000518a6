//! The endpoint put together: tiny-http on a loopback port of its own, the TLS front before it
//! on the configured address, and the API behind. Each request is answered on a thread of its
//! own, so that a client sending its body slowly holds up nobody else; the front's caps bound
//! how many there are.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use log::warn;
use rustls::ServerConfig;

use super::api::{Api, Call, Reply, MAX_BODY};
use super::cert::Identity;
use super::front::{self, Allowed, Front, Peers, Presented};
use crate::config::types::Prefix;

/// The loopback listener tiny-http accepts on, with Nagle off for every connection it accepts
/// (Linux hands a listener's TCP_NODELAY to its accepted sockets). tiny-http writes a reply's
/// head and a body over 1 KiB in two writes; with Nagle on, the second waited for the front to
/// acknowledge the first, a delayed ACK: 40 ms on every kept-alive request.
fn inner_listener() -> Result<std::net::TcpListener, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("admin: a loopback port for the HTTP server: {e}"))?;
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .map_err(|e| format!("admin: TCP_NODELAY on the loopback listener: {e}"))?;
    Ok(listener)
}

/// A running endpoint.
pub struct Endpoint {
    api: Arc<Api>,
    presented: Arc<Presented>,
    tls: Arc<ServerConfig>,
    allowed: Allowed,
    peers: Peers,
    backend: SocketAddr,
    front: Mutex<Option<Front>>,
    http: Arc<tiny_http::Server>,
}

impl Endpoint {
    /// Starts the HTTP side (loopback) with `api` behind it, presenting `identity`; nothing
    /// listens outside until `listen`.
    pub fn start(api: Arc<Api>, identity: &Identity) -> Result<Arc<Endpoint>, String> {
        let provider = rustls::crypto::ring::default_provider();
        let presented = Presented::new(identity.certified(&provider)?);
        let tls = front::server_config(Arc::clone(&presented))?;
        let http = tiny_http::Server::from_listener(inner_listener()?, None)
            .map_err(|e| format!("admin: the HTTP server on loopback: {e}"))?;
        let backend = http
            .server_addr()
            .to_ip()
            .ok_or("admin: the HTTP server has no loopback address")?;
        let endpoint = Arc::new(Endpoint {
            api,
            presented,
            tls,
            allowed: Allowed::default(),
            peers: Peers::default(),
            backend,
            front: Mutex::new(None),
            http: Arc::new(http),
        });
        let serving = Arc::clone(&endpoint);
        std::thread::Builder::new()
            .name("admin-http".into())
            .spawn(move || serving.dispatch())
            .map_err(|e| format!("admin: a thread: {e}"))?;
        Ok(endpoint)
    }

    /// Listens on `address` (again, when it changed) and admits `allowed` sources from now on.
    pub fn listen(&self, address: SocketAddr, allowed: &[Prefix]) -> Result<SocketAddr, String> {
        self.allowed.set(allowed);
        let mut current = self
            .front
            .lock()
            .map_err(|_| "admin: the front failed earlier")?;
        if let Some(front) = current.as_ref() {
            let same_port = address.port() == 0 || front.local.port() == address.port();
            if front.local.ip() == address.ip() && same_port {
                return Ok(front.local);
            }
        }
        // The old one goes first: the new one may want its port.
        if let Some(mut old) = current.take() {
            old.stop();
        }
        let started = Front::start(
            address,
            Arc::clone(&self.tls),
            self.allowed.clone(),
            self.backend,
            self.peers.clone(),
            Arc::clone(&self.api.counters),
        )
        .map_err(|e| format!("admin: listen on {address}: {e}"))?;
        let local = started.local;
        *current = Some(started);
        Ok(local)
    }

    /// Presents `identity` from the next handshake on.
    pub fn present(&self, identity: &Identity) -> Result<(), String> {
        let provider = rustls::crypto::ring::default_provider();
        self.presented.replace(identity.certified(&provider)?);
        Ok(())
    }

    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    fn dispatch(self: Arc<Self>) {
        loop {
            let request = match self.http.recv() {
                Ok(request) => request,
                Err(e) => {
                    warn!("the HTTP server stopped: {e}");
                    return;
                }
            };
            let this = Arc::clone(&self);
            let spawned = std::thread::Builder::new()
                .name("admin-request".into())
                .stack_size(512 << 10)
                .spawn(move || this.answer(request));
            if let Err(e) = spawned {
                warn!("no thread for a request: {e}");
            }
        }
    }

    fn answer(&self, mut request: tiny_http::Request) {
        let Some(client) = self.peers.client(request.remote_addr()) else {
            // Something on the box itself, around the front.
            let reply = Reply::error(403, "the admin endpoint answers only over HTTPS");
            let _ = request.respond(response(reply));
            return;
        };
        let reply = match read_call(&mut request, client.ip()) {
            Ok(call) => self.api.handle(&call, Instant::now()),
            Err(reply) => reply,
        };
        if reply.status >= 500 {
            warn!(
                "{} {} from {client}: {}",
                request.method(),
                request.url(),
                String::from_utf8_lossy(&reply.body)
            );
        }
        let _ = request.respond(response(reply));
    }
}

/// The request as the API takes it; a body over `MAX_BODY` is refused unread.
fn read_call(request: &mut tiny_http::Request, client: IpAddr) -> Result<Call, Reply> {
    let too_big = || Reply::error(413, format!("the body is larger than {MAX_BODY} bytes"));
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("reading the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_big());
    }
    Ok(Call {
        method: request.method().as_str().to_string(),
        url: request.url().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
        client,
    })
}

fn response(reply: Reply) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut response = tiny_http::Response::from_data(reply.body).with_status_code(reply.status);
    let fixed = [
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        (
            "Content-Security-Policy",
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    ];
    for (name, value) in fixed {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    for (name, value) in &reply.headers {
        if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
    response
}

#[cfg(test)]
mod tests;
