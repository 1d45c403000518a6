//! The HTTP and HTTPS check: a GET over HTTP/1.1 with `Connection: close`, written here so that
//! it reads only what a verdict needs (the head, and the body only when there is a pattern to
//! match) and never more than 64 KiB. HTTPS goes through rustls with the ring provider; a
//! check either verifies the certificate against its own CA file or accepts any certificate
//! (the handshake's signatures are still checked).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use regex_lite::Regex;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::checker::{excerpt, io_text, parse_weight, Outcome};
use super::HealthError;
use crate::config::model::HttpCheck;

/// The most of a response that is read; a longer body is matched on its start.
pub(super) const MAX_RESPONSE: usize = 64 * 1024;

/// An HTTP check, ready to run against any real server.
pub struct HttpProbe {
    path: String,
    host: Option<String>,
    /// Acceptable status codes (never empty: 200 when none is configured).
    status: Vec<u16>,
    expect: Option<Regex>,
    weight_header: Option<String>,
    tls: Option<Tls>,
}

struct Tls {
    connector: TlsConnector,
    /// The name the certificate must carry (and the SNI): the check's host, or else the real
    /// server's address.
    name: Option<ServerName<'static>>,
}

impl HttpProbe {
    pub(super) fn new(http: &HttpCheck) -> Result<HttpProbe, HealthError> {
        let expect = match &http.expect {
            Some(pattern) => Some(Regex::new(pattern).map_err(|source| HealthError::Regex {
                pattern: pattern.clone(),
                source,
            })?),
            None => None,
        };
        let tls = if http.tls {
            Some(Tls {
                connector: TlsConnector::from(client_config(http)?),
                name: http.host.as_deref().and_then(server_name),
            })
        } else {
            None
        };
        Ok(HttpProbe {
            path: http.path.clone(),
            host: http.host.clone(),
            status: if http.status.is_empty() {
                vec![200]
            } else {
                http.status.clone()
            },
            expect,
            weight_header: http.weight_header.clone(),
            tls,
        })
    }

    pub(super) fn doing(&self, target: SocketAddr) -> String {
        format!("GET {} from {target}", self.path)
    }

    pub(super) async fn probe(&self, target: SocketAddr) -> Outcome {
        let stream = match TcpStream::connect(target).await {
            Ok(stream) => stream,
            Err(e) => return Outcome::failed(format!("connect {target}: {}", io_text(&e))),
        };
        let request = self.request(target);
        match &self.tls {
            None => self.exchange(stream, &request, target).await,
            Some(tls) => {
                let name = tls
                    .name
                    .clone()
                    .unwrap_or_else(|| ServerName::IpAddress(target.ip().into()));
                match tls.connector.connect(name, stream).await {
                    Ok(stream) => self.exchange(stream, &request, target).await,
                    Err(e) => {
                        Outcome::failed(format!("TLS handshake with {target}: {}", io_text(&e)))
                    }
                }
            }
        }
    }

