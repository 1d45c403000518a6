//! Health-check figures: 10,000 real servers (100 virtual servers of 100) checked by TCP
//! connect every second, by the director's real `health` runner on a current-thread runtime
//! as in the daemon, and by keepalived's and ldirectord's checkers where they run here. Run
//! by `scripts/bench` (root, release build); prints rows, asserts nothing about speed.
//!
//! The checkers run in one network namespace and the listeners in another, joined by a veth
//! pair, each in its own process and (with two CPUs) on its own CPU, each side's receive
//! steered to its CPU by RPS: a veth, like a loopback, receives in the sender's system call,
//! which would charge the listener's half of every handshake to the checker. What is left on
//! the checker is its own: system calls, and the receive of its SYN-ACKs when it is running
//! (so it also pays the IPI that RPS sends per packet, which a NIC would not). Tick-sampled
//! CPU accounting (no IRQ_TIME_ACCOUNTING) charges a softirq to whoever it interrupts.
//! The listeners are 100 ports on every
//! address of 198.51.100.0/24 (a local route). CPU time (user + system, children included)
//! and memory are read from /proc for the checker's process alone, over a fixed window after
//! a warm-up; a check completed is a connection the listeners accepted or, for the
//! director's half-open checks (a SYN answered by a SYN-ACK, see `health::syn`), a SYN-ACK
//! their kernel sent (OutSegs); and, for the
//! director, a result its own counters recorded).
//!
//! The listener and the director's checker are this test binary again, started with
//! `ROLE` set, which makes the otherwise empty tests `listener_role` and `checker_role` act.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use director::config::from_toml;
use director::health::Health;

/// Virtual servers, and real servers in each: 10,000 checks every second.
const SERVICES: usize = 100;
const SERVERS: usize = 100;
/// Virtual server `i` checks port `FIRST_PORT + i` of 198.51.100.1-100.
const FIRST_PORT: u16 = 10_000;
const WARM_UP: Duration = Duration::from_secs(5);
const WINDOW: Duration = Duration::from_secs(20);
/// How long a reference may take before its checks reach the listeners: ldirectord first
/// adds every real server with one ipvsadm process each.
const REFERENCE_START: Duration = Duration::from_secs(30);
/// The environment variable that makes this binary a listener or a checker.
const ROLE: &str = "DIRECTOR_BENCH_HEALTH_ROLE";
/// The prefix of the lines the roles print for the bench (the harness prints others).
const SAYS: &str = "bench-health ";

const TARGET_CHECKS: &str = "10,000";
const TARGET_CPU: &str = "< 10%";
const TARGET_RSS: &str = "< 32 MB";

