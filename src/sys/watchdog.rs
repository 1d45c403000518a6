//! The hardware watchdog (/dev/watchdog: i6300esb in QEMU, sp5100_tco on the APU2, softdog
//! where there is none): once opened it resets the machine unless it is petted within its
//! timeout. Closing it after writing the magic character 'V' stops it (unless the driver was
//! built with nowayout); closing it otherwise, as a crashed process does, leaves it running.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

nix::ioctl_read!(keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(set_timeout, b'W', 6, libc::c_int);
nix::ioctl_read!(get_timeout, b'W', 7, libc::c_int);

/// A watchdog that is running.
pub trait Watchdog: Send {
    /// Restarts its countdown.
    fn pet(&mut self) -> io::Result<()>;
    /// Stops it (a clean shutdown): the magic close.
    fn stop(self: Box<Self>) -> io::Result<()>;
    /// Its timeout as the driver set it (drivers round).
    fn timeout(&self) -> Duration;
}

/// The kernel's watchdog device.
pub struct Device {
    file: File,
    timeout: Duration,
}

impl Device {
    /// Opens `path` (which starts the countdown) and sets its timeout, in whole seconds, at
    /// least one.
    pub fn open(path: &Path, timeout: Duration) -> io::Result<Device> {
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        let mut seconds =
            libc::c_int::try_from(timeout.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int, which `seconds` is.
        unsafe { set_timeout(file.as_raw_fd(), &mut seconds) }.map_err(io::Error::from)?;
        let mut actual: libc::c_int = 0;
        // SAFETY: WDIOC_GETTIMEOUT writes one int.
        if unsafe { get_timeout(file.as_raw_fd(), &mut actual) }.is_ok() && actual > 0 {
            seconds = actual;
        }
        Ok(Device {
            file,
            timeout: Duration::from_secs(u64::try_from(seconds).unwrap_or(1)),
        })
    }
}

impl Watchdog for Device {
    fn pet(&mut self) -> io::Result<()> {
        let mut ignored: libc::c_int = 0;
        // SAFETY: WDIOC_KEEPALIVE takes a pointer to an int it does not use.
        unsafe { keepalive(self.file.as_raw_fd(), &mut ignored) }
            .map(|_| ())
            .map_err(io::Error::from)
    }

    fn stop(mut self: Box<Self>) -> io::Result<()> {
        self.file.write_all(b"V")
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// What a fake watchdog saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub pets: u64,
    pub stopped: bool,
}

/// A watchdog for tests: counts pets.
pub struct Recording {
    pub record: Arc<Mutex<Record>>,
    pub timeout: Duration,
}

impl Watchdog for Recording {
    fn pet(&mut self) -> io::Result<()> {
        if let Ok(mut record) = self.record.lock() {
            record.pets += 1;
        }
        Ok(())
    }

    fn stop(self: Box<Self>) -> io::Result<()> {
        if let Ok(mut record) = self.record.lock() {
            record.stopped = true;
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_no_watchdog_is_refused() {
        let dir = crate::scratch::Scratch::new("watchdog");
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").expect("a file");
        let error = Device::open(&path, Duration::from_secs(5))
            .err()
            .expect("not a watchdog");
        assert_eq!(error.raw_os_error(), Some(libc::ENOTTY), "{error}");
    }
}
