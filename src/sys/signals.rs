//! Signals read from a signalfd: the signals are blocked for normal delivery and arrive as data.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// A signalfd for a set of blocked signals.
pub struct SignalReader {
    fd: SignalFd,
}

impl SignalReader {
    /// Blocks `signals` for this thread (and so for children until they reset their mask) and
    /// opens a non-blocking signalfd for them.
    pub fn block(signals: &[Signal]) -> nix::Result<Self> {
        let mut set = SigSet::empty();
        for &signal in signals {
            set.add(signal);
        }
        nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalReader { fd })
    }

    /// The next pending signal, or `None` when none is pending.
    pub fn pending(&mut self) -> nix::Result<Option<Signal>> {
        loop {
            match self.fd.read_signal()? {
                None => return Ok(None),
                Some(info) => {
                    // A signal number we cannot name is skipped rather than stopping the reader.
                    if let Ok(signal) = Signal::try_from(info.ssi_signo as i32) {
                        return Ok(Some(signal));
                    }
                }
            }
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
