//! `director ctl`: the local command line to the running daemon over its control socket;
//! `director config` (in `config`) for configuration files.

pub mod config;
pub mod health;
pub mod ipvs;
pub mod pair;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use crate::control::{self, Request};

const USAGE: &str = "\
usage: director ctl [--socket PATH] <command>

commands:
  status      the daemon's pid, version and uptime, the pair (role, peer, heartbeat channels,
              transitions), and the health of every real server
  takeover    make this node the active director (lasts until `release`, here or on the peer)
  release     hand the active role to the peer (lasts until `takeover`, here or on the peer)
  log [N]     the daemon's recent log lines (the last N)
  net         interfaces, addresses, routes and settings, and what differs from the configuration
  net apply   apply the network part of the configuration now (only the difference)
  ipvs [--stats|--rate|--json]
              the kernel's IPVS table, as `ipvsadm -Ln` (with --stats, --rate) shows it;
              --json with each real server's health
  ipvs --health [--stats|--rate]
              the same, followed by the health of each real server and the sorry servers
  ipvs apply  read the kernel's IPVS table back and correct what differs from the configuration
";

pub fn run(args: &[String]) -> ExitCode {
    let mut socket = None;
    let mut words = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--socket" => match iter.next() {
                Some(path) => socket = Some(path.as_str()),
                None => {
                    eprintln!("director ctl: --socket needs a path");
                    return ExitCode::from(2);
                }
            },
            "help" | "--help" | "-h" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            word => words.push(word),
        }
    }
    if words.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    send("director ctl", socket, &Request::new(&words))
}

/// Sends `request` to the daemon and prints its answer; `who` prefixes error messages.
pub fn send(who: &str, socket: Option<&str>, request: &Request) -> ExitCode {
    let path = control::socket_path(socket);
    match ask(&path, request) {
        Ok(Ok(body)) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Ok(Err(why)) => {
            eprintln!("{who}: {why}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{who}: cannot reach the daemon at {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Sends `request` to the daemon at `path` and returns its answer; the outer error is a daemon
/// that cannot be reached.
pub fn ask(path: &std::path::Path, request: &Request) -> std::io::Result<Result<String, String>> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.encode().as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(control::decode_reply(&reply))
}
