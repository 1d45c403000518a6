//! The operator's shell on the console, after login: the director's commands with completion
//! (Tab) and help, and an escape to busybox sh for emergencies that is logged.

use super::line::Input;
use super::Session;
use crate::control::Request;

/// The commands, their arguments for completion, and their help.
const COMMANDS: &[(&str, &[&str], &str)] = &[
    ("status", &[], "the daemon, the pair (role, peer, heartbeat channels) and the real servers' health"),
    ("ipvs", &["--stats", "--rate", "--health"], "the kernel's IPVS table, as ipvsadm -Ln shows it"),
    ("net", &[], "interfaces, addresses, routes, and what differs from the configuration"),
    ("log", &[], "the daemon's recent log lines: log [N]"),
    (
        "config",
        &["show", "history", "diff", "rollback", "set", "unset", "validate"],
        "the configuration: config show | history | diff [A [B]] | rollback N | set PATH VALUE | unset PATH",
    ),
    ("takeover", &[], "make this box the active director"),
    ("release", &[], "hand the active role to the peer"),
    ("passwd", &[], "change the admin password (this console's and the admin endpoint's)"),
    ("reboot", &[], "restart the box (asks first)"),
    ("poweroff", &[], "switch the box off (asks first)"),
    (
        "factory-reset",
        &[],
        "forget everything stored (configuration, certificate, tokens) and restart into the first-boot dialogue",
    ),
    ("sh", &[], "busybox sh, for emergencies (logged); exit returns here"),
    ("help", &[], "this list, or help COMMAND"),
    ("logout", &[], "end the session (also exit, ^D)"),
];

/// The candidates for the last word of `line`.
pub fn complete(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let typed = words.last().copied().unwrap_or("");
    let names: Vec<&str> = match words.len() {
        0 | 1 => COMMANDS.iter().map(|(name, _, _)| *name).collect(),
        2 => COMMANDS
            .iter()
            .find(|(name, _, _)| *name == words[0])
            .map(|(_, args, _)| args.to_vec())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .filter(|n| n.starts_with(typed))
        .map(str::to_string)
        .collect()
}

fn help(topic: Option<&str>) -> String {
    match topic {
        Some(name) => match COMMANDS.iter().find(|(n, _, _)| *n == name) {
            Some((name, _, text)) => format!("{name}: {text}\n"),
            None => format!("no command '{name}'; `help` lists them\n"),
        },
        None => {
            let mut out = String::from("commands (Tab completes):\n");
            for (name, _, text) in COMMANDS {
                out.push_str(&format!("  {name:<14} {text}\n"));
            }
            out
        }
    }
}

/// Runs the session until logout, idle time-out or the terminal goes.
pub fn run(session: &mut Session, hostname: &str) {
    let prompt = format!("{hostname}> ");
    session
        .console
        .print("Type help for the commands; Tab completes.\n");
    loop {
        let completer = complete;
        let line =
            match session
                .console
                .read_line(&prompt, false, Some(session.idle), Some(&completer))
            {
                Input::Line(line) => line,
                Input::Interrupted => continue,
                Input::End => break,
                Input::Idle => {
                    session.console.print(&format!(
                        "idle for {} s: logged out\n",
                        session.idle.as_secs()
                    ));
                    session.note("logged out: idle");
                    return;
                }
            };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [] => {}
            ["logout" | "exit"] => break,
            ["help"] => session.console.print(&help(None)),
            ["help", topic] => session.console.print(&help(Some(topic))),
            ["passwd"] => {
                if let Err(why) = session.new_password() {
                    session.console.print(&format!("{why}\n"));
                }
            }
            [command @ ("reboot" | "poweroff")] => {
                if confirm(session, &format!("{command} now? [yes/no] "), "yes") {
                    session.note(&format!("{command} asked on the console"));
                    let _ = crate::power::request(command, &[]);
                    return;
                }
            }
            ["factory-reset"] => {
                session.console.print(
                    "This erases the configuration, its history, the certificate and the API tokens,\n\
                     and restarts the box into the first-boot dialogue.\n",
                );
                if confirm(session, "type factory-reset to go on: ", "factory-reset") {
                    factory_reset(session);
                    return;
                }
            }
            ["sh"] => escape(session),
            [first, ..] if COMMANDS.iter().any(|(name, _, _)| name == first) => {
                run_command(session, &words)
            }
            [other, ..] => session
                .console
                .print(&format!("no command '{other}'; `help` lists them\n")),
        }
    }
    session.note("logout");
}

fn confirm(session: &mut Session, prompt: &str, expected: &str) -> bool {
    match session
        .console
        .read_line(prompt, false, Some(session.idle), None)
    {
        Input::Line(answer) if answer.trim() == expected => true,
        _ => {
            session.console.print("nothing done\n");
            false
        }
    }
}

/// A daemon command (`status`, `ipvs`, `config ...`): its answer or its error.
fn run_command(session: &mut Session, words: &[&str]) {
    let mut request = match words {
        ["config", "set", path, value @ ..] if !value.is_empty() => {
            let mut request = Request::new(&["config", "set", path]);
            request.body = value.join(" ");
            request
        }
        _ => Request::new(words),
    };
    if words.first() == Some(&"config") {
        request.author = Some("console".into());
    }
    match session.ask(&request) {
        Ok(answer) => session.console.print(&answer),
        Err(why) => session.console.print(&format!("{why}\n")),
    }
}

fn factory_reset(session: &mut Session) {
    let mark = std::path::Path::new(crate::init::FACTORY_RESET_MARK);
    if let Err(e) = std::fs::write(mark, b"asked on the console\n") {
        session.console.print(&format!(
            "cannot leave the reset's mark in /data: {e}; nothing done\n"
        ));
        return;
    }
    session.note("factory reset asked on the console: /data is emptied at the next boot");
    session.console.print("restarting for the factory reset\n");
    let _ = crate::power::request("reboot", &[]);
}

/// busybox sh on the console, logged when it starts and ends.
fn escape(session: &mut Session) {
    session.note("emergency shell (busybox sh) started");
    session
        .console
        .print("busybox sh: `exit` returns to the director's shell\n");
    session.console.restore();
    let status = std::process::Command::new("/bin/sh").arg("-l").status();
    session.note("emergency shell ended");
    if let Err(e) = status {
        session
            .console
            .print(&format!("cannot start /bin/sh: {e}\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_offers_commands_then_their_arguments() {
        assert_eq!(complete("st"), ["status"]);
        assert_eq!(complete("re"), ["release", "reboot"]);
        assert_eq!(complete("config h"), ["history"]);
        assert_eq!(complete("ipvs --"), ["--stats", "--rate", "--health"]);
        assert!(complete("nothing").is_empty());
        assert!(complete("status x").is_empty());
        assert_eq!(complete("").len(), COMMANDS.len());
    }

    #[test]
    fn help_names_every_command() {
        let all = help(None);
        for (name, _, _) in COMMANDS {
            assert!(all.contains(name), "{name}");
        }
        assert!(help(Some("factory-reset")).contains("first-boot dialogue"));
        assert!(help(Some("frobnicate")).contains("no command 'frobnicate'"));
    }
}