fn row(figure: &str, director: &str, reference: &str, target: &str) {
    println!("| {figure:<44} | {director:>16} | {reference:>32} | {target:>10} |");
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

/// Two namespaces, the checker's and the listeners', joined by a veth pair (192.0.2.1 and
/// .2), the listeners' side owning 198.51.100.0/24; removed when dropped, also on failure.
struct Lab {
    checker: String,
    listener: String,
}

impl Lab {
    fn new() -> Lab {
        let id = std::process::id();
        let lab = Lab {
            checker: format!("dirbench-chk-{id}"),
            listener: format!("dirbench-lis-{id}"),
        };
        ip(&["netns", "add", &lab.checker]);
        ip(&["netns", "add", &lab.listener]);
        let (c, l) = (lab.checker.as_str(), lab.listener.as_str());
        ip(&["-n", c, "link", "set", "lo", "up"]);
        ip(&["-n", l, "link", "set", "lo", "up"]);
        ip(&[
            "-n", c, "link", "add", "hb-c", "type", "veth", "peer", "name", "hb-l", "netns", l,
        ]);
        ip(&["-n", c, "addr", "add", "192.0.2.1/24", "dev", "hb-c"]);
        ip(&["-n", l, "addr", "add", "192.0.2.2/24", "dev", "hb-l"]);
        ip(&["-n", c, "link", "set", "hb-c", "up"]);
        ip(&["-n", l, "link", "set", "hb-l", "up"]);
        // Every address of the /24 is the listeners' own, without 100 addresses to add.
        ip(&[
            "-n",
            l,
            "route",
            "add",
            "local",
            "198.51.100.0/24",
            "dev",
            "lo",
        ]);
        ip(&[
            "-n",
            c,
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            "192.0.2.2",
        ]);
        // A veth delivers a packet in the sender's own system call (the receive softirq runs
        // as it returns): the listeners' half of each handshake would still be charged to the
        // checker. Steering each side's receive to its own CPU (RPS) keeps it off the checker.
        if let Some((checker_cpu, listener_cpu)) = cpus() {
            steer(l, "hb-l", listener_cpu);
            steer(c, "hb-c", checker_cpu);
        }
        lab
    }

    /// `program` run in namespace `netns` (on `cpu` when there are two).
    fn command(&self, netns: &str, cpu: Option<usize>, program: &OsStr) -> Command {
        let mut command = match cpu {
            Some(cpu) => {
                let mut taskset = Command::new("taskset");
                taskset.args(["-c", &cpu.to_string(), "ip"]);
                taskset
            }
            None => Command::new("ip"),
        };
        command.args(["netns", "exec", netns]).arg(program);
        command
    }

    fn checker_command(&self, program: impl AsRef<OsStr>) -> Command {
        self.command(&self.checker, cpus().map(|c| c.0), program.as_ref())
    }

    fn listener_command(&self, program: impl AsRef<OsStr>) -> Command {
        self.command(&self.listener, cpus().map(|c| c.1), program.as_ref())
    }
}

/// The checker's CPU and the listeners': 0 and 1, when there are two or more.
fn cpus() -> Option<(usize, usize)> {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (n >= 2).then_some((0, 1))
}

/// Receives the packets of `device` in namespace `netns` on `cpu`.
fn steer(netns: &str, device: &str, cpu: usize) {
    let mask = format!("{:x}", 1u64 << cpu);
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "sh", "-c"])
        .arg(format!(
            "echo {mask} > /sys/class/net/{device}/queues/rx-0/rps_cpus"
        ))
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "RPS of {device}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in [&self.checker, &self.listener] {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A process of the bench, killed when dropped; its stdout lines arrive on `lines`.
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// SIGTERM first (keepalived stops its children), then SIGKILL after this long.
    gentle: Option<Duration>,
    /// What a role said when it was ready.
    ready: String,
}

