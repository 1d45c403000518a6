//! The external program check: `path args...` with `%h` and `%p` put in (the real server's
//! address and port, as ldirectord and nanny pass them), standard input empty, standard output
//! and error read together up to a bound. Exit status 0 is healthy; a line `weight=N` asks for a
//! weight. The program runs in a process group of its own, killed whole when the check times
//! out, so that a hung script does not leave its children behind.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::process::Command;

use super::checker::{io_text, parse_weight, Outcome};
use crate::config::model::ProgramCheck;

/// The most of a program's output that is kept; the rest is read and dropped.
const MAX_OUTPUT: usize = 4096;

/// How long output is still read after the program exited (a child it left behind may hold
/// the pipe open).
const AFTER_EXIT: Duration = Duration::from_millis(100);

/// A program check, ready to run against any real server.
pub struct ProgramProbe {
    path: String,
    args: Vec<String>,
}

impl ProgramProbe {
    pub(super) fn new(program: &ProgramCheck) -> ProgramProbe {
        ProgramProbe {
            path: program.path.clone(),
            args: program.args.clone(),
        }
    }

    pub(super) fn path(&self) -> &str {
        &self.path
    }

    pub(super) async fn probe(&self, target: SocketAddr) -> Outcome {
        let (read, write) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
            Ok(ends) => ends,
            Err(e) => return Outcome::failed(format!("program {}: pipe: {e}", self.path)),
        };
        let stderr = match write.try_clone() {
            Ok(fd) => fd,
            Err(e) => {
                return Outcome::failed(format!("program {}: pipe: {}", self.path, io_text(&e)))
            }
        };
        let mut command = Command::new(&self.path);
        command
            .args(
                self.args
                    .iter()
                    .map(|arg| substitute(arg, target).into_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(write))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .process_group(0);
        let spawned = command.spawn();
        // The command holds the pipe's write ends: they must be closed here for the end of
        // the output to be seen.
        drop(command);
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                return Outcome::failed(format!(
                    "program {} could not start: {}",
                    self.path,
                    io_text(&e)
                ))
            }
        };
        let mut group = Group(child.id().and_then(|id| i32::try_from(id).ok()));
        let mut output = match pipe::Receiver::from_owned_fd(read) {
            Ok(output) => output,
            Err(e) => {
                return Outcome::failed(format!("program {}: pipe: {}", self.path, io_text(&e)))
            }
        };
        let mut kept: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 1024];
        let mut status: Option<std::io::Result<ExitStatus>> = None;
        let mut ended = false;
        while status.is_none() || !ended {
            tokio::select! {
                exit = child.wait(), if status.is_none() => {
                    // Reaped: the group's id may be reused from now on, so it is not killed.
                    group.0 = None;
                    status = Some(exit);
                }
                read = output.read(&mut chunk), if !ended => match read {
                    Ok(0) | Err(_) => ended = true,
                    Ok(n) => {
                        let room = MAX_OUTPUT.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..n.min(room)]);
                    }
                },
                _ = tokio::time::sleep(AFTER_EXIT), if status.is_some() => ended = true,
            }
        }
        let text = String::from_utf8_lossy(&kept);
        log::debug!(
            "health: program {} for {target}: {}",
            self.path,
            text.trim().replace('\n', " | ")
        );
        match status {
            Some(Ok(status)) => self.verdict(status, &text),
            Some(Err(e)) => {
                Outcome::failed(format!("program {}: waiting: {}", self.path, io_text(&e)))
            }
            None => Outcome::failed(format!("program {}: no exit status", self.path)),
        }
    }

    fn verdict(&self, status: ExitStatus, output: &str) -> Outcome {
        let said = first_line(output)
            .map(|line| format!(": {line}"))
            .unwrap_or_default();
        if !status.success() {
            return Outcome::failed(match (status.code(), status.signal()) {
                (Some(code), _) => format!("program {} exited {code}{said}", self.path),
                (None, Some(signal)) => {
                    format!("program {} was killed by signal {signal}{said}", self.path)
                }
                (None, None) => format!("program {} failed{said}", self.path),
            });
        }
        let mut outcome = Outcome::healthy("program exited 0");
        match output_weight(output) {
            Some(Ok(weight)) => outcome.weight = Some(weight),
            Some(Err(why)) => {
                outcome.message = format!("program exited 0; its weight line: {why}").into()
            }
            None => {}
        }
        outcome
    }
}

