//! Console logging for PID 1 and the daemon: one line per record, stamped with the time since
//! boot like the kernel's own messages, plus an in-memory ring of the most recent lines.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::sys::clock;

/// A logger that writes to standard error (the console) and remembers the last lines.
pub struct ConsoleLogger {
    capacity: usize,
    ring: Mutex<VecDeque<String>>,
    /// The operator's console's pipe while it holds it open (see `CONSOLE_FIFO`).
    relay: Mutex<Option<std::fs::File>>,
}

/// Where the operator's console (`director console`) reads log lines while it owns the
/// terminal, to print them without breaking a line being typed. When nobody reads it (no
/// console, or a root shell instead), lines go straight to the terminal.
pub const CONSOLE_FIFO: &str = "/run/director/console.fifo";

impl ConsoleLogger {
    /// The most recent lines, oldest first.
    pub fn recent(&self) -> Vec<String> {
        match self.ring.lock() {
            Ok(ring) => ring.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }

    /// Hands `line` to the operator's console when it reads its pipe; false when it does
    /// not (the line is for the terminal then).
    fn relayed(&self, line: &[u8]) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        let Ok(mut relay) = self.relay.lock() else {
            return false;
        };
        if relay.is_none() {
            // Without a reader, opening a pipe for writing without blocking fails (ENXIO).
            *relay = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(CONSOLE_FIFO)
                .ok();
        }
        let Some(file) = relay.as_mut() else {
            return false;
        };
        match file.write(line) {
            Ok(n) if n == line.len() => true,
            // Gone (EPIPE) or not keeping up (EAGAIN): the terminal gets it, the pipe is
            // opened afresh for the next line.
            _ => {
                *relay = None;
                false
            }
        }
    }

    fn remember(&self, line: &str) {
        let mut ring = match self.ring.lock() {
            Ok(ring) => ring,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(line.to_string());
    }
}

impl Log for ConsoleLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut line = format_line(
            clock::since_boot(),
            record.level(),
            record.target(),
            &record.args().to_string(),
        );
        // One write per line, its newline included (standard error is unbuffered; a pipe
        // takes a short write whole), so that lines from PID 1, the daemon and a shell's output
        // do not interleave.
        line.push('\n');
        if !self.relayed(line.as_bytes()) {
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        if self.capacity > 0 {
            self.remember(line.trim_end_matches('\n'));
        }
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the console logger for this process and returns it (to read the ring later).
/// A second call returns `None`: there is one logger per process. The level can be changed
/// later with `log::set_max_level`.
pub fn install(level: LevelFilter, ring_capacity: usize) -> Option<&'static ConsoleLogger> {
    let logger: &'static ConsoleLogger = Box::leak(Box::new(ConsoleLogger {
        capacity: ring_capacity,
        ring: Mutex::new(VecDeque::with_capacity(ring_capacity)),
        relay: Mutex::new(None),
    }));
    log::set_logger(logger).ok()?;
    log::set_max_level(level);
    Some(logger)
}

/// `[    1.234567] INFO  init: message`; the target loses the crate prefix.
pub fn format_line(uptime: Duration, level: Level, target: &str, message: &str) -> String {
    let target = target.strip_prefix("director::").unwrap_or(target);
    let target = target.split("::").next().unwrap_or(target);
    format!(
        "[{:5}.{:06}] {:<5} {}: {}",
        uptime.as_secs(),
        uptime.subsec_micros(),
        level,
        target,
        message
    )
}

/// The level from a `director.log=LEVEL` style value; unknown values give `None`.
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    value.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_has_uptime_level_and_short_target() {
        let line = format_line(
            Duration::from_micros(1_234_567),
            Level::Warn,
            "director::init::storage",
            "no data disk",
        );
        assert_eq!(line, "[    1.234567] WARN  init: no data disk");
    }

    #[test]
    fn foreign_targets_are_kept() {
        let line = format_line(Duration::from_secs(12), Level::Info, "tokio", "x");
        assert_eq!(line, "[   12.000000] INFO  tokio: x");
    }

    #[test]
    fn ring_keeps_the_newest_lines() {
        let logger = ConsoleLogger {
            capacity: 2,
            ring: Mutex::new(VecDeque::new()),
            relay: Mutex::new(None),
        };
        logger.remember("a");
        logger.remember("b");
        logger.remember("c");
        assert_eq!(logger.recent(), vec!["b".to_string(), "c".to_string()]);
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("loud"), None);
    }
}
