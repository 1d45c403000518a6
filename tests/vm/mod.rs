//! A director VM under QEMU for tests, driven through its serial console on a unix socket.
//! Every VM is killed when its handle is dropped, pass or fail; the console log of a failed
//! test is printed.

// Each test crate (qemu, bench) uses a different part of this module.
#![allow(dead_code)]

pub mod browser;
pub mod http;
pub mod lab;
pub mod load;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A booted (or booting) VM.
pub struct Vm {
    pub dir: PathBuf,
    /// When QEMU was started.
    pub started: Instant,
    qemu: Option<Child>,
    console: UnixStream,
    output: Arc<Mutex<Vec<u8>>>,
    /// Output before this offset has been consumed by `wait_for`.
    cursor: usize,
    commands: u32,
    /// The QEMU monitor's unix socket (HMP).
    monitor: PathBuf,
}

/// How to boot.
#[derive(Clone, Default)]
pub struct Boot {
    pub no_reboot: bool,
    pub no_data: bool,
    /// A data disk image to use (and keep); by default a fresh one in the test's directory.
    pub data: Option<PathBuf>,
    /// More kernel command line.
    pub append: Option<String>,
    /// A director.toml to provision from a DIRCONFIG disk (`qemu/run --config`).
    pub config: Option<PathBuf>,
    /// Tap devices for eth0 and eth1 (`qemu/run --tap`); without them the NICs have no link.
    pub taps: Option<(String, String)>,
    /// MAC prefix (`qemu/run --mac-prefix`), for two VMs on one bridge.
    pub mac_prefix: Option<String>,
    /// Boot the test image, with ipvsadm and strace (`qemu/run --test-tools`).
    pub test_tools: bool,
    /// A tap device for eth2 (with `taps`: `qemu/run --tap IF0,IF1,IF2`).
    pub tap2: Option<String>,
    /// ttyS1 on a unix socket (`qemu/run --serial2`): a null-modem cable to another VM.
    pub serial2: Option<Serial2>,
    /// Guest memory in MB (`qemu/run --memory`); QEMU's default for the image when None.
    pub memory: Option<u32>,
    /// Boot the test image with Debian's keepalived (`qemu/run --keepalived`).
    pub keepalived: bool,
    /// The operator's console (first-boot dialogue, login, CLI) on ttyS0; without it the
    /// tests get a root shell there (director.console=shell).
    pub operator_console: bool,
    /// More raw disks (`qemu/run --disk`), after the data and DIRCONFIG disks.
    pub disks: Vec<PathBuf>,
}

/// Which end of the null-modem cable a VM's ttyS1 is.
#[derive(Clone)]
pub enum Serial2 {
    /// QEMU listens on this socket (and does not wait for the peer).
    Listen(PathBuf),
    /// QEMU connects to this socket, retrying every second.
    Connect(PathBuf),
}

