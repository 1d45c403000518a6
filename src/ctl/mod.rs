//! `director ctl`: the local command line to the running daemon over its control socket;
//! `director config` (in `config`) for configuration files.

pub mod config;
pub mod health;
pub mod ipvs;
pub mod pair;
pub mod remote;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use crate::control::{self, Request};

const USAGE: &str = "\
usage: director ctl [--socket PATH] <command>
       director ctl --host HOST[:PORT] ... (another box, over its admin API: --host --help)

commands:
  status      the daemon's pid, version and uptime, the pair (role, peer, heartbeat channels,
              transitions), and the health of every real server
  takeover    make this node the active director (lasts until `release`, here or on the peer)
  release     hand the active role to the peer (lasts until `takeover`, here or on the peer)
  log [N]     the daemon's recent log lines (the last N)
  restart     stop the daemon; PID 1 starts it again at once (a changed [pair] section
              takes effect then)
  net         interfaces, addresses, routes and settings, and what differs from the configuration
  net apply   apply the network part of the configuration now (only the difference)
  ipvs [--stats|--rate|--json]
              the kernel's IPVS table, as `ipvsadm -Ln` (with --stats, --rate) shows it;
              --json with each real server's health
  ipvs --health [--stats|--rate]
              the same, followed by the health of each real server and the sorry servers
  ipvs apply  read the kernel's IPVS table back and correct what differs from the configuration
  admin password
              set the admin endpoint's password (asked twice on a terminal, else one line of
              standard input); only its salted hash is kept, as a new revision
  admin token new NAME | admin token list | admin token remove NAME
              API tokens for scripts (`Authorization: Bearer ...`); a new one is shown once
  admin fingerprint
              the SHA-256 fingerprint of the certificate the admin endpoint presents
";

pub fn run(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--host") {
        return remote::run(args);
    }
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
    let mut request = Request::new(&words);
    if words == ["admin", "password"] {
        match read_password() {
            Ok(password) => request.body = password,
            Err(why) => {
                eprintln!("director ctl: {why}");
                return ExitCode::FAILURE;
            }
        }
        request.author = config::default_author();
    }
    send("director ctl", socket, &request)
}

/// The new password: typed twice without echo on a terminal, else the first line of input.
fn read_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let read_line = || -> Result<String, String> {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    };
    if !stdin.is_terminal() {
        return read_line();
    }
    let saved = nix::sys::termios::tcgetattr(&stdin).map_err(|e| format!("the terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet
        .local_flags
        .remove(nix::sys::termios::LocalFlags::ECHO);
    let set = |t: &nix::sys::termios::Termios| {
        nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, t)
            .map_err(|e| format!("the terminal: {e}"))
    };
    set(&quiet)?;
    eprint!("new admin password: ");
    let first = read_line();
    eprint!("\nthe same again: ");
    let second = read_line();
    eprintln!();
    set(&saved)?;
    let (first, second) = (first?, second?);
    if first != second {
        return Err("the two passwords differ; nothing changed".into());
    }
    Ok(first)
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