impl Proc {
    fn spawn(name: &'static str, mut command: Command, gentle: Option<Duration>) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let (send, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Proc {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            gentle,
            ready: String::new(),
        }
    }

    /// This binary as `role` (`command` runs it where it belongs).
    fn role(name: &'static str, mut command: Command, role: &str) -> Proc {
        command
            .args([
                "--exact",
                &format!("{role}_role"),
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role);
        let mut proc = Proc::spawn(name, command, None);
        proc.ready = proc.expect("ready", Duration::from_secs(20));
        proc
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What follows `SAYS` + `what` in the first line from the process that has it, within
    /// `limit`.
    fn expect(&mut self, what: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        let prefix = format!("{SAYS}{what}");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The harness's "test checker_role ... " may begin the same line.
                Ok(line) => {
                    if let Some(at) = line.find(&prefix) {
                        return line[at + prefix.len()..].trim().to_string();
                    }
                }
                Err(e) => panic!("{}: no '{what}' within {limit:?}: {e}", self.name),
            }
        }
    }

    /// Sends `request` and returns the numbers of the answer.
    fn ask(&mut self, request: &str) -> Vec<u64> {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{request}").expect("ask");
        stdin.flush().expect("ask");
        self.expect(request, Duration::from_secs(10))
            .split_whitespace()
            .map(|n| n.parse().expect("a number"))
            .collect()
    }

    /// The process's exit status, when it has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Every line it printed so far.
    fn output(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        if let Some(grace) = self.gentle {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if self.exited().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and memory of one process, from /proc.
#[derive(Clone, Copy)]
struct Usage {
    /// User and system time of the process and its reaped children, in clock ticks.
    user: u64,
    system: u64,
    rss_kib: u64,
    peak_kib: u64,
}

fn usage(pid: u32) -> Usage {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 1..]
        .split_whitespace()
        .collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a number") };
    let (user, system) = (field(14) + field(16), field(15) + field(17));
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Usage {
        user,
        system,
        rss_kib: kib("VmRSS:"),
        peak_kib: kib("VmHWM:"),
    }
}

/// What a checker did over the window.
struct Figures {
    /// Connections the listeners accepted, per second.
    accepted: f64,
    /// TCP segments the listeners' kernel sent, per second: a SYN-ACK per check, half-open
    /// or not (and the odd FIN of a connection closed before the checker's reset came).
    segments: f64,
    /// Checks the checker itself counted (the director only): completed and failed, per second.
    counted: Option<(f64, f64)>,
    /// Percent of one core: user and system.
    user: f64,
    system: f64,
    rss_kib: u64,
    peak_kib: u64,
}

/// Measures process `pid` over the window (after the warm-up); `counts` gives the checker's
/// own (checks, failures) when it keeps them.
fn measure(
    listener: &mut Proc,
    pid: u32,
    mut counts: Option<&mut dyn FnMut() -> (u64, u64)>,
) -> Figures {
    std::thread::sleep(WARM_UP);
    let start = Instant::now();
    let accepted0 = listener.ask("accepted")[0];
    let segments0 = listener.ask("segments")[0];
    let counted0 = counts.as_mut().map(|f| f());
    let usage0 = usage(pid);
    std::thread::sleep(WINDOW);
    let usage1 = usage(pid);
    let counted1 = counts.as_mut().map(|f| f());
    let accepted1 = listener.ask("accepted")[0];
    let segments1 = listener.ask("segments")[0];
    let seconds = start.elapsed().as_secs_f64();
    // SAFETY: sysconf only reads a constant of the system.
    let hertz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Figures {
        accepted: (accepted1 - accepted0) as f64 / seconds,
        segments: (segments1 - segments0) as f64 / seconds,
        counted: counted0
            .zip(counted1)
            .map(|((c0, f0), (c1, f1))| ((c1 - c0) as f64 / seconds, (f1 - f0) as f64 / seconds)),
        user: (usage1.user - usage0.user) as f64 / hertz / seconds * 100.0,
        system: (usage1.system - usage0.system) as f64 / hertz / seconds * 100.0,
        rss_kib: usage1.rss_kib,
        peak_kib: usage1.peak_kib,
    }
}

/// What a reference gave: figures, or why it could not run here.
enum Reference {
    Ran(Figures),
    Not(String),
}

fn vip(i: usize) -> String {
    format!("203.0.113.{}", i + 1)
}

fn real(j: usize) -> String {
    format!("198.51.100.{}", j + 1)
}

fn port(i: usize) -> u16 {
    FIRST_PORT + i as u16
}

/// The director's configuration: TCP checks every second, timeout 1 s, rise and fall 1.
fn director_config() -> String {
    let mut text = String::new();
    for i in 0..SERVICES {
        let _ = write!(
            text,
            "[[virtual_servers]]\nname = \"vs{i}\"\nvip = \"{}\"\nport = 80\nforwarding = \"nat\"\n\
             check = {{ interval = \"1s\", timeout = \"1s\", tcp = {{}} }}\nreal_servers = [\n",
            vip(i)
        );
        for j in 0..SERVERS {
            let _ = writeln!(
                text,
                "  {{ name = \"rs{j}\", address = \"{}\", port = {} }},",
                real(j),
                port(i)
            );
        }
        text.push_str("]\n\n");
    }
    text
}

/// keepalived's: the same services with `TCP_CHECK`, `delay_loop 1`, `connect_timeout 1`.
fn keepalived_config() -> String {
    let mut text = String::from("global_defs {\n  router_id bench\n}\n\n");
    for i in 0..SERVICES {
        let _ = writeln!(
            text,
            "virtual_server {} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP",
            vip(i)
        );
        for j in 0..SERVERS {
            let _ = writeln!(
                text,
                "  real_server {} {} {{\n    weight 1\n    TCP_CHECK {{\n      connect_timeout 1\n    }}\n  }}",
                real(j),
                port(i)
            );
        }
        text.push_str("}\n\n");
    }
    text
}

/// ldirectord's: `checktype = connect`, `checkinterval = 1`, `checktimeout = 1`, in the
/// foreground (`supervised`), one process (`fork = no`, its default).
fn ldirectord_config() -> String {
    let mut text = String::from(
        "checktimeout = 1\ncheckinterval = 1\nsupervised = yes\nquiescent = no\nautoreload = no\n\n",
    );
    for i in 0..SERVICES {
        let _ = writeln!(text, "virtual = {}:80", vip(i));
        for j in 0..SERVERS {
            let _ = writeln!(text, "\treal = {}:{} masq", real(j), port(i));
        }
        text.push_str(
            "\tchecktype = connect\n\tservice = none\n\tscheduler = rr\n\tprotocol = tcp\n\n",
        );
    }
    text
}

fn bench_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-health");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the bench directory");
    dir
}

