//! A bounded HTTP client load from inside a network namespace: one HTTP/1.0 GET per request,
//! paced at a fixed interval, stopping by itself after N requests or a time limit. The report
//! counts successes, failures by kind, answers per real server (the body names the server) and
//! the longest outage.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::lab::enter_netns;

/// What to send.
#[derive(Clone, Debug)]
pub struct Load {
    /// Where to connect, e.g. the VIP's port 80.
    pub target: SocketAddr,
    /// At most this many requests.
    pub requests: u32,
    /// And for at most this long (a request under way when it ends still finishes, bounded by
    /// `timeout`).
    pub max_duration: Duration,
    /// From the start of one request to the start of the next (back to back when a request
    /// takes longer).
    pub interval: Duration,
    /// Connect timeout, and read/write timeout, of each request.
    pub timeout: Duration,
}

impl Load {
    /// `requests` GETs to `target`, one every `interval`, for at most `max_duration`, each with
    /// a 1 s timeout.
    pub fn new(target: &str, requests: u32, max_duration: Duration, interval: Duration) -> Load {
        Load {
            target: target
                .parse()
                .unwrap_or_else(|e| panic!("load target {target:?} is not IP:PORT: {e}")),
            requests,
            max_duration,
            interval,
            timeout: Duration::from_secs(1),
        }
    }
}

/// What a load saw.
#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub target: Option<SocketAddr>,
    /// Requests made.
    pub requests: u32,
    pub successes: u32,
    pub failures: u32,
    /// Failures by kind ("connect: ConnectionRefused", "read: TimedOut", "http: ...").
    pub errors: BTreeMap<String, u32>,
    /// Successful answers by the server named in the body.
    pub servers: BTreeMap<String, u32>,
    /// The longest span from a success (or the start) to the next success across which every
    /// request failed; when the load ended while failing, up to the start of its last request.
    pub longest_outage: Duration,
    /// The load ended while requests were failing.
    pub ended_failing: bool,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl LoadReport {
    /// Answers from `server`.
    pub fn from(&self, server: &str) -> u32 {
        self.servers.get(server).copied().unwrap_or(0)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = self
            .target
            .map_or_else(|| "?".to_string(), |t| t.to_string());
        writeln!(
            f,
            "load on {target}: {} requests in {:.2} s, {} answered, {} failed",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.successes,
            self.failures
        )?;
        let servers: Vec<String> = self
            .servers
            .iter()
            .map(|(name, n)| format!("{name} x{n}"))
            .collect();
        writeln!(
            f,
            "  answered by: {}",
            if servers.is_empty() {
                "nobody".to_string()
            } else {
                servers.join(", ")
            }
        )?;
        if !self.errors.is_empty() {
            let errors: Vec<String> = self
                .errors
                .iter()
                .map(|(kind, n)| format!("{kind} x{n}"))
                .collect();
            writeln!(f, "  failures: {}", errors.join(", "))?;
        }
        write!(
            f,
            "  longest outage: {:.2} s{}",
            self.longest_outage.as_secs_f64(),
            if self.ended_failing {
                " (still failing at the end)"
            } else {
                ""
            }
        )
    }
}

/// A load running on its own thread.
pub struct LoadRun {
    thread: JoinHandle<LoadReport>,
}

impl LoadRun {
    /// Starts `load` from namespace `ns`; fails when the namespace cannot be entered.
    pub fn start(ns: &str, load: Load) -> io::Result<LoadRun> {
        let ns = ns.to_string();
        let (entered, ready) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("load".to_string())
            .spawn(move || {
                if let Err(e) = enter_netns(&ns) {
                    let _ = entered.send(Err(e));
                    return LoadReport::default();
                }
                let _ = entered.send(Ok(()));
                run(&load)
            })?;
        match ready.recv() {
            Ok(Ok(())) => Ok(LoadRun { thread }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other("the load thread died")),
        }
    }

    /// Waits for the load to end by itself (it is bounded) and returns its report.
    pub fn wait(self) -> LoadReport {
        self.thread.join().expect("the load thread panicked")
    }
}

fn run(load: &Load) -> LoadReport {
    let start = Instant::now();
    let mut tally = Tally::new(load.target, start);
    for n in 0..load.requests {
        let due = start + load.interval * n;
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        let at = Instant::now();
        if at.duration_since(start) >= load.max_duration {
            break;
        }
        tally.record(at, get(load.target, load.timeout));
    }
    tally.finish(Instant::now())
}

/// Builds a report from results as they come: what answered, what failed, and the outages.
pub struct Tally {
    report: LoadReport,
    start: Instant,
    /// The last success (the start counts as one).
    last_success: Instant,
    /// The last failure since then, if any.
    failing_since_success: Option<Instant>,
}

impl Tally {
    pub fn new(target: SocketAddr, start: Instant) -> Tally {
        Tally {
            report: LoadReport {
                target: Some(target),
                ..LoadReport::default()
            },
            start,
            last_success: start,
            failing_since_success: None,
        }
    }

    /// One request started at `at`: the server that answered, or the kind of failure.
    pub fn record(&mut self, at: Instant, result: Result<String, String>) {
        let report = &mut self.report;
        report.requests += 1;
        match result {
            Ok(server) => {
                report.successes += 1;
                *report.servers.entry(server).or_default() += 1;
                if self.failing_since_success.take().is_some() {
                    report.longest_outage = report.longest_outage.max(at - self.last_success);
                }
                self.last_success = at;
            }
            Err(kind) => {
                report.failures += 1;
                *report.errors.entry(kind).or_default() += 1;
                self.failing_since_success = Some(at);
            }
        }
    }

    /// The report of a load that ended at `end`.
    pub fn finish(mut self, end: Instant) -> LoadReport {
        if let Some(last_failure) = self.failing_since_success {
            self.report.ended_failing = true;
            self.report.longest_outage = self
                .report
                .longest_outage
                .max(last_failure - self.last_success);
        }
        self.report.elapsed = end - self.start;
        self.report
    }
}

/// One GET; the server's name (the body, trimmed) or what went wrong.
fn get(target: SocketAddr, timeout: Duration) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&target, timeout)
        .map_err(|e| format!("connect: {:?}", e.kind()))?;
    let io_error = |what: &str, e: io::Error| {
        // A read timeout shows as WouldBlock on Linux.
        let kind = match e.kind() {
            io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut,
            kind => kind,
        };
        format!("{what}: {kind:?}")
    };
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| io_error("socket", e))?;
    let request = format!("GET / HTTP/1.0\r\nHost: {target}\r\nUser-Agent: director-lab\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| io_error("write", e))?;
    let mut response = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| io_error("read", e))?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err(if text.is_empty() {
            "http: empty response".to_string()
        } else {
            "http: no end of headers".to_string()
        });
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("http: {status}"));
    }
    let server = body.trim();
    if server.is_empty() {
        return Err("http: empty body".to_string());
    }
    Ok(server.to_string())
}
