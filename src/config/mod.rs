//! The configuration: the typed model every part reads, the rules that make it valid, and its
//! human form (TOML). Pure data and rules: no kernel calls, no transport.

pub mod boot;
pub mod delta;
pub mod import;
pub mod model;
pub mod replica;
pub mod store;
pub mod types;
pub mod validate;

use std::fmt;

pub use model::Config;
pub use validate::{validate, Problem};

/// The configuration a box runs with when nothing was stored or provisioned.
const BUILTIN_DEFAULT: &str = include_str!("default.toml");

/// Why a text is not an acceptable configuration.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not TOML, or not the shape of a configuration (unknown key, wrong type...).
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed, but breaking rules: every problem.
    Invalid(Vec<Problem>),
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Syntax {
                line,
                column,
                message,
            } => write!(f, "line {line}, column {column}: {message}"),
            Rejected::Invalid(problems) => {
                for (i, problem) in problems.iter().enumerate() {
                    if i > 0 {
                        writeln!(f)?;
                    }
                    write!(f, "{problem}")?;
                }
                Ok(())
            }
        }
    }
}

/// Parses and validates a TOML configuration.
pub fn from_toml(text: &str) -> Result<Config, Rejected> {
    let config: Config = toml::from_str(text).map_err(|e| {
        let (line, column) = e
            .span()
            .map(|span| line_and_column(text, span.start))
            .unwrap_or((0, 0));
        Rejected::Syntax {
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let problems = validate(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(Rejected::Invalid(problems))
    }
}

/// The TOML form of a configuration; `from_toml` of it gives the same configuration back.
pub fn to_toml(config: &Config) -> Result<String, String> {
    toml::to_string(config).map_err(|e| format!("cannot write the configuration as TOML: {e}"))
}

/// The built-in default configuration (`default.toml`, which the tests prove valid and equal
/// to `Config::default()`).
pub fn builtin_default() -> Config {
    from_toml(BUILTIN_DEFAULT).unwrap_or_default()
}

/// 1-based line and column of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