    fn request(&self, target: SocketAddr) -> Vec<u8> {
        let host = match &self.host {
            Some(host) => host.clone(),
            None => host_of(target, self.tls.is_some()),
        };
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: director-health\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            self.path
        )
        .into_bytes()
    }

    async fn exchange<S>(&self, mut stream: S, request: &[u8], target: SocketAddr) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if let Err(e) = stream.write_all(request).await {
            return Outcome::failed(format!(
                "sending GET {} to {target}: {}",
                self.path,
                io_text(&e)
            ));
        }
        let response = match read_response(&mut stream, self.expect.is_some()).await {
            Ok(response) => response,
            Err(why) => {
                return Outcome::failed(format!("{target} GET {}: {why}", self.path));
            }
        };
        self.verdict(&response, target)
    }

    /// The verdict on a complete response.
    fn verdict(&self, response: &Response, target: SocketAddr) -> Outcome {
        let status = response.head.status;
        if !self.status.contains(&status) {
            let expected: Vec<String> = self.status.iter().map(u16::to_string).collect();
            return Outcome::failed(format!(
                "HTTP {status} from {target} GET {} (expected {})",
                self.path,
                expected.join(", ")
            ));
        }
        if let Some(expect) = &self.expect {
            let body = String::from_utf8_lossy(&response.body);
            if !expect.is_match(&body) {
                return Outcome::failed(format!(
                    "body of {target} GET {} does not match /{}/ (it starts {})",
                    self.path,
                    expect.as_str(),
                    excerpt(&response.body, 40)
                ));
            }
        }
        let mut outcome = Outcome::healthy(match status {
            200 => Cow::Borrowed("HTTP 200"),
            other => Cow::Owned(format!("HTTP {other}")),
        });
        if let Some(name) = &self.weight_header {
            match header_value(&response.head_bytes, name).map(parse_weight) {
                Some(Ok(weight)) => outcome.weight = Some(weight),
                Some(Err(why)) => {
                    outcome.message = format!("HTTP {status}; {name}: {why}").into();
                }
                None => {}
            }
        }
        outcome
    }
}

/// The Host header (and default TLS name) of a real server without a configured host: its
/// address, with the port when it is not the scheme's own.
fn host_of(target: SocketAddr, tls: bool) -> String {
    let default_port = if tls { 443 } else { 80 };
    match (target, target.port() == default_port) {
        (SocketAddr::V4(v4), true) => v4.ip().to_string(),
        (SocketAddr::V6(v6), true) => format!("[{}]", v6.ip()),
        (target, false) => target.to_string(),
    }
}

/// The name a certificate must carry for a configured host: the host without its port and
/// brackets, as a DNS name or an IP address.
fn server_name(host: &str) -> Option<ServerName<'static>> {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => name,
            _ => host,
        }
    };
    ServerName::try_from(name.to_string()).ok()
}

