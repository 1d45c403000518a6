//! Reading a line on the serial console: the keys a dumb terminal sends (printable characters,
//! backspace, ^U, ^C, ^D, Tab, Enter; escape sequences are ignored), echo or none (passwords),
//! completion, an idle limit, and lines from elsewhere (the daemon's events) printed above the
//! line being typed without breaking it. Only carriage return, newline, backspace and spaces
//! are written: no cursor addressing, so any terminal works.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// A key, decoded from the bytes the terminal sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Enter,
    Backspace,
    Tab,
    /// ^C: the line is dropped.
    Interrupt,
    /// ^D: on an empty line, the end (logout).
    End,
    /// ^U: the line is erased.
    Kill,
}

/// Bytes to keys: UTF-8 characters whole, escape sequences (arrows, function keys) dropped.
#[derive(Default)]
pub struct Decoder {
    pending: Vec<u8>,
    escape: Escape,
}

#[derive(Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// ESC seen.
    Start,
    /// ESC [ or ESC O seen: parameters until a final byte.
    Sequence,
}

impl Decoder {
    pub fn feed(&mut self, byte: u8) -> Option<Key> {
        match self.escape {
            Escape::Start => {
                self.escape = if byte == b'[' || byte == b'O' {
                    Escape::Sequence
                } else {
                    Escape::None
                };
                return None;
            }
            Escape::Sequence => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return None;
            }
            Escape::None => {}
        }
        match byte {
            0x1b => {
                self.escape = Escape::Start;
                None
            }
            b'\r' | b'\n' => Some(Key::Enter),
            0x7f | 0x08 => Some(Key::Backspace),
            b'\t' => Some(Key::Tab),
            0x03 => Some(Key::Interrupt),
            0x04 => Some(Key::End),
            0x15 => Some(Key::Kill),
            0x00..=0x1f => None,
            _ => {
                self.pending.push(byte);
                match std::str::from_utf8(&self.pending) {
                    Ok(text) => {
                        let c = text.chars().next();
                        self.pending.clear();
                        c.map(Key::Char)
                    }
                    Err(e) if e.error_len().is_none() && self.pending.len() < 4 => None,
                    Err(_) => {
                        self.pending.clear();
                        None
                    }
                }
            }
        }
    }
}

/// What the caller gets back from `read_line`.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    Line(String),
    /// ^C.
    Interrupted,
    /// ^D on an empty line, or the terminal went away.
    End,
    /// Nothing typed for the idle limit.
    Idle,
}

/// Completes the word at the end of `line`: the candidates that start with it.
pub type Completer<'a> = &'a dyn Fn(&str) -> Vec<String>;

/// The serial console, in character mode while a line is read.
pub struct Console {
    input: std::fs::File,
    output: std::fs::File,
    cooked: Option<Termios>,
    decoder: Decoder,
    /// Where relayed lines come from (the daemon's log pipe), if any.
    events: Option<std::fs::File>,
    partial_event: Vec<u8>,
    /// Which relayed lines to show.
    pub show: fn(&str) -> bool,
}

impl Console {
    /// The terminal on standard input and output.
    pub fn stdio() -> io::Result<Console> {
        let input = std::fs::File::from(io::stdin().as_fd().try_clone_to_owned()?);
        let output = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let cooked = termios::tcgetattr(&input).ok();
        Ok(Console {
            input,
            output,
            cooked,
            decoder: Decoder::default(),
            events: None,
            partial_event: Vec::new(),
            show: |_| true,
        })
    }

    /// Relays the lines written into `events` (a pipe opened without blocking).
    pub fn relay(&mut self, events: std::fs::File) {
        self.events = Some(events);
    }

    /// Writes `text` as it is (newlines become CR LF through the terminal's output settings).
    pub fn print(&mut self, text: &str) {
        let _ = self.output.write_all(text.as_bytes());
        let _ = self.output.flush();
    }

    /// The terminal as a program started from here expects it (line mode, echo).
    pub fn restore(&self) {
        if let Some(cooked) = &self.cooked {
            let _ = termios::tcsetattr(&self.input, SetArg::TCSANOW, cooked);
        }
    }

    fn character_mode(&self) {
        if let Some(cooked) = &self.cooked {
            let mut raw = cooked.clone();
            // Keys one by one, no echo, ^C and ^D as bytes; output processing (LF -> CR LF)
            // and input CR -> LF stay as they are.
            raw.local_flags
                .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
            raw.control_chars[termios::SpecialCharacterIndices::VMIN as usize] = 1;
            raw.control_chars[termios::SpecialCharacterIndices::VTIME as usize] = 0;
            let _ = termios::tcsetattr(&self.input, SetArg::TCSANOW, &raw);
        }
    }

    /// Reads a line after `prompt`; `hidden` echoes nothing (passwords).
    pub fn read_line(
        &mut self,
        prompt: &str,
        hidden: bool,
        idle: Option<Duration>,
        complete: Option<Completer<'_>>,
    ) -> Input {
        self.character_mode();
        let result = self.edit(prompt, hidden, idle, complete);
        self.restore();
        result
    }

