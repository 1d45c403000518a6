//! `director config ...`: the configuration from the command line. The offline commands work
//! on files with no daemon: `validate FILE` and `convert FILE` (prints the TOML that importing
//! FILE would store); `default` prints the built-in configuration. The others ask the daemon
//! over its control socket, which keeps the revisions.

use std::process::ExitCode;

use std::path::Path;

use crate::config::import::{self, ImportError};
use crate::config::{self, Rejected};
use crate::control::Request;
use crate::ctl::send;

const USAGE: &str = "\
usage: director config [--socket PATH] [--author NAME] [-m COMMENT] <command>

offline commands (no daemon needed; FILE is director TOML, Piranha lvs.cf, keepalived.conf,
or ldirectord.cf with heartbeat's ha.cf, haresources and authkeys beside it):
  validate FILE       check a configuration file; lists every problem, exits 1 if there is one
  convert FILE        print the TOML that importing FILE would store
  default             print the built-in default configuration
  kernel-args FILE    the kernel command line the file's serial console asks for
                      (console=ttyS0,115200n8; qemu/run --config uses it)

commands to the running daemon:
  show                the configuration in force, with its revision
  export              the configuration in force as TOML (to edit and import again)
  import FILE         store FILE (any format above) as a new revision and put it in force
  set PATH VALUE      change one field, e.g. `set pair.deadtime 10s`,
                      `set virtual_servers.web.real_servers.web1.weight 5`
  unset PATH          remove an optional field
  diff [A [B]]        changes from revision A (default: the one before) to B (default: current)
  history [N]         the revisions (the last N), `*` marks the one in force
  rollback N          put revision N in force again, as a new revision
  validate            check the configuration in force against the current rules

Changes are recorded with --author (default: $SUDO_USER, $USER, or the uid) and -m COMMENT.
";

pub fn run(args: &[String]) -> ExitCode {
    let mut socket = None;
    let mut author = None;
    let mut comment = None;
    let mut words: Vec<&str> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let flag = arg.as_str();
        let slot = match flag {
            "--socket" => &mut socket,
            "--author" => &mut author,
            "-m" | "--comment" => &mut comment,
            _ => {
                words.push(flag);
                continue;
            }
        };
        match iter.next() {
            Some(value) => *slot = Some(value.clone()),
            None => {
                eprintln!("director config: {flag} needs a value");
                return ExitCode::from(2);
            }
        }
    }
    match words.as_slice() {
        ["validate", file] => match load(file) {
            Ok(_) => {
                println!("{file}: valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["convert", file] => match load_for_convert(file) {
            Ok(config) => print_toml(&config),
            Err((code, Some(config))) => {
                // The engineer gets the TOML to fix rather than nothing.
                println!("# NOT VALID as it stands: fix what standard error lists, then import.");
                print_toml(&config);
                code
            }
            Err((code, None)) => code,
        },
        ["default"] => print_toml(&config::builtin_default()),
        ["kernel-args", file] => match load(file) {
            Ok(config) => {
                println!("{}", config::boot::kernel_console(&config.node.console));
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["import", file] => {
            let config = match load(file) {
                Ok(config) => config,
                Err(code) => return code,
            };
            let body = match config::to_toml(&config) {
                Ok(body) => body,
                Err(why) => {
                    eprintln!("director config: {why}");
                    return ExitCode::FAILURE;
                }
            };
            let comment = comment.or_else(|| Some(format!("import {file}")));
            let request = Request {
                body,
                ..online(&["import"], author, comment)
            };
            send("director config", socket.as_deref(), &request)
        }
        ["show" | "export" | "history" | "validate"]
        | ["history" | "unset" | "rollback", _]
        | ["diff"]
        | ["diff", _]
        | ["diff", _, _] => send(
            "director config",
            socket.as_deref(),
            &online(&words, author, comment),
        ),
        ["set", path, value @ ..] if !value.is_empty() => {
            // The value goes as the body, so that its spaces arrive as typed.
            let request = Request {
                body: value.join(" "),
                ..online(&["set", path], author, comment)
            };
            send("director config", socket.as_deref(), &request)
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// A request for `director config WORDS` to the daemon.
fn online(words: &[&str], author: Option<String>, comment: Option<String>) -> Request {
    let mut all = vec!["config"];
    all.extend_from_slice(words);
    let mut request = Request::new(&all);
    request.author = author.or_else(default_author);
    request.comment = comment;
    request
}

/// Who is at the keyboard: the user behind sudo, the login, the account of the uid, or the uid.
pub fn default_author() -> Option<String> {
    let uid = nix::unistd::getuid();
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .or_else(|| {
            nix::unistd::User::from_uid(uid)
                .ok()
                .flatten()
                .map(|user| user.name)
        })
        .or_else(|| Some(format!("uid{uid}")))
}

fn print_toml(config: &config::Config) -> ExitCode {
    match config::to_toml(config) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("director config: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Reads `file` in whichever format it is and checks it. Lines with no equivalent go to
/// standard error; on failure every problem is printed, one per line, naming the file.
fn load(file: &str) -> Result<config::Config, ExitCode> {
    load_for_convert(file).map_err(|(code, _)| code)
}

/// As `load`; an imported configuration that breaks rules comes with the failure.
fn load_for_convert(file: &str) -> Result<config::Config, (ExitCode, Option<Box<config::Config>>)> {
    let (format, result) = import::import_path(Path::new(file)).map_err(|why| {
        eprintln!("{why}");
        (ExitCode::from(2), None)
    })?;
    let report_notes = |notes: &[import::Note]| {
        for note in notes {
            eprintln!("{note}");
        }
        if !notes.is_empty() {
            eprintln!(
                "{file}: {} line(s) of this {format} file have no equivalent and were not imported",
                notes.len()
            );
        }
    };
    match result {
        Ok(imported) => {
            report_notes(&imported.notes);
            Ok(imported.config)
        }
        Err(ImportError::Toml(Rejected::Syntax {
            line,
            column,
            message,
        })) => {
            eprintln!("{file}:{line}:{column}: {message}");
            Err((ExitCode::FAILURE, None))
        }
        Err(ImportError::Toml(Rejected::Invalid(problems))) => {
            for problem in &problems {
                eprintln!("{file}: {problem}");
            }
            eprintln!("{file}: {} problem(s)", problems.len());
            Err((ExitCode::FAILURE, None))
        }
        Err(ImportError::Unreadable(errors)) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!("{file}: cannot be read as {format}");
            Err((ExitCode::FAILURE, None))
        }
        Err(ImportError::Invalid {
            problems,
            notes,
            config,
        }) => {
            report_notes(&notes);
            for problem in &problems {
                eprintln!("{file}: imported as {format}: {problem}");
            }
            eprintln!("{file}: {} problem(s)", problems.len());
            Err((ExitCode::FAILURE, Some(config)))
        }
    }
}
