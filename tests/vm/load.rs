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

/// A paced load: a request starts every `interval` whatever the others are doing (up to
/// `workers` under way at once), so that an outage shows to within an interval; it stops by
/// itself after `duration`.
#[derive(Clone, Debug)]
pub struct Paced {
    pub target: SocketAddr,
    pub interval: Duration,
    pub duration: Duration,
    /// Connect timeout, and read/write timeout, of each request.
    pub timeout: Duration,
    pub workers: u32,
}

impl Paced {
    /// A GET every `interval` for `duration`, each with a 1 s timeout.
    pub fn new(target: &str, interval: Duration, duration: Duration) -> Paced {
        let timeout = Duration::from_secs(1);
        Paced {
            target: target
                .parse()
                .unwrap_or_else(|e| panic!("load target {target:?} is not IP:PORT: {e}")),
            interval,
            duration,
            timeout,
            // Enough that a worker's next request is due after its last one timed out.
            workers: u32::try_from(timeout.as_nanos() / interval.as_nanos().max(1))
                .unwrap_or(u32::MAX)
                .saturating_add(2)
                .min(512),
        }
    }
}

/// One request of a paced load.
struct Sample {
    start: Instant,
    end: Instant,
    result: Result<String, String>,
}

/// What a paced load saw: the counts as any load counts them, with the outage measured by the
/// answers: the longest span between two successive answers (by the time they arrived), what
/// a client saw of an outage, to within the interval.
#[derive(Clone, Debug)]
pub struct PacedReport {
    pub load: LoadReport,
    /// When the longest outage began, from the start of the load.
    pub outage_began: Duration,
}

impl fmt::Display for PacedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let load = &self.load;
        let errors: Vec<String> = load
            .errors
            .iter()
            .map(|(kind, n)| format!("{kind} x{n}"))
            .collect();
        write!(
            f,
            "{} requests, {} answered, {} failed{}{}; longest time without an answer {:.3} s (from {:.3} s)",
            load.requests,
            load.successes,
            load.failures,
            if errors.is_empty() { "" } else { ": " },
            errors.join(", "),
            load.longest_outage.as_secs_f64(),
            self.outage_began.as_secs_f64()
        )
    }
}

/// A paced load running on its workers.
pub struct PacedRun {
    target: SocketAddr,
    start: Instant,
    workers: Vec<JoinHandle<io::Result<Vec<Sample>>>>,
}

impl PacedRun {
    /// Starts `load` from namespace `ns`.
    pub fn start(ns: &str, load: &Paced) -> io::Result<PacedRun> {
        let start = Instant::now() + Duration::from_millis(50);
        let mut workers = Vec::new();
        for first in 0..load.workers {
            let ns = ns.to_string();
            let load = load.clone();
            workers.push(
                thread::Builder::new()
                    .name(format!("paced-{first}"))
                    .spawn(move || {
                        enter_netns(&ns)?;
                        let mut samples = Vec::new();
                        let mut n = first;
                        loop {
                            let due = start + load.interval * n;
                            if due.duration_since(start) >= load.duration {
                                return Ok(samples);
                            }
                            let now = Instant::now();
                            if due > now {
                                thread::sleep(due - now);
                            }
                            let begun = Instant::now();
                            let result = get(load.target, load.timeout);
                            samples.push(Sample {
                                start: begun,
                                end: Instant::now(),
                                result,
                            });
                            n += load.workers;
                        }
                    })?,
            );
        }
        Ok(PacedRun {
            target: load.target,
            start,
            workers,
        })
    }

    /// Waits for the load to end by itself and returns its report.
    pub fn wait(self) -> PacedReport {
        let mut samples = Vec::new();
        for worker in self.workers {
            match worker.join() {
                Ok(Ok(done)) => samples.extend(done),
                Ok(Err(e)) => panic!("a load worker could not start: {e}"),
                Err(_) => panic!("a load worker panicked"),
            }
        }
        samples.sort_by_key(|s| s.start);
        let end = samples.iter().map(|s| s.end).max().unwrap_or(self.start);
        let mut answers = Vec::new();
        let mut tally = Tally::new(self.target, self.start);
        let mut last_start = None;
        for sample in samples {
            if sample.result.is_ok() {
                answers.push(sample.end);
            }
            last_start = Some(sample.start);
            tally.record(sample.start, sample.result);
        }
        let mut load = tally.finish(end);
        answers.sort();
        // A load that ended failing: the outage lasted at least until its last request began.
        if let Some(start) = last_start.filter(|_| load.ended_failing) {
            if answers.last().is_some_and(|answer| start > *answer) {
                answers.push(start);
            }
        }
        let mut outage_began = Duration::ZERO;
        load.longest_outage = Duration::ZERO;
        for pair in answers.windows(2) {
            let gap = pair[1] - pair[0];
            if gap > load.longest_outage {
                load.longest_outage = gap;
                outage_began = pair[0].saturating_duration_since(self.start);
            }
        }
        PacedReport { load, outage_began }
    }
}

/// Long-lived client connections: each sends a line now and then and expects it back.
pub struct Streams {
    streams: Vec<Option<TcpStream>>,
    sent: u64,
}

impl Streams {
    /// Opens `n` connections to `target` from namespace `ns`.
    pub fn open(ns: &str, target: &str, n: usize) -> io::Result<Streams> {
        let target: SocketAddr = target
            .parse()
            .map_err(|e| io::Error::other(format!("{target:?} is not IP:PORT: {e}")))?;
        let ns = ns.to_string();
        let streams = thread::spawn(move || -> io::Result<Vec<TcpStream>> {
            enter_netns(&ns)?;
            (0..n)
                .map(|_| TcpStream::connect_timeout(&target, Duration::from_secs(2)))
                .collect()
        })
        .join()
        .map_err(|_| io::Error::other("the connecting thread panicked"))??;
        Ok(Streams {
            streams: streams.into_iter().map(Some).collect(),
            sent: 0,
        })
    }

    /// One exchange on every connection still open: a line out, the same line back before
    /// `deadline` passes. A connection that fails is closed. Returns how many answered.
    pub fn exchange(&mut self, within: Duration) -> usize {
        self.sent += 1;
        let deadline = Instant::now() + within;
        for (i, slot) in self.streams.iter_mut().enumerate() {
            let line = format!("stream {i} line {}\n", self.sent);
            if let Some(stream) = slot {
                if stream.write_all(line.as_bytes()).is_err() {
                    *slot = None;
                }
            }
        }
        let mut answered = 0;
        for (i, slot) in self.streams.iter_mut().enumerate() {
            let line = format!("stream {i} line {}\n", self.sent);
            let Some(stream) = slot else { continue };
            if read_line_until(stream, line.len(), deadline).as_deref() == Some(line.as_bytes()) {
                answered += 1;
            } else {
                *slot = None;
            }
        }
        answered
    }

    /// Connections still open.
    pub fn open_count(&self) -> usize {
        self.streams.iter().filter(|s| s.is_some()).count()
    }
}

fn read_line_until(stream: &mut TcpStream, len: usize, deadline: Instant) -> Option<Vec<u8>> {
    let mut got = Vec::with_capacity(len);
    let mut buf = [0u8; 256];
    while got.len() < len {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        let want = (len - got.len()).min(buf.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}
