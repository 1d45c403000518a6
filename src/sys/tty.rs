//! Serial terminals: line settings for the console.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::termios::{self, BaudRate, ControlFlags, SetArg};

/// The baud rates a console may use.
pub fn baud_rate(baud: u32) -> Option<BaudRate> {
    Some(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return None,
    })
}

/// Sets `path` to `baud` 8N1 with the receiver on and modem lines ignored, keeping the rest of
/// the line discipline (echo, canonical mode) as the kernel set it up for a console.
pub fn configure_serial(path: &Path, baud: BaudRate) -> io::Result<()> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(path)?;
    let mut settings = termios::tcgetattr(&tty)?;
    termios::cfsetspeed(&mut settings, baud)?;
    settings.control_flags &= !(ControlFlags::CSIZE
        | ControlFlags::PARENB
        | ControlFlags::CSTOPB
        | ControlFlags::CRTSCTS);
    settings.control_flags |= ControlFlags::CS8 | ControlFlags::CREAD | ControlFlags::CLOCAL;
    termios::tcsetattr(&tty, SetArg::TCSANOW, &settings)?;
    Ok(())
}

/// Opens `path` as a raw line at `baud` 8N1 for a protocol (no echo, no line editing, no
/// signals, no translation of bytes; modem lines ignored), non-blocking.
pub fn open_raw(path: &Path, baud: BaudRate) -> io::Result<std::fs::File> {
    let tty = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let mut settings = termios::tcgetattr(&tty)?;
    termios::cfmakeraw(&mut settings);
    termios::cfsetspeed(&mut settings, baud)?;
    settings.control_flags &= !(ControlFlags::CSTOPB | ControlFlags::CRTSCTS);
    settings.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    // Non-blocking reads then fail with EAGAIN when nothing is there, and 0 is a hang-up.
    settings.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
    settings.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(&tty, SetArg::TCSANOW, &settings)?;
    // What arrived before the line was set up is noise.
    termios::tcflush(&tty, termios::FlushArg::TCIOFLUSH)?;
    Ok(tty)
}