fn have(command: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits until the listeners see checks coming (or `proc` exits, or `limit` passes): None
/// when they do, else why not.
fn wait_for_checks(listener: &mut Proc, proc: &mut Proc, limit: Duration) -> Option<String> {
    let before = listener.ask("accepted")[0];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        if let Some(status) = proc.exited() {
            return Some(format!("exited ({status})"));
        }
        if listener.ask("accepted")[0] > before + 1000 {
            return None;
        }
    }
    Some(format!("no checks within {} s", limit.as_secs()))
}

/// The lines of `output` that say why a program stopped, shortened.
fn why(output: &[String], words: &[&str]) -> String {
    let found: Vec<&str> = output
        .iter()
        .filter(|l| words.iter().any(|w| l.contains(w)))
        .map(|l| {
            // keepalived's console lines start with a date: "Mon Nov 23 12:52:21 2026: ".
            l.split_once(": ")
                .filter(|(date, _)| date.len() == 24)
                .map_or(l.as_str(), |(_, rest)| rest)
        })
        .collect();
    let mut found = found;
    found.dedup();
    found.truncate(2);
    if found.is_empty() {
        "no message".into()
    } else {
        found.join("; ")
    }
}

fn keepalived(lab: &Lab, listener: &mut Proc, dir: &Path) -> Reference {
    if !have("keepalived") {
        return Reference::Not("not installed".into());
    }
    let conf = dir.join("keepalived.conf");
    fs::write(&conf, keepalived_config()).expect("write keepalived.conf");
    let checker_pid = dir.join("keepalived-checker.pid");
    let mut command = lab.checker_command("keepalived");
    command
        .args(["--dont-fork", "--check", "--log-console", "--no-syslog"])
        .arg("--use-file")
        .arg(&conf)
        .arg("--pid")
        .arg(dir.join("keepalived.pid"))
        .arg("--checkers_pid")
        .arg(&checker_pid);
    let mut proc = Proc::spawn("keepalived", command, Some(Duration::from_secs(10)));
    if let Some(failure) = wait_for_checks(listener, &mut proc, REFERENCE_START) {
        std::thread::sleep(Duration::from_millis(200));
        let output = proc.output();
        return Reference::Not(format!("checker {failure}: {}", why(&output, &["IPVS"])));
    }
    let Some(pid) = fs::read_to_string(&checker_pid)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
    else {
        return Reference::Not("no checker pid file".into());
    };
    let figures = measure(listener, pid, None);
    Reference::Ran(figures)
}

