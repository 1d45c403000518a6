//! Piranha's send/expect check over TCP or UDP: send a string (its escapes turned into bytes
//! once, at configuration time), then match what comes back against a regular expression.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use regex_lite::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::checker::{excerpt, io_text, Outcome};
use super::HealthError;
use crate::config::model::{CheckProtocol, SendExpectCheck};

/// The most that is read of an answer.
const MAX_ANSWER: usize = 64 * 1024;

/// The largest datagram read over UDP; a longer one is matched on its start.
const MAX_DATAGRAM: usize = 4096;

/// A send/expect check, ready to run against any real server.
pub struct SendExpectProbe {
    udp: bool,
    send: Vec<u8>,
    expect: Option<Regex>,
}

impl SendExpectProbe {
    pub(super) fn new(check: &SendExpectCheck) -> Result<SendExpectProbe, HealthError> {
        let expect = match &check.expect {
            Some(pattern) => Some(Regex::new(pattern).map_err(|source| HealthError::Regex {
                pattern: pattern.clone(),
                source,
            })?),
            None => None,
        };
        Ok(SendExpectProbe {
            udp: check.protocol == CheckProtocol::Udp,
            send: check.send_bytes().map_err(HealthError::Send)?,
            expect,
        })
    }

    pub(super) fn doing(&self, target: SocketAddr) -> String {
        match (self.udp, &self.expect) {
            (true, _) => format!("waiting for an answer from UDP {target}"),
            (false, Some(_)) => format!("waiting for an answer from {target}"),
            (false, None) => format!("connect {target}"),
        }
    }

    pub(super) async fn probe(&self, target: SocketAddr) -> Outcome {
        if self.udp {
            self.over_udp(target).await
        } else {
            self.over_tcp(target).await
        }
    }

    async fn over_tcp(&self, target: SocketAddr) -> Outcome {
        let mut stream = match TcpStream::connect(target).await {
            Ok(stream) => stream,
            Err(e) => return Outcome::failed(format!("connect {target}: {}", io_text(&e))),
        };
        if !self.send.is_empty() {
            if let Err(e) = stream.write_all(&self.send).await {
                return Outcome::failed(format!("sending to {target}: {}", io_text(&e)));
            }
        }
        let Some(expect) = &self.expect else {
            return Outcome::healthy(if self.send.is_empty() {
                "connected"
            } else {
                "connected and sent"
            });
        };
        // Read until the answer matches; the server may send it in pieces, or close after it.
        let mut answer: Vec<u8> = Vec::with_capacity(512);
        loop {
            let old = answer.len();
            answer.resize((old + 2048).min(MAX_ANSWER), 0);
            let n = match stream.read(&mut answer[old..]).await {
                Ok(n) => n,
                Err(e) => {
                    return Outcome::failed(format!("reading from {target}: {}", io_text(&e)))
                }
            };
            answer.truncate(old + n);
            if n > 0 && expect.is_match(&String::from_utf8_lossy(&answer)) {
                return Outcome::healthy("answer matches");
            }
            if n == 0 || answer.len() >= MAX_ANSWER {
                return Outcome::failed(mismatch(target, expect, &answer, false));
            }
        }
    }

    async fn over_udp(&self, target: SocketAddr) -> Outcome {
        let local: SocketAddr = match target {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        // A connected socket: the kernel drops datagrams from anyone else, and an ICMP port
        // unreachable comes back as "connection refused".
        let socket = match UdpSocket::bind(local).await {
            Ok(socket) => socket,
            Err(e) => return Outcome::failed(format!("UDP socket: {}", io_text(&e))),
        };
        if let Err(e) = socket.connect(target).await {
            return Outcome::failed(format!("UDP {target}: {}", io_text(&e)));
        }
        if let Err(e) = socket.send(&self.send).await {
            return Outcome::failed(format!("sending to UDP {target}: {}", io_text(&e)));
        }
        let mut answer = vec![0; MAX_DATAGRAM];
        let n = match socket.recv(&mut answer).await {
            Ok(n) => n,
            Err(e) => return Outcome::failed(format!("UDP {target}: {}", io_text(&e))),
        };
        answer.truncate(n);
        match &self.expect {
            None => Outcome::healthy("answered"),
            Some(expect) if expect.is_match(&String::from_utf8_lossy(&answer)) => {
                Outcome::healthy("answer matches")
            }
            Some(expect) => Outcome::failed(mismatch(target, expect, &answer, true)),
        }
    }
}

fn mismatch(target: SocketAddr, expect: &Regex, answer: &[u8], udp: bool) -> Cow<'static, str> {
    let udp = if udp { "UDP " } else { "" };
    if answer.is_empty() {
        format!(
            "{udp}{target} closed the connection without an answer matching /{}/",
            expect.as_str()
        )
    } else {
        format!(
            "the answer of {udp}{target} does not match /{}/: {}",
            expect.as_str(),
            excerpt(answer, 60)
        )
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_unescaped_once_and_expects_are_regexes() {
        let check = SendExpectCheck {
            protocol: CheckProtocol::Tcp,
            send: Some("PING\\r\\n".into()),
            expect: Some("^\\+OK\\r\\n".into()),
        };
        let probe = SendExpectProbe::new(&check).expect("a probe");
        assert_eq!(probe.send, b"PING\r\n");
        // The regex's own escapes mean what Piranha's do.
        assert!(probe
            .expect
            .as_ref()
            .expect("a pattern")
            .is_match("+OK\r\n"));
        let bad = SendExpectCheck {
            send: Some("\\q".into()),
            ..check
        };
        assert!(SendExpectProbe::new(&bad)
            .err()
            .expect("an error")
            .to_string()
            .contains("'\\q' is not one of the escapes"));
    }

    #[test]
    fn mismatches_show_the_answer() {
        let target: SocketAddr = "192.0.2.25:110".parse().expect("an address");
        let expect = Regex::new("^\\+OK").expect("a pattern");
        assert_eq!(
            mismatch(target, &expect, b"-ERR busy\r\n", false),
            "the answer of 192.0.2.25:110 does not match /^\\+OK/: \"-ERR busy\\r\\n\""
        );
        assert_eq!(
            mismatch(target, &expect, b"", false),
            "192.0.2.25:110 closed the connection without an answer matching /^\\+OK/"
        );
    }
}
