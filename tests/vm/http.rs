//! Real servers' HTTP: a tiny server on a thread inside a network namespace that answers every
//! request with the server's name, so a client can tell who answered. It can be stopped and
//! started again; it stops when dropped.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::lab::enter_netns;

/// How long a client may take to send its request before the server gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the idle server looks at its stop flag.
const POLL: Duration = Duration::from_millis(10);

/// A listener on a thread of its own inside a network namespace, serving until stopped.
struct Listening {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listening {
    /// Binds 0.0.0.0:`port` (non-blocking) inside namespace `ns` on a thread named `name`,
    /// which then runs `serve` until the stop flag is set. Returns once the port is open.
    fn start(
        ns: &str,
        name: String,
        port: u16,
        serve: impl FnOnce(&TcpListener, &Arc<AtomicBool>) + Send + 'static,
    ) -> io::Result<Listening> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, started) = mpsc::channel();
        let ns = ns.to_string();
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new().name(name.clone()).spawn(move || {
                let listener = enter_netns(&ns).and_then(|()| {
                    let listener =
                        TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?;
                    listener.set_nonblocking(true)?;
                    Ok(listener)
                });
                match listener {
                    Ok(listener) => {
                        let _ = ready.send(Ok(()));
                        serve(&listener, &stop);
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?
        };
        match started.recv() {
            Ok(Ok(())) => Ok(Listening {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other(format!("the thread {name} died"))),
        }
    }

    /// Closes the port and waits for the thread.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running server; `stop` (or drop) closes its port.
pub struct HttpServer {
    listening: Listening,
    served: Arc<AtomicU64>,
}

impl HttpServer {
    /// Listens on 0.0.0.0:`port` inside namespace `ns` (so on the VIPs on lo too) and answers
    /// every request with `name` and a newline. Returns once the port is open.
    pub fn start(ns: &str, name: &str, port: u16) -> io::Result<HttpServer> {
        let served = Arc::new(AtomicU64::new(0));
        let body = format!("{name}\n");
        let counted = Arc::clone(&served);
        let listening = Listening::start(ns, format!("http-{name}"), port, move |l, stop| {
            serve(l, &body, stop, &counted)
        })?;
        Ok(HttpServer { listening, served })
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Closes the port: new connections are refused from now on.
    pub fn stop(&mut self) {
        self.listening.stop();
    }
}

fn serve(listener: &TcpListener, body: &str, stop: &AtomicBool, served: &Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A thread per request: a client that never sends its request (its packets
                // lost with a director) must not hold up the others.
                let body = body.to_string();
                let served = Arc::clone(served);
                thread::spawn(move || {
                    let _ = answer(stream, &body, &served);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            // A connection that went away before it was accepted, or out of descriptors for a
            // moment: the next one may do better.
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Reads the request head (whatever it is) and answers 200 with the body; counts the request
/// as served before the answer leaves (a client that has it finds it counted).
fn answer(mut stream: TcpStream, body: &str, served: &AtomicU64) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    served.fetch_add(1, Ordering::Relaxed);
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// An echo server: every connection gets back what it sends, for as long as it stays open (the
/// far end of long-lived client connections). Stops, closing every connection, when dropped.
pub struct EchoServer {
    _listening: Listening,
}

impl EchoServer {
    /// Listens on 0.0.0.0:`port` inside namespace `ns`; returns once the port is open.
    pub fn start(ns: &str, name: &str, port: u16) -> io::Result<EchoServer> {
        let listening = Listening::start(ns, format!("echo-{name}"), port, echo_all)?;
        Ok(EchoServer {
            _listening: listening,
        })
    }
}

/// Accepts until stopped; one thread per connection, each ending with the server.
fn echo_all(listener: &TcpListener, stop: &Arc<AtomicBool>) {
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let stop = Arc::clone(stop);
                connections.push(thread::spawn(move || {
                    let _ = echo(stream, &stop);
                }));
            }
            Err(_) => thread::sleep(POLL),
        }
    }
    for connection in connections {
        let _ = connection.join();
    }
}

fn echo(mut stream: TcpStream, stop: &AtomicBool) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => stream.write_all(&buf[..n])?,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
