//! Starting, signalling and reaping processes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(Signal, bool),
}

impl Exit {
    pub fn is_clean(self) -> bool {
        self == Exit::Code(0)
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(signal, core) => {
                write!(f, "killed by signal {} ({signal})", *signal as i32)?;
                if *core {
                    write!(f, ", core dumped")?;
                }
                Ok(())
            }
        }
    }
}

/// What to start.
pub struct Spawn<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    /// A terminal to become the session's controlling terminal and standard input/output.
    pub terminal: Option<&'a Path>,
}

/// Starts a program in a session of its own with a clean environment and an empty signal mask
/// (the standard library does not reset the mask, and PID 1 blocks the signals it reads).
pub fn spawn(what: &Spawn<'_>) -> io::Result<u32> {
    let mut command = Command::new(what.program);
    command.args(what.args).env_clear();
    for (key, value) in what.env {
        command.env(key, value);
    }
    let with_terminal = match what.terminal {
        Some(path) => {
            let tty = open_terminal(path)?;
            command
                .stdin(Stdio::from(tty.try_clone()?))
                .stdout(Stdio::from(tty.try_clone()?))
                .stderr(Stdio::from(tty));
            true
        }
        None => {
            command.stdin(Stdio::null());
            false
        }
    };
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (sigprocmask, setsid, ioctl); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let mut empty = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            libc::sigemptyset(empty.as_mut_ptr());
            if libc::pthread_sigmask(libc::SIG_SETMASK, empty.as_ptr(), std::ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if with_terminal && libc::ioctl(0, libc::TIOCSCTTY, 1) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    // The child is reaped by `reap`, not through the handle.
    Ok(child.id())
}

fn open_terminal(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
}

/// What one round of reaping found.
#[derive(Debug, Default)]
pub struct Reaped {
    pub ended: Vec<(u32, Exit)>,
    /// No child is left at all (waitpid said ECHILD).
    pub none_left: bool,
}

/// Collects every child that has ended, without blocking.
pub fn reap() -> Reaped {
    let mut reaped = Reaped::default();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                reaped.ended.push((pid_u32(pid), Exit::Code(code)))
            }
            Ok(WaitStatus::Signaled(pid, signal, core)) => reaped
                .ended
                .push((pid_u32(pid), Exit::Signal(signal, core))),
            Ok(WaitStatus::StillAlive) => return reaped,
            Err(Errno::ECHILD) => {
                reaped.none_left = true;
                return reaped;
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return reaped,
        }
    }
}

/// Waits for one child to end (used before supervision starts).
pub fn wait_for(pid: u32) -> io::Result<Exit> {
    let pid = Pid::from_raw(i32::try_from(pid).map_err(|_| io::Error::other("pid out of range"))?);
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, core)) => return Ok(Exit::Signal(signal, core)),
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
}

fn pid_u32(pid: Pid) -> u32 {
    u32::try_from(pid.as_raw()).unwrap_or(0)
}

/// Sends `signal` to one process; a process that is already gone is not an error.
pub fn signal(pid: u32, signal: Signal) -> nix::Result<()> {
    let raw = i32::try_from(pid).map_err(|_| Errno::ESRCH)?;
    match kill(Pid::from_raw(raw), signal) {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Sends `signal` to every process but PID 1 (kill(-1, ...)); none left is not an error.
pub fn signal_all(signal: Signal) -> nix::Result<()> {
    match kill(Pid::from_raw(-1), signal) {
        Err(Errno::ESRCH) => Ok(()),
        other => other,
    }
}
