//! `director console`: what the serial console shows. On a box with no configuration stored,
//! the first-boot dialogue; then a login prompt (the admin password); after login, the
//! director's commands as a shell with completion and help, an escape to busybox sh that is
//! logged, and the events that matter (role changes, real servers going down) printed as they
//! happen without breaking the line being typed. PID 1 starts it on the console and starts it
//! again when it ends (a logout).

pub mod line;
pub mod setup;
pub mod shell;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use line::{Console, Input};

use crate::config::Config;
use crate::control::{self, Request};
use crate::logging::CONSOLE_FIFO;

/// Failed logins: the first waits this long, each next one twice as long, up to `MAX_DELAY`.
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A session with no key pressed for this long ends (DIRECTOR_CONSOLE_IDLE, in seconds).
const IDLE: Duration = Duration::from_secs(600);

pub fn run(args: &[String]) -> ExitCode {
    if let Some(extra) = args.first() {
        eprintln!("director console: unexpected argument '{extra}'");
        return ExitCode::from(2);
    }
    let mut console = match Console::stdio() {
        Ok(console) => console,
        Err(e) => {
            eprintln!("director console: the terminal: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(events) = open_events() {
        console.relay(events);
    }
    // The kernel's informational messages (a module loaded, a link up) would break the lines
    // being typed: from now on only its errors reach the console (all stay in dmesg).
    let _ = std::fs::write("/proc/sys/kernel/printk", "4");
    console.show = important;
    let socket = control::socket_path(None);
    let idle = std::env::var("DIRECTOR_CONSOLE_IDLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(IDLE, Duration::from_secs);
    let mut session = Session {
        console,
        socket,
        idle,
    };
    session.run();
    ExitCode::SUCCESS
}

/// The daemon's events that the console shows: warnings and errors (a real server down, a
/// failed change), and the pair's role changes.
pub fn important(line: &str) -> bool {
    line.contains(" WARN ")
        || line.contains(" ERROR ")
        || (line.contains("pair: ") && line.contains(" -> "))
}

/// The pipe the daemon's log lines come through (made here; the logger writes to it while it
/// is open for reading).
fn open_events() -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = Path::new(CONSOLE_FIFO);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if !path.exists() {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).ok()?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()
}

pub struct Session {
    pub console: Console,
    pub socket: PathBuf,
    pub idle: Duration,
}

/// What the console learns from the daemon.
struct State {
    stored: bool,
    config: Config,
    fingerprint: Option<String>,
}

impl Session {
    fn run(&mut self) {
        let state = self.wait_for_daemon();
        let state = if state.stored {
            state
        } else {
            self.first_boot();
            self.wait_for_daemon()
        };
        self.banner(&state);
        if self.login(&state) {
            self.note("login");
            let hostname = state.config.node.hostname.clone();
            self.console.print(&self.endpoint_line(&state));
            shell::run(self, &hostname);
        }
    }

    /// Asks the daemon; the outer error is a daemon that cannot be reached.
    pub fn ask(&self, request: &Request) -> Result<String, String> {
        match crate::ctl::ask(&self.socket, request) {
            Ok(answer) => answer,
            Err(e) => Err(format!("the daemon cannot be reached: {e}")),
        }
    }

    /// Records `text` in the daemon's log (`console note`).
    pub fn note(&self, text: &str) {
        let mut request = Request::new(&["console", "note"]);
        request.body = text.to_string();
        let _ = self.ask(&request);
    }

    /// Waits until the daemon answers, telling the console what the box is doing meanwhile.
    fn wait_for_daemon(&mut self) -> State {
        let started = Instant::now();
        let mut told = false;
        loop {
            if let Some(state) = self.state() {
                return state;
            }
            if !told && started.elapsed() > Duration::from_secs(3) {
                self.console
                    .print("director: waiting for the daemon to start...\n");
                told = true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn state(&self) -> Option<State> {
        let history = self.ask(&Request::new(&["config", "history", "1"])).ok()?;
        let exported = self.ask(&Request::new(&["config", "export"])).ok()?;
        let config = crate::config::from_toml(&exported).ok()?;
        let fingerprint = self
            .ask(&Request::new(&["admin", "fingerprint"]))
            .ok()
            .map(|f| f.trim().to_string());
        Some(State {
            stored: !history.starts_with("no revision stored"),
            config,
            fingerprint,
        })
    }

    fn endpoint_line(&self, state: &State) -> String {
        let admin = &state.config.admin;
        let address = if admin.listen.is_unspecified() {
            state
                .config
                .network
                .interfaces
                .iter()
                .find(|i| i.name == "eth0")
                .and_then(|i| i.addresses.first())
                .map_or_else(|| admin.listen.to_string(), |p| p.addr.to_string())
        } else {
            admin.listen.to_string()
        };
        let host = match address.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => address,
        };
        format!(
            "admin endpoint: https://{host}:{}/\ncertificate: {}\n",
            admin.port,
            state
                .fingerprint
                .as_deref()
                .unwrap_or("(not made yet: see `director ctl admin fingerprint`)")
        )
    }

    fn banner(&mut self, state: &State) {
        let text = format!(
            "\n{} - director {} - LVS director\n{}\n",
            state.config.node.hostname,
            env!("CARGO_PKG_VERSION"),
            self.endpoint_line(state)
        );
        self.console.print(&text);
    }

    /// The admin password, until it is given; failed tries wait longer and longer. True once
    /// logged in.
    fn login(&mut self, state: &State) -> bool {
        let Some(hash) = state.config.admin.password_hash.clone() else {
            self.console.print(
                "No admin password is set. Set one now: it guards this console and the admin endpoint.\n",
            );
            return match self.new_password() {
                Ok(()) => true,
                Err(why) => {
                    self.console.print(&format!("{why}\n"));
                    false
                }
            };
        };
        let mut delay = FIRST_DELAY;
        loop {
            let typed = match self.console.read_line("password: ", true, None, None) {
                Input::Line(typed) => typed,
                Input::End => return false,
                Input::Interrupted | Input::Idle => continue,
            };
            // The password in force now: it may have changed (API, peer) since the prompt.
            let current = self
                .state()
                .and_then(|state| state.config.admin.password_hash)
                .unwrap_or_else(|| hash.clone());
            if crate::admin::auth::verify_password(&current, &typed) {
                return true;
            }
            self.note("login refused: wrong password");
            self.console.print(&format!(
                "wrong password; the next try in {} s\n",
                delay.as_secs()
            ));
            std::thread::sleep(delay);
            // What was typed meanwhile is not a password.
            let _ =
                nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// Asks for a new password twice (no echo) and has the daemon keep its hash.
    pub fn new_password(&mut self) -> Result<(), String> {
        let first = self.hidden("new admin password (8 characters or more): ")?;
        setup::password(&first).map_err(|why| format!("{why}; nothing changed"))?;
        let second = self.hidden("the same again: ")?;
        if first != second {
            return Err("the two passwords differ; nothing changed".into());
        }
        let mut request = Request::new(&["admin", "password"]);
        request.body = first;
        request.author = Some("console".into());
        self.ask(&request)?;
        self.console.print("admin password changed\n");
        Ok(())
    }

    fn hidden(&mut self, prompt: &str) -> Result<String, String> {
        match self.console.read_line(prompt, true, Some(self.idle), None) {
            Input::Line(text) => Ok(text),
            _ => Err("cancelled; nothing changed".into()),
        }
    }

    /// The first-boot dialogue, until a configuration is stored.
    fn first_boot(&mut self) {
        self.console.print(
            "\nThis director has no configuration yet. A few questions bring it onto the network;\n\
             the answers become revision 1. An empty answer takes the value in [brackets];\n\
             ^C starts again.\n\n",
        );
        loop {
            let Some(answers) = self.ask_setup() else {
                self.console.print("\nstarting again\n\n");
                continue;
            };
            self.console
                .print(&format!("\nThe configuration:\n{}\n", answers.summary()));
            match self.ask_until("store it? [yes/no] ", |t| match t.trim() {
                "yes" | "y" => Ok(true),
                "no" | "n" => Ok(false),
                other => Err(format!("'{other}': yes or no")),
            }) {
                Some(true) => {}
                _ => {
                    self.console.print("\nnothing stored; starting again\n\n");
                    continue;
                }
            }
            let mut request = Request::new(&["config", "import"]);
            request.body = answers.to_toml();
            request.author = Some("console setup".into());
            request.comment = Some("first-boot setup on the console".into());
            match self.ask(&request) {
                Ok(answer) => {
                    self.console
                        .print(&format!("{answer}stored; starting the box with it\n"));
                    // The daemon starts again with it: the pair starts only at the start.
                    if let Err(why) = self.ask(&Request::new(&["restart"])) {
                        self.console
                            .print(&format!("restarting the daemon: {why}\n"));
                    }
                    // Its old control socket goes before the new one is there.
                    std::thread::sleep(Duration::from_millis(500));
                    return;
                }
                Err(why) => self
                    .console
                    .print(&format!("the daemon refused it: {why}\nstarting again\n\n")),
            }
        }
    }

    /// One question, asked until the answer is accepted; None on ^C.
    fn ask_until<T>(
        &mut self,
        prompt: &str,
        check: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        loop {
            match self.console.read_line(prompt, false, None, None) {
                Input::Line(text) => match check(&text) {
                    Ok(value) => return Some(value),
                    Err(why) => self.console.print(&format!("  refused: {why}\n")),
                },
                Input::Interrupted | Input::End => return None,
                Input::Idle => {}
            }
        }
    }

    /// A secret, not echoed, checked, then typed again; None on ^C.
    fn ask_secret(
        &mut self,
        prompt: &str,
        what: &str,
        check: impl Fn(&str) -> Result<String, String>,
    ) -> Option<String> {
        loop {
            let first = match self.console.read_line(prompt, true, None, None) {
                Input::Line(text) => text,
                Input::Idle => continue,
                Input::Interrupted | Input::End => return None,
            };
            if let Err(why) = check(&first) {
                self.console.print(&format!("  refused: {why}\n"));
                continue;
            }
            match self.console.read_line("the same again: ", true, None, None) {
                Input::Line(again) if again == first => return Some(first),
                Input::Line(_) => self
                    .console
                    .print(&format!("  refused: the two {what} differ\n")),
                Input::Idle => {}
                Input::Interrupted | Input::End => return None,
            }
        }
    }

    fn ask_setup(&mut self) -> Option<setup::Answers> {
        let mut answers = setup::Answers {
            hostname: self.ask_until("hostname [director]: ", |t| {
                setup::hostname(if t.trim().is_empty() { "director" } else { t })
            })?,
            ..setup::Answers::default()
        };
        let eth0 = self.ask_until("eth0 address/prefix (like 192.0.2.2/24): ", |t| {
            setup::interface_address(t)
        })?;
        answers.gateway = self.ask_until("eth0 gateway [none]: ", |t| {
            if t.trim().is_empty() {
                Ok(None)
            } else {
                setup::neighbour(t, &eth0, "gateway").map(Some)
            }
        })?;
        answers.eth0 = Some(eth0);
        answers.eth1 = self.ask_until(
            "eth1 address/prefix, the heartbeat link [none: a single box]: ",
            |t| {
                if t.trim().is_empty() {
                    Ok(None)
                } else {
                    setup::interface_address(t).map(Some)
                }
            },
        )?;
        if let Some(eth1) = answers.eth1 {
            answers.peer =
                self.ask_until("the peer's eth1 address [none: a single box]: ", |t| {
                    if t.trim().is_empty() {
                        Ok(None)
                    } else {
                        setup::neighbour(t, &eth1, "peer").map(Some)
                    }
                })?;
        }
        if answers.peer.is_some() {
            answers.key = self.ask_secret(
                "heartbeat key, the same on both boxes (16 characters or more): ",
                "keys",
                setup::key,
            )?;
        }
        answers.role = self.ask_until(
            "role preference: primary, backup or equal [equal]: ",
            setup::role,
        )?;
        let password = self.ask_secret(
            "admin password (8 characters or more): ",
            "passwords",
            setup::password,
        )?;
        // Only the hash is kept (and stored).
        answers.password_hash =
            crate::admin::auth::hash_password(&password, crate::admin::auth::ITERATIONS).ok()?;
        answers.allowed = self.ask_until(
            "networks allowed to reach the admin endpoint, like 192.0.2.0/24 [every address]: ",
            setup::networks,
        )?;
        Some(answers)
    }
}