/// The ring provider, made once for every check.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn client_config(http: &HttpCheck) -> Result<Arc<ClientConfig>, HealthError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(HealthError::Tls)?;
    let config = match (&http.ca, http.verify) {
        (Some(path), true) => builder
            .with_root_certificates(load_ca(path)?)
            .with_no_client_auth(),
        // Validation refuses verify without a CA file; an empty store fails every handshake
        // with a message that says why.
        (None, true) => builder
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth(),
        (_, false) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(crate::tls::Verifier::any(provider())))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn load_ca(path: &str) -> Result<RootCertStore, HealthError> {
    let pem = std::fs::read(path).map_err(|source| HealthError::ReadCa {
        path: path.into(),
        source,
    })?;
    let load = |reason: String| HealthError::LoadCa {
        path: path.into(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| load(format!("not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| load(format!("a certificate is refused: {e}")))?;
    }
    if roots.is_empty() {
        return Err(load(
            "holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(roots)
}

/// A response as far as it was read.
#[derive(Debug)]
pub(super) struct Response {
    pub head: Head,
    pub head_bytes: Vec<u8>,
    /// The body (de-chunked), or empty when it was not needed.
    pub body: Vec<u8>,
}

/// The status line and the headers that say how the body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub status: u16,
    /// Bytes of the head, its blank line included.
    pub len: usize,
    pub framing: Framing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    Length(usize),
    Chunked,
    /// The body ends when the server closes.
    Close,
}

/// Reads a response; the body only when `want_body`. At most `MAX_RESPONSE` bytes.
pub(super) async fn read_response<S: AsyncRead + Unpin>(
    stream: &mut S,
    want_body: bool,
) -> Result<Response, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let mut head: Option<Head> = None;
    loop {
        if let Some(head) = head {
            if !want_body {
                return Ok(split(buf, head, false));
            }
            let complete = match head.framing {
                Framing::Length(n) => buf.len() - head.len >= n,
                Framing::Chunked => dechunk(&buf[head.len..])?.1,
                Framing::Close => false,
            };
            if complete {
                return Ok(split(buf, head, true));
            }
        }
        if buf.len() >= MAX_RESPONSE {
            return match head {
                // The start of a long body is what the pattern is matched on.
                Some(head) => Ok(split(buf, head, true)),
                None => Err("the response head is longer than 64 KiB".into()),
            };
        }
        let old = buf.len();
        buf.resize((old + 4096).min(MAX_RESPONSE), 0);
        let read = stream.read(&mut buf[old..]).await;
        let n = match read {
            Ok(n) => n,
            // A TLS server that closes without close_notify: the end of the body all the same.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => {
                buf.truncate(old);
                return Err(format!("reading the response: {}", io_text(&e)));
            }
        };
        buf.truncate(old + n);
        if n == 0 {
            return match head {
                Some(head) => Ok(split(buf, head, want_body)),
                None if buf.is_empty() => {
                    Err("the server closed the connection without answering".into())
                }
                None => Err(format!(
                    "the response ended inside its head: {}",
                    excerpt(&buf, 40)
                )),
            };
        }
        if head.is_none() {
            head = parse_head(&buf)?;
        }
    }
}

/// The head and the (de-chunked) body of what was read.
fn split(mut buf: Vec<u8>, head: Head, want_body: bool) -> Response {
    let body = if want_body {
        let raw = &buf[head.len..];
        match head.framing {
            Framing::Length(n) => raw[..n.min(raw.len())].to_vec(),
            // A broken chunk keeps what came before it.
            Framing::Chunked => dechunk(raw).map(|(body, _)| body).unwrap_or_default(),
            Framing::Close => raw.to_vec(),
        }
    } else {
        Vec::new()
    };
    buf.truncate(head.len);
    Response {
        head,
        head_bytes: buf,
        body,
    }
}

/// The head of a response, once `buf` holds all of it (`Ok(None)` until then).
pub(super) fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
        return Err(format!("not an HTTP response: {}", excerpt(buf, 40)));
    }
    let crlf = find(buf, b"\r\n\r\n").map(|at| at + 4);
    let lf = find(buf, b"\n\n").map(|at| at + 2);
    let len = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return Ok(None),
    };
    let text = String::from_utf8_lossy(&buf[..len]);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP status line: {}",
                excerpt(status_line.as_bytes(), 40)
            )
        })?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| format!("Content-Length {} is not a length", value.trim()))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            chunked = true;
        }
    }
    let framing = if matches!(status, 100..=199 | 204 | 304) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::Close
    };
    Ok(Some(Head {
        status,
        len,
        framing,
    }))
}

