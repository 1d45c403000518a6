//! The pair lab for humans: two director VMs on the public, heartbeat and private bridges,
//! their ttyS1 on a null-modem cable, two direct-routing and two NAT real servers and a client
//! as network namespaces, as the QEMU tests build it. Prints how to reach everything, then
//! tears it all down on Ctrl-C (or SIGTERM) or after a time limit. Needs root and the image
//! (`qemu/lab` builds it and runs this).

#[path = "../tests/vm/mod.rs"]
mod vm;

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use vm::lab::{Node, PairSpec, CLIENT, NAT_GATEWAY, VIP};

const USAGE: &str = "usage: cargo run --example lab -- [--minutes N]

Brings the pair lab up (tag 'hlab'), prints the consoles' sockets and the addresses, and
tears everything down on Ctrl-C or after N minutes (default 60).";

fn main() -> ExitCode {
    let mut minutes: u64 = 60;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--minutes", Some(n)) => match n.parse() {
                Ok(n) => minutes = n,
                Err(e) => {
                    eprintln!("--minutes {n}: {e}\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the lab makes namespaces, bridges and taps: run it as root");
        return ExitCode::FAILURE;
    }

    // Blocked before any thread starts, so every thread inherits the mask and the signals wait
    // in the signalfd: Ctrl-C then tears the lab down in order instead of killing us midway.
    // (Children get a clean mask: std resets it when it spawns them.)
    let mut signals = SigSet::empty();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(signal);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("block SIGINT/SIGTERM/SIGHUP: {e}");
        return ExitCode::FAILURE;
    }
    let signalfd =
        match SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => fd,
            Err(e) => {
                eprintln!("signalfd: {e}");
                return ExitCode::FAILURE;
            }
        };

    let dir = vm::test_dir("lab-example");
    let started = Instant::now();
    eprintln!("booting the directors (under TCG this takes 10-30 s) ...");
    let mut pair = PairSpec::new("hlab", &dir).boot();
    let servers = [
        ("rs1", "192.0.2.21", "DR"),
        ("rs2", "192.0.2.22", "DR"),
        ("rs3", "203.0.113.21", "NAT"),
        ("rs4", "203.0.113.22", "NAT"),
    ];
    let mut namespaces = Vec::new();
    for (name, address, mode) in servers {
        let ns = if mode == "DR" {
            pair.real_server_dr(name, address)
        } else {
            pair.real_server_nat(name, address)
        };
        namespaces.push(ns);
    }
    pair.wait_ready(Duration::from_secs(180));
    for node in Node::BOTH {
        pair.vm(node).release_console();
    }

    println!(
        "\nThe lab is up ({:.1} s); files in {}\n",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    for node in Node::BOTH {
        let vm = pair.vm(node);
        println!(
            "director {node:?}: eth0 {}/24 (public), eth1 {}/24 (heartbeat), eth2 {}/24 (private){}",
            node.public(),
            node.heartbeat(),
            node.private(),
            if node == Node::A {
                format!(", NAT gateway {NAT_GATEWAY}")
            } else {
                String::new()
            }
        );
        println!(
            "  console: socat -,raw,echo=0,escape=0x1d UNIX-CONNECT:{}   (Ctrl-] leaves)",
            vm.console_socket().display()
        );
        println!(
            "  monitor: socat - UNIX-CONNECT:{}   (stop, cont, set_link n1 off, ...)",
            vm.monitor_socket().display()
        );
    }
    println!(
        "ttyS1 of A and B: one null-modem cable ({})",
        dir.join("ttyS1.sock").display()
    );
    println!("VIP {VIP} is on the DR real servers' lo; no virtual service is configured yet.");
    for ((name, address, mode), ns) in servers.iter().zip(&namespaces) {
        println!("real server {name} ({mode}): {address}, HTTP on port 80, ip netns exec {ns} sh");
    }
    println!(
        "client {CLIENT}: ip netns exec {} wget -q -O - http://192.0.2.21/",
        pair.client()
    );
    let [public, heartbeat, private] = pair.switches();
    println!("bridges: br0 in namespaces {public}, {heartbeat}, {private}");
    println!("\nCtrl-C tears it all down (at the latest in {minutes} min).");

    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let why = loop {
        match signalfd.read_signal() {
            Ok(Some(info)) => break format!("signal {}", info.ssi_signo),
            Ok(None) => {}
            Err(e) => break format!("signalfd: {e}"),
        }
        if Instant::now() >= deadline {
            break format!("{minutes} min are up");
        }
        thread::sleep(Duration::from_millis(200));
    };
    eprintln!("\n{why}: tearing the lab down");
    drop(pair);
    eprintln!("done");
    ExitCode::SUCCESS
}
