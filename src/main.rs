//! `director`: one multi-call binary for the whole userland of an LVS director box.
//!
//! Dispatch is by subcommand (`director init|daemon|ctl|poweroff|reboot|halt`) or by the name it
//! was started as (`/sbin/init`, `/init`, `poweroff`, `reboot`, `halt` are links to it).

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

use director::{console, ctl, daemon, init, power};

const USAGE: &str = "\
usage: director <command> [args]

commands:
  init                  run as PID 1 (also when started as /sbin/init or /init)
  daemon                run the control-plane daemon in the foreground
  ctl <command>         talk to the running daemon (`director ctl help`)
  config <command>      the configuration: revisions, import, offline checks (`director config help`)
  console               the serial console: first-boot dialogue, login, the operator's shell
  poweroff|reboot|halt  ask PID 1 to shut the box down
  version               print the version
";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let argv0 = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let command = match argv0.as_str() {
        "init" | "linuxrc" => "init".to_string(),
        "poweroff" | "reboot" | "halt" => argv0.clone(),
        _ => {
            if args.len() < 2 {
                eprint!("{USAGE}");
                return ExitCode::from(2);
            }
            args.remove(1).to_string_lossy().into_owned()
        }
    };
    let rest: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match command.as_str() {
        "init" => init::run(),
        "daemon" => daemon::run(&rest),
        "ctl" => ctl::run(&rest),
        "config" => ctl::config::run(&rest),
        "console" => console::run(&rest),
        "poweroff" | "reboot" | "halt" => power::request(&command, &rest),
        "version" | "--version" | "-V" => {
            println!("director {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("director: unknown command '{other}'\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