/// The value of header `name` in a head (the first, trimmed).
pub(super) fn header_value<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(head).ok()?;
    text.split('\n').skip(1).find_map(|line| {
        let (n, value) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// A chunked body: what its chunks hold so far, and whether the last chunk was seen.
pub(super) fn dechunk(raw: &[u8]) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(end) = raw[at..].iter().position(|&b| b == b'\n').map(|p| at + p) else {
            return Ok((body, false));
        };
        let line = String::from_utf8_lossy(&raw[at..end]);
        let size_text = line.trim_end_matches('\r');
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("{} is not a chunk size", excerpt(size_text.as_bytes(), 20)))?;
        at = end + 1;
        if size == 0 {
            return Ok((body, true));
        }
        let data_end = at.saturating_add(size);
        if data_end > raw.len() {
            body.extend_from_slice(&raw[at..]);
            return Ok((body, false));
        }
        body.extend_from_slice(&raw[at..data_end]);
        at = data_end;
        // The CRLF after the data.
        if raw.get(at) == Some(&b'\r') {
            at += 1;
        }
        match raw.get(at) {
            Some(b'\n') => at += 1,
            Some(_) => return Err("a chunk is not followed by CRLF".into()),
            None => return Ok((body, false)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(toml_check: &str) -> HttpProbe {
        let http: HttpCheck = toml::from_str(toml_check).expect("an http check");
        HttpProbe::new(&http).expect("a probe")
    }

    fn target() -> SocketAddr {
        "192.0.2.21:80".parse().expect("an address")
    }

    async fn read(bytes: &[u8], want_body: bool) -> Result<Response, String> {
        let mut stream = bytes;
        read_response(&mut stream, want_body).await
    }

    fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .expect("parsed")
            .expect("complete");
        assert_eq!(
            head,
            Head {
                status: 200,
                len: 38,
                framing: Framing::Length(2)
            }
        );
        let head = parse_head(b"HTTP/1.0 503 Busy\n\nbody")
            .expect("parsed")
            .expect("complete");
        assert_eq!((head.status, head.framing), (503, Framing::Close));
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\nContent-Length: 9\r\n\r\n",
        )
        .expect("parsed")
        .expect("complete");
        assert_eq!(head.framing, Framing::Chunked);
        let head = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n")
            .expect("parsed")
            .expect("complete");
        assert_eq!(head.framing, Framing::Length(0));
    }

    #[test]
    fn what_is_not_http_is_said() {
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n")
            .unwrap_err()
            .contains("not an HTTP response: \"SSH-2.0-OpenSSH\\r\\n\""));
        assert!(parse_head(b"HTTP/1.1 OK\r\n\r\n")
            .unwrap_err()
            .contains("not an HTTP status line"));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n")
            .unwrap_err()
            .contains("Content-Length x"));
    }

    #[test]
    fn headers_are_found_by_name_in_any_case() {
        let head = b"HTTP/1.1 200 OK\r\nX-Weight:  7 \r\nServer: x\r\n\r\n";
        assert_eq!(header_value(head, "x-weight"), Some("7"));
        assert_eq!(header_value(head, "X-Load"), None);
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"2\r\nok\r\n3;ext=1\r\n!!!\r\n0\r\n\r\n"),
            Ok((b"ok!!!".to_vec(), true))
        );
        assert_eq!(
            dechunk(b"2\r\nok\r\n5\r\nab"),
            Ok((b"okab".to_vec(), false))
        );
        assert!(dechunk(b"zz\r\n").unwrap_err().contains("not a chunk size"));
        assert!(dechunk(b"2\r\nokX").unwrap_err().contains("CRLF"));
    }

    #[test]
    fn responses_are_read_by_their_framing() {
        let r = block_on(read(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
            true,
        ))
        .expect("a response");
        assert_eq!(r.body, b"ok");
        let r = block_on(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
            true,
        ))
        .expect("a response");
        assert_eq!(r.body, b"ok");
        let r = block_on(read(b"HTTP/1.0 200 OK\r\n\r\nto the end", true)).expect("a response");
        assert_eq!(r.body, b"to the end");
        // Without a pattern the body is not read.
        let r = block_on(read(b"HTTP/1.0 200 OK\r\n\r\nto the end", false)).expect("a response");
        assert!(r.body.is_empty());
        assert!(block_on(read(b"", true))
            .unwrap_err()
            .contains("closed the connection without answering"));
        assert!(block_on(read(b"HTTP/1.1 200 OK\r\nServer", true))
            .unwrap_err()
            .contains("ended inside its head"));
        // A long body is cut at 64 KiB.
        let mut long = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        long.resize(200_000, b'x');
        let r = block_on(read(&long, true)).expect("a response");
        assert_eq!(r.body.len(), MAX_RESPONSE - 19);
    }

    fn response(text: &[u8]) -> Response {
        block_on(read(text, true)).expect("a response")
    }

    #[test]
    fn verdicts_and_their_messages() {
        let p = probe("path = \"/health\"\nexpect = \"ok\"\n");
        let good = p.verdict(&response(b"HTTP/1.1 200 OK\r\n\r\nall ok"), target());
        assert!(good.healthy);
        assert_eq!(good.message, "HTTP 200");
        assert!(matches!(good.message, Cow::Borrowed(_)));

        let busy = p.verdict(&response(b"HTTP/1.1 503 Busy\r\n\r\n"), target());
        assert!(!busy.healthy);
        assert_eq!(
            busy.message,
            "HTTP 503 from 192.0.2.21:80 GET /health (expected 200)"
        );

        let wrong = p.verdict(&response(b"HTTP/1.1 200 OK\r\n\r\nnope"), target());
        assert!(!wrong.healthy);
        assert_eq!(
            wrong.message,
            "body of 192.0.2.21:80 GET /health does not match /ok/ (it starts \"nope\")"
        );

        let p = probe("status = [200, 204]\n");
        let other = p.verdict(&response(b"HTTP/1.1 404 Not Found\r\n\r\n"), target());
        assert!(other.message.ends_with("(expected 200, 204)"));
        assert!(
            p.verdict(&response(b"HTTP/1.1 204 No Content\r\n\r\n"), target())
                .healthy
        );
    }

    #[test]
    fn a_weight_header_gives_a_weight_and_a_bad_one_only_a_message() {
        let p = probe("weight_header = \"X-Weight\"\n");
        let weighted = p.verdict(
            &response(b"HTTP/1.1 200 OK\r\nX-Weight: 7\r\n\r\n"),
            target(),
        );
        assert_eq!((weighted.healthy, weighted.weight), (true, Some(7)));
        let bad = p.verdict(
            &response(b"HTTP/1.1 200 OK\r\nx-weight: lots\r\n\r\n"),
            target(),
        );
        assert_eq!((bad.healthy, bad.weight), (true, None));
        assert_eq!(
            bad.message,
            "HTTP 200; X-Weight: 'lots' is not a whole number from 0 to 4294967295"
        );
        let none = p.verdict(&response(b"HTTP/1.1 200 OK\r\n\r\n"), target());
        assert_eq!((none.healthy, none.weight), (true, None));
    }

    #[test]
    fn requests_name_the_host() {
        let p = probe("path = \"/a?b=1\"\n");
        assert_eq!(
            String::from_utf8_lossy(&p.request(target())),
            "GET /a?b=1 HTTP/1.1\r\nHost: 192.0.2.21\r\nUser-Agent: director-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        let v6: SocketAddr = "[2001:db8::1]:8080".parse().expect("an address");
        assert!(String::from_utf8_lossy(&p.request(v6)).contains("Host: [2001:db8::1]:8080\r\n"));
        let p = probe("host = \"www.example.net\"\n");
        assert!(String::from_utf8_lossy(&p.request(target())).contains("Host: www.example.net\r\n"));
    }

    #[test]
    fn tls_names_come_from_the_host() {
        assert_eq!(
            server_name("www.example.net:8443"),
            Some(ServerName::try_from("www.example.net").expect("a name"))
        );
        assert_eq!(
            server_name("[2001:db8::1]:443"),
            Some(ServerName::IpAddress(
                "2001:db8::1"
                    .parse::<std::net::IpAddr>()
                    .expect("an address")
                    .into()
            ))
        );
        assert_eq!(
            server_name("192.0.2.1"),
            Some(ServerName::IpAddress(
                "192.0.2.1"
                    .parse::<std::net::IpAddr>()
                    .expect("an address")
                    .into()
            ))
        );
    }

    #[test]
    fn a_missing_ca_file_is_an_error_that_names_it() {
        let http: HttpCheck =
            toml::from_str("tls = true\nverify = true\nca = \"/nonexistent/ca.pem\"\n")
                .expect("an http check");
        let error = HttpProbe::new(&http).err().expect("an error");
        assert_eq!(
            error.to_string(),
            "reading the CA file /nonexistent/ca.pem: no such file or directory"
        );
    }
}
