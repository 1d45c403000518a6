//! `director config ...`: the configuration from the command line. The offline commands work
//! on files with no daemon: `validate FILE` and `convert FILE` (prints the TOML that importing
//! FILE would store); `default` prints the built-in configuration.

use std::process::ExitCode;

use crate::config::{self, Rejected};

const USAGE: &str = "\
usage: director config <command>

offline commands (no daemon needed):
  validate FILE   check a configuration file; lists every problem, exits 1 if there is one
  convert FILE    print the TOML that importing FILE would store
  default         print the built-in default configuration
";

pub fn run(args: &[String]) -> ExitCode {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["validate", file] => match load(file) {
            Ok(_) => {
                println!("{file}: valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        ["convert", file] => match load(file) {
            Ok(config) => print_toml(&config),
            Err(code) => code,
        },
        ["default"] => print_toml(&config::builtin_default()),
        ["help" | "--help" | "-h"] => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
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

/// Reads and checks `file`; on failure the problems are printed, one per line, naming the file.
fn load(file: &str) -> Result<config::Config, ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("{file}: {e}");
        ExitCode::from(2)
    })?;
    config::from_toml(&text).map_err(|rejected| {
        match rejected {
            Rejected::Syntax {
                line,
                column,
                message,
            } => eprintln!("{file}:{line}:{column}: {message}"),
            Rejected::Invalid(problems) => {
                for problem in &problems {
                    eprintln!("{file}: {problem}");
                }
                eprintln!("{file}: {} problem(s)", problems.len());
            }
        }
        ExitCode::FAILURE
    })
}
