//! `director config ...`: the configuration from the command line. The offline commands work
//! on files with no daemon: `validate FILE` and `convert FILE` (prints the TOML that importing
//! FILE would store); `default` prints the built-in configuration.

use std::process::ExitCode;

use std::path::Path;

use crate::config::import::{self, ImportError};
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

/// Reads `file` in whichever format it is and checks it. Lines with no equivalent go to
/// standard error; on failure every problem is printed, one per line, naming the file.
fn load(file: &str) -> Result<config::Config, ExitCode> {
    let (format, result) = import::import_path(Path::new(file)).map_err(|why| {
        eprintln!("{why}");
        ExitCode::from(2)
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
            Err(ExitCode::FAILURE)
        }
        Err(ImportError::Toml(Rejected::Invalid(problems))) => {
            for problem in &problems {
                eprintln!("{file}: {problem}");
            }
            eprintln!("{file}: {} problem(s)", problems.len());
            Err(ExitCode::FAILURE)
        }
        Err(ImportError::Unreadable(errors)) => {
            for error in &errors {
                eprintln!("{error}");
            }
            eprintln!("{file}: cannot be read as {format}");
            Err(ExitCode::FAILURE)
        }
        Err(ImportError::Invalid { problems, notes }) => {
            report_notes(&notes);
            for problem in &problems {
                eprintln!("{file}: imported as {format}: {problem}");
            }
            eprintln!("{file}: {} problem(s)", problems.len());
            Err(ExitCode::FAILURE)
        }
    }
}
