//! A director VM under QEMU for tests, driven through its serial console on a unix socket.
//! Every VM is killed when its handle is dropped, pass or fail; the console log of a failed
//! test is printed.

// Each test crate (qemu, bench) uses a different part of this module.
#![allow(dead_code)]

pub mod lab;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
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
}

/// How to boot.
#[derive(Default)]
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
    /// Guest memory in MiB (`qemu/run --memory`; its default otherwise).
    pub memory: Option<u32>,
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
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the test directory");
    dir
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
        let mut command = Command::new(repo().join("qemu/run"));
        command
            .arg("--no-build")
            .arg("--serial")
            .arg(format!("unix:{}", socket.display()))
            .arg("--pidfile")
            .arg(dir.join("qemu.pid"));
        match &boot.taps {
            Some((eth0, eth1)) => command.arg("--tap").arg(format!("{eth0},{eth1}")),
            None => command.arg("--net").arg("none"),
        };
        if let Some(prefix) = &boot.mac_prefix {
            command.arg("--mac-prefix").arg(prefix);
        }
        if boot.no_reboot {
            command.arg("--no-reboot");
        }
        if boot.test_tools {
            command.arg("--test-tools");
        }
        if let Some(memory) = boot.memory {
            command.arg("--memory").arg(memory.to_string());
        }
        if let Some(append) = &boot.append {
            command.arg("--append").arg(append);
        }
        if let Some(config) = &boot.config {
            command.arg("--config").arg(config);
        }
        if boot.no_data {
            command.arg("--no-data");
        } else {
            let data = boot.data.unwrap_or_else(|| dir.join("data.img"));
            command.arg("--data").arg(data);
        }
        let log = fs::File::create(dir.join("qemu.log")).expect("create qemu.log");
        let started = Instant::now();
        let qemu = command
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