/// Kills the program's whole process group when dropped before the program was reaped: on a
/// timeout, the check's future is dropped in the middle.
struct Group(Option<i32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// `%h` the address, `%p` the port, `%%` a percent sign; anything else as written.
pub(super) fn substitute(arg: &str, target: SocketAddr) -> Cow<'_, str> {
    if !arg.contains('%') {
        return Cow::Borrowed(arg);
    }
    let mut out = String::with_capacity(arg.len() + 16);
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('h')) => out.push_str(&target.ip().to_string()),
            ('%', Some('p')) => out.push_str(&target.port().to_string()),
            ('%', Some('%')) => out.push('%'),
            _ => {
                out.push(c);
                continue;
            }
        }
        chars.next();
    }
    Cow::Owned(out)
}

/// The weight a program asked for with a line `weight=N` (the first such line).
pub(super) fn output_weight(output: &str) -> Option<Result<u32, String>> {
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("weight="))
        .map(parse_weight)
}

/// The first line of output that says something (not a weight), cut to 120 characters.
fn first_line(output: &str) -> Option<String> {
    let line = output
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("weight="))?;
    Some(match line.char_indices().nth(120) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SocketAddr {
        "192.0.2.21:8080".parse().expect("an address")
    }

    #[test]
    fn host_and_port_are_put_in() {
        assert_eq!(substitute("--host=%h", target()), "--host=192.0.2.21");
        assert_eq!(substitute("%h:%p", target()), "192.0.2.21:8080");
        assert_eq!(substitute("100%%", target()), "100%");
        assert_eq!(substitute("%x%", target()), "%x%");
        assert!(matches!(substitute("plain", target()), Cow::Borrowed(_)));
        let v6: SocketAddr = "[2001:db8::1]:53".parse().expect("an address");
        assert_eq!(substitute("%h", v6), "2001:db8::1");
    }

    #[test]
    fn a_weight_line_is_found_anywhere() {
        assert_eq!(output_weight("load fine\nweight=7\n"), Some(Ok(7)));
        assert_eq!(output_weight("  weight=12  "), Some(Ok(12)));
        assert_eq!(output_weight("weight is 7"), None);
        assert!(output_weight("weight=high")
            .expect("a weight line")
            .unwrap_err()
            .contains("'high' is not a whole number"));
    }

    #[test]
    fn messages_give_the_exit_and_the_first_line() {
        let probe = ProgramProbe::new(&ProgramCheck {
            path: "/usr/bin/x".into(),
            args: Vec::new(),
        });
        let failed = probe.verdict(
            ExitStatus::from_raw(1 << 8),
            "\nweight=3\nno backend\nmore\n",
        );
        assert!(!failed.healthy);
        assert_eq!(failed.message, "program /usr/bin/x exited 1: no backend");
        let killed = probe.verdict(ExitStatus::from_raw(9), "");
        assert_eq!(killed.message, "program /usr/bin/x was killed by signal 9");
        let fine = probe.verdict(ExitStatus::from_raw(0), "weight=5\n");
        assert_eq!((fine.healthy, fine.weight), (true, Some(5)));
        assert_eq!(fine.message, "program exited 0");
        let odd = probe.verdict(ExitStatus::from_raw(0), "weight=-2\n");
        assert_eq!((odd.healthy, odd.weight), (true, None));
        assert!(odd.message.contains("'-2' is not a whole number"));
    }
}