impl Boot {
    /// No data disk (a tmpfs /data) and QEMU exits instead of rebooting.
    pub fn without_data() -> Boot {
        Boot {
            no_reboot: true,
            no_data: true,
            ..Boot::default()
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory a test keeps its files in (the console log, the data disk).
pub fn test_dir(name: &str) -> PathBuf {
    let dir = repo().join("target/qemu-tests").join(name);
    kill_leftover_qemu(&dir);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the test directory");
    dir
}

/// Kills the QEMU processes an earlier run in `dir` left behind (that run was killed before it
/// could clean up): those whose pidfile, `dir/**/qemu.pid`, is still theirs.
fn kill_leftover_qemu(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            kill_leftover_qemu(&path);
            continue;
        }
        if path.file_name().is_none_or(|name| name != "qemu.pid") {
            continue;
        }
        let Some(pid) = fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        else {
            continue;
        };
        // Only a QEMU started with this very pidfile: the number may have been reused since.
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let ours = args
            .first()
            .is_some_and(|exe| exe.ends_with(b"qemu-system-x86_64"))
            && args
                .windows(2)
                .any(|w| w[0] == b"-pidfile" && w[1] == path.as_os_str().as_encoded_bytes());
        if ours {
            eprintln!(
                "killing QEMU {pid} left over from an earlier run ({})",
                path.display()
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            for _ in 0..50 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Vm {
    pub fn boot(dir: &Path, boot: Boot) -> Vm {
        for part in ["out/vmlinuz", "out/director-x86_64.cpio.gz"] {
            assert!(
                repo().join(part).exists(),
                "{part} is missing: build the image first (scripts/build-image or scripts/test)"
            );
        }
        let socket = dir.join("console.sock");
        let _ = fs::remove_file(&socket);
        let monitor = dir.join("monitor.sock");
        let _ = fs::remove_file(&monitor);
        let mut command = Command::new(repo().join("qemu/run"));
        command
            .arg("--no-build")
            .arg("--serial")
            .arg(format!("unix:{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("qemu.pid"))
            .arg("--monitor")
            .arg(&monitor);
        match (&boot.taps, &boot.tap2) {
            (Some((eth0, eth1)), None) => command.arg("--tap").arg(format!("{eth0},{eth1}")),
            (Some((eth0, eth1)), Some(eth2)) => {
                command.arg("--tap").arg(format!("{eth0},{eth1},{eth2}"))
            }
            (None, Some(_)) => panic!("Boot.tap2 needs Boot.taps"),
            (None, None) => command.arg("--net").arg("none"),
        };
        match &boot.serial2 {
            Some(Serial2::Listen(path)) => {
                let _ = fs::remove_file(path);
                command
                    .arg("--serial2")
                    .arg(format!("listen:{}", path.display()))
            }
            Some(Serial2::Connect(path)) => command
                .arg("--serial2")
                .arg(format!("connect:{}", path.display())),
            None => &mut command,
        };
        if let Some(memory) = boot.memory {
            command.arg("--memory").arg(memory.to_string());
        }
        if let Some(prefix) = &boot.mac_prefix {
            command.arg("--mac-prefix").arg(prefix);
        }
        if boot.no_reboot {
            command.arg("--no-reboot");
        }
        if boot.test_tools {
            command.arg("--test-tools");
        }
        if boot.keepalived {
            command.arg("--keepalived");
        }
        let mut append = boot.append.clone().unwrap_or_default();
        if !boot.operator_console {
            append.push_str(" director.console=shell");
        }
        if !append.trim().is_empty() {
            command.arg("--append").arg(append.trim());
        }
        if let Some(config) = &boot.config {
            command.arg("--config").arg(config);
        }
        for disk in &boot.disks {
            command.arg("--disk").arg(disk);
        }
        if boot.no_data {
            command.arg("--no-data");
        } else {
            let data = boot.data.unwrap_or_else(|| dir.join("data.img"));
            command.arg("--data").arg(data);
        }
        let log = fs::File::create(dir.join("qemu.log")).expect("create qemu.log");
        let started = Instant::now();
        // A process group of its own: a Ctrl-C on the terminal of a human running the lab goes
        // to the lab, which tears everything down in order, not straight to QEMU.
        let qemu = command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup qemu.log"))
            .stderr(log)
            .spawn()
            .expect("start qemu/run");
        let mut qemu = Some(qemu);
        let console = loop {
            match UnixStream::connect(&socket) {
                Ok(stream) => break stream,
                Err(e) => {
                    if let Some(Ok(Some(status))) = qemu.as_mut().map(|q| q.try_wait()) {
                        panic!(
                            "qemu exited ({status}) before its console was up: {}",
                            fs::read_to_string(dir.join("qemu.log")).unwrap_or_default()
                        );
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "no console socket after 30 s: {e}"
                    );
                    thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = console.try_clone().expect("clone the console socket");
        let sink = Arc::clone(&output);
        let mut log = fs::File::create(dir.join("console.log")).expect("create console.log");
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = log.write_all(&buf[..n]);
                if let Ok(mut out) = sink.lock() {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        });
        Vm {
            dir: dir.to_path_buf(),
            started,
            qemu,
            console,
            output,
            cursor: 0,
            commands: 0,
            monitor,
        }
    }

    /// QEMU's process id while it runs (None once it was killed or has exited).
    pub fn pid(&mut self) -> Option<u32> {
        let qemu = self.qemu.as_mut()?;
        match qemu.try_wait() {
            Ok(None) => Some(qemu.id()),
            _ => None,
        }
    }

    /// Fails the test with QEMU's own messages when QEMU has exited.
    pub fn check_running(&mut self) {
        let exited = self.qemu.as_mut().map(|q| q.try_wait());
        if let Some(Ok(Some(status))) = exited {
            self.qemu = None;
            panic!(
                "QEMU of {} exited ({status}): {}",
                self.dir.display(),
                fs::read_to_string(self.dir.join("qemu.log")).unwrap_or_default()
            );
        }
    }

    /// The QEMU monitor's socket (HMP; `socat - UNIX-CONNECT:PATH` for a human).
    pub fn monitor_socket(&self) -> &Path {
        &self.monitor
    }

    /// Lets go of the console so that someone else can connect to its socket (QEMU serves one
    /// client at a time); `sh` and `wait_for` no longer see anything afterwards.
    pub fn release_console(&mut self) {
        let _ = self.console.shutdown(std::net::Shutdown::Both);
    }

    /// The console's socket (QEMU serves one client: this handle holds it).
    pub fn console_socket(&self) -> PathBuf {
        self.dir.join("console.sock")
    }

    /// Runs one HMP command on the QEMU monitor and returns what it printed.
    pub fn monitor(&self, command: &str) -> String {
        monitor_command(&self.monitor, command)
            .unwrap_or_else(|e| self.fail(&format!("QEMU monitor '{command}': {e}")))
    }

    /// Freezes the VM (monitor `stop`): a hang, as the peer sees it; time stands still inside.
    pub fn pause(&self) {
        self.monitor("stop");
    }

    /// Lets a paused VM run again (monitor `cont`).
    pub fn resume(&self) {
        self.monitor("cont");
    }

    /// Takes NIC `nic` (0 = eth0, 1 = eth1, 2 = eth2) off its cable or puts it back (monitor
    /// `set_link`): the guest sees the carrier go and come back.
    pub fn set_link(&self, nic: u8, up: bool) {
        let state = if up { "on" } else { "off" };
        let out = self.monitor(&format!("set_link n{nic} {state}"));
        if !out.trim().is_empty() {
            self.fail(&format!("set_link n{nic} {state}: {out}"));
        }
    }

    fn text_from(&self, from: usize) -> String {
        let out = self.output.lock().expect("console buffer");
        String::from_utf8_lossy(&out[from.min(out.len())..]).into_owned()
    }

    /// Everything the console printed so far.
    pub fn console(&self) -> String {
        self.text_from(0)
    }

    /// Waits until `needle` appears after the cursor; moves the cursor past it and returns the
    /// console text up to and including it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let text = self.text_from(self.cursor);
            if let Some(at) = text.find(needle) {
                let end = at + needle.len();
                self.cursor += end;
                return text[..end].to_string();
            }
            if start.elapsed() > timeout {
                self.fail(&format!(
                    "'{needle}' did not appear within {} s",
                    timeout.as_secs()
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types a line on the console.
    pub fn send(&mut self, line: &str) {
        self.console
            .write_all(format!("{line}\n").as_bytes())
            .expect("write to the console");
    }

    /// Types `keys` on the console as they are (no newline added).
    pub fn type_keys(&mut self, keys: &str) {
        self.console
            .write_all(keys.as_bytes())
            .expect("write to the console");
    }

    /// Runs a shell command on the console and returns its output (without the echo).
    pub fn sh(&mut self, command: &str, timeout: Duration) -> String {
        self.commands += 1;
        let n = 100_000 + self.commands;
        // The echoed command shows `$((n - 1 + 1))`, the output shows the number: the marker
        // cannot match the echo.
        self.send(&format!(
            "echo @@B$(({} + 1))@@; {command}; echo @@E$(({} + 1))@@",
            n - 1,
            n - 1
        ));
        self.wait_for(&format!("@@B{n}@@"), timeout);
        let text = self.wait_for(&format!("@@E{n}@@"), timeout);
        let body = &text[..text.len() - format!("@@E{n}@@").len()];
        // Log lines of the kernel and the daemon ("[   3.14] ...") share the console.
        let lines: Vec<&str> = body
            .split('\n')
            .map(|line| line.trim_end_matches('\r'))
            .filter(|line| !is_log_line(line))
            .collect();
        lines.join("\n").trim_matches('\n').to_string()
    }

    /// Waits for QEMU to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            let status = self.qemu.as_mut().and_then(|q| q.try_wait().ok().flatten());
            if let Some(status) = status {
                self.qemu = None;
                return status;
            }
            if start.elapsed() > timeout {
                self.fail(&format!("QEMU did not exit within {} s", timeout.as_secs()));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Pulls the plug: QEMU is killed at once, nothing in the guest gets to finish.
    pub fn power_kill(&mut self) {
        if let Some(mut qemu) = self.qemu.take() {
            let _ = qemu.kill();
            let _ = qemu.wait();
        }
    }

    /// Fails the test with the end of the console log.
    pub fn fail(&self, why: &str) -> ! {
        let text = self.console();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        panic!(
            "{why}\n--- last console lines ({}) ---\n{tail}\n---",
            self.dir.join("console.log").display()
        );
    }
}

/// The HMP prompt QEMU prints when it is ready for the next command.
const PROMPT: &str = "(qemu) ";

/// Connects to a QEMU monitor socket, runs one HMP command and returns its output (without the
/// echo and the prompts). Each call is its own connection: the monitor takes one at a time.
pub fn monitor_command(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let read_prompt = |stream: &mut UnixStream| -> std::io::Result<String> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(PROMPT.as_bytes()) {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the monitor closed the connection",
                ));
            }
            got.extend_from_slice(&buf[..n]);
        }
        Ok(String::from_utf8_lossy(&got).into_owned())
    };
    read_prompt(&mut stream)?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    if command.trim() == "quit" {
        // QEMU exits without another prompt.
        let _ = stream.read(&mut [0u8; 256]);
        return Ok(String::new());
    }
    let text = read_prompt(&mut stream)?;
    // The monitor echoes the command (with terminal escapes) before its output.
    let body = text.strip_suffix(PROMPT).unwrap_or(&text);
    let output = match body.find(&format!("{command}\r\n")) {
        Some(at) => &body[at + command.len() + 2..],
        None => body.split_once("\r\n").map_or("", |(_, rest)| rest),
    };
    Ok(output.replace("\r\n", "\n").trim_end().to_string())
}

/// A line the kernel or the director's logger printed: `[` seconds `.` micros `]`.
fn is_log_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    match rest.split_once(']') {
        Some((stamp, _)) => {
            let stamp = stamp.trim();
            !stamp.is_empty() && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
        }
        None => false,
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Some(mut qemu) = self.qemu.take() {
            // qemu/run execs QEMU, so this is QEMU itself.
            let _ = qemu.kill();
            let _ = qemu.wait();
        }
    }
}

/// The ext2/3/4 superblock's state of a disk image: Some(true) when cleanly unmounted.
pub fn ext_clean(image: &Path) -> Option<bool> {
    let mut head = vec![0u8; 2048];
    fs::File::open(image).ok()?.read_exact(&mut head).ok()?;
    let magic = u16::from_le_bytes([head[1024 + 56], head[1024 + 57]]);
    if magic != 0xEF53 {
        return None;
    }
    let state = u16::from_le_bytes([head[1024 + 58], head[1024 + 59]]);
    Some(state & 1 != 0 && state & 2 == 0)
}
