//! `director poweroff|reboot|halt`: ask PID 1 for a shutdown with busybox init's signals.

use std::process::ExitCode;

use nix::sys::signal::Signal;

use crate::sys::process;

/// The signal PID 1 reads as this request.
pub fn signal_for(command: &str) -> Option<Signal> {
    match command {
        "poweroff" => Some(Signal::SIGUSR2),
        "reboot" => Some(Signal::SIGTERM),
        "halt" => Some(Signal::SIGUSR1),
        _ => None,
    }
}

pub fn request(command: &str, args: &[String]) -> ExitCode {
    if let Some(extra) = args.first() {
        eprintln!("director {command}: unexpected argument '{extra}'");
        return ExitCode::from(2);
    }
    let Some(signal) = signal_for(command) else {
        eprintln!("director: unknown power command '{command}'");
        return ExitCode::from(2);
    };
    match process::signal(1, signal) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director {command}: cannot signal PID 1: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_follow_busybox_init() {
        assert_eq!(signal_for("reboot"), Some(Signal::SIGTERM));
        assert_eq!(signal_for("halt"), Some(Signal::SIGUSR1));
        assert_eq!(signal_for("poweroff"), Some(Signal::SIGUSR2));
        assert_eq!(signal_for("suspend"), None);
    }
}