    fn edit(
        &mut self,
        prompt: &str,
        hidden: bool,
        idle: Option<Duration>,
        complete: Option<Completer<'_>>,
    ) -> Input {
        let mut line = String::new();
        self.print(prompt);
        let mut last_key = Instant::now();
        loop {
            let left = match idle {
                Some(limit) => match limit.checked_sub(last_key.elapsed()) {
                    Some(left) => Some(left),
                    None => {
                        self.print("\n");
                        return Input::Idle;
                    }
                },
                None => None,
            };
            let timeout = left.map_or(PollTimeout::NONE, |left| {
                PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            });
            let (key_ready, event_ready) = match self.wait(timeout) {
                Ok(ready) => ready,
                Err(_) => return Input::End,
            };
            if event_ready {
                self.show_events(prompt, &line, hidden);
            }
            if !key_ready {
                continue;
            }
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte) {
                Ok(1) => {}
                Ok(_) => return Input::End,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return Input::End,
            }
            last_key = Instant::now();
            let Some(key) = self.decoder.feed(byte[0]) else {
                continue;
            };
            match key {
                Key::Char(c) => {
                    line.push(c);
                    if !hidden {
                        self.print(c.encode_utf8(&mut [0u8; 4]));
                    }
                }
                Key::Backspace => {
                    if line.pop().is_some() && !hidden {
                        self.print("\x08 \x08");
                    }
                }
                Key::Kill => {
                    if !hidden {
                        let n = line.chars().count();
                        self.print(&"\x08 \x08".repeat(n));
                    }
                    line.clear();
                }
                Key::Interrupt => {
                    self.print("^C\n");
                    return Input::Interrupted;
                }
                Key::End if line.is_empty() => {
                    self.print("\n");
                    return Input::End;
                }
                Key::End => {}
                Key::Enter => {
                    self.print("\n");
                    return Input::Line(line);
                }
                Key::Tab => {
                    if let (Some(complete), false) = (complete, hidden) {
                        self.complete(prompt, &mut line, complete);
                    }
                }
            }
        }
    }

    /// Tab: one candidate completes the word; several are listed and the line comes back.
    fn complete(&mut self, prompt: &str, line: &mut String, complete: Completer<'_>) {
        let candidates = complete(line);
        let word_start = line.rfind(' ').map_or(0, |i| i + 1);
        let typed = line[word_start..].to_string();
        match candidates.as_slice() {
            [] => self.print("\x07"),
            [only] => {
                let rest = format!("{} ", &only[typed.len().min(only.len())..]);
                line.push_str(&rest);
                self.print(&rest);
            }
            many => {
                // The longest prefix they share, then the list.
                let mut common = many[0].clone();
                for candidate in &many[1..] {
                    while !candidate.starts_with(&common) {
                        common.pop();
                    }
                }
                if common.len() > typed.len() {
                    let rest = common[typed.len()..].to_string();
                    line.push_str(&rest);
                    self.print(&rest);
                } else {
                    self.print(&format!("\n{}\n{prompt}{line}", many.join("  ")));
                }
            }
        }
    }

    /// Waits for a key or an event line: which are ready.
    fn wait(&self, timeout: PollTimeout) -> io::Result<(bool, bool)> {
        let input = self.input.as_fd();
        let events: Option<BorrowedFd<'_>> = self.events.as_ref().map(|f| f.as_fd());
        let mut fds = vec![PollFd::new(input, PollFlags::POLLIN)];
        if let Some(events) = events {
            fds.push(PollFd::new(events, PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok((false, false)),
            Err(e) => return Err(e.into()),
        }
        let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let key = ready(&fds[0]);
        if fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
        {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        Ok((key, fds.get(1).is_some_and(ready)))
    }

    /// Prints the event lines that came in above the line being typed: the prompt and the
    /// line are overwritten with the event, then written again below it.
    fn show_events(&mut self, prompt: &str, line: &str, hidden: bool) {
        let lines = self.take_events();
        let shown: Vec<String> = lines.into_iter().filter(|l| (self.show)(l)).collect();
        if shown.is_empty() {
            return;
        }
        let typed = if hidden {
            String::new()
        } else {
            line.to_string()
        };
        let width = prompt.chars().count() + typed.chars().count();
        let mut out = String::from("\r");
        for (i, event) in shown.iter().enumerate() {
            out.push_str(event);
            if i == 0 {
                // Spaces over what is left of the prompt and the typed line.
                let pad = width.saturating_sub(event.chars().count());
                out.push_str(&" ".repeat(pad));
            }
            out.push('\n');
        }
        out.push_str(prompt);
        out.push_str(&typed);
        self.print(&out);
    }

    /// The whole lines the pipe holds now.
    pub fn take_events(&mut self) -> Vec<String> {
        let Some(events) = self.events.as_mut() else {
            return Vec::new();
        };
        let mut buffer = [0u8; 4096];
        loop {
            match events.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => self.partial_event.extend_from_slice(&buffer[..n]),
                Err(_) => break,
            }
        }
        let mut lines = Vec::new();
        while let Some(end) = self.partial_event.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial_event.drain(..=end).collect();
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            );
        }
        lines
    }

    /// The raw descriptor of the terminal (for a program started on it).
    pub fn fd(&self) -> i32 {
        self.input.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut decoder = Decoder::default();
        bytes.iter().filter_map(|&b| decoder.feed(b)).collect()
    }

    #[test]
    fn keys_are_decoded_and_escape_sequences_dropped() {
        assert_eq!(
            keys(b"ab\x7f\r"),
            [Key::Char('a'), Key::Char('b'), Key::Backspace, Key::Enter]
        );
        // Up arrow, F5, then x.
        assert_eq!(keys(b"\x1b[A\x1b[15~x"), [Key::Char('x')]);
        assert_eq!(keys(b"\x1bOPy"), [Key::Char('y')]);
        assert_eq!(
            keys(b"\x03\x04\x15\t"),
            [Key::Interrupt, Key::End, Key::Kill, Key::Tab]
        );
        // UTF-8 arrives byte by byte.
        assert_eq!(keys("é".as_bytes()), [Key::Char('é')]);
        // Other control bytes are nothing.
        assert_eq!(keys(b"\x01\x02"), []);
    }
}