fn ldirectord(lab: &Lab, listener: &mut Proc, dir: &Path) -> Reference {
    if !have("ldirectord") {
        return Reference::Not("not installed".into());
    }
    let conf = dir.join("bench.cf");
    fs::write(&conf, ldirectord_config()).expect("write ldirectord's configuration");
    let mut command = lab.checker_command("ldirectord");
    command.arg(&conf).arg("start");
    // No SIGTERM: it would remove every real server, one failing ipvsadm process each.
    let mut proc = Proc::spawn("ldirectord", command, None);
    let started = Instant::now();
    if let Some(failure) = wait_for_checks(listener, &mut proc, REFERENCE_START) {
        let output = proc.output();
        let added = output
            .iter()
            .filter(|l| l.contains("Added real server"))
            .count();
        return Reference::Not(format!(
            "{failure}: it adds each real server with an ipvsadm process first ({added} of {} \
             so far), and without IPVS each fails: {}",
            SERVICES * SERVERS,
            why(&output, &["Can't"])
        ));
    }
    eprintln!(
        "ldirectord: checks began {:.1} s after its start",
        started.elapsed().as_secs_f64()
    );
    let figures = measure(listener, proc.pid(), None);
    Reference::Ran(figures)
}

fn rate(per_second: f64) -> String {
    let n = per_second.round() as u64;
    if n >= 1000 {
        format!("{},{:03}", n / 1000, n % 1000)
    } else {
        n.to_string()
    }
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 * 1024.0 / 1e6)
}

#[test]
#[ignore = "needs root and network namespaces: run by scripts/bench"]
fn health_figures() {
    let dir = bench_dir();
    let lab = Lab::new();
    let exe = std::env::current_exe().expect("the test binary");
    let mut listener = Proc::role("listener", lab.listener_command(&exe), "listener");

    let (ours, before) = {
        let mut checker = Proc::role("checker", lab.checker_command(&exe), "checker");
        let pid = checker.pid();
        // RSS at the start, with the configuration parsed, and the peak of the parsing.
        let before: Vec<u64> = checker
            .ready
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let mut counts = || {
            let n = checker.ask("counts");
            (n[0], n[1])
        };
        (measure(&mut listener, pid, Some(&mut counts)), before)
    };
    let references = [
        ("keepalived", keepalived(&lab, &mut listener, &dir)),
        ("ldirectord", ldirectord(&lab, &mut listener, &dir)),
    ];

    let pick = |f: &dyn Fn(&Figures) -> String| -> String {
        let ran: Vec<String> = references
            .iter()
            .filter_map(|(name, r)| match r {
                Reference::Ran(figures) => Some(format!("{} ({name})", f(figures))),
                Reference::Not(_) => None,
            })
            .collect();
        if ran.is_empty() {
            "-".into()
        } else {
            ran.join(", ")
        }
    };
    let (counted, failed) = ours.counted.unwrap_or((f64::NAN, f64::NAN));
    println!();
    println!(
        "health checks: {} real servers, TCP connect every 1 s, over {} s after {} s",
        SERVICES * SERVERS,
        WINDOW.as_secs(),
        WARM_UP.as_secs()
    );
    row("figure", "director", "reference", "target");
    row(
        "TCP checks per second completed",
        &rate(counted),
        &pick(&|f| rate(f.accepted)),
        TARGET_CHECKS,
    );
    row(
        "connections accepted per second (listeners)",
        &rate(ours.accepted),
        &pick(&|f| rate(f.accepted)),
        "",
    );
    row(
        "TCP segments sent per second (listeners)",
        &rate(ours.segments),
        &pick(&|f| rate(f.segments)),
        "",
    );
    row("failed checks per second", &rate(failed), "-", "0");
    row(
        "CPU per second (checker)",
        &format!("{:.1}% of a core", ours.user + ours.system),
        &pick(&|f| format!("{:.1}%", f.user + f.system)),
        TARGET_CPU,
    );
    row(
        "  of which user / system",
        &format!("{:.1}% / {:.1}%", ours.user, ours.system),
        &pick(&|f| format!("{:.1}% / {:.1}%", f.user, f.system)),
        "",
    );
    row(
        "RSS (checker), steady",
        &mb(ours.rss_kib),
        &pick(&|f| mb(f.rss_kib)),
        TARGET_RSS,
    );
    row(
        "RSS (checker), peak",
        &mb(ours.peak_kib),
        &pick(&|f| mb(f.peak_kib)),
        TARGET_RSS,
    );
    if let [start, config, peak] = before[..] {
        row(
            "  RSS of the test process, configuration",
            &format!("{} + {}", mb(start), mb(config.saturating_sub(start))),
            "",
            "",
        );
        row("  RSS peak parsing the configuration", &mb(peak), "", "");
    }
    for (name, reference) in &references {
        if let Reference::Not(why) = reference {
            row(&format!("{name}: does not run here"), "-", why, "");
        }
    }
}

/// The listeners: ports `FIRST_PORT..` on every address, accepting and closing; "accepted"
/// on stdin prints how many so far. Ends when stdin closes.
#[test]
#[ignore = "a role of health_figures"]
fn listener_role() {
    if std::env::var(ROLE).as_deref() != Ok("listener") {
        return;
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            for i in 0..SERVICES {
                let listener = tokio::net::TcpListener::bind(("0.0.0.0", port(i)))
                    .await
                    .expect("bind");
                let counter = counter.clone();
                tokio::spawn(async move {
                    loop {
                        if let Ok((stream, _)) = listener.accept().await {
                            counter.fetch_add(1, Ordering::Relaxed);
                            drop(stream);
                        }
                    }
                });
            }
            println!("{SAYS}ready");
            std::future::pending::<()>().await;
        });
    });
    serve_stdin(|request| match request {
        "accepted" => Some(accepted.load(Ordering::Relaxed).to_string()),
        // Of the listeners' namespace.
        "segments" => Some(tcp_out_segments().to_string()),
        _ => None,
    });
}

/// The TCP segments this network namespace sent (OutSegs of /proc/net/snmp).
fn tcp_out_segments() -> u64 {
    let snmp = fs::read_to_string("/proc/self/net/snmp").expect("/proc/self/net/snmp");
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else {
        panic!("no Tcp lines in /proc/net/snmp");
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "OutSegs")
        .and_then(|(_, value)| value.parse().ok())
        .expect("OutSegs")
}

/// The director's checker, as in the daemon: the health runner on a current-thread runtime,
/// given the configuration; "counts" on stdin prints the checks and failures so far, summed
/// over every real server. Ends when stdin closes.
#[test]
#[ignore = "a role of health_figures"]
fn checker_role() {
    if std::env::var(ROLE).as_deref() != Ok("checker") {
        return;
    }
    let at_start = usage(std::process::id());
    let config = from_toml(&director_config()).expect("the configuration");
    let with_config = usage(std::process::id());
    let (health, runner, mut events) = Health::new();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let checks = health.clone();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            // The daemon keeps its configuration too.
            let config = config;
            tokio::spawn(runner.run());
            let problems = health.update(&config);
            assert!(problems.is_empty(), "{problems:?}");
            println!(
                "{SAYS}ready {} {} {}",
                at_start.rss_kib, with_config.rss_kib, with_config.peak_kib
            );
            // The daemon applies each event to the IPVS table; here they are only taken.
            while events.recv().await.is_some() {}
        });
    });
    serve_stdin(|request| match request {
        "counts" => {
            let (mut total, mut failed) = (0, 0);
            for i in 0..SERVICES {
                for j in 0..SERVERS {
                    if let Some(server) = checks.server(&format!("vs{i}"), &format!("rs{j}")) {
                        total += server.counts.checks;
                        failed += server.counts.failures;
                    }
                }
            }
            Some(format!("{total} {failed}"))
        }
        _ => None,
    });
}

/// Answers each request on stdin with `SAYS` + request + answer; returns when stdin closes.
fn serve_stdin(answer: impl Fn(&str) -> Option<String>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let request = line.trim();
        if let Some(text) = answer(request) {
            println!("{SAYS}{request} {text}");
        }
    }
}
